"""Binary fields: the value is bytes, stored as given, base64 or compressed."""

from __future__ import annotations

import base64
import binascii
import bz2
import lzma
import zlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from .base import IRField, _checked_encoding, _EncodedField
from .values import _as_bytes, getDefaultIREncoding, irNull, wire_bytes


class IRRawField(IRField):
    """Raw data, as in 6.x: the value is kept as assigned (bytes, a str, or a number),
    stored as its bytes (a str in the default encoding, a number as its text), and
    always read back as bytes.  The default is ``''``; None and irNull are stored as
    ``''`` too (6.x had no null for raw data).  Not indexable."""

    CAN_INDEX = False
    expected = "bytes, a str (stored in the default encoding) or a number (stored as its text)"

    def __init__(self, name: str = "", defaultValue: Any = "") -> None:
        super().__init__(name, defaultValue=irNull)
        self.valueType = None
        self.defaultValue = self._normalisedDefault(defaultValue)

    def fromInput(self, value: Any) -> Any:
        if value is None or value is irNull:
            return ""  # 6.x had no null for raw data: "no value" is empty data
        return self._fromInput(value)

    def _fromInput(self, value: Any) -> Any:
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            _as_bytes(value, getDefaultIREncoding(), self.expected)  # refuse text it cannot encode
            return value
        if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
            return value
        raise TypeError(self.expected)

    def _toStorage(self, value: Any) -> bytes:
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return _as_bytes(value, getDefaultIREncoding(), self.expected)
        return repr(value).encode("ascii") if isinstance(value, float) else str(value).encode("ascii")

    def _fromStorage(self, stored: Any) -> bytes:
        return wire_bytes(stored)

    def _getReprProperties(self) -> list[str]:
        return []


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

    def _toStorage(self, value: bytes) -> bytes:
        return base64.b64encode(value)

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
    ``'bzip2'``, ``'lzma'`` / ``'xz'``.  The value is bytes; a str is kept as assigned
    (as in 6.x), stored in the default encoding, and reads back as bytes.  Indexable:
    the index is the md5 of the uncompressed bytes, so a str and its bytes find the same
    objects.
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

    def _fromInput(self, value: Any) -> str | bytes:
        data = _as_bytes(value, getDefaultIREncoding(), self.expected)
        return value if isinstance(value, str) else data

    def _toStorage(self, value: str | bytes) -> bytes:
        return _COMPRESSORS[self.compressMode][0](_as_bytes(value, getDefaultIREncoding(), self.expected))

    def _fromStorage(self, stored: Any) -> bytes:
        try:
            return _COMPRESSORS[self.compressMode][1](wire_bytes(stored))
        except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as exc:
            raise ValueError(f"{self.name}: stored value is not {self.compressMode} data ({exc})") from None

    def _toIndex(self, value: str | bytes) -> bytes:
        return _as_bytes(value, getDefaultIREncoding(), self.expected)

    def getCompressMod(self) -> Any:
        """The module doing the compression (zlib, bz2 or lzma), as 6.x offered."""
        return {"zlib": zlib, "bz2": bz2, "lzma": lzma}[self.compressMode]

    def _getReprProperties(self) -> list[str]:
        return [f"compressMode={self.compressMode!r}"]
