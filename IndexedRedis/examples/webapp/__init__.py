"""An example web app: the same pages served from SQL and from IndexedRedis, the
latter fed by refresh jobs (see "A fast front end for SQL" in the README).

``indexedredis webdemo`` generates the data into SQLite, starts an embedded Redis,
runs the refresh jobs and serves the app.  Needs ``pip install 'indexedredis[webapp]'``.
"""
