"""check and repair on a model in use: writers and readers at work meanwhile, an
evicting server, a reset killed part way, asyncio, a Redis Cluster."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from consistency import assert_indexes_consistent, assert_no_garbage, current_generation, edit_ids
from redis.crc import key_slot

from IndexedRedis import IndexedRedisModel, setDefaultRedisConnectionParams
from IndexedRedis.dispatch import run_sync
from IndexedRedis.embedded import EmbeddedRedis, free_port
from IndexedRedis.flows.check import check_flow

SIZE = 400


class Busy(IndexedRedisModel):
    FIELDS = ["color", "size", "note", "code"]
    INDEXED_FIELDS = ["color", "size"]
    UNIQUE_FIELDS = ["code"]
    KEY_NAME = "CheckBusy"


COLORS = [f"c{i}" for i in range(8)]


def dataset(size: int = SIZE) -> list[Busy]:
    return [Busy(color=COLORS[i % 8], size=str(i % 3), note=f"n{i}", code=f"k{i}") for i in range(size)]


def slow_check(repair: bool) -> Any:
    """check / repair in many small steps: 5 records or 7 index entries per call."""
    return run_sync(Busy, lambda ctx: check_flow(ctx, repair, batch=5, budget=7))


def _writer(stop: threading.Event, seed: int, errors: list[BaseException]) -> None:
    rng = random.Random(seed)
    try:
        while not stop.is_set():
            objs = Busy.objects.filter(size=str(rng.randrange(3))).all()
            if not objs:
                continue
            obj = rng.choice(objs)
            action = rng.randrange(3)
            if action == 0:
                obj.color = rng.choice(COLORS)
                obj.save()
            elif action == 1:
                obj.delete()
            else:
                Busy(color=rng.choice(COLORS), size=str(rng.randrange(3)), code=f"w{seed}-{rng.random()}").save()
    except BaseException as exc:  # noqa: BLE001 - handed to the test
        errors.append(exc)


_seeds = iter(range(10**6))


def _run_with_writers(action: Any, writers: int = 2) -> Any:
    stop = threading.Event()
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_writer, args=(stop, next(_seeds), errors), daemon=True)
               for _ in range(writers)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.05)
        return action()
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        assert not errors, errors


def test_check_during_writes_finds_no_drift_that_is_not_there(redis_client: redis.Redis) -> None:
    Busy.reset(dataset())
    for _ in range(3):
        report = _run_with_writers(lambda: slow_check(False))
        assert report.ok, report.details
        assert report.objects > 0
    assert_indexes_consistent(redis_client, Busy)


def test_repair_during_writes_never_undoes_one(redis_client: redis.Redis) -> None:
    pks = Busy.reset(dataset())
    gk = Busy._meta.keys.generation(current_generation(redis_client, Busy))
    redis_client.delete(gk.index("color", b"c1"))
    redis_client.sadd(gk.index("color", b"c2"), *pks[:30])
    edit_ids(redis_client, gk.ids, remove=pks[30:40])
    report = _run_with_writers(lambda: slow_check(True))
    assert report.repaired
    # A fix whose belief a concurrent write made wrong is skipped, not forced (it could undo
    # that write); what such a skip leaves, if anything, the next pass mends.
    if sum(report.remaining.values()):
        again = slow_check(True)
        assert sum(again.remaining.values()) == 0, again.remaining
    assert Busy.objects.check().ok
    assert_indexes_consistent(redis_client, Busy)


def test_queries_during_a_repair_only_move_towards_the_right_answer(redis_client: redis.Redis) -> None:
    objs = dataset()
    Busy.reset(objs)
    right = {color: {o._id for o in objs if o.color == color} for color in COLORS}
    gk = Busy._meta.keys.generation(current_generation(redis_client, Busy))
    wrong_pks = [o._id for o in objs if o.color != "c2"][:40]
    redis_client.sadd(gk.index("color", b"c2"), *wrong_pks)                     # stale entries
    redis_client.srem(gk.index("color", b"c3"), *sorted(right["c3"])[::2])      # missing entries
    drifted = {color: set(map(int, redis_client.smembers(gk.index("color", color.encode())))) for color in COLORS}
    assert drifted["c2"] != right["c2"] and drifted["c3"] != right["c3"]

    seen: dict[str, list[set[int]]] = {color: [] for color in COLORS}
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            for color in COLORS:
                seen[color].append(set(Busy.objects.filter(color=color).getPrimaryKeys()))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        time.sleep(0.02)
        report = slow_check(True)
        time.sleep(0.02)
    finally:
        stop.set()
        thread.join(30)
    assert report.ok and report.repaired["stale_entry"] == 40
    for color in COLORS:
        answers = seen[color]
        assert len(answers) > 3
        if drifted[color] == right[color]:
            assert all(answer == right[color] for answer in answers), color   # never disturbed
            continue
        wrong_before = len(drifted[color] ^ right[color])
        distances = [len(answer ^ right[color]) for answer in answers]
        for answer in answers:  # every answer lies between the drifted one and the right one
            assert right[color] & drifted[color] <= answer <= right[color] | drifted[color]
        assert distances == sorted(distances, reverse=True) and distances[0] <= wrong_before, (color, distances)
        assert answers[-1] == right[color]


# ---- an evicting server ------------------------------------------------------------------


@pytest.fixture
def evicting_server() -> Iterator[EmbeddedRedis]:
    """A private server of its own: its memory limit must not touch the other tests'."""
    server = EmbeddedRedis(port=free_port(), unix_socket=False).start()
    try:
        setDefaultRedisConnectionParams(server.connection_params)
        yield server
    finally:
        server.stop()


