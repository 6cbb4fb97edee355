"""Lost updates (issue 12): 8 workers each doing 100 increments of one counter.

The naive read, +1, save loses increments (asserted, so these tests can fail);
``save(ifUnchanged=True)`` with a retry loop, and ``update(n=F('n') + 1)``, end at
exactly 800, with threads and with processes on a real server.  A barrier makes each
round a real race (every worker has read before any writes).
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from _counter_models import LOOPS, Counter, counter_worker
from _models import run_children

WORKERS, ROUNDS = 8, 100


def new_counter() -> int:
    return int(Counter(name="counter", n=0).save())


def finished(pk: int) -> int:
    report = Counter.objects.check()
    assert report.ok, report.to_dict()
    value = Counter.objects.get(pk).n
    assert Counter.objects.filter(n=value).getPrimaryKeys() == [pk]  # the index follows
    assert Counter.objects.filter(n__gte=0).getPrimaryKeys() == [pk]  # and the score zset
    return value


def run_threads(loop: str, pk: int) -> list[int]:
    barrier = threading.Barrier(WORKERS)
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = [pool.submit(LOOPS[loop], pk, ROUNDS, barrier) for _ in range(WORKERS)]
        return [future.result(timeout=300) for future in futures]


def test_threads_naive_loop_loses_updates() -> None:
    pk = new_counter()
    run_threads("naive", pk)
    # Every round, all 8 read the same value and write it + 1: 7 increments of 8 lost.
    assert finished(pk) == ROUNDS


@pytest.mark.parametrize("loop", ["optimistic", "update"])
def test_threads_end_at_exactly_800(loop: str) -> None:
    pk = new_counter()
    conflicts = run_threads(loop, pk)
    assert finished(pk) == WORKERS * ROUNDS
    if loop == "optimistic":  # every round, the 7 workers who lost the race were told
        assert sum(conflicts) >= (WORKERS - 1) * ROUNDS


@pytest.fixture
def spawn() -> Any:
    return multiprocessing.get_context("spawn")


@pytest.mark.parametrize("loop", ["naive", "optimistic", "update"])
def test_processes(spawn: Any, redis_url: str, loop: str) -> None:
    pk = new_counter()
    queue, barrier = spawn.Queue(), spawn.Barrier(WORKERS)
    conflicts = run_children(spawn, counter_worker, [(redis_url, loop, pk, ROUNDS, barrier)] * WORKERS, queue,
                             timeout=240)
    if loop == "naive":
        assert finished(pk) == ROUNDS
    else:
        assert finished(pk) == WORKERS * ROUNDS
    if loop == "optimistic":
        assert sum(conflicts) >= (WORKERS - 1) * ROUNDS
