"""Field types: each owns the conversion of its values.

A field converts between three forms of a value:

* the Python value seen on model instances (``to_python`` validates user input);
* the stored value kept in the object's record (``to_storage`` / ``from_storage``);
* the index value, the bytes that name the index set the object belongs to
  (``to_index``).

Stored values travel inside a msgpack map.  They are ``str`` for text; values that
are not valid UTF-8 arrive decoded with ``surrogateescape`` and are turned back into
the exact bytes by ``wire_bytes``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

__all__ = ["irNull", "IRNullType", "IRField", "IRClassicField"]


class IRNullType:
    """The type of ``irNull``: the value of a field that was never set.

    ``irNull`` is falsy and equal only to itself, so "no value" is told apart from
    ``''`` or ``0``.
    """

    _instance: IRNullType | None = None

    def __new__(cls) -> IRNullType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return other is self

    def __ne__(self, other: object) -> bool:
        return other is not self

    def __hash__(self) -> int:
        return hash("IndexedRedis.irNull")

    def __repr__(self) -> str:
        return "irNull"

    def __reduce__(self) -> str:
        return "irNull"


irNull = IRNullType()


def wire_bytes(stored: str | bytes) -> bytes:
    """The exact bytes of a stored value, as Lua scripts see them."""
    if isinstance(stored, bytes):
        return stored
    return stored.encode("utf-8", "surrogateescape")


class IRField(str):
    """Base of all field types.  It *is* its name, so ``'artist' in FIELDS`` works."""

    indexable = True
    expected = "a value"

    def __new__(cls, name: str = "", *args: Any, **kwargs: Any) -> IRField:
        return super().__new__(cls, name)

    def __init__(self, name: str = "", defaultValue: Any = irNull) -> None:
        self.name = str(name)
        self.defaultValue = defaultValue

    @property
    def default(self) -> Any:
        return self.defaultValue

    def to_python(self, value: Any) -> Any:
        """Validate and normalise a value a user assigns; raise TypeError/ValueError."""
        raise NotImplementedError

    def to_storage(self, value: Any) -> str | bytes:
        raise NotImplementedError

    def from_storage(self, stored: str | bytes) -> Any:
        raise NotImplementedError

    def to_index(self, value: Any) -> bytes:
        """Index bytes of a Python value (already passed through ``to_python``)."""
        return wire_bytes(self.to_storage(value))

    def index_from_storage(self, stored: str | bytes) -> bytes:
        return self.to_index(self.from_storage(stored))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def __reduce__(self) -> Any:
        return (type(self), (self.name,), self.__dict__)

    # IRField instances are strings; hashing and equality stay those of the name.
    __hash__ = str.__hash__
    __eq__ = str.__eq__


class IRClassicField(IRField):
    """Plain text, the field a bare string in ``FIELDS`` becomes.

    ``None`` means "no value" and is stored as ``''``, the default; numbers are
    stored as their text (``1`` reads back as ``'1'``, and ``filter(n=1)`` finds it).
    """

    expected = "text (str, or bytes in UTF-8, or a number)"

    def __init__(self, name: str = "", defaultValue: Any = "") -> None:
        super().__init__(name, defaultValue="")

    def to_python(self, value: Any) -> str:
        if value is None or value is irNull:
            return ""
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(f"a str that is valid Unicode; {exc}") from None
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            try:
                return bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError("bytes in UTF-8 (use a bytes field for binary data)") from None
        if isinstance(value, (int, float, Decimal)):  # bool is an int: True -> 'True'
            return str(value)
        raise TypeError(self.expected)

    def to_storage(self, value: Any) -> str:
        return value

    def from_storage(self, stored: str | bytes) -> str:
        if isinstance(stored, bytes):
            return stored.decode("utf-8", "surrogateescape")
        return stored

    def to_index(self, value: Any) -> bytes:
        return value.encode("utf-8", "surrogateescape")

    def index_from_storage(self, stored: str | bytes) -> bytes:
        return wire_bytes(stored)
