"""``IndexedRedisModel``: the class users extend.

The metaclass reads ``FIELDS``, ``INDEXED_FIELDS``, ``KEY_NAME`` and
``REDIS_CONNECTION_PARAMS`` into ``cls._meta`` and rejects an invalid model when the
class statement runs.  Instances keep their field values as plain attributes, plus
``_id`` (the primary key, None until saved) and ``_orig`` (the stored record as last
read or written), from which ``save()`` works out what changed.
"""

from __future__ import annotations

import copy as _copy
import itertools
import sys
import warnings
import weakref
from collections.abc import Iterable, Iterator, Sequence
from pprint import pprint as _pprint
from typing import IO, TYPE_CHECKING, Any, ClassVar, TypeVar

from .compat import COMPAT_ENV_VAR, compat6
from .connection import (
    SYNC_ROUTER,
    async_client_key,
    async_client_of,
    default_stamp,
    getDefaultRedisConnectionParams,
    getRedisConnection,
    loop_client,
    sync_client_of,
)
from .dispatch import run_async, run_sync
from .display import describe
from .drivers.runner import run
from .entries import same_stored
from .exceptions import InvalidModelException, SharedKeysWarning, UnknownFieldError
from .fields import irNull
from .fields.links import ForeignLink, ForeignLinks
from .flows import delete, drop, links, reload, reset, reset_stream, save
from .flows.common import RESET_BATCH
from .flows.context import Context
from .foreign import resolve
from .jsonvalues import json_value
from .names import nearest
from .options import ModelOptions, checked_meta
from .query import QuerySet, as_pk
from .state import SHARED, read_only_error
from .typed import Field, TypedRules, dataclass_transform, read_declaration

__all__ = ["IndexedRedisModel", "isIndexedRedisModel", "toggleDeprecatedMessages", "validatedModels"]

M = TypeVar("M", bound="IndexedRedisModel")

_deprecation_messages = True
_copy_counter = itertools.count(1)

#: Every concrete model class defined so far (6.x kept this name; models are validated
#: when their class statement runs, so this is simply the set of model classes).
validatedModels: set[type] = set()


def toggleDeprecatedMessages(enabled: bool) -> None:
    """Turn the DeprecationWarnings of 6.x-era names (like ``connect``) on or off."""
    global _deprecation_messages
    _deprecation_messages = bool(enabled)


def _deprecated(message: str) -> None:
    if _deprecation_messages:
        warnings.warn(message, DeprecationWarning, stacklevel=3)


def _stored_value(field: Any, stored: Any) -> Any:
    """The value a stored form stands for: the field's default when that is what is
    stored (so a default that does not read back as itself, like IRRawField's ``''``,
    which reads back as ``b''``, is reported as it was), else what fetching gives."""
    default = field.getDefaultValue()
    return default if same_stored(stored, field.toStorage(default)) else field.fromStorage(stored)


class PrimaryKey(int):
    """What ``save()`` returns: the pk, an ``int``.

    IndexedRedis 6.x returned a one-element list of pks, so ``pk[0]``, ``len(pk)``,
    ``in`` and iteration work too, and adding two of them (or one and a list)
    concatenates like 6.x's lists: ``a.save() + b.save() == [a._id, b._id]``.  Adding
    an ``int`` is arithmetic as usual.
    """

    def __getitem__(self, index: int | slice) -> Any:
        return [int(self)][index]

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[int]:
        return iter([int(self)])

    def __contains__(self, item: object) -> bool:
        return item == int(self)

    def __add__(self, other: Any) -> Any:  # type: ignore[override]
        if isinstance(other, (PrimaryKey, list)):
            return [int(self), *other]
        return int.__add__(self, other)

    def __radd__(self, other: Any) -> Any:  # type: ignore[override]
        if isinstance(other, list):
            return [*other, int(self)]
        return int.__radd__(self, other)


class FieldList(list):  # type: ignore[type-arg]
    """A model's ``FIELDS`` after definition: the field objects, also found by name
    (``Model.FIELDS['price']``), as in 6.x."""

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            for field in self:
                if field == key:
                    return field
            raise KeyError(key)
        return super().__getitem__(key)


class _ObjectsAccessor:
    """``Model.objects``: a fresh ``QuerySet`` of the model it is read on (typed by it:
    ``Song.objects`` is a ``QuerySet[Song]``)."""

    def __get__(self, instance: object, owner: type[M]) -> QuerySet[M]:
        if owner._meta is None:
            checked_meta(owner)  # raises
        return QuerySet(owner)


