"""``IndexedRedisModel``: the class users extend.

The metaclass reads ``FIELDS``, ``INDEXED_FIELDS``, ``KEY_NAME`` and
``REDIS_CONNECTION_PARAMS`` into ``cls._meta`` and rejects an invalid model when the
class statement runs.  Instances keep their field values as plain attributes, plus
``_id`` (the primary key, None until saved) and ``_orig`` (the stored record as last
read or written), from which ``save()`` works out what changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, TypeVar

import redis

from .connection import (
    default_stamp,
    generation_cache,
    getDefaultRedisConnectionParams,
    getRedisConnection,
    raw_client,
)
from .exceptions import InvalidModelException, UnknownFieldError
from .executor import run
from .operations import Context, delete_flow, reset_flow, save_flow
from .options import ModelOptions, nearest
from .query import QuerySet

__all__ = ["IndexedRedisModel", "isIndexedRedisModel"]

M = TypeVar("M", bound="IndexedRedisModel")


class _ObjectsDescriptor:
    """``Model.objects``: a fresh query set over every object of the model."""

    def __get__(self, instance: Any, owner: type[M]) -> QuerySet[M]:
        if owner._meta is None:
            raise InvalidModelException(f"{owner.__name__} is abstract: it has no KEY_NAME and FIELDS")
        return QuerySet(owner)


class ModelBase(type):
    def __init__(cls, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> None:
        super().__init__(name, bases, namespace)
        cls._meta = None  # type: ignore[assignment]
        if not bases or namespace.get("__module__") == __name__:
            return  # IndexedRedisModel itself
        fields = getattr(cls, "FIELDS", None)
        key_name = getattr(cls, "KEY_NAME", None)
        if not fields and key_name is None:
            return  # an abstract intermediate base
        if fields is None or isinstance(fields, (str, bytes)) or not isinstance(fields, Iterable):
            raise InvalidModelException(f"Model {name}: FIELDS must be a list of field names or IRFields")
        indexed = getattr(cls, "INDEXED_FIELDS", None) or ()
        if isinstance(indexed, (str, bytes)):
            raise InvalidModelException(f"Model {name}: INDEXED_FIELDS must be a list of field names")
        cls._meta = ModelOptions(cls, list(fields), list(indexed), key_name,  # type: ignore[arg-type]
                                 getattr(cls, "REDIS_CONNECTION_PARAMS", None))


class IndexedRedisModel(metaclass=ModelBase):
    """Extend this to define a model; see the README for the class attributes."""

    FIELDS: ClassVar[Sequence[Any]] = []
    INDEXED_FIELDS: ClassVar[Sequence[Any]] = []
    KEY_NAME: ClassVar[str | None] = None
    REDIS_CONNECTION_PARAMS: ClassVar[dict[str, Any] | None] = None
    _connection: ClassVar[redis.Redis | None] = None
    _meta: ClassVar[ModelOptions]

    objects: ClassVar[_ObjectsDescriptor] = _ObjectsDescriptor()  # type: ignore[assignment]

    _id: int | None
    _orig: dict[str, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        meta = type(self)._meta
        if meta is None:
            raise InvalidModelException(f"{type(self).__name__} is abstract: it has no KEY_NAME and FIELDS")
        if args:
            raise TypeError(f"{meta.name}() takes field values as keyword arguments only")
        state = self.__dict__
        pk = kwargs.pop("_id", None)
        state["_id"] = None if pk is None else int(pk)
        state["_orig"] = {}
        for field in meta.fields:
            name = field.name
            if name in kwargs:
                state[name] = meta.to_python(field, kwargs.pop(name))
            else:
                state[name] = field.getDefaultValue()
        if kwargs:
            name = next(iter(kwargs))
            raise UnknownFieldError(
                f"{meta.name}() got {name!r}, which is not one of its fields "
                f"({', '.join(meta.field_names)}).{nearest(name, meta.field_names)}")

    def __setattr__(self, name: str, value: Any) -> None:
        meta = type(self)._meta
        field = meta.fields_by_name.get(name) if meta is not None else None
        if field is not None:
            value = meta.to_python(field, value)
        object.__setattr__(self, name, value)

    # ---- connection ----------------------------------------------------------------

    @classmethod
    def _get_class_client(cls) -> redis.Redis:
        if cls._connection is not None:
            return raw_client(cls._connection)
        stamp = default_stamp()
        cached = cls.__dict__.get("_client_cache")
        if cached is not None and cached[0] == stamp:
            return cached[1]
        params = getDefaultRedisConnectionParams()
        if cls._meta is not None and cls._meta.connection_params:
            params.update(cls._meta.connection_params)
        client = getRedisConnection(params)
        type.__setattr__(cls, "_client_cache", (stamp, client))
        return client

    @classmethod
    def _get_client(cls) -> redis.Redis:
        return cls._get_class_client()

    def _get_instance_client(self) -> redis.Redis:
        own = self.__dict__.get("_connection")
        return raw_client(own) if own is not None else type(self)._get_class_client()

    def _context(self, client: redis.Redis) -> Context:
        return Context(type(self)._meta, generation_cache(client))

    # ---- instance API --------------------------------------------------------------

    def save(self) -> int:
        """Insert or update this object in one atomic step; returns its primary key.

        Only fields that changed since the object was fetched or last saved are written.
        """
        client = self._get_instance_client()
        return run(client, save_flow(self._context(client), [self]))[0]

    def delete(self) -> bool:
        """Delete this object; returns whether it was stored.  It keeps its values."""
        if self._id is None:
            return False
        client = self._get_instance_client()
        deleted = run(client, delete_flow(self._context(client), [(self._id, self._orig)]))
        self.__dict__["_id"] = None
        self.__dict__["_orig"] = {}
        return bool(deleted)

    def getPk(self) -> int | None:
        """The primary key, or None if the object was never saved."""
        return self._id

    def asDict(self, includeMeta: bool = False, forStorage: bool = False,
               strKeys: bool = False) -> dict[str, Any]:
        """A plain dict of field name -> value (with ``_id`` when ``includeMeta``)."""
        meta = type(self)._meta
        state = self.__dict__
        if forStorage:
            result: dict[str, Any] = dict(meta.storage_of(self))
        else:
            result = {name: state[name] for name in meta.field_names}
        if includeMeta:
            result["_id"] = self._id
        return result

    def __repr__(self) -> str:
        meta = type(self)._meta
        values = ", ".join(f"{name}={self.__dict__[name]!r}" for name in meta.field_names)
        return f"<{meta.name} _id={self._id!r} {values}>"

    # ---- class API -----------------------------------------------------------------

    @classmethod
    def reset(cls: type[M], newObjs: Sequence[M]) -> list[int]:
        """Atomically replace every stored object of this model with ``newObjs``.

        Readers see either the whole old dataset or the whole new one, never a mix
        and never nothing; the server never stalls, whatever the size.  Objects keep
        their pk if they have one, and get a new one otherwise.
        """
        objs = list(newObjs)
        for obj in objs:
            if not isinstance(obj, cls):
                raise TypeError(
                    f"{cls.__name__}.reset expects {cls.__name__} objects, got {type(obj).__name__}")
        client = cls._get_client()
        return run(client, reset_flow(Context(cls._meta, generation_cache(client)), objs))


def isIndexedRedisModel(model: Any) -> bool:
    """Whether ``model`` is an IndexedRedisModel subclass or instance."""
    klass = model if isinstance(model, type) else type(model)
    return issubclass(klass, IndexedRedisModel)
