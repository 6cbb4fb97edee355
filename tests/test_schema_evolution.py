"""Schema evolution: records written by another version of a model stay usable.

Records are msgpack arrays (the stored values in the writing model's FIELDS order,
then a schema tag); the model's schemas hash maps each tag to its field names.  Two
model classes with the same KEY_NAME and different FIELDS stand for two versions of
one model (an old process and a new one).  Each class has its own ``_meta``, hence its
own process-level schema cache; the autouse fixture below empties those caches before
every test, as if each test started fresh processes.

Everything runs against the fixture's private redis-server (see conftest.py).
"""

from __future__ import annotations

import itertools
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
    decode_record,
    model_keys,
    stored_records,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from monitor import CommandLog

from IndexedRedis import IndexedRedisError, IndexedRedisModel, IRField
from IndexedRedis.records import schema_tag

# ---- models: three versions of "evo:item", two of "evo:doc" --------------------------------


class ItemV1(IndexedRedisModel):
    FIELDS = ["name", "color", "size"]
    INDEXED_FIELDS = ["color", "size"]
    KEY_NAME = "evo:item"


class ItemV2(IndexedRedisModel):
    """Reordered, one field added (with a default that is not the classic '')."""

    FIELDS = ["size", "name", IRField("weight", valueType=int, defaultValue=7), "color"]
    INDEXED_FIELDS = ["color", "size"]
    KEY_NAME = "evo:item"


class ItemV3(IndexedRedisModel):
    """'size' (indexed in V1) dropped, 'extra' added: needs a reindex after V1 data."""

    FIELDS = ["color", "extra", "name"]
    INDEXED_FIELDS = ["color"]
    KEY_NAME = "evo:item"


class DocV1(IndexedRedisModel):
    FIELDS = ["title", "kind", "body"]
    INDEXED_FIELDS = ["kind"]
    LEX_INDEXED_FIELDS = ["title"]
    KEY_NAME = "evo:doc"


class DocV2(IndexedRedisModel):
    FIELDS = ["body", "kind", "author", "title"]
    INDEXED_FIELDS = ["kind"]
    LEX_INDEXED_FIELDS = ["title"]
    KEY_NAME = "evo:doc"


MODELS = (ItemV1, ItemV2, ItemV3, DocV1, DocV2)


def forget_schemas(*models: type[IndexedRedisModel]) -> None:
    """Make a model's schema cache what a fresh process has: its own tag only."""
    for model in models:
        model._meta.codec.schemas = {model._meta.schema_tag: model._meta.field_names}


@pytest.fixture(autouse=True)
def fresh_processes() -> None:
    forget_schemas(*MODELS)


def test_versions_share_keys_but_not_tags() -> None:
    assert ItemV1._meta.keys.prefix == ItemV2._meta.keys.prefix == ItemV3._meta.keys.prefix
    tags = {m._meta.schema_tag for m in (ItemV1, ItemV2, ItemV3)}
    assert len(tags) == 3
    assert ItemV1._meta.schema_tag == schema_tag(["name", "color", "size"])
    assert ItemV2._meta.schema_tag == schema_tag(["size", "name", "weight", "color"])


# ---- helpers -------------------------------------------------------------------------------


def raw_record(client: redis.Redis, model: type[IndexedRedisModel], pk: int) -> list[Any]:
    """The stored msgpack array of a pk in the live generation, undecoded."""
    gk = model._meta.keys.generation(current_generation(client, model))
    blob = client.hget(gk.objs, int(pk))  # save() returns an int subclass hiredis refuses
    assert blob is not None, f"pk {pk} has no record"
    return msgpack.unpackb(blob, raw=False)


def stored_tag(client: redis.Redis, model: type[IndexedRedisModel], pk: int) -> int:
    return raw_record(client, model, pk)[-1]


def index_members(client: redis.Redis, model: type[IndexedRedisModel], field: str, value: str) -> set[int]:
    gk = model._meta.keys.generation(current_generation(client, model))
    return {int(pk) for pk in client.smembers(gk.index(field, value.encode()))}


V1_VALUES = {"apple": ("red", "L"), "berry": ("blue", "S"), "cherry": ("red", "M")}


def seed_v1() -> list[int]:
    """Three items written by V1 through save()."""
    return [int(ItemV1(name=name, color=color, size=size).save())
            for name, (color, size) in V1_VALUES.items()]


def assert_v2_view(obj: ItemV2, name: str) -> None:
    color, size = V1_VALUES[name]
    assert type(obj) is ItemV2
    assert (obj.name, obj.color, obj.size, obj.weight) == (name, color, size, 7)


def schema_lookups(commands: list[list[str]], model: type[IndexedRedisModel]) -> list[list[str]]:
    """The commands that read the model's schemas hash."""
    key = model._meta.keys.schemas.decode()
    return [words for words in commands if key in words[1:2]]