class _ModelAccessor:
    """A class-level attribute computed from the model (``objects``, ``saver``, ``deleter``)."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory

    def __get__(self, instance: Any, owner: type[IndexedRedisModel]) -> Any:
        if owner._meta is None:
            checked_meta(owner)  # raises
        return self.factory(owner)


class ModelBase(type):
    def __init__(cls, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> None:
        super().__init__(name, bases, namespace)
        cls._meta = None  # type: ignore[assignment]
        cls._model_error = None  # type: ignore[assignment]
        if not bases or namespace.get("__module__") == __name__:
            return  # IndexedRedisModel itself
        try:
            meta = _read_model(cls, name)
        except InvalidModelException as exc:
            if not compat6():
                raise
            cls._model_error = exc  # type: ignore[assignment]  # 6.x: raised at first use
            return
        if meta is None:
            return  # an abstract intermediate base
        cls._meta = meta  # type: ignore[assignment]
        type.__setattr__(cls, "FIELDS", FieldList(meta.fields))
        rules = getattr(cls, "_typed_rules", None)
        if rules is not None and "_typed_rules" not in vars(cls):  # derived from a typed model (copyModel...)
            type.__setattr__(cls, "_typed_rules", rules.restricted_to(meta.field_names))
        validatedModels.add(cls)
        _warn_if_keys_are_shared(cls, meta)
        if meta.foreign_fields:
            for field in meta.foreign_fields:
                type.__setattr__(cls, field.name, field)
            type.__setattr__(cls, "__getattribute__", _resolving_getattribute)


_models_by_keys: weakref.WeakValueDictionary[tuple[bytes, str], Any] = weakref.WeakValueDictionary()


def _warn_if_keys_are_shared(cls: Any, meta: ModelOptions) -> None:
    """Warn when another live model class already uses these keys, unless one derives
    from the other (``copyModel``, ``connectAlt``, a subclass) or it is the same class
    defined again (a reloaded module)."""
    where = (meta.keys.prefix, repr(sorted((meta.connection_params or {}).items())))
    other = _models_by_keys.get(where)
    if other is None:
        _models_by_keys[where] = cls
        return
    if issubclass(cls, other) or issubclass(other, cls) or (
            other.__module__, other.__qualname__) == (cls.__module__, cls.__qualname__):
        return
    warnings.warn(f"Model {cls.__qualname__} ({cls.__module__}) uses the keys of model {other.__qualname__} "
                  f"({other.__module__}): KEY_NAME {meta.keys.tag!r}; each would read and overwrite the other's "
                  f"records. Give one another KEY_NAME (or a KEY_GROUP), or derive it with copyModel / connectAlt",
                  SharedKeysWarning, stacklevel=3)


def _read_model(cls: Any, name: str) -> ModelOptions | None:
    """The metadata of a model class (None for an abstract base); raises
    InvalidModelException naming what is wrong."""
    declared = read_declaration(cls, name, IndexedRedisModel)
    if declared is not None:  # typed attributes (typed.py)
        type.__setattr__(cls, "_typed_rules", declared.rules)
        if declared.abstract:
            return None
        type.__setattr__(cls, "INDEXED_FIELDS", list(declared.indexed))
        type.__setattr__(cls, "UNIQUE_FIELDS", list(declared.unique))
        return _options(cls, declared.fields, declared.indexed, declared.unique)
    fields = getattr(cls, "FIELDS", None)
    key_name = getattr(cls, "KEY_NAME", None)
    if not fields and key_name is None:
        return None
    if fields is None or isinstance(fields, (str, bytes)) or not isinstance(fields, Iterable):
        raise InvalidModelException(f"Model {name}: FIELDS must be a list of field names or IRFields")
    indexed = getattr(cls, "INDEXED_FIELDS", None) or ()
    if isinstance(indexed, (str, bytes)):
        raise InvalidModelException(f"Model {name}: INDEXED_FIELDS must be a list of field names")
    for legacy, replacement in (("BINARY_FIELDS", "IRBytesField"), ("BASE64_FIELDS", "IRBase64Field")):
        if getattr(cls, legacy, None):
            raise InvalidModelException(
                f"Model {name}: {legacy} is no longer supported (removed in IndexedRedis 5); "
                f"put {replacement} objects in FIELDS instead")
    return _options(cls, list(fields), list(indexed), getattr(cls, "UNIQUE_FIELDS", None) or ())


def _options(cls: Any, fields: list[Any], indexed: list[Any], unique: Any) -> ModelOptions:
    return ModelOptions(cls, fields, indexed, getattr(cls, "KEY_NAME", None),
                        getattr(cls, "REDIS_CONNECTION_PARAMS", None),
                        unique=unique,
                        lex=getattr(cls, "LEX_INDEXED_FIELDS", None) or (),
                        key_group=getattr(cls, "KEY_GROUP", None),
                        wait=getattr(cls, "WAIT_REPLICAS", 0),
                        wait_timeout_ms=getattr(cls, "WAIT_TIMEOUT_MS", 1000),
                        client_cache=getattr(cls, "CLIENT_CACHE", None),
                        ttl=getattr(cls, "TTL", None),
                        base=IndexedRedisModel)


def _resolving_getattribute(self: Any, name: str) -> Any:
    """``__getattribute__`` of models with link fields: reading a link field gives the
    linked object(s), fetched on first access.  The instance keeps the link itself
    (``object.__getattribute__(obj, name)`` gives it, as in 6.x)."""
    value = object.__getattribute__(self, name)
    kind = type(value)
    if kind is ForeignLink or kind is ForeignLinks:
        return resolve(type(self)._meta.fields_by_name[name], value, self)
    return value


class _StoredRecord:
    """``obj._orig``: the stored record as last read or written, field name -> stored
    value.  A fetch keeps it in the raw form it arrived in (the record's values in FIELDS
    order, then its schema tag: a tuple) and it becomes a dict the first time it is
    asked for, since most fetched objects are only read, never compared or saved."""

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        orig = obj.__dict__["_orig"]
        if type(orig) is tuple:
            orig = obj.__dict__["_orig"] = dict(zip(type(obj)._meta.field_names, orig))
        return orig

    def __set__(self, obj: Any, value: dict[str, Any]) -> None:
        obj.__dict__["_orig"] = value


@dataclass_transform(kw_only_default=True, field_specifiers=(Field,))
class IndexedRedisModel(metaclass=ModelBase):
    """Extend this to define a model; see the README for the class attributes, and
    ``typed.py`` for the typed declaration style (``artist: str = Field(index=True)``)."""

    FIELDS: ClassVar[Sequence[Any]] = []
    INDEXED_FIELDS: ClassVar[Sequence[Any]] = []
    KEY_NAME: ClassVar[str | None] = None
    REDIS_CONNECTION_PARAMS: ClassVar[dict[str, Any] | None] = None
    UNIQUE_FIELDS: ClassVar[Sequence[str]] = []
    LEX_INDEXED_FIELDS: ClassVar[Sequence[str]] = []
    KEY_GROUP: ClassVar[str | None] = None
    WAIT_REPLICAS: ClassVar[int] = 0
    WAIT_TIMEOUT_MS: ClassVar[int] = 1000
    CLIENT_CACHE: ClassVar[bool | int | dict[str, int] | None] = None
    #: Expiry (see expiry.py): seconds (every save renews it), True (per save only), None.
    TTL: ClassVar[float | bool | None] = None
    _connection: Any = None  # a redis.Redis, redis.asyncio.Redis or cluster client (class or instance)
    _meta: ClassVar[ModelOptions]
    #: The InvalidModelException of a broken model whose error the 6.x switch deferred
    #: to first use (see ``compat``); None otherwise.
    _model_error: ClassVar[InvalidModelException | None] = None

    #: A typed model's run-time promises (``typed.TypedRules``); None for FIELDS-style models.
    _typed_rules: ClassVar[TypedRules | None] = None

    objects = _ObjectsAccessor()
    saver: ClassVar[ModelSaver] = _ModelAccessor(lambda model: ModelSaver(model))  # type: ignore[assignment]
    deleter: ClassVar[ModelDeleter] = _ModelAccessor(  # type: ignore[assignment]
        lambda model: ModelDeleter(model))

    _id: int | None
    _orig: dict[str, Any] = _StoredRecord()  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        meta = type(self)._meta
        if meta is None:
            meta = checked_meta(type(self))
        if args:
            raise TypeError(f"{meta.name}() takes field values as keyword arguments only")
        state = self.__dict__
        pk = kwargs.pop("_id", None)
        state["_id"] = None if pk is None else int(pk)
        state["_orig"] = {}
        rules = type(self)._typed_rules
        if rules is not None:
            rules.check_init(meta.name, kwargs)
        for name, field, plain in meta.init_fields:
            if name in kwargs:
                value = kwargs.pop(name)
                # ASCII text for a plain text field is stored as it is (what fromInput
                # returns for it): the common case skips the conversion's call chain
                state[name] = value if plain and type(value) is str and value.isascii() \
                    else meta.to_python(field, value)
            else:
                state[name] = field.getDefaultValue()
        if kwargs:
            if compat6():
                warnings.warn(f"{meta.name}() ignores {', '.join(map(repr, kwargs))}: not one of its fields "
                              f"({', '.join(meta.field_names)}); IndexedRedis 6.x behaviour, kept by "
                              f"{COMPAT_ENV_VAR}=6 (without it this raises UnknownFieldError)",
                              DeprecationWarning, stacklevel=2)
                return
            name = next(iter(kwargs))
            raise UnknownFieldError(
                f"{meta.name}() got {name!r}, which is not one of its fields "
                f"({', '.join(meta.field_names)}).{nearest(name, meta.field_names)}")

    def _checked_setattr(self, name: str, value: Any) -> None:
        meta = type(self)._meta
        field = meta.fields_by_name.get(name) if meta is not None else None
        if field is not None:
            if SHARED in self.__dict__:
                raise read_only_error(self, name)
            if value is None or value is irNull:
                rules = type(self)._typed_rules
                if rules is not None and name in rules.not_null:
                    raise rules.null_error(meta.name, name, value)
            value = meta.to_python(field, value)
        object.__setattr__(self, name, value)

    def _link_pk_getattr(self, name: str) -> Any:
        # Only reached for missing attributes: ``<link field>__id`` gives the linked pk(s).
        if name.endswith("__id") and not name.startswith("__"):
            meta = type(self)._meta
            field = meta.fields_by_name.get(name[:-4]) if meta is not None else None
            if field is not None and field in meta.foreign_fields:
                value = self.__dict__.get(field.name, irNull)
                if value is irNull:
                    return irNull
                return value.pks() if isinstance(value, ForeignLinks) else value.current_pk()
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # Hidden from type checkers: with them, any attribute name would pass (``p.nmae``);
    # without them, typed models' attributes are checked (FIELDS-style ones are unknown).
    if not TYPE_CHECKING:
        __setattr__ = _checked_setattr
        __getattr__ = _link_pk_getattr

    # ---- connection ----------------------------------------------------------------

    @classmethod
    def _params(cls) -> dict[str, Any]:
        params = getDefaultRedisConnectionParams()
        if cls._meta is not None and cls._meta.connection_params:
            params.update(cls._meta.connection_params)
        return params

    @classmethod
    def _get_class_client(cls) -> Any:
        if cls._connection is not None:
            return sync_client_of(cls._connection)
        stamp = default_stamp()
        cached = cls.__dict__.get("_client_cache")
        if cached is not None and cached[0] == stamp:
            return cached[1]
        client = getRedisConnection(cls._params())
        type.__setattr__(cls, "_client_cache", (stamp, client))
        return client

    @classmethod
    def _get_client(cls) -> Any:
        """The sync client of this model's data."""
        return cls._get_class_client()

    @classmethod
    def _get_async_client(cls) -> Any:
        """The asyncio client of this model's data, for the running event loop."""
        if cls._connection is not None:
            return async_client_of(cls._connection)
        stamp = default_stamp()
        cached = cls.__dict__.get("_async_params_cache")
        if cached is None or cached[0] != stamp:
            params = cls._params()
            cached = (stamp, params, async_client_key(params))
            type.__setattr__(cls, "_async_params_cache", cached)
        return loop_client(cached[1], cached[2])

    def _get_instance_client(self) -> Any:
        own = self.__dict__.get("_connection")
        return sync_client_of(own) if own is not None else type(self)._get_class_client()

    def _get_instance_async_client(self) -> Any:
        own = self.__dict__.get("_connection")
        return async_client_of(own) if own is not None else type(self)._get_async_client()

    # ---- values --------------------------------------------------------------------

    def _stored(self, name: str) -> Any:
        meta = type(self)._meta
        field = meta.fields_by_name[name]
        return field.toStorage(meta.to_python(field, self.__dict__.get(name, field.getDefaultValue())))

    def asDict(self, includeMeta: bool = False, forStorage: bool = False,
               strKeys: bool = False, forJSON: bool = False) -> dict[str, Any]:
        """A plain dict of field name -> value (with ``_id`` when ``includeMeta``).

        Foreign links appear as the linked pk (a list of pks for multi-links).
        ``forStorage`` gives the stored forms instead.  Keys are always plain ``str``
        (``strKeys`` is accepted for 6.x compatibility).  ``forJSON`` gives values that
        ``json.dumps`` takes: irNull -> None, datetimes -> ISO 8601, bytes -> base64,
        Decimal -> its text (see jsonvalues.py).
        """
        meta = type(self)._meta
        state = self.__dict__
        if forJSON:
            if forStorage:
                raise ValueError(f"{meta.name}.asDict: forJSON and forStorage cannot be combined")
            safe = {name: json_value(state[name]) for name in meta.field_names}
            if includeMeta:
                safe["_id"] = self._id
            return safe
        if forStorage:
            result: dict[str, Any] = dict(meta.storage_of(self))
        else:
            result = {}
            for name in meta.field_names:
                value = state[name]
                if isinstance(value, ForeignLink):
                    value = value.current_pk()
                elif isinstance(value, ForeignLinks):
                    value = value.pks()
                result[name] = value
        if includeMeta:
            result["_id"] = self._id
        return result

    toDict = asDict

    def pprint(self, stream: IO[str] | None = None) -> None:
        """Pretty-print ``asDict(includeMeta=True)`` to ``stream`` (stdout by default)."""
        _pprint(self.asDict(includeMeta=True), stream=stream or sys.stdout)

    def getUpdatedFields(self, cascadeObjects: bool = False) -> dict[str, tuple[Any, Any]]:
        """Fields changed since the object was fetched or saved: name -> (old, new).

        With ``cascadeObjects``, a link whose linked object has unsaved changes (at any
        depth) counts as changed too.
        """
        return self._updated_fields(cascadeObjects, {id(self)})

    def _updated_fields(self, cascade: bool, seen: set[int]) -> dict[str, tuple[Any, Any]]:
        meta = type(self)._meta
        orig = self._orig
        changed: dict[str, tuple[Any, Any]] = {}
        for field in meta.fields:
            name = field.name
            current = self.__dict__.get(name, field.getDefaultValue())
            if name in orig:
                if same_stored(orig[name], self._stored(name)):
                    continue
                old = _stored_value(field, orig[name])
            else:
                old = field.getDefaultValue()
                if same_stored(field.toStorage(old), self._stored(name)):
                    continue
            changed[name] = (old, current)
        if cascade:
            for field in meta.foreign_fields:
                value = self.__dict__.get(field.name)
                if field.name not in changed and isinstance(value, (ForeignLink, ForeignLinks)) and any(
                        linked._unsaved(True, seen) for linked in value.objects()):
                    changed[field.name] = (value, value)
        return changed

    def hasUnsavedChanges(self, cascadeObjects: bool = False) -> bool:
        """Whether the object was never saved, or has changes not saved yet (with
        ``cascadeObjects``: or an object it links to, at any depth, has)."""
        return self._unsaved(cascadeObjects, set())

    def _unsaved(self, cascade: bool, seen: set[int]) -> bool:
        if id(self) in seen:
            return False  # a cycle: this object is being answered for further up
        seen.add(id(self))
        return self._id is None or not self._orig or bool(self._updated_fields(cascade, seen))

    def diff(firstObj, otherObj: IndexedRedisModel, includeMeta: bool = False) -> dict[str, tuple[Any, Any]]:
        """Fields whose values differ: name -> (value on first, value on other).

        Works as ``a.diff(b)`` and as ``Model.diff(a, b)``.
        """
        first_meta, other_meta = type(firstObj)._meta, type(otherObj)._meta
        result: dict[str, tuple[Any, Any]] = {}
        for name in first_meta.field_names:
            if name not in other_meta.fields_by_name:
                result[name] = (firstObj.__dict__.get(name), irNull)
            elif not same_stored(firstObj._stored(name), otherObj._stored(name)):
                result[name] = (firstObj.__dict__.get(name), otherObj.__dict__.get(name))
        for name in other_meta.field_names:
            if name not in first_meta.fields_by_name:
                result[name] = (irNull, otherObj.__dict__.get(name))
        if includeMeta and firstObj._id != otherObj._id:
            result["_id"] = (firstObj._id, otherObj._id)
        return result

    def hasSameValues(self, other: IndexedRedisModel, cascadeObject: bool = True) -> bool:
        """Whether ``other`` has the same field values (the pk is not compared).

        With ``cascadeObject``, linked objects held in memory must have the same values too.
        """
        return self._same_values(other, cascadeObject, set())

    def _same_values(self, other: IndexedRedisModel, cascade: bool, compared: set[tuple[int, int]]) -> bool:
        if (id(self), id(other)) in compared:
            return True  # a cycle: this pair is being compared further up
        compared.add((id(self), id(other)))
        if type(self)._meta.field_names != type(other)._meta.field_names or self.diff(other):
            return False
        if cascade:
            for field in type(self)._meta.foreign_fields:
                mine, theirs = self.__dict__.get(field.name), other.__dict__.get(field.name)
                links = (ForeignLink, ForeignLinks)
                if isinstance(mine, links) and isinstance(theirs, links):
                    for a, b in zip(mine.objects(), theirs.objects(), strict=False):
                        if a is not b and not a._same_values(b, True, compared):
                            return False
        return True

    def __eq__(self, other: object) -> bool:
        """Same model, same pk and the same values."""
        if type(other) is not type(self):
            return False
        assert isinstance(other, IndexedRedisModel)
        return self._id == other._id and self.hasSameValues(other, cascadeObject=False)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((type(self).__qualname__, self._id))

    def __repr__(self) -> str:
        """``<Song _id=3 artist='Pink Floyd' title='Time' ...>`` (see display.py)."""
        return describe(self)

    def __str__(self) -> str:
        """``repr``, saying ``(unsaved changes)`` for a stored object changed since read."""
        return describe(self, changes=True)

    # ---- copying and pickling --------------------------------------------------------

    def copy(self: M, copyPrimaryKey: bool = False, copyValues: bool = False) -> M:
        """A copy of this object.

        With ``copyPrimaryKey`` the copy is the same stored object (saving it updates
        this one's record); otherwise it is new and unsaved.  With ``copyValues`` the
        values are deep-copied; otherwise mutable values are shared.
        """
        meta = type(self)._meta
        clone = type(self).__new__(type(self))
        state = clone.__dict__
        for name in meta.field_names:
            value = self.__dict__.get(name)
            state[name] = _copy.deepcopy(value) if copyValues else value
        state["_id"] = self._id if copyPrimaryKey else None
        state["_orig"] = dict(self._orig) if copyPrimaryKey else {}
        return clone

    def __copy__(self: M) -> M:
        return self.copy(copyPrimaryKey=False, copyValues=False)

    def __deepcopy__(self: M, memo: Any) -> M:
        return self.copy(copyPrimaryKey=False, copyValues=True)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_orig"] = self._orig  # as a dict: the raw form needs this model's field list
        state.pop("_connection", None)  # a client does not travel
        state.pop(SHARED, None)  # an unpickled copy is its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @property
    def _origData(self) -> dict[str, Any]:
        """6.x's record of the values as last fetched or saved (field name -> value):
        a fresh dict of them, decoded from the stored record."""
        fields = type(self)._meta.fields_by_name
        return {name: fields[name].fromStorage(stored) for name, stored in self._orig.items() if name in fields}

    # ---- storage ---------------------------------------------------------------------

    def save(self, cascadeSave: bool = True, ifUnchanged: bool = False, ttl: float | None = None) -> int:
        """Insert or update this object in one atomic step; returns its primary key.

        Only fields changed since the object was fetched or last saved are written.
        With ``cascadeSave``, linked objects held in memory that are new or changed are
        saved in the same atomic step; without it, a link to an unsaved object is
        stored as no link.

        An object another process deleted is stored again by a plain save.  With
        ``ifUnchanged`` (optimistic locking), the save writes only if the stored record
        is still the one this object was read from (or last saved as), and otherwise
        raises ``ConflictError``, writing nothing: another writer changed it, or
        deleted it.  (Every object of the save is checked, linked ones too.)

        On a model with ``TTL``, ``ttl`` (seconds; 0: never) is when the object expires,
        from now; None: the model's ``TTL`` (see README, Expiry (TTL)).
        """
        return PrimaryKey(run_sync(self, lambda ctx: save.save_objects_flow(ctx, [self], cascadeSave,
                                                                            ifUnchanged, ttl))[0])

    async def asave(self, cascadeSave: bool = True, ifUnchanged: bool = False, ttl: float | None = None) -> int:
        """``save``, awaitable."""
        return PrimaryKey((await run_async(self, lambda ctx: save.save_objects_flow(ctx, [self], cascadeSave,
                                                                                    ifUnchanged, ttl)))[0])

    def delete(self) -> bool:
        """Delete this object; returns whether it was stored.  It keeps its values."""
        return bool(run_sync(self, lambda ctx: delete.delete_objects_flow(ctx, [self])))

    async def adelete(self) -> bool:
        """``delete``, awaitable."""
        return bool(await run_async(self, lambda ctx: delete.delete_objects_flow(ctx, [self])))

    def getPk(self) -> int | None:
        """The primary key, or None if the object was never saved."""
        return self._id

    def reload(self, cascadeObjects: bool = True) -> dict[str, tuple[Any, Any]]:
        """Replace this object's values with the stored ones; returns name -> (old, new)
        for each field that changed.  Raises KeyError if it has no pk or no longer exists.

        With ``cascadeObjects``, linked objects held in memory that have unsaved
        changes are reloaded too.
        """
        return run_sync(self, lambda ctx: reload.reload_flow(ctx, self, cascadeObjects))

    async def areload(self, cascadeObjects: bool = True) -> dict[str, tuple[Any, Any]]:
        """``reload``, awaitable."""
        return await run_async(self, lambda ctx: reload.reload_flow(ctx, self, cascadeObjects))

    def cascadeFetch(self) -> None:
        """Fetch every linked object now (and theirs, and so on), one round trip per level."""
        run_sync(self, lambda ctx: links.links_flow(ctx, [self]))

    async def acascadeFetch(self) -> None:
        """``cascadeFetch``, awaitable."""
        await run_async(self, lambda ctx: links.links_flow(ctx, [self]))

    def fetchLink(self, fieldName: str) -> Any:
        """Fetch the object(s) a link field names (if not fetched yet); returns what
        reading the attribute gives: the object, irNull, or a list for a multi-link."""
        run_sync(self, lambda ctx: links.links_flow(ctx, [self], self._link_field(fieldName).name, deep=False))
        return getattr(self, fieldName)

    async def afetchLink(self, fieldName: str) -> Any:
        """``fetchLink``, awaitable: how async code reads a link (a lazy attribute
        cannot fetch inside a running event loop)."""
        await run_async(self, lambda ctx: links.links_flow(ctx, [self], self._link_field(fieldName).name,
                                                          deep=False))
        return getattr(self, fieldName)

    def _link_field(self, name: str) -> Any:
        meta = type(self)._meta
        for field in meta.foreign_fields:
            if field.name == name:
                return field
        links = ", ".join(f.name for f in meta.foreign_fields) or "none"
        raise UnknownFieldError(f"{meta.name} has no link field {name!r} (its link fields: {links})."
                                f"{nearest(name, [f.name for f in meta.foreign_fields])}")

    def isFetched(self, fieldName: str) -> bool:
        """Whether a link field's object(s) are in memory (reading it needs no fetch)."""
        self._link_field(fieldName)
        value = self.__dict__.get(fieldName, irNull)
        return value.isFetched() if isinstance(value, (ForeignLink, ForeignLinks)) else True

    def saveToExternal(self, redisCon: Any) -> int:
        """Save a copy of this object to another Redis, as a new object there.

        ``redisCon`` is a client or a dict of ``redis.Redis`` arguments.  Returns the pk
        in that Redis; this object is not changed.
        """
        if isinstance(redisCon, dict):
            client = getRedisConnection({**getDefaultRedisConnectionParams(), **redisCon})
        else:
            client = sync_client_of(redisCon)
        clone = self.copy(copyPrimaryKey=False, copyValues=False)
        return run(client, save.save_flow(Context(type(self)._meta, client, SYNC_ROUTER), [clone]))[0]

    # ---- class API -----------------------------------------------------------------

    @classmethod
    def reset(cls: type[M], newObjs: Iterable[M], batchSize: int = RESET_BATCH) -> Any:
        """Atomically replace every stored object of this model with ``newObjs``.

        Readers see either the whole old dataset or the whole new one, never a mix
        and never nothing; the server never stalls, whatever the size.  A list (any
        sequence) keeps the pks of objects that have one and returns every object's pk.
        Any other iterable (a generator, a database cursor) is streamed: one batch of
        ``batchSize`` objects is held at a time, its objects must be new, and the number
        of objects is returned.
        """
        if isinstance(newObjs, Sequence):
            objs = list(newObjs)
            return run_sync(cls, lambda ctx: reset.reset_objects_flow(ctx, objs))
        return run_sync(cls, lambda ctx: reset_stream.reset_stream_flow(ctx, newObjs, batchSize)).count

    @classmethod
    async def areset(cls: type[M], newObjs: Iterable[M], batchSize: int = RESET_BATCH) -> Any:
        """``reset``, awaitable (an iterable is streamed as with ``reset``)."""
        if isinstance(newObjs, Sequence):
            objs = list(newObjs)
            return await run_async(cls, lambda ctx: reset.reset_objects_flow(ctx, objs))
        return (await run_async(cls, lambda ctx: reset_stream.reset_stream_flow(ctx, newObjs, batchSize))).count

    @classmethod
    def copyModel(cls: type[M]) -> type[M]:
        """An independent copy of this model class (fresh copies of its fields), using
        the same KEY_NAME: load with one and save with the other when converting."""
        namespace = {
            "FIELDS": [field.copy() for field in cls._meta.fields],
            "INDEXED_FIELDS": list(cls._meta.indexed_names),
            "KEY_NAME": cls._meta.key_name,
            "__module__": cls.__module__,
            "__qualname__": f"{cls.__qualname__}Copy{next(_copy_counter)}",
        }
        metaclass: Any = type(cls)
        return metaclass(namespace["__qualname__"], (cls,), namespace)  # type: ignore[no-any-return]

    @classmethod
    def connectAlt(cls: type[M], redisConnectionParams: dict[str, Any]) -> type[M]:
        """A copy of this model class that uses other connection params (laid over this
        model's own): the same data layout, on another Redis or db."""
        if not isinstance(redisConnectionParams, dict):
            raise TypeError("connectAlt expects a dict of redis.Redis arguments")
        params = {**(cls._meta.connection_params or {}), **redisConnectionParams}
        namespace = {"REDIS_CONNECTION_PARAMS": params, "_connection": None, "__module__": cls.__module__,
                     "__qualname__": cls.__qualname__}
        metaclass: Any = type(cls)
        return metaclass(cls.__name__, (cls,), namespace)  # type: ignore[no-any-return]

    @classmethod
    def connect(cls: type[M], redisConnectionParams: dict[str, Any]) -> type[M]:
        """Deprecated name of ``connectAlt``."""
        _deprecated("IndexedRedisModel.connect is deprecated; use connectAlt")
        return cls.connectAlt(redisConnectionParams)

    @classmethod
    def validateModel(cls) -> bool:
        """True for a valid model; raises InvalidModelException for an abstract or broken
        one.  Models are validated when their class is defined, and a broken one raises
        there, unless the 6.x switch deferred its error to this call and its first use."""
        checked_meta(cls)
        return True


