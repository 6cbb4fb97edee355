"""Field types: each owns the conversion of its values.

A field converts between three forms of a value:

* the Python value seen on model instances (``fromInput`` validates and normalises
  what a user assigns);
* the stored value kept in the object's record (``toStorage`` / ``fromStorage``);
* the index value, the bytes naming the index set an object belongs to (``toIndex``).

The public methods handle ``irNull`` and then call the ``_fromInput``, ``_toStorage``,
``_fromStorage`` and ``_toIndex`` hooks that each field type implements; these are the
names IndexedRedis 6.x used, so custom field types written for it keep working.

Stored values travel inside a msgpack map: ``str`` for text, ``bytes`` for binary
data, and ``False`` for ``irNull``.  Stored values read back arrive as ``str`` (bytes
that are not UTF-8 come decoded with ``surrogateescape``; ``wire_bytes`` restores
them exactly).

The field types:

==========================  ===============================  ==========  ============
field                       value on the object              stored as   indexable
==========================  ===============================  ==========  ============
``IRClassicField``          str (default ``''``)             text        yes
``IRField`` (str)           str                              text        yes
``IRField`` (int)           int                              text        yes
``IRField`` (float)         float (exact round trip)         text        yes
``IRField`` (bool)          bool                             text        yes
``IRField`` (bytes)         bytes                            bytes       yes
``IRField`` (datetime)      ``datetime.datetime``            ISO 8601    yes
``IRField`` (dict/list)     dict / list (JSON values)        JSON        no
``IRField`` (None)          str or bytes as given            as given    no
``IRField`` (SomeType)      ``SomeType(value)``              ``str()``   if the type
                                                                         says so
``IRRawField``              bytes                            bytes       no
``IRUnicodeField``          str                              encoded     yes (hashed)
``IRBytesField``            bytes                            bytes       yes (hashed)
``IRBase64Field``           bytes                            base64      yes (hashed)
``IRCompressedField``       bytes                            compressed  yes (hashed)
``IRFixedPointField``       float, rounded                   fixed text  yes
``IRPickleField``           any picklable object (opt-in)    pickle      no
``IRFieldChain``            the first chained field's value  the last's  if all are
==========================  ===============================  ==========  ============
"""

from __future__ import annotations

import base64
import binascii
import bz2
import codecs
import copy as _copy
import datetime as _dt
import hashlib
import json
import lzma
import math
import os
import pickle
import re
import zlib
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from ..exceptions import InvalidModelException

__all__ = [
    "irNull", "IRNullType", "NULL_STORED", "wire_bytes",
    "setDefaultIREncoding", "getDefaultIREncoding",
    "allowPickleFields", "pickleFieldsAllowed",
    "IRField", "IRClassicField", "IRRawField", "IRUnicodeField", "IRBytesField",
    "IRBase64Field", "IRCompressedField", "IRFixedPointField", "IRPickleField",
    "IRFieldChain",
    "COMPRESS_MODE_ZLIB", "COMPRESS_MODE_BZ2", "COMPRESS_MODE_LZMA",
    "IRForeignLinkField", "IRForeignMultiLinkField", "IRForeignLinkFieldBase", "IRDatetimeValue",
    "IRJsonValue",
]


class IRNullType:
    """The type of ``irNull``: the value of a field that was never set.

    ``irNull`` is falsy and equal only to itself, so "no value" is told apart from
    ``''`` or ``0``.
    """

    _instance: IRNullType | None = None

    def __new__(cls, *args: Any) -> IRNullType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IRNullType)

    def __ne__(self, other: object) -> bool:
        return not isinstance(other, IRNullType)

    def __hash__(self) -> int:
        return hash("IndexedRedis.irNull")

    def __repr__(self) -> str:
        return "irNull"

    def __str__(self) -> str:
        return ""

    def __reduce__(self) -> str:
        return "irNull"

    def __copy__(self) -> IRNullType:
        return self

    def __deepcopy__(self, memo: Any) -> IRNullType:
        return self


irNull = IRNullType()

#: How ``irNull`` is stored in a record (msgpack ``false``, which no real value is).
NULL_STORED = False

_default_encoding = "utf-8"


def setDefaultIREncoding(encoding: str) -> None:
    """Set the encoding used to turn bytes given to text fields into text (and text
    given to bytes fields into bytes, unless the field names its own encoding)."""
    global _default_encoding
    "".encode(encoding)  # raises LookupError for an unknown encoding
    _default_encoding = encoding


def getDefaultIREncoding() -> str:
    """The encoding used to turn bytes given to text fields into text (default utf-8)."""
    return _default_encoding


def wire_bytes(stored: str | bytes) -> bytes:
    """The exact bytes of a (non-null) stored value, as Lua scripts see them."""
    if isinstance(stored, bytes):
        return stored
    return stored.encode("utf-8", "surrogateescape")


def digest(index_value: bytes) -> bytes:
    """What a ``hashIndex`` field indexes instead of the value itself."""
    return hashlib.md5(index_value, usedforsecurity=False).hexdigest().encode("ascii")


# ---- pickle opt-in ------------------------------------------------------------------------

_pickle_allowed: bool | None = None  # None: the environment variable decides
PICKLE_ENV_VAR = "INDEXEDREDIS_ALLOW_PICKLE"


def allowPickleFields(allow: bool = True) -> None:
    """Allow (or forbid again) models with ``IRPickleField`` fields.

    Unpickling runs code named by the data, so anyone who can write to the Redis
    server could run code in every process that reads such a field.  Only allow
    pickle fields when everyone who can write to the server is trusted.  Setting the
    environment variable ``INDEXEDREDIS_ALLOW_PICKLE=1`` allows them too, unless this
    function was called with ``False``.
    """
    global _pickle_allowed
    _pickle_allowed = bool(allow)