def test_check_reports_evicted_keys_and_the_drift_they_left(evicting_server: EmbeddedRedis) -> None:
    client = evicting_server.client()
    objs = dataset(2000)
    Busy.reset(objs)
    gk = Busy._meta.keys.generation(current_generation(client, Busy))
    doomed = [gk.index("color", b"c1"), gk.index("size", b"2")]
    for key in doomed:  # only these may be evicted (volatile-ttl evicts keys with a TTL)
        client.expire(key, 10_000)
    client.config_set("maxmemory-policy", "volatile-ttl")
    client.config_set("maxmemory", str(int(client.info("memory")["used_memory"]) + 50_000))
    for i in range(2000):  # more than fits: the server evicts the doomed keys, then refuses
        try:
            client.set(f"filler:{i}", "x" * 1000)
        except redis.exceptions.OutOfMemoryError:
            break
    client.config_set("maxmemory", "0")
    assert not client.exists(*doomed)

    report = Busy.objects.check()
    evicted = int(client.info("stats")["evicted_keys"])
    assert report.evicted_keys == evicted >= 2 and report.maxmemory_policy == "volatile-ttl"
    lost = {o._id for o in objs if o.color == "c1"} | {o._id for o in objs if o.size == "2"}
    assert report.found == {"missing_entry": len([o for o in objs if o.color == "c1"])
                            + len([o for o in objs if o.size == "2"])}
    assert {f.pk for f in report.details} <= lost
    assert Busy.objects.filter(color="c1").count() == 0   # what eviction did to queries
    repaired = Busy.objects.repair()
    assert repaired.ok and Busy.objects.filter(color="c1").count() == len([o for o in objs if o.color == "c1"])
    assert_indexes_consistent(client, Busy)


def test_a_lost_generation_pointer_is_reported_and_its_data_left_alone(redis_client: redis.Redis) -> None:
    Busy.reset(dataset(50))
    Busy.reset(dataset(60))
    keys = Busy._meta.keys
    live = current_generation(redis_client, Busy)
    redis_client.delete(keys.gen)  # as an evicting server may
    before = set(redis_client.scan_iter(match=keys.pattern))
    report = Busy.objects.check()
    assert report.found == {"pointer_lost": 1} and f"generation {live}" in report.details[0].detail
    repaired = Busy.objects.repair()
    assert not repaired.repaired and set(redis_client.scan_iter(match=keys.pattern)) == before
    redis_client.set(keys.gen, live)  # what the advice says
    assert Busy.objects.check().ok and Busy.objects.count() == 60


