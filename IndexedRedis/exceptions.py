"""Every error IndexedRedis raises, in one place, so callers can catch by kind."""

from __future__ import annotations

import redis.exceptions

__all__ = [
    "IndexedRedisError",
    "InvalidModelException",
    "FieldValueError",
    "InvalidQueryError",
    "IndexNotBuiltError",
    "ConcurrencyError",
    "ConflictError",
    "UnknownFieldError",
    "UniqueConstraintError",
    "LinkNotFetchedError",
    "CrossSlotError",
    "NotReplicatedError",
    "OutOfMemoryError",
    "EvictionPolicyError",
    "EvictionWarning",
    "PermissionDeniedError",
    "ServerUnavailableError",
    "ServerTimeoutError",
    "SharedKeysWarning",
    "CorruptRecordError",
]


class IndexedRedisError(Exception):
    """Base class of all IndexedRedis errors."""


class InvalidModelException(IndexedRedisError):
    """A model class is defined wrongly (raised when the class statement runs).

    The name is the one IndexedRedis 6.x used, kept so existing ``except`` clauses work.
    """


class FieldValueError(IndexedRedisError, TypeError, ValueError):
    """A value cannot be stored in a field: names the model, the field and what was expected."""


class InvalidQueryError(IndexedRedisError, ValueError):
    """A filter names an unknown field or lookup, or a field that is not indexed."""


class IndexNotBuiltError(InvalidQueryError):
    """A query needs an index the stored data has not built (the field was indexed, or
    its index changed, after the data was written): ``model`` and ``field`` name it.
    ``Model.objects.reindex()`` (or ``indexedredis reindex module:Model``) builds it."""

    def __init__(self, message: str, model: str = "", field: str = "") -> None:
        super().__init__(message)
        self.model = model
        self.field = field


class ConcurrencyError(IndexedRedisError):
    """An operation kept losing races against concurrent writers and gave up.

    Writes are compare-and-set scripts that retry when another client changed the
    object in between; this is raised only after many consecutive lost races.
    """


class ConflictError(ConcurrencyError):
    """A save with ``ifUnchanged=True`` found the object's stored record changed by
    another writer (or deleted) since this object was read or saved: nothing was
    written.  ``model`` and ``pk`` name the object; reload it and try again."""

    def __init__(self, message: str, model: str = "", pk: int | None = None) -> None:
        super().__init__(message)
        self.model = model
        self.pk = pk


class UniqueConstraintError(IndexedRedisError, ValueError):
    """A save would give a UNIQUE_FIELDS field a value another object already has.

    Nothing was written.  ``field`` and ``value`` name the clash.
    """

    def __init__(self, message: str, model: str = "", field: str = "", value: object = None) -> None:
        super().__init__(message)
        self.model = model
        self.field = field
        self.value = value


class UnknownFieldError(IndexedRedisError, TypeError):
    """A model was given a field name it does not have."""


class LinkNotFetchedError(IndexedRedisError, RuntimeError):
    """A link attribute was read inside a running event loop before its object was
    fetched: fetching it then would block the loop.  ``await obj.afetchLink(name)``
    (or a query with ``cascadeFetch=True``) fetches it first."""


class CrossSlotError(IndexedRedisError):
    """A request's keys lie in several Redis Cluster hash slots, so no one node can
    run it atomically; it was refused before anything was sent.

    ``slots`` maps each hash tag (or whole key, where it has none) to its slot.
    """

    def __init__(self, message: str, slots: dict[str, int] | None = None) -> None:
        super().__init__(message)
        self.slots = slots or {}


class NotReplicatedError(IndexedRedisError):
    """A write was applied on the master, but fewer replicas than the model's
    ``WAIT_REPLICAS`` acknowledged it in time: a failover now could lose it.
    ``acknowledged`` and ``wanted`` give the counts."""

    def __init__(self, message: str, acknowledged: int = 0, wanted: int = 0) -> None:
        super().__init__(message)
        self.acknowledged = acknowledged
        self.wanted = wanted


class OutOfMemoryError(IndexedRedisError):
    """Redis refused a write because it reached ``maxmemory`` (with the
    ``noeviction`` policy, or nothing left to evict); nothing of it was written."""


class EvictionPolicyError(IndexedRedisError):
    """The server's ``maxmemory-policy`` may evict IndexedRedis's keys, and
    ``setEvictionPolicyCheck('refuse')`` asked to refuse such a server."""


class EvictionWarning(UserWarning):
    """The server's ``maxmemory-policy`` may evict IndexedRedis's keys (given once
    per server and process; see ``setEvictionPolicyCheck``)."""


class PermissionDeniedError(IndexedRedisError):
    """The Redis user (an ACL rule) may not run a command or touch a key an operation
    needs.  A denied key is refused before the script runs, and a denied write
    command at the script's first write (every script reads before it writes), so
    nothing was written."""


class ServerUnavailableError(IndexedRedisError, redis.exceptions.ConnectionError):
    """Redis could not be reached, or the connection broke, during an operation; the
    message names the model and the server.  A ``redis.ConnectionError`` too, so
    code that catches that keeps working."""


class ServerTimeoutError(IndexedRedisError, redis.exceptions.TimeoutError):
    """Redis did not answer within the client's ``socket_timeout``; the message names
    the model and the server.  A ``redis.TimeoutError`` too."""


class SharedKeysWarning(UserWarning):
    """Two unrelated model classes use the same keys (the same KEY_NAME and KEY_GROUP,
    on the same connection params): each would read the other's records."""


class CorruptRecordError(IndexedRedisError):
    """A stored record or key is not what IndexedRedis writes (malformed msgpack, a
    key of another type): something else wrote it, or it was damaged."""


class ReadOnlyObjectError(IndexedRedisError, AttributeError):
    """A field of an instance read through the client-side cache (``CLIENT_CACHE``)
    was assigned, or such an instance changed in place was saved: the cache shares one
    instance among every reader of the process.  Change a copy
    (``obj.copy(copyPrimaryKey=True, copyValues=True)``) instead."""
