"""The lease and the switch are one step: a runner whose lease lapsed (it was stopped
past it) and was taken by another can never switch its older dataset in.  Real
processes, a real SIGSTOP."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

from _refresh_models import Stock, run_paused_before_switch, run_takeover, stock_rows
from consistency import assert_indexes_consistent, assert_no_garbage

from IndexedRedis.refresh import refresh_status


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


def test_a_runner_stopped_past_its_lease_cannot_switch_after_another_took_over(redis_url, redis_client):
    Stock.reset([Stock(sku="old", name="old", qty=1, shelf="x")])
    ctx = multiprocessing.get_context("spawn")
    results_a, results_b = ctx.SimpleQueue(), ctx.Queue()  # SimpleQueue: put() writes before A stops
    runner_a = ctx.Process(target=run_paused_before_switch, args=(redis_url, results_a))
    runner_a.start()
    try:
        deadline = time.monotonic() + 60
        while results_a.empty():
            assert time.monotonic() < deadline and runner_a.is_alive(), "runner A did not reach its switch"
            time.sleep(0.01)
        kind, pid = results_a.get()
        assert kind == "stopped"
        deadline = time.monotonic() + 10
        while _state(pid) != "T":  # A stopped itself, every batch written, its lease just renewed
            assert time.monotonic() < deadline, "runner A did not stop"
            time.sleep(0.01)
        assert redis_client.get(Stock._meta.keys.refresh_lease) is not None  # still A's, for 1 s
        time.sleep(1.5)  # past A's 1 s lease
        assert redis_client.get(Stock._meta.keys.refresh_lease) is None

        runner_b = ctx.Process(target=run_takeover, args=(redis_url, results_b))
        runner_b.start()
        assert results_b.get(timeout=60) == ("result", "swapped")
        runner_b.join(30)
        b_gen = redis_client.get(Stock._meta.keys.gen)
        b_data = sorted((o.sku, o.name) for o in Stock.objects.all())
        assert b_data == sorted((r["sku"], r["name"]) for r in stock_rows(40, 2))
    finally:
        os.kill(runner_a.pid, signal.SIGCONT)
    runner_a.join(60)
    kind, status, holder, logged = results_a.get()
    assert (kind, status) == ("result", "lost")
    assert "runner-a: the switch was refused: the lease on Stock lapsed" in logged
    assert "the live one (the other runner's) stays" in logged
    assert redis_client.get(Stock._meta.keys.gen) == b_gen  # nothing switched by A
    assert sorted((o.sku, o.name) for o in Stock.objects.all()) == b_data
    assert_indexes_consistent(redis_client, Stock)
    assert_no_garbage(redis_client, Stock)  # A's generation was abandoned and freed
    status_now = refresh_status(Stock)
    assert status_now["job"] == "runner-b" and status_now["status"] == "swapped"


def test_the_switch_script_refuses_without_the_lease(redis_client):
    """The switch's lease check alone: a streamed reset guarded by a lease it does not
    hold switches nothing and leaves no garbage."""
    import pytest

    from IndexedRedis.dispatch import run_sync
    from IndexedRedis.flows.reset_stream import SwitchRefused, reset_stream_flow

    Stock.reset([Stock(sku="old", name="old", qty=1, shelf="x")])
    redis_client.set(Stock._meta.keys.refresh_lease, "other-runner", px=5000)
    new = [Stock(**row) for row in stock_rows(30)]
    with pytest.raises(SwitchRefused, match="held by other-runner") as refused:
        run_sync(Stock, lambda ctx: reset_stream_flow(ctx, new, 10,
                                                      switch_lease=(ctx.meta.keys.refresh_lease, "mine")))
    assert refused.value.holder == "other-runner"
    assert [o.sku for o in Stock.objects.all()] == ["old"]
    assert_no_garbage(redis_client, Stock)
    redis_client.set(Stock._meta.keys.refresh_lease, "mine", px=5000)
    new = [Stock(**row) for row in stock_rows(30)]
    assert run_sync(Stock, lambda ctx: reset_stream_flow(
        ctx, new, 10, switch_lease=(ctx.meta.keys.refresh_lease, "mine"))).switched
    assert Stock.objects.count() == 30
