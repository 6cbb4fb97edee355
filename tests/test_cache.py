"""The client-side cache against real servers: coherence with other processes' writes,
lost connections, the memory budget, the counters, and the staleness guarantee."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.cluster
from _cache_models import CachedSong, WriterSong
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import IndexedRedis
from IndexedRedis import IndexedRedisModel, InvalidModelException, ReadOnlyObjectError
from IndexedRedis.cache import registry, tracker
from IndexedRedis.embedded import EmbeddedRedis, free_port

HERE = os.path.dirname(os.path.abspath(__file__))


class Writer:
    """Another process writing the cached model's data (tests/cache_writer.py)."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "cache_writer.py"), url],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def do(self, **ask: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(ask) + "\n")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the writer process died (exit status {self.proc.wait()})")
        return json.loads(line)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def writer(redis_url: str) -> Iterator[Writer]:
    proc = Writer(redis_url)
    try:
        yield proc
    finally:
        proc.close()


def rows(n: int) -> list[dict[str, Any]]:
    return [{"artist": f"artist-{i % 4}", "title": f"title-{i}", "track": i % 3} for i in range(n)]


def load(n: int = 12) -> list[int]:
    return CachedSong.reset([CachedSong(**row) for row in rows(n)])


def stats() -> dict[str, int]:
    return CachedSong.objects.cacheStats()


# ---- the switch --------------------------------------------------------------------


def test_a_model_with_link_fields_cannot_be_cached() -> None:
    from IndexedRedis import IRForeignLinkField

    with pytest.raises(InvalidModelException, match="link fields"):
        class Linked(IndexedRedisModel):
            FIELDS = ["name", IRForeignLinkField("song", WriterSong)]
            KEY_NAME = "CacheLinked"
            CLIENT_CACHE = True


def test_a_bad_switch_is_refused_with_the_model_named() -> None:
    with pytest.raises(InvalidModelException, match="Bad.*CLIENT_CACHE.*max_bytes"):
        class Bad(IndexedRedisModel):
            FIELDS = ["name"]
            KEY_NAME = "CacheBad"
            CLIENT_CACHE = {"max_byte": 10}


def test_connection_params_switch_the_cache_on_for_their_models(redis_url: str) -> None:
    params = {**IndexedRedis.connection.params_from_url(redis_url), "client_cache": {"max_bytes": 1 << 20}}

    class ByParams(IndexedRedisModel):
        FIELDS = ["name"]
        INDEXED_FIELDS = ["name"]
        KEY_NAME = "CacheByParams"
        REDIS_CONNECTION_PARAMS = params

    pk = ByParams(name="a").save()
    first = ByParams.objects.get(pk)
    assert ByParams.objects.get(pk) is first
    found = ByParams.objects.filter(name="a").all()
    assert ByParams.objects.filter(name="a").all()[0] is found[0]
    assert ByParams.objects.cacheStats()["budget"] == 1 << 20
    assert IndexedRedis.cacheStats()["ByParams"]["hits"] >= 2


def test_without_a_switch_nothing_is_cached() -> None:
    pk = WriterSong(artist="a", title="t", track=1).save()
    assert WriterSong.objects.get(pk) is not WriterSong.objects.get(pk)
    assert registry.trackers() == []


# ---- read-only shared instances ------------------------------------------------------


def test_cached_instances_are_shared_and_read_only_and_a_copy_saves() -> None:
    pks = load()
    song = CachedSong.objects.get(pks[0])
    assert CachedSong.objects.get(pks[0]) is song
    with pytest.raises(ReadOnlyObjectError, match=r"CachedSong pk \d+ came from the client cache.*'title'"):
        song.title = "changed"
    mine = song.copy(copyPrimaryKey=True, copyValues=True)
    mine.title = "changed"
    mine.save()
    assert CachedSong.objects.get(pks[0]).title == "changed"  # a process reads its own writes
    assert song.title == "title-0"  # the old instance is untouched; the cache dropped it
    with pytest.raises(IndexedRedis.IndexedRedisError, match="read it again"):
        song.reload()


