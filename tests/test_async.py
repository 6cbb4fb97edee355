"""The asyncio API: every I/O method's ``a``-twin runs the same flow as the sync one,
on a real server, and both work side by side on one model."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio
from consistency import assert_indexes_consistent, assert_no_garbage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from IndexedRedis import IndexedRedisModel, IRField, LinkNotFetchedError, irNull
from IndexedRedis.fields.links import IRForeignLinkField, IRForeignMultiLinkField

T = TypeVar("T")


def arun(make: Callable[[], Awaitable[T]]) -> T:
    """Run one coroutine on a fresh event loop (each test gets its own loop)."""
    async def main() -> T:
        return await make()
    return asyncio.run(main())


class ASong(IndexedRedisModel):
    FIELDS = ["artist", "title", IRField("track", valueType=int), "album"]
    INDEXED_FIELDS = ["artist", "track"]
    UNIQUE_FIELDS = ["title"]
    KEY_NAME = "AsyncSongs"


class SSong(IndexedRedisModel):
    """ASong's twin under another KEY_NAME, driven by the sync API."""

    FIELDS = ["artist", "title", IRField("track", valueType=int), "album"]
    INDEXED_FIELDS = ["artist", "track"]
    UNIQUE_FIELDS = ["title"]
    KEY_NAME = "SyncSongs"


class AArtist(IndexedRedisModel):
    FIELDS = ["name"]
    INDEXED_FIELDS = ["name"]
    KEY_NAME = "AsyncArtists"


class AAlbum(IndexedRedisModel):
    FIELDS = ["title", IRForeignLinkField("artist", AArtist), IRForeignMultiLinkField("guests", AArtist)]
    INDEXED_FIELDS = ["title"]
    KEY_NAME = "AsyncAlbums"


def _songs(model: type[Any], n: int) -> list[Any]:
    return [model(artist=f"artist{i % 3}", title=f"title{i}", track=i % 5, album=f"album{i % 2}")
            for i in range(n)]


def _content(objs: Any) -> list[tuple[Any, ...]]:
    return [None if o is None else (o._id, o.artist, o.title, o.track, o.album) for o in objs]


def test_every_query_twin_answers_like_the_sync_method() -> None:
    ASong.reset(_songs(ASong, 30))
    qs = ASong.objects.filter(artist="artist1").filter(track__ne=2)
    ordered = ASong.objects.filter(artist="artist0").orderBy("-track")

    async def both() -> dict[str, Any]:
        streamed = [o async for o in qs.aiterate(batchSize=3)]
        looped = [o async for o in ordered]
        return {
            "all": _content(await qs.aall()), "count": await qs.acount(), "exists": await qs.aexists(),
            "first": _content([await ordered.afirst()]), "last": _content([await ordered.alast()]),
            "pks": await qs.agetPrimaryKeys(), "get": _content([await ASong.objects.aget(3)]),
            "multi": _content(await ASong.objects.agetMultiple([5, 999, 1])),
            "only": [(o._id, o.title, o.artist) for o in await qs.aallOnlyFields(["title"])],
            "get_only": (await ASong.objects.agetOnlyFields(4, ["album"])).asDict(),
            "multi_only": [o and o.asDict() for o in await ASong.objects.agetMultipleOnlyFields([4, 77], ["track"])],
            "iterate": _content(streamed), "async_for": _content(looped),
            "has": await ASong.objects.aexists(pk=7), "missing": await ASong.objects.aget(12345),
        }

    expected = {
        "all": _content(qs.all()), "count": qs.count(), "exists": qs.exists(),
        "first": _content([ordered.first()]), "last": _content([ordered.last()]),
        "pks": qs.getPrimaryKeys(), "get": _content([ASong.objects.get(3)]),
        "multi": _content(ASong.objects.getMultiple([5, 999, 1])),
        "only": [(o._id, o.title, o.artist) for o in qs.allOnlyFields(["title"])],
        "get_only": ASong.objects.getOnlyFields(4, ["album"]).asDict(),
        "multi_only": [o and o.asDict() for o in ASong.objects.getMultipleOnlyFields([4, 77], ["track"])],
        "iterate": _content(qs.iterate(batchSize=3)), "async_for": _content(ordered),
        "has": ASong.objects.exists(pk=7), "missing": None,
    }
    got = arun(both)
    assert got == expected
    assert got["count"] == 8 and len(got["iterate"]) == 8  # the query is not trivially empty
    found = arun(ASong.objects.arandom)
    assert found is not None and isinstance(found, ASong)


