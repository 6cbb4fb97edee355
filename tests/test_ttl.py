"""Expiry (TTL): expired objects vanish from every read at one instant, sweeps delete
them whole (records, index entries, expiry entries) and leave what was saved again,
check() sees no drift, a sweeper SIGKILLed mid-way leaves consistent data, and models
without TTL never declare or write an expiry key.

Timing cannot flake: 'expired' objects get a 1 ms ttl and are looked at after waiting
far longer (bounded polling), 'alive' ones get 600 s."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from _ttl_models import Cached, Plain, Session, Visit
from consistency import assert_indexes_consistent, model_keys
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from interleave import after_first_reply

from IndexedRedis import (
    FieldValueError,
    IndexedRedisModel,
    InvalidModelException,
    UniqueConstraintError,
    setDefaultRedisConnectionParams,
)
from IndexedRedis.dispatch import run_sync
from IndexedRedis.flows.expiry import sweep_expired_flow
from IndexedRedis.keys import padded_pk

ALIVE, EXPIRED = 600, 0.001


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def live_gk(client: redis.Redis, model: Any) -> Any:
    return model._meta.keys.generation(int(client.get(model._meta.keys.gen) or 0))


def mentions(client: redis.Redis, model: Any, pk: int) -> list[bytes]:
    """The keys of the model whose content names this pk (records, ids, sets, zsets)."""
    found = []
    padded = padded_pk(pk)
    for key in model_keys(client, model):
        kind = client.type(key)
        if kind == b"hash" and client.hexists(key, str(pk)):
            found.append(key)
        elif kind == b"set" and client.sismember(key, str(pk)):
            found.append(key)
        elif kind == b"zset" and (client.zscore(key, str(pk)) is not None
                                  or client.zscore(key, padded) is not None):
            found.append(key)
    return found


def session(i: int, user: str = "u") -> Session:
    return Session(user=user, n=i, token=f"t{i}", note=f"note {i}")


def answers(model: Any, user: str = "u") -> dict[str, Any]:
    """What every read says about the model's objects."""
    objs = model.objects
    return {
        "all": sorted(o._id for o in objs.all()),
        "filter": sorted(o._id for o in objs.filter(user=user)),
        "count": objs.count(),
        "filter_count": objs.filter(user=user).count(),
        "range_count": objs.filter(n__gte=0).count(),
        "ordered": [o._id for o in objs.orderBy("-n").all()],
        "page": [o._id for o in objs.orderBy("n")[0:2]],
        "exclude": sorted(objs.filter(user__ne="nobody").getPrimaryKeys()),
        "exists": objs.filter(user=user).exists(),
        "startswith": sorted(o._id for o in objs.filter(user__startswith=user[:1])),
        "text_page": [o._id for o in objs.orderBy("user")[1:3]],
    }


def test_expired_objects_vanish_from_every_read_at_once(redis_client: redis.Redis) -> None:
    doomed = [session(i) for i in range(5)]
    kept = [session(i) for i in range(5, 8)]
    Session.saver.save(doomed, ttl=0.4)
    Session.saver.save(kept, ttl=ALIVE)
    everyone = sorted(o._id for o in doomed + kept)
    assert answers(Session)["all"] == everyone
    wait_until(lambda: Session.objects.get(doomed[0]._id) is None)
    alive = sorted(o._id for o in kept)
    seen = answers(Session)
    assert seen == {"all": alive, "filter": alive, "count": 3, "filter_count": 3, "range_count": 3,
                    "ordered": sorted(alive, reverse=True), "page": alive[:2], "exclude": alive, "exists": True,
                    "startswith": alive, "text_page": alive[1:3]}
    assert Session.objects.getMultiple([o._id for o in doomed]) == [None] * 5
    assert not any(Session.objects.exists(o._id) for o in doomed)
    assert Session.objects.random()._id in alive
    assert Session.objects.filter(token="t1").first() is None
    # lazy: still stored until a sweep, and that is no drift
    assert redis_client.hlen(live_gk(redis_client, Session).objs) == 8
    report = Session.objects.check()
    assert report.ok and report.expired_pending == 5
    assert Session.objects.sweepExpired() == 5
    for obj in doomed:
        assert mentions(redis_client, Session, obj._id) == []
    assert_indexes_consistent(redis_client, Session)
    report = Session.objects.check()
    assert report.ok and report.expired_pending == 0
    assert sorted(redis_client.zrange(live_gk(redis_client, Session).exp, 0, -1)) == sorted(
        str(pk).encode() for pk in alive)


