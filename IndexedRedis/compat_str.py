"""6.x's text helpers, kept so that imports written for it work."""

from __future__ import annotations

from typing import Any

from .fields import getDefaultIREncoding, setDefaultIREncoding

__all__ = ["tobytes", "to_unicode", "getDefaultIREncoding", "setDefaultIREncoding"]


def tobytes(value: Any, encoding: str | None = None) -> bytes:
    """``value`` as bytes: text is encoded (default IR encoding), anything else via str()."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    text = value if isinstance(value, str) else str(value)
    return text.encode(encoding or getDefaultIREncoding())


def to_unicode(value: Any, encoding: str | None = None) -> str:
    """``value`` as text: bytes are decoded (default IR encoding), anything else via str()."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode(encoding or getDefaultIREncoding())
    return value if isinstance(value, str) else str(value)
