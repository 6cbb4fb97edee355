"""Expiry (TTL): what a model's ``TTL`` setting and a save's ``ttl`` mean, and how the
scripts are told about a model's expiry zset.  Pure: no I/O.

A model with ``TTL`` keeps, per generation, a sorted set ``g<N>:exp`` (``keys.py``) of
the pks of its objects that expire, scored by when (the server's clock, ms since the
epoch: clients' clocks never matter).  Every script that reads the model treats an
object whose expiry is at or before the server's ``TIME`` (read once per script) as
absent, so an expired object vanishes from every read at one instant; sweeps
(``flows/expiry.py``) then delete it for real, record and index entries in one
script.  A model without ``TTL`` declares no such key and pays nothing.

The scripts learn of the zset from the expected generation they are sent:
``<gen>+<key #>`` (keep it up to date, or filter by it), ``<gen>!<key #>`` (delete.lua:
a sweep, deleting only objects that are still expired); a plain ``<gen>`` for models
without TTL (``lib.lua``'s ``expected_gen``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .exceptions import FieldValueError, InvalidModelException

if TYPE_CHECKING:
    from .keys import GenerationKeys
    from .options import ModelOptions

__all__ = ["model_ttl", "save_ttl_ms", "expected", "KEEP", "NO_EXPIRY", "SWEEP_BATCH"]

#: What a save sends for an object's expiry: KEEP leaves a stored object's expiry as
#: it is (a new object gets none), NO_EXPIRY removes it, a positive number of ms sets it.
KEEP, NO_EXPIRY = -1, 0
#: Expired objects deleted per sweep script call (each deletes their records and entries).
SWEEP_BATCH = 100


def model_ttl(name: str, setting: Any) -> int | None:
    """A model's ``TTL``: None (no expiry: the model pays nothing), 0 (``TTL = True``:
    objects expire only when a save gives ``ttl``), or the default lifetime in ms
    (``TTL = seconds``, renewed by every save)."""
    if setting is None or setting is False:
        return None
    if setting is True:
        return 0
    if isinstance(setting, (int, float)) and not isinstance(setting, bool) and setting > 0:
        ms = round(setting * 1000)
        if ms >= 1:
            return ms
    raise InvalidModelException(
        f"Model {name}: TTL must be a number of seconds above 0 (the default lifetime of every saved object), "
        f"True (objects expire only when saved with ttl=...) or None; got {setting!r}")


def save_ttl_ms(meta: ModelOptions, ttl: Any) -> int:
    """What a save of an object of ``meta``'s model sends as its expiry (see KEEP):
    ``ttl`` in seconds (0: no expiry), or None for the model's default."""
    if ttl is None:
        return KEEP if not meta.ttl_ms else meta.ttl_ms
    if meta.ttl_ms is None:
        raise FieldValueError(
            f"{meta.name}.save(ttl={ttl!r}): the model has no TTL setting, so its objects cannot expire; "
            f"set TTL = seconds (a default lifetime) or TTL = True (per-save only) on the model")
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl < 0 or ttl != ttl:
        raise FieldValueError(
            f"{meta.name}.save(ttl=...): ttl is a number of seconds (0: no expiry), got {ttl!r}")
    if ttl == 0:
        return NO_EXPIRY
    return max(1, round(ttl * 1000))


def expected(meta: ModelOptions, gk: GenerationKeys, gen: int, number: Any, sweep: bool = False) -> int | bytes:
    """The expected generation a script is sent, naming the expiry zset (numbered by
    ``number``, a ``KeyNumbers`` or any key -> number function) for a TTL model; just
    ``gen`` for the others."""
    if meta.ttl_ms is None:
        return gen
    return b"%d%s%d" % (gen, b"!" if sweep else b"+", number(gk.exp))
