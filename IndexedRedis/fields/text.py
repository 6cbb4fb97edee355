"""Text fields: ``IRClassicField`` (a bare name in ``FIELDS``) and ``IRUnicodeField``
(text stored in an encoding of its own)."""

from __future__ import annotations

from typing import Any

from .base import IRField, _checked_encoding, _EncodedField
from .converters import _TEXT
from .values import _BYTES_LIKE, _bytes_from_text, _checked_text, _text_from_bytes, irNull, wire_bytes


class IRClassicField(IRField):
    """Plain text, the field a bare string in ``FIELDS`` becomes.

    The default is ``''``, and ``None`` is stored as ``''``; ``irNull`` assigned
    explicitly is kept and stored as irNull, as in 6.x.  Numbers are stored as their
    text (``1`` reads back as ``'1'``, and ``filter(n=1)`` finds it).
    """

    expected = "text (str, bytes in the default encoding, or a number)"

    def __init__(self, name: str = "", defaultValue: Any = "", hashIndex: bool = False) -> None:
        super().__init__(name, valueType=str, defaultValue="", hashIndex=hashIndex)

    def fromInput(self, value: Any) -> Any:
        if value is None:
            return ""
        if value is irNull:
            return irNull
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
