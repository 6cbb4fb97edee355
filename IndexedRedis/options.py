"""A model's metadata (``Model._meta``): its fields, indexes and keys, read from the
class statement and checked there.  Its record codec (``records.py``) and instance
builder (``instances.py``) hang off it as ``codec`` and ``builder``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .cache.store import budget_of
from .connection import checked_params
from .exceptions import FieldValueError, InvalidModelException, UnknownFieldError
from .expiry import model_ttl
from .fields import NULL_STORED, IRClassicField, IRField, wire_bytes
from .fields.links import IRForeignLinkFieldBase
from .instances import InstanceBuilder, immutable
from .keys import GenerationKeys, ModelKeys
from .names import nearest
from .records import RecordCodec
from .textindex import model_layout

if TYPE_CHECKING:
    from .model import IndexedRedisModel

__all__ = ["ModelOptions", "IndexSpec", "checked_meta"]


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """What indexes one indexed field has.

    Every indexed field has a set per value (equality, IN, isnull).  A field ordered by
    number also has a sorted set scored by its value (ranges, ordering); a field in
    LEX_INDEXED_FIELDS a lexicographic one (one entry per object); every text field
    (``text``) has dictionaries of its distinct values (text lookups, text order; see
    ``textindex.py``).  UNIQUE_FIELDS are checked on every write.
    """

    field: IRField
    numeric: bool
    lex: bool
    unique: bool
    text: bool = False


class ModelOptions:
    """Everything IndexedRedis knows about one model class.

    ``base`` is the class every model extends (``IndexedRedisModel``, given by its
    metaclass): model attributes that fields must not hide, and the ``__init__`` that
    fetched objects skip unless the model has its own.
    """

    def __init__(self, model: type[IndexedRedisModel], fields: Iterable[Any],
                 indexed: Iterable[Any], key_name: Any,
                 connection_params: Mapping[str, Any] | None,
                 unique: Iterable[Any] = (), lex: Iterable[Any] = (), key_group: Any = None,
                 wait: Any = 0, wait_timeout_ms: Any = 1000, client_cache: Any = None, ttl: Any = None, *,
                 base: type[IndexedRedisModel]) -> None:
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
        for attribute, value in (("WAIT_REPLICAS", wait), ("WAIT_TIMEOUT_MS", wait_timeout_ms)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidModelException(
                    f"Model {self.name}: {attribute} must be an int >= 0; got {value!r}")
        #: (replicas, timeout ms) every write waits for (``WAIT``); (0, _): none
        self.wait: tuple[int, int] = (wait, wait_timeout_ms)
        self.fields: tuple[IRField, ...] = tuple(self._make_field(f) for f in fields)
        if not self.fields:
            raise InvalidModelException(f"Model {self.name} has no FIELDS")
        self.fields_by_name: dict[str, IRField] = {}
        for field in self.fields:
            if field.name in self.fields_by_name:
                raise InvalidModelException(f"Model {self.name} lists field {field.name!r} twice in FIELDS")
            self.fields_by_name[field.name] = field
        self.field_names: tuple[str, ...] = tuple(self.fields_by_name)
        #: How the records are stored (see records.py); ``schema_tag``, ``schema_blob``
        #: and ``schemas`` below are its own.
        self.codec = RecordCodec(self.name, self.field_names, self.keys.schemas)
        indexed_fields = self._named_fields("INDEXED_FIELDS", indexed)
        unique_fields = self._named_fields("UNIQUE_FIELDS", unique)
        lex_fields = self._named_fields("LEX_INDEXED_FIELDS", lex)
        for field in unique_fields + lex_fields:  # both need an index: add it if not listed
            if field not in indexed_fields:
                indexed_fields.append(field)
        for field in indexed_fields:
            if not field.canIndex():
                kind = type(field).__name__ + (f" of {field.valueType.__name__}"
                                               if isinstance(getattr(field, "valueType", None), type) else "")
                raise InvalidModelException(
                    f"Model {self.name}: field {field.name!r} ({kind}) cannot be indexed: its stored form does "
                    f"not identify its value (equal values may be stored differently, or the stored form is "
                    f"opaque, as for raw bytes, pickles, compressed data, dicts and lists), so an index on it could "
                    f"miss equal values. Index another field, or store a text or number form of it beside it")
        for field in lex_fields:
            if not field.isText():
                raise InvalidModelException(
                    f"Model {self.name}: LEX_INDEXED_FIELDS names {field.name!r}, but a lexicographic "
                    f"index needs a text field without hashIndex ({field!r} is not one)")
        self.indexed: tuple[IRField, ...] = tuple(indexed_fields)
        self.indexed_names: tuple[str, ...] = tuple(f.name for f in self.indexed)
        self.specs: dict[str, IndexSpec] = {
            f.name: IndexSpec(f, numeric=f.isNumeric(), lex=f in lex_fields, unique=f in unique_fields,
                              text=f.isText())
            for f in self.indexed}
        #: The index layout the model keeps (its digest, and the flat field, letters list).
        self.layout: tuple[bytes, tuple[bytes, ...]] = model_layout(self.specs)
        self.unique_names: tuple[str, ...] = tuple(f.name for f in unique_fields)
        if connection_params is not None and not isinstance(connection_params, Mapping):
            raise InvalidModelException(
                f"Model {self.name}: REDIS_CONNECTION_PARAMS must be a dict of redis.Redis arguments")
        try:
            self.connection_params = checked_params(connection_params, f"Model {self.name}: "
                                                    "REDIS_CONNECTION_PARAMS") if connection_params else None
        except (TypeError, ValueError) as exc:
            raise InvalidModelException(str(exc)) from None
        self.check_attribute_clashes(base)
        # How storage_of turns each value into its stored form (see there).
        self._storers = tuple(
            (f.name, f, _AS_IS if type(f) is IRClassicField else _TRUSTED) for f in self.fields)
        self.foreign_fields: tuple[IRForeignLinkFieldBase, ...] = tuple(
            f for f in self.fields if isinstance(f, IRForeignLinkFieldBase))
        #: CLIENT_CACHE as a byte budget per server; 0: never cached; None: as the
        #: connection params say (see ``cache/``)
        self.client_cache: int | None = self._cache_setting(client_cache)
        #: TTL in ms (None: objects never expire; 0: only when a save gives ttl); see expiry.py
        self.ttl_ms: int | None = model_ttl(self.name, ttl)
        if self.ttl_ms is not None and self.client_cache:
            raise InvalidModelException(
                f"Model {self.name}: CLIENT_CACHE cannot be used on a model with TTL: a cached object would "
                f"outlive its expiry (the server does not tell caches when an object expires); drop one of them")
        #: Makes instances from stored records (see instances.py).  A model with its own
        #: __init__ gets it called for fetched objects too, as in 6.x.
        self.builder = InstanceBuilder(model, self.fields, self.codec,
                                       custom_init=model.__init__ is not base.__init__)
        #: (name, field, plain text field) per field, for the constructor (model.py)
        self.init_fields: tuple[tuple[str, IRField, bool], ...] = tuple(
            (name, f, how == _AS_IS) for name, f, how in self._storers)
        #: Queries that plain keyword filters narrowed the unfiltered query to (compiler.py)
        self.filter_memo: dict[tuple[Any, ...], Any] = {}
        self.filter_memo_safe: dict[str, bool] = {}  # filter keyword -> whether it may be memoised
        self.filter_memo_stamp = -1  # the fields' conversion_stamp the memo was made under

    def _cache_setting(self, setting: Any) -> int | None:
        if setting is None:
            return None
        try:
            budget = budget_of(setting, f"Model {self.name}: CLIENT_CACHE")
        except ValueError as exc:
            raise InvalidModelException(str(exc)) from None
        if budget is not None and self.foreign_fields:
            raise InvalidModelException(
                f"Model {self.name}: CLIENT_CACHE cannot be used on a model with link fields "
                f"({', '.join(f.name for f in self.foreign_fields)}): the cache shares one instance among all "
                f"readers, and fetching a link would store the linked object inside it")
        return budget or 0

    @property
    def schema_tag(self) -> int:
        """The tag of the model's own field list (``codec.schema_tag``)."""
        return self.codec.schema_tag

    @property
    def schema_blob(self) -> bytes:
        """The model's own field list as the schemas hash holds it (``codec.schema_blob``)."""
        return self.codec.schema_blob

    @property
    def schemas(self) -> dict[int, tuple[str, ...]]:
        """Schema tag -> field names, of every tag learned so far (``codec.schemas``)."""
        return self.codec.schemas

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

    def check_attribute_clashes(self, base: type[IndexedRedisModel]) -> None:
        base_names = {name for klass in base.__mro__ for name in vars(klass)}
        for name in self.field_names:
            if name in base_names:
                raise InvalidModelException(
                    f"Model {self.name}: field {name!r} would hide the model attribute of the "
                    f"same name; rename the field")
            for klass in self.model.__mro__:
                if klass is base:
                    break
                own = vars(klass).get(name)
                if name in vars(klass) and not isinstance(own, IRField):
                    raise InvalidModelException(
                        f"Model {self.name}: field {name!r} clashes with attribute {name!r} "
                        f"defined on {klass.__name__}")

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
            if type(value).__module__ == "IndexedRedis.expressions":
                raise FieldValueError(
                    f"{self.name}.{field.name}: an F expression ({value!r}) is not a value an object holds; "
                    f"update stored objects with {self.name}.objects.filter(...).update({field.name}={value!r})"
                ) from None
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
        for name, field, how in self._storers:
            value = values.get(name, _ABSENT)
            if value is _ABSENT:
                record[name] = field.toStorage(field.getDefaultValue())
                continue
            if how == _AS_IS and type(value) is str:
                record[name] = value
            elif how == _TRUSTED and immutable(value):
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


def checked_meta(model: Any) -> ModelOptions:
    """A model's metadata, or the InvalidModelException that a broken model (whose
    error was deferred by the 6.x switch) or an abstract one raises on use."""
    meta = model._meta
    if meta is not None:
        return meta  # type: ignore[no-any-return]
    error = model._model_error
    if error is not None:
        raise InvalidModelException(str(error))
    raise InvalidModelException(f"{model.__name__} is abstract: it has no KEY_NAME and FIELDS")


_AS_IS, _TRUSTED = 0, 1
_ABSENT = object()  # a field missing from an instance's state (storage_of)


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
