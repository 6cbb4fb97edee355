"""Stands in for the 6.0.3 suite's own ``UnitTests/TestProperties.py``.

That file is the suite's connection setting (its README asks users to edit it): it
points every model at 127.0.0.1:6379.  This module is found first on ``sys.path`` when
``tests/compat6/run.py`` runs the suite, so the tests talk to the private server the job
started instead, and their own files stay unchanged.  It also makes sure that
``IndexedRedis`` is this package and not a 6.x install.
"""

import os

import redis

import IndexedRedis

_expected_package = os.environ["IR_COMPAT6_PACKAGE_DIR"]
_imported_package = os.path.dirname(os.path.realpath(IndexedRedis.__file__))
if _imported_package != os.path.realpath(_expected_package):
    raise RuntimeError(
        f"the 6.x tests imported IndexedRedis from {_imported_package}, not from {_expected_package}"
    )

REDIS_CONNECTION_PARAMS = {"host": "127.0.0.1", "port": int(os.environ["IR_COMPAT6_REDIS_PORT"]), "db": 0}

IndexedRedis.setDefaultRedisConnectionParams(REDIS_CONNECTION_PARAMS)
_client = redis.Redis(**REDIS_CONNECTION_PARAMS)
try:
    _client.ping()
finally:
    _client.close()
