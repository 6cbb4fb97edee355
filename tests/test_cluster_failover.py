"""Failover on a real cluster with one replica per master: the master of a model's slot
is SIGKILLed while writers run.  Operations resume once the replica has taken over,
every index agrees with the stored objects, and the acknowledged writes lost to
asynchronous replication are counted (none with WAIT_REPLICAS = 1, whose writes are
refused with NotReplicatedError while the new master has no replica)."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import warnings
from typing import Any

import pytest
import redis
from clusters import LocalCluster
from consistency import assert_indexes_consistent
from redis.crc import key_slot

from IndexedRedis import IndexedRedisModel, IRField
from IndexedRedis.connection import setDefaultRedisConnectionParams

pytestmark = pytest.mark.timeout(240)

WRITES = 1200


class FastItem(IndexedRedisModel):
    """Acknowledged by the master alone (the default)."""

    FIELDS = ["name", IRField("n", valueType=int), "payload"]
    INDEXED_FIELDS = ["name", "n"]
    KEY_NAME = "FailoverFast"
    KEY_GROUP = "failover"  # both models on the master that is killed


class SafeItem(IndexedRedisModel):
    """Acknowledged once a replica has the write too."""

    FIELDS = ["name", IRField("n", valueType=int), "payload"]
    INDEXED_FIELDS = ["name", "n"]
    KEY_NAME = "FailoverSafe"
    KEY_GROUP = "failover"
    WAIT_REPLICAS = 1
    WAIT_TIMEOUT_MS = 500


MODELS = {"fast": FastItem, "safe": SafeItem}


def _live_owner(cluster: LocalCluster, slot: int) -> int | None:
    """The live master serving ``slot`` by its own account, or None while nobody does."""
    for port in cluster.ports:
        if not cluster.alive(port):
            continue
        try:
            myself = next(n for n in cluster.nodes(port) if "myself" in n["flags"])
        except redis.RedisError:
            continue
        if "master" not in myself["flags"]:
            continue
        for entry in myself["slots"]:
            low, _, high = str(entry).partition("-")
            if not low.startswith("[") and int(low) <= slot <= int(high or low):
                return port
    return None


def _await_failover(cluster: LocalCluster, slot: int, victim: int) -> float:
    """Seconds until a live master other than ``victim`` serves ``slot`` (60 at most)."""
    killed_at = time.monotonic()
    while time.monotonic() < killed_at + 60 and _live_owner(cluster, slot) in (victim, None):
        time.sleep(0.1)
    return time.monotonic() - killed_at


def _join(processes: list[Any]) -> None:
    for process in processes:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()


def _writer(port: int, which: str, started: Any, results: Any, payload: int = 0, count: Any = None) -> None:
    """Saves WRITES objects one by one (retrying after a failed one, as an application
    would, with the same object: a resend of an unacknowledged insert may store it once
    more); reports the acknowledged pks, how many saves failed, and when.  Each object
    carries ``payload`` bytes of text; ``count`` (a shared value) follows the acks."""
    setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": port, "cluster": True,
                                     "socket_timeout": 2, "socket_connect_timeout": 1})
    model = MODELS[which]
    acked: list[int] = []
    failures: list[str] = []
    deadline = time.monotonic() + 120
    number = 0
    while number < WRITES and time.monotonic() < deadline:
        obj = model(name=f"{which}-{number % 10}", n=number, payload="x" * payload)
        try:
            obj.save()
        except Exception as exc:  # the outcome is unknown: not acknowledged
            failures.append(type(exc).__name__)
            time.sleep(0.05)
            continue
        acked.append(obj._id)  # type: ignore[arg-type]
        number += 1
        if count is not None:
            count.value = number
        if number == 100:
            started.set()
    results.put((which, acked, failures))


def test_operations_resume_after_a_master_fails_and_indexes_agree(
        redis_cluster_with_replicas: LocalCluster) -> None:
    cluster = redis_cluster_with_replicas
    cluster.heal()
    cluster.flushall()
    slots = {which: key_slot(model._meta.keys.prefix) for which, model in MODELS.items()}
    victim = cluster.owner(slots["fast"])
    entry = next(p for p in cluster.master_ports() if p != victim)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    started = {which: context.Event() for which in MODELS}
    writers = [context.Process(target=_writer, args=(entry, which, started[which], results), daemon=True)
               for which in MODELS]
    for writer in writers:
        writer.start()
    try:
        for event in started.values():
            assert event.wait(60), "a writer never got going"
        cluster.kill(victim)
        failover_seconds = _await_failover(cluster, slots["fast"], victim)
        # The promoted replica has no replica of its own: SafeItem's writes raise
        # NotReplicatedError until the old master is back, as a replica of the new one.
        cluster.restart(victim)
        outcomes = {which: (acked, failures) for which, acked, failures in
                    (results.get(timeout=150) for _ in writers)}
    finally:
        _join(writers)
    new_owner = _live_owner(cluster, slots["fast"])
    assert new_owner is not None and new_owner != victim
    node = redis.Redis(host="127.0.0.1", port=new_owner)
    setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": entry, "cluster": True})
    report = []
    for which, model in MODELS.items():
        acked, failures = outcomes[which]
        assert len(acked) == WRITES, f"{which}: the writer did not resume ({failures[-3:]})"
        stored = {obj._id for obj in model.objects.all()}
        lost = sorted(set(acked) - stored)
        report.append(f"{which}: {len(acked)} acknowledged, {len(lost)} lost, {len(failures)} failed saves")
        assert_indexes_consistent(node, model)
        if which == "safe":
            assert lost == [], f"WAIT_REPLICAS = 1 lost acknowledged writes: {lost[:10]}"
    print(f"failover took {failover_seconds:.1f}s; " + "; ".join(report))
    cluster.heal()


#: Lag beyond what the kernel buffers for a paused replica (loopback TCP autotunes a
#: receive buffer up to net.ipv4.tcp_rmem's maximum, 32 MiB here, plus a send buffer):
#: 800 writes of 64 KiB leave tens of MiB in the master's own output buffer, which its
#: death discards.
PAYLOAD = 64 * 1024
BEHIND = 800


def test_acknowledged_writes_lost_to_replication_lag_and_kept_by_wait(
        redis_cluster_with_replicas: LocalCluster) -> None:
    """The replica of the model's master is paused (SIGSTOP) while the writers go on,
    so that it falls behind by tens of megabytes; then the master is SIGKILLed and the replica,
    resumed, takes over with what it had.  Writes acknowledged by the master alone are
    lost; with WAIT_REPLICAS = 1 a write the replica has not confirmed is refused
    (NotReplicatedError), so no acknowledged one is."""
    cluster = redis_cluster_with_replicas
    cluster.heal()
    cluster.flushall()
    slot = key_slot(FastItem._meta.keys.prefix)
    victim = cluster.owner(slot)
    replica = cluster.replica_of(victim)
    entry = next(p for p in cluster.master_ports() if p != victim)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    started = {which: context.Event() for which in MODELS}
    counts = {which: context.Value("i", 0) for which in MODELS}
    payloads = {"fast": PAYLOAD, "safe": 0}
    writers = [context.Process(target=_writer, args=(entry, which, started[which], results, payloads[which],
                                                     counts[which]), daemon=True)
               for which in MODELS]
    for writer in writers:
        writer.start()
    try:
        for event in started.values():
            assert event.wait(60), "a writer never got going"
        cluster.pause(replica)
        before = counts["fast"].value
        deadline = time.monotonic() + 15  # well within the replica's data validity (10 x node timeout)
        while time.monotonic() < deadline and counts["fast"].value < before + BEHIND:
            time.sleep(0.01)
        behind = counts["fast"].value - before
        cluster.kill(victim)
        cluster.resume(replica)
        failover_seconds = _await_failover(cluster, slot, victim)
        cluster.restart(victim)  # it rejoins as the new master's replica: SafeItem's writes go on
        outcomes = {which: (acked, failures) for which, acked, failures in
                    (results.get(timeout=150) for _ in writers)}
    finally:
        cluster.resume(replica)
        _join(writers)
    assert _live_owner(cluster, slot) == replica
    setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": entry, "cluster": True})
    lost = {}
    for which, model in MODELS.items():
        acked, failures = outcomes[which]
        assert len(acked) == WRITES, f"{which}: the writer did not resume ({failures[-3:]})"
        lost[which] = sorted(set(acked) - {obj._id for obj in model.objects.all()})
        assert_indexes_consistent(redis.Redis(host="127.0.0.1", port=replica), model)
    print(f"replica paused while {behind} fast writes of {PAYLOAD // 1024} KiB were acknowledged; failover took "
          f"{failover_seconds:.1f}s; lost: fast {len(lost['fast'])}, safe {len(lost['safe'])}; "
          f"failed saves: fast {len(outcomes['fast'][1])}, safe {len(outcomes['safe'][1])}")
    assert lost["safe"] == [], f"WAIT_REPLICAS = 1 lost acknowledged writes: {lost['safe'][:10]}"
    if behind < 100:
        # Seen once per run in CI's second pass (redis-py 5.0.8, no hiredis, a busy machine): the
        # fast writer made no progress while the replica was paused, so there was no lag to lose.
        # Open question (see the closing note); the WAIT guarantee above is checked either way.
        warnings.warn(f"only {behind} fast writes while the replica was paused: the loss was not measured",
                      stacklevel=1)
        return
    assert lost["fast"], "a master-only acknowledgement survived megabytes of replication lag"


def _async_writer(port: int, started: Any, killed: Any, results: Any) -> None:
    """ASYNC_TASKS tasks saving FastItem objects on one event loop, through the master's
    failure; reports the pks acknowledged after ``killed`` was set plus a few seconds of
    grace, and every error with the time it came (relative to the kill)."""
    setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": port, "cluster": True,
                                     "socket_timeout": 2, "socket_connect_timeout": 1})
    acked: list[int] = []
    errors: list[tuple[float, str]] = []
    killed_at: list[float] = []

    async def task(number: int) -> None:
        while len(acked) < ASYNC_WRITES:
            if not killed_at and killed.is_set():
                killed_at.append(time.monotonic())
            obj = FastItem(name=f"async-{number}", n=number)
            try:
                await obj.asave()
            except Exception as exc:  # outcome unknown: not acknowledged
                errors.append((time.monotonic() - killed_at[0] if killed_at else -1.0, repr(exc)))
                await asyncio.sleep(0.05)
                continue
            acked.append(obj._id)  # type: ignore[arg-type]
            if len(acked) == 200:
                started.set()

    async def main() -> None:
        await asyncio.wait_for(asyncio.gather(*(task(n) for n in range(ASYNC_TASKS))), 120)

    asyncio.run(main())
    results.put((acked, errors))


ASYNC_TASKS = 16
ASYNC_WRITES = 3000


def test_async_tasks_resume_after_a_master_fails(redis_cluster_with_replicas: LocalCluster) -> None:
    """The asyncio cluster driver through a failover: 16 tasks on one loop save while
    the master of their slot is SIGKILLed; they get errors while nobody serves the slot,
    none once the replica has taken over (plus a second for the slot map to settle),
    and the indexes agree with the stored objects."""
    cluster = redis_cluster_with_replicas
    cluster.heal()
    cluster.flushall()
    slot = key_slot(FastItem._meta.keys.prefix)
    victim = cluster.owner(slot)
    entry = next(p for p in cluster.master_ports() if p != victim)
    context = multiprocessing.get_context("spawn")
    results, started, killed = context.Queue(), context.Event(), context.Event()
    writer = context.Process(target=_async_writer, args=(entry, started, killed, results), daemon=True)
    writer.start()
    try:
        assert started.wait(60), "the writer never got going"
        cluster.kill(victim)
        killed.set()
        failover_seconds = _await_failover(cluster, slot, victim)
        acked, errors = results.get(timeout=150)
    finally:
        _join([writer])
    new_owner = _live_owner(cluster, slot)
    assert new_owner is not None and new_owner != victim
    assert len(acked) >= ASYNC_WRITES, f"the tasks did not resume: {errors[-3:]}"
    late = [error for error in errors if error[0] > failover_seconds + 1]
    assert late == [], f"errors after the failover: {late[:3]}"
    setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": entry, "cluster": True})
    stored = {obj._id for obj in FastItem.objects.all()}
    assert_indexes_consistent(redis.Redis(host="127.0.0.1", port=new_owner), FastItem)
    print(f"async: failover took {failover_seconds:.1f}s; {len(errors)} failed saves meanwhile; "
          f"{len(set(acked) - stored)} of {len(acked)} acknowledged lost")
    cluster.heal()