def test_a_deleted_cached_object_is_gone_from_reads() -> None:
    pks = load()
    song = CachedSong.objects.get(pks[1])
    assert song.delete()
    assert CachedSong.objects.get(pks[1]) is None
    assert song._id == pks[1]  # other readers hold it: it stays as it was
    assert pks[1] not in [s._id for s in CachedSong.objects.filter(artist="artist-1").all()]


# ---- coherence with another process --------------------------------------------------


def test_another_process_write_invalidates_objects_and_queries(writer: Writer) -> None:
    pks = load()
    before = CachedSong.objects.get(pks[2])
    by_artist = CachedSong.objects.filter(artist="artist-2").all()
    assert CachedSong.objects.filter(artist="artist-2").all()[0] is by_artist[0]
    writer.do(op="save", pk=pks[2], values={"title": "new title"})
    assert CachedSong.objects.get(pks[2]).title == "new title"
    assert before.title == "title-2"
    writer.do(op="save", pk=pks[2], values={"artist": "artist-3"})
    assert pks[2] not in [s._id for s in CachedSong.objects.filter(artist="artist-2").all()]
    assert pks[2] in [s._id for s in CachedSong.objects.filter(artist="artist-3").all()]
    new = writer.do(op="insert", values={"artist": "artist-2", "title": "inserted", "track": 1})["pk"]
    assert new in [s._id for s in CachedSong.objects.filter(artist="artist-2").all()]
    writer.do(op="delete", pk=pks[6])
    assert CachedSong.objects.get(pks[6]) is None
    assert pks[6] not in [s._id for s in CachedSong.objects.filter(artist="artist-2").all()]


def test_an_update_of_another_object_keeps_the_rest_cached(writer: Writer) -> None:
    pks = load()
    kept = CachedSong.objects.get(pks[0])
    query = CachedSong.objects.filter(artist="artist-1").all()
    writer.do(op="save", pk=pks[3], values={"title": "other"})  # not indexed, not in the query
    assert CachedSong.objects.get(pks[0]) is kept
    assert CachedSong.objects.filter(artist="artist-1").all()[0] is query[0]


def test_a_reset_by_another_process_invalidates_everything(writer: Writer) -> None:
    pks = load()
    CachedSong.objects.get(pks[0])
    CachedSong.objects.filter(artist="artist-0").all()
    flushes = stats()["flushes"]
    writer.do(op="reset", rows=[{"artist": "artist-0", "title": "fresh", "track": 2}])
    assert CachedSong.objects.get(pks[0]) is None
    assert [s.title for s in CachedSong.objects.filter(artist="artist-0").all()] == ["fresh"]
    assert stats()["flushes"] == flushes + 1


def test_the_counters(writer: Writer) -> None:
    pks = load()
    base = stats()
    CachedSong.objects.get(pks[0])  # miss
    CachedSong.objects.get(pks[0])  # hit
    CachedSong.objects.getMultiple([pks[0], pks[1]])  # a hit and a miss
    CachedSong.objects.filter(track=1).all()  # a miss
    CachedSong.objects.filter(track=1).all()  # a hit
    writer.do(op="save", pk=pks[0], values={"title": "x"})
    CachedSong.objects.get(pks[0])  # the invalidation applied (the object and nothing else), a miss
    now = stats()
    assert now["hits"] - base["hits"] == 3
    assert now["misses"] - base["misses"] == 4
    assert now["invalidations"] - base["invalidations"] == 1
    assert now["flushes"] == base["flushes"]
    # pks[0] and pks[1]; the query (track 1: pks 1, 4, 7, 10) with its 4 objects
    assert now["entries"] == 2 + 1 + 3