def test_writes_through_the_async_twins_keep_indexes_right(redis_client: redis.Redis) -> None:
    async def writes() -> dict[str, Any]:
        songs = _songs(ASong, 12)
        pks = await ASong.saver.asaveMultiple(songs)
        first = songs[0]
        first.artist = "changed"
        await first.asave()
        changed = await ASong.objects.filter(artist="changed").aall()
        assert await songs[1].adelete() is True
        assert await songs[1].adelete() is False
        stale = await ASong.objects.aget(songs[2]._id)
        songs[2].album = "unsaved edit"
        assert await songs[2].areload() == {"album": ("unsaved edit", stale.album)}
        assert songs[2].album == stale.album
        deleted = await ASong.deleter.adeleteMultiple(songs[3:5])
        by_pk = await ASong.deleter.adeleteByPk(songs[5]._id)
        by_query = await ASong.objects.filter(artist="artist0").adelete()
        listed = await ASong.objects.aall()
        for song in listed:
            song.album = "relabelled"
        await listed.asave()
        refetched = await listed.arefetch()
        reloaded = await listed.areload()
        return {"pks": pks, "changed": [o._id for o in changed], "deleted": deleted, "by_pk": by_pk,
                "by_query": by_query, "refetched": sorted({o.album for o in refetched}),
                "reloaded": reloaded, "left": await ASong.objects.acount()}

    got = arun(writes)
    assert got["pks"] == list(range(1, 13))
    assert got["changed"] == [1] and got["deleted"] == 2 and got["by_pk"] == 1
    assert got["by_query"] == 2  # artist0 were pks 1 (now 'changed'), 4 (deleted), 7, 10
    assert got["refetched"] == ["relabelled"] and got["reloaded"] == [{}] * got["left"]
    assert got["left"] == 12 - 1 - 2 - 1 - 2
    assert_indexes_consistent(redis_client, ASong)
    assert arun(lambda: ASong.objects.adelete()) == got["left"]
    assert_no_garbage(redis_client, ASong)


def test_areset_areindex_and_adestroyModel(redis_client: redis.Redis) -> None:
    async def go() -> tuple[list[int], int, int, int]:
        pks = await ASong.areset(_songs(ASong, 250))
        reindexed = await ASong.objects.areindex()
        partly = await ASong.objects.filter(artist="artist2").areindex()
        destroyed = await ASong.deleter.adestroyModel()
        return pks, reindexed, partly, destroyed

    pks, reindexed, partly, destroyed = arun(go)
    assert pks == list(range(1, 251)) and reindexed == 250 and partly == 83 and destroyed == 250
    assert ASong.objects.count() == 0
    assert_no_garbage(redis_client, ASong)


def test_unique_clash_raises_in_async_and_writes_nothing(redis_client: redis.Redis) -> None:
    from IndexedRedis import UniqueConstraintError

    ASong(artist="a", title="only once", track=1, album="x").save()

    async def clash() -> None:
        await ASong(artist="b", title="only once", track=2, album="y").asave()

    with pytest.raises(UniqueConstraintError):
        arun(clash)
    assert ASong.objects.count() == 1 and ASong.objects.filter(artist="b").count() == 0
    assert_indexes_consistent(redis_client, ASong)


def test_reading_an_unfetched_link_in_an_event_loop_raises_and_afetchLink_fetches() -> None:
    singer, guest = AArtist(name="singer"), AArtist(name="guest")
    album = AAlbum(title="lp", artist=singer, guests=[guest, singer])
    album.save()
    pk = album._id

    async def go() -> dict[str, Any]:
        lazy = await AAlbum.objects.aget(pk)
        with pytest.raises(LinkNotFetchedError, match=r"AAlbum\.artist.*afetchLink\('artist'\)"):
            _ = lazy.artist
        assert not lazy.isFetched("artist")
        fetched = await lazy.afetchLink("artist")
        assert lazy.isFetched("artist") and not lazy.isFetched("guests")
        with pytest.raises(LinkNotFetchedError):
            _ = lazy.guests
        guests = await lazy.afetchLink("guests")
        eager = await AAlbum.objects.filter(title="lp").aall(cascadeFetch=True)
        other = await AAlbum.objects.aget(pk)
        await other.acascadeFetch()
        return {"fetched": fetched.name, "guests": [g.name for g in guests],
                "eager": eager[0].artist.name, "cascaded": other.guests[1].name}

    assert arun(go) == {"fetched": "singer", "guests": ["guest", "singer"], "eager": "singer",
                        "cascaded": "singer"}
    # outside an event loop the attribute still fetches lazily
    assert AAlbum.objects.get(pk).artist.name == "singer"


