"""IndexedRedis: a Redis object mapper with secondary indexes.

Every save and delete is one atomic Lua script; every query finds and fetches in one
round trip; ``Model.reset`` swaps a whole dataset without stalling the server.
"""

from .connection import (
    clearRedisPools,
    getDefaultRedisConnectionParams,
    getRedisConnection,
    getRedisPool,
    setDefaultRedisConnectionParams,
    useEmbeddedRedis,
)
from .embedded import EmbeddedRedis
from .exceptions import (
    ConcurrencyError,
    FieldValueError,
    IndexedRedisError,
    InvalidModelException,
    InvalidQueryError,
    UnknownFieldError,
)
from .fields import IRClassicField, IRField, IRNullType, irNull
from .model import IndexedRedisModel, isIndexedRedisModel
from .query import QuerySet

__version__ = "7.0.0.dev0"

__all__ = [
    "IndexedRedisModel",
    "isIndexedRedisModel",
    "QuerySet",
    "IRField",
    "IRClassicField",
    "irNull",
    "IRNullType",
    "setDefaultRedisConnectionParams",
    "getDefaultRedisConnectionParams",
    "getRedisConnection",
    "getRedisPool",
    "clearRedisPools",
    "useEmbeddedRedis",
    "EmbeddedRedis",
    "IndexedRedisError",
    "InvalidModelException",
    "FieldValueError",
    "InvalidQueryError",
    "UnknownFieldError",
    "ConcurrencyError",
]
