"""The IndexedRedis 6.x compatibility switch.

By default IndexedRedis is stricter than 6.x in two places, on purpose: an unknown
keyword given to a model's constructor raises ``UnknownFieldError`` (6.x dropped it
silently, so a typo lost data), and a broken model raises ``InvalidModelException``
when its class statement runs (6.x raised at first use).  Code written for 6.x that
relies on either runs unchanged with the switch on:

* ``INDEXEDREDIS_COMPAT=6`` in the environment, or
* ``IndexedRedis.setCompatibility(6)`` before the models are defined.

With it, unknown constructor keywords are ignored with a ``DeprecationWarning``
naming them, and model errors are raised by ``validateModel()`` and on first use of
the model.  It never enables pickle fields: they have their own switch
(``allowPickleFields`` / ``INDEXEDREDIS_ALLOW_PICKLE``).
"""

from __future__ import annotations

import os

__all__ = ["COMPAT_ENV_VAR", "setCompatibility", "getCompatibility"]

COMPAT_ENV_VAR = "INDEXEDREDIS_COMPAT"
_SUPPORTED = (6,)
_UNSET = object()
_chosen: object = _UNSET  # _UNSET: the environment variable decides


def setCompatibility(version: int | None) -> None:
    """Behave like IndexedRedis ``version`` (only 6 is supported) where the default is
    stricter; ``None`` restores the strict default.  Overrides ``INDEXEDREDIS_COMPAT``.

    Call it before the models are defined: model validation is deferred or not when the
    class statement runs.
    """
    global _chosen
    if version is not None and (isinstance(version, bool) or version not in _SUPPORTED):
        raise ValueError(f"setCompatibility: version must be 6 or None (strict); got {version!r}")
    _chosen = version


def getCompatibility() -> int | None:
    """The version whose behaviour is kept (6), or None for the strict default."""
    if _chosen is not _UNSET:
        return _chosen  # type: ignore[return-value]
    raw = os.environ.get(COMPAT_ENV_VAR, "").strip()
    if raw in ("", "0"):
        return None
    if raw == "6":
        return 6
    raise ValueError(f"{COMPAT_ENV_VAR}={raw!r}: set it to 6 (IndexedRedis 6.x behaviour) or leave it unset")


def compat6() -> bool:
    """Whether 6.x behaviour is asked for (see the module docstring)."""
    return getCompatibility() == 6
