"""Several processes writing the same objects at once must leave exact indexes.

Every save and delete is one compare-and-set Lua script: a writer whose idea of the
stored indexed values is out of date (a stale in-memory copy) is told the real record
and retries, so no index set may keep a stale member or miss a live one, whatever
the interleaving.
"""

from __future__ import annotations

import multiprocessing
import random

import pytest
from _models import (
    CONC_VALUES,
    ConcItem,
    RaceItem,
    conc_resetter,
    conc_worker,
    race_worker,
    run_children,
)
from consistency import assert_indexes_consistent, assert_no_garbage, edit_ids, stored_records

N_PROCS = 4
POOL = 30
OPS = 300


@pytest.fixture
def spawn():
    return multiprocessing.get_context("spawn")


def _check_every_filter(records: dict[int, dict]) -> None:
    """Each filter answers exactly the stored objects its condition selects."""
    assert ConcItem.objects.count() == len(records)
    assert sorted(o._id for o in ConcItem.objects.all()) == sorted(records)
    for name, values in CONC_VALUES.items():
        for value in values:
            want = sorted(pk for pk, rec in records.items() if rec[name] == value)
            found = ConcItem.objects.filter(**{name: value}).all()
            assert [o._id for o in found] == want, f"filter({name}={value!r})"
            assert all(getattr(o, name) == value for o in found)
            assert ConcItem.objects.filter(**{name: value}).count() == len(want)
            assert ConcItem.objects.filter(**{name: value}).getPrimaryKeys() == want
            unwanted = sorted(pk for pk, rec in records.items() if rec[name] != value)
            assert ConcItem.objects.filter(**{f"{name}__ne": value}).getPrimaryKeys() == unwanted
    # and a few two-field combinations
    for color in CONC_VALUES["color"]:
        for size in CONC_VALUES["size"]:
            want = sorted(pk for pk, rec in records.items()
                          if rec["color"] == color and rec["size"] == size)
            assert ConcItem.objects.filter(color=color, size=size).getPrimaryKeys() == want
            want_ne = sorted(pk for pk, rec in records.items()
                             if rec["color"] == color and rec["size"] != size)
            assert ConcItem.objects.filter(color=color).filter(size__ne=size).getPrimaryKeys() == want_ne
    # the objects fetched agree with the raw records
    for obj in ConcItem.objects.all():
        rec = records[obj._id]
        assert {n: getattr(obj, n) for n in ConcItem.FIELDS} == {n: rec[n] for n in ConcItem.FIELDS}


def test_concurrent_save_update_delete_keeps_indexes_exact(spawn, redis_url, redis_client):
    rng = random.Random(1234)
    pool = []
    for i in range(POOL):
        obj = ConcItem(note=f"initial {i}", **{n: rng.choice(v) for n, v in CONC_VALUES.items()})
        pool.append(obj.save())
    assert_indexes_consistent(redis_client, ConcItem)

    queue = spawn.Queue()
    barrier = spawn.Barrier(N_PROCS)
    results = run_children(spawn, conc_worker,
                           [(redis_url, seed, pool, OPS, barrier) for seed in range(N_PROCS)],
                           queue)

    violations = [v for r in results for v in r["violations"]]
    assert not violations, violations[:10]
    totals: dict[str, int] = {}
    for r in results:
        for op, n in r["done"].items():
            totals[op] = totals.get(op, 0) + n
    # the storm really mixed every kind of operation, stale copies included
    for op in ("fetch", "update_fresh", "update_stale", "delete_fresh", "delete_stale",
               "overwrite_with_pk", "query"):
        assert totals.get(op, 0) > 10, totals

    records = assert_indexes_consistent(redis_client, ConcItem)
    assert set(records) <= set(pool), "a write invented a pk outside the pool"
    for rec in records.values():
        for name, values in CONC_VALUES.items():
            assert rec[name] in values
    assert_no_garbage(redis_client, ConcItem)
    _check_every_filter(records)

    # the survivors still behave: update and delete each once more, sequentially
    for obj in ConcItem.objects.all():
        obj.color = "red"
        obj.save()
    assert ConcItem.objects.filter(color="red").getPrimaryKeys() == sorted(records)
    assert ConcItem.objects.filter(color__ne="red").count() == 0
    assert ConcItem.objects.delete() == len(records)
    assert ConcItem.objects.count() == 0
    assert_indexes_consistent(redis_client, ConcItem)
    assert not any(k for k in redis_client.scan_iter(match=b"*:i:*")), "index sets outlived their objects"


def test_writers_racing_with_resets_keep_indexes_exact(spawn, redis_url, redis_client):
    """Saves, deletes and queries while another process replaces the dataset."""
    rng = random.Random(99)
    pool = [ConcItem(**{n: rng.choice(v) for n, v in CONC_VALUES.items()}).save() for _ in range(POOL)]
    queue = spawn.Queue()
    barrier = spawn.Barrier(N_PROCS)
    jobs = [(conc_worker, (redis_url, 100 + seed, pool, OPS, barrier)) for seed in range(N_PROCS - 1)]
    jobs.append((conc_resetter, (redis_url, 7, pool, 12, barrier)))
    procs = [spawn.Process(target=target, args=(*args, queue), daemon=True) for target, args in jobs]
    for proc in procs:
        proc.start()
    try:
        results = []
        for _ in procs:
            status, body = queue.get(timeout=120)
            assert status == "ok", body
            results.append(body)
        for proc in procs:
            proc.join(60)
            assert proc.exitcode == 0
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(5)

    violations = [v for r in results for v in r["violations"]]
    assert not violations, violations[:10]
    records = assert_indexes_consistent(redis_client, ConcItem)
    assert set(records) <= set(pool)
    assert_no_garbage(redis_client, ConcItem)
    _check_every_filter(records)