def test_every_expired_object_vanishes_when_all_expire(redis_client: redis.Redis) -> None:
    Session.saver.save([session(i) for i in range(4)], ttl=EXPIRED)
    time.sleep(0.05)
    assert answers(Session) == {"all": [], "filter": [], "count": 0, "filter_count": 0, "range_count": 0,
                                "ordered": [], "page": [], "exclude": [], "exists": False, "startswith": [],
                                "text_page": []}
    assert Session.objects.random() is None


def test_resaved_objects_survive_a_sweep(redis_client: redis.Redis) -> None:
    whole, partial, gone = session(1), session(2), session(3)
    Session.saver.save([whole, partial, gone], ttl=EXPIRED)
    time.sleep(0.05)
    whole.note = "back"
    whole.save(ttl=ALIVE)  # whole record: re-created over the unswept one
    partial.user = "v"
    partial.save()  # a partial save finds no record: the object is written whole, no expiry
    Session.objects.sweepExpired()  # (the saves' replies said objects were waiting: 'gone' may be swept already)
    assert Session.objects.get(whole._id).note == "back"
    back = Session.objects.get(partial._id)
    assert (back.user, back.n, back.token, back.note) == ("v", 2, "t2", "note 2")
    assert Session.objects.get(gone._id) is None
    assert mentions(redis_client, Session, gone._id) == []
    assert_indexes_consistent(redis_client, Session)
    assert Session.objects.check().ok
    exp = live_gk(redis_client, Session).exp
    assert redis_client.zscore(exp, str(partial._id)) is None
    assert redis_client.zscore(exp, str(whole._id)) is not None


def test_a_sweep_spares_an_object_saved_between_listing_and_delete(redis_client: redis.Redis) -> None:
    obj = session(1)
    obj.save(ttl=EXPIRED)
    time.sleep(0.05)

    def save_again() -> None:  # expired.lua listed the object, and it is saved again before the delete runs
        obj.note = "saved meanwhile"
        obj.save(ttl=ALIVE)

    def interleaved(ctx: Any) -> Any:
        return (yield from after_first_reply(sweep_expired_flow(ctx), save_again))

    assert run_sync(Session, interleaved) == 0
    assert Session.objects.get(obj._id).note == "saved meanwhile"
    assert_indexes_consistent(redis_client, Session)
    assert Session.objects.check().ok


def test_unique_values_of_expired_objects_are_free(redis_client: redis.Redis) -> None:
    old = session(1)
    old.save(ttl=EXPIRED)
    time.sleep(0.05)
    new = Session(user="w", n=9, token="t1", note="")
    new.save()  # the expired holder holds nothing
    new.note = "again"
    new.save()
    with pytest.raises(UniqueConstraintError):
        Session(user="x", n=10, token="t1", note="").save()
    Session.objects.sweepExpired()
    assert [o._id for o in Session.objects.filter(token="t1")] == [new._id]
    assert_indexes_consistent(redis_client, Session)
    assert Session.objects.check().ok


def test_writes_sweep_a_batch_when_expired_objects_wait(redis_client: redis.Redis) -> None:
    Session.saver.save([session(i) for i in range(3)], ttl=EXPIRED)
    time.sleep(0.05)
    objs = live_gk(redis_client, Session).objs
    assert redis_client.hlen(objs) == 3
    session(7).save()  # its reply says expired objects wait: a sweep batch follows
    assert redis_client.hlen(objs) == 1
    assert Session.objects.check().ok


def test_ttl_zero_and_keep_semantics(redis_client: redis.Redis) -> None:
    obj = session(1)
    obj.save(ttl=ALIVE)
    exp = live_gk(redis_client, Session).exp
    first = redis_client.zscore(exp, str(obj._id))
    obj.note = "changed"
    obj.save()  # TTL = True: a save without ttl keeps the expiry
    assert redis_client.zscore(exp, str(obj._id)) == first
    obj.save(ttl=0)  # no expiry any more
    assert redis_client.zscore(exp, str(obj._id)) is None
    with pytest.raises(FieldValueError, match="ttl"):
        obj.save(ttl=-1)
    with pytest.raises(FieldValueError, match="no TTL"):
        Plain(kind="a", n=1).save(ttl=5)


def test_default_ttl_renewed_by_every_save_and_applied_by_reset(redis_client: redis.Redis) -> None:
    obj = Cached(kind="a", n=1)
    obj.save()
    exp = live_gk(redis_client, Cached).exp
    server_ms = lambda: int(redis_client.time()[0]) * 1000  # noqa: E731
    assert abs(redis_client.zscore(exp, str(obj._id)) - server_ms() - 600_000) < 5_000
    obj.save(ttl=EXPIRED)
    time.sleep(0.05)
    assert Cached.objects.get(obj._id) is None
    obj.save()  # unchanged, but a save renews the default lifetime (and re-creates it)
    assert Cached.objects.get(obj._id) is not None
    Cached.reset([Cached(kind="b", n=i) for i in range(5)])
    exp = live_gk(redis_client, Cached).exp
    assert redis_client.zcard(exp) == 5
    assert Cached.objects.count() == 5
    assert Cached.objects.check().ok


