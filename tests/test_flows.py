"""The I/O-free core on its own: flows are fed replies by hand and the requests they
make are checked.  No Redis is involved (and none is contacted)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from flow_router import Router

from IndexedRedis import ConcurrencyError, IndexedRedisModel, IRField, scripts
from IndexedRedis.compiler import Query
from IndexedRedis.fields.links import IRForeignLinkField
from IndexedRedis.flows import common, links, read, reset, save
from IndexedRedis.flows.context import Context, routed
from IndexedRedis.flows.requests import Command, Emit, ScriptCall, Transaction


@pytest.fixture(autouse=True)
def ir_default_connection() -> None:
    """Overrides conftest's: these tests start no server."""


class FSong(IndexedRedisModel):
    FIELDS = ["artist", "title", IRField("track", valueType=int)]
    INDEXED_FIELDS = ["artist", "track"]
    KEY_NAME = "FlowSongs"


class FArtist(IndexedRedisModel):
    FIELDS = ["name"]
    KEY_NAME = "FlowArtists"


class FAlbum(IndexedRedisModel):
    FIELDS = ["title", IRForeignLinkField("artist", FArtist)]
    KEY_NAME = "FlowAlbums"


def ctx_for(model: type[Any], router: Router | None = None) -> Context:
    return Context(model._meta, "main", router or Router())


def start(flow: Any) -> Any:
    return next(flow)


def finish(flow: Any, reply: Any) -> Any:
    with pytest.raises(StopIteration) as stop:
        flow.send(reply)
    return stop.value.value


def test_save_of_a_new_object_is_one_script_call_and_marks_it_stored() -> None:
    song = FSong(artist="a", title="t", track=3)
    flow = save.save_flow(ctx_for(FSong), [song])
    request = start(flow)
    assert type(request) is ScriptCall and request.script is scripts.SAVE and request.route is None
    keys = FSong._meta.keys
    assert keys.gen in request.keys and keys.generation(0).objs in request.keys
    assert keys.generation(0).index("artist", b"a") in request.keys  # every key it touches is declared
    assert finish(flow, [common.OK, b"7"]) == [7]
    assert song._id == 7 and song._orig == {"artist": "a", "title": "t", "track": "3"}
    assert not song.hasUnsavedChanges()


class FSong6(IndexedRedisModel):
    FIELDS = [IRField("artist", hashIndex=True), IRField("track", valueType=int)]
    INDEXED_FIELDS = ["artist", "track"]
    KEY_NAME = "FlowSongHashed"


class FUnique(IndexedRedisModel):
    FIELDS = ["code", "kind"]
    INDEXED_FIELDS = ["code", "kind"]
    UNIQUE_FIELDS = ["code"]
    KEY_NAME = "FlowUnique"


def _save_groups(request: ScriptCall) -> list[Any]:
    _, objects = msgpack.unpackb(request.args[0], raw=True)
    return [group for ob in objects for group in ob[4]]


def test_a_new_objects_plain_indexes_go_as_bare_set_numbers_and_the_rest_whole() -> None:
    """An object without a pk has no stored values to check: a plain index group is
    the number of the set its pk joins; unique and sorted indexes, and any object with
    a pk, send the whole group (beliefs, old set, zsets)."""
    flow = save.save_flow(ctx_for(FSong), [FSong(artist="a", title="t", track=3)])
    request = start(flow)
    artist, track = _save_groups(request)
    # text: the set, and the dictionary entry the value may add ({field, set, dictionary, text})
    gk = FSong._meta.keys.generation(0)
    assert isinstance(artist, list) and len(artist) == 4 and artist[0] == b"artist" and artist[3] == b"a"
    assert request.keys[artist[1] - 1] == gk.index("artist", b"a")
    assert request.keys[artist[2] - 1] == gk.text_dict("artist")
    request = start(save.save_flow(ctx_for(FSong), [FSong(artist="Straße", track=3)]))
    artist, _ = _save_groups(request)  # a value whose casefold differs: its folded member too
    assert len(artist) == 6 and request.keys[artist[4] - 1] == gk.fold_dict("artist")
    assert isinstance(track, list) and track[0] == b"track"  # numeric: its score zset too
    request = start(save.save_flow(ctx_for(FSong6), [FSong6(artist="a", track=3)]))
    artist, track = _save_groups(request)
    assert isinstance(artist, int) and b":i:artist:" in request.keys[artist - 1]  # hashed: a plain index
    request = start(save.save_flow(ctx_for(FUnique), [FUnique(code="c1", kind="k")]))
    code, kind = _save_groups(request)
    assert isinstance(code, list) and code[5] == 1 and isinstance(kind, list)  # unique: checked
    stored = FSong(artist="a", title="t", track=3)
    stored._id = 4
    groups = _save_groups(start(save.save_flow(ctx_for(FSong), [stored])))
    assert all(isinstance(group, list) for group in groups)


