"""``Model.reset``: replace a model's whole dataset, atomically for every reader.

A reset writes a new generation in bounded batches, switches the generation pointer
in one step and frees the old generation afterwards.  These tests check the
semantics (what the new dataset is, which pks objects get, what is refused and that
a refusal writes nothing), the atomic visibility from another process during a big
reset, two resets racing, and the recovery from a reset that died half-way.
"""

from __future__ import annotations

import multiprocessing
import time

import pytest
from _models import ResetItem, make_dataset, reset_reader, reset_writer, run_children
from consistency import (
    assert_indexes_consistent,
    assert_no_garbage,
    current_generation,
    db_snapshot,
    model_keys,
    stored_records,
)

from IndexedRedis import ConcurrencyError, FieldValueError, IndexedRedisError, scripts
from IndexedRedis.connection import SYNC_ROUTER
from IndexedRedis.drivers.sync import execute
from IndexedRedis.flows import common as operations
from IndexedRedis.flows import reset as reset_module
from IndexedRedis.flows.context import Context
from IndexedRedis.flows.reset import reset_flow


@pytest.fixture
def spawn():
    return multiprocessing.get_context("spawn")


def _content(objs):
    return sorted((o.batch, int(o.n), o.parity, o.label) for o in objs)


def _fixed_keys():
    keys = ResetItem._meta.keys
    return {keys.gen, keys.genseq, keys.nextpk, keys.schemas, keys.lastreset}


# ---- semantics --------------------------------------------------------------------------


def test_reset_replaces_everything(redis_client):
    old = make_dataset("old", 10)
    for obj in old:
        obj.save()
    old_pks = [o._id for o in old]
    assert ResetItem.objects.filter(batch="old").count() == 10

    new = make_dataset("new", 7)
    pks = ResetItem.reset(new)

    assert pks == [o._id for o in new]
    assert len(set(pks)) == 7 and not set(pks) & set(old_pks)
    assert _content(ResetItem.objects.all()) == _content(make_dataset("new", 7))
    assert ResetItem.objects.count() == 7
    assert ResetItem.objects.filter(batch="old").all() == []
    assert ResetItem.objects.filter(batch="old").count() == 0
    assert ResetItem.objects.filter(batch="new").getPrimaryKeys() == sorted(pks)
    assert ResetItem.objects.filter(batch__ne="new").count() == 0
    assert ResetItem.objects.getMultiple(old_pks) == [None] * 10
    for obj in new:
        fetched = ResetItem.objects.get(obj._id)
        assert fetched.asDict() == obj.asDict()
    # the old index sets are gone, not just hidden
    assert not [k for k in model_keys(redis_client, ResetItem) if b":i:batch:old" in k]
    assert current_generation(redis_client, ResetItem) != 0
    assert_indexes_consistent(redis_client, ResetItem)
    assert_no_garbage(redis_client, ResetItem)

    # objects handed to reset are now ordinary stored objects
    new[0].label = "changed"
    assert new[0].save() == pks[0]
    assert ResetItem.objects.get(pks[0]).label == "changed"
    assert new[1].delete()
    assert ResetItem.objects.count() == 6
    assert_indexes_consistent(redis_client, ResetItem)


def test_reset_with_no_objects_empties_the_model(redis_client):
    for obj in make_dataset("old", 25):
        obj.save()
    assert ResetItem.reset([]) == []
    assert ResetItem.objects.count() == 0
    assert ResetItem.objects.all() == []
    assert ResetItem.objects.filter(batch="old").all() == []
    assert ResetItem.objects.first() is None
    assert_indexes_consistent(redis_client, ResetItem)
    assert_no_garbage(redis_client, ResetItem)
    assert model_keys(redis_client, ResetItem) <= _fixed_keys()
    # and the empty model works as before
    obj = ResetItem(batch="after", n=1)
    pk = obj.save()
    assert ResetItem.objects.filter(batch="after").getPrimaryKeys() == [pk]
    assert ResetItem.reset([]) == []
    assert model_keys(redis_client, ResetItem) <= _fixed_keys()


