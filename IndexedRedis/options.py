"""A model's metadata (``Model._meta``): its fields, indexes and keys, read from the
class statement and checked there, plus the conversion between instances and stored
records that every operation shares."""

from __future__ import annotations

import datetime as _dt
import difflib
import gc
import os
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgpack

from .exceptions import FieldValueError, IndexedRedisError, InvalidModelException, UnknownFieldError
from .fields import NULL_STORED, IRClassicField, IRField, IRNullType, wire_bytes
from .keys import GenerationKeys, ModelKeys

if TYPE_CHECKING:
    from .model import IndexedRedisModel

__all__ = ["ModelOptions", "UnknownSchemas", "schema_tag"]

_packer = msgpack.Packer(use_bin_type=False)  # Redis's Lua cmsgpack knows no bin type


def schema_tag(names: Iterable[str]) -> int:
    """The tag that stored records carry for a list of field names (CRC-32 of the
    names): records are positional, and the tag says whose positions they follow."""
    return zlib.crc32("\0".join(names).encode("utf-8"))


class UnknownSchemas(Exception):
    """Records carry schema tags this process has not learned yet (records written by
    another version of the model); fetch them from the model's schemas hash."""

    def __init__(self, tags: set[int]) -> None:
        super().__init__(tags)
        self.tags = tags


def _unpack_all(blobs: bytes | Iterable[bytes]) -> list[Any]:
    """Many msgpack values at once, given concatenated or as a list: one streaming unpack
    (much cheaper per value than separate calls)."""
    if type(blobs) is tuple and len(blobs) == 1:  # one record (a get): no streaming needed
        return [msgpack.unpackb(blobs[0], raw=False, unicode_errors="surrogateescape", use_list=False)]
    unpacker = msgpack.Unpacker(raw=False, unicode_errors="surrogateescape", max_buffer_size=0,
                                use_list=False)
    unpacker.feed(blobs if isinstance(blobs, bytes) else b"".join(blobs))
    return list(unpacker)