def test_models_without_ttl_never_touch_an_expiry_key(redis_client: redis.Redis, log: Any) -> None:
    def work() -> None:
        objs = [Plain(kind="a", n=i) for i in range(5)]
        Plain.saver.save(objs)
        objs[0].n = 99
        objs[0].save()
        objs[1].delete()
        Plain.objects.filter(kind="a").count()
        Plain.objects.orderBy("n").all()
        Plain.objects.get(objs[2]._id)
        Plain.objects.getMultiple([objs[2]._id, objs[3]._id])
        Plain.objects.exists(objs[3]._id)
        Plain.objects.filter(n__gte=3).delete()
        Plain.reset([Plain(kind="b", n=1)])
        Plain.objects.check()
        Plain.objects.repair()
        assert Plain.objects.sweepExpired() == 0

    words = log.words(work)
    assert words
    assert not [w for w in words if any(":exp" in word or word.upper() in ("TIME", "ZMSCORE") for word in w)]
    assert not [key for key in model_keys(redis_client, Plain) if key.endswith(b":exp")]


def test_bad_settings_are_refused() -> None:
    for bad in (-1, 0, "soon", 0.0001):
        with pytest.raises(InvalidModelException, match="TTL"):
            type("BadTtl", (IndexedRedisModel,), {"FIELDS": ["a"], "KEY_NAME": "BadTtl", "TTL": bad})
    with pytest.raises(InvalidModelException, match="CLIENT_CACHE cannot be used on a model with TTL"):
        type("CachedTtl", (IndexedRedisModel,), {"FIELDS": ["a"], "KEY_NAME": "CachedTtl", "TTL": 5,
                                                 "CLIENT_CACHE": True})


def test_async_twins(redis_client: redis.Redis) -> None:
    async def go() -> None:
        doomed, kept = session(1), session(2)
        await kept.asave(ttl=ALIVE)  # first: a write after an expiry sweeps a batch
        await doomed.asave(ttl=EXPIRED)
        await asyncio.sleep(0.05)
        assert await Session.objects.aget(doomed._id) is None
        assert await Session.objects.acount() == 1
        assert await Session.objects.asweepExpired() == 1
        assert (await Session.objects.acheck()).ok

    asyncio.run(go())
    assert_indexes_consistent(redis_client, Session)


def test_repair_drops_stale_expiry_entries_and_sweeps(redis_client: redis.Redis) -> None:
    kept = session(3)
    kept.save(ttl=ALIVE)  # first: a write after an expiry sweeps a batch
    Session.saver.save([session(1), session(2)], ttl=EXPIRED)
    time.sleep(0.05)
    exp = live_gk(redis_client, Session).exp
    redis_client.zadd(exp, {"999": 1e15})  # drift: an expiry entry with no record
    report = Session.objects.check()
    assert report.found == {"stale_expiry": 1} and report.expired_pending == 2
    repaired = Session.objects.repair()
    assert repaired.repaired["stale_expiry"] == 1 and repaired.expired_swept == 2
    assert redis_client.zrange(exp, 0, -1) == [str(kept._id).encode()]
    assert Session.objects.check().ok
    assert_indexes_consistent(redis_client, Session)


# ---- hypothesis: random saves, ttls and deletes against a plain-Python model -------------


ops = st.lists(st.tuples(st.sampled_from(["new", "resave", "delete", "sweep"]), st.integers(0, 30),
                         st.sampled_from(["alive", "expired", "none", "keep"]), st.sampled_from(["u", "v"])),
               min_size=1, max_size=25)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops)
