"""Primary keys as users give them."""

from __future__ import annotations

from typing import Any

__all__ = ["as_pk"]


def as_pk(pk: Any) -> int:
    try:
        value = int(pk)
    except (TypeError, ValueError):
        raise TypeError(f"a primary key is an int (or its text); got {pk!r}") from None
    if isinstance(pk, bool) or value < 0 or (isinstance(pk, float) and pk != value):
        raise TypeError(f"a primary key is a non-negative int; got {pk!r}")
    return value