class ModelSaver:
    """``Model.saver``: saving several objects at once."""

    def __init__(self, model: type[IndexedRedisModel]) -> None:
        self.model = model

    def save(self, obj: IndexedRedisModel | Sequence[IndexedRedisModel],
             cascadeSave: bool = True, ifUnchanged: bool = False, ttl: float | None = None) -> int | list[int]:
        """Save one object, or a list of objects in ONE atomic step; returns the pk(s).
        ``ifUnchanged``: as for ``obj.save`` (if any object's stored record changed,
        ConflictError and nothing of the list is written); ``ttl``: as for ``obj.save``,
        for every object given."""
        if isinstance(obj, IndexedRedisModel):
            return obj.save(cascadeSave=cascadeSave, ifUnchanged=ifUnchanged, ttl=ttl)
        objs = list(obj)
        return run_sync(self.model, lambda ctx: save.save_objects_flow(ctx, objs, cascadeSave, ifUnchanged, ttl))

    async def asave(self, obj: IndexedRedisModel | Sequence[IndexedRedisModel],
                    cascadeSave: bool = True, ifUnchanged: bool = False,
                    ttl: float | None = None) -> int | list[int]:
        """``save``, awaitable."""
        if isinstance(obj, IndexedRedisModel):
            return await obj.asave(cascadeSave=cascadeSave, ifUnchanged=ifUnchanged, ttl=ttl)
        objs = list(obj)
        return await run_async(self.model, lambda ctx: save.save_objects_flow(ctx, objs, cascadeSave, ifUnchanged,
                                                                             ttl))

    def saveMultiple(self, objs: Sequence[IndexedRedisModel], cascadeSave: bool = True,
                     ifUnchanged: bool = False) -> list[int]:
        """Save many objects, 1000 per atomic script call (with what they link to).
        ``ifUnchanged``: as for ``obj.save``, per batch (a conflict raises ConflictError
        with the earlier batches written and nothing of its own batch)."""
        objs = list(objs)
        return run_sync(self.model, lambda ctx: save.save_batches_flow(ctx, objs, cascadeSave, ifUnchanged))

    async def asaveMultiple(self, objs: Sequence[IndexedRedisModel], cascadeSave: bool = True,
                            ifUnchanged: bool = False) -> list[int]:
        """``saveMultiple``, awaitable."""
        objs = list(objs)
        return await run_async(self.model, lambda ctx: save.save_batches_flow(ctx, objs, cascadeSave, ifUnchanged))

    def reindex(self, objs: Sequence[IndexedRedisModel]) -> None:
        """Rewrite the index entries of these objects for the current INDEXED_FIELDS."""
        objs = list(objs)
        run_sync(self.model, lambda ctx: save.reindex_objects_flow(ctx, objs))


