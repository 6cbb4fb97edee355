"""The whole API on a real local Redis Cluster (3 masters), sync and asyncio: queries,
saves, deletes, gets, reset, reindex, unique fields, iterate, cascades and links."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio.cluster
import redis.cluster
from clusters import LocalCluster
from consistency import assert_indexes_consistent, assert_no_garbage
from redis.crc import key_slot

from IndexedRedis import IndexedRedisModel, IRField, UniqueConstraintError, acloseRedisConnections
from IndexedRedis.connection import clearRedisPools, setDefaultRedisConnectionParams
from IndexedRedis.fields.links import IRForeignLinkField


class CSong(IndexedRedisModel):
    FIELDS = ["artist", "title", IRField("track", valueType=int)]
    INDEXED_FIELDS = ["artist", "track"]
    UNIQUE_FIELDS = ["title"]
    KEY_NAME = "ClusterSongs"


class CArtist(IndexedRedisModel):
    FIELDS = ["name"]
    INDEXED_FIELDS = ["name"]
    KEY_NAME = "ClusterArtists"


class CAlbum(IndexedRedisModel):
    """Links to CArtist, which lives in another slot: cascades are not atomic."""

    FIELDS = ["title", IRForeignLinkField("artist", CArtist)]
    INDEXED_FIELDS = ["title"]
    KEY_NAME = "ClusterAlbums"


class GArtist(IndexedRedisModel):
    FIELDS = ["name"]
    KEY_NAME = "GroupArtists"
    KEY_GROUP = "catalogue"


class GAlbum(IndexedRedisModel):
    FIELDS = ["title", IRForeignLinkField("artist", GArtist)]
    INDEXED_FIELDS = ["title"]
    KEY_NAME = "GroupAlbums"
    KEY_GROUP = "catalogue"


MODELS = (CSong, CArtist, CAlbum, GArtist, GAlbum)


@pytest.fixture
def cluster(empty_cluster: LocalCluster) -> Iterator[LocalCluster]:
    """Every model's default connection is the cluster (params with "cluster": True)."""
    setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": empty_cluster.master_ports()[0],
                                     "cluster": True})
    yield empty_cluster
    clearRedisPools()


def owner_client(cluster: LocalCluster, model: type[Any]) -> redis.Redis:
    """A plain client of the master that owns a model's slot (for the consistency checks)."""
    return redis.Redis(host="127.0.0.1", port=cluster.owner(key_slot(model._meta.keys.prefix)))


def arun(make: Callable[[], Any]) -> Any:
    async def main() -> Any:
        return await make()
    return asyncio.run(main())


def test_the_models_live_on_different_masters(cluster: LocalCluster) -> None:
    owners = {cluster.owner(key_slot(m._meta.keys.prefix)) for m in (CSong, CArtist, CAlbum)}
    assert len(owners) >= 2  # so cross-slot paths are really exercised
    assert cluster.owner(key_slot(GArtist._meta.keys.prefix)) == cluster.owner(key_slot(GAlbum._meta.keys.prefix))


def test_sync_api_on_a_cluster(cluster: LocalCluster) -> None:
    assert isinstance(CSong._get_client(), redis.cluster.RedisCluster)
    songs = [CSong(artist=f"a{i % 3}", title=f"t{i}", track=i % 4) for i in range(40)]
    assert CSong.saver.saveMultiple(songs) == list(range(1, 41))
    assert CSong.objects.filter(artist="a1").count() == 13
    ordered = CSong.objects.filter(artist="a1").orderBy("-track").all()
    assert [s.track for s in ordered] == sorted((s.track for s in ordered), reverse=True)
    assert CSong.objects.get(5).title == "t4" and CSong.objects.getMultiple([2, 999])[1] is None
    song = CSong.objects.get(7)
    song.artist = "moved"
    song.save()
    assert CSong.objects.filter(artist="moved").getPrimaryKeys() == [7]
    with pytest.raises(UniqueConstraintError):
        CSong(artist="x", title="t3", track=0).save()
    assert [s._id for s in CSong.objects.iterate(batchSize=7)] == list(range(1, 41))
    assert CSong.objects.filter(artist="a2").delete() == 13
    assert CSong.objects.filter(artist="moved").first()._id == 7
    assert CSong.objects.reindex() == 27
    assert_indexes_consistent(owner_client(cluster, CSong), CSong)
    assert CSong.reset([CSong(artist="new", title=f"n{i}", track=1) for i in range(300)])[0] == 41
    assert CSong.objects.count() == 300 and CSong.objects.filter(artist="a0").count() == 0
    assert_indexes_consistent(owner_client(cluster, CSong), CSong)
    assert_no_garbage(owner_client(cluster, CSong), CSong)