def test_first_and_last_are_answered_from_the_cache_and_stay_coherent(writer: Writer) -> None:
    pks = load()
    query = CachedSong.objects.filter(artist="artist-1")  # pks 1, 5, 9
    base = stats()
    first, last = query.first(), query.last()  # two misses
    assert (first._id, last._id) == (pks[1], pks[9])
    assert query.first() is first and query.last() is last  # two hits, no script call
    assert asyncio.run(query.afirst()) is first and asyncio.run(query.alast()) is last
    assert stats()["hits"] - base["hits"] == 4
    assert stats()["misses"] - base["misses"] == 2
    assert CachedSong.objects.filter(artist="nobody").first() is None  # an empty result, cached too
    assert CachedSong.objects.filter(artist="nobody").first() is None
    writer.do(op="save", pk=pks[1], values={"title": "changed"})
    assert query.first().title == "changed"
    writer.do(op="save", pk=pks[9], values={"artist": "artist-0"})
    assert query.last()._id == pks[5]
    new = writer.do(op="insert", values={"artist": "nobody", "title": "t", "track": 0})["pk"]
    assert CachedSong.objects.filter(artist="nobody").first()._id == new
    assert asyncio.run(CachedSong.objects.filter(artist="nobody").alast())._id == new


def test_memory_stays_within_the_budget() -> None:
    class Small(IndexedRedisModel):
        FIELDS = ["artist", "title"]
        INDEXED_FIELDS = ["artist"]
        KEY_NAME = "CacheSmall"
        CLIENT_CACHE = 40_000

    pks = Small.reset([Small(artist=f"a{i % 10}", title="x" * 100 + str(i)) for i in range(400)])
    for pk in pks:
        Small.objects.get(pk)
    for i in range(10):
        Small.objects.filter(artist=f"a{i}").all()
    found = Small.objects.cacheStats()
    assert 0 < found["bytes"] <= 40_000
    assert found["evictions"] > 0 and 0 < found["entries"] < 400
    assert Small.objects.get(pks[-1]) is Small.objects.get(pks[-1])  # the most recent are kept


# ---- lost connections ----------------------------------------------------------------


def test_a_killed_tracking_connection_flushes_and_tracking_comes_back(redis_client: redis.Redis) -> None:
    pks = load()
    CachedSong.objects.get(pks[0])
    flushes = stats()["flushes"]
    (found,) = [t for t in registry.trackers()]
    ids = [int(c["id"]) for c in redis_client.client_list() if "t" in c["flags"]]
    assert len(ids) == 1
    redis_client.client_kill_filter(_id=ids[0])
    # Written while the cache cannot hear it: no invalidation will ever come for it.
    changed = WriterSong.objects.get(pks[0])
    changed.title = "while disconnected"
    changed.save()
    time.sleep(0.05)
    assert CachedSong.objects.get(pks[0]).title == "while disconnected"  # nothing served from the flushed cache
    assert stats()["flushes"] == flushes + 1 and found.conn is None
    time.sleep(tracker.RETRY + 0.1)
    again = CachedSong.objects.get(pks[0])
    assert CachedSong.objects.get(pks[0]) is again  # tracking is back: cached again
    assert len([c for c in redis_client.client_list() if "t" in c["flags"]]) == 1


def test_a_server_restart_flushes_the_cache() -> None:
    port = free_port()
    server = EmbeddedRedis(port=port, unix_socket=False)
    server.start()
    try:
        IndexedRedis.setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": port})
        pks = load()
        CachedSong.objects.get(pks[0])
        server.stop()
        server = EmbeddedRedis(port=port, unix_socket=False)
        server.start()  # empty: the data is gone
        time.sleep(0.05)
        assert CachedSong.objects.get(pks[0]) is None
        assert stats()["flushes"] >= 1
    finally:
        server.stop()


