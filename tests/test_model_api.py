"""The 6.x model API, checked against the stored state of the fixture's private Redis.

Instance methods (save, delete, asDict, pprint, change tracking, reload, diff, equality,
copies, saveToExternal, pickling), class methods (reset, copyModel, connectAlt /
connect, validateModel, saver, deleter, destroyModel), query sets (all, partial
fetches, first / last / random, getMultiple, reindex, compat_convertHashedIndexes) and
the Redis-bound methods of ``IRQueryableList``.

Only the fixture server is used: database 0 through ``REDIS_URL`` and database
``EXTERNAL_DB`` (flushed by the ``external`` fixture) for connectAlt / saveToExternal.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import io
import pickle
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from consistency import assert_indexes_consistent, decode_record, stored_ids

from IndexedRedis import (
    FieldValueError,
    IndexedRedisError,
    IndexedRedisModel,
    IndexNotBuiltError,
    IRClassicField,
    IRField,
    irNull,
)
from IndexedRedis.keys import escape_key_name
from IndexedRedis.model import toggleDeprecatedMessages
from IndexedRedis.results import IRQueryableList

EXTERNAL_DB = 5
BOOKKEEPING = {b"gen", b"genseq", b"nextpk", b"schemas", b"staging", b"dead", b"lastreset"}


# ---- models (module level, so their instances pickle) -------------------------------------


class Person(IndexedRedisModel):
    FIELDS = ["name", "city", IRField("age", valueType=int), "notes"]
    INDEXED_FIELDS = ["name", "city"]
    KEY_NAME = "ApiPerson"


class PersonTwin(IndexedRedisModel):
    """Same fields as Person, another model."""

    FIELDS = ["name", "city", IRField("age", valueType=int), "notes"]
    INDEXED_FIELDS = ["name", "city"]
    KEY_NAME = "ApiPersonTwin"


class Tagged(IndexedRedisModel):
    FIELDS = ["name", IRField("tags", valueType=list, defaultValue=[])]
    INDEXED_FIELDS = ["name"]
    KEY_NAME = "ApiTagged"


def person(name: str = "Ann", city: str = "Oslo", age: int = 30, notes: str = "") -> Person:
    return Person(name=name, city=city, age=age, notes=notes)


# ---- helpers reading Redis directly ---------------------------------------------------------


def prefix_of(model: type[IndexedRedisModel] | str) -> bytes:
    key_name = model if isinstance(model, str) else model.KEY_NAME
    assert key_name is not None
    return b"ir:{" + escape_key_name(key_name).encode("ascii") + b"}:"


def model_keys(client: redis.Redis, model: type[IndexedRedisModel] | str) -> set[bytes]:
    """Every key of a model (found with SCAN, filtered here: no glob patterns involved)."""
    prefix = prefix_of(model)
    return {key for key in client.scan_iter(count=1000) if key.startswith(prefix)}


def data_keys(client: redis.Redis, model: type[IndexedRedisModel] | str) -> set[bytes]:
    prefix = prefix_of(model)
    return {key for key in model_keys(client, model) if key[len(prefix):] not in BOOKKEEPING}


def live_gen(client: redis.Redis, model: type[IndexedRedisModel]) -> int:
    return int(client.get(prefix_of(model) + b"gen") or 0)


def gen_prefix(client: redis.Redis, model: type[IndexedRedisModel]) -> bytes:
    return prefix_of(model) + b"g%d:" % live_gen(client, model)


def stored(client: redis.Redis, model: type[IndexedRedisModel]) -> dict[int, dict[str, Any]]:
    """pk -> record of the live generation, decoded."""
    return {int(pk): decode_record(client, model, blob)
            for pk, blob in client.hgetall(gen_prefix(client, model) + b"objs").items()}


def md5(value: bytes) -> bytes:
    return hashlib.md5(value).hexdigest().encode("ascii")


def expected_index_keys(client: redis.Redis, model: type[IndexedRedisModel],
                        hashed: frozenset[str] = frozenset()) -> dict[bytes, set[int]]:
    """Index key -> pks, derived independently from the stored records (text values)."""
    gp = gen_prefix(client, model)
    expected: dict[bytes, set[int]] = {}
    for pk, record in stored(client, model).items():
        for name in model.INDEXED_FIELDS:
            value = record.get(str(name))
            if value is False:
                key = gp + b"n:" + str(name).encode()
            else:
                raw = value.encode("utf-8") if isinstance(value, str) else value
                key = gp + b"i:" + str(name).encode() + b":" + (md5(raw) if name in hashed else raw)
            expected.setdefault(key, set()).add(pk)
    return expected


def actual_index_keys(client: redis.Redis, model: type[IndexedRedisModel]) -> dict[bytes, set[int]]:
    prefix = prefix_of(model)
    return {key: {int(pk) for pk in client.smembers(key)}
            for key in model_keys(client, model)
            if key[len(prefix):].split(b":", 1)[-1][:2] in (b"i:", b"n:")}


def assert_layout_exact(client: redis.Redis, model: type[IndexedRedisModel],
                        hashed: frozenset[str] = frozenset()) -> None:
    """Only the live generation exists, and its id set and indexes match its records."""
    gp = gen_prefix(client, model)
    records = stored(client, model)
    for key in data_keys(client, model):
        assert key.startswith(gp), f"key of a dead generation left behind: {key!r}"
    assert stored_ids(client, gp + b"ids") == set(records)
    assert actual_index_keys(client, model) == expected_index_keys(client, model, hashed)


@pytest.fixture
def external(redis_server: Any) -> Iterator[redis.Redis]:
    """Database EXTERNAL_DB of the fixture server, empty, with a raw client on it."""
    client = redis_server.client(db=EXTERNAL_DB)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


# ---- instance: save / delete / getPk ---------------------------------------------------------


def test_save_returns_pk_and_getPk_tracks_it(redis_client: redis.Redis) -> None:
    obj = person()
    assert obj.getPk() is None
    pk = obj.save()
    assert isinstance(pk, int) and obj.getPk() == pk == obj._id
    assert stored(redis_client, Person) == {pk: {"name": "Ann", "city": "Oslo", "age": "30", "notes": ""}}
    assert obj.save(cascadeSave=False) == pk  # no change: same pk, nothing new
    assert Person.objects.count() == 1
    assert_layout_exact(redis_client, Person)


def test_delete_removes_record_and_index_entries(redis_client: redis.Redis) -> None:
    keep, doomed = person("Keep"), person("Gone")
    keep.save()
    doomed.save()
    assert doomed.delete() is True
    assert doomed.getPk() is None
    assert doomed.name == "Gone"  # keeps its values
    assert doomed.delete() is False
    assert list(stored(redis_client, Person)) == [keep._id]
    assert Person.objects.filter(name="Gone").count() == 0
    assert_layout_exact(redis_client, Person)


# ---- instance: asDict / pprint ---------------------------------------------------------------


def test_asDict_variants() -> None:
    obj = Person(name="Ann", city="Oslo", age=30)
    assert obj.asDict() == {"name": "Ann", "city": "Oslo", "age": 30, "notes": ""}
    assert "_id" not in obj.asDict()
    assert obj.asDict(includeMeta=True)["_id"] is None
    pk = obj.save()
    meta = obj.asDict(includeMeta=True)
    assert meta == {"name": "Ann", "city": "Oslo", "age": 30, "notes": "", "_id": pk}
    assert obj.asDict(forStorage=True) == {"name": "Ann", "city": "Oslo", "age": "30", "notes": ""}
    keys = obj.asDict(includeMeta=True, strKeys=True).keys()
    assert all(type(key) is str for key in keys)
    assert obj.toDict() == obj.asDict()
    unset = Person(name="x")
    assert unset.asDict()["age"] is irNull


def test_pprint_writes_the_dict_with_pk_to_the_stream() -> None:
    obj = Person(name="Ann", city="Oslo", age=30, notes="n")
    pk = obj.save()
    stream = io.StringIO()
    obj.pprint(stream)
    assert ast.literal_eval(stream.getvalue()) == {
        "name": "Ann", "city": "Oslo", "age": 30, "notes": "n", "_id": pk}


def test_pprint_defaults_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    person("Zed").pprint()
    out = capsys.readouterr().out
    assert "'name': 'Zed'" in out and "'_id': None" in out


# ---- instance: change tracking ---------------------------------------------------------------


def test_change_tracking_after_fetch_and_assignment() -> None:
    new = person()
    assert new.hasUnsavedChanges()
    pk = new.save()
    assert not new.hasUnsavedChanges()
    fetched = Person.objects.get(pk)
    assert fetched is not None
    assert not fetched.hasUnsavedChanges()
    assert fetched.getUpdatedFields() == {}
    fetched.name = "Bob"
    fetched.age = "31"  # normalised to int on assignment
    assert fetched.hasUnsavedChanges()
    assert fetched.getUpdatedFields() == {"name": ("Ann", "Bob"), "age": (30, 31)}
    fetched.name = "Ann"  # back to the stored value: no longer a change
    assert fetched.getUpdatedFields() == {"age": (30, 31)}
    fetched.save()
    assert not fetched.hasUnsavedChanges()
    assert fetched.getUpdatedFields() == {}


def test_save_writes_only_changed_fields_so_two_stale_copies_both_survive(
        redis_client: redis.Redis) -> None:
    pk = person("Ann", "Oslo", 30, "orig").save()
    first, second = Person.objects.get(pk), Person.objects.get(pk)
    assert first is not None and second is not None
    first.name = "Bea"
    first.save()
    second.city = "Rome"  # second never saw first's change
    second.notes = "edited"
    second.save()
    assert stored(redis_client, Person)[pk] == {"name": "Bea", "city": "Rome", "age": "30", "notes": "edited"}
    assert Person.objects.filter(name="Bea", city="Rome").getPrimaryKeys() == [pk]
    assert Person.objects.filter(name="Ann").count() == 0
    assert Person.objects.filter(city="Oslo").count() == 0
    assert_layout_exact(redis_client, Person)


# ---- instance: reload --------------------------------------------------------------------------


def test_reload_applies_stored_values_and_returns_changes() -> None:
    pk = person("Ann", "Oslo", 30).save()
    mine, theirs = Person.objects.get(pk), Person.objects.get(pk)
    assert mine is not None and theirs is not None
    assert not mine.reload()  # nothing changed
    theirs.name = "Bea"
    theirs.age = 41
    theirs.save()
    mine.notes = "local edit"
    changes = mine.reload()
    assert changes == {"name": ("Ann", "Bea"), "age": (30, 41), "notes": ("local edit", "")}
    assert (mine.name, mine.age, mine.notes, mine.city) == ("Bea", 41, "", "Oslo")
    assert not mine.hasUnsavedChanges()
    mine.city = "Rome"  # reload reset the baseline: a save writes just this
    mine.save()
    fresh = Person.objects.get(pk)
    assert fresh is not None and fresh.asDict() == {"name": "Bea", "city": "Rome", "age": 41, "notes": ""}


def test_reload_raises_key_error_when_unsaved_or_deleted() -> None:
    with pytest.raises(KeyError):
        person().reload()
    obj = person()
    pk = obj.save()
    Person.deleter.deleteByPk(pk)
    with pytest.raises(KeyError):
        obj.reload()
    assert obj.name == "Ann"  # untouched by the failed reload


# ---- instance: diff / hasSameValues / equality -------------------------------------------------


def test_diff_as_method_and_as_class_function() -> None:
    a = Person(name="A", city="C", age=1)
    b = Person(name="B", city="C", age=2)
    expected = {"name": ("A", "B"), "age": (1, 2)}
    assert a.diff(b) == expected
    assert Person.diff(a, b) == expected
    assert IndexedRedisModel.diff(a, b) == expected
    assert b.diff(a) == {"name": ("B", "A"), "age": (2, 1)}
    a.save()
    b.save()
    assert "_id" not in a.diff(b)
    assert a.diff(b, includeMeta=True) == {**expected, "_id": (a._id, b._id)}
    same = a.copy()
    assert a.diff(same) == {}
    assert a.diff(same, includeMeta=True) == {"_id": (a._id, None)}


def test_hasSameValues_eq_ne_and_hash() -> None:
    a = person()
    a.save()
    b = Person.objects.get(a._id)
    assert b is not None and b is not a
    assert a == b and not (a != b)
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a.hasSameValues(b)
    twin = a.copy()  # same values, no pk
    assert a.hasSameValues(twin)
    assert a != twin
    b.name = "Other"
    assert a != b and not (a == b)
    assert not a.hasSameValues(b)
    other_model = PersonTwin(**a.asDict())
    other_model._id = a._id
    assert a != other_model


# ---- instance: copies ----------------------------------------------------------------------------


def test_copy_with_primary_key_updates_the_original_record(redis_client: redis.Redis) -> None:
    obj = person("Ann", "Oslo", 30)
    pk = obj.save()
    clone = obj.copy(copyPrimaryKey=True)
    assert clone.getPk() == pk and clone == obj
    assert not clone.hasUnsavedChanges()
    clone.city = "Rome"
    assert clone.save() == pk
    assert Person.objects.count() == 1
    assert stored(redis_client, Person)[pk]["city"] == "Rome"
    assert obj.city == "Oslo"  # the original object itself is not changed
    assert_layout_exact(redis_client, Person)


def test_copy_without_primary_key_inserts_a_new_record(redis_client: redis.Redis) -> None:
    obj = person("Ann", "Oslo", 30)
    pk = obj.save()
    clone = obj.copy()
    assert clone.getPk() is None and clone.hasSameValues(obj)
    assert clone.hasUnsavedChanges()
    clone.name = "Clone"
    new_pk = clone.save()
    assert new_pk != pk
    assert {r["name"] for r in stored(redis_client, Person).values()} == {"Ann", "Clone"}
    assert_layout_exact(redis_client, Person)


def test_copy_values_and_copy_module() -> None:
    obj = Tagged(name="t", tags=[{"k": [1, 2]}, "x"])
    obj.save()
    deep = obj.copy(copyValues=True)
    assert deep.tags == obj.tags and deep.tags[0] is not obj.tags[0]
    shallow = obj.copy(copyValues=False)
    assert shallow.tags == obj.tags
    c1 = copy.copy(obj)
    assert c1.getPk() is None and c1.tags == obj.tags and c1.name == "t"
    c2 = copy.deepcopy(obj)
    assert c2.getPk() is None and c2.tags == obj.tags
    assert c2.tags[0] is not obj.tags[0]
    c2.tags[0]["k"].append(3)
    assert obj.tags[0]["k"] == [1, 2]
    assert c2.save() != obj._id
    assert Tagged.objects.count() == 2


# ---- instance: saveToExternal ---------------------------------------------------------------------


def test_saveToExternal_with_a_redis_client(external: redis.Redis, redis_server: Any,
                                            redis_client: redis.Redis) -> None:
    obj = person("Ann", "Oslo", 30, "n")
    pk = obj.save()
    before = dict(stored(redis_client, Person))
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, db=EXTERNAL_DB)
    try:
        ext_pk = obj.saveToExternal(client)
        ext_pk2 = obj.saveToExternal(client)
    finally:
        client.close()
    assert isinstance(ext_pk, int) and ext_pk2 != ext_pk  # a new object each time
    assert obj.getPk() == pk and not obj.hasUnsavedChanges()
    assert stored(redis_client, Person) == before
    assert stored(external, Person) == {
        ext_pk: before[pk], ext_pk2: before[pk]}
    assert_layout_exact(external, Person)
    ext = Person.connectAlt({"db": EXTERNAL_DB})
    assert ext.objects.filter(name="Ann").getPrimaryKeys() == [ext_pk, ext_pk2]


def test_saveToExternal_with_a_decode_responses_client(external: redis.Redis, redis_server: Any) -> None:
    obj = person("Ann")
    obj.save()
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, db=EXTERNAL_DB, decode_responses=True)
    try:
        ext_pk = obj.saveToExternal(client)
    finally:
        client.close()
    assert stored(external, Person)[ext_pk]["name"] == "Ann"


def test_saveToExternal_with_connection_params(external: redis.Redis, redis_server: Any,
                                               redis_client: redis.Redis) -> None:
    obj = person("Ann")
    obj.save()
    ext_pk = obj.saveToExternal({"host": "127.0.0.1", "port": redis_server.port, "db": EXTERNAL_DB})
    assert stored(external, Person)[ext_pk]["name"] == "Ann"
    assert list(stored(redis_client, Person)) == [obj._id]


# ---- instance: pickling ----------------------------------------------------------------------------


def test_pickle_round_trip_keeps_values_pk_and_baseline(redis_client: redis.Redis) -> None:
    obj = person("Ann", "Oslo", 30, "n")
    pk = obj.save()
    loaded = pickle.loads(pickle.dumps(obj))
    assert loaded == obj and loaded.getPk() == pk
    assert loaded.asDict() == obj.asDict()
    assert not loaded.hasUnsavedChanges()
    loaded.city = "Rome"  # the pickled baseline lets a partial save work
    loaded.save()
    assert stored(redis_client, Person)[pk] == {"name": "Ann", "city": "Rome", "age": "30", "notes": "n"}
    unsaved = pickle.loads(pickle.dumps(person("New")))
    assert unsaved.getPk() is None and unsaved.name == "New"
    assert unsaved.age == 30


def test_pickle_instance_with_its_own_connection(redis_server: Any) -> None:
    obj = person("Ann")
    conn = redis_server.client(db=0)
    try:
        obj._connection = conn
        obj.save()
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        conn.close()
    loaded = pickle.loads(data)
    assert "_connection" not in loaded.__dict__
    assert loaded == obj
    loaded.notes = "after unpickling"
    loaded.save()  # uses the class's connection
    fresh = Person.objects.get(obj._id)
    assert fresh is not None and fresh.notes == "after unpickling"


# ---- class level: reset / copyModel / connectAlt / connect / validateModel --------------------------


def test_reset_replaces_the_dataset(redis_client: redis.Redis) -> None:
    for name in ("a", "b", "c"):
        person(name).save()
    new = [person("x"), person("y")]
    pks = Person.reset(new)
    assert pks == [o._id for o in new]
    assert sorted(o.name for o in Person.objects.all()) == ["x", "y"]
    assert Person.objects.filter(name="a").count() == 0
    assert_layout_exact(redis_client, Person)


def test_copyModel_is_an_independent_class_on_the_same_data(redis_client: redis.Redis) -> None:
    pk = person("Ann").save()
    Copy = Person.copyModel()
    Copy2 = Person.copyModel()
    assert Copy is not Person and Copy.__name__ != Person.__name__ and Copy.__name__ != Copy2.__name__
    assert Copy.KEY_NAME == Person.KEY_NAME
    assert list(Copy._meta.field_names) == list(Person._meta.field_names)
    assert list(Copy._meta.indexed_names) == list(Person._meta.indexed_names)
    for mine, theirs in zip(Copy._meta.fields, Person._meta.fields, strict=True):
        assert mine is not theirs and mine == theirs and type(mine) is type(theirs)
    Copy._meta.fields_by_name["age"].defaultValue = 99  # changing the copy's field...
    assert Person._meta.fields_by_name["age"].defaultValue is irNull  # ...leaves the original's
    got = Copy.objects.get(pk)
    assert type(got) is Copy and got.name == "Ann"
    other = Copy(name="Bob", city="Oslo", age=2)
    other.save()
    assert sorted(o.name for o in Person.objects.filter(city="Oslo")) == ["Ann", "Bob"]
    assert_layout_exact(redis_client, Person)


def test_connectAlt_uses_another_db_and_leaves_the_model_alone(external: redis.Redis,
                                                               redis_client: redis.Redis) -> None:
    Alt = Person.connectAlt({"db": EXTERNAL_DB})
    assert Alt is not Person
    pk = Alt(name="Alt", city="X", age=1).save()
    assert stored(external, Person) == {pk: {"name": "Alt", "city": "X", "age": "1", "notes": ""}}
    assert redis_client.dbsize() == 0
    assert Person.objects.count() == 0
    assert Person._meta.connection_params is None
    person("Main").save()
    assert [o.name for o in Alt.objects.all()] == ["Alt"]
    assert [o.name for o in Person.objects.all()] == ["Main"]


def test_connect_is_a_deprecated_alias_of_connectAlt(external: redis.Redis) -> None:
    with pytest.warns(DeprecationWarning, match="connectAlt"):
        Alt = Person.connect({"db": EXTERNAL_DB})
    Alt(name="a").save()
    assert len(stored(external, Person)) == 1
    toggleDeprecatedMessages(False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            Person.connect({"db": EXTERNAL_DB})
    finally:
        toggleDeprecatedMessages(True)
    with pytest.warns(DeprecationWarning):
        Person.connect({"db": EXTERNAL_DB})


def test_validateModel_returns_true() -> None:
    assert Person.validateModel() is True
    assert Person.copyModel().validateModel() is True


# ---- saver ------------------------------------------------------------------------------------------


def test_saver_save_one_object_or_a_list(redis_client: redis.Redis) -> None:
    one = person("one")
    pk = Person.saver.save(one)
    assert pk == one._id and isinstance(pk, int)
    objs = [person("a"), person("b")]
    one.city = "Rome"
    pks = Person.saver.save([*objs, one])
    assert pks == [objs[0]._id, objs[1]._id, pk]
    assert stored(redis_client, Person)[pk]["city"] == "Rome"
    assert Person.saver.save([]) == []
    assert_layout_exact(redis_client, Person)


def test_saver_save_list_is_atomic_when_one_value_is_invalid(redis_client: redis.Redis) -> None:
    existing = Tagged(name="old", tags=["a"])
    existing.save()
    before = {key: redis_client.dump(key) for key in redis_client.scan_iter()}
    existing.name = "renamed"
    good = Tagged(name="good", tags=["ok"])
    bad = Tagged(name="bad", tags=[])
    bad.tags.append({1, 2})  # mutated in place: a set has no stored form
    with pytest.raises(FieldValueError, match="tags"):
        Tagged.saver.save([existing, good, bad])
    assert {key: redis_client.dump(key) for key in redis_client.scan_iter()} == before
    assert good.getPk() is None and bad.getPk() is None
    assert [o.name for o in Tagged.objects.all()] == ["old"]


def test_saver_save_refuses_two_objects_with_one_pk(redis_client: redis.Redis) -> None:
    obj = person("a")
    obj.save()
    twin = obj.copy(copyPrimaryKey=True)
    twin.name = "b"
    obj.name = "c"
    newcomer = person("new")
    with pytest.raises(IndexedRedisError):
        Person.saver.save([obj, newcomer, twin])
    assert [r["name"] for r in stored(redis_client, Person).values()] == ["a"]


def test_saveMultiple_across_batches(redis_client: redis.Redis) -> None:
    objs = [Person(name=f"n{i}", city=f"c{i % 3}", age=i) for i in range(1205)]
    pks = Person.saver.saveMultiple(objs)
    assert pks == [o._id for o in objs] and len(set(pks)) == 1205
    assert Person.objects.count() == 1205
    assert Person.objects.filter(city="c1").count() == 402
    assert_layout_exact(redis_client, Person)


# ---- deleter ----------------------------------------------------------------------------------------


def test_deleter_methods_return_counts(redis_client: redis.Redis) -> None:
    objs = [person(f"p{i}", city="c" if i % 2 else "d") for i in range(8)]
    Person.saver.save(objs)
    pks = [o._id for o in objs]
    assert Person.deleter.deleteOne(objs[0]) == 1
    assert Person.deleter.deleteOne(objs[0]) == 0
    assert Person.deleter.deleteByPk(pks[1]) == 1
    assert Person.deleter.deleteByPk(pks[1]) == 0
    assert Person.deleter.deleteMultiple([objs[2], objs[3], person("never saved")]) == 2
    assert objs[2].getPk() is None
    assert Person.deleter.deleteMultipleByPks([pks[4], pks[5], 999_999]) == 2
    assert Person.deleter.deleteMultipleByPks([]) == 0
    assert sorted(stored(redis_client, Person)) == pks[6:]
    assert_layout_exact(redis_client, Person)


def _destroy(model: type[IndexedRedisModel], how: str) -> int | None:
    if how == "destroyModel":
        return model.deleter.destroyModel()
    if how == "objects.delete":
        return model.objects.delete()
    model.reset([])
    return None


NEIGHBOUR_NAMES = ["Item", "Items", "Item2", "Ite", "Item*", "Ite*", "It?m", "[I]tem", "Item:x", "Item{x}"]


def _neighbour_model(key_name: str) -> type[IndexedRedisModel]:
    return type(f"Neighbour_{abs(hash(key_name))}", (IndexedRedisModel,),
                {"FIELDS": ["name"], "INDEXED_FIELDS": ["name"], "KEY_NAME": key_name,
                 "__module__": __name__})


NEIGHBOURS = {name: _neighbour_model(name) for name in NEIGHBOUR_NAMES}


def _dump(client: redis.Redis) -> dict[bytes, bytes | None]:
    return {key: client.dump(key) for key in client.scan_iter(count=1000)}


@pytest.mark.parametrize("how", ["destroyModel", "reset([])", "objects.delete"])
@pytest.mark.parametrize("victim", ["Item", "Ite*", "It?m", "[I]tem"])
def test_destroy_leaves_only_bookkeeping_and_never_touches_other_models(
        victim: str, how: str, redis_client: redis.Redis) -> None:
    for model in NEIGHBOURS.values():
        for i in range(3):
            model(name=f"{model.KEY_NAME}-{i}").save()
    redis_client.set(b"Item", b"not IndexedRedis")  # plain keys that glob-like names could hit
    redis_client.set(b"Item*", b"not IndexedRedis")
    target = NEIGHBOURS[victim]
    others = {name: model for name, model in NEIGHBOURS.items() if name != victim}
    before = {key: value for key, value in _dump(redis_client).items()
              if not key.startswith(prefix_of(target))}
    result = _destroy(target, how)
    if how != "reset([])":
        assert result == 3
    left = model_keys(redis_client, target)
    assert {key[len(prefix_of(target)):] for key in left} <= BOOKKEEPING
    assert target.objects.count() == 0
    after = {key: value for key, value in _dump(redis_client).items()
             if not key.startswith(prefix_of(target))}
    assert after == before
    for model in others.values():
        assert model.objects.count() == 3
        assert model.objects.filter(name=f"{model.KEY_NAME}-1").count() == 1
    target(name="again").save()  # the model still works afterwards
    assert [o.name for o in target.objects.all()] == ["again"]


# ---- query set: fetching -----------------------------------------------------------------------------


def test_all_and_allByAge_are_queryable_lists_oldest_first() -> None:
    objs = [person(f"p{i}", city="c") for i in range(12)]
    for obj in objs:
        obj.save()
    objs[3].notes = "updated later"
    objs[3].save()
    everything = Person.objects.all()
    assert isinstance(everything, IRQueryableList)
    assert [o._id for o in everything] == sorted(o._id for o in objs)
    by_age = Person.objects.filter(city="c").allByAge()
    assert isinstance(by_age, IRQueryableList)
    assert [o._id for o in by_age] == sorted(o._id for o in objs)
    assert Person.objects.filter(city="none").all() == []


def test_allOnlyFields_loads_only_those_and_saving_keeps_the_others(redis_client: redis.Redis) -> None:
    for i in range(3):
        person(f"p{i}", "Oslo", 20 + i, f"notes{i}").save()
    partial = Person.objects.filter(city="Oslo").allOnlyFields(["name", "age"])
    assert [(o.name, o.age) for o in partial] == [("p0", 20), ("p1", 21), ("p2", 22)]
    assert all(o.city == "" and o.notes == "" for o in partial)  # defaults, not loaded
    assert not any(o.hasUnsavedChanges() for o in partial)
    partial[1].age = 99
    partial[1].save()
    partial[2].save()  # nothing changed: nothing written
    records = stored(redis_client, Person)
    assert sorted(records.values(), key=lambda r: r["name"]) == [
        {"name": "p0", "city": "Oslo", "age": "20", "notes": "notes0"},
        {"name": "p1", "city": "Oslo", "age": "99", "notes": "notes1"},
        {"name": "p2", "city": "Oslo", "age": "22", "notes": "notes2"},
    ]
    assert Person.objects.filter(city="Oslo").count() == 3
    assert_layout_exact(redis_client, Person)


def test_allOnlyIndexedFields() -> None:
    person("Ann", "Oslo", 30, "secret").save()
    (obj,) = Person.objects.allOnlyIndexedFields()
    assert (obj.name, obj.city, obj.age, obj.notes) == ("Ann", "Oslo", irNull, "")


def test_first_last_random_respect_the_filter() -> None:
    objs = [person(f"p{i}", city="even" if i % 2 == 0 else "odd") for i in range(10)]
    for obj in objs:
        obj.save()
    evens = {o._id for o in objs if o.city == "even"}
    assert Person.objects.filter(city="even").first()._id == min(evens)  # type: ignore[union-attr]
    assert Person.objects.filter(city="even").last()._id == max(evens)  # type: ignore[union-attr]
    assert Person.objects.first()._id == objs[0]._id  # type: ignore[union-attr]
    assert Person.objects.last()._id == objs[-1]._id  # type: ignore[union-attr]
    picked = {Person.objects.filter(city="even").random()._id for _ in range(60)}  # type: ignore[union-attr]
    assert picked <= evens and len(picked) > 1
    picked_all = {Person.objects.random()._id for _ in range(60)}  # type: ignore[union-attr]
    assert picked_all <= {o._id for o in objs} and len(picked_all) > 1
    none = Person.objects.filter(city="none")
    assert none.first() is None and none.last() is None and none.random() is None


def test_get_only_fields_and_multiple() -> None:
    a = person("a", "Oslo", 1, "na")
    b = person("b", "Rome", 2, "nb")
    a.save()
    b.save()
    got = Person.objects.getOnlyFields(b._id, ["city"])
    assert got is not None and (got.city, got.name, got.age) == ("Rome", "", irNull)
    assert Person.objects.getOnlyFields(999, ["city"]) is None
    many = Person.objects.getMultipleOnlyFields([b._id, 999, a._id], ["name", "notes"])
    assert isinstance(many, IRQueryableList)
    assert many[1] is None
    assert [(o.name, o.notes, o.city) for o in (many[0], many[2])] == [("b", "nb", ""), ("a", "na", "")]


def test_getMultiple_returns_none_for_missing_pks_never_ghosts() -> None:
    a, b, c = person("a"), person("b"), person("c")
    for obj in (a, b, c):
        obj.save()
    gone = b._id
    b.delete()
    got = Person.objects.getMultiple([c._id, gone, 12345, a._id, c._id])
    assert isinstance(got, IRQueryableList)
    assert got[1] is None and got[2] is None
    assert [o.name for o in (got[0], got[3], got[4])] == ["c", "a", "c"]
    assert Person.objects.get(gone) is None
    assert Person.objects.getMultiple([gone]) == [None]
    assert Person.objects.getMultiple([]) == []


# ---- query set: reindex / compat_convertHashedIndexes ------------------------------------------------


class Shop(IndexedRedisModel):
    FIELDS = ["name", "city", "kind"]
    INDEXED_FIELDS = ["name"]
    KEY_NAME = "ApiShop"


class ShopMoreIndexed(IndexedRedisModel):
    FIELDS = ["name", "city", "kind"]
    INDEXED_FIELDS = ["name", "city"]
    KEY_NAME = "ApiShop"


def test_reindex_after_adding_an_indexed_field(redis_client: redis.Redis) -> None:
    for i in range(7):
        Shop(name=f"s{i}", city="Oslo" if i % 2 else "Rome", kind="k").save()
    assert_layout_exact(redis_client, Shop)
    ShopMoreIndexed.objects.reindex()
    assert len(ShopMoreIndexed.objects.filter(city="Oslo").all()) == 3
    assert ShopMoreIndexed.objects.filter(city="Rome", name="s2").count() == 1
    assert_layout_exact(redis_client, ShopMoreIndexed)  # no key of the old generation remains
    assert {o.name for o in Shop.objects.all()} == {f"s{i}" for i in range(7)}


def test_reindex_back_to_fewer_indexed_fields_drops_the_old_index(redis_client: redis.Redis) -> None:
    for i in range(4):
        ShopMoreIndexed(name=f"s{i}", city="Oslo").save()
    Shop.objects.reindex()
    assert not any(b":i:city:" in key for key in model_keys(redis_client, Shop))
    assert_layout_exact(redis_client, Shop)


# Regression: a filtered reindex (and saver.reindex) never added entries of a newly indexed field:
# save.lua skipped the SADD when the believed old index key equalled the new one.  The index is
# still not built for the other objects, so a query on it refuses (issue #10) until a full reindex.
def test_filtered_reindex_adds_the_new_index_entries(redis_client: redis.Redis) -> None:
    for i in range(4):
        Shop(name=f"s{i}", city="Oslo").save()
    ShopMoreIndexed.objects.filter(name="s1").reindex()
    gk = ShopMoreIndexed._meta.keys.generation(0)
    assert redis_client.smembers(gk.index("city", b"Oslo")) == {b"2"}
    with pytest.raises(IndexNotBuiltError, match="ShopMoreIndexed.city.*reindex"):
        ShopMoreIndexed.objects.filter(city="Oslo").getPrimaryKeys()
    ShopMoreIndexed.objects.reindex()
    assert ShopMoreIndexed.objects.filter(city="Oslo").getPrimaryKeys() == [1, 2, 3, 4]


class Hashable(IndexedRedisModel):
    FIELDS = [IRField("a"), IRField("b"), IRField("c")]
    INDEXED_FIELDS = ["a", "b", "c"]
    KEY_NAME = "ApiHashable"


class HashableHashed(IndexedRedisModel):
    FIELDS = [IRField("a", hashIndex=True), IRField("b", hashIndex=True), IRField("c")]
    INDEXED_FIELDS = ["a", "b", "c"]
    KEY_NAME = "ApiHashable"


def test_compat_convertHashedIndexes_both_ways(redis_client: redis.Redis) -> None:
    values = [("alpha", "beta", "gamma"), ("alpha", "delta", "gamma"), ("x" * 300, "beta", "c")]
    for a, b, c in values:
        Hashable(a=a, b=b, c=c).save()
    HashableHashed.objects.compat_convertHashedIndexes()
    assert HashableHashed.objects.filter(a="alpha").count() == 2
    assert HashableHashed.objects.filter(b="beta").count() == 2
    assert HashableHashed.objects.filter(a="x" * 300, b="beta").count() == 1
    assert HashableHashed.objects.filter(c="gamma").count() == 2
    assert_layout_exact(redis_client, HashableHashed, hashed=frozenset({"a", "b"}))
    keys = model_keys(redis_client, Hashable)
    assert not any(key.endswith((b":i:a:alpha", b":i:b:beta", b":i:b:delta")) for key in keys)
    Hashable.objects.compat_convertHashedIndexes()  # and back again
    assert Hashable.objects.filter(a="alpha", b="delta").count() == 1
    assert_layout_exact(redis_client, Hashable)
    assert not any(md5(b"alpha") in key or md5(b"beta") in key for key in model_keys(redis_client, Hashable))


class ClassicHashed(IndexedRedisModel):
    FIELDS = [IRClassicField("c", hashIndex=True), "plain"]
    INDEXED_FIELDS = ["c", "plain"]
    KEY_NAME = "ApiClassicHashed"


# Regression: IRClassicField(hashIndex=True) was indexed unhashed on save but looked up hashed by
# filters (ModelOptions.index_key's classic fast path ignored hashIndex).
def test_classic_field_with_hashIndex_is_filterable(redis_client: redis.Redis) -> None:
    pk = ClassicHashed(c="hello", plain="p").save()
    assert ClassicHashed.objects.filter(c="hello").getPrimaryKeys() == [pk]
    assert_layout_exact(redis_client, ClassicHashed, hashed=frozenset({"c"}))


# ---- IRQueryableList methods on real data ----------------------------------------------------------


def _people() -> list[Person]:
    objs = [Person(name=f"p{i}", city="Oslo" if i < 4 else "Rome", age=i) for i in range(6)]
    Person.saver.save(objs)
    return objs


def test_queryable_list_delete(redis_client: redis.Redis) -> None:
    _people()
    oslo = Person.objects.filter(city="Oslo").all()
    assert oslo.delete() == 4
    assert all(o.getPk() is None for o in oslo)
    assert Person.objects.count() == 2
    assert IRQueryableList([], Person).delete() == 0
    assert_layout_exact(redis_client, Person)


def test_queryable_list_save(redis_client: redis.Redis) -> None:
    _people()
    rome = Person.objects.filter(city="Rome").all()
    for obj in rome:
        obj.city = "Paris"
    pks = rome.save()
    assert pks == [o._id for o in rome]
    assert Person.objects.filter(city="Paris").getPrimaryKeys() == pks
    assert Person.objects.filter(city="Rome").count() == 0
    assert_layout_exact(redis_client, Person)


def test_queryable_list_reload() -> None:
    objs = _people()
    mine = Person.objects.filter(city="Oslo").all()
    theirs = Person.objects.get(objs[1]._id)
    assert theirs is not None
    theirs.age = 100
    theirs.save()
    objs[2].delete()
    results = mine.reload()
    assert results[0] == {}
    assert results[1] == {"age": (1, 100)}
    assert isinstance(results[2], KeyError)
    assert results[3] == {}
    assert mine[1].age == 100


def test_queryable_list_refetch() -> None:
    objs = _people()
    fetched = Person.objects.filter(city="Oslo").all()
    fetched[0].name = "local change"
    objs[3].delete()
    again = IRQueryableList([*fetched, person("never saved")], Person).refetch()
    assert isinstance(again, IRQueryableList)
    assert [o.name for o in again] == ["p0", "p1", "p2"]
    assert all(a is not b for a, b in zip(again, fetched, strict=False))


def test_queryable_list_client_side_filter_and_sort_by() -> None:
    _people()
    everything = Person.objects.all()
    older = everything.filter(age__gt=2)
    assert isinstance(older, IRQueryableList)
    assert [o.name for o in older] == ["p3", "p4", "p5"]
    assert [o.name for o in everything.filter(city="Oslo", age__lt=2)] == ["p0", "p1"]
    assert [o.age for o in everything.sort_by("age", reverse=True)] == [5, 4, 3, 2, 1, 0]
    assert [o.name for o in older.sort_by("name", reverse=True)] == ["p5", "p4", "p3"]
    sub = older.filter(city="Rome")
    assert sub.delete() == 2  # a client-filtered list still acts on Redis
    assert Person.objects.count() == 4


# ---- fetched plain records: the raw stored form and the paused collector ------------------


class Plain(IndexedRedisModel):
    FIELDS = ["name", "city", "notes"]
    INDEXED_FIELDS = ["city"]
    KEY_NAME = "ApiPlain"


@pytest.mark.parametrize("count", [8, 1500])  # below and above the size that pauses the GC
def test_fetched_plain_objects_know_their_stored_record(redis_client: redis.Redis, count: int) -> None:
    import gc

    Plain.reset([Plain(name=f"n{i}", city="Oslo" if i % 2 else "Rome", notes="") for i in range(count)])
    assert gc.isenabled()
    fetched = Plain.objects.filter(city="Oslo").all()
    assert gc.isenabled()  # resumed after the build
    records = stored(redis_client, Plain)
    assert len(fetched) == count // 2
    for obj in fetched[:5]:
        assert obj._orig == records[obj._id]  # a dict, equal to the stored record
        assert not obj.hasUnsavedChanges()
    # a pickled fetched object carries its stored record as a plain dict
    state = fetched[0].__getstate__()
    assert state["_orig"] == records[fetched[0]._id] and type(state["_orig"]) is dict
    loaded = pickle.loads(pickle.dumps(fetched[1]))
    assert not loaded.hasUnsavedChanges()
    # an edit of a fetched object writes just that field
    target = fetched[2]
    target.city = "Paris"
    assert target.getUpdatedFields() == {"city": ("Oslo", "Paris")}
    target.save()
    assert stored(redis_client, Plain)[target._id] == {**records[target._id], "city": "Paris"}
    assert_indexes_consistent(redis_client, Plain)


def test_a_big_fetch_leaves_a_disabled_collector_disabled() -> None:
    import gc

    Plain.reset([Plain(name=f"n{i}", city="Oslo", notes="") for i in range(1200)])
    gc.disable()
    try:
        assert len(Plain.objects.all()) == 1200
        assert not gc.isenabled()
    finally:
        gc.enable()
