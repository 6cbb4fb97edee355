"""What every field module shares: ``irNull``, how values look stored and indexed, the
default encoding, and the text / bytes / number coercions the field types agree on."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any


class IRNullType:
    """The type of ``irNull``: the value of a field that was never set.

    ``irNull`` is falsy and equal only to itself, so "no value" is told apart from
    ``''`` or ``0``; like an empty container it has length 0.
    """

    _instance: IRNullType | None = None

    def __new__(cls, *args: Any) -> IRNullType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    # 6.x's irNull was an empty str: len() is 0 and iterating it gives nothing, so code
    # that takes len() of an unset multi-link works.
    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __contains__(self, item: object) -> bool:
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
    note_conversion_change()


_conversion_changes = 0


def note_conversion_change() -> None:
    """Something that conversions read changed: a field's attribute (6.x code may set
    ``decimalPlaces`` or ``hashIndex`` on a live field), or the default encoding."""
    global _conversion_changes
    _conversion_changes += 1


def conversion_stamp() -> int:
    """Changes with every ``note_conversion_change``: what was worked out from the
    conversions before (the filter memo, ``compiler._first_filter``) is stale then."""
    return _conversion_changes


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


# ---- shared conversions ---------------------------------------------------------------------

_BYTES_LIKE = (bytes, bytearray, memoryview)


def _checked_text(value: str) -> str:
    """``value`` as a plain str, refusing lone surrogates (they cannot be stored)."""
    if type(value) is str and value.isascii():  # O(1) in CPython: no surrogate can be there
        return value
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