# ---- 1. V2 reads what V1 wrote -------------------------------------------------------------


def test_v2_reads_v1_records_saved(redis_client: redis.Redis) -> None:
    a, b, c = seed_v1()
    assert {stored_tag(redis_client, ItemV1, pk) for pk in (a, b, c)} == {ItemV1._meta.schema_tag}

    everything = ItemV2.objects.all()
    assert [o._id for o in everything] == [a, b, c]
    for obj, name in zip(everything, ["apple", "berry", "cherry"]):
        assert_v2_view(obj, name)
        assert obj.asDict() == {"size": V1_VALUES[name][1], "name": name, "weight": 7,
                                "color": V1_VALUES[name][0]}
        # the added field holds its default, which counts as no change
        assert obj.getUpdatedFields() == {} and not obj.hasUnsavedChanges()

    assert_v2_view(ItemV2.objects.get(b), "berry")
    many = ItemV2.objects.getMultiple([c, 999, a])
    assert many[1] is None
    assert_v2_view(many[0], "cherry")
    assert_v2_view(many[2], "apple")

    reds = ItemV2.objects.filter(color="red").all()
    assert [o._id for o in reds] == [a, c]
    assert [o.name for o in reds] == ["apple", "cherry"]
    assert ItemV2.objects.filter(color="red", size="M").getPrimaryKeys() == [c]
    assert ItemV2.objects.filter(size__ne="S").count() == 2
    assert ItemV2.objects.filter(color="blue").first().name == "berry"
    assert ItemV2.objects.last().name == "cherry"

    partial = ItemV2.objects.getOnlyFields(a, ["name", "weight"])
    assert (partial.name, partial.weight, partial.color, partial.size) == ("apple", 7, "", "")
    partials = ItemV2.objects.filter(color="red").allOnlyFields(["size"])
    assert [(p._id, p.size, p.name, p.color) for p in partials] == [(a, "L", "", ""), (c, "M", "", "")]
    only_indexed = ItemV2.objects.getOnlyIndexedFields(b)
    assert (only_indexed.color, only_indexed.size, only_indexed.name) == ("blue", "S", "")

    # reading rewrote nothing: the records are still V1's
    assert {stored_tag(redis_client, ItemV1, pk) for pk in (a, b, c)} == {ItemV1._meta.schema_tag}


def test_v2_reads_v1_records_written_by_reset(redis_client: redis.Redis) -> None:
    pks = ItemV1.reset([ItemV1(name=n, color=c, size=s) for n, (c, s) in V1_VALUES.items()])
    assert {stored_tag(redis_client, ItemV1, pk) for pk in pks} == {ItemV1._meta.schema_tag}
    got = ItemV2.objects.all()
    assert [o._id for o in got] == pks
    for obj, name in zip(got, V1_VALUES):
        assert_v2_view(obj, name)
    assert ItemV2.objects.filter(color="red").getPrimaryKeys() == [pks[0], pks[2]]
    assert [o.name for o in ItemV2.objects.filter(size__in=["S", "M"]).all()] == ["berry", "cherry"]


def test_a_dropped_field_is_simply_not_there() -> None:
    a, b, _ = seed_v1()
    obj = ItemV3.objects.get(a)
    assert obj.asDict() == {"color": "red", "extra": "", "name": "apple"}
    assert "size" not in obj.__dict__
    with pytest.raises(AttributeError):
        obj.size  # noqa: B018
    assert [o.name for o in ItemV3.objects.filter(color="blue").all()] == ["berry"]
    assert ItemV3.objects.getMultiple([b])[0].asDict() == {"color": "blue", "extra": "", "name": "berry"}


# ---- 2. learning a foreign tag costs one HMGET, once ----------------------------------------


def test_learning_a_foreign_tag_is_one_hmget_once(log: CommandLog) -> None:
    a, b, c = seed_v1()
    ItemV2.objects.count()  # loads the query script: no record, no lookup
    v1_tag, v2_tag = ItemV1._meta.schema_tag, ItemV2._meta.schema_tag
    assert ItemV2._meta.schemas == {v2_tag: ItemV2._meta.field_names}

    first = log.words(ItemV2.objects.all)
    lookups = schema_lookups(first, ItemV2)
    assert len(lookups) == 1, first
    assert lookups[0][0].upper() == "HMGET" and lookups[0][2:] == [str(v1_tag)]
    assert ItemV2._meta.schemas == {v2_tag: ItemV2._meta.field_names, v1_tag: ("name", "color", "size")}

    # learned for good: no further lookup, whichever way records are read
    for action in (ItemV2.objects.all, lambda: ItemV2.objects.get(a),
                   lambda: ItemV2.objects.getMultiple([a, b, c]),
                   lambda: ItemV2.objects.filter(color="red").all(),
                   lambda: ItemV2.objects.getOnlyFields(b, ["name"])):
        commands = log.words(action)
        assert schema_lookups(commands, ItemV2) == [], commands


