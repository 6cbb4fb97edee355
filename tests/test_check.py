"""``check`` and ``repair`` against a real server: drift is injected by writing raw keys
with redis-py, and check must find exactly that drift, and repair must fix it (or,
where it cannot be fixed in place, leave it and say so)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
import redis
from consistency import (
    assert_indexes_consistent,
    assert_no_garbage,
    current_generation,
    db_snapshot,
    dictionary_values,
    edit_ids,
    rewrite_dictionary,
)

from IndexedRedis import IndexedRedisModel, InvalidQueryError, IRField, irNull
from IndexedRedis.keys import GenerationKeys, lex_member, padded_pk
from IndexedRedis.records import schema_tag
from IndexedRedis.reports import KINDS, MAX_DETAILS, CheckReport
from IndexedRedis.textindex import fold_member


class Track(IndexedRedisModel):
    FIELDS = ["artist", "title", IRField("year", valueType=int), IRField("genre"), "isrc", "note"]
    INDEXED_FIELDS = ["artist", "year", "genre"]
    LEX_INDEXED_FIELDS = ["title"]
    UNIQUE_FIELDS = ["isrc"]
    KEY_NAME = "CheckTracks"


SIZE = 300


def make_track(i: int) -> Track:
    return Track(artist=f"a{i % 7}", title=f"t{i:04d}", year=None if i % 10 == 0 else 1990 + i % 30,
                 genre=irNull if i % 5 == 0 else f"g{i % 3}", isrc=f"X{i}", note=f"n{i}")


@pytest.fixture
def tracks(redis_client: redis.Redis) -> list[Track]:
    objs = [make_track(i) for i in range(SIZE)]
    Track.reset(objs)
    Track.reset(objs)  # generation 2 is live: generation 1 is a valid dead one
    return objs


def live(client: redis.Redis) -> GenerationKeys:
    return Track._meta.keys.generation(current_generation(client, Track))


def found(report: CheckReport) -> set[tuple[str, bytes | None, int | None]]:
    return {(f.kind, f.key, f.pk) for f in report.details}


def assert_found(report: CheckReport, expected: set[tuple[str, bytes | None, int | None]]) -> None:
    """The report counts exactly the expected findings, and details each (up to the
    first MAX_DETAILS of a kind)."""
    assert report.found == Counter(kind for kind, _, _ in expected), report.details
    assert found(report) <= expected, found(report) - expected
    for kind, count in report.found.items():
        assert len([f for f in report.details if f.kind == kind]) == min(count, MAX_DETAILS)


def test_a_clean_model_checks_clean(tracks: list[Track], redis_client: redis.Redis) -> None:
    report = Track.objects.check()
    assert report.ok and not report.found and report.drift == 0
    assert report.objects == SIZE and report.generation == current_generation(redis_client, Track)
    assert report.schemas == {Track._meta.schema_tag: SIZE}
    assert report.index_keys > 7 + 3 and report.entries >= SIZE * 5
    assert report.evicted_keys == 0 and report.maxmemory_policy == "noeviction"
    assert str(report).startswith("Track check: 300 objects, no drift")
    repaired = Track.objects.repair()
    assert repaired.ok and not repaired.repaired


def test_check_changes_nothing(tracks: list[Track], redis_client: redis.Redis) -> None:
    gk = live(redis_client)
    redis_client.srem(gk.index("artist", b"a1"), tracks[1]._id)
    redis_client.sadd(gk.index("artist", b"a2"), 10**6)
    redis_client.sadd(Track._meta.keys.generation(99).index("artist", b"x"), 1)
    before = db_snapshot(redis_client)
    report = Track.objects.check()
    assert not report.ok and report.found == Counter(missing_entry=1, stale_entry=1, orphan_key=1)
    assert db_snapshot(redis_client) == before


# ---- one kind of drift at a time ------------------------------------------------------

Inject = Callable[[redis.Redis, GenerationKeys, list[Track]], set[tuple[str, bytes | None, int | None]]]


def _missing_set_entry(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    c.srem(gk.index("artist", b"a3"), t[3]._id)
    return {("missing_entry", gk.index("artist", b"a3"), t[3]._id)}


def _stale_no_record(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    c.sadd(gk.index("genre", b"g1"), 77777)
    return {("stale_entry", gk.index("genre", b"g1"), 77777)}


def _stale_wrong_value(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    c.sadd(gk.index("artist", b"a0"), t[1]._id)  # t[1] has artist a1
    return {("stale_entry", gk.index("artist", b"a0"), t[1]._id)}


def _missing_and_stale_in_one_key(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    key = gk.index("artist", b"a4")               # same size as before: only a walk finds the stale one
    c.srem(key, t[4]._id)
    c.sadd(key, t[5]._id)
    return {("missing_entry", key, t[4]._id), ("stale_entry", key, t[5]._id)}


def _null_set(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    c.srem(gk.null_index("genre"), t[0]._id)       # t[0]'s genre is irNull
    c.sadd(gk.null_index("genre"), t[1]._id)       # t[1]'s is not
    return {("missing_entry", gk.null_index("genre"), t[0]._id),
            ("stale_entry", gk.null_index("genre"), t[1]._id)}


def _ids(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    edit_ids(c, gk.ids, add=[888888], remove=[t[6]._id])
    c.zadd(gk.ids, {b"\x01" * 8 + b"12152": 5})     # a block scored by another number (invalid)
    return {("missing_id", gk.ids, t[6]._id), ("stale_id", gk.ids, 888888), ("stale_id", gk.ids, None)}


def _scores(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    z = gk.score_index("year")
    c.zadd(z, {padded_pk(t[8]._id): 1.5})         # wrong score
    c.zrem(z, padded_pk(t[9]._id))                 # missing
    c.zadd(z, {padded_pk(t[10]._id): 2000})        # t[10]'s year is irNull: must not be there
    c.zadd(z, {padded_pk(999999): 3})              # no record
    return {("wrong_score", z, t[8]._id), ("wrong_score", z, t[9]._id), ("wrong_score", z, t[10]._id),
            ("stale_entry", z, 999999)}


def _lex(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    x = gk.lex_index("title")
    c.zrem(x, lex_member(b"t0011", t[11]._id))
    c.zadd(x, {lex_member(b"old title", t[12]._id): 0})
    c.zadd(x, {b"garbage": 0})
    return {("missing_entry", x, t[11]._id), ("stale_entry", x, t[12]._id), ("stale_entry", x, None)}


def _evicted_index_key(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    key = gk.index("artist", b"a6")
    c.delete(key)
    return {("missing_entry", key, obj._id) for obj in t if obj.artist == "a6"}


def _deleted_record(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    obj = t[13]                                    # a3, 2003, g1, t0013 (not lex null)
    c.hdel(gk.objs, obj._id)
    return {("stale_id", gk.ids, obj._id), ("stale_entry", gk.index("artist", b"a6"), obj._id),
            ("stale_entry", gk.index("year", b"2003"), obj._id), ("stale_entry", gk.index("genre", b"g1"), obj._id),
            ("stale_entry", gk.index("isrc", b"X13"), obj._id), ("stale_entry", gk.index("title", b"t0013"), obj._id),
            ("stale_entry", gk.score_index("year"), obj._id), ("stale_entry", gk.lex_index("title"), obj._id),
            # its values held by no other object: in the text dictionaries (isrc's folded one too)
            ("stale_entry", gk.text_dict("title"), None), ("stale_entry", gk.text_dict("isrc"), None),
            ("stale_entry", gk.fold_dict("isrc"), None)}


def _pk_counter(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    c.set(Track._meta.keys.nextpk, 3)
    return {("counter_behind", Track._meta.keys.nextpk, None)}


def _generation_counter(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    c.set(Track._meta.keys.genseq, 0)
    return {("counter_behind", Track._meta.keys.genseq, None)}


def _live_marked_dead(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    c.sadd(Track._meta.keys.dead, current_generation(c, Track))
    return {("live_marked_dead", Track._meta.keys.dead, None)}


def _orphan_generation(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    other = Track._meta.keys.generation(current_generation(c, Track) + 50)
    c.sadd(other.index("artist", b"zz"), 1)
    c.hset(other.objs, 1, b"x")
    return {("orphan_key", other.index("artist", b"zz"), None), ("orphan_key", other.objs, None)}


def _dead_generation(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    keys = Track._meta.keys
    gen = current_generation(c, Track) - 1
    old = keys.generation(gen)
    c.sadd(keys.dead, gen)
    c.sadd(old.index("artist", b"a0"), 1)
    return {("dead_generation", old.index("artist", b"a0"), None)}


def _former_layout(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    c.sadd(gk.index("note", b"n1"), t[1]._id)      # note is not indexed
    c.zadd(gk.score_index("artist"), {padded_pk(t[1]._id): 1})  # artist has no score index
    c.sadd(gk.null_index("note"), t[1]._id)
    return {("former_layout", gk.index("note", b"n1"), None), ("former_layout", gk.score_index("artist"), None),
            ("former_layout", gk.null_index("note"), None)}


REPAIRABLE: dict[str, Inject] = {
    "missing set entry": _missing_set_entry, "stale entry, no record": _stale_no_record,
    "stale entry, another value": _stale_wrong_value, "missing and stale in one key": _missing_and_stale_in_one_key,
    "null set": _null_set, "ids": _ids, "score index": _scores, "lex index": _lex,
    "an evicted index key": _evicted_index_key, "a deleted record": _deleted_record, "pk counter": _pk_counter,
    "generation counter": _generation_counter, "live generation marked dead": _live_marked_dead,
    "orphan generation": _orphan_generation, "dead generation": _dead_generation, "former layout": _former_layout,
}


@pytest.mark.parametrize("inject", REPAIRABLE.values(), ids=REPAIRABLE.keys())
def test_check_finds_exactly_the_drift_and_repair_fixes_it(inject: Inject, tracks: list[Track],
                                                           redis_client: redis.Redis) -> None:
    content = {o._id: (o.title, o.artist, o.year, o.genre) for o in Track.objects.all()}
    expected = inject(redis_client, live(redis_client), tracks)

    report = Track.objects.check(batchSize=17)          # several batches of every kind
    assert_found(report, expected)
    assert not report.ok

    repaired = Track.objects.repair(batchSize=17)
    assert repaired.found == report.found
    assert repaired.repaired == report.found and repaired.ok, repaired.details
    assert Track.objects.check().ok
    assert_indexes_consistent(redis_client, Track)
    assert_no_garbage(redis_client, Track)
    stored = set(map(int, redis_client.hkeys(live(redis_client).objs)))
    assert {o._id: (o.title, o.artist, o.year, o.genre) for o in Track.objects.all()} == {
        pk: row for pk, row in content.items() if pk in stored}
    fresh = Track(artist="new", title="fresh", isrc="FRESH")
    assert fresh.save() > max(obj._id for obj in tracks)   # the pk counter is right again
    assert Track.objects.filter(artist="new").getPrimaryKeys() == [fresh._id]


def test_query_answers_after_repair_are_those_of_the_records(tracks: list[Track], redis_client: redis.Redis) -> None:
    gk = live(redis_client)
    redis_client.delete(gk.index("artist", b"a2"))
    redis_client.sadd(gk.index("artist", b"a3"), *[o._id for o in tracks[:20]])
    redis_client.zadd(gk.score_index("year"), {padded_pk(o._id): 5000 for o in tracks[20:40]})
    assert Track.objects.filter(artist="a2").count() == 0  # wrong before
    Track.objects.repair(batchSize=10)
    for artist in (f"a{i}" for i in range(7)):
        assert Track.objects.filter(artist=artist).getPrimaryKeys() == sorted(
            o._id for o in tracks if o.artist == artist)
    assert Track.objects.filter(year__gte=2100).count() == 0
    assert Track.objects.filter(year__range=(1995, 1999)).getPrimaryKeys() == sorted(
        o._id for o in tracks if o.year is not irNull and 1995 <= o.year <= 1999)


# ---- what repair cannot fix in place ---------------------------------------------------


def _bad_record(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    c.hset(gk.objs, t[14]._id, b"\xc1not msgpack")
    return {("bad_record", gk.objs, t[14]._id)}


def _unknown_schema(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    c.hset(gk.objs, t[15]._id, msgpack.packb(["a", "b", 12345]))
    return {("unknown_schema", gk.objs, t[15]._id)}


def _bad_pk(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    c.hset(gk.objs, "abc", Track._meta.codec.pack(Track._meta.storage_of(make_track(1))))
    return {("bad_pk", gk.objs, None)}


def _bad_schema(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    c.hset(Track._meta.keys.schemas, "42", msgpack.packb(["x"]))
    return {("bad_schema", Track._meta.keys.schemas, None)}


def _wrong_type(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    key = gk.index("artist", b"a5")
    c.delete(key)
    c.set(key, b"a string")
    return {("wrong_type", key, None)}


def _unknown_key(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    key = Track._meta.keys.prefix + b"something-else"
    c.set(key, 1)
    return {("unknown_key", key, None)}


def _unique_clash(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    twin = make_track(16)
    twin.isrc = t[17].isrc
    c.hset(gk.objs, t[16]._id, Track._meta.codec.pack(Track._meta.storage_of(twin)))
    c.delete(gk.index("isrc", b"X16"))
    c.sadd(gk.index("isrc", b"X17"), t[16]._id)
    words = dictionary_values(c, gk.text_dict("isrc"))
    rewrite_dictionary(c, gk.text_dict("isrc"), [w for w in words if w != b"X16"])  # no record's value any more
    c.zrem(gk.fold_dict("isrc"), fold_member(b"X16"))
    return {("unique_clash", gk.index("isrc", b"X17"), None)}


def _lacks_field(c: redis.Redis, gk: GenerationKeys, t: list[Track]) -> set[Any]:
    names = ["artist", "title", "year", "isrc", "note"]   # written before genre existed
    tag = schema_tag(names)
    c.hset(Track._meta.keys.schemas, tag, msgpack.packb(names))
    c.hset(gk.objs, t[18]._id, msgpack.packb(["a4", "t0018", "2008", "X18", "n18", tag]))
    c.srem(gk.index("genre", b"g0"), t[18]._id)
    return {("lacks_field", gk.objs, t[18]._id)}


UNREPAIRABLE: dict[str, Inject] = {
    "bad record": _bad_record, "unknown schema": _unknown_schema, "bad pk": _bad_pk, "bad schema": _bad_schema,
    "wrong type": _wrong_type, "unknown key": _unknown_key, "unique clash": _unique_clash,
    "lacks field": _lacks_field,
}


@pytest.mark.parametrize("inject", UNREPAIRABLE.values(), ids=UNREPAIRABLE.keys())
def test_what_cannot_be_repaired_in_place_is_found_and_left(inject: Inject, tracks: list[Track],
                                                            redis_client: redis.Redis) -> None:
    expected = inject(redis_client, live(redis_client), tracks)
    report = Track.objects.check()
    assert_found(report, expected)
    assert all(not KINDS[kind].repairable and KINDS[kind].advice for kind, _, _ in expected)
    before = db_snapshot(redis_client)
    repaired = Track.objects.repair()
    assert_found(repaired, expected)
    assert not repaired.repaired and not repaired.ok
    assert repaired.remaining == report.found
    assert db_snapshot(redis_client) == before


def test_a_pointer_that_is_not_a_generation_is_reported(tracks: list[Track], redis_client: redis.Redis) -> None:
    redis_client.set(Track._meta.keys.gen, b"junk")
    report = Track.objects.check()
    assert report.found == Counter(bad_pointer=1) and "junk" in report.details[0].detail
    redis_client.delete(Track._meta.keys.gen)
    redis_client.hset(Track._meta.keys.gen, "a", "b")
    report = Track.objects.check()
    assert report.found == Counter(bad_pointer=1) and "a hash" in report.details[0].detail


def test_check_is_for_the_whole_model() -> None:
    with pytest.raises(InvalidQueryError, match="whole model"):
        Track.objects.filter(artist="a1").check()
    with pytest.raises(InvalidQueryError, match="whole model"):
        Track.objects.filter(artist="a1").repair()


def test_report_to_dict_is_plain_json(tracks: list[Track], redis_client: redis.Redis) -> None:
    import json

    redis_client.sadd(live(redis_client).index("artist", b"a1"), 123456)
    data = json.loads(json.dumps(Track.objects.check().to_dict()))
    assert data["ok"] is False and data["found"] == {"stale_entry": 1}
    assert data["details"][0]["pk"] == 123456 and data["details"][0]["key"].endswith("i:artist:a1")