def test_random_saves_ttls_and_deletes_match_a_model(redis_client: redis.Redis, ops: list[Any]) -> None:
    redis_client.flushdb()  # the fixture's own server
    objs: list[Session] = []
    model: dict[int, tuple[str, int, float]] = {}  # pk -> (user, n, expires at: fake 'now' units)
    now = 0.0
    for op, number, ttl_kind, user in ops:
        ttl = {"alive": ALIVE, "expired": EXPIRED, "none": 0, "keep": None}[ttl_kind]
        if op == "new" or not objs:
            obj = Session(user=user, n=number, token=f"t{len(objs)}", note="")
            obj.save(ttl=ttl)
            objs.append(obj)
            model[obj._id] = (user, number, {"alive": 1e9, "expired": now + 1}.get(ttl_kind, float("inf")))
        elif op == "resave":
            obj = objs[number % len(objs)]
            unchanged = obj._id is not None and (obj.user, obj.n) == (user, number)
            obj.user, obj.n = user, number
            obj.save(ttl=ttl)
            old = model.get(obj._id)
            if unchanged and ttl_kind == "keep" and old is not None:
                expires = old[2]  # nothing to write, nothing written: an expired object stays expired
            elif ttl_kind == "keep":
                expires = old[2] if old is not None and old[2] > now else float("inf")
            else:
                expires = {"alive": 1e9, "expired": now + 1}.get(ttl_kind, float("inf"))
            model[obj._id] = (user, number, expires)
        elif op == "delete":
            obj = objs[number % len(objs)]
            pk = obj._id
            obj.delete()  # it becomes unsaved: a later resave inserts it anew
            model.pop(pk, None)
        else:
            Session.objects.sweepExpired()
        if ttl_kind == "expired" or op == "sweep":
            time.sleep(0.05)  # 50 times the 1 ms ttl: every 'expired' object has expired
            now += 2
    alive = {pk: v for pk, v in model.items() if v[2] > now}
    for user in ("u", "v"):
        assert sorted(o._id for o in Session.objects.filter(user=user)) == sorted(
            pk for pk, v in alive.items() if v[0] == user)
        assert Session.objects.filter(user=user).count() == sum(1 for v in alive.values() if v[0] == user)
    assert Session.objects.count() == len(alive)
    assert [o._id for o in Session.objects.orderBy("n").all()] == sorted(alive, key=lambda pk: (alive[pk][1], pk))
    by_user = sorted(alive, key=lambda pk: (alive[pk][0], pk))
    assert [o._id for o in Session.objects.orderBy("user")[1:4]] == by_user[1:4]
    assert [o is not None for o in Session.objects.getMultiple(sorted(model))] == [pk in alive for pk in sorted(model)]
    report = Session.objects.check()
    assert report.ok, report.found
    Session.objects.sweepExpired()
    assert sorted(int(pk) for pk in redis_client.hkeys(live_gk(redis_client, Session).objs)) == sorted(alive)
    assert_indexes_consistent(redis_client, Session)
    assert Session.objects.check().ok


# ---- a sweeper SIGKILLed mid-way ---------------------------------------------------------


def _sweeper(url: str, started: Any) -> None:
    setDefaultRedisConnectionParams({"url": url})
    started.value = 1
    while True:
        Session.objects.sweepExpired(batchSize=3)


def test_a_sweeper_killed_mid_sweep_leaves_consistent_data(redis_url: str, redis_client: redis.Redis) -> None:
    total = 3000
    Session.reset([session(i, user=f"u{i % 4}") for i in range(total)])  # no TTL yet ...
    gk = live_gk(redis_client, Session)
    objs = Session.objects.all()
    for start in range(0, total, 500):  # ... then all of them expire
        Session.saver.save(objs[start:start + 500], ttl=EXPIRED)
    time.sleep(0.05)
    context = multiprocessing.get_context("spawn")
    started = context.Value("i", 0)
    sweeper = context.Process(target=_sweeper, args=(redis_url, started), daemon=True)
    sweeper.start()
    try:
        wait_until(lambda: started.value == 1 and redis_client.hlen(gk.objs) < total - 30, timeout=60)
    finally:
        os.kill(sweeper.pid, signal.SIGKILL)  # type: ignore[arg-type]
        sweeper.join(10)
    left = redis_client.hlen(gk.objs)
    assert 0 < left < total, "the sweeper was not killed mid-way"
    assert_indexes_consistent(redis_client, Session)
    assert redis_client.zcard(gk.exp) == left
    report = Session.objects.check()
    assert report.ok and report.expired_pending == left
    assert Session.objects.count() == 0
    assert Session.objects.sweepExpired() == left
    assert redis_client.hlen(gk.objs) == 0 and not redis_client.exists(gk.exp)