def test_two_foreign_tags_are_learned_in_one_hmget(log: CommandLog) -> None:
    a, b, _ = seed_v1()
    c = ItemV3(color="red", extra="x", name="v3").save()
    ItemV2.objects.count()
    commands = log.words(ItemV2.objects.all)
    lookups = schema_lookups(commands, ItemV2)
    assert len(lookups) == 1, commands
    assert sorted(lookups[0][2:]) == sorted([str(ItemV1._meta.schema_tag), str(ItemV3._meta.schema_tag)])
    got = {o._id: o for o in ItemV2.objects.all()}
    assert (got[c].name, got[c].color, got[c].size, got[c].weight) == ("v3", "red", "", 7)
    assert got[a].size == "L" and got[b].name == "berry"


# ---- 3. V2 edits a V1 record ----------------------------------------------------------------


def test_v2_edit_of_v1_record_rewrites_it_in_v2_layout(redis_client: redis.Redis) -> None:
    a, b, c = seed_v1()
    assert index_members(redis_client, ItemV2, "color", "red") == {a, c}

    obj = ItemV2.objects.get(a)
    obj.color = "green"
    assert obj.save() == a

    raw = raw_record(redis_client, ItemV2, a)
    assert raw[-1] == ItemV2._meta.schema_tag
    record = decode_record(redis_client, ItemV2, msgpack.packb(raw))
    assert list(record) == ["size", "name", "weight", "color"]
    assert record == {"size": "L", "name": "apple", "weight": "7", "color": "green"}
    assert_indexes_consistent(redis_client, ItemV2)
    assert index_members(redis_client, ItemV2, "color", "red") == {c}
    assert index_members(redis_client, ItemV2, "color", "green") == {a}
    assert index_members(redis_client, ItemV2, "size", "L") == {a}
    assert ItemV2.objects.filter(color="red").getPrimaryKeys() == [c]
    assert ItemV2.objects.filter(color="green", size="L").getPrimaryKeys() == [a]
    assert obj._orig == record and not obj.hasUnsavedChanges()

    # the others were not touched
    assert stored_tag(redis_client, ItemV1, b) == ItemV1._meta.schema_tag
    assert stored_tag(redis_client, ItemV1, c) == ItemV1._meta.schema_tag

    # a change to a plain field only (no index group sent) is rewritten whole too
    berry = ItemV2.objects.get(b)
    berry.name = "blueberry"
    berry.weight = 3
    berry.save()
    assert stored_records(redis_client, ItemV2)[b] == {"size": "S", "name": "blueberry", "weight": "3",
                                                      "color": "blue"}
    assert stored_tag(redis_client, ItemV2, b) == ItemV2._meta.schema_tag
    assert_indexes_consistent(redis_client, ItemV2)

    # and V1 still reads them all (it learns V2's tag)
    assert [(o.name, o.color, o.size) for o in ItemV1.objects.all()] == [
        ("apple", "green", "L"), ("blueberry", "blue", "S"), ("cherry", "red", "M")]

    # a V2-layout record now takes V2's ordinary partial path
    obj.size = "XL"
    obj.save()
    assert stored_records(redis_client, ItemV2)[a] == {"size": "XL", "name": "apple", "weight": "7",
                                                      "color": "green"}
    assert_indexes_consistent(redis_client, ItemV2)


def test_v2_saving_an_unchanged_v1_object_stores_the_added_default(redis_client: redis.Redis) -> None:
    a, _, _ = seed_v1()
    obj = ItemV2.objects.get(a)
    # 'weight' holds its default: no change is reported, yet save() writes the record
    # (it is not in the stored one), migrating it to V2's layout
    assert obj.getUpdatedFields() == {} and not obj.hasUnsavedChanges()
    assert obj.save() == a
    assert stored_records(redis_client, ItemV2)[a] == {"size": "L", "name": "apple", "weight": "7",
                                                      "color": "red"}
    assert stored_tag(redis_client, ItemV2, a) == ItemV2._meta.schema_tag
    assert_indexes_consistent(redis_client, ItemV2)