def test_async_cascade_save_is_one_atomic_step() -> None:
    async def go() -> Any:
        album = AAlbum(title="new", artist=AArtist(name="fresh"), guests=[AArtist(name="g1")])
        await album.asave()
        return album

    album = arun(go)
    stored = AAlbum.objects.get(album._id)
    assert stored.artist.name == "fresh" and [g.name for g in stored.guests] == ["g1"]
    assert stored.artist__id == album.artist._id


def test_sync_and_async_side_by_side_on_one_model(redis_client: redis.Redis) -> None:
    """Threads using the sync API and an event loop using the async one, at once."""
    errors: list[BaseException] = []

    def sync_writer(start: int) -> None:
        try:
            for i in range(start, start + 40):
                ASong(artist="sync", title=f"s{i}", track=i % 5, album="a").save()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    async def async_writers() -> None:
        async def one(i: int) -> None:
            await ASong(artist="async", title=f"a{i}", track=i % 5, album="b").asave()
        await asyncio.gather(*(one(i) for i in range(80)))

    threads = [threading.Thread(target=sync_writer, args=(n * 100,)) for n in range(2)]
    for thread in threads:
        thread.start()
    arun(async_writers)
    for thread in threads:
        thread.join()
    assert not errors
    assert ASong.objects.filter(artist="sync").count() == 80
    assert arun(ASong.objects.filter(artist="async").acount) == 80
    pks = ASong.objects.getPrimaryKeys()
    assert pks == list(range(1, 161))  # every pk handed out once
    assert_indexes_consistent(redis_client, ASong)


def test_one_async_client_per_event_loop() -> None:
    async def client() -> Any:
        await ASong(artist="x", title=f"t{id(asyncio.get_running_loop())}", track=1, album="").asave()
        return ASong._get_async_client()

    first = arun(client)
    second = arun(client)  # a new loop: the first loop's client cannot serve it
    assert isinstance(first, redis.asyncio.Redis) and first is not second
    assert ASong.objects.count() == 2


def test_acloseRedisConnections_closes_the_loops_clients(redis_client: redis.Redis, redis_url: str) -> None:
    from IndexedRedis import acloseRedisConnections

    class OwnSyncForClose(IndexedRedisModel):
        FIELDS = ["name"]
        INDEXED_FIELDS = ["name"]
        KEY_NAME = "OwnSyncForClose"
        _connection = redis.Redis.from_url(redis_url)

    def connected() -> int:
        return sum(1 for c in redis_client.client_list() if c["name"] == "" and c["cmd"] != "client|list"
                   and c["cmd"] != "client")

    async def main() -> tuple[int, int, int]:
        before = connected()
        await asyncio.gather(*(ASong(artist="c", title=f"c{i}", track=i, album="").asave() for i in range(8)))
        await OwnSyncForClose(name="x").asave()  # an asyncio twin of a sync client
        opened = connected() - before
        first = ASong._get_async_client()
        await acloseRedisConnections()
        for _ in range(100):  # the server sees the hang-ups at once, or nearly
            closed = connected() - before
            if closed == 0:
                break
            await asyncio.sleep(0.01)
        assert ASong._get_async_client() is not first  # forgotten: a new one on next use
        assert await ASong.objects.filter(artist="c").acount() == 8
        return opened, closed, connected() - before

    opened, closed, after = arun(main)
    assert opened >= 2 and closed == 0 and after >= 1


def test_connection_may_be_an_asyncio_client_or_a_sync_one(redis_url: str) -> None:
    async def with_async_client() -> tuple[int, Any, int]:
        client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)  # a twin reads bytes

        class OwnAsync(IndexedRedisModel):
            FIELDS = ["name"]
            INDEXED_FIELDS = ["name"]
            KEY_NAME = "OwnAsync"
            _connection = client

        pk = await OwnAsync(name="n").asave()
        found = await OwnAsync.objects.filter(name="n").aall()
        await client.aclose() if hasattr(client, "aclose") else await client.close()
        return pk, found[0].name, OwnAsync.objects.filter(name="n").count()  # sync twin too

    assert arun(with_async_client) == (1, "n", 1)

    class OwnSync(IndexedRedisModel):
        FIELDS = ["name"]
        INDEXED_FIELDS = ["name"]
        KEY_NAME = "OwnSync"
        _connection = redis.Redis.from_url(redis_url)

    OwnSync(name="m").save()
    assert arun(lambda: OwnSync.objects.filter(name="m").acount()) == 1