def test_a_deleted_cache_flag_flushes_the_cache(redis_client: redis.Redis) -> None:
    pks = load()
    CachedSong.objects.get(pks[0])
    flushes = stats()["flushes"]
    redis_client.delete(CachedSong._meta.keys.cache_flag)
    # Written while no flag exists: the save does not stamp.
    changed = WriterSong.objects.get(pks[0])
    changed.title = "unstamped"
    changed.save()
    assert CachedSong.objects.get(pks[0]).title == "unstamped"
    assert stats()["flushes"] == flushes + 1
    assert redis_client.exists(CachedSong._meta.keys.cache_flag)


def test_writes_stamp_only_while_some_process_caches_the_model(redis_client: redis.Redis) -> None:
    def sets() -> int:
        return int(redis_client.info("commandstats").get("cmdstat_set", {}).get("calls", 0))

    pks = load()
    song = WriterSong.objects.get(pks[0])
    before = sets()
    song.title = "a"
    song.save()
    assert sets() == before  # nobody caches the model: no stamp
    CachedSong.objects.get(pks[0])  # a cache: its flag is set
    before = sets()
    song.title = "b"
    song.save()
    assert sets() == before + 1
    assert not redis_client.keys(b"*:t:*")  # a stamp is never left behind


# ---- the guarantee -------------------------------------------------------------------


def _stale_reads(writer: Writer, pks: list[int], rounds: int) -> int:
    stale = 0
    for i in range(rounds):
        pk, artist = pks[i % len(pks)], f"artist-{i % len(pks) % 4}"  # as rows() made them
        assert CachedSong.objects.get(pk) is not None  # cached now (or already)
        assert pk in [s._id for s in CachedSong.objects.filter(artist=artist).all()]
        ack = writer.do(op="save", pk=pk, values={"title": f"v{i}"})
        time.sleep(max(0.0, ack["t"] + 0.010 - time.monotonic()))  # starts 10 ms after the ack
        if CachedSong.objects.get(pk).title != f"v{i}":
            stale += 1
        if f"v{i}" not in [s.title for s in CachedSong.objects.filter(artist=artist).all()]:
            stale += 1
    return stale


def test_a_read_10ms_after_another_process_acknowledged_write_is_never_stale(writer: Writer) -> None:
    pks = load(8)
    assert _stale_reads(writer, pks, 400) == 0


