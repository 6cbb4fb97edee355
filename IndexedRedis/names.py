"""Suggesting the name that was meant, for the error messages of every layer."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["nearest"]


def nearest(name: str, choices: Iterable[str]) -> str:
    """' Did you mean 'x'?' or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""