class ModelDeleter:
    """``Model.deleter``: deleting by object or pk, several at once, or everything."""

    def __init__(self, model: type[IndexedRedisModel]) -> None:
        self.model = model

    def deleteOne(self, obj: IndexedRedisModel) -> int:
        """Delete one object; returns 1 if it was stored, else 0."""
        return int(obj.delete())

    def deleteByPk(self, pk: Any) -> int:
        """Delete the object with this pk; returns 1 if it existed, else 0."""
        return self.deleteMultipleByPks([pk])

    async def adeleteByPk(self, pk: Any) -> int:
        """``deleteByPk``, awaitable."""
        return await self.adeleteMultipleByPks([pk])

    def deleteMultiple(self, objs: Iterable[IndexedRedisModel]) -> int:
        """Delete these objects (1000 per atomic step); returns how many existed."""
        objs = list(objs)
        return run_sync(self.model, lambda ctx: delete.delete_objects_flow(ctx, objs))

    async def adeleteMultiple(self, objs: Iterable[IndexedRedisModel]) -> int:
        """``deleteMultiple``, awaitable."""
        objs = list(objs)
        return await run_async(self.model, lambda ctx: delete.delete_objects_flow(ctx, objs))

    def deleteMultipleByPks(self, pks: Iterable[Any]) -> int:
        """Delete the objects with these pks; returns how many existed."""
        targets: list[tuple[int, dict[str, Any]]] = [(as_pk(pk, self.model), {}) for pk in pks]
        return run_sync(self.model, lambda ctx: delete.delete_batches_flow(ctx, targets))

    async def adeleteMultipleByPks(self, pks: Iterable[Any]) -> int:
        """``deleteMultipleByPks``, awaitable."""
        targets: list[tuple[int, dict[str, Any]]] = [(as_pk(pk, self.model), {}) for pk in pks]
        return await run_async(self.model, lambda ctx: delete.delete_batches_flow(ctx, targets))

    def destroyModel(self, full: bool = False) -> int:
        """Delete every object of the model (like ``reset([])``); returns how many.

        ``full``: drop every key of the model, its bookkeeping too (generation
        counters, pk counter, schemas, reset and refresh records), as if it had never
        been stored (see ``flows.drop``).  Done in bounded steps, each atomic; the drop
        as a whole is not atomic."""
        if full:
            return run_sync(self.model, drop.drop_flow)
        return run_sync(self.model, lambda ctx: reset.reset_flow(ctx, []))[1]

    async def adestroyModel(self, full: bool = False) -> int:
        """``destroyModel``, awaitable."""
        if full:
            return await run_async(self.model, drop.drop_flow)
        return (await run_async(self.model, lambda ctx: reset.reset_flow(ctx, [])))[1]


def isIndexedRedisModel(model: Any) -> bool:
    """Whether ``model`` is an IndexedRedisModel subclass or instance."""
    klass = model if isinstance(model, type) else type(model)
    return issubclass(klass, IndexedRedisModel)