def test_save_follows_a_moved_generation() -> None:
    ctx = ctx_for(FSong)
    flow = save.save_flow(ctx, [FSong(artist="a", title="t", track=1)])
    first = start(flow)
    second = flow.send([common.STALE_GEN, b"5", b"1"])
    keys = FSong._meta.keys
    assert keys.generation(0).objs in first.keys and keys.generation(5).objs in second.keys
    assert ctx.gen == 5
    assert finish(flow, [common.OK, b"1"]) == [1]


def test_a_save_that_keeps_losing_races_gives_up_with_a_clear_error() -> None:
    flow = save.save_flow(ctx_for(FSong), [FSong(artist="a", title="t", track=1)])
    start(flow)
    with pytest.raises(ConcurrencyError, match="FSong"):
        for gen in range(common.MAX_ATTEMPTS + 1):
            flow.send([common.STALE_GEN, str(gen + 1).encode(), b"1"])


def test_get_reads_pointer_and_records_in_one_transaction_and_retries_on_a_new_generation() -> None:
    ctx = ctx_for(FSong)
    flow = read.get_flow(ctx, [1, 2])
    request = start(flow)
    keys = FSong._meta.keys
    assert request == Transaction((("GET", keys.gen), ("HMGET", keys.generation(0).objs, 1, 2)))
    again = flow.send([b"3", [None, None]])  # the records were read from a stale generation
    assert again.commands[1][1] == keys.generation(3).objs
    assert finish(flow, [b"3", [b"r1", None]]) == [b"r1", None]


def test_a_query_names_its_index_keys_and_builds_objects_from_the_reply() -> None:
    meta = FSong._meta
    query = Query().narrowed(meta, {"artist": "x", "track__gte": 2})
    flow = read.page_flow(ctx_for(FSong), query)
    request = start(flow)
    assert request.script is scripts.QUERY and request.readonly
    assert meta.keys.generation(0).index("artist", b"x") in request.keys
    assert meta.keys.generation(0).score_index("track") in request.keys
    records = [meta.codec.pack({"artist": "x", "title": f"t{pk}", "track": "2"}) for pk in (9, 4)]
    objs = finish(flow, [common.OK, b"9,4", records])
    assert [(o._id, o.title) for o in objs] == [(4, "t4"), (9, "t9")]  # a driven result is sorted by pk


def test_records_of_an_unknown_schema_are_learned_with_one_hmget() -> None:
    meta = FSong._meta
    old = msgpack.packb(["x", "t", 12345])  # a record of a model version with one field
    flow = read.objects_flow(ctx_for(FSong), Query())
    start(flow)
    learn = flow.send([common.OK, b"1", [old]])
    assert learn == Command(("HMGET", meta.keys.schemas, 12345))
    objs = finish(flow, [msgpack.packb(["artist", "title"])])
    assert objs[0].artist == "x" and objs[0].title == "t" and objs[0].track is not None
    del meta.schemas[12345]


def test_iterate_emits_batches_and_pages_by_pk_cursor() -> None:
    meta = FSong._meta
    flow = read.iterate_flow(ctx_for(FSong), Query(), 2)
    first = start(flow)
    assert first.args[8:11] == [0, 2, b""]  # offset 0, limit 2, no cursor yet

    def reply(pks: list[int]) -> list[Any]:
        return [common.OK, b",".join(b"%d" % pk for pk in pks),
                [meta.codec.pack({"artist": "a", "title": str(pk), "track": "1"}) for pk in pks]]

    emitted = flow.send(reply([1, 2]))
    assert type(emitted) is Emit and [o._id for o in emitted.items] == [1, 2]
    second = flow.send(None)
    assert second.args[10] == 2  # the next batch starts after pk 2
    emitted = flow.send(reply([5]))
    assert [o._id for o in emitted.items] == [5]
    with pytest.raises(StopIteration):
        flow.send(None)  # a short batch was the last