# ---- a killed reset ----------------------------------------------------------------------


def test_repair_frees_a_killed_resets_generation_once_its_lease_lapsed(redis_client: redis.Redis,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from IndexedRedis import scripts
    from IndexedRedis.connection import SYNC_ROUTER
    from IndexedRedis.drivers.sync import execute
    from IndexedRedis.flows import reset
    from IndexedRedis.flows.context import Context

    Busy.reset(dataset(50))
    monkeypatch.setattr(reset, "RESET_LEASE_MS", 300)
    client = Busy._get_client()
    flow = reset.reset_flow(Context(Busy._meta, client, SYNC_ROUTER), dataset(500), batch_size=50)
    request = next(flow)
    while request.script is not scripts.RESET_LOAD:
        request = flow.send(execute(client, request))
    for _ in range(3):
        request = flow.send(execute(client, request))
    flow.close()  # dies: its staging generation stays behind
    staging_gen = int(redis_client.zrange(Busy._meta.keys.staging, 0, 0)[0])

    report = Busy.objects.check()
    assert report.running_resets and staging_gen in report.running_resets and report.ok  # its lease holds
    time.sleep(0.35)
    report = Busy.objects.check()
    assert report.found.keys() == {"abandoned_reset"} and not report.running_resets
    repaired = Busy.objects.repair()
    assert repaired.ok and repaired.repaired == report.found
    assert_no_garbage(redis_client, Busy)
    assert Busy.objects.count() == 50


# ---- asyncio ---------------------------------------------------------------------------


def test_acheck_arepair_astats(redis_client: redis.Redis) -> None:
    pks = Busy.reset(dataset(100))
    gk = Busy._meta.keys.generation(current_generation(redis_client, Busy))
    redis_client.srem(gk.index("color", b"c0"), pks[0])

    async def main() -> Any:
        return await Busy.objects.acheck(), await Busy.objects.arepair(), await Busy.objects.acheck(), \
            await Busy.objects.astats()

    checked, repaired, again, stats = asyncio.run(main())
    assert checked.found == {"missing_entry": 1} and repaired.repaired == {"missing_entry": 1} and again.ok
    assert stats.objects == 100 and {index.field for index in stats.indexes} == {"color", "size", "code"}


# ---- Redis Cluster ---------------------------------------------------------------------


class ClusterBusy(IndexedRedisModel):
    FIELDS = ["color", "size", "note", "code"]
    INDEXED_FIELDS = ["color", "size"]
    UNIQUE_FIELDS = ["code"]
    KEY_NAME = "CheckBusyOnCluster"


def test_check_and_repair_on_a_cluster(empty_cluster: Any) -> None:
    setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": empty_cluster.master_ports()[0], "cluster": True})
    Model = ClusterBusy
    pks = Model.reset([Model(**obj.asDict()) for obj in dataset(200)])
    keys = Model._meta.keys
    client = redis.Redis(host="127.0.0.1", port=empty_cluster.owner(key_slot(keys.prefix)))
    gk = keys.generation(int(client.get(keys.gen)))
    client.srem(gk.index("color", b"c1"), pks[1])
    client.sadd(gk.index("color", b"c2"), 99999)
    client.sadd(keys.generation(77).index("color", b"x"), 1)
    report = Model.objects.check()
    assert report.found == {"missing_entry": 1, "stale_entry": 1, "orphan_key": 1}, report.details
    assert report.objects == 200 and report.keys_scanned > 10
    assert Model.objects.repair().ok
    assert Model.objects.check().ok
    stats = Model.objects.stats()
    assert stats.objects == 200 and stats.memory["records"].bytes > 0