def test_reset_assigns_pks_and_keeps_given_ones(redis_client):
    kept = make_dataset("old", 5)
    for obj in kept:
        obj.save()
    kept = ResetItem.objects.all()          # fetched: they carry their pk
    kept_pks = [o._id for o in kept]
    chosen = ResetItem(_id=1000, batch="chosen", n=0)
    fresh = make_dataset("fresh", 4)
    objs = [fresh[0], kept[3], chosen, fresh[1], kept[0], fresh[2], fresh[3]]

    pks = ResetItem.reset(objs)

    assert pks == [o._id for o in objs]
    assert kept[3]._id == kept_pks[3] and kept[0]._id == kept_pks[0]
    assert chosen._id == 1000
    fresh_pks = [o._id for o in fresh]
    assert all(isinstance(pk, int) for pk in fresh_pks)
    assert len(set(pks)) == len(objs), "a fresh pk collided with a given one"
    assert set(stored_records(redis_client, ResetItem)) == set(pks)
    assert ResetItem.objects.get(1000).batch == "chosen"
    assert ResetItem.objects.get(kept_pks[3]).label == kept[3].label
    assert ResetItem.objects.get(kept_pks[1]) is None  # not in the new dataset
    # the pk counter moved past every pk in use
    later = ResetItem(batch="later", n=0)
    assert later.save() > max(pks)
    assert_indexes_consistent(redis_client, ResetItem)
    assert_no_garbage(redis_client, ResetItem)


def test_reset_fresh_pks_never_collide_with_given_pks_of_a_later_batch(redis_client):
    # Regression: reset_load.lua used to push the pk counter past the given pks of its
    # own batch only, so a fresh pk of an earlier batch could equal a given pk of a
    # later one, which then overwrote that object.
    batch = operations.RESET_BATCH
    fresh = make_dataset("fresh", batch)       # fill the whole first batch
    chosen = ResetItem(_id=7, batch="chosen", n=0, label="chosen-0")  # in the second batch
    pks = ResetItem.reset(fresh + [chosen])
    assert chosen._id == 7
    assert len(set(pks)) == batch + 1, "two objects were given the same pk"
    assert ResetItem.objects.count() == batch + 1
    assert_indexes_consistent(redis_client, ResetItem)


def test_reset_refuses_duplicates_before_writing_anything(redis_client):
    for obj in make_dataset("old", 6):
        obj.save()
    ResetItem.reset(ResetItem.objects.all())   # a generation, a pk counter, a genseq
    before = db_snapshot(redis_client)

    a, b = ResetItem(batch="x", n=1), ResetItem(batch="x", n=2)
    with pytest.raises(IndexedRedisError):
        ResetItem.reset([a, b, a])              # the same unsaved object twice
    assert a._id is None and b._id is None

    stored = ResetItem.objects.all()
    with pytest.raises(IndexedRedisError):
        ResetItem.reset(stored + [stored[2]])   # the same saved object twice

    twin = ResetItem.objects.get(stored[0]._id)
    with pytest.raises(IndexedRedisError):
        ResetItem.reset([stored[0], b, twin])   # two different objects, one pk

    with pytest.raises(IndexedRedisError):
        ResetItem.reset([ResetItem(_id=50, batch="y"), ResetItem(_id=50, batch="z")])

    with pytest.raises(TypeError):
        ResetItem.reset([a, "not a model"])

    assert db_snapshot(redis_client) == before
    assert _content(ResetItem.objects.all()) == _content(make_dataset("old", 6))


def test_reset_with_a_bad_value_is_refused_whole(redis_client):
    for obj in make_dataset("old", 6):
        obj.save()
    before = db_snapshot(redis_client)

    objs = make_dataset("new", 1200)            # more than one batch
    with pytest.raises(FieldValueError):
        objs[1100].label = ["a", "list"]        # assignment is validated...
    objs[1100].__dict__["label"] = ["a", "list"]  # ...so smuggle it past, as a bug would
    with pytest.raises(FieldValueError) as info:
        ResetItem.reset(objs)
    assert "label" in str(info.value)

    assert db_snapshot(redis_client) == before
    assert all(o._id is None for o in objs)
    assert _content(ResetItem.objects.all()) == _content(make_dataset("old", 6))
    assert_no_garbage(redis_client, ResetItem)