def test_cli_check_reports_expired_objects(redis_url: str) -> None:
    Session.saver.save([session(1), session(2)], ttl=EXPIRED)
    time.sleep(0.05)
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["COLUMNS"] = "200"
    here = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run([sys.executable, "-m", "IndexedRedis", "check", "_ttl_models:Session", "--url", redis_url],
                          cwd=here, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 waiting for a sweep" in done.stdout
    repaired = subprocess.run([sys.executable, "-m", "IndexedRedis", "check", "_ttl_models:Session", "--url",
                               redis_url, "--repair"], cwd=here, env=env, capture_output=True, text=True, timeout=120)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "2 swept" in repaired.stdout
    assert Session.objects.check().expired_pending == 0


def test_if_unchanged_and_update_see_expired_objects_as_gone(redis_client: redis.Redis) -> None:
    from IndexedRedis import ConflictError, F

    kept = session(2)
    kept.save(ttl=ALIVE)
    obj = session(1)
    obj.save(ttl=EXPIRED)
    time.sleep(0.05)
    obj.note = "late"
    with pytest.raises(ConflictError):
        obj.save(ifUnchanged=True)  # as if another writer had deleted it
    assert Session.objects.update(n=F("n") + 10) == 1  # the expired object is not matched
    assert Session.objects.get(kept._id).n == 12
    Session.objects.sweepExpired()
    assert Session.objects.check().ok
    assert_indexes_consistent(redis_client, Session)


def test_update_frees_unique_values_of_expired_objects(redis_client: redis.Redis) -> None:
    kept = session(2)
    kept.save(ttl=ALIVE)
    Session(user="x", n=1, token="taken", note="").save(ttl=EXPIRED)
    time.sleep(0.05)
    assert Session.objects.filter(user="u").update(token="taken") == 1  # the expired holder holds nothing
    Session.objects.sweepExpired()
    assert [o._id for o in Session.objects.filter(token="taken")] == [kept._id]
    assert Session.objects.check().ok
    assert_indexes_consistent(redis_client, Session)


def test_links_to_expired_objects_and_streamed_resets(redis_client: redis.Redis) -> None:
    gone, kept = session(1), session(2)
    kept.save(ttl=ALIVE)
    gone.save(ttl=EXPIRED)
    Visit(page="a", session=gone).save()
    Visit(page="b", session=kept).save()
    time.sleep(0.05)
    visits = {v.page: v for v in Visit.objects.all(cascadeFetch=True)}
    assert visits["b"].session._id == kept._id
    assert not isinstance(visits["a"].session, Session)  # expired: not fetched (as a deleted one)
    Cached.reset(Cached(kind="s", n=i) for i in range(7))  # streamed: the default TTL too
    assert redis_client.zcard(live_gk(redis_client, Cached).exp) == 7
    assert Cached.objects.check().ok


def test_text_order_pages_skip_no_expired_objects(redis_client: redis.Redis) -> None:
    alive = [session(0, user="a")] + [session(i, user="b") for i in (1, 2, 3)] + [
        session(i, user="c") for i in (4, 5, 6)]
    Session.saver.save(alive, ttl=ALIVE)
    Session.saver.save([session(i, user="a") for i in (7, 8, 9)], ttl=EXPIRED)  # 'a' has 4 objects, 3 expired
    time.sleep(0.05)
    in_order = [o._id for o in alive]
    assert [o._id for o in Session.objects.orderBy("user")[4:6]] == in_order[4:6]
    assert [o._id for o in Session.objects.orderBy("user")[1:3]] == in_order[1:3]
    assert [o._id for o in Session.objects.orderBy("-user")[0:2]] == [in_order[6], in_order[5]]


def test_read_helpers_and_q_objects_leave_expired_objects_out(redis_client: redis.Redis) -> None:
    from IndexedRedis import Max, Q, Sum

    alive = [session(i, user="a" if i % 2 else "b") for i in range(1, 5)]
    Session.saver.save(alive, ttl=ALIVE)
    doomed = [session(i, user="a") for i in (50, 60)]
    Session.saver.save(doomed, ttl=EXPIRED)
    time.sleep(0.05)
    objs = Session.objects
    assert sorted(objs.values_list("n", flat=True)) == [1, 2, 3, 4]
    assert objs.aggregate(total=Sum("n"), top=Max("n")) == {"total": 10, "top": 4}
    assert objs.countBy("user") == {"a": 2, "b": 2}
    assert sorted(objs.distinct("user")) == ["a", "b"]
    assert sorted(o.n for o in objs.filter(Q(user="a") | Q(n__gte=40))) == [1, 3]
    assert sorted(o.n for o in objs.exclude(Q(user="b"))) == [1, 3]
    assert objs.filter(Q(user="a") | Q(n=60)).count() == 2
    assert set(objs.in_bulk([o._id for o in alive + doomed])) == {o._id for o in alive}
    made, created = objs.get_or_create(token="t50", defaults={"user": "z", "n": 7, "note": ""})
    assert created and made._id != doomed[0]._id  # the expired holder of t50 holds nothing
    Session.objects.sweepExpired()
    assert Session.objects.check().ok
    assert_indexes_consistent(redis_client, Session)