def test_the_stale_read_check_can_fail(writer: Writer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same loop with invalidations left unread finds stale reads: the test above
    would see them if the cache missed invalidations."""
    pks = load(8)
    CachedSong.objects.get(pks[0])
    monkeypatch.setattr(tracker.Tracker, "poll", lambda self: None)
    monkeypatch.setattr(tracker, "HEARTBEAT", 3600.0)
    assert _stale_reads(writer, pks, 20) > 0


class _Plain:
    """The plain-Python model of the data set."""

    def __init__(self, pks: list[int]) -> None:
        self.objects = {pk: dict(row) for pk, row in zip(pks, rows(len(pks)))}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["title", "artist", "delete", "insert", "get", "filter"]),
                          st.integers(0, 7), st.integers(0, 3)), min_size=5, max_size=30))
def test_random_writes_of_another_process_and_cached_reads_agree_with_a_plain_model(
        writer: Writer, steps: list[tuple[str, int, int]]) -> None:
    pks = writer.do(op="reset", rows=rows(8))["pks"]
    plain = _Plain(pks)
    for action, index, value in steps:
        live = sorted(plain.objects)
        pk = live[index % len(live)] if live else None
        if action == "title" and pk is not None:
            writer.do(op="save", pk=pk, values={"title": f"t{value}"})
            plain.objects[pk]["title"] = f"t{value}"
        elif action == "artist" and pk is not None:
            writer.do(op="save", pk=pk, values={"artist": f"artist-{value}"})
            plain.objects[pk]["artist"] = f"artist-{value}"
        elif action == "delete" and pk is not None:
            writer.do(op="delete", pk=pk)
            del plain.objects[pk]
        elif action == "insert":
            row = {"artist": f"artist-{value}", "title": "new", "track": value % 3}
            plain.objects[writer.do(op="insert", values=row)["pk"]] = row
        elif action == "get":
            wanted = pks[index]
            got = CachedSong.objects.get(wanted)
            expected = plain.objects.get(wanted)
            assert (None if got is None else {n: getattr(got, n) for n in ("artist", "title", "track")}) == expected
        else:
            got = [(s._id, s.title) for s in CachedSong.objects.filter(artist=f"artist-{value}").all()]
            assert got == sorted((k, v["title"]) for k, v in plain.objects.items() if v["artist"] == f"artist-{value}")


# ---- asyncio and cluster -------------------------------------------------------------


def test_the_asyncio_driver_shares_the_cache(writer: Writer) -> None:
    pks = load()

    async def main() -> None:
        first = await CachedSong.objects.aget(pks[0])
        assert await CachedSong.objects.aget(pks[0]) is first
        assert CachedSong.objects.get(pks[0]) is first  # one cache per process and server
        found = await CachedSong.objects.filter(artist="artist-0").aall()
        assert (await CachedSong.objects.filter(artist="artist-0").aall())[0] is found[0]
        writer.do(op="save", pk=pks[0], values={"title": "async"})
        assert (await CachedSong.objects.aget(pks[0])).title == "async"
        mine = first.copy(copyPrimaryKey=True, copyValues=True)
        mine.title = "own"
        await mine.asave()
        assert (await CachedSong.objects.aget(pks[0])).title == "own"
        assert [s.title for s in await CachedSong.objects.filter(artist="artist-0").aall()][0] == "own"
        await IndexedRedis.acloseRedisConnections()

    asyncio.run(main())


def test_on_a_cluster_the_cache_tracks_the_node_of_the_slot(empty_cluster: Any) -> None:
    params = {"host": "127.0.0.1", "port": empty_cluster.master_ports()[0], "cluster": True}

    class ClusterSong(IndexedRedisModel):
        FIELDS = ["artist", "title"]
        INDEXED_FIELDS = ["artist"]
        KEY_NAME = "CacheClusterSongs"
        REDIS_CONNECTION_PARAMS = params
        CLIENT_CACHE = True

    with warnings.catch_warnings():  # the same data set, written without a cache: meant
        warnings.simplefilter("ignore", IndexedRedis.SharedKeysWarning)

        class ClusterWriter(IndexedRedisModel):
            FIELDS = ["artist", "title"]
            INDEXED_FIELDS = ["artist"]
            KEY_NAME = "CacheClusterSongs"
            REDIS_CONNECTION_PARAMS = params

    pks = ClusterSong.reset([ClusterSong(artist=f"a{i % 2}", title=f"t{i}") for i in range(6)])
    first = ClusterSong.objects.get(pks[0])
    assert ClusterSong.objects.get(pks[0]) is first
    query = ClusterSong.objects.filter(artist="a0").all()
    other = ClusterWriter.objects.get(pks[0])
    other.title = "changed on the cluster"
    other.save()
    assert ClusterSong.objects.get(pks[0]).title == "changed on the cluster"
    assert "changed on the cluster" in [s.title for s in ClusterSong.objects.filter(artist="a0").all()]
    assert query[0].title == "t0"
    (found,) = registry.trackers()
    slot = IndexedRedis.getRedisConnection(params).keyslot(ClusterSong._meta.keys.gen)
    owner = IndexedRedis.getRedisConnection(params).nodes_manager.slots_cache[slot][0]
    assert found.name == f"{owner.host}:{owner.port}"

    async def main() -> None:
        await ClusterSong.objects.aget(pks[1])  # a new client learns the slot map first
        again = await ClusterSong.objects.aget(pks[1])
        assert await ClusterSong.objects.aget(pks[1]) is again
        assert ClusterSong.objects.get(pks[1]) is again
        await IndexedRedis.acloseRedisConnections()

    asyncio.run(main())


def test_redis_puts_the_invalidation_on_the_tracking_socket_before_the_writer_gets_its_reply(
        redis_url: str) -> None:
    """The ordering the guarantee rests on, checked on the real server: when a write's
    reply has been read, its invalidation is already readable on the tracking socket."""
    import select

    from IndexedRedis.cache.resp import RespReader

    url = IndexedRedis.connection.params_from_url(redis_url)
    conn = redis.Connection(host=url["host"], port=url["port"], protocol=3)
    conn.connect()
    sock, reader = conn._sock, RespReader()
    sock.sendall(b"".join(conn.pack_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "ir:{Ordering}:")))
    while not reader.next()[0]:
        reader.feed(sock.recv(65536))
    writer = redis.Redis.from_url(redis_url)
    readable = 0
    for i in range(300):
        writer.set("ir:{Ordering}:k", i)  # returns once the reply is read
        if select.select([sock], [], [], 0)[0]:
            readable += 1
        while not reader.next()[0]:  # this write's invalidation, however late
            reader.feed(sock.recv(65536))
    writer.close()
    conn.disconnect()
    assert readable == 300



def test_on_a_cluster_a_slot_that_moves_takes_the_cache_with_it(empty_cluster: Any) -> None:
    from redis.crc import key_slot

    params = {"host": "127.0.0.1", "port": empty_cluster.master_ports()[0], "cluster": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IndexedRedis.SharedKeysWarning)

        class MovingSong(IndexedRedisModel):
            FIELDS = ["artist", "title"]
            INDEXED_FIELDS = ["artist"]
            KEY_NAME = "CacheMovingSongs"
            REDIS_CONNECTION_PARAMS = params
            CLIENT_CACHE = True

        class MovingWriter(IndexedRedisModel):
            FIELDS = ["artist", "title"]
            INDEXED_FIELDS = ["artist"]
            KEY_NAME = "CacheMovingSongs"
            REDIS_CONNECTION_PARAMS = params

    pks = MovingSong.reset([MovingSong(artist="a", title=f"t{i}") for i in range(4)])
    MovingSong.objects.get(pks[0])
    assert MovingSong.objects.get(pks[0]) is MovingSong.objects.get(pks[0])
    slot = key_slot(MovingSong._meta.keys.hash_tag.encode())
    home = empty_cluster.owner(slot)
    away = next(p for p in empty_cluster.master_ports() if p != home)
    empty_cluster.move_slot(slot, away)
    other = redis.cluster.RedisCluster(host="127.0.0.1", port=away)  # another client writes at the new owner
    try:
        writer = MovingWriter.objects.get(pks[0])
        assert writer is not None
        writer.title = "written after the move"
        writer.save()
        assert other.exists(MovingSong._meta.keys.gen)
    finally:
        other.close()
    for _ in range(3):  # a read learns the move (MOVED); the cache follows the slot and fills again
        assert MovingSong.objects.get(pks[0]).title == "written after the move"
    assert MovingSong.objects.get(pks[0]) is MovingSong.objects.get(pks[0])
    names = {tracker.name for tracker in registry.trackers()}
    assert f"127.0.0.1:{away}" in names
    writer.title = "and again"
    writer.save()
    assert MovingSong.objects.get(pks[0]).title == "and again"


def test_threads_share_one_cache_safely(writer: Writer) -> None:
    import threading

    pks = load(16)
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                for pk in pks:
                    assert CachedSong.objects.get(pk) is not None
                CachedSong.objects.filter(artist="artist-1").all()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        for i in range(60):
            writer.do(op="save", pk=pks[i % len(pks)], values={"title": f"w{i}"})
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not errors
    for i in range(60 - len(pks), 60):  # every object's last write is what a read gives
        assert CachedSong.objects.get(pks[i % len(pks)]).title == f"w{i}"