def test_async_api_on_a_cluster(cluster: LocalCluster) -> None:
    async def go() -> dict[str, Any]:
        assert isinstance(CSong._get_async_client(), redis.asyncio.cluster.RedisCluster)
        songs = [CSong(artist=f"a{i % 3}", title=f"t{i}", track=i % 4) for i in range(30)]
        await CSong.saver.asaveMultiple(songs)
        await asyncio.gather(*(CSong(artist="g", title=f"g{i}", track=2).asave() for i in range(20)))
        found = await CSong.objects.filter(artist="g").aall()
        first = await CSong.objects.aget(3)
        await first.adelete()
        streamed = [s._id async for s in CSong.objects.filter(artist="a0").aiterate(batchSize=4)]
        pks = await CSong.areset([CSong(artist="r", title=f"r{i}", track=0) for i in range(120)])
        got = {"found": len(found), "streamed": streamed, "pks": pks[:2],
               "count": await CSong.objects.acount(), "gone": await CSong.objects.aget(3)}
        client = CSong._get_async_client()
        await acloseRedisConnections()
        assert CSong._get_async_client() is not client and await CSong.objects.acount() == 120
        await acloseRedisConnections()
        return got

    got = arun(go)
    assert got["found"] == 20 and got["streamed"] == list(range(1, 31, 3)) and got["count"] == 120
    assert got["gone"] is None and got["pks"] == [51, 52]
    assert_indexes_consistent(owner_client(cluster, CSong), CSong)


def test_a_cascade_across_slots_saves_each_slot_and_the_links_are_right(cluster: LocalCluster) -> None:
    album = CAlbum(title="lp", artist=CArtist(name="singer"))
    album.save()
    stored = CAlbum.objects.get(album._id, cascadeFetch=True)
    assert stored.artist.name == "singer" and stored.artist__id == album.artist._id
    assert CArtist.objects.filter(name="singer").count() == 1

    async def go() -> str:
        other = CAlbum(title="ep", artist=CArtist(name="duo"))
        await other.asave()
        fetched = await CAlbum.objects.filter(title="ep").aall(cascadeFetch=True)
        return fetched[0].artist.name

    assert arun(go) == "duo"


def test_a_key_group_keeps_a_cascade_in_one_atomic_script(cluster: LocalCluster) -> None:
    album = GAlbum(title="grouped", artist=GArtist(name="together"))
    album.save()
    assert GAlbum.objects.get(album._id, cascadeFetch=True).artist.name == "together"
    node = owner_client(cluster, GAlbum)
    assert node.exists(GArtist._meta.keys.nextpk) and node.exists(GAlbum._meta.keys.nextpk)


def test_a_cluster_client_given_as_connection(empty_cluster: LocalCluster) -> None:
    client = redis.cluster.RedisCluster(host="127.0.0.1", port=empty_cluster.master_ports()[1])

    class Own(IndexedRedisModel):
        FIELDS = ["name"]
        INDEXED_FIELDS = ["name"]
        KEY_NAME = "OwnClusterClient"
        _connection = client

    Own(name="n").save()
    assert Own.objects.filter(name="n").count() == 1
    client.close()