def test_repeated_resets_leave_no_garbage(redis_client):
    sizes = [1200, 0, 3, 1501, 700]
    for round_no, size in enumerate(sizes):
        # some ordinary writes into the live generation in between
        for obj in make_dataset(f"extra{round_no}", 4):
            obj.save()
        ResetItem.objects.filter(batch=f"extra{round_no}", parity="1").delete()
        objs = make_dataset(f"round{round_no}", size)
        ResetItem.reset(objs)
        assert ResetItem.objects.count() == size
        assert ResetItem.objects.filter(batch=f"round{round_no}").count() == size
        assert ResetItem.objects.filter(parity="1").count() == size // 2
        assert_indexes_consistent(redis_client, ResetItem)
        assert_no_garbage(redis_client, ResetItem)


# ---- atomic visibility ------------------------------------------------------------------


def test_reader_sees_whole_old_or_whole_new_dataset_during_a_big_reset(spawn, redis_url, redis_client):
    old_size, new_size = 20_000, 50_000
    ResetItem.reset(make_dataset("old", old_size))
    new = make_dataset("new", new_size)

    ready, stop = spawn.Event(), spawn.Event()
    counter = spawn.Value("i", 0)
    queue = spawn.Queue()
    reader = spawn.Process(target=reset_reader,
                           args=(redis_url, old_size, new_size, ready, stop, counter, queue),
                           daemon=True)
    reader.start()
    try:
        assert ready.wait(60), "the reader never observed anything"
        during_start = counter.value
        ResetItem.reset(new)
        during = counter.value - during_start
        # let the reader look a few more times at the finished state
        deadline = time.monotonic() + 60
        target = counter.value + 4
        while counter.value < target and time.monotonic() < deadline and reader.is_alive():
            time.sleep(0.01)
        stop.set()
        status, body = queue.get(timeout=120)
        reader.join(30)
    finally:
        stop.set()
        if reader.is_alive():
            reader.terminate()
            reader.join(5)
    assert status == "ok", body
    observations = body
    bad = [obs for obs in observations if obs[1] not in ("old", "new")]
    assert not bad, f"{len(bad)} inconsistent observations, e.g. {bad[:5]}"
    states = [state for _, state in observations]
    assert "old" in states and states[-1] == "new", states
    # once the new dataset was seen, the old one never came back
    first_new = states.index("new")
    assert set(states[first_new:]) == {"new"}, states
    assert len(observations) >= 5
    print(f"{len(observations)} observations, {during} while the reset ran")

    assert ResetItem.objects.count() == new_size
    assert_no_garbage(redis_client, ResetItem)


def test_two_concurrent_resets_leave_exactly_one_dataset(spawn, redis_url, redis_client):
    ResetItem.reset(make_dataset("before", 300))
    sizes = {"A": 5000, "B": 4000}
    queue = spawn.Queue()
    barrier = spawn.Barrier(2)
    results = run_children(spawn, reset_writer,
                           [(redis_url, batch, size, barrier) for batch, size in sizes.items()],
                           queue)
    pks_by_batch = {r["batch"]: r["pks"] for r in results}

    objs = ResetItem.objects.all()
    batches = {o.batch for o in objs}
    assert len(batches) == 1, f"mixed datasets: {sorted(batches)}"
    winner = batches.pop()
    assert winner in sizes
    assert _content(objs) == _content(make_dataset(winner, sizes[winner]))
    assert [o._id for o in objs] == sorted(pks_by_batch[winner])
    loser = "B" if winner == "A" else "A"
    assert ResetItem.objects.filter(batch=loser).count() == 0
    assert ResetItem.objects.filter(batch="before").count() == 0
    assert_indexes_consistent(redis_client, ResetItem)
    assert_no_garbage(redis_client, ResetItem)


# ---- a reset that dies half-way ---------------------------------------------------------


def _start_reset_by_hand(objs, batches_done, batch_size=100):
    """Run a reset flow through its first ``batches_done`` batches, then drop it."""
    client = ResetItem._get_client()
    ctx = Context(ResetItem._meta, client, SYNC_ROUTER)
    flow = reset_flow(ctx, objs, batch_size=batch_size)
    request = next(flow)                       # RESET_SWEEP
    while request.script is not scripts.RESET_BEGIN:
        request = flow.send(execute(client, request))
    reply = execute(client, request)
    gen = int(reply[1])
    request = flow.send(reply)
    for _ in range(batches_done):
        request = flow.send(execute(client, request))
    return flow, request, client, gen


