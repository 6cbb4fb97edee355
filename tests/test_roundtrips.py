"""One round trip per operation, counted on the server.

A MONITOR connection sees every command the server executes.  Each measured
operation is fenced by two ECHO markers sent from a separate client; the commands
seen between the markers that did not come from inside a Lua script are exactly the
requests the operation sent.  ``INFO commandstats`` (which also counts commands run
inside scripts) proves that no KEYS command is ever used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from consistency import assert_indexes_consistent, assert_no_garbage

from IndexedRedis import IndexedRedisModel
from IndexedRedis.connection import SYNC_ROUTER
from IndexedRedis.drivers.runner import run
from IndexedRedis.flows import common as operations
from IndexedRedis.flows.context import Context
from IndexedRedis.flows.reset import reset_flow

#: These count the EVALSHA path's round trips (test_functions.py counts FCALL's).
pytestmark = pytest.mark.usefixtures("evalsha_only")


class Tune(IndexedRedisModel):
    FIELDS = ["artist", "title", "track", "notes"]
    INDEXED_FIELDS = ["artist", "track"]
    KEY_NAME = "Tune"


def _warm_up() -> Tune:
    """Load every script and cache the generation on the shared client."""
    obj = Tune(artist="warm", title="up", track=0)
    obj.save()
    obj.notes = "x"
    obj.save()
    Tune.objects.filter(artist="warm").all()
    Tune.objects.get(obj._id)
    Tune.objects.filter(artist="warm").delete()
    return obj


def _seed(n: int = 20) -> list[int]:
    pks = []
    for i in range(n):
        pks.append(Tune(artist=f"artist{i % 3}", title=f"t{i}", track=i % 4).save())
    return pks


def test_writes_are_one_round_trip_each(log, redis_client):
    _warm_up()
    _seed()

    new = Tune(artist="artist0", title="fresh", track=1)
    assert log.commands(new.save) == ["EVALSHA"]
    assert new._id is not None

    new.title = "renamed"                      # a plain field of a saved object
    assert log.commands(new.save) == ["EVALSHA"]
    new.artist, new.track = "artist2", 3       # indexed fields
    assert log.commands(new.save) == ["EVALSHA"]

    fetched = Tune.objects.filter(artist="artist1").first()
    fetched.track = 9
    fetched.notes = "n"
    assert log.commands(fetched.save) == ["EVALSHA"]

    with_pk = Tune(_id=5000, artist="artist1", title="given pk", track=2)
    assert log.commands(with_pk.save) == ["EVALSHA"]

    victim = Tune.objects.get(new._id)
    assert log.commands(victim.delete) == ["EVALSHA"]
    assert Tune.objects.get(new._id) is None

    assert_indexes_consistent(redis_client, Tune)


def test_reads_are_one_round_trip_each(log):
    _warm_up()
    pks = _seed()
    results: dict[str, Any] = {}

    def keep(name: str, fn: Callable[[], Any]) -> Callable[[], None]:
        return lambda: results.__setitem__(name, fn())

    one = ["EVALSHA"]
    qs = Tune.objects.filter(artist="artist1")
    assert log.commands(keep("all", qs.all)) == one
    assert log.commands(keep("count", qs.count)) == one
    assert log.commands(keep("first", qs.first)) == one
    assert log.commands(keep("last", qs.last)) == one
    assert log.commands(keep("pks", qs.getPrimaryKeys)) == one
    # a get by pk is one MULTI/EXEC written at once (one round trip, no script)
    read = ["MULTI", "GET", "HMGET", "EXEC"]
    assert log.commands(keep("get", lambda: Tune.objects.get(pks[4]))) == read
    assert log.commands(keep("multi", lambda: Tune.objects.getMultiple(pks[:5]))) == read
    assert log.commands(keep("exists", lambda: Tune.objects.exists(pks[0]))) == one
    assert log.commands(keep("every", Tune.objects.all)) == one
    assert log.commands(keep("n", Tune.objects.count)) == one
    both = Tune.objects.filter(artist="artist1").filter(track__ne=1).filter(track__ne=3)
    assert log.commands(keep("both", both.all)) == one
    assert log.commands(keep("both_n", both.count)) == one

    artist1 = [pk for i, pk in enumerate(pks) if i % 3 == 1]
    assert [o._id for o in results["all"]] == artist1
    assert results["count"] == len(artist1)
    assert results["first"]._id == artist1[0] and results["last"]._id == artist1[-1]
    assert results["pks"] == artist1
    assert results["get"]._id == pks[4]
    assert [o._id for o in results["multi"]] == pks[:5]
    assert results["exists"] is True
    assert len(results["every"]) == results["n"] == len(pks)
    want = [pk for i, pk in enumerate(pks) if i % 3 == 1 and i % 4 not in (1, 3)]
    assert [o._id for o in results["both"]] == want and results["both_n"] == len(want)


def test_cold_start_and_stale_generation_cost_one_extra_round_trip(log, redis_client, redis_url):
    _seed(5)
    redis_client.script_flush()               # the server forgets every script
    obj = Tune(artist="cold", title="start", track=1)
    assert log.commands(obj.save) == ["EVALSHA", "EVAL"]
    obj2 = Tune(artist="cold", title="again", track=1)
    assert log.commands(obj2.save) == ["EVALSHA"]
    assert log.commands(Tune.objects.filter(artist="cold").count) == ["EVALSHA", "EVAL"]
    assert log.commands(Tune.objects.filter(artist="cold").count) == ["EVALSHA"]

    # another client resets the model: this client's cached generation is now stale
    other = redis.Redis.from_url(redis_url)
    try:
        objs = [Tune(artist="reset", title=f"r{i}", track=i % 2) for i in range(10)]
        run(other, reset_flow(Context(Tune._meta, other, SYNC_ROUTER), objs))
    finally:
        other.close()
    found: list[Any] = []
    assert log.commands(lambda: found.extend(Tune.objects.filter(artist="reset").all())) == \
        ["EVALSHA", "EVALSHA"]              # told the new generation, then asked again
    assert len(found) == 10
    assert log.commands(Tune.objects.filter(artist="reset").count) == ["EVALSHA"]
    new = Tune(artist="reset", title="after", track=0)
    assert log.commands(new.save) == ["EVALSHA"]


def test_reset_sends_a_bounded_number_of_commands(log, redis_client):
    _warm_up()
    Tune.reset([Tune(artist="warm", title="reset")])  # loads the reset scripts
    _seed(30)
    n = 3 * operations.RESET_BATCH + 7
    objs = [Tune(artist=f"a{i % 5}", title=f"t{i}", track=i % 7) for i in range(n)]
    sent = log.commands(lambda: Tune.reset(objs))
    batches = -(-n // operations.RESET_BATCH)
    assert "KEYS" not in sent and "SCAN" not in sent
    assert "EVAL" not in sent, sent               # every script was already loaded
    scripts = sent.count("EVALSHA")
    # sweep (what dead resets left) + begin + one per batch + switch + freeing the
    # replaced generation (a few commands plus one script); nothing grows with the
    # number of objects beyond the batches
    assert batches + 3 <= scripts <= batches + 4, sent
    assert len(sent) <= scripts + 10, sent
    assert Tune.objects.count() == n
    assert_no_garbage(redis_client, Tune)
    # the resetting client knows the new generation: no stale-generation retry
    assert log.commands(Tune(artist="a1", title="after reset").save) == ["EVALSHA"]
    objs[0].title = "changed after reset"
    assert log.commands(objs[0].save) == ["EVALSHA"]
    assert log.commands(Tune.objects.filter(artist="a1").count) == ["EVALSHA"]


def test_no_keys_command_in_a_full_workload(redis_client):
    redis_client.config_resetstat()
    _warm_up()
    pks = _seed(40)
    for pk in pks[:10]:
        obj = Tune.objects.get(pk)
        obj.artist = "moved"
        obj.save()
    Tune.objects.filter(artist="moved").count()
    Tune.objects.filter(artist__ne="moved").all()
    Tune.objects.filter(track=1).delete()
    Tune.objects.get(pks[-1]).delete()
    Tune.reset([Tune(artist=f"a{i % 4}", title=str(i), track=i % 3)
                for i in range(2 * operations.RESET_BATCH + 1)])
    Tune.objects.filter(artist="a1").first()
    Tune.objects.all()[0].delete()
    Tune.reset(Tune.objects.filter(artist="a2").all())
    Tune.reset([])
    Tune(artist="end", title="end", track=0).save()

    stats = redis_client.info("commandstats")
    used = {name.removeprefix("cmdstat_").lower() for name in stats}
    assert "evalsha" in used                      # the workload did reach this server
    assert "keys" not in used, sorted(used)
    assert not used & {"scan", "flushdb", "flushall"}, sorted(used)
    # commands run inside scripts are counted too: none of them was KEYS either
    assert "sadd" in used and "hset" in used
    assert_indexes_consistent(redis_client, Tune)
    assert_no_garbage(redis_client, Tune)
