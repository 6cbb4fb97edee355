"""Query set behaviour: building filters, laziness, every terminal, and query errors."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from consistency import decode_record, stored_ids
from redis.backoff import NoBackoff
from redis.retry import Retry

from IndexedRedis import (
    IndexedRedisError,
    IndexedRedisModel,
    InvalidQueryError,
    QuerySet,
)
from IndexedRedis.embedded import free_port
from IndexedRedis.keys import escape_key_name


class Song(IndexedRedisModel):
    FIELDS = ["artist", "title", "album", "track_number", "duration"]
    INDEXED_FIELDS = ["artist", "title", "track_number"]
    KEY_NAME = "QuerySongs"


DATA = [
    dict(artist="The Merry Men", title="Happy Go Lucky", album="LP", track_number=1, duration="1:58"),
    dict(artist="The Merry Men", title="Joy to Joy", album="LP", track_number=2, duration="2:54"),
    dict(artist="The Unhappy Folk", title="Sadly she waits", album="Misery", track_number=1,
         duration="15:44"),
    dict(artist="Mega Men", title="Nintendo 1", album="Super Tracks", track_number=1, duration="1:15"),
    dict(artist="Mega Men", title="Nintendo 2", album="Super Tracks", track_number=2, duration="1:55"),
]


def as_text(value: Any) -> str:
    return "" if value is None else str(value)


@pytest.fixture
def songs() -> dict[int, dict[str, str]]:
    """The DATA saved one by one: pk -> stored values (as text)."""
    out = {}
    for values in DATA:
        pk = Song(**values).save()
        out[pk] = {k: as_text(v) for k, v in values.items()}
    return out


def pks_where(songs: dict[int, dict[str, str]], **conditions: Any) -> list[int]:
    """Pure-Python evaluation of eq / ne filters."""
    result = []
    for pk, record in sorted(songs.items()):
        ok = True
        for key, value in conditions.items():
            name, _, lookup = key.partition("__")
            if lookup == "ne":
                ok = ok and record[name] != as_text(value)
            else:
                ok = ok and record[name] == as_text(value)
        if ok:
            result.append(pk)
    return result


def ids(objs: Any) -> list[int]:
    return [obj._id for obj in objs]


# ---- index checks read straight from Redis ------------------------------------------------


def prefix() -> bytes:
    return b"ir:{" + escape_key_name(Song.KEY_NAME).encode() + b"}:"


def assert_indexes_exact(client: redis.Redis) -> dict[int, dict[str, str]]:
    gen = int(client.get(prefix() + b"gen") or 0)
    gprefix = prefix() + b"g%d:" % gen
    records = {int(pk): decode_record(client, Song, blob)
               for pk, blob in client.hgetall(gprefix + b"objs").items()}
    assert stored_ids(client, gprefix + b"ids") == set(records)
    expected: dict[bytes, set[int]] = {}
    for pk, record in records.items():
        for field in Song.INDEXED_FIELDS:
            key = gprefix + b"i:" + field.encode() + b":" + record[field].encode()
            expected.setdefault(key, set()).add(pk)
    actual = {key: {int(pk) for pk in client.smembers(key)}
              for key in client.scan_iter(count=1000) if key.startswith(gprefix + b"i:")}
    assert actual == expected
    return records


# ---- filter / filterInline ----------------------------------------------------------------


def test_filter_returns_new_queryset_and_leaves_original_unchanged(songs: dict) -> None:
    base = Song.objects.filter(artist="The Merry Men")
    narrowed = base.filter(track_number=2)
    assert narrowed is not base
    assert isinstance(narrowed, QuerySet)
    assert ids(base.all()) == pks_where(songs, artist="The Merry Men")
    assert ids(narrowed.all()) == pks_where(songs, artist="The Merry Men", track_number=2)
    other = base.filter(track_number=1)
    assert ids(other.all()) == pks_where(songs, artist="The Merry Men", track_number=1)
    assert ids(narrowed.all()) == pks_where(songs, artist="The Merry Men", track_number=2)
    assert ids(base.all()) == pks_where(songs, artist="The Merry Men")
    everything = Song.objects
    everything.filter(artist="Mega Men")
    assert ids(everything.all()) == sorted(songs)


def test_filter_inline_mutates_and_returns_self(songs: dict) -> None:
    qs = Song.objects.filter(artist="Mega Men")
    same = qs.filterInline(track_number=2)
    assert same is qs
    assert ids(qs.all()) == pks_where(songs, artist="Mega Men", track_number=2)
    qs.filterInline(title__ne="Nintendo 2")
    assert qs.all() == []
    assert ids(Song.objects.filterInline(artist__ne="Mega Men")) == pks_where(songs, artist__ne="Mega Men")
    assert len(Song.objects.all()) == len(songs)  # a fresh objects is not affected


@pytest.mark.parametrize("conditions", [
    dict(artist="The Merry Men"),
    dict(artist__ne="The Merry Men"),
    dict(artist__eq="Mega Men"),
    dict(track_number=1),
    dict(track_number="1"),
    dict(track_number__ne=1),
    dict(artist="The Merry Men", track_number=1),
    dict(artist="Mega Men", title="Nintendo 2", track_number=2),
    dict(artist__ne="Mega Men", track_number__ne=2),
    dict(artist__ne="Mega Men", title__ne="Joy to Joy", track_number__ne=3),
    dict(artist="Mega Men", track_number__ne=1),
    dict(artist="The Merry Men", title__ne="Joy to Joy", track_number__ne=1),
    dict(track_number=1, artist__ne="Mega Men", title__ne="Happy Go Lucky"),
    dict(track_number=1, artist__ne="The Merry Men", artist__eq="Mega Men"),
    dict(artist="The Merry Men", artist__ne="The Merry Men"),
    dict(artist="The Merry Men", artist__ne="Mega Men"),
    dict(artist="Nobody"),
    dict(artist__ne="Nobody"),
    dict(artist="The Merry Men", title="Nintendo 1"),
])
def test_filter_semantics_single_call_and_chained(songs: dict, conditions: dict[str, Any]) -> None:
    expected = pks_where(songs, **conditions)
    assert ids(Song.objects.filter(**conditions).all()) == expected
    assert Song.objects.filter(**conditions).count() == len(expected)
    chained = Song.objects
    for key, value in conditions.items():
        chained = chained.filter(**{key: value})
    assert ids(chained.all()) == expected
    assert chained.count() == len(expected)
    inline = Song.objects.filter()
    for key, value in conditions.items():
        inline.filterInline(**{key: value})
    assert ids(inline) == expected


def test_contradicting_equalities_on_one_field_find_nothing(songs: dict) -> None:
    qs = Song.objects.filter(artist="The Merry Men").filter(artist="Mega Men")
    assert qs.all() == []
    assert qs.count() == 0
    assert qs.first() is None and qs.last() is None
    assert qs.getPrimaryKeys() == []


def test_repeated_filter_is_idempotent(songs: dict) -> None:
    qs = Song.objects.filter(artist="Mega Men").filter(artist="Mega Men").filter(artist__ne="x")
    qs = qs.filter(artist__ne="x")
    assert ids(qs) == pks_where(songs, artist="Mega Men")


def test_filter_by_none_and_empty_matches_unset_fields(songs: dict) -> None:
    blank = Song(album="no artist").save()
    assert ids(Song.objects.filter(artist=None)) == [blank]
    assert ids(Song.objects.filter(artist="")) == [blank]
    assert ids(Song.objects.filter(artist__ne="")) == sorted(songs)


def test_filter_with_bad_value_type_raises(songs: dict) -> None:
    with pytest.raises(IndexedRedisError) as info:
        Song.objects.filter(artist=["a"])
    assert "artist" in str(info.value)


# ---- laziness -----------------------------------------------------------------------------


def test_building_a_filter_does_not_touch_redis(redis_client: redis.Redis) -> None:
    qs = Song.objects.filter(artist="Late")
    qs_ne = Song.objects.filter(artist__ne="Late").filter(track_number=1)
    inline = Song.objects.filterInline(title="T")
    assert redis_client.dbsize() == 0
    late = Song(artist="Late", title="T", track_number=1).save()
    other = Song(artist="Early", title="T", track_number=1).save()
    assert ids(qs.all()) == [late]
    assert ids(qs_ne.all()) == [other]
    assert ids(inline.all()) == [late, other]
    newer = Song(artist="Late", title="U").save()
    assert ids(qs.all()) == [late, newer]  # a query set is re-run, never cached
    assert qs.count() == 2


def test_building_a_filter_sends_no_command(redis_client: redis.Redis) -> None:
    Song(artist="x").save()

    def commands() -> int:
        return int(redis_client.info("stats")["total_commands_processed"])

    start = commands()
    qs = Song.objects.filter(artist="x").filter(track_number__ne=3)
    qs.filterInline(title__ne="y")
    repr(qs)
    assert commands() == start + 1  # only the second INFO itself
    assert qs.count() == 1


def test_filter_on_unreachable_server_fails_only_at_terminal() -> None:
    class Nowhere(IndexedRedisModel):
        FIELDS = ["a"]
        INDEXED_FIELDS = ["a"]
        KEY_NAME = "Nowhere"
        REDIS_CONNECTION_PARAMS = {"host": "127.0.0.1", "port": free_port(), "db": 0,
                                   "socket_connect_timeout": 0.5,
                                   "retry": Retry(NoBackoff(), 0)}

    qs = Nowhere.objects.filter(a="1").filter(a__ne="2")
    qs.filterInline(a="3")
    with pytest.raises(redis.exceptions.ConnectionError):
        qs.count()


# ---- terminals ----------------------------------------------------------------------------


def test_all_is_a_list_in_ascending_pk_order(songs: dict) -> None:
    more = [Song(artist="Bulk", title=str(i), track_number=i % 3).save() for i in range(12)]
    everything = Song.objects.all()
    assert isinstance(everything, list)
    all_pks = sorted(list(songs) + more)
    assert ids(everything) == all_pks  # numeric order: 10 after 9, not after 1
    assert all(type(obj) is Song for obj in everything)
    bulk = Song.objects.filter(artist="Bulk").all()
    assert ids(bulk) == more
    assert [obj.title for obj in bulk] == [str(i) for i in range(12)]
    assert ids(Song.objects.filter(artist__ne="Bulk")) == sorted(songs)


def test_all_returns_full_objects(songs: dict) -> None:
    for obj in Song.objects.filter(artist="The Merry Men"):
        assert obj.asDict() == songs[obj._id]


def test_count_len_and_iteration(songs: dict) -> None:
    assert Song.objects.count() == len(songs)
    assert len(Song.objects) == len(songs)
    qs = Song.objects.filter(track_number=1)
    assert qs.count() == len(pks_where(songs, track_number=1)) == len(qs)
    assert [obj._id for obj in qs] == pks_where(songs, track_number=1)
    assert list(iter(Song.objects.filter(artist="Nobody"))) == []


def test_first_and_last(songs: dict) -> None:
    more = [Song(artist="Bulk", title=str(i)).save() for i in range(11)]
    all_pks = sorted(list(songs) + more)
    assert Song.objects.first()._id == all_pks[0]
    assert Song.objects.last()._id == all_pks[-1]
    assert Song.objects.filter(artist="Bulk").first()._id == more[0]
    assert Song.objects.filter(artist="Bulk").last()._id == more[-1]
    assert Song.objects.filter(artist="Bulk").last().title == "10"
    merry = pks_where(songs, artist="The Merry Men")
    assert Song.objects.filter(artist="The Merry Men").first()._id == merry[0]
    assert Song.objects.filter(artist="The Merry Men").last()._id == merry[-1]
    assert Song.objects.filter(artist__ne="Bulk").last()._id == max(songs)
    assert Song.objects.filter(artist="Nobody").first() is None
    assert Song.objects.filter(artist="Nobody").last() is None


def test_terminals_on_empty_model() -> None:
    assert Song.objects.all() == []
    assert Song.objects.count() == 0
    assert len(Song.objects) == 0
    assert Song.objects.first() is None
    assert Song.objects.last() is None
    assert Song.objects.getPrimaryKeys() == []
    assert Song.objects.delete() == 0
    assert Song.objects.filter(artist__ne="x").all() == []
    assert Song.objects.get(1) is None
    assert Song.objects.getMultiple([1, 2]) == [None, None]
    assert Song.objects.exists(1) is False


def test_get_primary_keys(songs: dict) -> None:
    more = [Song(artist="Bulk").save() for _ in range(10)]
    pks = Song.objects.getPrimaryKeys()
    assert pks == sorted(list(songs) + more)
    assert all(type(pk) is int for pk in pks)
    assert Song.objects.filter(artist="Mega Men").getPrimaryKeys() == pks_where(songs, artist="Mega Men")
    assert Song.objects.filter(artist__ne="Bulk").getPrimaryKeys() == sorted(songs)


def test_queryset_delete_returns_count_and_keeps_the_rest_intact(songs: dict,
                                                                 redis_client: redis.Redis) -> None:
    before = assert_indexes_exact(redis_client)
    doomed = pks_where(songs, artist="The Merry Men")
    assert Song.objects.filter(artist="The Merry Men").delete() == len(doomed) == 2
    after = assert_indexes_exact(redis_client)
    assert after == {pk: rec for pk, rec in before.items() if pk not in doomed}
    assert Song.objects.filter(artist="The Merry Men").count() == 0
    assert Song.objects.filter(title="Happy Go Lucky").count() == 0
    assert ids(Song.objects.filter(track_number=1)) == [pk for pk in pks_where(songs, track_number=1)
                                                         if pk not in doomed]
    assert Song.objects.filter(artist="The Merry Men").delete() == 0
    remaining = sorted(set(songs) - set(doomed))
    assert Song.objects.filter(track_number__ne=1).delete() == 1
    remaining = [pk for pk in remaining if songs[pk]["track_number"] == "1"]
    assert ids(Song.objects.all()) == remaining
    assert_indexes_exact(redis_client)
    assert Song.objects.delete() == len(remaining)
    assert Song.objects.count() == 0
    assert assert_indexes_exact(redis_client) == {}


def test_queryset_delete_many(redis_client: redis.Redis) -> None:
    Song.reset([Song(artist=f"a{i % 7}", title=str(i), track_number=i % 2) for i in range(2500)])
    assert Song.objects.filter(track_number=1).delete() == 1250
    assert Song.objects.count() == 1250
    assert Song.objects.filter(track_number=1).count() == 0
    assert Song.objects.filter(artist="a3").count() == len([i for i in range(0, 2500, 2) if i % 7 == 3])
    assert_indexes_exact(redis_client)


def test_get_and_get_multiple(songs: dict) -> None:
    pks = sorted(songs)
    obj = Song.objects.get(pks[2])
    assert obj._id == pks[2]
    assert obj.asDict() == songs[pks[2]]
    assert Song.objects.get(str(pks[0]))._id == pks[0]
    missing = max(pks) + 100
    assert Song.objects.get(missing) is None
    got = Song.objects.getMultiple([pks[3], missing, pks[0], pks[3], 0])
    assert [o if o is None else o._id for o in got] == [pks[3], None, pks[0], pks[3], None]
    assert got[0].asDict() == songs[pks[3]]
    assert Song.objects.getMultiple([]) == []
    assert Song.objects.getMultiple(iter([pks[1]]))[0]._id == pks[1]


def test_get_multiple_deleted_pk_gives_none_not_a_ghost(songs: dict) -> None:
    pks = sorted(songs)
    Song.objects.get(pks[1]).delete()
    got = Song.objects.getMultiple(pks)
    assert got[1] is None
    assert [o._id for o in got if o is not None] == [pk for pk in pks if pk != pks[1]]
    assert Song.objects.get(pks[1]) is None
    assert Song.objects.exists(pks[1]) is False


@pytest.mark.parametrize("bad", ["abc", -1, 1.5, None, [1]])
def test_get_with_invalid_pk_raises(songs: dict, bad: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        Song.objects.get(bad)


def test_exists(songs: dict) -> None:
    pks = sorted(songs)
    assert Song.objects.exists(pks[0]) is True
    assert Song.objects.exists(str(pks[-1])) is True
    assert Song.objects.exists(max(pks) + 1) is False
    assert Song.objects.exists(0) is False


# ---- query errors -------------------------------------------------------------------------


def test_filter_on_unknown_field_raises(songs: dict) -> None:
    with pytest.raises(InvalidQueryError) as info:
        Song.objects.filter(artst="The Merry Men")
    message = str(info.value)
    assert "'artst'" in message
    assert "not a field" in message
    for name in Song.INDEXED_FIELDS:
        assert name in message
    assert "Did you mean 'artist'" in message
    assert isinstance(info.value, IndexedRedisError)


def test_filter_on_unindexed_field_raises(songs: dict) -> None:
    with pytest.raises(InvalidQueryError) as info:
        Song.objects.filter(album="LP")
    message = str(info.value)
    assert "'album'" in message
    assert "INDEXED_FIELDS" in message or "not indexed" in message
    for name in Song.INDEXED_FIELDS:
        assert name in message
    with pytest.raises(InvalidQueryError, match="duration"):
        Song.objects.filter(duration__ne="1:58")


def test_filter_with_unknown_lookup_raises(songs: dict) -> None:
    with pytest.raises(InvalidQueryError) as info:
        Song.objects.filter(artist__nee="Mega Men")
    message = str(info.value)
    assert "'nee'" in message
    assert "lookup" in message.lower()
    assert "eq" in message and "ne" in message
    assert "Did you mean 'ne'" in message
    with pytest.raises(InvalidQueryError, match="eq__ne"):
        Song.objects.filter(artist__eq__ne="x")


def test_query_errors_raise_at_build_time_and_leave_queryset_unchanged(songs: dict) -> None:
    qs = Song.objects.filter(artist="Mega Men")
    with pytest.raises(InvalidQueryError):
        qs.filterInline(track_number=2, nope=1)
    with pytest.raises(InvalidQueryError):
        qs.filterInline(artist__ne="x", album="LP")
    assert ids(qs) == pks_where(songs, artist="Mega Men")
    with pytest.raises(InvalidQueryError):
        qs.filter(title__gtx="a")
    assert ids(qs) == pks_where(songs, artist="Mega Men")


def test_model_without_indexes_reports_none_indexed() -> None:
    class NoIndex(IndexedRedisModel):
        FIELDS = ["a", "b"]
        KEY_NAME = "NoIndexQ"

    pk = NoIndex(a="1").save()
    assert [o._id for o in NoIndex.objects.all()] == [pk]
    with pytest.raises(InvalidQueryError) as info:
        NoIndex.objects.filter(a="1")
    assert "'a'" in str(info.value)
    assert "none" in str(info.value).lower()
