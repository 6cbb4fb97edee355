"""Reset leases, with real processes: a reset SIGKILLed part way leaves a staging
generation whose lease lapses a moment later, and the next reset (or a repair) frees
all of it; concurrent resets still end with the last one winning and nothing left."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import Any

import pytest
import redis
from _models import ResetItem, doomed_resetter, make_dataset, reset_writer, run_children
from consistency import assert_indexes_consistent, assert_no_garbage, current_generation, model_keys

LEASE_MS = 1000


@pytest.fixture
def spawn() -> Any:
    return multiprocessing.get_context("spawn")


def _staging(client: redis.Redis) -> list[int]:
    return [int(g) for g in client.zrange(ResetItem._meta.keys.staging, 0, -1)]


def _outside_live(client: redis.Redis) -> set[bytes]:
    """The model's keys that are neither bookkeeping nor of the live generation."""
    keys = ResetItem._meta.keys
    live = keys.generation(current_generation(client, ResetItem)).prefix
    return {k for k in model_keys(client, ResetItem) if k not in keys.bookkeeping and not k.startswith(live)}


def kill_reset_part_way(spawn: Any, url: str, client: redis.Redis, size: int = 20_000,
                        written: int = 3000) -> tuple[int, float]:
    """Start a reset in another process, SIGKILL it once ``written`` objects are in its
    staging generation; returns that generation and when it was killed."""
    proc = spawn.Process(target=doomed_resetter, args=(url, "doomed", size, LEASE_MS, 0.002), daemon=True)
    proc.start()
    try:
        deadline = time.monotonic() + 60
        gen = None
        while time.monotonic() < deadline:
            staging = [g for g in _staging(client) if g != current_generation(client, ResetItem)]
            if staging:
                gen = staging[0]
                if client.hlen(ResetItem._meta.keys.generation(gen).objs) >= written:
                    break
            time.sleep(0.005)
        assert gen is not None, "the reset never started"
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        proc.join(10)
        assert proc.exitcode == -signal.SIGKILL
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(5)
    assert client.hlen(ResetItem._meta.keys.generation(gen).objs) < size, "it finished before it was killed"
    return gen, killed


def test_the_next_reset_frees_a_killed_resets_generation_within_seconds(spawn, redis_url, redis_client):
    ResetItem.reset(make_dataset("live", 500))
    gen, killed = kill_reset_part_way(spawn, redis_url, redis_client)
    assert redis_client.hlen(ResetItem._meta.keys.generation(gen).objs) >= 3000
    assert _outside_live(redis_client), "the killed reset left nothing to free"

    # Resets run one after another; the first ones may fall inside the lease (the owner
    # might only be slow), and the first one after it lapsed frees everything.
    freed_after = None
    for round_no in range(200):
        ResetItem.reset(make_dataset(f"next{round_no}", 50))
        if not _outside_live(redis_client) and gen not in _staging(redis_client):
            freed_after = time.monotonic() - killed
            break
        time.sleep(0.05)
    assert freed_after is not None, "the killed reset's generation was never freed"
    assert freed_after < LEASE_MS / 1000 + 2.0, f"freed only {freed_after:.1f}s after the kill"
    print(f"freed {freed_after:.2f}s after the SIGKILL (lease {LEASE_MS} ms)")

    assert ResetItem.objects.count() == 50 and ResetItem.objects.filter(batch="doomed").count() == 0
    assert_indexes_consistent(redis_client, ResetItem)
    assert_no_garbage(redis_client, ResetItem)
    keys = ResetItem._meta.keys
    live = keys.generation(current_generation(redis_client, ResetItem))
    counted = model_keys(redis_client, ResetItem)  # by SCAN of the test's own server
    assert counted - set(keys.bookkeeping) == {
        live.objs, live.ids, live.index("batch", b"next%d" % round_no), live.index("parity", b"0"),
        live.index("parity", b"1"), live.layout, live.text_dict("batch"), live.text_dict("parity")}


def test_a_reset_within_the_lease_leaves_a_live_resets_generation_alone(spawn, redis_url, redis_client):
    ResetItem.reset(make_dataset("live", 100))
    gen, killed = kill_reset_part_way(spawn, redis_url, redis_client, written=500)
    ResetItem.reset(make_dataset("soon", 20))
    assert time.monotonic() - killed < LEASE_MS / 1000, "too slow to test within the lease"
    assert gen in _staging(redis_client)  # for all that reset knew, its owner was alive
    assert redis_client.hlen(ResetItem._meta.keys.generation(gen).objs) >= 500
    time.sleep(LEASE_MS / 1000 + 0.1)
    ResetItem.reset(make_dataset("later", 20))
    assert_no_garbage(redis_client, ResetItem)


def test_concurrent_resets_and_a_killed_one_end_with_the_last_winning_and_nothing_left(
        spawn, redis_url, redis_client):
    ResetItem.reset(make_dataset("before", 300))
    kill_reset_part_way(spawn, redis_url, redis_client, written=1000)
    time.sleep(LEASE_MS / 1000 + 0.1)
    sizes = {"A": 3000, "B": 2500}
    barrier = spawn.Barrier(2)
    results = run_children(spawn, reset_writer,
                           [(redis_url, batch, size, barrier) for batch, size in sizes.items()], spawn.Queue())
    batches = {o.batch for o in ResetItem.objects.all()}
    assert len(batches) == 1 and batches <= set(sizes), batches
    winner = batches.pop()
    assert ResetItem.objects.count() == sizes[winner]
    assert sorted(ResetItem.objects.getPrimaryKeys()) == sorted(
        next(r["pks"] for r in results if r["batch"] == winner))
    assert int(redis_client.hget(ResetItem._meta.keys.lastreset, "objects")) == sizes[winner]
    assert_indexes_consistent(redis_client, ResetItem)
    assert_no_garbage(redis_client, ResetItem)
