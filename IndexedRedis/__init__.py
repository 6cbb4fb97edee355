"""IndexedRedis: a Redis object mapper with secondary indexes.

Every save and delete is one atomic Lua script; every query finds and fetches in one
round trip; ``Model.reset`` swaps a whole dataset without stalling the server.
"""

from . import fields
from .aggregates import Avg, Count, Max, Min, Sum
from .compat import getCompatibility, setCompatibility
from .connection import (
    acloseRedisConnections,
    clearRedisPools,
    getAsyncRedisConnection,
    getDefaultRedisConnectionParams,
    getRedisConnection,
    getRedisPool,
    setDefaultRedisConnectionParams,
    useEmbeddedRedis,
)
from .drivers.scriptforms import getScriptFunctions, setScriptFunctions
from .embedded import EmbeddedRedis
from .eviction import getEvictionPolicyCheck, setEvictionPolicyCheck
from .exceptions import (
    ConcurrencyError,
    ConflictError,
    CorruptRecordError,
    CrossSlotError,
    EvictionPolicyError,
    EvictionWarning,
    FieldValueError,
    IndexedRedisError,
    IndexNotBuiltError,
    InvalidModelException,
    InvalidQueryError,
    LinkNotFetchedError,
    NotReplicatedError,
    OutOfMemoryError,
    PermissionDeniedError,
    ReadOnlyObjectError,
    ReadOnlyReplicaError,
    ServerTimeoutError,
    ServerUnavailableError,
    SharedKeysWarning,
    UniqueConstraintError,
    UnknownFieldError,
)
from .expressions import F
from .fields import (
    IRBase64Field,
    IRBytesField,
    IRClassicField,
    IRCompressedField,
    IRField,
    IRFieldChain,
    IRFixedPointField,
    IRForeignLinkField,
    IRForeignMultiLinkField,
    IRNullType,
    IRPickleField,
    IRRawField,
    IRUnicodeField,
    allowPickleFields,
    getDefaultIREncoding,
    irNull,
    setDefaultIREncoding,
)
from .foreign import IRForeignLinkFieldBase
from .model import (
    IndexedRedisModel,
    ModelDeleter,
    ModelSaver,
    isIndexedRedisModel,
    toggleDeprecatedMessages,
    validatedModels,
)
from .q import Q
from .query import QuerySet, cacheStats
from .results import IRQueryableList, QueryableList
from .typed import Field

__version__ = "7.0.0.dev0"

# Names of IndexedRedis 6.x, kept so code written for it runs unchanged.
INDEXED_REDIS_VERSION = (7, 0, 0)
INDEXED_REDIS_VERSION_STR = "7.0.0"
INDEXED_REDIS_PREFIX = "ir:"
IndexedRedisQuery = QuerySet
IndexedRedisSave = ModelSaver
IndexedRedisDelete = ModelDeleter
setIndexedRedisEncoding = setDefaultIREncoding
getIndexedRedisEncoding = getDefaultIREncoding

__all__ = [
    "IndexedRedisModel",
    "Field",
    "isIndexedRedisModel",
    "QuerySet",
    "Q",
    "Count",
    "Sum",
    "Min",
    "Max",
    "Avg",
    "IRQueryableList",
    "QueryableList",
    "IRField",
    "IRClassicField",
    "IRRawField",
    "IRUnicodeField",
    "IRBytesField",
    "IRBase64Field",
    "IRCompressedField",
    "IRFixedPointField",
    "IRPickleField",
    "IRFieldChain",
    "IRForeignLinkField",
    "IRForeignMultiLinkField",
    "irNull",
    "IRNullType",
    "allowPickleFields",
    "setCompatibility",
    "getCompatibility",
    "setDefaultIREncoding",
    "getDefaultIREncoding",
    "toggleDeprecatedMessages",
    "setDefaultRedisConnectionParams",
    "getDefaultRedisConnectionParams",
    "getRedisConnection",
    "getAsyncRedisConnection",
    "getRedisPool",
    "clearRedisPools",
    "acloseRedisConnections",
    "setEvictionPolicyCheck",
    "getEvictionPolicyCheck",
    "setScriptFunctions",
    "getScriptFunctions",
    "EvictionPolicyError",
    "EvictionWarning",
    "OutOfMemoryError",
    "PermissionDeniedError",
    "ServerUnavailableError",
    "ServerTimeoutError",
    "SharedKeysWarning",
    "CorruptRecordError",
    "useEmbeddedRedis",
    "EmbeddedRedis",
    "IndexedRedisError",
    "InvalidModelException",
    "FieldValueError",
    "IndexNotBuiltError",
    "InvalidQueryError",
    "UnknownFieldError",
    "UniqueConstraintError",
    "ConcurrencyError",
    "ConflictError",
    "F",
    "CrossSlotError",
    "LinkNotFetchedError",
    "NotReplicatedError",
    "ReadOnlyObjectError",
    "ReadOnlyReplicaError",
    "cacheStats",
    # 6.x names
    "fields",
    "IRForeignLinkFieldBase",
    "IndexedRedisQuery",
    "IndexedRedisSave",
    "IndexedRedisDelete",
    "setIndexedRedisEncoding",
    "getIndexedRedisEncoding",
    "INDEXED_REDIS_VERSION",
    "INDEXED_REDIS_VERSION_STR",
    "INDEXED_REDIS_PREFIX",
    "validatedModels",
]
