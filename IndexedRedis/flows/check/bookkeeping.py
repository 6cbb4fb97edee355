"""check: a model's bookkeeping (pointers, counters, leases, schema tags) and the
server's eviction figures, judged from what check_state.lua read at one instant."""

from __future__ import annotations

import msgpack

from ...records import schema_tag
from ..inspection import ModelState
from ..requests import Command, Flow
from .state import CheckPass, Fix, apply, pk_of

__all__ = ["server", "bookkeeping", "counters"]


def server(p: CheckPass, state: ModelState) -> None:
    evicted = state.info.get("evicted_keys")
    p.report.evicted_keys = int(evicted) if evicted and evicted.isdigit() else None
    p.report.maxmemory_policy = state.info.get("maxmemory_policy")


def bookkeeping(p: CheckPass, state: ModelState) -> list[Fix]:
    """Judge pointers, counters, leases and schema tags; returns the fixes to make
    before anything is freed (a live generation marked dead must be unmarked first)."""
    report, keys = p.report, p.keys
    for key, kind in state.wrong_types.items():
        p.wrong_type(key, kind)
    fixes: list[Fix] = []
    top = p.gen
    for gen_raw, lease_end in state.staging:
        gen = pk_of(gen_raw)
        if gen is None:
            report.add("bad_pointer", keys.staging, detail=f"staging lists {gen_raw!r}, not a generation")
        elif gen == p.gen:
            report.add("live_marked_dead", keys.staging, detail=f"the live generation {gen} is listed as staging")
            fixes.append(Fix("live_marked_dead", b"ZREM", keys.staging, gen_raw))
        elif lease_end > state.now_ms:
            p.running.add(gen)
            report.running_resets[gen] = int(lease_end - state.now_ms)
        else:
            p.abandoned.add(gen)
        top = max(top, gen or 0)
    for gen_raw in state.dead:
        gen = pk_of(gen_raw)
        if gen is None:
            report.add("bad_pointer", keys.dead, detail=f"the dead set lists {gen_raw!r}, not a generation")
        elif gen == p.gen:
            report.add("live_marked_dead", keys.dead, detail=f"the live generation {gen} is in the dead set")
            fixes.append(Fix("live_marked_dead", b"SREM", keys.dead, gen_raw))
        else:
            p.dead.add(gen)
        top = max(top, gen or 0)
    genseq = _counter(p, keys.genseq, state.genseq)
    if genseq is not None and genseq < top:
        report.add("counter_behind", keys.genseq,
                   detail=f"the generation counter is {genseq}, but generation {top} exists")
        fixes.append(Fix("counter_behind", b"MAX", keys.genseq, top))
    for tag_raw, packed in state.schemas:
        names = _schema(p, tag_raw, packed)
        if names is not None:
            p.schemas[int(tag_raw)] = names
    return fixes


def _counter(p: CheckPass, key: bytes, raw: bytes | None) -> int | None:
    if raw is None:
        return 0
    value = pk_of(raw)
    if value is None:
        p.report.add("bad_pointer", key, detail=f"holds {raw!r}, not a number")
    return value


def _schema(p: CheckPass, tag_raw: bytes, packed: bytes) -> tuple[str, ...] | None:
    try:
        names = msgpack.unpackb(packed, raw=False, use_list=False)
    except Exception:  # noqa: BLE001 - anything unreadable is reported
        names = None
    if (not isinstance(names, tuple) or not all(isinstance(n, str) for n in names) or pk_of(tag_raw) is None
            or schema_tag(names) != int(tag_raw)):
        p.report.add("bad_schema", p.keys.schemas,
                        detail=f"tag {tag_raw.decode('ascii', 'backslashreplace')} -> {packed[:60]!r}")
        return None
    return names


def counters(p: CheckPass) -> Flow[None]:
    """The pk counter against the highest pk seen (read after the records: objects
    saved meanwhile moved it on)."""
    nextpk = _counter(p, p.keys.nextpk, (yield Command(("GET", p.keys.nextpk))))
    if nextpk is not None and nextpk < p.max_pk:
        p.report.add("counter_behind", p.keys.nextpk,
                        detail=f"the pk counter is {nextpk}, but pk {p.max_pk} is stored")
        if p.repair:
            yield from apply(p, [Fix("counter_behind", b"MAX", p.keys.nextpk, p.max_pk)])