def test_a_failed_reset_abandons_its_generation_and_restores_new_objects() -> None:
    objs = [FSong(artist="a", title=str(i), track=i) for i in range(3)]
    flow = reset.reset_flow(ctx_for(FSong), objs, batch_size=2)
    sweep = start(flow)
    assert sweep.script is scripts.RESET_SWEEP
    begin = flow.send([common.OK, 0, []])  # nothing was left by dead resets: nothing to free
    assert begin.script is scripts.RESET_BEGIN and begin.args[-1] == common.RESET_LEASE_MS
    load = flow.send([common.OK, b"4", b"1", b"1700000000000"])
    assert load.args[:3] == [4, common.RESET_LEASE_MS, 2]  # each batch renews the lease
    assert load.script is scripts.RESET_LOAD and load.keys[1] == FSong._meta.keys.generation(4).objs
    abandon = flow.throw(ConnectionError("lost"))
    assert abandon.script is scripts.RESET_ABANDON and abandon.args == (4,)
    assert all(obj._id is None for obj in objs)
    with pytest.raises(ConnectionError):
        flow.send([0])  # not abandoned by us (it went live or was freed): nothing more to do


def test_cascade_save_sends_each_connection_its_own_objects_first() -> None:
    router = Router({"FArtist": "artists"})
    album = FAlbum(title="t", artist=FArtist(name="n"))
    flow = save.save_objects_flow(ctx_for(FAlbum, router), [album])
    artist_save = start(flow)
    assert artist_save.script is scripts.SAVE and artist_save.route == "artists"
    album_save = flow.send([common.OK, b"11"])  # the artist got pk 11 on its own server
    assert album_save.route is None and album_save.script is scripts.SAVE
    (_, objects) = msgpack.unpackb(album_save.args[0], raw=True)
    assert msgpack.unpackb(objects[0][3])[:2] == ["t", "11"]  # the record names the linked pk
    assert finish(flow, [common.OK, b"1"]) == [1]


def test_links_are_fetched_from_the_linked_models_route() -> None:
    router = Router({"FArtist": "artists"})
    album = FAlbum._meta.builder.instance_from_record(1, {"title": "t", "artist": "11"})
    flow = links.links_flow(ctx_for(FAlbum, router), [album])
    calls = start(flow)
    assert type(calls) is list and calls[0].route == "artists" and calls[0].args == (0, "get", 11)
    record = FArtist._meta.codec.pack({"name": "singer"})
    with pytest.raises(StopIteration):
        flow.send([[common.OK, b"11", [record]]])
    assert album.isFetched("artist") and album.artist.name == "singer"


def test_routed_retags_every_request_and_passes_errors_back() -> None:
    def inner() -> Any:
        try:
            yield Command(("GET", b"k"))
        except KeyError:
            reply = yield [Command(("GET", b"a")), Command(("GET", b"b"))]
            return reply

    ctx = ctx_for(FSong)
    flow = routed(ctx, "elsewhere", inner())
    assert start(flow).route == "elsewhere"
    batch = flow.throw(KeyError("x"))
    assert [c.route for c in batch] == ["elsewhere", "elsewhere"]
    assert finish(flow, [1, 2]) == [1, 2]


class GArtist(IndexedRedisModel):
    FIELDS = ["name"]
    KEY_NAME = "GroupedArtists"
    KEY_GROUP = "music"


class GAlbum(IndexedRedisModel):
    FIELDS = ["title", IRForeignLinkField("artist", GArtist)]
    KEY_NAME = "GroupedAlbums"
    KEY_GROUP = "music"


class LoneAlbum(IndexedRedisModel):
    FIELDS = ["title", IRForeignLinkField("artist", GArtist)]
    KEY_NAME = "LoneAlbums"


def _cluster_ctx(model: type[Any]) -> Context:
    return Context(model._meta, "cluster", Router({"GArtist": "cluster", "GAlbum": "cluster",
                                                   "LoneAlbum": "cluster"}))


def test_models_of_one_key_group_share_a_slot_and_a_cascade_stays_one_script() -> None:
    assert GArtist._meta.keys.prefix == b"ir:{music}@GroupedArtists:"
    assert GAlbum._meta.keys.hash_tag == GArtist._meta.keys.hash_tag == "music"
    album = GAlbum(title="t", artist=GArtist(name="n"))
    flow = save.save_objects_flow(_cluster_ctx(GAlbum), [album])
    reserve = start(flow)  # the artist is new and saved in the same script: its pk first
    assert reserve.script is scripts.RESERVE_PKS
    assert set(reserve.keys) == {GArtist._meta.keys.nextpk, GAlbum._meta.keys.nextpk}
    one = flow.send([common.OK, b"1", b"1"])
    assert one.script is scripts.SAVE
    assert {GArtist._meta.keys.gen, GAlbum._meta.keys.gen} <= set(one.keys)  # both models, one call
    assert finish(flow, [common.OK, b"1", b"1"]) == [1]