def pickleFieldsAllowed() -> bool:
    """Whether models may use ``IRPickleField`` (see ``allowPickleFields``)."""
    if _pickle_allowed is not None:
        return _pickle_allowed
    return os.environ.get(PICKLE_ENV_VAR, "").strip().lower() in ("1", "true", "yes", "on")


# ---- shared conversions ---------------------------------------------------------------------

_BYTES_LIKE = (bytes, bytearray, memoryview)


def _checked_text(value: str) -> str:
    """``value`` as a plain str, refusing lone surrogates (they cannot be stored)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"a str that is valid Unicode ({exc.reason} at position {exc.start})") from None
    return str.__str__(value)  # a plain str even for a str subclass


def _text_from_bytes(value: Any, encoding: str, hint: str = "") -> str:
    try:
        return bytes(value).decode(encoding)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"bytes that are valid {encoding} ({exc.reason} at byte {exc.start}){hint}") from None


def _bytes_from_text(value: str, encoding: str) -> bytes:
    try:
        return value.encode(encoding)
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"text that {encoding} can encode ({exc.reason} at position {exc.start})") from None


def _text_of_stored(stored: Any, encoding: str = "utf-8") -> str:
    """A stored value (or a chained field's bytes) as text."""
    if isinstance(stored, str):
        return stored
    return bytes(stored).decode(encoding, "surrogateescape")


def _as_bytes(value: Any, encoding: str, what: str) -> bytes:
    if isinstance(value, _BYTES_LIKE):
        return bytes(value)
    if isinstance(value, str):
        return _bytes_from_text(value, encoding)
    raise TypeError(what)


def _as_float(value: Any, what: str) -> float:
    if isinstance(value, float):
        return float(value)
    try:
        if isinstance(value, (int, Decimal)):  # bool is an int: True -> 1.0
            return float(value)
        if isinstance(value, _BYTES_LIKE):
            value = _text_from_bytes(value, "ascii")
        if isinstance(value, str):
            return float(value)
    except OverflowError:
        raise ValueError(f"{what} (the value is too large for a float)") from None
    except ValueError:
        raise ValueError(what) from None
    raise TypeError(what)


def _type_name(value_type: Any) -> str:
    if value_type is None:
        return "None"
    module = getattr(value_type, "__module__", "builtins")
    name = getattr(value_type, "__qualname__", repr(value_type))
    return name if module == "builtins" else f"{module}.{name}"


# ---- IRField value types ------------------------------------------------------------------------
#
# An IRField's conversions are those of a small converter object picked from its
# ``valueType``; the converters hold no reference to the field, so fields stay easy to
# copy and pickle.


class _Converter:
    can_index = True
    expected = "a value"
    #: Converters of values ordered by number define ``to_score(value) -> float | None``
    #: (None for a value with no place in the order, like nan).
    to_score: Any = None

    def from_input(self, value: Any) -> Any:
        raise NotImplementedError

    def to_storage(self, value: Any) -> str | bytes:
        raise NotImplementedError

    def from_storage(self, stored: Any) -> Any:
        raise NotImplementedError

    def to_index(self, value: Any) -> bytes | str:
        return wire_bytes(self.to_storage(value))


class _TextConverter(_Converter):
    expected = "text (str, bytes in the default encoding, or a number)"

    def from_input(self, value: Any) -> str:
        if isinstance(value, str):
            return _checked_text(value)
        if isinstance(value, _BYTES_LIKE):
            return _text_from_bytes(value, _default_encoding, " (use a bytes field for binary data)")
        if isinstance(value, (int, float, Decimal)):  # bool is an int: True -> 'True'
            return str(value)
        raise TypeError(self.expected)

    def to_storage(self, value: str) -> str:
        return value

    def from_storage(self, stored: Any) -> str:
        return _text_of_stored(stored, _default_encoding)

    def to_index(self, value: str) -> bytes:
        return value.encode("utf-8", "surrogateescape")


class _BytesConverter(_Converter):
    expected = "bytes (or a str, which is encoded with the default encoding)"

    def from_input(self, value: Any) -> bytes:
        return _as_bytes(value, _default_encoding, self.expected)

    def to_storage(self, value: bytes) -> bytes:
        return value

    def from_storage(self, stored: Any) -> bytes:
        return wire_bytes(stored)

    def to_index(self, value: bytes) -> bytes:
        return value


class _IntConverter(_Converter):
    expected = "an int (or its decimal text, or an integral float)"

    def from_input(self, value: Any) -> int:
        if isinstance(value, int):  # bool too: True -> 1, as int(True) in 6.x
            value = int(value)
            if value.bit_length() > 10_000:
                try:
                    str(value)
                except ValueError:  # longer than sys.get_int_max_str_digits() allows
                    raise ValueError("an int with few enough digits to be stored as text (see "
                                     "sys.set_int_max_str_digits)") from None
            return value
        if isinstance(value, (float, Decimal)):
            if not math.isfinite(value) or value != int(value):
                raise ValueError(f"an int ({value!r} is not a whole number)")
            return int(value)
        if isinstance(value, _BYTES_LIKE):
            value = _text_from_bytes(value, "ascii")
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise ValueError(self.expected) from None
        raise TypeError(self.expected)

    def to_storage(self, value: int) -> str:
        return str(value)

    def from_storage(self, stored: Any) -> int:
        return int(stored)

    def to_score(self, value: int) -> float:
        try:
            return float(value)
        except OverflowError:  # beyond any float: it sorts at the end it belongs to
            return math.inf if value > 0 else -math.inf


class _FloatConverter(_Converter):
    expected = "a float (or an int, or a number's text)"

    def from_input(self, value: Any) -> float:
        return _as_float(value, self.expected)

    def to_storage(self, value: float) -> str:
        return repr(value)

    def from_storage(self, stored: Any) -> float:
        return float(stored)

    def to_index(self, value: float) -> bytes:
        # -0.0 == 0.0, so both index as "0.0"; nan indexes as "nan" (so filtering on
        # nan finds nan, although nan != nan).
        return repr(value + 0.0).encode("ascii")

    def to_score(self, value: float) -> float | None:
        return None if math.isnan(value) else value


_TRUE_TEXT = frozenset({"true", "1"})
_FALSE_TEXT = frozenset({"false", "0"})


class _BoolConverter(_Converter):
    expected = "a bool (True/False, 1/0, or the text 'true'/'false'/'1'/'0' in any case)"

    def from_input(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            if value in (0, 1):
                return bool(value)
            raise ValueError(self.expected)
        if isinstance(value, (str, *_BYTES_LIKE)):
            return self.from_storage(value)
        raise TypeError(self.expected)

    def to_storage(self, value: bool) -> str:
        return "True" if value else "False"

    def from_storage(self, stored: Any) -> bool:
        try:
            text = _text_of_stored(stored).strip().lower()
        except UnicodeDecodeError:
            text = ""
        if text in _TRUE_TEXT:
            return True
        if text in _FALSE_TEXT:
            return False
        raise ValueError(self.expected)

    def to_score(self, value: bool) -> float:
        return 1.0 if value else 0.0


class _JsonConverter(_Converter):
    """dict, list (or tuple) values, stored as JSON text."""

    can_index = False  # equal dicts can serialise differently (key order)

    def __init__(self, container: type) -> None:
        self.container = container
        kind = f"a {container.__name__}"
        self.expected = (f"{kind} of JSON values (str, int, finite float, bool, None, list, "
                         f"dict with str keys), or JSON text of one")

    def from_input(self, value: Any) -> Any:
        if isinstance(value, (str, *_BYTES_LIKE)):
            value = self._parse(_text_of_stored(value) if not isinstance(value, str) else value)
        wanted = (list, tuple) if self.container is not dict else dict
        if not isinstance(value, wanted):
            raise TypeError(self.expected)
        try:
            clean = _json_clean(value, "$")
        except RecursionError:
            raise ValueError(f"{self.expected} (this one is nested too deeply)") from None
        return tuple(clean) if self.container is tuple else clean

    def _parse(self, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{self.expected}; the text is not JSON ({exc})") from None

    def to_storage(self, value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))

    def from_storage(self, stored: Any) -> Any:
        value = json.loads(_text_of_stored(stored))
        return tuple(value) if self.container is tuple else value


def _json_clean(value: Any, path: str) -> Any:
    """A plain copy of a JSON-compatible value (tuples become lists), or an error
    naming where the first incompatible part is."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return _checked_text(value)
        except ValueError as exc:
            raise ValueError(f"JSON values; at {path}: {exc}") from None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"JSON values; at {path}: {value!r} has no JSON form")
        return float(value)
    if isinstance(value, dict):
        clean = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"JSON values; at {path}: a dict key must be a str, not "
                                f"{type(key).__name__} {key!r}")
            clean[_json_clean(key, path)] = _json_clean(item, f"{path}[{key!r}]")
        return clean
    if isinstance(value, (list, tuple)):
        return [_json_clean(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise TypeError(f"JSON values; at {path}: {type(value).__name__} {value!r} has no JSON form")


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


class _DatetimeConverter(_Converter):
    """``datetime.datetime`` values, stored in ISO 8601 (with the UTC offset if aware)."""

    expected = ("a datetime.datetime (or its ISO 8601 text, or a Unix timestamp, read as "
                "local time)")

    def from_input(self, value: Any) -> _dt.datetime:
        if isinstance(value, _dt.datetime):
            if type(value) is _dt.datetime:
                return value
            return _dt.datetime(value.year, value.month, value.day, value.hour, value.minute,
                                value.second, value.microsecond, value.tzinfo, fold=value.fold)
        if isinstance(value, _BYTES_LIKE):
            value = _text_from_bytes(value, "ascii")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return self._from_timestamp(value)
        if isinstance(value, str):
            text = value.strip()
            head, dot, tail = text.partition(".")
            if _digits(head) and (not dot or _digits(tail)):  # 6.x: digits are a Unix timestamp
                return self._from_timestamp(float(text))
            return self._parse(text)
        raise TypeError(self.expected)

    def _from_timestamp(self, stamp: float) -> _dt.datetime:
        try:
            return _dt.datetime.fromtimestamp(stamp)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"{self.expected} ({stamp!r} is out of range)") from None

    def _parse(self, text: str) -> _dt.datetime:
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            return _from_iso(text)
        except ValueError:
            raise ValueError(self.expected) from None

    def to_storage(self, value: _dt.datetime) -> str:
        return value.isoformat()

    def from_storage(self, stored: Any) -> _dt.datetime:
        return _from_iso(_text_of_stored(stored))

    def to_index(self, value: _dt.datetime) -> bytes:
        offset = value.utcoffset()
        if offset is None:
            return value.isoformat().encode("ascii")
        # Aware datetimes index by their instant, as equal instants compare equal.
        try:
            utc = value.replace(tzinfo=None) - offset
        except OverflowError:  # within a day of datetime.min / max
            naive = value.replace(tzinfo=None)
            micros = ((naive.toordinal() * 86400 + naive.hour * 3600 + naive.minute * 60
                       + naive.second) * 1_000_000 + naive.microsecond
                      - (offset // _dt.timedelta(microseconds=1)))
            return b"@%dZ" % micros
        return (utc.isoformat() + "Z").encode("ascii")

    def to_score(self, value: _dt.datetime) -> float:
        """Seconds since 1970 (naive datetimes are taken as UTC); a float keeps every
        microsecond only within about 1700..2240, beyond that order is to ~the second."""
        offset = value.utcoffset() or _dt.timedelta(0)
        delta = value.replace(tzinfo=None) - _EPOCH - offset
        return delta.days * 86400.0 + delta.seconds + delta.microseconds / 1e6


class _PassConverter(_Converter):
    """``valueType=None``: str or bytes stored unchanged; reads back as bytes (as 6.x)."""

    can_index = False
    expected = "str or bytes (stored unchanged)"

    def from_input(self, value: Any) -> str | bytes:
        if isinstance(value, str):
            return _checked_text(value)
        if isinstance(value, _BYTES_LIKE):
            return bytes(value)
        raise TypeError(self.expected)

    def to_storage(self, value: str | bytes) -> str | bytes:
        return value

    def from_storage(self, stored: Any) -> bytes:
        return wire_bytes(stored)


class _CustomConverter(_Converter):
    """Any other class: ``valueType(value)`` on input and fetch, ``str(value)`` stored.

    Indexable only if the class says so with ``CAN_INDEX = True`` (as in 6.x); then
    ``str()`` of equal values must be equal.
    """

    def __init__(self, value_type: type) -> None:
        self.value_type = value_type
        self.can_index = bool(getattr(value_type, "CAN_INDEX", False))
        self.expected = f"a {_type_name(value_type)} (or a value {value_type.__name__}() accepts)"

    def from_input(self, value: Any) -> Any:
        if not isinstance(value, self.value_type):
            try:
                value = self.value_type(value)
            except Exception as exc:  # noqa: BLE001 - any constructor failure means bad input
                raise ValueError(f"{self.expected}; {type(exc).__name__}: {exc}") from None
        _checked_text(str(value))
        return value

    def to_storage(self, value: Any) -> str:
        return str(value)

    def from_storage(self, stored: Any) -> Any:
        return self.value_type(_text_of_stored(stored, _default_encoding))


class IRJsonValue:
    """``valueType=IRJsonValue``: any JSON value (a dict, list, str, number, bool or
    None), stored as JSON text.  A str is a JSON string value, not JSON text."""

    CAN_INDEX = False


class _AnyJsonConverter(_Converter):
    can_index = False
    expected = "a JSON value (dict with str keys, list, str, int, finite float, bool or None)"

    def from_input(self, value: Any) -> Any:
        try:
            return _json_clean(value, "$")
        except RecursionError:
            raise ValueError(f"{self.expected} (this one is nested too deeply)") from None

    def to_storage(self, value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))

    def from_storage(self, stored: Any) -> Any:
        return json.loads(_text_of_stored(stored))


_ANY_JSON = _AnyJsonConverter()

_TEXT, _BYTES, _INT, _FLOAT, _BOOL, _DATETIME, _PASS = (
    _TextConverter(), _BytesConverter(), _IntConverter(), _FloatConverter(), _BoolConverter(),
    _DatetimeConverter(), _PassConverter())

_REJECTED_TYPES: dict[type, str] = {
    set: "sets have no stored form; use valueType=list",
    frozenset: "sets have no stored form; use valueType=list",
    bytearray: "use valueType=bytes",
    memoryview: "use valueType=bytes",
    object: "object() takes no value",
    complex: "use valueType=str, or a class of your own",
    _dt.date: "use valueType=datetime.datetime, or a class of your own",
    _dt.time: "use valueType=datetime.datetime, or a class of your own",
    _dt.timedelta: "use valueType=float (seconds), or a class of your own",
    IRNullType: "irNull is every field's 'no value' already",
}


_EPOCH = _dt.datetime(1970, 1, 1)
_OFFSET = re.compile(r"([+-])(\d\d):(\d\d)(?::(\d\d)(?:\.(\d{6}))?)?$")


def _from_iso(text: str) -> _dt.datetime:
    """``datetime.fromisoformat``, keeping UTC offsets with seconds and microseconds
    (which some Python versions parse but round away)."""
    value = _dt.datetime.fromisoformat(text)
    match = _OFFSET.search(text) if value.tzinfo is not None else None
    if match and (match.group(4) or match.group(5)):
        sign, hours, minutes, seconds, micros = match.groups()
        offset = _dt.timedelta(hours=int(hours), minutes=int(minutes), seconds=int(seconds or 0),
                               microseconds=int(micros or 0))
        value = value.replace(tzinfo=_dt.timezone(-offset if sign == "-" else offset))
    return value


def _converter_for(value_type: Any) -> _Converter:
    simple: dict[type, _Converter] = {str: _TEXT, bytes: _BYTES, int: _INT, float: _FLOAT, bool: _BOOL,
              _dt.datetime: _DATETIME}
    if value_type is None or value_type is type(None):
        return _PASS
    if not isinstance(value_type, type):
        raise TypeError(
            f"valueType must be a type: str (the default), int, float, bool, bytes, dict, list, "
            f"datetime.datetime, None (str or bytes unchanged), or a class whose constructor "
            f"takes the value; got {value_type!r}")
    if value_type in simple:
        return simple[value_type]
    if value_type in (dict, list, tuple):
        return _JsonConverter(value_type)
    if value_type is IRJsonValue:
        return _ANY_JSON
    if value_type in _REJECTED_TYPES:
        raise TypeError(f"valueType={_type_name(value_type)} is not supported: "
                        f"{_REJECTED_TYPES[value_type]}")
    if issubclass(value_type, IRField):
        raise TypeError(f"valueType={value_type.__name__} is a field type; put the field itself "
                        f"in FIELDS (or in an IRFieldChain)")
    return _CustomConverter(value_type)


# ---- the base field -----------------------------------------------------------------------------


class IRField(str):
    """A field: ``IRField(name, valueType=str, defaultValue=irNull, hashIndex=False)``.

    It *is* its name, so ``'artist' in FIELDS`` works.  ``valueType`` picks how values
    are converted (see the module docstring); an unsupported one raises TypeError
    here.  Assigning ``None`` stores ``irNull``, the value of a field never set.
    ``hashIndex=True`` indexes the md5 digest of the value instead of the value, for
    long values; filtering works the same.

    Subclasses implement the ``_fromInput`` / ``_toStorage`` / ``_fromStorage`` /
    ``_toIndex`` hooks (they never see ``irNull``), and may list their properties for
    ``repr`` in ``_getReprProperties``.
    """

    CAN_INDEX = True
    hashIndex = False
    valueType: Any = str
    defaultValue: Any = irNull
    expected = "a value"
    _conv: _Converter = _TEXT

    def __new__(cls, name: str = "", *args: Any, **kwargs: Any) -> IRField:
        return super().__new__(cls, name)

    def __init__(self, name: str = "", valueType: Any = str, defaultValue: Any = irNull,
                 hashIndex: bool = False) -> None:
        self.name = str(name)
        self._conv = _converter_for(valueType)
        self.valueType = None if valueType is type(None) else valueType
        self.hashIndex = bool(hashIndex)
        self.defaultValue = defaultValue
        if not _class_sets(type(self), "CAN_INDEX"):
            self.CAN_INDEX = self._conv.can_index
        if type(self)._fromInput is IRField._fromInput:  # conversions are the valueType's
            self.defaultValue = self._normalisedDefault(defaultValue)

    # ---- the public protocol (called by the model layer) ---------------------------

    def fromInput(self, value: Any) -> Any:
        """Validate and normalise a value a user assigns; raise TypeError/ValueError
        saying what was expected."""
        if value is None or value is irNull:
            return irNull
        return self._fromInput(value)

    def toStorage(self, value: Any) -> Any:
        """The stored form of a Python value (``NULL_STORED`` for irNull)."""
        if value is irNull:
            return NULL_STORED
        return self._toStorage(value)

    def fromStorage(self, stored: Any) -> Any:
        """The Python value of a stored form."""
        if stored is NULL_STORED:
            return irNull
        return self._fromStorage(stored)

    def toIndex(self, value: Any) -> bytes:
        """The index bytes of a (non-null) Python value, hashed if ``hashIndex``."""
        raw = self._toIndex(value)
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        return digest(raw) if self.hashIndex else raw

    def indexFromStorage(self, stored: Any) -> bytes:
        """The index bytes of a (non-null) stored form."""
        return self.toIndex(self.fromStorage(stored))

    def getDefaultValue(self) -> Any:
        """A fresh default value (mutable defaults are copied)."""
        return _copy.deepcopy(self.defaultValue)

    def canIndex(self) -> bool:
        return bool(self.CAN_INDEX)

    def toScore(self, value: Any) -> float | None:
        """The sorted-set score of a (non-null) value for fields ordered by number
        (int, float, bool, datetime, fixed point); None when the value has no place in
        the order (nan)."""
        to_score = self._conv.to_score
        return None if to_score is None else to_score(value)

    def boundScore(self, value: Any) -> float | None:
        """The score of a comparison bound given by a user (validated as a value)."""
        converted = self.fromInput(value)
        return None if converted is irNull else self.toScore(converted)

    def unorderedValue(self) -> Any:
        """A value that has no place in the number order (nan for floats), or irNull."""
        return math.nan if self._conv is _FLOAT and self.isNumeric() else irNull

    def _converts_by_value_type(self) -> bool:
        return type(self)._fromInput is IRField._fromInput and type(self)._toIndex is IRField._toIndex

    def isNumeric(self) -> bool:
        """Whether values are ordered by number (and get a sorted-set index)."""
        return self._conv.to_score is not None and not self.hashIndex and self._converts_by_value_type()

    def isText(self) -> bool:
        """Whether values are text whose index bytes are the UTF-8 text itself (so a
        lexicographic index can serve prefixes and text order)."""
        return self._conv is _TEXT and not self.hashIndex and self._converts_by_value_type()

    def isIndexHashed(self) -> bool:
        return self.hashIndex

    def validateForModel(self, model_name: str) -> None:
        """Called when a model listing this field is defined; raise
        ``InvalidModelException`` to refuse the model.  Nothing to check by default."""

    def copy(self) -> IRField:
        """An independent copy of this field (for ``copyModel``)."""
        return _copy.deepcopy(self)

    # ---- hooks for field types -----------------------------------------------------

    def _fromInput(self, value: Any) -> Any:
        return self._conv.from_input(value)

    def _toStorage(self, value: Any) -> Any:
        return self._conv.to_storage(value)

    def _fromStorage(self, stored: Any) -> Any:
        return self._conv.from_storage(stored)

    def _toIndex(self, value: Any) -> bytes | str:
        if type(self)._toStorage is IRField._toStorage:
            return self._conv.to_index(value)
        return wire_bytes(self._toStorage(value))  # a subclass's own storage form

    # ---- plumbing ------------------------------------------------------------------

    def _normalisedDefault(self, value: Any) -> Any:
        """``defaultValue`` as ``fromInput`` makes it; an unfit one is refused here."""
        try:
            return self.fromInput(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{type(self).__name__}({self.name!r}): defaultValue {value!r} does not fit the "
                f"field; expected {str(exc) or self.expected}") from None

    def _getReprProperties(self) -> list[str]:
        """``name=value`` strings shown by ``repr`` (besides the name and defaultValue)."""
        return [f"valueType={_type_name(self.valueType)}", f"hashIndex={self.hashIndex!r}"]

    def _reprDefault(self) -> str | None:
        if not self.name and self.defaultValue is irNull:
            return None  # a field inside an IRFieldChain
        return f"defaultValue={self.defaultValue!r}"

    def __repr__(self) -> str:
        parts = [repr(self.name)] if self.name else []
        parts += self._getReprProperties()
        default = self._reprDefault()
        if default is not None:
            parts.append(default)
        return f"{type(self).__name__}({', '.join(parts)})"

    def __getattr__(self, attr: str) -> Any:
        # 6.x-style subclasses may skip IRField.__init__; their name is the str itself.
        if attr == "name":
            return str.__str__(self)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    def __reduce__(self) -> Any:
        return (_rebuild_field, (type(self), str.__str__(self), self.__dict__))

    def __deepcopy__(self, memo: Any) -> IRField:
        clone = type(self).__new__(type(self), str.__str__(self))
        memo[id(self)] = clone
        clone.__dict__.update(_copy.deepcopy(self.__dict__, memo))
        return clone

    # IRField instances are strings; hashing and equality stay those of the name.
    __hash__ = str.__hash__
    __eq__ = str.__eq__


def _class_sets(cls: type, attr: str) -> bool:
    """Whether a class between ``cls`` and IRField (exclusive) defines ``attr``."""
    for klass in cls.__mro__:
        if klass is IRField:
            return False
        if attr in vars(klass):
            return True
    return False


def _rebuild_field(cls: type[IRField], name: str, state: dict[str, Any]) -> IRField:
    field = cls.__new__(cls, name)
    field.__dict__.update(state)
    return field


class IRClassicField(IRField):
    """Plain text, the field a bare string in ``FIELDS`` becomes.

    ``None`` means "no value" and is stored as ``''``, the default; numbers are
    stored as their text (``1`` reads back as ``'1'``, and ``filter(n=1)`` finds it).
    """

    expected = "text (str, bytes in the default encoding, or a number)"

    def __init__(self, name: str = "", defaultValue: Any = "", hashIndex: bool = False) -> None:
        super().__init__(name, valueType=str, defaultValue="", hashIndex=hashIndex)

    def fromInput(self, value: Any) -> str:
        if value is None or value is irNull:
            return ""
        return self._fromInput(value)

    def _fromInput(self, value: Any) -> str:
        return _TEXT.from_input(value)

    def _toStorage(self, value: Any) -> str:
        return value

    def _fromStorage(self, stored: Any) -> str:
        if isinstance(stored, bytes):
            return stored.decode("utf-8", "surrogateescape")
        return stored

    def _toIndex(self, value: Any) -> bytes:
        return value.encode("utf-8", "surrogateescape")

    def isText(self) -> bool:
        return not self.hashIndex

    def isNumeric(self) -> bool:
        return False

    def getDefaultValue(self) -> str:
        return ""

    def _getReprProperties(self) -> list[str]:
        return [f"hashIndex={self.hashIndex!r}"] if self.hashIndex else []

    def _reprDefault(self) -> str | None:
        return None  # always ''


# ---- binary and text fields ------------------------------------------------------------------------


class IRRawField(IRField):
    """Binary data stored exactly as given; the value is always bytes (a str is
    encoded with the default encoding).  Not indexable."""

    CAN_INDEX = False
    expected = "bytes (or a str, which is encoded with the default encoding)"

    def __init__(self, name: str = "", defaultValue: Any = irNull) -> None:
        super().__init__(name, defaultValue=irNull)
        self.valueType = bytes
        self.defaultValue = self._normalisedDefault(defaultValue)

    def _fromInput(self, value: Any) -> bytes:
        return _as_bytes(value, _default_encoding, self.expected)

    def _toStorage(self, value: bytes) -> bytes:
        return value

    def _fromStorage(self, stored: Any) -> bytes:
        return wire_bytes(stored)

    def _getReprProperties(self) -> list[str]:
        return []


def _checked_encoding(encoding: str | None, owner: str) -> str | None:
    if encoding is None:
        return None
    try:
        codecs.lookup(encoding)
        return encoding
    except (LookupError, TypeError):
        raise ValueError(f"{owner}: unknown encoding {encoding!r}") from None


class _EncodedField(IRField):
    """Fields with an ``encoding`` (None: the default encoding at the time of use)."""

    encoding: str | None = None

    def getEncoding(self) -> str:
        """The encoding in use: the field's own, else the default encoding."""
        return self.encoding or _default_encoding

    def _getReprProperties(self) -> list[str]:
        return [f"encoding={self.encoding!r}"]


class IRUnicodeField(_EncodedField):
    """Text stored in a given encoding: ``IRUnicodeField(name, encoding=None)``.

    The value is a str (bytes given are decoded with the encoding); it is stored as
    the bytes of that encoding.  ``encoding=None`` uses the default encoding at the
    time of use, as 6.x did.  Indexable; the index is the md5 of the text's UTF-8
    bytes, so it does not depend on the encoding.
    """

    CAN_INDEX = True
    hashIndex = True

    def __init__(self, name: str = "", encoding: str | None = None, defaultValue: Any = irNull) -> None:
        super().__init__(name, defaultValue=irNull, hashIndex=True)
        self.valueType = str
        self.encoding = _checked_encoding(encoding, f"IRUnicodeField({name!r})")
        self.defaultValue = self._normalisedDefault(defaultValue)

    @property
    def expected(self) -> str:  # type: ignore[override]
        return f"text (a str, or bytes in {self.getEncoding()})"

    def _fromInput(self, value: Any) -> str:
        encoding = self.getEncoding()
        if isinstance(value, str):
            text = _checked_text(value)
            _bytes_from_text(text, encoding)
            return text
        if isinstance(value, _BYTES_LIKE):
            return _checked_text(_text_from_bytes(value, encoding))
        raise TypeError(self.expected)

    def _toStorage(self, value: str) -> bytes:
        return value.encode(self.getEncoding())

    def _fromStorage(self, stored: Any) -> str:
        return wire_bytes(stored).decode(self.getEncoding())

    def _toIndex(self, value: str) -> bytes:
        return value.encode("utf-8")


class IRBytesField(_EncodedField):
    """Binary data: the value is always bytes (a str is encoded with ``encoding``,
    default: the default encoding).  Indexable; the index is hashed (as in 6.x)."""

    CAN_INDEX = True
    hashIndex = True

    def __init__(self, name: str = "", defaultValue: Any = irNull, encoding: str | None = None) -> None:
        super().__init__(name, defaultValue=irNull, hashIndex=True)
        self.valueType = bytes
        self.encoding = _checked_encoding(encoding, f"{type(self).__name__}({name!r})")
        self.defaultValue = self._normalisedDefault(defaultValue)

    @property
    def expected(self) -> str:  # type: ignore[override]
        return f"bytes (or a str, which is encoded with {self.getEncoding()})"

    def _fromInput(self, value: Any) -> bytes:
        return _as_bytes(value, self.getEncoding(), self.expected)

    def _toStorage(self, value: bytes) -> str | bytes:
        return value

    def _fromStorage(self, stored: Any) -> bytes:
        return wire_bytes(stored)

    def _toIndex(self, value: bytes) -> bytes:
        return value


class IRBase64Field(IRBytesField):
    """Binary data stored as base64 text; the value is bytes (a str is encoded with
    ``encoding``).  Indexable: the index is the md5 of the value bytes (not of the
    base64 text)."""

    def _toStorage(self, value: bytes) -> str:
        return base64.b64encode(value).decode("ascii")

    def _fromStorage(self, stored: Any) -> bytes:
        try:
            return base64.b64decode(wire_bytes(stored), validate=True)
        except binascii.Error as exc:
            raise ValueError(f"{self.name}: stored value is not base64 ({exc})") from None


COMPRESS_MODE_ZLIB = "zlib"
COMPRESS_MODE_BZ2 = "bz2"
COMPRESS_MODE_LZMA = "lzma"

_COMPRESS_ALIASES = {
    "zlib": COMPRESS_MODE_ZLIB, "gzip": COMPRESS_MODE_ZLIB, "gz": COMPRESS_MODE_ZLIB,
    "bz2": COMPRESS_MODE_BZ2, "bzip2": COMPRESS_MODE_BZ2,
    "lzma": COMPRESS_MODE_LZMA, "xz": COMPRESS_MODE_LZMA,
}

_COMPRESSORS: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
    COMPRESS_MODE_ZLIB: (lambda data: zlib.compress(data, 9), zlib.decompress),
    COMPRESS_MODE_BZ2: (lambda data: bz2.compress(data, 9), bz2.decompress),
    COMPRESS_MODE_LZMA: (lzma.compress, lzma.decompress),
}


class IRCompressedField(IRField):
    """Binary data stored compressed: ``IRCompressedField(name, compressMode='zlib')``.

    Modes: ``'zlib'`` (default; ``'gzip'`` and ``'gz'`` are aliases of it, as in 6.x:
    the data is in the zlib format, not the gzip file format), ``'bz2'`` /
    ``'bzip2'``, ``'lzma'`` / ``'xz'``.  The value is bytes (a str is encoded with the
    default encoding).  Indexable: the index is the md5 of the uncompressed bytes.
    """

    CAN_INDEX = True
    hashIndex = True
    expected = "bytes (or a str, which is encoded with the default encoding)"

    def __init__(self, name: str = "", compressMode: str = COMPRESS_MODE_ZLIB,
                 defaultValue: Any = irNull) -> None:
        super().__init__(name, defaultValue=irNull, hashIndex=True)
        mode = _COMPRESS_ALIASES.get(compressMode) if isinstance(compressMode, str) else None
        if mode is None:
            raise ValueError(
                f"IRCompressedField({name!r}): compressMode {compressMode!r} is not one of "
                f"{', '.join(repr(m) for m in _COMPRESS_ALIASES)}")
        self.compressMode = mode
        self.valueType = bytes
        self.defaultValue = self._normalisedDefault(defaultValue)

    def _fromInput(self, value: Any) -> bytes:
        return _as_bytes(value, _default_encoding, self.expected)

    def _toStorage(self, value: bytes) -> bytes:
        return _COMPRESSORS[self.compressMode][0](value)

    def _fromStorage(self, stored: Any) -> bytes:
        try:
            return _COMPRESSORS[self.compressMode][1](wire_bytes(stored))
        except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as exc:
            raise ValueError(f"{self.name}: stored value is not {self.compressMode} data ({exc})") from None

    def _toIndex(self, value: bytes) -> bytes:
        return value

    def getCompressMod(self) -> Any:
        """The module doing the compression (zlib, bz2 or lzma), as 6.x offered."""
        return {"zlib": zlib, "bz2": bz2, "lzma": lzma}[self.compressMode]

    def _getReprProperties(self) -> list[str]:
        return [f"compressMode={self.compressMode!r}"]


# ---- numbers ------------------------------------------------------------------------------------


class IRFixedPointField(IRField):
    """A float rounded to ``decimalPlaces`` (default 5) and stored as fixed-point text
    (``'3.14000'``), so equal values always store and index alike.  Indexable.

    Values must be finite; ``-0.0`` becomes ``0.0``.  The rounded float round-trips
    exactly.
    """

    CAN_INDEX = True
    expected = "a finite number (float, int, Decimal, or a number's text)"

    def __init__(self, name: str = "", decimalPlaces: int = 5, defaultValue: Any = irNull) -> None:
        super().__init__(name, defaultValue=irNull)
        if isinstance(decimalPlaces, bool) or not isinstance(decimalPlaces, int) or decimalPlaces < 0:
            raise ValueError(f"IRFixedPointField({name!r}): decimalPlaces must be an int >= 0; "
                             f"got {decimalPlaces!r}")
        self.decimalPlaces = decimalPlaces
        self.valueType = float
        self.defaultValue = self._normalisedDefault(defaultValue)

    def _fromInput(self, value: Any) -> float:
        number = _as_float(value, self.expected)
        if not math.isfinite(number):
            raise ValueError(f"{self.expected} ({number!r} is not finite)")
        return round(number, self.decimalPlaces) + 0.0

    def _toStorage(self, value: float) -> str:
        return f"{value:.{self.decimalPlaces}f}"

    def _fromStorage(self, stored: Any) -> float:
        # Rounded again in case decimalPlaces changed since the value was stored.
        return round(float(stored), self.decimalPlaces) + 0.0

    def _getReprProperties(self) -> list[str]:
        return [f"decimalPlaces={self.decimalPlaces!r}"]

    def toScore(self, value: float) -> float:
        return value

    def boundScore(self, value: Any) -> float | None:
        # A comparison bound keeps all its digits: cost__gte=1.224 must not match 1.22.
        number = _as_float(value, self.expected)
        return None if math.isnan(number) else number

    def isNumeric(self) -> bool:
        return True

    def isText(self) -> bool:
        return False


# ---- pickle ---------------------------------------------------------------------------------------

PICKLE_PROTOCOL = 4


class IRPickleField(IRField):
    """Any picklable object, stored pickled.  Not indexable.

    Opt-in: unpickling runs code named by the stored data, so anyone able to write to
    the Redis server could run code in every process that reads the field.  A model
    with a pickle field is refused unless ``IndexedRedis.fields.allowPickleFields()``
    was called or ``INDEXEDREDIS_ALLOW_PICKLE=1`` is set.  ``None`` means irNull, so
    None itself cannot be stored.
    """

    CAN_INDEX = False
    expected = "a picklable object"

    def __init__(self, name: str = "", defaultValue: Any = irNull) -> None:
        super().__init__(name, defaultValue=irNull)
        self.valueType = None
        self.defaultValue = self._normalisedDefault(defaultValue)

    def validateForModel(self, model_name: str) -> None:
        if not pickleFieldsAllowed():
            raise InvalidModelException(
                f"Model {model_name}: field {self.name!r} is an IRPickleField, and pickle fields "
                f"are disabled: unpickling data read from Redis runs arbitrary code, so anyone "
                f"who can write to the Redis server could run code in every process reading "
                f"this model.  If only trusted clients can write to it, opt in by calling "
                f"IndexedRedis.fields.allowPickleFields(True) before defining the model, or by "
                f"setting the environment variable {PICKLE_ENV_VAR}=1.  Otherwise use a JSON "
                f"field (IRField(..., valueType=dict) or list).")

    def _fromInput(self, value: Any) -> Any:
        try:
            pickle.dumps(value, protocol=PICKLE_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - PicklingError, TypeError, AttributeError...
            raise TypeError(f"a picklable object ({type(exc).__name__}: {exc})") from None
        return value

    def _toStorage(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=PICKLE_PROTOCOL)

    def _fromStorage(self, stored: Any) -> Any:
        return pickle.loads(wire_bytes(stored))

    def _getReprProperties(self) -> list[str]:
        return []


# ---- chains ---------------------------------------------------------------------------------------


class IRFieldChain(IRField):
    """Several field types applied in turn:
    ``IRFieldChain(name, [IRUnicodeField(encoding='utf-16'), IRCompressedField()])``.

    The value on the object is the first (leftmost) field's value.  On store, each
    field's stored form becomes the next field's input value, left to right; on fetch
    each field's value is handed to the field on its left as its stored form, right to
    left.  So every field but the first should have a str or bytes value.  Chained
    fields are nameless (their defaultValue is ignored).

    Indexable iff every chained field is.  The index is the first field's index of the
    value (so, e.g., compressing later in the chain does not change it), hashed when
    ``hashIndex=True`` or when any chained field hashes its index.
    """

    CAN_INDEX = True

    def __init__(self, name: str, chainedFields: Sequence[Any] = (), defaultValue: Any = irNull,
                 hashIndex: bool = False) -> None:
        super().__init__(name, defaultValue=irNull)
        if not self.name:
            raise ValueError("IRFieldChain needs a name")
        if isinstance(chainedFields, (str, bytes)) or not isinstance(chainedFields, Sequence):
            raise ValueError(f"IRFieldChain({name!r}): chainedFields must be a list of fields")
        fields: list[IRField] = []
        for item in chainedFields:
            if isinstance(item, type) and issubclass(item, IRField):
                item = item()
            if not isinstance(item, IRField):
                raise ValueError(f"IRFieldChain({name!r}): chainedFields must hold IRField objects; "
                                 f"got {item!r}")
            if item.name:
                raise ValueError(f"IRFieldChain({name!r}): chained field {item!r} has a name; only "
                                 f"the IRFieldChain itself is named")
            fields.append(item)
        if not fields:
            raise ValueError(f"IRFieldChain({name!r}): chainedFields is empty")
        self.chainedFields = fields
        self.valueType = getattr(fields[0], "valueType", None)
        self.CAN_INDEX = all(f.canIndex() for f in fields)
        self.hashIndex = bool(hashIndex) or any(f.isIndexHashed() for f in fields)
        self.defaultValue = self._normalisedDefault(defaultValue)

    @property
    def expected(self) -> str:  # type: ignore[override]
        return self.chainedFields[0].expected

    def validateForModel(self, model_name: str) -> None:
        for field in self.chainedFields:
            field.validateForModel(model_name)

    def _fromInput(self, value: Any) -> Any:
        return self.chainedFields[0]._fromInput(value)

    def _toStorage(self, value: Any) -> Any:
        first, *rest = self.chainedFields
        stored = first._toStorage(value)
        for field in rest:
            stored = field._toStorage(field._fromInput(stored))
        return stored

    def _fromStorage(self, stored: Any) -> Any:
        first, *rest = self.chainedFields
        for field in reversed(rest):
            stored = field._fromStorage(stored)
        return first._fromStorage(stored)

    def _toIndex(self, value: Any) -> bytes | str:
        return self.chainedFields[0]._toIndex(value)

    def _getReprProperties(self) -> list[str]:
        return [f"chainedFields=[{', '.join(repr(f) for f in self.chainedFields)}]",
                f"hashIndex={self.hashIndex!r}"]


# The link fields need the model layer, so they live in foreign.py; 6.x users import
# them from here.
from ..foreign import IRForeignLinkField, IRForeignLinkFieldBase, IRForeignMultiLinkField  # noqa: E402

#: 6.x's name for the datetime value type: ``IRField('when', valueType=IRDatetimeValue)``.
IRDatetimeValue = _dt.datetime
