"""The conversions of an ``IRField``, picked by its ``valueType``.

A converter holds no reference to its field, so fields stay easy to copy and pickle.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from decimal import Decimal
from typing import Any

from .values import (
    _BYTES_LIKE,
    IRNullType,
    _as_bytes,
    _as_float,
    _checked_text,
    _text_from_bytes,
    _text_of_stored,
    _type_name,
    getDefaultIREncoding,
    wire_bytes,
)


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
            return _text_from_bytes(value, getDefaultIREncoding(), " (use a bytes field for binary data)")
        if isinstance(value, (int, float, Decimal)):  # bool is an int: True -> 'True'
            return str(value)
        raise TypeError(self.expected)

    def to_storage(self, value: str) -> str:
        return value

    def from_storage(self, stored: Any) -> str:
        return _text_of_stored(stored, getDefaultIREncoding())

    def to_index(self, value: str) -> bytes:
        return value.encode("utf-8", "surrogateescape")


class _BytesConverter(_Converter):
    expected = "bytes (or a str, which is encoded with the default encoding)"

    def from_input(self, value: Any) -> bytes:
        return _as_bytes(value, getDefaultIREncoding(), self.expected)

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
        return self.value_type(_text_of_stored(stored, getDefaultIREncoding()))


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
    """The converter of a ``valueType`` (``IRField`` refuses field types before asking)."""
    simple: dict[type, _Converter] = {str: _TEXT, bytes: _BYTES, int: _INT, float: _FLOAT, bool: _BOOL,
              _dt.datetime: _DATETIME, IRDatetimeValue: _DATETIME}
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
    return _CustomConverter(value_type)


class IRDatetimeValue(_dt.datetime):
    """6.x's datetime value type.

    As a ``valueType`` (``IRField('when', valueType=IRDatetimeValue)``) it means
    ``datetime.datetime``, whose values keep their microseconds.  Called, it builds a
    plain ``datetime`` as 6.x did: from a datetime, a Unix timestamp (read as local
    time), or text like ``'2015-05-12 12:00:00'`` (any ISO 8601 form), or from the
    ``datetime`` constructor's arguments, with the microseconds dropped.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> _dt.datetime:  # type: ignore[misc]
        if len(args) == 1 and not kwargs:
            value = _DATETIME.from_input(args[0])
        else:
            value = _dt.datetime(*args, **kwargs)
        return value.replace(microsecond=0)
