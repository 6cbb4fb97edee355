"""Reading a model's bookkeeping at one instant (for ``check`` and ``stats``), and
walking its keys with SCAN."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import scripts
from ..exceptions import ConcurrencyError
from .common import MAX_ATTEMPTS, STALE_GEN, script
from .context import Context
from .requests import Command, Flow, ScriptCall

__all__ = ["ModelState", "model_state_flow", "scan_flow", "parse_info", "SCAN_COUNT"]

#: Keys asked for per SCAN step (SCAN's COUNT: the work of one step is bounded by it).
SCAN_COUNT = 500


def _text(raw: Any) -> str:
    return raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else str(raw)


def parse_info(raw: Any) -> dict[str, str]:
    """An INFO reply (text, or a dict already parsed by a client) as name -> value text."""
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    out = {}
    for line in _text(raw).splitlines():
        name, sep, value = line.partition(":")
        if sep and not name.startswith("#"):
            out[name.strip()] = value.strip()
    return out


def _pairs(flat: Sequence[Any]) -> list[tuple[Any, Any]]:
    return list(zip(flat[::2], flat[1::2]))


@dataclass
class ModelState:
    """What check_state.lua read: raw where the checker must judge it."""

    gen: int
    pointer: bytes | None                 # the generation pointer as stored (None: absent)
    wrong_types: dict[bytes, str]         # bookkeeping (or live objs/ids) keys of another type
    genseq: bytes | None
    nextpk: bytes | None
    staging: list[tuple[bytes, float]]    # generation, when its lease lapses (server ms)
    dead: list[bytes]
    schemas: list[tuple[bytes, bytes]]    # tag, packed field names
    last_reset: dict[str, str]
    now_ms: int
    records: int
    ids: int                              # blocks of pks in the ids zset (ZCARD; see lib.lua)
    info: dict[str, str] = field(default_factory=dict)


def model_state_flow(ctx: Context) -> Flow[ModelState | str]:
    """The model's bookkeeping; or, when the generation pointer cannot be read (another
    type, not a number), what it holds instead."""
    keys = ctx.meta.keys
    for _ in range(MAX_ATTEMPTS):
        gk = keys.generation(ctx.gen)
        fixed = (keys.gen, keys.genseq, keys.nextpk, keys.staging, keys.dead, keys.schemas, keys.lastreset,
                 gk.objs, gk.ids)
        reply = yield from script((ctx.meta,), ScriptCall(scripts.CHECK_STATE, fixed, (ctx.gen,)))
        if reply[0] == 2:
            return f"a {_text(reply[1])}"
        if reply[0] == STALE_GEN:
            raw = reply[1]
            if not raw.isdigit() or str(int(raw)).encode() != raw:
                return repr(raw)
            ctx.gen = int(raw)
            continue
        (_, types, gen_raw, genseq, nextpk, staging, dead, schemas, last_reset, now_ms, records, ids,
         info_stats, info_memory) = reply
        wrong = {key: _text(kind) for key, kind in zip(fixed, types) if kind}
        info = {**parse_info(info_stats), **parse_info(info_memory)}
        return ModelState(
            gen=ctx.gen, pointer=gen_raw, wrong_types=wrong, genseq=genseq or None, nextpk=nextpk or None,
            staging=[(g, float(score)) for g, score in _pairs(staging)], dead=list(dead),
            schemas=_pairs(schemas), last_reset={_text(k): _text(v) for k, v in _pairs(last_reset)},
            now_ms=int(now_ms), records=int(records), ids=int(ids), info=info)
    raise ConcurrencyError(f"{ctx.meta.name}: the dataset kept being reset while it was inspected")


def scan_flow(ctx: Context, cursor: int) -> Flow[tuple[int, list[bytes]]]:
    """One bounded SCAN step over the model's keys (MATCH its own hash-tagged prefix),
    on the node that holds them."""
    keys = ctx.meta.keys
    reply = yield Command(("SCAN", cursor, "MATCH", keys.pattern, "COUNT", SCAN_COUNT), key=keys.gen)
    next_cursor, found = reply
    return int(next_cursor), list(found)