def nearest(name: str, choices: Iterable[str]) -> str:
    """' Did you mean 'x'?' or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """What indexes one indexed field has.

    Every indexed field has a set per value (equality, IN, isnull).  A field ordered by
    number also has a sorted set scored by its value (ranges, ordering); a field in
    LEX_INDEXED_FIELDS a lexicographic one (prefixes, text ranges, ordering).
    UNIQUE_FIELDS are checked on every write.
    """

    field: IRField
    numeric: bool
    lex: bool
    unique: bool


class ModelOptions:
    """Everything IndexedRedis knows about one model class."""

    def __init__(self, model: type[IndexedRedisModel], fields: Iterable[Any],
                 indexed: Iterable[Any], key_name: Any,
                 connection_params: Mapping[str, Any] | None,
                 unique: Iterable[Any] = (), lex: Iterable[Any] = (), key_group: Any = None) -> None:
        self.model = model
        self.name = model.__name__
        if not isinstance(key_name, str) or not key_name:
            raise InvalidModelException(
                f"Model {self.name} needs KEY_NAME, a non-empty str naming its data "
                f"(like a table name); got {key_name!r}")
        try:
            key_name.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidModelException(
                f"Model {self.name}: KEY_NAME {key_name!r} is not valid Unicode text") from None
        self.key_name = key_name
        if key_group is not None and (not isinstance(key_group, str) or not key_group):
            raise InvalidModelException(
                f"Model {self.name}: KEY_GROUP must be a non-empty str naming the models that share one "
                f"Redis Cluster slot; got {key_group!r}")
        self.keys = ModelKeys(key_name, key_group)
        self.fields: tuple[IRField, ...] = tuple(self._make_field(f) for f in fields)
        if not self.fields:
            raise InvalidModelException(f"Model {self.name} has no FIELDS")
        self.fields_by_name: dict[str, IRField] = {}
        for field in self.fields:
            if field.name in self.fields_by_name:
                raise InvalidModelException(f"Model {self.name} lists field {field.name!r} twice in FIELDS")
            self.fields_by_name[field.name] = field
        self.field_names: tuple[str, ...] = tuple(self.fields_by_name)
        # Records are stored as msgpack arrays: the values in FIELDS order, then this
        # tag; the schemas hash maps tags to field lists, so records written by an
        # earlier version of the model stay readable.
        self.schema_tag = schema_tag(self.field_names)
        self.schema_blob: bytes = _packer.pack(list(self.field_names))
        self.schemas: dict[int, tuple[str, ...]] = {self.schema_tag: self.field_names}
        indexed_fields = self._named_fields("INDEXED_FIELDS", indexed)
        unique_fields = self._named_fields("UNIQUE_FIELDS", unique)
        lex_fields = self._named_fields("LEX_INDEXED_FIELDS", lex)
        for field in unique_fields + lex_fields:  # both need an index: add it if not listed
            if field not in indexed_fields:
                indexed_fields.append(field)
        for field in indexed_fields:
            if not field.canIndex():
                raise InvalidModelException(
                    f"Model {self.name}: field {field.name!r} ({type(field).__name__}) cannot be indexed")
        for field in lex_fields:
            if not field.isText():
                raise InvalidModelException(
                    f"Model {self.name}: LEX_INDEXED_FIELDS names {field.name!r}, but a lexicographic "
                    f"index needs a text field without hashIndex ({field!r} is not one)")
        self.indexed: tuple[IRField, ...] = tuple(indexed_fields)
        self.indexed_names: tuple[str, ...] = tuple(f.name for f in self.indexed)
        self.specs: dict[str, IndexSpec] = {
            f.name: IndexSpec(f, numeric=f.isNumeric(), lex=f in lex_fields, unique=f in unique_fields)
            for f in self.indexed}
        self.unique_names: tuple[str, ...] = tuple(f.name for f in unique_fields)
        if connection_params is not None and not isinstance(connection_params, Mapping):
            raise InvalidModelException(
                f"Model {self.name}: REDIS_CONNECTION_PARAMS must be a dict of redis.Redis arguments")
        self.connection_params = dict(connection_params) if connection_params else None
        # Fields whose stored form is the Python value itself skip fromStorage on fetch;
        # immutable defaults are shared instead of copied per object.
        self.decoders = tuple(
            (f.name, None if type(f) is IRClassicField else f.fromStorage,
             f.getDefaultValue() if _immutable(f.defaultValue) else f.getDefaultValue)
            for f in self.fields)
        self.check_attribute_clashes()
        self._field_set = set(self.field_names)
        self._plain_records = all(type(f) is IRClassicField for f in self.fields)
        # How storage_of turns each value into its stored form (see there).
        self._storers = tuple(
            (f, _AS_IS if type(f) is IRClassicField else _TRUSTED) for f in self.fields)
        from .foreign import IRForeignLinkFieldBase

        self.foreign_fields: tuple[IRForeignLinkFieldBase, ...] = tuple(
            f for f in self.fields if isinstance(f, IRForeignLinkFieldBase))
        from .model import IndexedRedisModel

        # A model with its own __init__ gets it called for fetched objects too, as in 6.x.
        self.custom_init = model.__init__ is not IndexedRedisModel.__init__

    def _named_fields(self, attribute: str, names: Iterable[Any]) -> list[IRField]:
        if isinstance(names, (str, bytes)):
            raise InvalidModelException(f"Model {self.name}: {attribute} must be a list of field names")
        found: list[IRField] = []
        for entry in names:
            name = str(entry)
            field = self.fields_by_name.get(name)
            if field is None:
                raise InvalidModelException(
                    f"Model {self.name}: {attribute} names {name!r}, which is not in FIELDS "
                    f"({', '.join(self.field_names)}).{nearest(name, self.field_names)}")
            if field in found:
                raise InvalidModelException(f"Model {self.name} lists {name!r} twice in {attribute}")
            found.append(field)
        return found

    def _make_field(self, spec: Any) -> IRField:
        if isinstance(spec, IRField):
            field = spec
        elif isinstance(spec, str):
            field = IRClassicField(spec)
        else:
            raise InvalidModelException(
                f"Model {self.name}: FIELDS entries must be names or IRField objects, got {spec!r}")
        name = field.name
        if not name.isidentifier() or name.startswith("_") or "__" in name:
            raise InvalidModelException(
                f"Model {self.name}: field name {name!r} must be a Python identifier that does "
                f"not start with '_' and has no '__' (the lookup separator)")
        field.validateForModel(self.name)
        return field

    def check_attribute_clashes(self) -> None:
        from .foreign import ForeignLinkDescriptor
        from .model import IndexedRedisModel

        base_names = {name for klass in IndexedRedisModel.__mro__ for name in vars(klass)}
        for name in self.field_names:
            if name in base_names:
                raise InvalidModelException(
                    f"Model {self.name}: field {name!r} would hide the model attribute of the "
                    f"same name; rename the field")
            for klass in self.model.__mro__:
                if klass is IndexedRedisModel:
                    break
                own = vars(klass).get(name)
                if name in vars(klass) and not isinstance(own, (IRField, ForeignLinkDescriptor)):
                    raise InvalidModelException(
                        f"Model {self.name}: field {name!r} clashes with attribute {name!r} "
                        f"defined on {klass.__name__}")

    # ---- stored records ------------------------------------------------------------

    def pack(self, record: Mapping[str, Any]) -> bytes:
        """A record (field name -> stored value, every field present) as stored."""
        values = [record[name] for name in self.field_names]
        values.append(self.schema_tag)
        return _packer.pack(values)

    def _arrays(self, blobs: bytes | Iterable[bytes]) -> list[tuple[Any, ...]]:
        """Unpacked records; raises UnknownSchemas when some were written with a field
        list this process has not seen (``learn_schemas`` it from the schemas hash, then
        call again)."""
        arrays = _unpack_all(blobs)
        if arrays:
            unknown = {values[-1] for values in arrays} - self.schemas.keys()
            if unknown:
                raise UnknownSchemas(unknown)
        return arrays

    def _dicts(self, arrays: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        tag, names, schemas = self.schema_tag, self.field_names, self.schemas
        return [dict(zip(names if values[-1] == tag else schemas[values[-1]], values))
                for values in arrays]

    def records(self, blobs: bytes | Iterable[bytes]) -> list[dict[str, Any]]:
        """Stored records (a list of them, or their concatenation) as dicts of field
        name -> stored value.  Raises UnknownSchemas (see ``_arrays``)."""
        return self._dicts(self._arrays(blobs))

    def instances(self, pks: Sequence[int], blobs: bytes | Iterable[bytes]) -> list[IndexedRedisModel]:
        """Instances from stored records and their pks: the fetch hot path, doing for
        each record in one step what ``records`` and ``instance_from_record`` do.
        Raises UnknownSchemas (see ``_arrays``)."""
        if len(pks) < _PAUSE_GC_FROM:
            return self._instances(pks, blobs)
        with paused_gc():
            return self._instances(pks, blobs)

    def _instances(self, pks: Sequence[int], blobs: bytes | Iterable[bytes]) -> list[IndexedRedisModel]:
        arrays = self._arrays(blobs)
        if not self._plain_records or self.custom_init:
            return [self.instance_from_record(pk, record)
                    for pk, record in zip(pks, self._dicts(arrays), strict=True)]
        tag, names, schemas = self.schema_tag, self.field_names, self.schemas
        model, new, build = self.model, _new, self.instance_from_record
        out = []
        for pk, values in zip(pks, arrays, strict=True):
            if values[-1] == tag:
                # Every field is plain text stored as itself, and the record has exactly
                # the model's fields: its values are the state, and the record stays in
                # its raw form (see ``_StoredRecord`` in model.py).
                obj = new(model)
                state = obj.__dict__
                state.update(zip(names, values))
                state["_id"] = pk
                state["_orig"] = values
                out.append(obj)
            else:
                out.append(build(pk, dict(zip(schemas[values[-1]], values))))
        return out

    def stored_tag(self, blob: bytes) -> Any:
        """The schema tag a stored record carries."""
        return msgpack.unpackb(blob, raw=False, unicode_errors="surrogateescape")[-1]

    def learn_schemas(self, tags: Iterable[int], blobs: Iterable[bytes | None]) -> None:
        for tag, blob in zip(tags, blobs, strict=True):
            if blob is None:
                raise IndexedRedisError(
                    f"Model {self.name}: stored records carry schema tag {tag}, which the model's "
                    f"schemas hash ({self.keys.schemas!r}) does not hold; the data was not "
                    f"written by IndexedRedis or its schemas hash was deleted")
            self.schemas[tag] = tuple(msgpack.unpackb(blob, raw=False))

    # ---- conversions ---------------------------------------------------------------

    def field(self, name: str) -> IRField:
        try:
            return self.fields_by_name[name]
        except KeyError:
            raise UnknownFieldError(
                f"{name!r} is not a field of model {self.name}; its fields are "
                f"{', '.join(self.field_names)}.{nearest(name, self.field_names)}") from None

    def to_python(self, field: IRField, value: Any) -> Any:
        """Validate a value for a field, with an error naming model, field and expectation."""
        try:
            return field.fromInput(value)
        except (TypeError, ValueError) as exc:
            detail = str(exc) or field.expected
            raise FieldValueError(
                f"{self.name}.{field.name}: expected {detail}; got {type(value).__name__} "
                f"{_short_repr(value)}") from None

    def storage_of(self, obj: IndexedRedisModel) -> dict[str, Any]:
        """The stored form of every field of an instance.

        Values were validated when assigned; those of types that cannot change in place
        (text, numbers, datetimes...) are trusted, the others are validated again.
        """
        values = obj.__dict__
        record = {}
        for field, how in self._storers:
            name = field.name
            if name not in values:
                record[name] = field.toStorage(field.getDefaultValue())
                continue
            value = values[name]
            if how == _AS_IS and type(value) is str:
                record[name] = value
            elif how == _TRUSTED and _immutable(value):
                record[name] = field.toStorage(value)
            else:
                record[name] = field.toStorage(self.to_python(field, value))
        return record

    def index_key(self, gen_keys: GenerationKeys, field: IRField, stored: Any) -> bytes:
        """The index set a stored value belongs in (the null set for irNull)."""
        if stored is NULL_STORED:
            return gen_keys.null_index(field.name)
        if type(field) is IRClassicField and not field.hashIndex:
            return gen_keys.index(field.name, wire_bytes(stored))
        return gen_keys.index(field.name, field.indexFromStorage(stored))

    def instance_from_record(self, pk: bytes | str | int, record: dict[str, Any]) -> IndexedRedisModel:
        """Build an instance from a stored record (the fetch hot path)."""
        model = self.model
        if self._plain_records and not self.custom_init and record.keys() == self._field_set:
            # Every field is plain text stored as itself, and the record has exactly the
            # model's fields (as records of this schema do): it becomes the state whole.
            obj = _new(model)
            state = obj.__dict__
            state.update(record)
        else:
            values = self._decode(record)
            if self.custom_init:
                obj = model(**values)
                state = obj.__dict__
            else:
                obj = _new(model)
                state = obj.__dict__
                state.update(values)
        state["_id"] = int(pk)
        state["_orig"] = record
        return obj

    def _decode(self, record: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, decode, default in self.decoders:
            stored = record.get(name, _MISSING)
            if stored is _MISSING:
                values[name] = default() if callable(default) else default
            elif decode is None:
                values[name] = stored
            else:
                values[name] = decode(stored)
        return values

    def partial_instance(self, pk: Any, record: dict[str, Any], fields: Iterable[str]) -> IndexedRedisModel:
        """An instance with only ``fields`` loaded from the record.

        The other fields hold their defaults, and the object believes those defaults
        are stored, so ``save()`` writes them only if they are changed.
        """
        wanted = set(fields)
        partial = {name: stored for name, stored in record.items() if name in wanted}
        obj = self.instance_from_record(pk, partial)
        orig = obj.__dict__["_orig"] = dict(partial)
        for field in self.fields:
            if field.name not in wanted:
                orig[field.name] = field.toStorage(obj.__dict__[field.name])
        return obj


# ---- garbage collection during big fetches ---------------------------------------------
#
# Building a big result allocates a few container objects per record (the unpacked
# array, the instance, its dict), none of which can be part of a reference cycle yet.
# Left alone, those allocations set off CPython's cyclic collector every 700 of them,
# and its full collections walk the whole heap: on an 18,000-object result that was a
# quarter of the fetch time.  So the collector is paused while a big result is built
# (msgpack's README gives the same advice for large unpacks); it runs as usual afterwards.

_PAUSE_GC_FROM = 1000  # records
_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_resume = False


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block (thread-safe: it resumes when
    the last pausing thread is done, and only if it was enabled before the first)."""
    global _gc_pausers, _gc_resume
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_resume = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_resume:
                gc.enable()


def _resume_gc_in_child() -> None:
    """A child forked while another thread had the collector paused: resume it."""
    global _gc_pausers, _gc_resume, _gc_lock
    _gc_lock = threading.Lock()
    if _gc_pausers and _gc_resume:
        gc.enable()
    _gc_pausers, _gc_resume = 0, False


os.register_at_fork(after_in_child=_resume_gc_in_child)


_MISSING = object()
_new = object.__new__
_AS_IS, _TRUSTED = 0, 1


def _immutable(value: Any) -> bool:
    return value is None or isinstance(value, _IMMUTABLE)


_IMMUTABLE = (str, bytes, int, float, bool, IRNullType, frozenset, _dt.datetime, Decimal)


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