def test_redis_url_may_ask_for_a_cluster(empty_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    clearRedisPools()
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{empty_cluster.master_ports()[2]}/0?cluster=true")
    CArtist(name="by url").save()
    assert isinstance(CArtist._get_client(), redis.cluster.RedisCluster)
    assert CArtist.objects.filter(name="by url").count() == 1
    assert arun(lambda: CArtist.objects.filter(name="by url").acount()) == 1
    clearRedisPools()


# ---- resharding: the model's slot moves while writers and a reader run -----------------

RESHARD_WRITES = 300
ASYNC_TASKS = 8


def _use_cluster(port: int) -> None:
    setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": port, "cluster": True})


def _reshard_writer(port: int, mode: str, results: Any) -> None:
    """Saves, updates and deletes through the sync or the async API; reports the state
    it expects (pk -> stored values, None when deleted) and any error."""
    _use_cluster(port)
    expected: dict[int, Any] = {}
    errors: list[str] = []

    def plan(i: int) -> tuple[Any, list[str]]:
        obj = CSong(artist=f"{mode}-{i % 5}", title=f"{mode}-{i}", track=i % 4)
        return obj, (["update"] if i % 3 == 0 else []) + (["delete"] if i % 7 == 0 else [])

    async def run_async() -> None:
        """ASYNC_TASKS tasks at once on one event loop (a slot-map refresh after a MOVED
        must not break the others' requests in flight)."""
        numbers = iter(range(RESHARD_WRITES))

        async def task() -> None:
            for i in numbers:
                obj, then = plan(i)
                try:
                    await obj.asave()
                    if "update" in then:
                        obj.track = 9
                        await obj.asave()
                    expected[obj._id] = (obj.artist, obj.title, obj.track)
                    if "delete" in then:
                        pk = obj._id
                        await obj.adelete()
                        expected[pk] = None
                except Exception as exc:  # reported to the test
                    errors.append(f"{mode}-{i}: {exc!r}")

        await asyncio.gather(*(task() for _ in range(ASYNC_TASKS)))

    try:
        if mode == "async":
            asyncio.run(run_async())
        else:
            for i in range(RESHARD_WRITES):
                obj, then = plan(i)
                try:
                    obj.save()
                    if "update" in then:
                        obj.track = 9
                        obj.save()
                    expected[obj._id] = (obj.artist, obj.title, obj.track)
                    if "delete" in then:
                        pk = obj._id
                        obj.delete()
                        expected[pk] = None
                except Exception as exc:
                    errors.append(f"{mode}-{i}: {exc!r}")
    finally:
        results.put(("writer", mode, expected, errors))


def _reshard_reader(port: int, stop: Any, results: Any) -> None:
    """Queries in a loop; every object a query returns must match it."""
    _use_cluster(port)
    wrong: list[str] = []
    queries = 0
    errors: list[str] = []
    while not stop.is_set():
        for artist in ("sync-1", "async-2"):
            try:
                found = CSong.objects.filter(artist=artist).all()
                changed = CSong.objects.filter(artist=artist, track=9).all()
            except Exception as exc:
                errors.append(repr(exc))
                continue
            queries += 2
            wrong += [f"{o._id}:{o.artist}" for o in found if o.artist != artist]
            wrong += [f"{o._id}:{o.track}" for o in changed if o.track != 9 or o.artist != artist]
    results.put(("reader", queries, wrong, errors))


def test_writers_and_readers_keep_working_while_the_slot_moves(empty_cluster: LocalCluster) -> None:
    import multiprocessing
    import time

    cluster = empty_cluster
    port = cluster.master_ports()[0]
    slot = key_slot(CSong._meta.keys.prefix)
    home = cluster.owner(slot)
    away = next(p for p in cluster.master_ports() if p != home)
    context = multiprocessing.get_context("spawn")
    results, stop = context.Queue(), context.Event()
    writers = [context.Process(target=_reshard_writer, args=(port, mode, results), daemon=True)
               for mode in ("sync", "async")]
    reader = context.Process(target=_reshard_reader, args=(port, stop, results), daemon=True)
    for process in (*writers, reader):
        process.start()
    moves = 0
    try:
        deadline = time.monotonic() + 60
        while any(w.is_alive() for w in writers) and time.monotonic() < deadline:
            cluster.move_slot(slot, away if moves % 2 == 0 else home, between=lambda: time.sleep(0.002))
            moves += 1
            time.sleep(0.02)
        stop.set()
        outcomes = [results.get(timeout=30) for _ in range(3)]
    finally:
        stop.set()
        for process in (*writers, reader):
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
    writer_outcomes = [o for o in outcomes if o[0] == "writer"]
    (_, queries, wrong, read_errors), = [o for o in outcomes if o[0] == "reader"]
    assert [errors for *_, errors in writer_outcomes] == [[], []]
    assert moves >= 4, "the writers finished before the slot moved much"
    assert queries > 0 and wrong == [] and read_errors == []
    expected: dict[int, Any] = {}
    for _, _, state, _ in writer_outcomes:
        assert not (expected.keys() & state.keys())  # every pk handed out once
        expected.update(state)
    _use_cluster(port)
    stored = {o._id: (o.artist, o.title, o.track) for o in CSong.objects.all()}
    assert stored == {pk: values for pk, values in expected.items() if values is not None}
    node = redis.Redis(host="127.0.0.1", port=cluster.owner(slot))
    assert_indexes_consistent(node, CSong)
