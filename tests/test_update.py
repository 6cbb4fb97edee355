"""``QuerySet.update`` with constants and ``F`` expressions: values, every index kind,
unique fields, errors that write nothing, one script call per batch, concurrent
writers between the read and the write, records of another schema, the client-side
cache, asyncio."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
import redis
from _versions import model_versions
from consistency import assert_indexes_consistent, db_snapshot

import IndexedRedis
from IndexedRedis import (
    F,
    FieldValueError,
    IndexedRedisModel,
    InvalidQueryError,
    IRField,
    IRFixedPointField,
    IRForeignLinkField,
    UniqueConstraintError,
    UnknownFieldError,
    irNull,
    scripts,
)
from IndexedRedis.flows import update as update_module


class Item(IndexedRedisModel):
    FIELDS = ["kind", "label", IRField("n", valueType=int), IRField("ratio", valueType=float),
              IRFixedPointField("price", decimalPlaces=2), IRField("hits", valueType=int), "note"]
    INDEXED_FIELDS = ["kind", "label", "n", "ratio", "price"]
    LEX_INDEXED_FIELDS = ["label"]
    KEY_NAME = "Update:Item"


class Badge(IndexedRedisModel):
    FIELDS = ["owner", IRField("number", valueType=int), IRField("code", valueType=str)]
    INDEXED_FIELDS = ["owner"]
    UNIQUE_FIELDS = ["number", "code"]
    KEY_NAME = "Update:Badge"


def items() -> list[int]:
    return [int(pk) for pk in Item.saver.save([
        Item(kind="a", label="x1", n=1, ratio=0.5, price=1.25, hits=0, note="one"),
        Item(kind="b", label="x2", n=2, ratio=1.5, price=2.5, hits=10),
        Item(kind="a", label="x3", n=3, ratio=irNull, price=irNull, hits=irNull),
        Item(kind="b", label="x4", n=4, ratio=-2.0, price=0.1, hits=7),
    ])]


def consistent(client: redis.Redis, model: Any = Item) -> dict[int, dict[str, Any]]:
    report = model.objects.check()
    assert report.ok, report.to_dict()
    return assert_indexes_consistent(client, model)


def values(field: str, model: Any = Item) -> dict[int, Any]:
    return {obj._id: getattr(obj, field) for obj in model.objects.all()}


def test_constants_move_every_kind_of_index(redis_client: redis.Redis) -> None:
    a1, b2, a3, b4 = items()
    assert Item.objects.filter(kind="a").update(kind="c", label="y", n=40, ratio=irNull, price=9.99, note="z") == 2
    assert Item.objects.filter(kind="c").getPrimaryKeys() == [a1, a3]
    assert Item.objects.filter(kind="a").count() == 0
    assert Item.objects.filter(label__startswith="y").getPrimaryKeys() == [a1, a3]  # the lex zset
    assert Item.objects.filter(n=40).getPrimaryKeys() == [a1, a3]
    assert Item.objects.filter(n__gte=10).getPrimaryKeys() == [a1, a3]  # the score zset
    assert Item.objects.filter(ratio=irNull).getPrimaryKeys() == [a1, a3]  # the irNull set
    assert Item.objects.filter(ratio__lt=0).getPrimaryKeys() == [b4]  # dropped from the zset
    assert Item.objects.filter(price=9.99).getPrimaryKeys() == [a1, a3]
    assert values("note") == {a1: "z", b2: "", a3: "z", b4: ""}
    assert Item.objects.orderBy("n").getPrimaryKeys() == [b2, b4, a1, a3]
    consistent(redis_client)


def test_f_expressions(redis_client: redis.Redis) -> None:
    a1, b2, a3, b4 = items()
    assert Item.objects.update(n=F("n") * 10 + 1, ratio=F("ratio") / 2, price=F("price") - 0.25,
                               hits=F("hits") + F("n")) == 4
    assert values("n") == {a1: 11, b2: 21, a3: 31, b4: 41}
    assert values("ratio") == {a1: 0.25, b2: 0.75, a3: irNull, b4: -1.0}  # irNull stays irNull
    assert values("price") == {a1: 1.0, b2: 2.25, a3: irNull, b4: -0.15}
    assert values("hits") == {a1: 1, b2: 12, a3: irNull, b4: 11}  # read before the update: the old n
    assert Item.objects.filter(n__range=(20, 40)).getPrimaryKeys() == [b2, a3]
    assert Item.objects.filter(price__lt=0).getPrimaryKeys() == [b4]
    assert Item.objects.filter(kind="b").update(n=100 - F("n"), ratio=-F("ratio"), hits=F("hits") // 5) == 2
    assert values("n") == {a1: 11, b2: 79, a3: 31, b4: 59}
    assert values("ratio")[b4] == 1.0 and values("hits")[b2] == 2
    assert Item.objects.filter(n=79).getPrimaryKeys() == [b2]
    consistent(redis_client)


def test_decimal_and_float_operands() -> None:
    (pk, *_) = items()
    Item.objects.filter(label="x1").update(price=F("price") * Decimal("2"), ratio=F("ratio") + Decimal("0.25"))
    assert Item.objects.get(pk).price == 2.5 and Item.objects.get(pk).ratio == 0.75


def test_nothing_matches() -> None:
    items()
    assert Item.objects.filter(kind="zzz").update(n=F("n") + 1) == 0


def test_errors_name_field_and_model_and_write_nothing(redis_client: redis.Redis) -> None:
    items()
    before = db_snapshot(redis_client)
    with pytest.raises(UnknownFieldError, match="nn.*Item"):
        Item.objects.update(nn=1)
    with pytest.raises(FieldValueError, match=r"Item\.kind .*F expression.*number field"):
        Item.objects.update(kind=F("n") + 1)
    with pytest.raises(FieldValueError, match=r"Item\.note .*read by an F expression"):
        Item.objects.update(n=F("note") + 1)
    with pytest.raises(FieldValueError, match="no field 'missing'"):
        Item.objects.update(n=F("missing") + 1)
    with pytest.raises(FieldValueError, match=r"Item\.n: expected an int"):
        Item.objects.update(n="many")
    with pytest.raises(TypeError, match="numbers"):
        Item.objects.update(n=F("n") + "1")
    with pytest.raises(ZeroDivisionError):
        Item.objects.update(n=F("n") / 0)
    with pytest.raises(InvalidQueryError, match="needs field=value"):
        Item.objects.update()
    # n / 2 is fractional for odd n: refused by the int field before anything is written.
    with pytest.raises(FieldValueError, match=r"Item\.n: expected an int .*whole number"):
        Item.objects.update(n=F("n") / 2)
    with pytest.raises(ZeroDivisionError, match=r"Item\.n"):
        Item.objects.update(n=F("n") // (F("n") - 3))
    assert db_snapshot(redis_client) == before


@pytest.mark.usefixtures("evalsha_only")  # counts the EVALSHA path
def test_one_script_call(log: Any) -> None:
    items()
    words = log.words(lambda: Item.objects.filter(kind="a").update(n=F("n") + 1, note="x"))
    calls = [w for w in words if w[0].upper() in ("EVALSHA", "EVALSHA_RO")]
    assert len(calls) == 2  # the query (reads the records), then one update
    assert calls[0][1] in (scripts.QUERY.sha, scripts.QUERY.ro_sha) and scripts.UPDATE.sha in calls[1][1]


@pytest.mark.usefixtures("evalsha_only")  # counts the EVALSHA path
def test_batches(log: Any, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(update_module, "UPDATE_BATCH", 3)
    pks = Item.reset([Item(kind="k", label=f"l{i}", n=i, hits=i) for i in range(10)])
    words = log.words(lambda: Item.objects.filter(kind="k").update(n=F("n") + 100))
    assert sum(1 for w in words if w[0].upper() == "EVALSHA" and scripts.UPDATE.sha in w[1]) == 4
    assert values("n") == {pk: i + 100 for i, pk in enumerate(pks)}
    consistent(redis_client)


def test_unique_clashes_are_refused_and_write_nothing(redis_client: redis.Redis) -> None:
    Badge.saver.save([Badge(owner="solo" if i == 0 else "o", number=i, code=f"c{i}") for i in range(3)])
    before = db_snapshot(redis_client)
    with pytest.raises(UniqueConstraintError, match="number.*all 3") as caught:
        Badge.objects.update(number=7)
    assert (caught.value.field, caught.value.value) == ("number", 7)
    with pytest.raises(UniqueConstraintError, match="code.*'c2' is already taken") as caught:
        Badge.objects.filter(owner="solo").update(code="c2")
    assert (caught.value.field, caught.value.value) == ("code", "c2")
    with pytest.raises(UniqueConstraintError, match="number"):
        Badge.objects.update(number=F("number") * 0)  # every badge would get 0
    with pytest.raises(UniqueConstraintError, match="number.*1.*taken"):
        Badge.objects.filter(owner="solo").update(number=F("number") + 1)
    assert db_snapshot(redis_client) == before
    assert Badge.objects.update(number=irNull) == 3  # irNull never clashes
    consistent(redis_client, Badge)


def test_unique_values_shifted_in_one_step(redis_client: redis.Redis) -> None:
    pks = Badge.saver.save([Badge(owner="o", number=i, code=f"c{i}") for i in range(5)])
    # Each new value is held by another badge that moves away from it in the same call.
    assert Badge.objects.update(number=F("number") + 1) == 5
    assert values("number", Badge) == {pk: i + 1 for i, pk in enumerate(pks)}
    assert Badge.objects.update(number=4 - F("number")) == 5  # a swap of pairs
    assert values("number", Badge) == {pk: 3 - i for i, pk in enumerate(pks)}
    consistent(redis_client, Badge)


def _between_read_and_write(monkeypatch: pytest.MonkeyPatch, redis_url: str,
                            edits: dict[int, dict[str, Any] | None]) -> list[int]:
    """Right after the update's first read of the matching records, another writer (Item
    through another connection) sets the fields ``edits`` gives per pk (None: deletes
    the object).  Returns how many objects each read of the update found."""
    writer = Item.connectAlt({"url": redis_url})
    reads = []
    original = update_module._matching

    def matching(*args: Any) -> Any:
        found = yield from original(*args)
        reads.append(len(found))
        if len(reads) == 1:
            for pk, values in edits.items():
                obj = writer.objects.get(pk)
                if values is None:
                    obj.delete()
                    continue
                for name, value in values.items():
                    setattr(obj, name, value)
                obj.save()
        return found

    monkeypatch.setattr(update_module, "_matching", matching)
    return reads


def test_a_value_changed_meanwhile_is_read_again(redis_client: redis.Redis, redis_url: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    a1, b2, a3, b4 = items()
    reads = _between_read_and_write(monkeypatch, redis_url, {a1: {"n": 50}})
    assert Item.objects.filter(kind="a").update(n=F("n") + 1) == 2
    assert reads == [2, 2]  # refused, read again, done
    assert values("n") == {a1: 51, b2: 2, a3: 4, b4: 4}  # not 2: the other write is not lost
    consistent(redis_client)


def test_an_object_that_stopped_matching_is_left_alone(redis_client: redis.Redis, redis_url: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    a1, b2, a3, b4 = items()
    reads = _between_read_and_write(monkeypatch, redis_url, {a1: {"kind": "b"}, a3: None})
    assert Item.objects.filter(kind="a").update(note="seen") == 0
    assert reads == [2, 0]
    assert values("note") == {a1: "one", b2: "", b4: ""}
    consistent(redis_client)


def test_a_changed_field_the_update_does_not_read_does_not_conflict(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    a1, *_ = items()
    reads = _between_read_and_write(monkeypatch, redis_url, {a1: {"note": "by the other writer"}})
    assert Item.objects.filter(kind="a").update(hits=F("hits") + 1) == 2
    assert reads == [2]
    found = Item.objects.get(a1)
    assert (found.hits, found.note) == (1, "by the other writer")  # both writes kept


def test_records_of_another_schema_are_rewritten_whole(redis_client: redis.Redis) -> None:
    Old, New = model_versions("Update:Evolving", ["kind", "n"], ["kind", IRField("n", valueType=int)],
                              ["kind", "extra", IRField("n", valueType=int)])
    pks = Old.saver.save([Old(kind="a", n=1), Old(kind="a", n=2)])
    assert New.objects.filter(kind="a").update(n=F("n") + 1, extra="e") == 2
    assert [(o.n, o.extra) for o in New.objects.all()] == [(2, "e"), (3, "e")]
    assert New.objects.filter(n=3).getPrimaryKeys() == [pks[1]]
    assert Old.objects.get(pks[0]).n == 2  # the old version reads the rewritten record by name
    consistent(redis_client, New)


def test_cached_readers_see_the_update() -> None:
    class Cached(IndexedRedisModel):
        FIELDS = ["kind", IRField("n", valueType=int)]
        INDEXED_FIELDS = ["kind"]
        KEY_NAME = "Update:Cached"
        CLIENT_CACHE = True

    pk = Cached(kind="a", n=1).save()
    first = Cached.objects.get(pk)
    assert Cached.objects.get(pk) is first  # served from the cache
    assert Cached.objects.filter(kind="a").update(n=F("n") + 1) == 1
    assert Cached.objects.get(pk).n == 2  # the stamp told the cache


def test_async_update(redis_client: redis.Redis) -> None:
    a1, b2, a3, b4 = items()

    async def main() -> int:
        try:
            return await Item.objects.filter(kind="b").aupdate(n=F("n") + 5)
        finally:
            await IndexedRedis.acloseRedisConnections()

    assert asyncio.run(main()) == 2
    assert values("n") == {a1: 1, b2: 7, a3: 3, b4: 9}
    consistent(redis_client)


def test_expression_repr_and_truth() -> None:
    assert repr(2 * (F("n") + 1)) == "(2 * (F('n') + 1))"
    with pytest.raises(TypeError, match="truth"):
        bool(F("n") + 1)
    with pytest.raises(TypeError):
        F("")


def test_an_f_expression_assigned_to_an_object_points_at_update() -> None:
    obj = Item(n=1)
    with pytest.raises(FieldValueError, match=r"Item\.n: an F expression .*Item\.objects\.filter\(\.\.\.\)\.update"):
        obj.n = F("n") + 1


def test_conflicts_in_batches_read_only_their_page_again(redis_client: redis.Redis, redis_url: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(update_module, "UPDATE_BATCH", 3)
    pks = Item.reset([Item(kind="k", label=f"l{i}", n=i, hits=0) for i in range(10)])
    reads = _between_read_and_write(monkeypatch, redis_url, {pks[1]: {"kind": "gone"}, pks[7]: {"n": 70}})
    assert Item.objects.filter(kind="k").update(n=F("n") + 100, hits=F("n")) == 9
    # the whole match once, then one page for each batch that met a changed object
    assert reads == [10, 9, 3]  # batches 0 2 3 | 4 5 6 | 7 8 9: the page of the last from 7 on
    expected = {pk: (i + 100, i) for i, pk in enumerate(pks)}
    expected[pks[1]] = (1, 0)
    expected[pks[7]] = (170, 70)
    assert {o._id: (o.n, o.hits) for o in Item.objects.all()} == expected
    consistent(redis_client)


def test_links_are_set_by_pk_and_an_unsaved_linked_object_is_refused(redis_client: redis.Redis) -> None:
    class Owner(IndexedRedisModel):
        FIELDS = ["name"]
        KEY_NAME = "Update:Owner"

    class Pet(IndexedRedisModel):
        FIELDS = ["name", IRForeignLinkField("owner", Owner)]
        INDEXED_FIELDS = ["owner"]
        KEY_NAME = "Update:Pet"

    first, second = Owner(name="first"), Owner(name="second")
    Owner.saver.save([first, second])
    Pet.saver.save([Pet(name="p1", owner=first), Pet(name="p2", owner=first)])
    assert Pet.objects.filter(owner=first._id).update(owner=second) == 2
    assert [p.owner.name for p in Pet.objects.all()] == ["second", "second"]
    before = db_snapshot(redis_client)
    with pytest.raises(FieldValueError, match=r"Pet\.owner: .*not saved yet"):
        Pet.objects.update(owner=Owner(name="new"))
    assert db_snapshot(redis_client) == before
    consistent(redis_client, Pet)


def test_a_unique_expression_larger_than_one_batch_is_refused(redis_client: redis.Redis,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(update_module, "UPDATE_BATCH", 2)
    Badge.saver.save([Badge(owner="o", number=i, code=f"c{i}") for i in range(3)])
    before = db_snapshot(redis_client)
    with pytest.raises(InvalidQueryError, match=r"unique field 'number' .* at most 2 objects, and 3 match"):
        Badge.objects.update(number=F("number") + 10)
    assert db_snapshot(redis_client) == before
    assert Badge.objects.update(owner="p") == 3  # other fields are updated batch by batch
