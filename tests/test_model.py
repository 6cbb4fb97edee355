"""Model definition and instance behaviour, checked against the stored state in Redis.

Every test talks to the private fixture server only (``redis_client`` / ``redis_url`` /
``redis_server``); other database numbers of that server are flushed by ``other_db``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from consistency import decode_record, stored_ids

import IndexedRedis
from IndexedRedis import (
    FieldValueError,
    IndexedRedisError,
    IndexedRedisModel,
    InvalidModelException,
    UnknownFieldError,
    getDefaultRedisConnectionParams,
    getRedisConnection,
    getRedisPool,
    setDefaultRedisConnectionParams,
)
from IndexedRedis.keys import escape_key_name

SONG_FIELDS = ["artist", "title", "album", "track_number", "duration", "description", "copyright"]


class Song(IndexedRedisModel):
    FIELDS = list(SONG_FIELDS)
    INDEXED_FIELDS = ["artist", "title", "track_number"]
    KEY_NAME = "Songs"

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # as in the seed's example
        IndexedRedisModel.__init__(self, *args, **kwargs)


class Plain(IndexedRedisModel):
    """A model without its own __init__ (fetches take the fast path)."""

    FIELDS = ["name", "colour", "notes"]
    INDEXED_FIELDS = ["name", "colour"]
    KEY_NAME = "PlainModel"


def merry(**overrides: Any) -> Song:
    values = dict(artist="The Merry Men", title="Happy Go Lucky", album="The Merry Men LP",
                  track_number=1, duration="1:58", description="A song about happy people",
                  copyright="Copyright 2012 (c) Media Mogul Incorporated")
    values.update(overrides)
    return Song(**values)


# ---- helpers reading Redis directly -------------------------------------------------------


def prefix_of(model: type[IndexedRedisModel]) -> bytes:
    return b"ir:{" + escape_key_name(model.KEY_NAME).encode("ascii") + b"}:"


def dump(client: redis.Redis, prefix: bytes = b"") -> dict[bytes, Any]:
    """Every key (under ``prefix``) with its type and full value."""
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(count=1000):
        if not key.startswith(prefix):
            continue
        kind = client.type(key)
        if kind == b"string":
            out[key] = ("string", client.get(key))
        elif kind == b"hash":
            out[key] = ("hash", client.hgetall(key))
        elif kind == b"set":
            out[key] = ("set", frozenset(client.smembers(key)))
        elif kind == b"zset":
            out[key] = ("zset", tuple(client.zrange(key, 0, -1)))
        else:
            out[key] = (kind, None)
    return out


def live_gen(client: redis.Redis, model: type[IndexedRedisModel]) -> int:
    return int(client.get(prefix_of(model) + b"gen") or 0)


def stored_records(client: redis.Redis, model: type[IndexedRedisModel]) -> dict[int, dict[str, str]]:
    """pk -> decoded record of the live generation."""
    objs_key = prefix_of(model) + b"g%d:objs" % live_gen(client, model)
    return {int(pk): decode_record(client, model, blob)
            for pk, blob in client.hgetall(objs_key).items()}


def index_members(client: redis.Redis, model: type[IndexedRedisModel], field: str,
                  value: str) -> set[int]:
    gen = live_gen(client, model)
    key = prefix_of(model) + b"g%d:i:" % gen + field.encode() + b":" + value.encode("utf-8")
    return {int(pk) for pk in client.smembers(key)}


def assert_indexes_exact(client: redis.Redis, model: type[IndexedRedisModel]) -> None:
    """The id set and every index set of the live generation match the stored records."""
    gen = live_gen(client, model)
    gprefix = prefix_of(model) + b"g%d:" % gen
    records = stored_records(client, model)
    ids = stored_ids(client, gprefix + b"ids")
    assert ids == set(records)
    expected: dict[bytes, set[int]] = {}
    for pk, record in records.items():
        for field in model.INDEXED_FIELDS:
            key = gprefix + b"i:" + field.encode() + b":" + record[field].encode("utf-8")
            expected.setdefault(key, set()).add(pk)
    actual = {key: {int(pk) for pk in client.smembers(key)}
              for key in client.scan_iter(count=1000) if key.startswith(gprefix + b"i:")}
    assert actual == expected


@pytest.fixture
def other_db(redis_server: Any) -> Iterator[tuple[int, redis.Redis]]:
    """Database 3 of the fixture server, empty, with a raw client on it."""
    client = redis_server.client(db=3)
    client.flushdb()
    try:
        yield 3, client
    finally:
        client.flushdb()
        client.close()


def extra_db(redis_server: Any, db: int) -> redis.Redis:
    client = redis_server.client(db=db)
    client.flushdb()
    return client


# ---- construction -------------------------------------------------------------------------


def test_construct_sets_values_and_defaults() -> None:
    song = Song(artist="A", title="T")
    assert song.artist == "A"
    assert song.title == "T"
    for name in SONG_FIELDS[2:]:
        assert getattr(song, name) == ""
    assert song._id is None
    assert song.getPk() is None


def test_unknown_kwarg_raises_unknown_field_error_naming_field_and_model(redis_client: redis.Redis) -> None:
    with pytest.raises(UnknownFieldError) as info:
        Song(artist="A", artst="B")
    message = str(info.value)
    assert "artst" in message
    assert "Song" in message
    assert "artist" in message.split("artst", 1)[1]  # suggests the nearest name
    assert isinstance(info.value, IndexedRedisError)
    assert redis_client.dbsize() == 0


def test_unknown_kwarg_suggestion_is_the_nearest_field() -> None:
    with pytest.raises(UnknownFieldError, match="track_number"):
        Song(track_numbr=3)
    with pytest.raises(UnknownFieldError, match="Plain"):
        Plain(nmae="x")


def test_positional_args_rejected(redis_client: redis.Redis) -> None:
    with pytest.raises(TypeError):
        Song("The Merry Men")
    with pytest.raises(TypeError):
        Plain("a", "b", "c")
    assert redis_client.dbsize() == 0


# ---- save / pk ----------------------------------------------------------------------------


def test_save_returns_int_pk_and_sets_id(redis_client: redis.Redis) -> None:
    song = merry()
    pk = song.save()
    assert isinstance(pk, int) and type(song._id) is int
    assert pk[0] == pk and list(pk) == [pk] and len(pk) == 1  # 6.x returned [pk]
    assert song._id == pk
    assert song.getPk() == pk
    records = stored_records(redis_client, Song)
    assert set(records) == {pk}
    assert records[pk]["artist"] == "The Merry Men"
    assert records[pk]["track_number"] == "1"


def test_pks_increase_and_are_distinct() -> None:
    pks = [merry(title=f"t{i}").save() for i in range(12)]
    assert pks == sorted(pks)
    assert len(set(pks)) == 12
    plain_pks = [Plain(name=str(i)).save() for i in range(3)]
    assert plain_pks == sorted(plain_pks) and len(set(plain_pks)) == 3


def test_saving_again_keeps_pk_and_does_not_duplicate(redis_client: redis.Redis) -> None:
    song = merry()
    pk = song.save()
    assert song.save() == pk
    song.album = "Other"
    assert song.save() == pk
    assert set(stored_records(redis_client, Song)) == {pk}
    assert Song.objects.count() == 1


# ---- values -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [Song, Plain])
def test_int_reads_back_as_text(model: type[IndexedRedisModel]) -> None:
    field = "track_number" if model is Song else "colour"
    obj = model(**{field: 1})
    pk = obj.save()
    fetched = model.objects.get(pk)
    assert getattr(fetched, field) == "1"
    assert type(getattr(fetched, field)) is str
    assert [o._id for o in model.objects.filter(**{field: 1}).all()] == [pk]
    assert [o._id for o in model.objects.filter(**{field: "1"}).all()] == [pk]


def test_floats_and_bools_read_back_as_their_text() -> None:
    pk = Plain(name=2.5, colour=True, notes=-7).save()
    fetched = Plain.objects.get(pk)
    assert (fetched.name, fetched.colour, fetched.notes) == ("2.5", "True", "-7")


def test_none_means_empty_string(redis_client: redis.Redis) -> None:
    song = merry(album=None, artist=None)
    assert song.album == ""
    pk = song.save()
    fetched = Song.objects.get(pk)
    assert fetched.album == ""
    assert fetched.artist == ""
    assert stored_records(redis_client, Song)[pk]["artist"] == ""
    assert [s._id for s in Song.objects.filter(artist=None).all()] == [pk]
    assert [s._id for s in Song.objects.filter(artist="").all()] == [pk]
    fetched.title = None
    fetched.save()
    assert Song.objects.get(pk).title == ""
    assert [s._id for s in Song.objects.filter(title="").all()] == [pk]


def test_unset_fields_default_to_empty_string_after_fetch() -> None:
    pk = Song(title="only title").save()
    fetched = Song.objects.get(pk)
    assert fetched.title == "only title"
    for name in SONG_FIELDS:
        if name != "title":
            assert getattr(fetched, name) == ""


def test_utf8_bytes_decode_to_str(redis_client: redis.Redis) -> None:
    song = merry(artist="Beyoncé ♫".encode(), album=bytearray(b"LP"))
    assert song.artist == "Beyoncé ♫"
    pk = song.save()
    fetched = Song.objects.get(pk)
    assert fetched.artist == "Beyoncé ♫"
    assert type(fetched.artist) is str
    assert fetched.album == "LP"
    assert [s._id for s in Song.objects.filter(artist="Beyoncé ♫").all()] == [pk]
    assert [s._id for s in Song.objects.filter(artist="Beyoncé ♫".encode()).all()] == [pk]
    assert stored_records(redis_client, Song)[pk]["artist"] == "Beyoncé ♫"


def test_invalid_utf8_bytes_rejected() -> None:
    with pytest.raises(FieldValueError):
        Song(artist=b"\xff\xfe")


def test_lone_surrogate_rejected() -> None:
    with pytest.raises(FieldValueError):
        Song(artist="bad \udcff")


@pytest.mark.parametrize("bad", [["a", "list"], {"a": "dict"}, {"a set"}, object()])
def test_bad_value_at_construction_raises_field_value_error(bad: Any, redis_client: redis.Redis) -> None:
    with pytest.raises(FieldValueError) as info:
        Song(artist="ok", album=bad)
    message = str(info.value)
    assert "Song" in message
    assert "album" in message
    assert "expected" in message
    assert type(bad).__name__ in message  # says what it got
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize("bad", [["a", "list"], {"a": "dict"}])
def test_bad_value_at_assignment_raises_and_keeps_old_value(bad: Any) -> None:
    song = merry()
    with pytest.raises(FieldValueError) as info:
        song.artist = bad
    message = str(info.value)
    assert "Song" in message and "artist" in message and "expected" in message
    assert song.artist == "The Merry Men"


def test_failed_save_leaves_stored_data_exactly_as_before(redis_client: redis.Redis) -> None:
    pks = [merry(title=f"t{i}", track_number=i).save() for i in range(3)]
    fetched = Song.objects.get(pks[1])
    before = dump(redis_client)
    fetched.artist = "Changed Artist"      # a valid change ...
    fetched.__dict__["album"] = ["bad"]    # ... next to a value that slipped past __setattr__
    with pytest.raises(FieldValueError, match="album"):
        fetched.save()
    assert dump(redis_client) == before
    assert fetched._id == pks[1]

    new = merry(title="never stored")
    new.__dict__["duration"] = {"bad": 1}
    with pytest.raises(FieldValueError, match="duration"):
        new.save()
    assert new._id is None
    assert dump(redis_client) == before  # no pk consumed either

    fresh = [merry(title="r1"), merry(title="r2")]
    fresh[1].__dict__["title"] = [1]
    with pytest.raises(FieldValueError):
        Song.reset(fresh)
    assert dump(redis_client) == before
    assert all(obj._id is None for obj in fresh)


# ---- asDict / repr ------------------------------------------------------------------------


def test_as_dict_is_a_plain_dict_of_field_names() -> None:
    song = merry()
    d = song.asDict()
    assert type(d) is dict
    assert list(d) == SONG_FIELDS
    assert all(type(key) is str for key in d)
    assert "_id" not in d
    assert d["track_number"] == "1"
    assert d["artist"] == "The Merry Men"
    assert song.asDict(includeMeta=True)["_id"] is None
    pk = song.save()
    assert "_id" not in song.asDict()
    fetched = Song.objects.get(pk)
    d = fetched.asDict()
    assert type(d) is dict and all(type(key) is str for key in d)
    assert d == merry().asDict()
    meta = fetched.asDict(includeMeta=True)
    assert meta["_id"] == pk
    assert {k: v for k, v in meta.items() if k != "_id"} == d
    d["artist"] = "mutated"  # a copy, not the object's state
    assert fetched.artist == "The Merry Men"


def test_repr_names_class_pk_and_values() -> None:
    song = merry()
    text = repr(song)
    assert "Song" in text
    assert "The Merry Men" in text and "Happy Go Lucky" in text
    pk = song.save()
    text = repr(Song.objects.get(pk))
    assert "Song" in text
    assert str(pk) in text
    assert "The Merry Men" in text and "1:58" in text


# ---- update -------------------------------------------------------------------------------


def test_update_changes_only_that_object_and_moves_its_index_entry(redis_client: redis.Redis) -> None:
    a = merry(title="A").save()
    b = merry(title="B", track_number=2).save()
    c = merry(title="C", artist="Someone Else").save()
    before = stored_records(redis_client, Song)

    song = Song.objects.get(b)
    song.artist = "New Artist"
    assert song.save() == b

    after = stored_records(redis_client, Song)
    assert after[a] == before[a] and after[c] == before[c]
    assert after[b] == {**before[b], "artist": "New Artist"}
    assert [s._id for s in Song.objects.filter(artist="New Artist").all()] == [b]
    assert [s._id for s in Song.objects.filter(artist="The Merry Men").all()] == [a]
    assert index_members(redis_client, Song, "artist", "The Merry Men") == {a}
    assert index_members(redis_client, Song, "artist", "New Artist") == {b}
    assert Song.objects.get(b).artist == "New Artist"
    assert_indexes_exact(redis_client, Song)


def test_update_last_member_of_index_removes_the_old_index_key(redis_client: redis.Redis) -> None:
    pk = merry(title="Only One").save()
    song = Song.objects.get(pk)
    song.title = "Renamed"
    song.save()
    assert Song.objects.filter(title="Only One").all() == []
    assert Song.objects.filter(title="Only One").count() == 0
    assert [s._id for s in Song.objects.filter(title="Renamed")] == [pk]
    assert index_members(redis_client, Song, "title", "Only One") == set()
    assert_indexes_exact(redis_client, Song)


def test_update_unindexed_field_and_repeated_updates(redis_client: redis.Redis) -> None:
    pk = merry().save()
    song = Song.objects.get(pk)
    song.album = "Remastered"
    song.save()
    song.track_number = 7
    song.save()
    song.track_number = 8
    song.artist = "X"
    song.save()
    fetched = Song.objects.get(pk)
    assert (fetched.album, fetched.track_number, fetched.artist) == ("Remastered", "8", "X")
    assert Song.objects.filter(track_number=7).count() == 0
    assert Song.objects.filter(track_number=1).count() == 0
    assert [s._id for s in Song.objects.filter(track_number=8, artist="X")] == [pk]
    assert_indexes_exact(redis_client, Song)


def test_delete_through_a_stale_copy_removes_the_current_index_entries(
        redis_client: redis.Redis) -> None:
    keep = merry(title="Keep").save()
    pk = merry(title="Stale", track_number=5).save()
    stale = Song.objects.get(pk)
    current = Song.objects.get(pk)
    current.artist = "Moved On"
    current.title = "Renamed"
    current.track_number = 6
    current.save()
    assert stale.delete() is True  # it still believes the old values
    assert Song.objects.get(pk) is None
    assert Song.objects.filter(artist="Moved On").count() == 0
    assert Song.objects.filter(title="Renamed").count() == 0
    assert Song.objects.filter(track_number=6).count() == 0
    assert [s._id for s in Song.objects.all()] == [keep]
    assert_indexes_exact(redis_client, Song)


def test_update_through_a_stale_copy_keeps_indexes_exact(redis_client: redis.Redis) -> None:
    pk = merry().save()
    first = Song.objects.get(pk)
    second = Song.objects.get(pk)
    first.artist = "First"
    first.save()
    second.artist = "Second"  # second still believes the artist is 'The Merry Men'
    second.save()
    assert Song.objects.get(pk).artist == "Second"
    assert Song.objects.filter(artist="First").count() == 0
    assert Song.objects.filter(artist="The Merry Men").count() == 0
    assert [s._id for s in Song.objects.filter(artist="Second")] == [pk]
    assert_indexes_exact(redis_client, Song)


# ---- delete -------------------------------------------------------------------------------


def test_delete_removes_object_and_index_entries(redis_client: redis.Redis) -> None:
    keep = merry(title="Keep").save()
    song = merry(title="Doomed", artist="Unique Artist", track_number=99)
    pk = song.save()
    before_keep = stored_records(redis_client, Song)[keep]

    assert song.delete() is True
    assert Song.objects.get(pk) is None
    assert Song.objects.exists(pk) is False
    assert Song.objects.filter(artist="Unique Artist").all() == []
    assert Song.objects.filter(title="Doomed").count() == 0
    assert Song.objects.filter(track_number=99).count() == 0
    assert set(stored_records(redis_client, Song)) == {keep}
    assert stored_records(redis_client, Song)[keep] == before_keep
    assert_indexes_exact(redis_client, Song)
    gprefix = prefix_of(Song) + b"g%d:" % live_gen(redis_client, Song)
    assert not any(b"Unique Artist" in key or b"Doomed" in key
                   for key in redis_client.scan_iter(match=gprefix + b"*"))
    assert [s._id for s in Song.objects.all()] == [keep]


def test_delete_twice_is_harmless(redis_client: redis.Redis) -> None:
    keep = merry(title="Keep").save()
    song = merry(title="Twice")
    pk = song.save()
    copy = Song.objects.get(pk)
    assert song.delete() is True
    snapshot = dump(redis_client)
    assert song.delete() is False   # already deleted through this object
    assert copy.delete() is False   # already deleted through another copy
    assert dump(redis_client) == snapshot
    assert Song.objects.get(pk) is None
    assert [s._id for s in Song.objects.all()] == [keep]
    assert Song(title="never saved").delete() is False
    assert dump(redis_client) == snapshot


def test_deleted_object_keeps_values_and_saves_as_new() -> None:
    song = merry()
    pk = song.save()
    song.delete()
    assert song.artist == "The Merry Men"
    assert song.getPk() is None
    new_pk = song.save()
    assert new_pk != pk
    assert Song.objects.get(pk) is None
    assert Song.objects.get(new_pk).artist == "The Merry Men"


# ---- invalid models -----------------------------------------------------------------------


def define(name: str, **namespace: Any) -> type:
    return type(name, (IndexedRedisModel,), {"__module__": __name__, **namespace})


@pytest.mark.parametrize(
    "namespace, fragments",
    [
        (dict(FIELDS=["a", "b"], INDEXED_FIELDS=["a"]), ["KEY_NAME"]),
        (dict(FIELDS=["a", "b"], KEY_NAME=""), ["KEY_NAME"]),
        (dict(FIELDS=["a", "b"], KEY_NAME=5), ["KEY_NAME"]),
        (dict(FIELDS=["a", "b", "a"], KEY_NAME="bad"), ["'a'", "twice"]),
        (dict(FIELDS=["a", "b"], INDEXED_FIELDS=["c"], KEY_NAME="bad"), ["'c'", "INDEXED_FIELDS"]),
        (dict(FIELDS=["a", "b"], INDEXED_FIELDS=["bb"], KEY_NAME="bad"), ["'bb'", "'b'"]),
        (dict(FIELDS=["a", "_id"], KEY_NAME="bad"), ["'_id'"]),
        (dict(FIELDS=["a", "save"], KEY_NAME="bad"), ["'save'"]),
        (dict(FIELDS=["delete"], KEY_NAME="bad"), ["'delete'"]),
        (dict(FIELDS=["asDict"], KEY_NAME="bad"), ["'asDict'"]),
        (dict(FIELDS=["reset"], KEY_NAME="bad"), ["'reset'"]),
        (dict(FIELDS=["getPk"], KEY_NAME="bad"), ["'getPk'"]),
        (dict(FIELDS=["a__b"], KEY_NAME="bad"), ["'a__b'"]),
        (dict(FIELDS=["a:b"], KEY_NAME="bad"), ["'a:b'"]),
        (dict(FIELDS=[], KEY_NAME="bad"), ["FIELDS"]),
        (dict(KEY_NAME="bad"), ["FIELDS"]),
        (dict(FIELDS="abc", KEY_NAME="bad"), ["FIELDS"]),
    ],
    ids=["no-key-name", "empty-key-name", "int-key-name", "duplicate-field",
         "indexed-non-field", "indexed-typo", "field-_id", "field-save", "field-delete",
         "field-asDict", "field-reset", "field-getPk", "double-underscore", "colon",
         "empty-fields", "no-fields", "fields-str"],
)
def test_invalid_models_rejected_at_class_definition(namespace: dict[str, Any],
                                                     fragments: list[str]) -> None:
    with pytest.raises(InvalidModelException) as info:
        define("BadModel", **namespace)
    message = str(info.value)
    assert "BadModel" in message
    for fragment in fragments:
        assert fragment in message


def test_field_named_objects_is_rejected_with_a_clear_message() -> None:
    with pytest.raises(InvalidModelException) as info:
        define("BadModel", FIELDS=["a", "objects"], KEY_NAME="bad")
    assert "BadModel" in str(info.value)
    assert "'objects'" in str(info.value)


def test_key_name_with_lone_surrogate_rejected_as_invalid_model() -> None:
    with pytest.raises(InvalidModelException):
        define("BadModel", FIELDS=["a"], KEY_NAME="bad\udcff")


def test_field_clashing_with_subclass_method_rejected() -> None:
    class Base(IndexedRedisModel):
        def helper(self) -> str:
            return "x"

    with pytest.raises(InvalidModelException, match="helper"):
        type("Child", (Base,), {"FIELDS": ["a", "helper"], "KEY_NAME": "child"})


def test_valid_model_with_same_key_name_fields_can_be_defined_again() -> None:
    model = define("Again", FIELDS=["a", "b"], INDEXED_FIELDS=["b"], KEY_NAME="again")
    pk = model(a="1", b="2").save()
    assert model.objects.get(pk).asDict() == {"a": "1", "b": "2"}


# ---- connections --------------------------------------------------------------------------


def test_class_level_connection(other_db: tuple[int, redis.Redis], redis_server: Any,
                                redis_client: redis.Redis) -> None:
    db, raw = other_db
    conn = redis_server.client(db=db)

    class Routed(IndexedRedisModel):
        FIELDS = ["name", "kind"]
        INDEXED_FIELDS = ["kind"]
        KEY_NAME = "Routed"
        _connection = conn

    pk = Routed(name="n", kind="k").save()
    assert redis_client.dbsize() == 0  # nothing in the default database
    assert raw.hexists(prefix_of(Routed) + b"g0:objs", str(pk))
    assert raw.sismember(prefix_of(Routed) + b"g0:i:kind:k", str(pk))
    assert [r._id for r in Routed.objects.filter(kind="k")] == [pk]
    assert Routed.objects.get(pk).name == "n"
    Routed.objects.get(pk).delete()
    assert Routed.objects.count() == 0
    assert raw.hlen(prefix_of(Routed) + b"g0:objs") == 0
    assert redis_client.dbsize() == 0
    conn.close()


def test_instance_connection_set_in_init(other_db: tuple[int, redis.Redis], redis_server: Any,
                                         redis_client: redis.Redis) -> None:
    db, raw = other_db
    conn = redis_server.client(db=db)

    class PerInstance(IndexedRedisModel):
        FIELDS = ["name"]
        INDEXED_FIELDS = ["name"]
        KEY_NAME = "PerInstance"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            IndexedRedisModel.__init__(self, *args, **kwargs)
            self._connection = conn

    obj = PerInstance(name="x")
    assert "_connection" not in obj.asDict()
    pk = obj.save()
    objs_key = prefix_of(PerInstance) + b"g0:objs"
    assert raw.hexists(objs_key, str(pk))
    assert decode_record(raw, PerInstance, raw.hget(objs_key, str(pk))) == {"name": "x"}
    assert raw.smembers(prefix_of(PerInstance) + b"g0:i:name:x") == {str(pk).encode()}
    assert redis_client.dbsize() == 0
    obj.name = "y"
    obj.save()
    assert raw.smembers(prefix_of(PerInstance) + b"g0:i:name:y") == {str(pk).encode()}
    assert not raw.exists(prefix_of(PerInstance) + b"g0:i:name:x")
    assert obj.delete() is True
    assert raw.hlen(objs_key) == 0
    assert redis_client.dbsize() == 0
    conn.close()


def test_redis_connection_params_full(other_db: tuple[int, redis.Redis], redis_server: Any,
                                      redis_client: redis.Redis) -> None:
    db, raw = other_db

    class WithParams(IndexedRedisModel):
        FIELDS = ["name"]
        INDEXED_FIELDS = ["name"]
        KEY_NAME = "WithParams"
        REDIS_CONNECTION_PARAMS = {"host": "127.0.0.1", "port": redis_server.port, "db": db}

    pk = WithParams(name="p").save()
    assert raw.hexists(prefix_of(WithParams) + b"g0:objs", str(pk))
    assert redis_client.dbsize() == 0
    assert [o._id for o in WithParams.objects.filter(name="p")] == [pk]
    assert WithParams.objects.delete() == 1
    assert raw.hlen(prefix_of(WithParams) + b"g0:objs") == 0


def test_redis_connection_params_laid_over_default(other_db: tuple[int, redis.Redis],
                                                   redis_client: redis.Redis) -> None:
    db, raw = other_db

    class OnlyDb(IndexedRedisModel):
        FIELDS = ["name"]
        INDEXED_FIELDS = ["name"]
        KEY_NAME = "OnlyDb"
        REDIS_CONNECTION_PARAMS = {"db": db}

    pk = OnlyDb(name="p").save()
    assert raw.hexists(prefix_of(OnlyDb) + b"g0:objs", str(pk))
    assert redis_client.dbsize() == 0
    Plain(name="default").save()  # other models still use the default database
    assert redis_client.exists(prefix_of(Plain) + b"g0:objs")
    assert not raw.exists(prefix_of(Plain) + b"g0:objs")


def test_decode_responses_client_as_connection(redis_server: Any, redis_client: redis.Redis) -> None:
    conn = redis_server.client(db=0, decode_responses=True)

    class Decoded(IndexedRedisModel):
        FIELDS = ["name", "note"]
        INDEXED_FIELDS = ["name"]
        KEY_NAME = "Decoded"
        _connection = conn

    pks = [Decoded(name="Zoë ♫", note=f"n{i}").save() for i in range(3)]
    other = Decoded(name="other", note="{:}").save()
    assert [o._id for o in Decoded.objects.filter(name="Zoë ♫").all()] == pks
    assert Decoded.objects.filter(name__ne="Zoë ♫").first()._id == other
    assert Decoded.objects.count() == 4
    assert Decoded.objects.get(other).note == "{:}"
    assert [o and o._id for o in Decoded.objects.getMultiple([pks[0], 10**6])] == [pks[0], None]
    fetched = Decoded.objects.get(pks[1])
    fetched.name = "renamed"
    fetched.save()
    assert Decoded.objects.filter(name="renamed").count() == 1
    assert fetched.delete() is True
    assert Decoded.objects.filter(name="Zoë ♫").count() == 2
    Decoded.reset([Decoded(name="fresh")])
    assert [o.name for o in Decoded.objects.all()] == ["fresh"]
    assert Decoded.objects.filter(name="Zoë ♫").count() == 0
    # the user's client is left as it was: it still decodes its own replies
    conn.set("plain-key", "välue")
    assert conn.get("plain-key") == "välue"
    assert redis_client.get("plain-key") == "välue".encode()
    assert_indexes_exact(redis_client, Decoded)
    conn.close()


def test_set_default_connection_params_redirects_models(redis_server: Any,
                                                        redis_client: redis.Redis) -> None:
    raw = extra_db(redis_server, 4)
    try:
        params = {"host": "127.0.0.1", "port": redis_server.port, "db": 4}
        setDefaultRedisConnectionParams(params)
        params["db"] = 99  # the library keeps its own copy
        assert getDefaultRedisConnectionParams() == {"host": "127.0.0.1", "port": redis_server.port,
                                                     "db": 4}
        got = getDefaultRedisConnectionParams()
        got["db"] = 98  # and hands out copies
        assert getDefaultRedisConnectionParams()["db"] == 4
        pk = Plain(name="x").save()
        assert raw.hexists(prefix_of(Plain) + b"g0:objs", str(pk))
        assert redis_client.dbsize() == 0  # REDIS_URL (db 0) is overridden
        assert [p._id for p in Plain.objects.filter(name="x")] == [pk]
    finally:
        raw.flushdb()
        raw.close()


def test_set_default_connection_params_rejects_non_dict() -> None:
    with pytest.raises(TypeError):
        setDefaultRedisConnectionParams("redis://127.0.0.1:1/0")  # type: ignore[arg-type]


def test_redis_url_env_redirects_models(redis_server: Any, redis_client: redis.Redis,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    raw = extra_db(redis_server, 5)
    try:
        monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{redis_server.port}/5")
        params = getDefaultRedisConnectionParams()
        assert params["db"] == 5
        assert params["port"] == redis_server.port
        assert params["host"] == "127.0.0.1"
        pk = Song(artist="env").save()
        assert raw.hexists(prefix_of(Song) + b"g0:objs", str(pk))
        assert redis_client.dbsize() == 0
        assert Song.objects.filter(artist="env").count() == 1
    finally:
        raw.flushdb()
        raw.close()


def test_explicit_default_wins_over_redis_url(redis_server: Any, redis_client: redis.Redis,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    raw = extra_db(redis_server, 6)
    try:
        setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": redis_server.port, "db": 6})
        monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{redis_server.port}/0")
        assert getDefaultRedisConnectionParams()["db"] == 6
        pk = Plain(name="x").save()
        assert raw.hexists(prefix_of(Plain) + b"g0:objs", str(pk))
        assert redis_client.dbsize() == 0
    finally:
        raw.flushdb()
        raw.close()


def test_one_shared_client_per_distinct_params(redis_server: Any) -> None:
    params = getDefaultRedisConnectionParams()
    client = getRedisConnection(params)
    assert getRedisConnection(dict(params)) is client
    assert getRedisConnection(dict(reversed(list(params.items())))) is client
    assert getRedisConnection() is client
    assert getRedisPool(params) is client.connection_pool
    assert getRedisPool(dict(params)) is client.connection_pool
    other = getRedisConnection({**params, "db": 7})
    assert other is not client
    assert other.connection_pool is not client.connection_pool
    assert getRedisConnection({**params, "db": 7}) is other


def test_models_share_one_connection_per_params(redis_client: redis.Redis) -> None:
    Song(artist="warm-up").save()
    Plain(name="warm-up").save()
    before = len(redis_client.client_list())
    for i in range(30):
        Song(artist=str(i)).save()
        Plain(name=str(i)).save()
        Song.objects.filter(artist=str(i)).count()
        Plain.objects.all()
    # single-threaded use of two models on the same params reuses one pooled connection
    assert len(redis_client.client_list()) == before


def test_clear_pools_gives_fresh_clients() -> None:
    params = getDefaultRedisConnectionParams()
    first = getRedisConnection(params)
    IndexedRedis.clearRedisPools()
    second = getRedisConnection(params)
    assert second is not first
    pk = Plain(name="after clear").save()
    assert Plain.objects.get(pk).name == "after clear"