def test_on_a_cluster_a_cascade_across_slots_saves_the_other_slot_first() -> None:
    album = LoneAlbum(title="t", artist=GArtist(name="n"))
    flow = save.save_objects_flow(_cluster_ctx(LoneAlbum), [album])
    artist_save = start(flow)
    assert artist_save.script is scripts.SAVE and all(b"{music}" in key for key in artist_save.keys)
    album_save = flow.send([common.OK, b"5"])
    assert all(b"{LoneAlbums}" in key for key in album_save.keys)  # one slot per script
    (_, objects) = msgpack.unpackb(album_save.args[0], raw=True)
    assert msgpack.unpackb(objects[0][3])[:2] == ["t", "5"]
    assert finish(flow, [common.OK, b"2"]) == [2]


# ---- the client-side cache's requests ------------------------------------------------


class CSong(IndexedRedisModel):
    FIELDS = ["artist", "title"]
    INDEXED_FIELDS = ["artist"]
    KEY_NAME = "FlowCachedSongs"
    CLIENT_CACHE = True


def _record(artist: str, title: str) -> bytes:
    return CSong._meta.codec.pack({"artist": artist, "title": title})


def test_a_cached_get_asks_the_cache_fetches_what_it_lacks_and_stores_it() -> None:
    from IndexedRedis.flows.requests import CacheAnswer, CacheRead, CacheStore

    cached = CSong(artist="a", title="kept")
    ctx = Context(CSong._meta, "cached", Router())
    flow = read.get_objects_flow(ctx, [1, 2, 3])
    ask = start(flow)
    assert type(ask) is CacheRead and list(ask.pks) == [1, 2, 3] and ask.gen == 0
    fetch = flow.send(CacheAnswer(('cache', 4, 9), [cached, None, None]))
    assert type(fetch) is Transaction and fetch.commands[1][2:] == (2, 3)  # only what the cache lacks
    store = flow.send([b"0", [_record("b", "two"), None]])
    assert type(store) is CacheStore and store.token == ('cache', 4, 9) and store.gen == 0
    assert [(pk, obj.title) for pk, obj in store.objects] == [(2, "two")]
    objs = finish(flow, None)
    assert objs[0] is cached and objs[1].title == "two" and objs[2] is None
    with pytest.raises(Exception, match="read-only"):
        objs[1].title = "changed"


def test_a_get_without_a_usable_cache_reads_everything_and_stores_nothing() -> None:
    ctx = Context(CSong._meta, "cached", Router())
    flow = read.get_objects_flow(ctx, [1])
    start(flow)
    fetch = flow.send(None)  # the cache cannot be used now (tracking down)
    assert type(fetch) is Transaction and fetch.commands[1][2:] == (1,)
    assert finish(flow, [b"0", [_record("a", "one")]])[0].title == "one"


def test_a_cached_query_stores_its_result_with_the_keys_it_read() -> None:
    from IndexedRedis.flows.requests import CacheAnswer, CacheRead, CacheStore

    query = Query().narrowed(CSong._meta, {"artist": "a"})
    ctx = Context(CSong._meta, "cached", Router())
    flow = read.page_flow(ctx, query)
    ask = start(flow)
    assert type(ask) is CacheRead and ask.query == read.page_key(query)
    call = flow.send(CacheAnswer(('cache', 1, 1), None))
    assert type(call) is ScriptCall and call.script is scripts.QUERY
    store = flow.send([common.OK, b"2,5", [_record("a", "x"), _record("a", "y")]])
    assert type(store) is CacheStore and store.query == ask.query
    assert list(store.deps) == [b"g0:i:artist:a"]  # a positive condition drove a whole result: no ids
    assert [obj._id for obj in finish(flow, None)] == [2, 5]


def test_a_cached_query_hit_sends_nothing() -> None:
    from IndexedRedis.flows.requests import CacheAnswer

    kept = (CSong(artist="a", title="x"),)
    flow = read.page_flow(Context(CSong._meta, "cached", Router()), Query())
    start(flow)
    assert finish(flow, CacheAnswer(('cache', 1, 1), kept)) == list(kept)


def test_saves_and_deletes_declare_the_stamps_and_the_cache_flag() -> None:
    from IndexedRedis.flows import delete

    song = FSong(artist="a", title="t", track=3)
    song.__dict__["_id"] = 7
    keys = FSong._meta.keys
    request = start(save.save_flow(ctx_for(FSong), [song]))
    assert keys.cache_flag in request.keys and keys.generation(0).stamp(7) in request.keys
    new = start(save.save_flow(ctx_for(FSong), [FSong(artist="b", title="u", track=1)]))
    assert keys.cache_flag in new.keys and not any(b":t:" in key for key in new.keys)  # no pk, no stamp
    gone = start(delete.delete_flow(ctx_for(FSong), [(7, {})]))
    assert gone.keys[4] == keys.cache_flag and keys.generation(0).stamp(7) in gone.keys