def test_crashed_reset_leaves_live_data_alone_and_is_freed_once_its_lease_lapsed(redis_client, monkeypatch):
    ResetItem.reset(make_dataset("live", 400))
    live_gen = current_generation(redis_client, ResetItem)
    live_prefix = ResetItem._meta.keys.generation(live_gen).prefix
    live_before = {k: v for k, v in db_snapshot(redis_client).items() if k.startswith(live_prefix)}
    live_content = _content(ResetItem.objects.all())

    monkeypatch.setattr(reset_module, "RESET_LEASE_MS", 1500)
    flow, _, _, crashed_gen = _start_reset_by_hand(make_dataset("crashed", 1000), batches_done=3)
    died = time.monotonic()
    flow.close()   # the writer dies: no abandon, no switch, no clean-up
    del flow

    keys = ResetItem._meta.keys
    crashed = keys.generation(crashed_gen)
    assert crashed_gen != live_gen
    assert redis_client.hlen(crashed.objs) == 300       # three batches were written...
    assert redis_client.zscore(keys.staging, crashed_gen) is not None
    assert current_generation(redis_client, ResetItem) == live_gen  # ...and never shown
    assert _content(ResetItem.objects.all()) == live_content
    assert ResetItem.objects.filter(batch="crashed").count() == 0
    live_after = {k: v for k, v in db_snapshot(redis_client).items() if k.startswith(live_prefix)}
    assert live_after == live_before
    assert_indexes_consistent(redis_client, ResetItem)
    with pytest.raises(AssertionError):
        assert_no_garbage(redis_client, ResetItem)

    # a normal reset soon after must not take the staging generation away: its lease
    # holds, and for all it knows its writer is only slow
    ResetItem.reset(make_dataset("second", 50))
    assert time.monotonic() - died < 1.5, "too slow to test the lease"
    assert redis_client.hlen(crashed.objs) == 300
    assert redis_client.zscore(keys.staging, crashed_gen) is not None
    # the only keys outside the live generation are the staging generation's
    live_prefix = ResetItem._meta.keys.generation(current_generation(redis_client, ResetItem)).prefix
    outside = {k for k in model_keys(redis_client, ResetItem)
               if not k.startswith(live_prefix) and k not in _fixed_keys() | {keys.staging}}
    assert outside and all(k.startswith(crashed.prefix) for k in outside), outside
    assert not redis_client.exists(keys.dead)

    # once its lease lapsed, the next reset frees it
    time.sleep(max(0.0, died + 1.6 - time.monotonic()))
    ResetItem.reset(make_dataset("third", 60))
    assert _content(ResetItem.objects.all()) == _content(make_dataset("third", 60))
    assert not [k for k in model_keys(redis_client, ResetItem) if k.startswith(crashed.prefix)]
    assert_indexes_consistent(redis_client, ResetItem)
    assert_no_garbage(redis_client, ResetItem)


def test_reset_abandoned_while_still_running_is_refused(redis_client, monkeypatch):
    ResetItem.reset(make_dataset("live", 200))
    monkeypatch.setattr(reset_module, "RESET_LEASE_MS", 200)
    flow, request, client, slow_gen = _start_reset_by_hand(make_dataset("slow", 500), batches_done=2)
    monkeypatch.setattr(reset_module, "RESET_LEASE_MS", 10_000)

    # the slow writer stops writing for longer than its lease; meanwhile another reset
    # finishes and frees the silent one
    time.sleep(0.3)
    ResetItem.reset(make_dataset("winner", 80))
    assert not redis_client.exists(ResetItem._meta.keys.generation(slow_gen).objs)

    # the slow writer carries on: its next batch is refused and it gives up
    with pytest.raises(ConcurrencyError):
        while True:
            request = flow.send(execute(client, request))

    assert _content(ResetItem.objects.all()) == _content(make_dataset("winner", 80))
    assert ResetItem.objects.filter(batch="slow").count() == 0
    assert_indexes_consistent(redis_client, ResetItem)
    # nothing of the slow generation is stored any more (its number may still wait in
    # the dead set until the next reset)
    assert_no_garbage(redis_client, ResetItem, idle=False)
    ResetItem.reset(make_dataset("next", 10))
    assert_no_garbage(redis_client, ResetItem)
