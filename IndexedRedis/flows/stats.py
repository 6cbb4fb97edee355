"""``stats``: a model's size by kind of key, its indexes, generations, schemas and last
reset, in bounded steps (a SCAN of the model's own keys, SCARD / ZCARD of its index
keys pipelined a SCAN batch at a time, and MEMORY USAGE of at most ``sample`` keys of
each kind, extrapolated to the rest)."""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable
from typing import Any

import msgpack

from .. import scripts
from ..exceptions import IndexedRedisError
from ..keys import KeyInfo
from ..reports import IndexStats, KeyKindStats, StatsReport
from .context import Context
from .inspection import model_state_flow, scan_flow
from .requests import Command, Flow, ScriptCall

__all__ = ["stats_flow", "SAMPLE_KEYS", "MEMORY_KINDS"]

SAMPLE_KEYS = 200      # keys of each kind whose MEMORY USAGE is read
_MEMORY_STEP = 100     # keys per memory_usage.lua call
_SAMPLES = 5           # elements MEMORY USAGE samples in a big key (its default)
_LARGEST = 3           # biggest value sets shown per field

#: The kinds of key stats reports memory for, in the order shown.
MEMORY_KINDS = ("records", "ids", "expiry", "value sets", "null sets", "score indexes", "lex indexes",
                "text dictionaries", "bookkeeping",
                "former layouts", "other generations", "unknown")


def _number(raw: Any) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 0


class _Sampler:
    """Keys of one kind: counted, and a uniform sample of at most ``size`` kept."""

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size, self.rng = size, rng
        self.count = 0
        self.sample: list[bytes] = []

    def add(self, key: bytes) -> None:
        self.count += 1
        if len(self.sample) < self.size:
            self.sample.append(key)
        else:
            slot = self.rng.randrange(self.count)
            if slot < self.size:
                self.sample[slot] = key


def stats_flow(ctx: Context, sample: int = SAMPLE_KEYS,
               progress: Callable[[int], None] | None = None) -> Flow[StatsReport]:
    """Measure the model; ``progress(keys seen)`` is called after each SCAN step."""
    started = time.monotonic()
    meta, keys = ctx.meta, ctx.meta.keys
    report = StatsReport(meta.name, keys.prefix, current_schema=meta.codec.schema_tag)
    state = yield from model_state_flow(ctx)
    if isinstance(state, str):
        raise IndexedRedisError(f"Model {meta.name}: the generation pointer {keys.gen!r} holds {state}, "
                                f"not a generation number; run check")
    gen = report.generation = state.gen
    report.objects = state.records
    report.highest_pk = _number(state.nextpk)
    report.generations_handed_out = _number(state.genseq)
    report.staging = {_number(g): int(end - state.now_ms) for g, end in state.staging}
    report.dead = sorted(_number(g) for g in state.dead)
    for tag, packed in state.schemas:
        try:
            report.schemas[_number(tag)] = list(msgpack.unpackb(packed, raw=False))
        except Exception:  # noqa: BLE001 - check reports a bad entry; stats shows what it can
            continue
    if state.last_reset:
        last = {name: _number(value) for name, value in state.last_reset.items()}
        last["duration_ms"] = last.get("switched_ms", 0) - last.get("started_ms", 0)
        report.last_reset = last
    info = state.info
    report.evicted_keys = _number(info["evicted_keys"]) if "evicted_keys" in info else None
    report.maxmemory_policy = info.get("maxmemory_policy")
    report.used_memory = _number(info["used_memory"]) if "used_memory" in info else None

    rng = random.Random()
    samplers = {kind: _Sampler(sample, rng) for kind in MEMORY_KINDS}
    indexes = {name: IndexStats(name, _index_kinds(spec)) for name, spec in meta.specs.items()}
    largest: dict[str, list[tuple[int, str]]] = {name: [] for name in indexes}
    cursor, seen = 0, 0
    while True:
        cursor, found = yield from scan_flow(ctx, cursor)
        seen += len(found)
        counted: list[tuple[KeyInfo, bytes]] = []
        for key in found:
            info_ = keys.classify(key)
            kind = _kind(meta, gen, info_)
            samplers[kind].add(key)
            if kind in ("value sets", "null sets", "score indexes", "lex indexes"):
                counted.append((info_, key))
        if counted:
            sizes = yield [Command(("SCARD" if info_.kind in ("value", "null") else "ZCARD", key))
                           for info_, key in counted]
            for (info_, _), size in zip(counted, sizes):
                index = indexes[info_.field]  # type: ignore[index]
                size = int(size)
                if info_.kind == "value":
                    index.values += 1
                    index.entries += size
                    value = (info_.value or b"").decode("utf-8", "backslashreplace")
                    heap = largest[index.field]
                    if len(heap) < _LARGEST:
                        heapq.heappush(heap, (size, value))
                    else:
                        heapq.heappushpop(heap, (size, value))
                elif info_.kind == "null":
                    index.nulls += size
                elif info_.kind == "score":
                    index.scored = size
                else:
                    index.lexed = size
        if progress is not None:
            progress(seen)
        if cursor == 0:
            break
    for name, heap in largest.items():
        indexes[name].largest = [(value, size) for size, value in sorted(heap, reverse=True)]
    report.indexes = list(indexes.values())

    for kind in MEMORY_KINDS:
        sampler = samplers[kind]
        if not sampler.count:
            continue
        measured = 0
        for start in range(0, len(sampler.sample), _MEMORY_STEP):
            part = sampler.sample[start:start + _MEMORY_STEP]
            reply = yield ScriptCall(scripts.MEMORY_USAGE, part, (_SAMPLES,))
            measured += sum(int(size) for size in reply[1:])
        stats = KeyKindStats(keys=sampler.count, sampled=len(sampler.sample))
        stats.bytes = measured if stats.sampled == stats.keys else round(measured * stats.keys / stats.sampled)
        report.memory[kind] = stats
    report.seconds = time.monotonic() - started
    return report


def _index_kinds(spec: Any) -> tuple[str, ...]:
    return ("value",) + (("score",) if spec.numeric else ()) + (("lex",) if spec.lex else ())


def _kind(meta: Any, gen: int, info: KeyInfo) -> str:
    """The memory kind of a key of the model."""
    if info.kind == "unknown":
        return "unknown"
    if info.gen is None:
        return "bookkeeping"
    if info.gen != gen:
        return "other generations"
    if info.kind == "objs":
        return "records"
    if info.kind == "ids":
        return "ids"
    if info.kind in ("layout", "union"):  # union: a text lookup's scratch, gone in seconds
        return "bookkeeping"
    if info.kind == "exp":
        return "expiry"
    spec = meta.specs.get(info.field)
    if info.kind in ("dict", "fold"):
        return "text dictionaries" if spec is not None and spec.text else "former layouts"
    if spec is None or (info.kind == "score" and not spec.numeric) or (info.kind == "lex" and not spec.lex):
        return "former layouts"
    return {"value": "value sets", "null": "null sets", "score": "score indexes", "lex": "lex indexes"}[info.kind]