def test_v2_partial_fetch_edit_of_v1_record_keeps_the_unloaded_fields(redis_client: redis.Redis) -> None:
    a, _, c = seed_v1()
    partial = ItemV2.objects.getOnlyFields(a, ["color"])
    assert (partial.name, partial.size) == ("", "")
    partial.color = "green"
    partial.save()
    # resent whole in V2's layout, with the stored values of the fields not loaded (and
    # the in-memory default of 'weight', which the V1 record does not have)
    assert stored_tag(redis_client, ItemV2, a) == ItemV2._meta.schema_tag
    assert stored_records(redis_client, ItemV2)[a] == {"size": "L", "name": "apple", "weight": "7",
                                                      "color": "green"}
    assert_indexes_consistent(redis_client, ItemV2)
    assert index_members(redis_client, ItemV2, "color", "red") == {c}
    assert ItemV2.objects.get(a).asDict() == {"size": "L", "name": "apple", "weight": 7, "color": "green"}


def test_same_schema_partial_fetch_edit_keeps_the_unloaded_fields(redis_client: redis.Redis) -> None:
    """The same-schema behaviour the foreign-schema path must match: a partial edit
    writes only the changed field, and the object then has no unsaved changes, so a
    second edit leaves the fields it never loaded alone too."""
    a, _, _ = seed_v1()
    partial = ItemV1.objects.getOnlyFields(a, ["color"])
    partial.color = "green"
    partial.save()
    assert stored_records(redis_client, ItemV1)[a] == {"name": "apple", "color": "green", "size": "L"}
    assert not partial.hasUnsavedChanges()
    partial.color = "black"
    partial.save()
    assert stored_records(redis_client, ItemV1)[a] == {"name": "apple", "color": "black", "size": "L"}
    assert_indexes_consistent(redis_client, ItemV1)


def test_second_save_of_a_partial_v2_object_keeps_the_unloaded_fields(redis_client: redis.Redis) -> None:
    """After the merged resend the object believes its own values stored (as after a
    partial update), so it has no phantom changes and a second save does not write
    the defaults of the fields it never loaded."""
    a, _, _ = seed_v1()
    partial = ItemV2.objects.getOnlyFields(a, ["color"])
    partial.color = "green"
    partial.save()
    assert stored_records(redis_client, ItemV2)[a]["name"] == "apple"
    assert not partial.hasUnsavedChanges()
    partial.weight = 9                       # the record is in V2's layout now: a plain partial save
    partial.save()
    assert stored_records(redis_client, ItemV2)[a] == {"size": "L", "name": "apple", "weight": "9",
                                                      "color": "green"}
    assert not partial.hasUnsavedChanges()


# ---- 4. the race: V1 rewrites a record between V2's fetch and V2's save ----------------------


def race(redis_client: redis.Redis) -> tuple[int, int, ItemV2]:
    """A V2 object fetched while its record was in V2's layout; then an old process (V1)
    rewrites the record, changing name and size (and dropping 'weight', which it does
    not know)."""
    pk = int(ItemV2(name="apple", color="red", size="L", weight=5).save())
    other = int(ItemV2(name="plum", color="red", size="S").save())
    assert stored_tag(redis_client, ItemV2, pk) == ItemV2._meta.schema_tag

    held = ItemV2.objects.get(pk)
    assert held.weight == 5

    old = ItemV1.objects.get(pk)
    old.name = "apple (v1)"
    old.size = "M"
    old.save()
    assert stored_tag(redis_client, ItemV1, pk) == ItemV1._meta.schema_tag
    assert stored_records(redis_client, ItemV1)[pk] == {"name": "apple (v1)", "color": "red", "size": "M"}
    assert_indexes_consistent(redis_client, ItemV1)
    return pk, other, held


def test_v2_save_after_v1_rewrote_the_record_is_resent_whole(redis_client: redis.Redis) -> None:
    pk, other, held = race(redis_client)

    held.color = "green"            # partial save: refused (foreign tag), resent whole in V2's layout
    assert held.save() == pk

    assert stored_tag(redis_client, ItemV2, pk) == ItemV2._meta.schema_tag
    # V2's change is applied; the fields V2 did not change keep the stored values (V1's
    # concurrent name/size change survives, as it would with a same-schema writer); the
    # field the V1 record lacks ('weight') gets the value V2 holds.
    assert stored_records(redis_client, ItemV2)[pk] == {"size": "M", "name": "apple (v1)", "weight": "5",
                                                       "color": "green"}
    assert_indexes_consistent(redis_client, ItemV2)
    assert index_members(redis_client, ItemV2, "size", "L") == set()
    assert index_members(redis_client, ItemV2, "size", "M") == {pk}
    assert index_members(redis_client, ItemV2, "color", "red") == {other}
    assert index_members(redis_client, ItemV2, "color", "green") == {pk}
    assert ItemV2.objects.filter(size="M", color="green").getPrimaryKeys() == [pk]
    assert ItemV2.objects.get(pk).asDict() == {"size": "M", "name": "apple (v1)", "weight": 5,
                                               "color": "green"}
    assert stored_records(redis_client, ItemV2)[other] == {"size": "S", "name": "plum", "weight": "7",
                                                          "color": "red"}


