"""Primary keys as the API takes them: an ``int`` or its decimal text (``12``, ``"12"``),
never negative, at most ``keys.MAX_PK`` (2**53 - 1).  Anything else raises
``InvalidQueryError`` naming the model; with the 6.x switch a get of such a pk finds
nothing instead (6.x looked the text up as a key name and found no object), with a
``DeprecationWarning``."""

from __future__ import annotations

import warnings
from typing import Any

from .compat import compat6
from .exceptions import InvalidQueryError
from .keys import MAX_PK

__all__ = ["as_pk", "lookup_pk", "NO_SUCH_PK"]

#: A pk no object has (records are keyed by non-negative ints): what a 6.x-style get of
#: a pk that is not one looks up.
NO_SUCH_PK = -1


def _model_name(model: Any) -> str:
    if model is None:
        return ""
    klass = model if isinstance(model, type) else type(model)
    return f"Model {klass.__name__}: "


def as_pk(pk: Any, model: Any = None) -> int:
    """``pk`` as an int, or InvalidQueryError naming ``model`` and what a pk must be."""
    try:
        value = int(pk)
    except (TypeError, ValueError, OverflowError):
        value = None
    if value is None or isinstance(pk, bool) or value < 0 or (isinstance(pk, float) and pk != value):
        raise InvalidQueryError(
            f"{_model_name(model)}a primary key is a non-negative int or its decimal text (like 12 or '12'); "
            f"got {pk!r}")
    if value > MAX_PK:
        raise InvalidQueryError(
            f"{_model_name(model)}a primary key is at most 2**53 - 1 ({MAX_PK}), the largest integer Redis "
            f"scores and Lua numbers hold exactly; got {pk!r}")
    return value


def lookup_pk(pk: Any, model: Any) -> int:
    """A pk to look up in a get: ``as_pk``; with the 6.x switch, a pk that is not one
    looks up ``NO_SUCH_PK`` (the object is not found, as in 6.x)."""
    try:
        return as_pk(pk, model)
    except InvalidQueryError as exc:
        if not compat6():
            raise
        warnings.warn(f"{exc}; IndexedRedis 6.x found no object, and so does the 6.x switch; without it this "
                      f"raises InvalidQueryError", DeprecationWarning, stacklevel=4)
        return NO_SUCH_PK
