"""The counter of the lost-update tests, and the loops that increment it, shared by
threads and by spawned processes (so they live in an importable module).

Each loop does ``rounds`` increments of the counter with pk ``pk``; with a barrier, every
worker reads the counter before any of them writes it (the first attempt of each
increment waits at the barrier between its read and its write), which makes every round
a real race: a naive read, +1, save then loses all but one increment of the round.
"""

from __future__ import annotations

from typing import Any

from _models import _report, _use_url

from IndexedRedis import F, IndexedRedisModel, IRField
from IndexedRedis.exceptions import ConflictError


class Counter(IndexedRedisModel):
    FIELDS = ["name", IRField("n", valueType=int), "note"]
    INDEXED_FIELDS = ["name", "n"]
    KEY_NAME = "LostUpdate:Counter"


def naive(pk: int, rounds: int, barrier: Any) -> int:
    """read, +1, save: the lost-update bug.  Returns 0 (no conflicts are detected)."""
    for _ in range(rounds):
        counter = Counter.objects.get(pk)
        counter.n += 1
        barrier.wait(timeout=60)
        counter.save()
    return 0


def optimistic(pk: int, rounds: int, barrier: Any) -> int:
    """read, +1, save(ifUnchanged=True), again on ConflictError.  Returns the conflicts."""
    conflicts = 0
    for _ in range(rounds):
        first = True
        while True:
            counter = Counter.objects.get(pk)
            counter.n += 1
            if first:
                barrier.wait(timeout=60)
                first = False
            try:
                counter.save(ifUnchanged=True)
                break
            except ConflictError:
                conflicts += 1
    return conflicts


def by_update(pk: int, rounds: int, barrier: Any) -> int:
    """``update(n=F('n') + 1)`` on the counter's query.  Returns 0."""
    for _ in range(rounds):
        barrier.wait(timeout=60)
        updated = Counter.objects.filter(name="counter").update(n=F("n") + 1)
        assert updated == 1, updated
    return 0


LOOPS = {"naive": naive, "optimistic": optimistic, "update": by_update}


def counter_worker(url: str, loop: str, pk: int, rounds: int, barrier: Any, queue: Any) -> None:
    _report(queue, _counter_body, url, loop, pk, rounds, barrier)


def _counter_body(url: str, loop: str, pk: int, rounds: int, barrier: Any) -> int:
    _use_url(url)
    return LOOPS[loop](pk, rounds, barrier)