def test_stale_copies_in_one_process_keep_indexes_exact(redis_client):
    """The same races, deterministic: two copies of one object, saved in turn."""
    obj = ConcItem(color="red", size="1", shape="circle", note="n")
    pk = obj.save()
    a = ConcItem.objects.get(pk)
    b = ConcItem.objects.get(pk)

    a.color = "green"
    a.save()
    b.color = "blue"        # b still believes red is stored
    b.size = "2"
    b.save()
    rec = stored_records(redis_client, ConcItem)[pk]
    assert (rec["color"], rec["size"], rec["shape"]) == ("blue", "2", "circle")
    assert_indexes_consistent(redis_client, ConcItem)

    a.shape = "square"      # a changes only shape: its stale color must not come back
    a.save()
    rec = stored_records(redis_client, ConcItem)[pk]
    assert (rec["color"], rec["size"], rec["shape"]) == ("blue", "2", "square")
    assert ConcItem.objects.filter(color="green").count() == 0
    assert ConcItem.objects.filter(color="blue").getPrimaryKeys() == [pk]
    assert_indexes_consistent(redis_client, ConcItem)

    c = ConcItem.objects.get(pk)
    assert c.delete()
    assert_indexes_consistent(redis_client, ConcItem)
    # b (stale, object deleted meanwhile) saved again: the object comes back whole
    b.note = "back"
    assert b.save() == pk
    rec = stored_records(redis_client, ConcItem)[pk]
    assert rec["note"] == "back"
    assert ConcItem.objects.filter(shape=rec["shape"]).getPrimaryKeys() == [pk]
    assert_indexes_consistent(redis_client, ConcItem)

    # a stale copy deletes an object whose indexed values changed since it was read
    d = ConcItem.objects.get(pk)
    e = ConcItem.objects.get(pk)
    d.color, d.size, d.shape = "", "3", "tri angle"
    d.save()
    assert e.delete() is True
    assert ConcItem.objects.count() == 0
    assert_indexes_consistent(redis_client, ConcItem)
    assert not any(k for k in redis_client.scan_iter(match=b"*:i:*"))


def test_racing_writers_of_different_fields_of_one_object(spawn, redis_url, redis_client):
    rounds = 150
    obj = RaceItem(f0="init0", f1="init1", f2="init2", f3="init3", shared="init",
                   untouched="keep me", note="and me")
    pk = obj.save()

    queue = spawn.Queue()
    barrier = spawn.Barrier(N_PROCS)
    results = run_children(spawn, race_worker,
                           [(redis_url, i, pk, rounds, barrier) for i in range(N_PROCS)], queue)

    final = RaceItem.objects.get(pk)
    assert final is not None
    for r in results:
        own = f"f{r['index']}"
        # each fN has one writer: it must hold exactly that writer's last value
        assert getattr(final, own) == r["own"][-1], (own, getattr(final, own), r["own"][-3:])
    # shared has several writers: the last save wins, and it was someone's last write
    assert final.shared in {r["shared"][-1] for r in results if r["shared"]}, final.shared
    # nobody changed these, so no stale copy may have written its old value over them
    assert final.untouched == "keep me"
    assert final.note == "and me"

    records = assert_indexes_consistent(redis_client, RaceItem)
    assert list(records) == [pk]
    for name in RaceItem.INDEXED_FIELDS:
        assert RaceItem.objects.filter(**{name: getattr(final, name)}).getPrimaryKeys() == [pk]
    assert RaceItem.objects.filter(shared="init").count() == 0
    assert RaceItem.objects.filter(f0="init0").count() == 0
    assert_no_garbage(redis_client, RaceItem)


def test_consistency_helpers_detect_corruption(redis_client):
    """The checkers above are only worth something if they fail on broken data."""
    for i in range(3):
        ConcItem(color="red", size=str(i + 1), shape="circle").save()
    records = assert_indexes_consistent(redis_client, ConcItem)
    assert_no_garbage(redis_client, ConcItem)
    gk = ConcItem._meta.keys.generation(0)
    pk = min(records)

    def broken(mutate, undo, checker=assert_indexes_consistent):
        mutate()
        try:
            with pytest.raises(AssertionError):
                checker(redis_client, ConcItem)
        finally:
            undo()
        checker(redis_client, ConcItem)

    green = gk.index("color", b"green")
    red = gk.index("color", b"red")
    broken(lambda: redis_client.sadd(green, pk), lambda: redis_client.srem(green, pk))  # stale member
    broken(lambda: redis_client.srem(red, pk), lambda: redis_client.sadd(red, pk))      # missing member
    broken(lambda: edit_ids(redis_client, gk.ids, add=[999]), lambda: edit_ids(redis_client, gk.ids, remove=[999]))
    broken(lambda: redis_client.sadd(green, 999), lambda: redis_client.srem(green, 999))  # deleted object
    other = ConcItem._meta.keys.generation(7)
    broken(lambda: redis_client.zadd(other.ids, {1: 1}), lambda: redis_client.delete(other.ids),
           checker=assert_no_garbage)
    broken(lambda: redis_client.sadd(ConcItem._meta.keys.dead, 7),
           lambda: redis_client.delete(ConcItem._meta.keys.dead), checker=assert_no_garbage)