def test_v2_save_after_v1_rewrote_a_plain_field_only(redis_client: redis.Redis) -> None:
    """The refusal comes from the tag alone, not from a wrong index belief: V2 changes
    a plain field only (no index group is sent)."""
    pk, _, held = race(redis_client)
    held.weight = 9
    held.save()
    assert stored_tag(redis_client, ItemV2, pk) == ItemV2._meta.schema_tag
    assert stored_records(redis_client, ItemV2)[pk] == {"size": "M", "name": "apple (v1)", "weight": "9",
                                                       "color": "red"}
    assert_indexes_consistent(redis_client, ItemV2)


def test_same_schema_race_keeps_the_other_writers_fields(redis_client: redis.Redis) -> None:
    """The same race between two V2 writers, for comparison: identical outcome."""
    pk = int(ItemV2(name="apple", color="red", size="L", weight=5).save())
    held = ItemV2.objects.get(pk)
    rival = ItemV2.objects.get(pk)
    rival.name, rival.size = "apple (rival)", "M"
    rival.save()
    held.color = "green"
    held.save()
    assert stored_records(redis_client, ItemV2)[pk] == {"size": "M", "name": "apple (rival)", "weight": "5",
                                                       "color": "green"}
    assert_indexes_consistent(redis_client, ItemV2)
    assert not held.hasUnsavedChanges()


def test_v2_object_after_the_race_save_has_no_phantom_changes(redis_client: redis.Redis) -> None:
    """As after a same-schema race: the object reports no unsaved change it never made,
    and its next save does not revert the other writer's change."""
    pk, _, held = race(redis_client)
    held.color = "green"
    held.save()
    assert not held.hasUnsavedChanges()
    held.weight = 1
    held.save()
    assert stored_records(redis_client, ItemV2)[pk] == {"size": "M", "name": "apple (v1)", "weight": "1",
                                                       "color": "green"}


# ---- 5. V2 deletes V1 records ---------------------------------------------------------------


def test_v2_deletes_v1_records(redis_client: redis.Redis) -> None:
    a, b, c = seed_v1()
    d = ItemV1(name="date", color="brown", size="S").save()

    obj = ItemV2.objects.get(a)
    assert obj.delete() is True
    assert ItemV2.objects.get(a) is None
    assert a not in index_members(redis_client, ItemV2, "color", "red")
    assert a not in index_members(redis_client, ItemV2, "size", "L")
    assert index_members(redis_client, ItemV2, "color", "red") == {c}
    assert_indexes_consistent(redis_client, ItemV2)

    # by pk alone (no belief about the record: the server's answer teaches it)
    assert ItemV2.deleter.deleteByPk(b) == 1
    assert index_members(redis_client, ItemV2, "color", "blue") == set()
    assert index_members(redis_client, ItemV2, "size", "S") == {d}
    assert_indexes_consistent(redis_client, ItemV2)

    # through a filtered query set
    assert ItemV2.objects.filter(color="red").delete() == 1
    assert index_members(redis_client, ItemV2, "size", "M") == set()
    assert ItemV2.objects.getPrimaryKeys() == [d]
    assert_indexes_consistent(redis_client, ItemV2)
    assert ItemV1.objects.get(d).name == "date"

    # a partial V2 object of a V1 record deletes its index entries all the same
    partial = ItemV2.objects.getOnlyFields(d, ["name"])
    assert partial.delete() is True
    assert ItemV2.objects.count() == 0
    assert_indexes_consistent(redis_client, ItemV2)
    gk = ItemV2._meta.keys.generation(current_generation(redis_client, ItemV2))
    assert not [k for k in model_keys(redis_client, ItemV2) if k.startswith(gk.prefix + b"i:")]


# ---- 6. server-side text checks against V1 records -------------------------------------------


def seed_docs() -> dict[int, tuple[str, str]]:
    """30 docs by DocV1: titles a*/b*; only 4 have kind 'rare', so an equality on kind
    drives and the title condition is checked against the stored text."""
    docs = {}
    for i in range(30):
        title = f"{'ab' if i % 2 else 'ba'}-{i:02d}"
        kind = "rare" if i % 7 == 3 else "common"
        docs[DocV1(title=title, kind=kind, body=f"body {i}").save()] = (title, kind)
    return docs


