"""One model's client-side cache on one server (and db): cached objects and query
results, LRU by bytes, dropped exactly as the server's invalidation messages say.

The model's keys arrive here relative to its prefix (``ir:{TAG}:``):

* ``gen``: a reset switched the generation pointer: everything goes.
* ``cached``: the model's cache flag changed (another process renewed it, or it was
  deleted): the tracker checks it before the next read is served.
* ``g<N>:t:<pk>``: the object with that pk changed (its stamp, see ``keys.py``): its
  entry goes, and every cached query result that holds it.
* ``g<N>:objs``: ignored; the stamps name the pk.
* any other ``g<N>:...`` key (ids, index sets and sorted sets): the query results that
  read it go.

A fetch may start before a write and finish after it; its result must not be stored
once the write's invalidation has been applied.  Every applied invalidation gets a
sequence number (``seq``) and is remembered per key (``recent``), so a store carries
the ``seq`` its read started at (its *token*) and is refused for any key invalidated
since, or for everything after a flush.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..keys import DATA, FLAG, GENERATION, ModelKeys

__all__ = ["ModelCache", "CacheStats", "Token", "DEFAULT_BUDGET", "budget_of"]

#: Bytes one model's cache may hold on one server unless told otherwise.
DEFAULT_BUDGET = 64 << 20

_RECENT_LIMIT = 20_000  # keys remembered as invalidated; past that, older stores are refused wholesale
_ENTRY_OVERHEAD = 200  # bytes per entry beyond its objects: the LRU node, the key, the dependency sets


#: Where a cache stood when a read began: (the cache, its flush epoch, its invalidation
#: count).  The cache itself is part of it: on a cluster, the read may end at another
#: node's cache than it began at (the slot moved), and that one's counts mean nothing here.
Token = tuple[Any, int, int]


@dataclass
class CacheStats:
    """Counters of a cache (or a sum of caches)."""

    hits: int = 0
    misses: int = 0
    invalidations: int = 0  # entries dropped because the server said their data changed
    flushes: int = 0  # times everything was dropped (reset, lost connection, flag lapsed, slot moved)
    refused: int = 0  # fetched entries not stored: an invalidation for them arrived meanwhile
    evictions: int = 0  # entries dropped to stay within the budget
    bytes: int = 0
    entries: int = 0
    budget: int = 0

    def add(self, other: CacheStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def budget_of(setting: Any, where: str) -> int | None:
    """A cache switch as a byte budget: True -> DEFAULT_BUDGET, an int > 0 -> itself,
    ``{"max_bytes": n}`` -> n, False / None / 0 -> None (no cache)."""
    if isinstance(setting, dict):
        unknown = set(setting) - {"max_bytes"}
        if unknown:
            raise ValueError(f"{where}: unknown client cache option(s) {', '.join(map(repr, sorted(unknown)))}; "
                             f"the only one is 'max_bytes'")
        setting = setting.get("max_bytes", True)
    if setting is None or setting is False or setting == 0:
        return None
    if setting is True:
        return DEFAULT_BUDGET
    if isinstance(setting, int) and setting > 0:
        return setting
    raise ValueError(f"{where}: the client cache switch is True, False, a byte budget (an int > 0) or "
                     f"{{'max_bytes': n}}; got {setting!r}")


def object_size(obj: Any) -> int:
    """Bytes an instance holds: itself, its attribute dict and the values in it (the
    stored record's tuple shares the values, so only its own array counts)."""
    state = obj.__dict__
    size = sys.getsizeof(obj) + sys.getsizeof(state)
    for value in state.values():
        size += sys.getsizeof(value)
    return size


class _Entry:
    __slots__ = ("value", "size", "deps")

    def __init__(self, value: Any, size: int, deps: tuple[bytes, ...]) -> None:
        self.value = value
        self.size = size
        self.deps = deps


class ModelCache:
    """The cache of one model on one server and db.  Not thread-safe by itself: its
    tracker's lock guards every call."""

    def __init__(self, name: str, keys: ModelKeys, budget: int) -> None:
        self.name = name
        self.keys = keys
        self.prefix = keys.prefix
        self._cut = len(keys.prefix)
        self.budget = budget
        self.gen: int | None = None  # the generation the entries belong to
        self.lru: OrderedDict[Any, _Entry] = OrderedDict()  # pk (an int) / ("q", query key) -> entry
        self.by_dep: dict[bytes, set[Any]] = {}  # key (relative to prefix) -> entries that read it
        self.bytes = 0
        self.epoch = 0
        self.seq = 0
        self.floor = 0  # stores whose read began before this seq are refused
        self.recent: dict[bytes, int] = {}
        self.stats = CacheStats(budget=budget)  # its hits are counted apart (``hits``: the hot path)
        self.hits = 0
        #: Set by the tracker: the flag's state (see Tracker.ready).
        self.flag_set_at = 0.0
        self.flag_uncertain = False
        self.flag_epoch = -1  # the tracker epoch the flag was set in
        #: Until then (monotonic time) a read needs nothing but a poll: the flag is fresh,
        #: the server was heard from lately (0: something needs a look first).
        self.steady_until = 0.0

    def snapshot(self) -> CacheStats:
        """The counters as they stand."""
        return replace(self.stats, hits=self.hits)

    # ---- reading ----------------------------------------------------------------------

    def token(self) -> Token:
        return (self, self.epoch, self.seq)

    def get_objects(self, gen: int, pks: Sequence[int]) -> list[Any]:
        """The cached instances of these pks (None where not cached)."""
        lru, stats = self.lru, self.stats
        if gen != self.gen:
            stats.misses += len(pks)
            return [None] * len(pks)
        out: list[Any] = []
        for pk in pks:
            entry = lru.get(pk)
            if entry is None:
                stats.misses += 1
                out.append(None)
            else:
                lru.move_to_end(pk)
                self.hits += 1
                out.append(entry.value)
        return out

    def peek_objects(self, gen: int | None, pks: Sequence[int]) -> list[Any] | None:
        """The cached instances of all these pks, or None (no miss is counted: the read
        that follows counts it).  ``gen`` None: of whatever generation they are."""
        if gen != self.gen and gen is not None:
            return None
        lru = self.lru
        if len(pks) == 1:  # a get by pk: the hot path
            pk = pks[0]
            entry = lru.get(pk)
            if entry is None:
                return None
            lru.move_to_end(pk)
            self.hits += 1
            return [entry.value]
        entries = [lru.get(pk) for pk in pks]
        if None in entries:
            return None
        for pk in pks:
            lru.move_to_end(pk)
        self.hits += len(pks)
        return [entry.value for entry in entries]  # type: ignore[union-attr]

    def peek_query(self, gen: int | None, query: Any) -> Any:
        """A cached query result, or None (uncounted, as for ``peek_objects``)."""
        key = ("q", query)
        entry = self.lru.get(key) if gen == self.gen or gen is None else None
        if entry is None:
            return None
        self.lru.move_to_end(key)
        self.hits += 1
        return entry.value

    def get_query(self, gen: int, query: Any) -> Any:
        """A cached query result (a tuple of instances), or None."""
        entry = self.lru.get(("q", query)) if gen == self.gen else None
        if entry is None:
            self.stats.misses += 1
            return None
        self.lru.move_to_end(("q", query))
        self.hits += 1
        return entry.value

    # ---- storing ----------------------------------------------------------------------

    def _fresh(self, token: Token, keys: Iterable[bytes]) -> bool:
        cache, epoch, seq = token
        if cache is not self or epoch != self.epoch or seq < self.floor:
            return False
        recent = self.recent
        return all(recent.get(key, -1) <= seq for key in keys)

    def _adopt(self, gen: int) -> bool:
        """Whether entries of generation ``gen`` may be stored (the newer one wins)."""
        if self.gen == gen:
            return True
        if self.gen is None:
            self.gen = gen
            return True
        if gen < self.gen:
            return False
        self.flush()  # a newer generation: the reset's own invalidation may still be on its way
        self.gen = gen
        return False

    def store_objects(self, token: Token, gen: int, objs: Sequence[tuple[int, Any]]) -> None:
        if not self._adopt(gen):
            self.stats.refused += len(objs)
            return
        for pk, obj in objs:
            stamp = self._stamp(gen, pk)
            if not self._fresh(token, (stamp,)):
                self.stats.refused += 1
                continue
            self._put(pk, obj, object_size(obj) + _ENTRY_OVERHEAD, (stamp,))

    def store_query(self, token: Token, gen: int, query: Any, objs: Sequence[Any], deps: Sequence[bytes]) -> None:
        """A query result; ``deps`` are the keys it read (relative to the prefix)."""
        if not self._adopt(gen):
            self.stats.refused += 1
            return
        stamps = [self._stamp(gen, obj._id) for obj in objs]
        keys = (*deps, *stamps)
        if not self._fresh(token, keys):
            self.stats.refused += 1
            return
        size = sys.getsizeof(objs) + _ENTRY_OVERHEAD + 64 * len(keys) + sum(object_size(obj) for obj in objs)
        self._put(("q", query), tuple(objs), size, keys)
        self.store_objects(token, gen, [(obj._id, obj) for obj in objs])

    def _stamp(self, gen: int, pk: int) -> bytes:
        """An object's stamp, named as invalidations name it here (relative to the prefix)."""
        return self.keys.generation(gen).stamp(pk)[self._cut:]

    def _put(self, key: Any, value: Any, size: int, deps: tuple[bytes, ...]) -> None:
        if size > self.budget:
            return
        self._drop(key)
        self.lru[key] = _Entry(value, size, deps)
        self.bytes += size
        for dep in deps:
            found = self.by_dep.get(dep)
            if found is None:
                self.by_dep[dep] = {key}
            else:
                found.add(key)
        while self.bytes > self.budget:
            old, _ = next(iter(self.lru.items()))
            self._drop(old)
            self.stats.evictions += 1
        self.stats.bytes, self.stats.entries = self.bytes, len(self.lru)

    def _drop(self, key: Any) -> bool:
        entry = self.lru.pop(key, None)
        if entry is None:
            return False
        self.bytes -= entry.size
        by_dep = self.by_dep
        for dep in entry.deps:
            found = by_dep.get(dep)
            if found is not None:
                found.discard(key)
                if not found:
                    del by_dep[dep]
        return True

    # ---- invalidating -------------------------------------------------------------------

    def invalidate(self, rest: bytes) -> None:
        """The server says the model's key ``prefix + rest`` changed."""
        kind = self.keys.change_kind(rest)
        if kind is GENERATION:
            self.flush()
            return
        if kind is FLAG:
            self.flag_uncertain = True
            self.steady_until = 0.0
            return
        if kind is not DATA:
            return  # bookkeeping (nextpk, genseq, staging, dead, schemas), or records: stamps name the pks
        self.seq += 1
        recent = self.recent
        if len(recent) >= _RECENT_LIMIT:
            recent.clear()
            self.floor = self.seq
        recent[rest] = self.seq
        keys = self.by_dep.pop(rest, None)
        if keys:
            for key in list(keys):
                if self._drop(key):
                    self.stats.invalidations += 1
            self.stats.bytes, self.stats.entries = self.bytes, len(self.lru)

    def flush(self, count: bool = True) -> None:
        """Drop everything; reads that began before are not stored."""
        if count:
            self.stats.flushes += 1
        self.lru.clear()
        self.by_dep.clear()
        self.recent.clear()
        self.bytes = 0
        self.gen = None
        self.epoch += 1
        self.seq += 1
        self.floor = self.seq
        self.stats.bytes = self.stats.entries = 0
