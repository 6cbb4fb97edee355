"""UNIQUE_FIELDS: a value may belong to one object at a time.

The check runs inside the save script, before its first write: a save (or a whole
``saver.save([...])`` batch) that would duplicate a value raises
``UniqueConstraintError`` naming the field and the value, and writes nothing.  irNull
values never clash; ``reset`` refuses a dataset with duplicates before writing; and
processes racing for one value get exactly one winner.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
from typing import Any

import pytest
import redis
from _models import UniqueUser, run_children, unique_worker
from consistency import assert_indexes_consistent, assert_no_garbage, db_snapshot

from IndexedRedis import (
    IndexedRedisError,
    IndexedRedisModel,
    IRClassicField,
    IRField,
    IRFixedPointField,
    UniqueConstraintError,
    irNull,
)


class Account(IndexedRedisModel):
    FIELDS = [
        IRField("email", valueType=str),
        IRField("number", valueType=int),
        IRField("ratio", valueType=float),
        IRField("since", valueType=dt.datetime),
        IRFixedPointField("fee", decimalPlaces=2),
        IRField("token", valueType=str, hashIndex=True),
        IRClassicField("handle"),
        "name",
        "note",
    ]
    INDEXED_FIELDS = ["name"]
    UNIQUE_FIELDS = ["email", "number", "ratio", "since", "fee", "token", "handle"]
    LEX_INDEXED_FIELDS = ["handle"]
    KEY_NAME = "unique:account"


HANDLES = iter(f"h{i:05d}" for i in range(10 ** 5))


def account(**values: object) -> Account:
    """An Account with a fresh handle (a classic field stores None as '', which is a
    value, so every account needs its own)."""
    values.setdefault("handle", next(HANDLES))
    return Account(**values)


@pytest.fixture
def stored(redis_client: redis.Redis) -> list[Account]:
    objs = [account(email="ann@x", number=1, ratio=0.5, since=dt.datetime(2020, 1, 1), fee=1.25,
                    token="t-ann", name="Ann"),
            account(email="bob@x", number=2, name="Bob"),
            account(name="Nobody")]
    Account.saver.save(objs)
    assert_indexes_consistent(redis_client, Account)
    return objs


def raises_clash(field: str, value: object) -> Any:
    return pytest.raises(UniqueConstraintError, match=f"Account.{field} must be unique.*{value!r}")


# ---- single saves ----------------------------------------------------------------------------


@pytest.mark.parametrize("field,value", [
    ("email", "ann@x"),
    ("number", 1),
    ("number", "1"),          # converted like any value: the same int
    ("ratio", 0.5),
    ("since", dt.datetime(2020, 1, 1)),
    ("fee", 1.25),
    ("fee", 1.249),           # stored rounded: 1.25
    ("token", "t-ann"),       # a hashed index
])
def test_duplicate_value_is_refused_and_nothing_is_written(redis_client: redis.Redis, stored: list[Account],
                                                           field: str, value: object) -> None:
    before = db_snapshot(redis_client)
    obj = account(name="Clash", **{field: value})
    with pytest.raises(UniqueConstraintError) as info:
        obj.save()
    error = info.value
    assert error.field == field
    assert error.model == "Account"
    assert error.value == getattr(obj, field)
    message = str(error)
    assert f"Account.{field}" in message and repr(getattr(obj, field)) in message
    assert "nothing was saved" in message
    assert isinstance(error, IndexedRedisError) and isinstance(error, ValueError)
    assert db_snapshot(redis_client) == before
    assert obj._id is None
    assert Account.objects.count() == 3


def test_equal_values_in_other_forms_clash(redis_client: redis.Redis, stored: list[Account]) -> None:
    """Uniqueness is by index value: what equality filters find."""
    stored[0].ratio = 0.0
    stored[0].save()
    with raises_clash("ratio", -0.0):
        account(ratio=-0.0).save()
    aware = account(since=dt.datetime(2021, 1, 1, 12, tzinfo=dt.timezone.utc))
    aware.save()
    with pytest.raises(UniqueConstraintError, match="since"):
        account(since=dt.datetime(2021, 1, 1, 14, tzinfo=dt.timezone(dt.timedelta(hours=2)))).save()
    assert_indexes_consistent(redis_client, Account)


def test_classic_field_value_clashes_even_when_empty(stored: list[Account]) -> None:
    """A classic field has no irNull: '' (what None becomes) is a value like any other."""
    account(handle="").save()
    with raises_clash("handle", ""):
        account(handle=None).save()


def test_new_object_with_chosen_pk_cannot_take_a_value(redis_client: redis.Redis,
        stored: list[Account]) -> None:
    before = db_snapshot(redis_client)
    with raises_clash("email", "bob@x"):
        account(_id=500, email="bob@x").save()
    assert db_snapshot(redis_client) == before
    assert Account.objects.get(500) is None


# ---- batches ---------------------------------------------------------------------------------


def test_batch_with_one_clash_writes_nothing(redis_client: redis.Redis, stored: list[Account]) -> None:
    before = db_snapshot(redis_client)
    first = account(email="new1@x", number=10)
    clash = account(email="new2@x", number=2)            # Bob's number
    last = account(email="new3@x", number=12)
    changed = Account.objects.get(stored[2]._id)
    changed.email, changed.note = "nobody@x", "changed"  # an update in the same batch
    with pytest.raises(UniqueConstraintError) as info:
        Account.saver.save([first, changed, clash, last])
    assert (info.value.field, info.value.value) == ("number", 2)
    assert db_snapshot(redis_client) == before
    assert [first._id, clash._id, last._id] == [None, None, None]
    assert Account.objects.get(stored[2]._id).email is irNull
    # the refused objects are intact and can be saved once the clash is gone
    clash.number = 11
    Account.saver.save([first, changed, clash, last])
    assert Account.objects.count() == 6
    assert_indexes_consistent(redis_client, Account)


def test_two_objects_of_one_batch_with_the_same_value(redis_client: redis.Redis,
        stored: list[Account]) -> None:
    before = db_snapshot(redis_client)
    a, b = account(email="same@x"), account(email="same@x")
    with raises_clash("email", "same@x"):
        Account.saver.save([a, b])
    assert db_snapshot(redis_client) == before
    with raises_clash("number", 99):
        Account.saver.save([account(number=99), account(email="other@x"), account(number="99")])
    assert db_snapshot(redis_client) == before
    # an update and a new object of one batch claiming one value
    bob = Account.objects.get(stored[1]._id)
    bob.email = "fresh@x"
    with raises_clash("email", "fresh@x"):
        Account.saver.save([bob, account(email="fresh@x")])
    assert db_snapshot(redis_client) == before


def test_save_multiple_refuses_a_clash_within_its_batch(redis_client: redis.Redis) -> None:
    objs = [account(number=i) for i in range(5)] + [account(number=3)]
    with raises_clash("number", 3):
        Account.saver.saveMultiple(objs)
    assert Account.objects.count() == 0
    assert_indexes_consistent(redis_client, Account)


# ---- updates ---------------------------------------------------------------------------------


def test_updating_an_object_keeping_its_own_value(redis_client: redis.Redis, stored: list[Account]) -> None:
    ann = Account.objects.get(stored[0]._id)
    ann.note = "other fields change"
    ann.save()
    ann.email = "ann@x"              # assigned, but the same value
    ann.number = "1"
    ann.save()
    ann.save()                       # nothing changed at all
    # a whole-record save of the same object (as reindex does) keeps its values too
    Account.objects.filter(name="Ann").reindex()
    Account.objects.reindex()
    copy = Account(_id=ann._id, email="ann@x", number=1, ratio=0.5, since=dt.datetime(2020, 1, 1), fee=1.25,
                   token="t-ann", handle=ann.handle, name="Ann")
    copy.save()                      # an overwrite under its own pk
    assert Account.objects.filter(email="ann@x").getPrimaryKeys() == [ann._id]
    assert_indexes_consistent(redis_client, Account)


def test_changing_to_a_free_value_frees_the_old_one(redis_client: redis.Redis, stored: list[Account]) -> None:
    ann = Account.objects.get(stored[0]._id)
    ann.email, ann.number = "ann@new", 100
    ann.save()
    assert Account.objects.filter(email="ann@x").count() == 0
    taker = account(email="ann@x", number=1)
    taker.save()
    assert Account.objects.filter(email="ann@x").getPrimaryKeys() == [taker._id]
    assert Account.objects.filter(number=1).getPrimaryKeys() == [taker._id]
    with raises_clash("email", "ann@x"):
        ann.email = "ann@x"
        ann.save()
    ann.email = "ann@new"
    assert not ann.hasUnsavedChanges()
    assert_indexes_consistent(redis_client, Account)


def test_deleting_frees_the_value(redis_client: redis.Redis, stored: list[Account]) -> None:
    stored[1].delete()
    account(email="bob@x", number=2).save()
    Account.deleter.deleteMultipleByPks([stored[0]._id])
    account(email="ann@x", number=1, token="t-ann").save()
    Account.objects.filter(email="ann@x").delete()
    account(email="ann@x").save()
    assert_indexes_consistent(redis_client, Account)


def test_stale_copy_cannot_take_a_value_taken_meanwhile(redis_client: redis.Redis,
        stored: list[Account]) -> None:
    stale = Account.objects.get(stored[2]._id)
    account(email="wanted@x").save()
    before = db_snapshot(redis_client)
    stale.email = "wanted@x"
    with raises_clash("email", "wanted@x"):
        stale.save()
    assert db_snapshot(redis_client) == before


def test_irnull_values_never_clash(redis_client: redis.Redis, stored: list[Account]) -> None:
    many = [account(name=f"n{i}") for i in range(5)] + [account(email=None, number=irNull)]
    Account.saver.save(many)
    ann = Account.objects.get(stored[0]._id)
    ann.email = ann.number = ann.ratio = ann.since = ann.fee = ann.token = None
    ann.save()                       # giving up values: they become free
    account(email="ann@x", number=1, ratio=0.5, since=dt.datetime(2020, 1, 1), fee=1.25, token="t-ann").save()
    assert Account.objects.filter(email__isnull=True).count() == 8
    assert_indexes_consistent(redis_client, Account)


def test_unique_fields_are_indexed(stored: list[Account]) -> None:
    assert set(Account._meta.unique_names) <= set(Account._meta.indexed_names)
    assert Account.objects.filter(number__gte=2).getPrimaryKeys() == [stored[1]._id]
    assert Account.objects.filter(email__in=["bob@x", "ann@x"]).count() == 2


# ---- reset -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset,field,value", [
    ([dict(email="a"), dict(email="b"), dict(email="a")], "email", "a"),
    ([dict(number=5), dict(number="5")], "number", 5),
    ([dict(token="x"), dict(token="x")], "token", "x"),
    ([dict(handle="")] * 2, "handle", ""),
])
def test_reset_refuses_duplicates_before_writing(redis_client: redis.Redis, stored: list[Account],
                                                 dataset: list[dict], field: str, value: object) -> None:
    before = db_snapshot(redis_client)
    objs = [Account(**row) if "handle" in row else account(**row) for row in dataset]
    with pytest.raises(UniqueConstraintError) as info:
        Account.reset(objs)
    assert info.value.field == field and info.value.value == value
    assert "nothing was written" in str(info.value)
    assert db_snapshot(redis_client) == before
    assert all(o._id is None for o in objs)
    assert_no_garbage(redis_client, Account)


def test_reset_accepts_nulls_and_distinct_values_and_then_enforces(redis_client: redis.Redis,
                                                                   stored: list[Account]) -> None:
    objs = [account(email=None), account(email=None), account(email="a", number=1),
            account(email="b", number=2)]
    Account.reset(objs)
    assert Account.objects.count() == 4
    assert_indexes_consistent(redis_client, Account)
    assert_no_garbage(redis_client, Account)
    with raises_clash("email", "a"):
        account(email="a").save()
    with raises_clash("number", 2):
        account(number=2).save()


# Regression: this was a bug before the change that fixed it.
@pytest.mark.parametrize("field,values", [
    ("ratio", [0.0, -0.0]),
    ("since", [dt.datetime(2021, 1, 1, 12, tzinfo=dt.timezone.utc),
               dt.datetime(2021, 1, 1, 14, tzinfo=dt.timezone(dt.timedelta(hours=2)))]),
])
def test_reset_refuses_values_equal_by_index(redis_client: redis.Redis, stored: list[Account], field: str,
                                             values: list[object]) -> None:
    before = db_snapshot(redis_client)
    with pytest.raises(UniqueConstraintError):
        Account.reset([account(**{field: v}) for v in values])
    assert db_snapshot(redis_client) == before


# ---- the race --------------------------------------------------------------------------------


N_PROCS = 4
N_VALUES = 20


@pytest.fixture
def spawn() -> multiprocessing.context.SpawnContext:
    return multiprocessing.get_context("spawn")


def check_race(results: list[list[tuple[str, str, object]]], values: list[str]) -> dict[str, int]:
    """Exactly one winner per value; every loser was told the field and the value."""
    winners: dict[str, int] = {}
    for outcomes in results:
        assert [value for _, value, _ in outcomes] == values
        for status, value, detail in outcomes:
            if status == "won":
                assert value not in winners, f"two winners for {value!r}"
                winners[value] = detail  # type: ignore[assignment]
            else:
                assert detail == ("email", value)
    assert sorted(winners) == sorted(values), "a value nobody won"
    return winners


def test_racing_new_objects_for_one_value_have_one_winner(spawn, redis_url: str,
                                                          redis_client: redis.Redis) -> None:
    UniqueUser(email="warm-up").save()
    values = [f"user{i}@race" for i in range(N_VALUES)]
    queue, barrier = spawn.Queue(), spawn.Barrier(N_PROCS)
    results = run_children(spawn, unique_worker,
                           [(redis_url, index, values, None, barrier) for index in range(N_PROCS)], queue)
    winners = check_race(results, values)
    records = assert_indexes_consistent(redis_client, UniqueUser)
    assert len(records) == N_VALUES + 1
    for value, pk in winners.items():
        assert UniqueUser.objects.filter(email=value).getPrimaryKeys() == [pk]
    assert_no_garbage(redis_client, UniqueUser)


def test_racing_updates_for_one_value_have_one_winner(spawn, redis_url: str,
                                                      redis_client: redis.Redis) -> None:
    own = [UniqueUser(email=f"start{index}", badge=index, name=f"p{index}") for index in range(N_PROCS)]
    UniqueUser.saver.save(own)
    values = [f"moved{i}@race" for i in range(N_VALUES)]
    queue, barrier = spawn.Queue(), spawn.Barrier(N_PROCS)
    results = run_children(spawn, unique_worker,
                           [(redis_url, index, values, own[index]._id, barrier) for index in range(N_PROCS)],
                           queue)
    winners = check_race(results, values)
    assert set(winners.values()) <= {o._id for o in own}
    records = assert_indexes_consistent(redis_client, UniqueUser)
    assert sorted(records) == sorted(o._id for o in own)
    emails = [rec["email"] for rec in records.values()]
    assert len(set(emails)) == len(emails)
    # each object ends with the last value it won (or its start value)
    for obj in own:
        won = [value for value in values if winners[value] == obj._id]
        assert UniqueUser.objects.get(obj._id).email == (won[-1] if won else obj.email)
