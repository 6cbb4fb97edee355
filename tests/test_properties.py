"""Property tests: IndexedRedis against a plain-Python model of the same data.

(a) values of classic fields round trip as the expected text and can be filtered on;
(b) random datasets plus random saves / updates / deletes, applied to Redis and to a
    dict, answer random chains of eq / ne filters identically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
import redis
from consistency import decode_record, stored_ids
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from IndexedRedis import IndexedRedisModel
from IndexedRedis.keys import escape_key_name

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Text(IndexedRedisModel):
    FIELDS = ["value", "other"]
    INDEXED_FIELDS = ["value"]
    KEY_NAME = "prop:text"


class Item(IndexedRedisModel):
    FIELDS = ["a", "b", "c", "note"]
    INDEXED_FIELDS = ["a", "b", "c"]
    KEY_NAME = "prop:{item}"


INDEXED = Item.INDEXED_FIELDS


def as_text(value: Any) -> str:
    return "" if value is None else str(value)


# ---- (a) round trip -------------------------------------------------------------------------

scalar_values = st.one_of(
    st.text(),
    st.integers(),
    st.integers(min_value=-(10 ** 40), max_value=10 ** 40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)


@settings(max_examples=150, **SETTINGS)
@given(values=st.lists(scalar_values, min_size=1, max_size=4), other=st.text(max_size=50))
def test_classic_values_round_trip(redis_client: redis.Redis, values: list[Any], other: str) -> None:
    Text.reset([])
    pks = [Text(value=v, other=other).save() for v in values]
    for value, pk in zip(values, pks):
        obj = Text.objects.get(pk)
        assert obj.value == as_text(value)
        assert type(obj.value) is str
        assert obj.other == other
        expected = [p for v, p in zip(values, pks) if as_text(v) == as_text(value)]
        assert Text.objects.filter(value=value).getPrimaryKeys() == expected
        assert pk not in Text.objects.filter(value__ne=value).getPrimaryKeys()
    assert [o.value for o in Text.objects.all()] == [as_text(v) for v in values]


@settings(max_examples=60, **SETTINGS)
@given(first=st.text(), second=st.text())
def test_updated_text_round_trips(redis_client: redis.Redis, first: str, second: str) -> None:
    Text.reset([])
    obj = Text(value=first, other=second)
    pk = obj.save()
    fetched = Text.objects.get(pk)
    fetched.value, fetched.other = second, first
    fetched.save()
    again = Text.objects.get(pk)
    assert (again.value, again.other) == (second, first)
    assert Text.objects.filter(value=second).getPrimaryKeys() == [pk]
    if first != second:
        assert Text.objects.filter(value=first).count() == 0


def test_decimal_and_big_numbers_examples() -> None:
    pk = Text(value=Decimal("1.10"), other=10 ** 30).save()
    obj = Text.objects.get(pk)
    assert (obj.value, obj.other) == ("1.10", str(10 ** 30))


# ---- (b) a model of the data in plain Python -----------------------------------------------

# Few values, mostly "x" and "y", so that objects share them and filters select
# interesting subsets.
COMMON_VALUES = st.sampled_from(["x", "y"])
RARE_VALUES = st.sampled_from(["", "1", "{z}", "x y", "é"])
VALUES = st.one_of(COMMON_VALUES, RARE_VALUES)
FILTER_VALUES = st.one_of(COMMON_VALUES, RARE_VALUES, st.sampled_from([None, 1]))
RECORD = st.fixed_dictionaries(
    {name: VALUES for name in INDEXED}, optional={"note": st.text(max_size=5)})

# Picks the target of an update or delete; small numbers make operations pile up on
# the same few objects (stale copies, updates then deletes of one object).
SELECTOR = st.one_of(st.integers(0, 2), st.integers(0, 10 ** 6))

# One operation: what, a selector of the target, whether to act through a freshly
# fetched copy or a handle kept from earlier, a field and a value.
OPERATION = st.one_of(
    st.tuples(st.just("save"), RECORD),
    st.tuples(st.just("update"), SELECTOR, st.booleans(),
              st.sampled_from(INDEXED + ["note"]), FILTER_VALUES),
    st.tuples(st.just("delete"), SELECTOR, st.booleans()),
    st.tuples(st.just("filter_delete"), st.sampled_from(INDEXED), st.booleans(), VALUES),
)


def _merge(*parts: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        merged.update(part)
    return merged


# One filter() call: at most one equality (more would mostly select nothing) and up
# to three not-equals.
FILTER_CALL = st.builds(
    _merge,
    st.dictionaries(st.sampled_from(INDEXED + [f"{name}__eq" for name in INDEXED]),
                    FILTER_VALUES, max_size=1),
    st.dictionaries(st.sampled_from([f"{name}__ne" for name in INDEXED]), FILTER_VALUES, max_size=3),
)
FILTER_CHAIN = st.lists(FILTER_CALL, min_size=1, max_size=3)


@dataclass
class Handle:
    """A model instance the test holds, and what it believes (as the library does)."""

    obj: Item
    values: dict[str, str]
    orig: dict[str, str] = field(default_factory=dict)


class PyModel:
    """The expected contents of Redis: pk -> record, plus the handles the test holds."""

    def __init__(self) -> None:
        self.store: dict[int, dict[str, str]] = {}
        self.handles: dict[int, list[Handle]] = {}

    def live(self) -> list[int]:
        return sorted(self.store)

    def matches(self, record: dict[str, str], chain: list[dict[str, Any]]) -> bool:
        for call in chain:
            for key, value in call.items():
                name, _, lookup = key.partition("__")
                if lookup == "ne":
                    if record[name] == as_text(value):
                        return False
                elif record[name] != as_text(value):
                    return False
        return True

    def select(self, chain: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**record, "_id": pk} for pk, record in sorted(self.store.items())
                if self.matches(record, chain)]


def full_record(values: dict[str, Any]) -> dict[str, str]:
    return {name: as_text(values.get(name)) for name in Item.FIELDS}


def apply(op: tuple[Any, ...], model: PyModel) -> None:
    kind = op[0]
    live = model.live()
    if kind == "save":
        obj = Item(**op[1])
        pk = obj.save()
        assert pk not in model.store
        record = full_record(op[1])
        model.store[pk] = record
        model.handles.setdefault(pk, []).append(Handle(obj, dict(record), dict(record)))
    elif kind == "update" and live:
        _, selector, fresh, name, value = op
        pk = live[selector % len(live)]
        kept = model.handles.get(pk, [])
        if fresh or not kept:
            handle = Handle(Item.objects.get(pk), dict(model.store[pk]), dict(model.store[pk]))
            assert handle.obj.asDict() == handle.values
            model.handles.setdefault(pk, []).append(handle)
        else:
            handle = kept[selector % len(kept)]
        setattr(handle.obj, name, value)
        handle.values[name] = as_text(value)
        assert handle.obj.save() == pk
        # save() writes only the fields changed since this handle last read or wrote
        changed = {k: v for k, v in handle.values.items() if handle.orig.get(k) != v}
        model.store[pk].update(changed)
        handle.orig = dict(handle.values)
    elif kind == "delete" and live:
        _, selector, fresh = op
        pk = live[selector % len(live)]
        kept = model.handles.get(pk, [])
        obj = Item.objects.get(pk) if fresh or not kept else kept[selector % len(kept)].obj
        assert obj.delete() is True
        assert obj._id is None
        del model.store[pk]
        model.handles.pop(pk, None)
    elif kind == "filter_delete":
        _, name, negate, value = op
        chain = [{f"{name}__ne" if negate else name: value}]
        doomed = [r["_id"] for r in model.select(chain)]
        assert Item.objects.filter(**chain[0]).delete() == len(doomed)
        for pk in doomed:
            del model.store[pk]
            model.handles.pop(pk, None)


def assert_storage_exact(client: redis.Redis, model: PyModel) -> None:
    """Records, id set and every index set in Redis are exactly the Python model's."""
    prefix = b"ir:{" + escape_key_name(Item.KEY_NAME).encode() + b"}:"
    gen = int(client.get(prefix + b"gen") or 0)
    gprefix = prefix + b"g%d:" % gen
    records = {int(pk): decode_record(client, Item, blob)
               for pk, blob in client.hgetall(gprefix + b"objs").items()}
    assert records == model.store
    assert stored_ids(client, gprefix + b"ids") == set(model.store)
    expected: dict[bytes, set[int]] = {}
    for pk, record in model.store.items():
        for name in INDEXED:
            key = gprefix + b"i:" + name.encode() + b":" + record[name].encode()
            expected.setdefault(key, set()).add(pk)
    actual = {}
    for key in client.scan_iter(count=1000):
        assert key.startswith(prefix), key  # nothing outside the model's hash tag
        if key.startswith(gprefix + b"i:"):
            actual[key] = {int(pk) for pk in client.smembers(key)}
        elif key.startswith(prefix + b"g") and not key.startswith(gprefix) \
                and not key.startswith(prefix + b"gen"):
            pytest.fail(f"key of a dead generation left behind: {key!r}")
    assert actual == expected


