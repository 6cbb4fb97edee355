"""The coherent client-side cache (opt-in): ``store`` keeps one model's cached objects
and query results, ``tracker`` keeps them coherent through one RESP3 tracking
connection per server, ``registry`` finds both for a client and answers the flows'
``CacheRead`` / ``CacheStore`` requests.  See the README's "Client-side cache"."""