def test_lex_conditions_checked_against_v1_stored_text(redis_client: redis.Redis) -> None:
    docs = seed_docs()
    rare = sorted(pk for pk, (_, kind) in docs.items() if kind == "rare")
    assert len(rare) == 4
    # the lex condition alone matches more objects than the equality: it cannot drive
    assert DocV2.objects.filter(title__startswith="ab").count() == 15 > len(rare)

    def expect(pred: Callable[[str], bool]) -> list[int]:
        return sorted(pk for pk in rare if pred(docs[pk][0]))

    got = DocV2.objects.filter(kind="rare", title__startswith="ab").all()
    assert [o._id for o in got] == expect(lambda t: t.startswith("ab")) != []
    assert all(o.title.startswith("ab") and o.author == "" and o.body.startswith("body") for o in got)
    assert DocV2.objects.filter(kind="rare", title__startswith="ba").getPrimaryKeys() == \
        expect(lambda t: t.startswith("ba")) != []
    assert DocV2.objects.filter(kind="rare", title__gt="ab-10").getPrimaryKeys() == \
        expect(lambda t: t > "ab-10")
    assert DocV2.objects.filter(kind="rare", title__lte="ab-19").getPrimaryKeys() == \
        expect(lambda t: t <= "ab-19")
    assert DocV2.objects.filter(kind="rare", title__range=("ab-05", "ba-20")).count() == \
        len(expect(lambda t: "ab-05" <= t <= "ba-20"))
    # ordering by the stored text of the driven members
    ordered = DocV2.objects.filter(kind="rare").orderBy("-title").all()
    assert [o.title for o in ordered] == sorted((docs[pk][0] for pk in rare), reverse=True)

    # a mix of layouts: V2 rewrites one of the rare docs; answers stay the same
    moved = DocV2.objects.get(rare[0])
    moved.body = "rewritten by v2"
    moved.save()
    assert stored_tag(redis_client, DocV2, rare[0]) == DocV2._meta.schema_tag
    assert DocV2.objects.filter(kind="rare", title__startswith="ab").getPrimaryKeys() == \
        expect(lambda t: t.startswith("ab"))
    assert DocV1.objects.filter(kind="rare", title__startswith="ba").getPrimaryKeys() == \
        expect(lambda t: t.startswith("ba"))
    assert_indexes_consistent(redis_client, DocV2)


# ---- 7. reset and reindex over V1 data -------------------------------------------------------


def test_v2_reset_after_v1_data_leaves_no_garbage(redis_client: redis.Redis) -> None:
    a, b, c = seed_v1()
    kept = ItemV2.objects.getMultiple([a, c])
    kept[0].color = "yellow"
    fresh = ItemV2(name="fig", color="purple", size="S", weight=2)
    pks = ItemV2.reset([kept[0], fresh, kept[1]])
    assert pks[0] == a and pks[2] == c and pks[1] not in (a, b, c)

    assert_no_garbage(redis_client, ItemV2)
    records = assert_indexes_consistent(redis_client, ItemV2)
    assert records == {
        a: {"size": "L", "name": "apple", "weight": "7", "color": "yellow"},
        pks[1]: {"size": "S", "name": "fig", "weight": "2", "color": "purple"},
        c: {"size": "M", "name": "cherry", "weight": "7", "color": "red"},
    }
    assert {stored_tag(redis_client, ItemV2, pk) for pk in pks} == {ItemV2._meta.schema_tag}
    assert not [k for k in model_keys(redis_client, ItemV2) if b":i:color:blue" in k]
    assert ItemV2.objects.filter(color="red").getPrimaryKeys() == [c]

    assert ItemV2.reset([]) == []
    assert_no_garbage(redis_client, ItemV2)
    assert model_keys(redis_client, ItemV2) <= {ItemV2._meta.keys.gen, ItemV2._meta.keys.genseq,
                                                ItemV2._meta.keys.nextpk, ItemV2._meta.keys.schemas,
                                                ItemV2._meta.keys.lastreset}


def test_v2_reindex_rewrites_v1_records(redis_client: redis.Redis) -> None:
    pks = ItemV1.reset([ItemV1(name=n, color=c, size=s) for n, (c, s) in V1_VALUES.items()])
    late = ItemV1(name="date", color="brown", size="S").save()
    assert ItemV2.objects.reindex() == 4
    assert_no_garbage(redis_client, ItemV2)
    records = assert_indexes_consistent(redis_client, ItemV2)
    assert set(records) == {*pks, late}
    assert {stored_tag(redis_client, ItemV2, pk) for pk in records} == {ItemV2._meta.schema_tag}
    assert records[late] == {"size": "S", "name": "date", "weight": "7", "color": "brown"}
    assert ItemV2.objects.filter(size="S").getPrimaryKeys() == [pks[1], late]


def test_v2_filtered_reindex_rewrites_matching_v1_records_in_place(redis_client: redis.Redis) -> None:
    a, b, c = seed_v1()
    assert ItemV2.objects.filter(color="red").reindex() == 2
    assert stored_tag(redis_client, ItemV2, a) == ItemV2._meta.schema_tag
    assert stored_tag(redis_client, ItemV2, c) == ItemV2._meta.schema_tag
    assert stored_tag(redis_client, ItemV1, b) == ItemV1._meta.schema_tag
    records = assert_indexes_consistent(redis_client, ItemV2)
    assert records[c] == {"size": "M", "name": "cherry", "weight": "7", "color": "red"}
    assert_no_garbage(redis_client, ItemV2)


