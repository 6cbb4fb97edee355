"""What every flow shares: script reply statuses, bounds, and following the current
generation of a model's data."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from redis.exceptions import OutOfMemoryError as RedisOutOfMemory
from redis.exceptions import ResponseError

from ..exceptions import ConcurrencyError, CorruptRecordError, NotReplicatedError, OutOfMemoryError
from .context import Context
from .requests import Flow, ScriptCall

if TYPE_CHECKING:
    from ..options import ModelOptions

__all__ = ["STALE_GEN", "OK", "STALE_VALUES", "MISSING", "UNIQUE_CLASH", "CONFLICT", "MAX_ATTEMPTS", "RESET_BATCH",
           "FREE_BATCH", "SAVE_BATCH", "RESET_LEASE_MS", "found_pks", "script", "call_current", "KeyNumbers"]

# Script reply statuses (the first item of a reply; scripts/lib.lua has the same).
STALE_GEN, OK, STALE_VALUES, MISSING, UNIQUE_CLASH, CONFLICT = 0, 1, 2, 3, 4, 5
MAX_ATTEMPTS = 200         # retries of one operation racing other writers or resets
RESET_BATCH = 100          # objects per reset script call: bounds how long one call runs
FREE_BATCH = 200           # records read per HSCAN step when freeing a dead generation
SAVE_BATCH = 1000          # objects per script call in the non-atomic bulk paths
#: How long a reset's lease lasts (ms); every batch it writes renews it.  A staging
#: generation whose lease lapsed was left by a reset that died (or stalled that long),
#: and the next reset or repair frees it.
RESET_LEASE_MS = 10_000


def found_pks(text: bytes | str | None) -> list[int]:
    """The pks of a query script's records reply: their decimal digits joined by commas
    (see query.lua), read by the json module's C parser."""
    if not text:
        return []
    return json.loads(b"[%s]" % text if isinstance(text, bytes) else f"[{text}]")  # type: ignore[no-any-return]


def script(metas: Sequence[ModelOptions], request: ScriptCall) -> Flow[Any]:
    """Send a script call; a stored record whose schema tag the schemas hash lacks
    (the script then fails before writing anything) becomes a clear error.

    A write of a model with ``WAIT_REPLICAS`` goes with a ``WAIT`` in the same round
    trip, on the same connection; a write that too few replicas acknowledged in time
    raises ``NotReplicatedError`` (it was applied on the master).
    """
    wait = max((meta.wait for meta in metas), default=(0, 0))
    try:
        if request.readonly or not wait[0]:
            return (yield request)
        reply, acknowledged = yield replace(request, wait=wait)
    except ResponseError as exc:
        # Redis 7 names a script's refused write "OOM ..."; 6.2 wraps it as "Error running
        # script (...): ... -OOM command not allowed ...".
        if isinstance(exc, RedisOutOfMemory) or re.match(r"OOM |.*-OOM ", str(exc)):
            raise OutOfMemoryError(
                f"Model {', '.join(m.name for m in metas)}: Redis refused the write, its memory is full "
                f"(maxmemory reached: {exc}); nothing of it was written. Free memory, raise maxmemory, or "
                f"delete data") from None
        names = ", ".join(m.name for m in metas)
        text = str(exc)
        if "IR_CORRUPT_RECORD" in text:  # a stored record that is not our data, read before the first write
            raise CorruptRecordError(
                f"Model {names}: a stored record is not IndexedRedis data (malformed msgpack, or not a "
                f"record); nothing was written. Delete that record, or reset the model") from None
        if text.startswith("WRONGTYPE") or "WRONGTYPE" in text:
            raise CorruptRecordError(
                f"Model {names}: a key under the model's prefix holds another type of value, so something "
                f"else wrote it ({text.split(' script: ')[0]}); the write may have stopped part way. "
                f"Remove the foreign key, then reindex the model") from None
        match = re.search(r"IR_UNKNOWN_SCHEMA (\d+) ", text)
        if match is None:
            raise
        raise CorruptRecordError(
            f"Model {names}: a stored record carries schema tag {match[1]}, which the "
            f"model's schemas hash does not hold (the data was not written by IndexedRedis, "
            f"or the hash was deleted); nothing was written") from None
    if reply[0] == OK and int(acknowledged) < wait[0]:
        names = ", ".join(m.name for m in metas)
        raise NotReplicatedError(
            f"Model {names}: the write was applied on the master, but only {acknowledged} of "
            f"{wait[0]} replicas acknowledged it within {wait[1]} ms (WAIT_REPLICAS); it may be "
            f"lost if the master fails before they catch up", int(acknowledged), wait[0])
    return reply


def call_current(ctx: Context, build: Callable[[int], ScriptCall]) -> Flow[list[Any]]:
    """Run a script against the current generation, following it if it moves."""
    for _ in range(MAX_ATTEMPTS):
        reply = yield from script((ctx.meta,), build(ctx.gen))
        if reply[0] != STALE_GEN:
            return reply
        ctx.gen = int(reply[1])
    raise ConcurrencyError(f"{ctx.meta.name}: the dataset kept being reset during the operation")


class KeyNumbers:
    """Collects a script's KEYS, numbering each distinct key once (1-based, as in Lua)."""

    __slots__ = ("keys", "_numbers")

    def __init__(self, fixed: Iterable[bytes]) -> None:
        self.keys = list(fixed)
        self._numbers: dict[bytes, int] = {}

    def __call__(self, key: bytes) -> int:
        number = self._numbers.get(key)
        if number is None:
            self.keys.append(key)
            number = self._numbers[key] = len(self.keys)
        return number