@settings(max_examples=600, **SETTINGS)
@given(
    dataset=st.lists(RECORD, max_size=20),
    use_reset=st.booleans(),
    operations=st.lists(OPERATION, max_size=15),
    chains=st.lists(FILTER_CHAIN, min_size=1, max_size=6),
)
def test_random_operations_match_python_model(redis_client: redis.Redis, dataset: list[dict[str, Any]],
                                              use_reset: bool, operations: list[tuple[Any, ...]],
                                              chains: list[list[dict[str, Any]]]) -> None:
    Item.reset([])
    assert Item.objects.count() == 0
    model = PyModel()
    if use_reset:
        objs = [Item(**values) for values in dataset]
        pks = Item.reset(objs)
        for obj, pk, values in zip(objs, pks, dataset):
            record = full_record(values)
            model.store[pk] = record
            model.handles[pk] = [Handle(obj, dict(record), dict(record))]
    else:
        for values in dataset:
            apply(("save", values), model)

    for op in operations:
        apply(op, model)

    assert_storage_exact(redis_client, model)
    assert [o.asDict(includeMeta=True) for o in Item.objects.all()] == model.select([])
    for chain in chains:
        qs = Item.objects
        for call in chain:
            qs = qs.filter(**call)
        expected = model.select(chain)
        assert [o.asDict(includeMeta=True) for o in qs.all()] == expected, chain
        assert qs.count() == len(expected)
        assert qs.getPrimaryKeys() == [r["_id"] for r in expected]
        first, last = qs.first(), qs.last()
        assert (first and first.asDict(includeMeta=True)) == (expected[0] if expected else None)
        assert (last and last.asDict(includeMeta=True)) == (expected[-1] if expected else None)
        merged: dict[str, Any] = {}
        for call in chain:
            merged.update(call)
        if len(merged) == sum(len(call) for call in chain):  # no key repeated across calls
            assert Item.objects.filter(**merged).getPrimaryKeys() == [r["_id"] for r in expected]
        inline = Item.objects.filter()
        for call in chain:
            inline.filterInline(**call)
        assert [o._id for o in inline] == [r["_id"] for r in expected]