def test_reindex_after_an_indexed_field_was_dropped(redis_client: redis.Redis) -> None:
    a, b, c = seed_v1()
    gk = ItemV3._meta.keys.generation(current_generation(redis_client, ItemV3))
    assert redis_client.exists(gk.index("size", b"L"))
    assert ItemV3.objects.reindex() == 3
    assert_no_garbage(redis_client, ItemV3)
    records = assert_indexes_consistent(redis_client, ItemV3)   # no 'size' index left at all
    assert records == {a: {"color": "red", "extra": "", "name": "apple"},
                       b: {"color": "blue", "extra": "", "name": "berry"},
                       c: {"color": "red", "extra": "", "name": "cherry"}}
    assert not [k for k in model_keys(redis_client, ItemV3) if b":i:size:" in k]


# ---- 8. the old process reads the new records ------------------------------------------------


def test_v1_reads_v2_records(redis_client: redis.Redis, log: CommandLog) -> None:
    a = ItemV2(name="apple", color="red", size="L", weight=3).save()
    b = ItemV2(name="berry", color="blue", size="S").save()
    assert stored_tag(redis_client, ItemV2, a) == ItemV2._meta.schema_tag
    ItemV1.objects.count()

    commands = log.words(lambda: ItemV1.objects.get(a))
    assert len(schema_lookups(commands, ItemV1)) == 1
    assert ItemV2._meta.schema_tag in ItemV1._meta.schemas

    got = ItemV1.objects.all()
    assert [o.asDict() for o in got] == [{"name": "apple", "color": "red", "size": "L"},
                                         {"name": "berry", "color": "blue", "size": "S"}]
    assert "weight" not in got[0].__dict__
    assert ItemV1.objects.filter(color="blue").first().name == "berry"
    assert ItemV1.objects.getMultiple([b, a])[1].size == "L"
    assert ItemV1.objects.getOnlyFields(a, ["size"]).size == "L"

    # an old process rewriting a new record writes its own layout: 'weight' is lost,
    # and V2 reads its default again
    old = ItemV1.objects.get(a)
    old.size = "XL"
    old.save()
    assert stored_records(redis_client, ItemV1)[a] == {"name": "apple", "color": "red", "size": "XL"}
    assert_indexes_consistent(redis_client, ItemV1)
    assert ItemV2.objects.get(a).asDict() == {"size": "XL", "name": "apple", "weight": 7, "color": "red"}


# ---- 9. a tag the schemas hash does not hold -------------------------------------------------


BOGUS_TAG = 123456789


def test_record_with_unknown_tag_raises_and_changes_nothing(redis_client: redis.Redis) -> None:
    a, b, _ = seed_v1()
    gk = ItemV2._meta.keys.generation(current_generation(redis_client, ItemV2))
    assert redis_client.hexists(gk.objs, b)
    assert not redis_client.hexists(ItemV2._meta.keys.schemas, str(BOGUS_TAG))
    redis_client.hset(gk.objs, b, msgpack.packb(["berry", "blue", "S", BOGUS_TAG]))
    before = db_snapshot(redis_client)

    for model in (ItemV2, ItemV1):
        for fetch in (lambda m: m.objects.get(b), lambda m: m.objects.all(),
                      lambda m: m.objects.filter(color="blue").all(),
                      lambda m: m.objects.getMultiple([a, b]),
                      lambda m: m.objects.getOnlyFields(b, ["name"])):
            with pytest.raises(IndexedRedisError) as info:
                fetch(model)
            message = str(info.value)
            assert model.__name__ in message
            assert f"schema tag {BOGUS_TAG}" in message
            assert "does not hold" in message and "schemas hash" in message
        assert BOGUS_TAG not in model._meta.schemas

    assert db_snapshot(redis_client) == before
    # the other records are still readable
    assert ItemV2.objects.get(a).name == "apple"


def test_deleted_schemas_entry_raises_until_the_writer_registers_again(redis_client: redis.Redis) -> None:
    a, _, _ = seed_v1()
    v1_tag = ItemV1._meta.schema_tag
    assert redis_client.hdel(ItemV1._meta.keys.schemas, str(v1_tag)) == 1
    before = db_snapshot(redis_client)

    with pytest.raises(IndexedRedisError, match=rf"ItemV2: stored records carry schema tag {v1_tag}\b"):
        ItemV2.objects.get(a)
    with pytest.raises(IndexedRedisError, match="ItemV2"):
        ItemV2.objects.filter(color="red").all()
    assert db_snapshot(redis_client) == before
    assert v1_tag not in ItemV2._meta.schemas
    # V1 reads its own records without the hash
    assert ItemV1.objects.get(a).name == "apple"

    # any V1 write registers its field list again; then V2 reads them
    ItemV1(name="elder", color="black", size="S").save()
    assert ItemV2.objects.get(a).asDict() == {"size": "L", "name": "apple", "weight": 7, "color": "red"}


