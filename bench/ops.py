"""The operations of the standard workload (../shared/bench/WORKLOAD.md), run the same
way against every implementation.

An implementation is an *adapter* (see :class:`Adapter`); :func:`run_round` times each
operation as a whole over it and checks every answer, so nobody wins by doing less.
This module uses the standard library only: it also runs inside bench/.venv-ir6 (for
IndexedRedis 6.0.3), where our package is not importable.
"""

from __future__ import annotations

import gc
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from .workload import ARTISTS, rows

OPERATIONS = ["insert_one", "insert_bulk", "filter_eq", "filter_ne", "get_pk", "memory"]
TIMED = OPERATIONS[:-1]


@dataclass
class Plan:
    """What one round does: the dataset size and the (seeded) query arguments."""

    n: int = 20_000
    eq_queries: int = 500
    ne_queries: int = 50
    gets: int = 500
    seed: int = 7

    def artists(self) -> list[str]:
        rng = random.Random(self.seed)
        return [f"artist-{rng.randrange(min(ARTISTS, self.n))}" for _ in range(self.eq_queries)]

    def tracks(self) -> list[str]:
        rng = random.Random(self.seed + 1)
        return [str(rng.randrange(12) + 1) for _ in range(self.ne_queries)]

    def get_indices(self) -> list[int]:
        rng = random.Random(self.seed + 2)
        return [rng.randrange(self.n) for _ in range(self.gets)]

    def to_json(self) -> dict[str, int]:
        return asdict(self)


class Adapter:
    """One implementation of the workload.  Subclasses override what they support; an
    operation left as ``NotImplemented`` is reported as n/a."""

    name = "?"
    #: footnotes for the report, per operation: how this implementation does it
    notes: dict[str, str] = {}
    #: for an implementation too slow to run all of an operation in the time a run may
    #: take: the most rows (insert_one) or queries (filter_eq, filter_ne) to run; the time
    #: is then scaled up linearly to the plan's count (the rows and queries are alike)
    #: and the report says so
    caps: dict[str, int] = {}

    def versions(self) -> dict[str, str]:
        return {}

    def clear(self) -> None:
        """Make the store empty (a FLUSHDB of the adapter's own db, or fresh tables)."""
        raise NotImplementedError

    def used_memory(self) -> int | None:
        """Redis ``used_memory`` of the server, or None (SQL)."""
        return None

    def server_cpu(self) -> float | None:
        """The Redis server's CPU seconds so far, or None (SQL): see ``redis_cpu``."""
        return None

    def insert_one(self, rows: list[dict[str, str]]) -> list[Any]:
        """Save each row as one object, one at a time; return the pks in row order."""
        raise NotImplementedError

    def insert_bulk(self, rows: list[dict[str, str]]) -> list[Any]:
        """Store all rows through the bulk path; return the pks in row order."""
        raise NotImplementedError

    def filter_eq(self, artist: str) -> list[Any]:
        raise NotImplementedError

    def filter_ne(self, track: str) -> list[Any]:
        raise NotImplementedError

    def get(self, pk: Any) -> Any:
        raise NotImplementedError

    def value(self, obj: Any, name: str) -> str:
        """A field's value on a returned object, as text."""
        return str(getattr(obj, name))

    def close(self) -> None:
        pass


@dataclass
class Dataset:
    """The rows of a plan, and the answers every query must give."""

    plan: Plan
    rows: list[dict[str, str]] = field(init=False)
    per_artist: Counter[str] = field(init=False)
    per_track: Counter[str] = field(init=False)

    def __post_init__(self) -> None:
        self.rows = list(rows(self.plan.n))
        self.per_artist = Counter(r["artist"] for r in self.rows)
        self.per_track = Counter(r["track_number"] for r in self.rows)


def redis_cpu(info: dict[str, Any]) -> float:
    """CPU seconds from ``INFO cpu``: the main thread's where Redis reports it (6.2+; so
    lazy-free and I/O threads do not count), else the process's."""
    if "used_cpu_user_main_thread" in info:
        return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _timed(fn: Any, *args: Any) -> tuple[float, Any]:
    gc.collect()
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


class _ServerCpu:
    """Server CPU µs per unit of work of each timed operation, into ``out['cpu_us']``."""

    def __init__(self, adapter: Adapter, out: dict[str, Any]) -> None:
        self.adapter = adapter
        self.per_op: dict[str, float] = out.setdefault("cpu_us", {})
        self.start: float | None = None

    def begin(self) -> None:
        self.start = self.adapter.server_cpu()

    def end(self, op: str, units: int) -> None:
        end = self.adapter.server_cpu()
        if self.start is not None and end is not None and units:
            self.per_op[op] = (end - self.start) / units * 1e6


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise AssertionError(message)


