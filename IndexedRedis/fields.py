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
"""

from __future__ import annotations

import copy as _copy
import hashlib
from decimal import Decimal
from typing import Any

__all__ = ["irNull", "IRNullType", "IRField", "IRClassicField", "NULL_STORED", "wire_bytes",
           "setDefaultIREncoding", "getDefaultIREncoding"]


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
    """Set the encoding used to turn bytes given to text fields into text."""
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


class IRField(str):
    """Base of all field types.  It *is* its name, so ``'artist' in FIELDS`` works."""

    CAN_INDEX = True
    hashIndex = False
    expected = "a value"

    def __new__(cls, name: str = "", *args: Any, **kwargs: Any) -> IRField:
        return super().__new__(cls, name)

    def __init__(self, name: str = "", defaultValue: Any = irNull, hashIndex: bool = False) -> None:
        self.name = str(name)
        self.defaultValue = defaultValue
        self.hashIndex = bool(hashIndex)

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
        return self.CAN_INDEX

    def isIndexHashed(self) -> bool:
        return self.hashIndex

    def copy(self) -> IRField:
        """An independent copy of this field (for ``copyModel``)."""
        return _copy.deepcopy(self)

    # ---- hooks for field types -----------------------------------------------------

    def _fromInput(self, value: Any) -> Any:
        raise NotImplementedError

    def _toStorage(self, value: Any) -> Any:
        raise NotImplementedError

    def _fromStorage(self, stored: Any) -> Any:
        raise NotImplementedError

    def _toIndex(self, value: Any) -> bytes | str:
        return wire_bytes(self._toStorage(value))

    # ---- plumbing ------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def __reduce__(self) -> Any:
        return (_rebuild_field, (type(self), self.name, self.__dict__))

    def __deepcopy__(self, memo: Any) -> IRField:
        clone = type(self).__new__(type(self), self.name)
        memo[id(self)] = clone
        clone.__dict__.update(_copy.deepcopy(self.__dict__, memo))
        return clone

    # IRField instances are strings; hashing and equality stay those of the name.
    __hash__ = str.__hash__
    __eq__ = str.__eq__


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
        super().__init__(name, defaultValue="", hashIndex=hashIndex)

    def fromInput(self, value: Any) -> str:
        if value is None or value is irNull:
            return ""
        return self._fromInput(value)

    def _fromInput(self, value: Any) -> str:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(f"a str that is valid Unicode; {exc}") from None
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            try:
                return bytes(value).decode(_default_encoding)
            except UnicodeDecodeError:
                raise ValueError(
                    f"bytes in {_default_encoding} (use a bytes field for binary data)") from None
        if isinstance(value, (int, float, Decimal)):  # bool is an int: True -> 'True'
            return str(value)
        raise TypeError(self.expected)

    def _toStorage(self, value: Any) -> str:
        return value

    def _fromStorage(self, stored: Any) -> str:
        if isinstance(stored, bytes):
            return stored.decode("utf-8", "surrogateescape")
        return stored

    def _toIndex(self, value: Any) -> bytes:
        return value.encode("utf-8", "surrogateescape")

    def getDefaultValue(self) -> str:
        return ""