def index_sets_holding(client: redis.Redis, model: type[IndexedRedisModel], pk: int) -> list[bytes]:
    gk = model._meta.keys.generation(current_generation(client, model))
    return sorted(key for key in model_keys(client, model)
                  if key.startswith(gk.prefix + b"i:") and client.sismember(key, pk))


@pytest.mark.parametrize("write", ["deleteByPk", "save_whole"])
def test_writes_over_a_record_with_unknown_tag_are_refused_whole(
        redis_client: redis.Redis, write: str) -> None:
    """A write over a record it cannot read (its tag is not in the schemas hash) must
    not guess: the script fails before writing, the client raises a clear error, and
    Redis is exactly as before (no stale index entry, no half write)."""
    a, _, _ = seed_v1()
    v1_tag = ItemV1._meta.schema_tag
    assert redis_client.hdel(ItemV1._meta.keys.schemas, str(v1_tag)) == 1
    before = db_snapshot(redis_client)
    with pytest.raises(IndexedRedisError, match=rf"ItemV2: a stored record carries schema tag {v1_tag}\b"):
        if write == "deleteByPk":
            ItemV2.deleter.deleteByPk(a)
        else:
            ItemV2(_id=a, name="new", color="blue", size="S").save()
    assert db_snapshot(redis_client) == before
    assert sorted(key.split(b":i:", 1)[1] for key in index_sets_holding(redis_client, ItemV2, a)) == [
        b"color:red", b"size:L"]


# ---- 10. property: any two field lists -------------------------------------------------------

POOL = ["color", "alpha", "beta", "gamma", "delta"]
_prop_counter = itertools.count()


@st.composite
def field_list(draw: Any) -> list[str]:
    others = draw(st.lists(st.sampled_from(POOL[1:]), unique=True, max_size=len(POOL) - 1))
    position = draw(st.integers(min_value=0, max_value=len(others)))
    return others[:position] + ["color"] + others[position:]


def make_model(name: str, fields: list[str], key_name: str) -> type[IndexedRedisModel]:
    return type(name, (IndexedRedisModel,), {
        "FIELDS": [IRField(f, valueType=str, defaultValue=f"<default {f}>") for f in fields],
        "INDEXED_FIELDS": ["color"],
        "KEY_NAME": key_name,
        "__module__": __name__,
    })


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(v1_fields=field_list(), v2_fields=field_list(),
       rows=st.lists(st.dictionaries(st.sampled_from(POOL), st.text(max_size=8)), min_size=1, max_size=4),
       by_reset=st.booleans())
def test_any_v1_layout_reads_back_through_any_v2_layout(
        redis_client: redis.Redis, v1_fields: list[str], v2_fields: list[str],
        rows: list[dict[str, str]], by_reset: bool) -> None:
    key_name = f"evo:prop:{next(_prop_counter)}"
    old = make_model("PropV1", v1_fields, key_name)
    new = make_model("PropV2", v2_fields, key_name)

    objs = [old(**{f: v for f, v in row.items() if f in v1_fields}) for row in rows]
    if by_reset:
        pks = old.reset(objs)
    else:
        pks = [int(obj.save()) for obj in objs]
    written = {pk: {f: obj.__dict__[f] for f in v1_fields} for pk, obj in zip(pks, objs)}

    def expected(pk: int) -> dict[str, str]:
        return {f: written[pk][f] if f in v1_fields else f"<default {f}>" for f in v2_fields}

    got = new.objects.all()
    assert [o._id for o in got] == pks
    for obj in got:
        assert obj.asDict() == expected(obj._id)
    first = rows[0].get("color", "<default color>")
    assert new.objects.filter(color=first).getPrimaryKeys() == [
        pk for pk in pks if written[pk]["color"] == first]

    # V2 rewrites the first; both versions read it back right
    target = got[0]
    target.color = target.color + "!"
    target.save()
    assert stored_records(redis_client, new)[pks[0]] == {
        f: (target.color if f == "color" else expected(pks[0])[f]) for f in v2_fields}
    assert_indexes_consistent(redis_client, new)
    back = old.objects.get(pks[0])
    assert back.asDict() == {f: target.color if f == "color" else
                             (expected(pks[0])[f] if f in v2_fields else f"<default {f}>")
                             for f in v1_fields}