def run_round(adapter: Adapter, data: Dataset) -> dict[str, Any]:
    """Run every operation once against ``adapter``; return seconds per operation (and
    bytes for memory), None for what the adapter cannot do.  Raises AssertionError if
    an answer is wrong."""
    plan, n = data.plan, data.plan.n
    out: dict[str, Any] = dict.fromkeys(OPERATIONS)
    out["scaled"] = {}
    name = adapter.name
    probe = data.rows[0]["artist"]

    def supported(op: str) -> bool:
        return getattr(type(adapter), op) is not getattr(Adapter, op)

    def capped(op: str, args: list[Any]) -> tuple[list[Any], float]:
        cap = adapter.caps.get(op)
        if cap is None or cap >= len(args):
            return args, 1.0
        out["scaled"][op] = [cap, len(args)]
        return args[:cap], len(args) / cap

    # insert_one -------------------------------------------------------------------------
    cpu = _ServerCpu(adapter, out)
    adapter.clear()
    if supported("insert_one"):
        some, factor = capped("insert_one", data.rows)
        cpu.begin()
        out["insert_one"], pks = _timed(adapter.insert_one, some)
        cpu.end("insert_one", len(some))
        out["insert_one"] *= factor
        _check(len(pks) == len(some), f"{name} insert_one: {len(pks)} pks for {len(some)} rows")
        found, expected = adapter.filter_eq(probe), sum(r["artist"] == probe for r in some)
        _check(len(found) == expected,
               f"{name} insert_one: {len(found)} objects of {probe}, expected {expected}")
        adapter.clear()

    # insert_bulk + memory ---------------------------------------------------------------
    before = adapter.used_memory()
    cpu.begin()
    out["insert_bulk"], pks = _timed(adapter.insert_bulk, data.rows)
    cpu.end("insert_bulk", n)
    after = adapter.used_memory()
    if before is not None and after is not None:
        out["memory"] = after - before
    _check(len(pks) == n and len(set(pks)) == n, f"{name} insert_bulk: {len(set(pks))} distinct pks for {n}")

    # filter_eq --------------------------------------------------------------------------
    artists, factor = capped("filter_eq", plan.artists())

    def filter_eq() -> tuple[list[int], Any]:
        sizes, last = [], None
        for artist in artists:
            last = adapter.filter_eq(artist)
            sizes.append(len(last))
        return sizes, last

    cpu.begin()
    out["filter_eq"], (sizes, last) = _timed(filter_eq)
    cpu.end("filter_eq", len(artists))
    out["filter_eq"] *= factor
    expected = [data.per_artist[a] for a in artists]
    _check(sizes == expected, f"{name} filter_eq: sizes {sizes[:5]}... expected {expected[:5]}...")
    _check(all(adapter.value(o, "artist") == artists[-1] for o in last), f"{name} filter_eq: wrong objects")
    titles = {r["title"] for r in data.rows if r["artist"] == artists[-1]}
    _check({adapter.value(o, "title") for o in last} == titles, f"{name} filter_eq: wrong objects")

    # filter_ne --------------------------------------------------------------------------
    if supported("filter_ne"):
        tracks, factor = capped("filter_ne", plan.tracks())

        def filter_ne() -> tuple[list[int], Any]:
            sizes, last = [], None
            for track in tracks:
                last = adapter.filter_ne(track)
                sizes.append(len(last))
            return sizes, last

        cpu.begin()
        out["filter_ne"], (sizes, last) = _timed(filter_ne)
        cpu.end("filter_ne", len(tracks))
        out["filter_ne"] *= factor
        expected = [n - data.per_track[t] for t in tracks]
        _check(sizes == expected, f"{name} filter_ne: sizes {sizes[:5]}... expected {expected[:5]}...")
        _check(all(adapter.value(o, "track_number") != tracks[-1] for o in last),
               f"{name} filter_ne: wrong objects")
        del last

    # get_pk -----------------------------------------------------------------------------
    indices = plan.get_indices()
    wanted = [pks[i] for i in indices]

    def get_pk() -> list[Any]:
        return [adapter.get(pk) for pk in wanted]

    cpu.begin()
    out["get_pk"], got = _timed(get_pk)
    cpu.end("get_pk", len(wanted))
    for i, obj in zip(indices, got):
        _check(obj is not None and adapter.value(obj, "title") == f"title-{i}",
               f"{name} get_pk: pk {pks[i]} gave {obj!r}, expected title-{i}")
    adapter.clear()
    return out
