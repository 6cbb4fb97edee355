"""The I/O-free core on its own: flows are fed replies by hand and the requests they
make are checked.  No Redis is involved (and none is contacted)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from IndexedRedis import ConcurrencyError, IndexedRedisModel, IRField, scripts
from IndexedRedis.compiler import Query
from IndexedRedis.fields.links import IRForeignLinkField
from IndexedRedis.flows import common, links, read, reset, save
from IndexedRedis.flows.context import Context, GenerationCache, routed
from IndexedRedis.flows.requests import Command, Emit, ScriptCall, Transaction


@pytest.fixture(autouse=True)
def ir_default_connection() -> None:
    """Overrides conftest's: these tests start no server."""


class Router:
    """Routes are plain names here; each has its own generation cache."""

    def __init__(self, routes: dict[str, str] | None = None) -> None:
        self.routes = routes or {}
        self.caches: dict[str, GenerationCache] = {}

    def route_of(self, target: Any) -> str:
        model = target if isinstance(target, type) else type(target)
        return self.routes.get(model.__name__, "main")

    def gens(self, route: Any) -> GenerationCache:
        return self.caches.setdefault(route, GenerationCache())

    def is_cluster(self, route: Any) -> bool:
        return route == "cluster"


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
    assert request.keys[artist - 1] == FSong._meta.keys.generation(0).index("artist", b"a")
    assert isinstance(track, list) and track[0] == b"track"  # numeric: its score zset too
    request = start(save.save_flow(ctx_for(FUnique), [FUnique(code="c1", kind="k")]))
    code, kind = _save_groups(request)
    assert isinstance(code, list) and code[5] == 1 and isinstance(kind, int)  # unique: checked
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
    objs = finish(flow, [common.OK, msgpack.packb([9, 4]), records])
    assert [(o._id, o.title) for o in objs] == [(4, "t4"), (9, "t9")]  # a driven result is sorted by pk


def test_records_of_an_unknown_schema_are_learned_with_one_hmget() -> None:
    meta = FSong._meta
    old = msgpack.packb(["x", "t", 12345])  # a record of a model version with one field
    flow = read.objects_flow(ctx_for(FSong), Query())
    start(flow)
    learn = flow.send([common.OK, msgpack.packb([1]), [old]])
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
        return [common.OK, msgpack.packb(pks),
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
        flow.send([[common.OK, msgpack.packb([11]), [record]]])
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