@pytest.mark.usefixtures("evalsha_only")  # counts the EVALSHA path
def test_async_round_trips_are_one_each(log: Any) -> None:
    ASong.reset(_songs(ASong, 10))
    warm = ASong(artist="w", title="w", track=1, album="")
    warm.save()  # the server learns the scripts outside the measurement
    warm.delete()

    def commands(make: Callable[[], Awaitable[Any]]) -> list[str]:
        names: list[str] = []
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(ASong.objects.acount())  # connects
            names = log.commands(lambda: loop.run_until_complete(make()))
        finally:
            loop.close()
        return names

    song = ASong(artist="rt", title="rt", track=1, album="")
    assert commands(song.asave) == ["EVALSHA"]
    assert commands(lambda: ASong.objects.filter(artist="artist1").aall()) in (["EVALSHA"], ["EVALSHA_RO"])  # 6.2, 7
    assert commands(lambda: ASong.objects.aget(2)) == ["MULTI", "GET", "HMGET", "EXEC"]
    assert commands(song.adelete) == ["EVALSHA"]


def test_many_concurrent_tasks_on_one_loop(redis_client: redis.Redis) -> None:
    async def go() -> list[int]:
        songs = _songs(ASong, 200)
        pks = await asyncio.gather(*(song.asave() for song in songs))
        await asyncio.gather(*(ASong.objects.filter(artist="artist1").acount() for _ in range(64)))
        for song in songs[:64]:
            song.track = 4
        await asyncio.gather(*(song.asave() for song in songs[:64]))
        return list(pks)

    pks = arun(go)
    assert sorted(pks) == list(range(1, 201))
    assert ASong.objects.filter(track=4).count() == 64 + sum(1 for i in range(64, 200) if i % 5 == 4)
    assert_indexes_consistent(redis_client, ASong)


_ops = st.lists(st.tuples(st.sampled_from(["save", "update", "delete"]), st.integers(0, 7),
                          st.sampled_from(["x", "y", "z"]), st.integers(0, 3)), max_size=25)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops)
def test_async_and_sync_apis_end_in_the_same_state(ops: list[tuple[str, int, str, int]],
                                                   redis_client: redis.Redis) -> None:
    """The same random writes through either API leave the same data and answers."""
    ASong.reset([])
    SSong.reset([])
    plain: dict[int, Any] = {}
    twin: dict[int, Any] = {}

    def step(model: type[Any], store: dict[int, Any], op: str, slot: int, artist: str, track: int) -> Any:
        obj = store.get(slot)
        if op == "save" and obj is None:
            obj = store[slot] = model(artist=artist, title=f"t{slot}", track=track, album="")
            return obj, "save"
        if obj is None:
            return None, None
        if op == "update":
            obj.artist, obj.track = artist, track
            return obj, "save"
        del store[slot]
        return obj, "delete"

    async def run_async() -> None:
        for op in ops:
            obj, action = step(ASong, twin, *op)
            if action == "save":
                await obj.asave()
            elif action == "delete":
                await obj.adelete()

    for op in ops:
        obj, action = step(SSong, plain, *op)
        if action == "save":
            obj.save()
        elif action == "delete":
            obj.delete()
    arun(run_async)

    def answers(model: type[Any]) -> list[Any]:
        return [_content(model.objects.all()),
                *[model.objects.filter(artist=a).getPrimaryKeys() for a in "xyz"],
                *[model.objects.filter(track__ne=t).count() for t in range(4)]]

    assert answers(ASong) == answers(SSong)
    assert_indexes_consistent(redis_client, ASong)


def test_null_values_round_trip_through_async() -> None:
    class NullSong(IndexedRedisModel):
        FIELDS = ["name", IRField("n", valueType=int)]
        INDEXED_FIELDS = ["n"]
        KEY_NAME = "AsyncNulls"

    async def go() -> Any:
        await NullSong(name="a", n=irNull).asave()
        return await NullSong.objects.filter(n=irNull).afirst()

    assert arun(go).n is irNull
