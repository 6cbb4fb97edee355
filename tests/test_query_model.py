"""Property tests: server-side queries against the same query computed in plain Python.

Random datasets (with irNull values, colliding numbers and text prefixes) are loaded
with ``reset`` -- or built by random saves, updates and deletes -- and random chains
of lookups (eq, ne, in, isnull, gt, gte, lt, lte, range, startswith) over 1-3
``filter`` calls, with an optional ``orderBy`` and an optional slice, must return
exactly the pks, in exactly the order, that the documented semantics give:

* ``ne`` includes irNull values; comparisons, ranges and prefixes never match irNull;
* ordering is by value, irNull last ascending / first descending, ties by pk, and a
  descending order is the exact reverse of the ascending one;
* text compares in code point order (= the byte order of UTF-8).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import pytest
import redis
from consistency import assert_indexes_consistent
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from IndexedRedis import IndexedRedisModel, IRField, irNull


class QItem(IndexedRedisModel):
    FIELDS = [
        IRField("n", valueType=int),
        IRField("x", valueType=float),
        IRField("d", valueType=dt.datetime),
        IRField("code", valueType=str),     # LEX_INDEXED_FIELDS: prefixes, text ranges, text order
        IRField("tag", valueType=str),      # plain indexed text: equality only
        "note",
    ]
    INDEXED_FIELDS = ["n", "x", "d", "tag"]
    LEX_INDEXED_FIELDS = ["code"]
    KEY_NAME = "qmodel:{item}"


# Hypothesis stops shrinking a failure after 5 minutes; let it report the failure
# rather than be cut short by the suite's 300 s timeout.
pytestmark = pytest.mark.timeout(900)

SETTINGS: dict[str, Any] = dict(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

ALPHABET = "\x00ab\u00e9\U0001f600"   # small: prefixes collide; NUL; 1-, 2- and 4-byte UTF-8

# ---- values ---------------------------------------------------------------------------------------

# Mostly small pools, so that stored values, bounds and prefixes collide often.
ints = st.one_of(st.sampled_from([-10, -1, 0, 1, 2, 9, 10, 100]), st.integers(-(10 ** 6), 10 ** 6))
floats = st.one_of(
    st.sampled_from([-1.5, -0.0, 0.0, 0.5, 2.25, 10.0, 1e300, -1e-300, math.inf, -math.inf]),
    st.floats(-100, 100, allow_nan=False))
# Datetimes from 1950 to 2100: float seconds hold every microsecond there.
DATES = [dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 1, 0, 0, 0, 1), dt.datetime(1969, 12, 31, 23, 59, 59),
         dt.datetime(2000, 2, 29, 12)]
dates = st.one_of(st.sampled_from(DATES),
                  st.datetimes(min_value=dt.datetime(1950, 1, 1), max_value=dt.datetime(2100, 1, 1)))
CODES = ["", "a", "ab", "abb", "b", "ba", "\u00e9", "\u00e9a", "a\U0001f600", "\U0001f600", "\U0001f600b",
         "a\x00", "\x00", "a\x00b"]
codes = st.one_of(st.sampled_from(CODES), st.text(alphabet=ALPHABET, max_size=3))
tags = st.sampled_from(["", "red", "green", "Blue"])

VALUES: dict[str, st.SearchStrategy[Any]] = {"n": ints, "x": floats, "d": dates, "code": codes, "tag": tags}
ORDERED_FIELDS = ["n", "x", "d", "code"]


def nullable(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


rows_strategy = st.fixed_dictionaries({name: nullable(strategy) for name, strategy in VALUES.items()})
datasets = st.lists(rows_strategy, min_size=3, max_size=14)

# ---- queries --------------------------------------------------------------------------------------

TEXT_LOOKUPS = ("gt", "gte", "lt", "lte", "range", "startswith")
NUMERIC_COMPARISONS = ("gt", "gte", "lt", "lte", "range")


Pools = dict[str, list[Any]]


def value_strategy(name: str, pools: Pools) -> st.SearchStrategy[Any]:
    """Values for a filter: often one that is stored, so that filters select something."""
    pool = pools.get(name) or []
    if not pool:
        return VALUES[name]
    return st.one_of(st.sampled_from(pool), st.sampled_from(pool), VALUES[name])


def lookup_strategy(lex_lookups: tuple[str, ...], pools: Pools) -> st.SearchStrategy[tuple[str, Any]]:
    options = []
    for name in VALUES:
        values = value_strategy(name, pools)
        options += [
            st.tuples(st.sampled_from([name, f"{name}__eq"]), nullable(values)),
            st.tuples(st.just(f"{name}__ne"), nullable(values)),
            st.tuples(st.just(f"{name}__in"), st.lists(nullable(values), max_size=3)),
            st.tuples(st.just(f"{name}__isnull"), st.booleans()),
        ]
        comparisons = lex_lookups if name == "code" else NUMERIC_COMPARISONS if name != "tag" else ()
        for lookup in comparisons:
            if lookup == "range":
                options.append(st.tuples(st.just(f"{name}__range"), st.tuples(values, values)))
            elif lookup == "startswith":
                prefixes = st.one_of(st.text(alphabet=ALPHABET, max_size=2), values.map(lambda v: v[:2]))
                options.append(st.tuples(st.just(f"{name}__startswith"), prefixes))
            else:
                options.append(st.tuples(st.just(f"{name}__{lookup}"), values))
    return st.one_of(options)


def text_comparison(lex_lookups: tuple[str, ...], pools: Pools) -> st.SearchStrategy[tuple[str, Any]]:
    values = value_strategy("code", pools)
    return st.one_of([
        st.tuples(st.just("code__range"), st.tuples(values, values)) if lookup == "range" else
        st.tuples(st.just(f"code__{lookup}"), values) for lookup in lex_lookups])


def query_strategy(lex_lookups: tuple[str, ...], pools: Pools,
                   text_first: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """Queries; with ``text_first`` the first filter call always compares ``code``."""
    filter_call = st.lists(lookup_strategy(lex_lookups, pools), min_size=1, max_size=2).map(dict)
    calls = st.lists(filter_call, min_size=1, max_size=3)
    if text_first:
        calls = st.tuples(text_comparison(lex_lookups, pools), calls).map(lambda t: [dict([t[0]]), *t[1]])
    return st.fixed_dictionaries({
        "filters": calls,
        "order": st.one_of(st.none(), st.sampled_from(
            ["_id", "-_id"] + ORDERED_FIELDS + [f"-{name}" for name in ORDERED_FIELDS])),
        "slice": st.one_of(st.none(),
                           st.tuples(st.integers(0, 14), st.one_of(st.none(), st.integers(0, 16)))),
    })


def pools_of(rows: dict[int, dict[str, Any]]) -> Pools:
    return {name: sorted({row[name] for row in rows.values() if row.get(name) is not None}, key=repr)
            for name in VALUES}


def draw_queries(data: st.DataObject, rows: dict[int, dict[str, Any]], lex_lookups: tuple[str, ...],
                 text_first: bool = False) -> list[dict[str, Any]]:
    queries = st.lists(query_strategy(lex_lookups, pools_of(rows), text_first), min_size=1, max_size=3)
    return data.draw(queries, label="queries")


# ---- the Python model of a query ------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(a == b)


def matches(value: Any, lookup: str, arg: Any) -> bool:
    if lookup == "eq":
        return same(value, arg)
    if lookup == "ne":
        return not same(value, arg)
    if lookup == "in":
        return any(same(value, item) for item in arg)
    if lookup == "isnull":
        return (value is None) is arg
    if value is None:
        return False      # comparisons, ranges and prefixes never match irNull
    if lookup == "gt":
        return bool(value > arg)
    if lookup == "gte":
        return bool(value >= arg)
    if lookup == "lt":
        return bool(value < arg)
    if lookup == "lte":
        return bool(value <= arg)
    if lookup == "range":
        return bool(arg[0] <= value <= arg[1])
    if lookup == "startswith":
        return bool(value.startswith(arg))
    raise AssertionError(lookup)


def expected_pks(rows: dict[int, dict[str, Any]], query: dict[str, Any]) -> list[int]:
    def selected(row: dict[str, Any]) -> bool:
        for filters in query["filters"]:
            for key, arg in filters.items():
                name, _, lookup = key.partition("__")
                if not matches(row.get(name), lookup or "eq", arg):
                    return False
        return True

    chosen = [pk for pk in sorted(rows) if selected(rows[pk])]
    spec = query["order"]
    if spec is None or spec.lstrip("-") == "_id":
        ordered = chosen
    else:
        name = spec.lstrip("-")

        def key(pk: int) -> tuple[Any, ...]:
            value = rows[pk].get(name)
            return (value is None, 0 if value is None else value, pk)

        ordered = sorted(chosen, key=key)
    if spec is not None and spec.startswith("-"):
        ordered = ordered[::-1]
    return ordered


def build(query: dict[str, Any]) -> Any:
    qs = QItem.objects
    for filters in query["filters"]:
        qs = qs.filter(**filters)
    if query["order"] is not None:
        qs = qs.orderBy(query["order"])
    return qs


def row_of(obj: QItem) -> dict[str, Any]:
    return {name: (None if getattr(obj, name) is irNull else getattr(obj, name)) for name in VALUES}


def check_query(rows: dict[int, dict[str, Any]], query: dict[str, Any]) -> None:
    want = expected_pks(rows, query)
    assert_query_set(build(query), rows, want, query["slice"])


def assert_query_set(qs: Any, rows: dict[int, dict[str, Any]], want: list[int],
                     page: tuple[int, int | None] | None) -> None:
    """Every terminal of ``qs`` gives the pks ``want`` (in order) and the stored rows."""
    event("result: " + ("empty" if not want else "everything" if len(want) == len(rows) else "some"))
    assert qs.getPrimaryKeys() == want
    found = qs.all()
    assert [o._id for o in found] == want
    for obj in found:
        assert row_of(obj) == rows[obj._id]
    assert qs.count() == len(want)
    assert qs.exists() is bool(want)
    first, last = qs.first(), qs.last()
    assert (first and first._id, last and last._id) == ((want[0], want[-1]) if want else (None, None))
    if page is not None:
        start, stop = page
        assert [o._id for o in qs[start:stop]] == want[start:stop]
        if start < len(want):
            assert qs[start]._id == want[start]
        else:
            with pytest.raises(IndexError):
                qs[start]


def load(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    pks = QItem.reset([QItem(note=f"row {i}", **row) for i, row in enumerate(rows)])
    return dict(zip(pks, rows))


# ---- tests --------------------------------------------------------------------------------------


@settings(max_examples=150, **SETTINGS)
@given(rows=datasets, data=st.data())
def test_queries_match_python_model(redis_client: redis.Redis, rows: list[dict[str, Any]],
                                    data: st.DataObject) -> None:
    stored = load(rows)
    for query in draw_queries(data, stored, TEXT_LOOKUPS):
        check_query(stored, query)


# ---- random writes, then queries ---------------------------------------------------------------

partial_rows = st.fixed_dictionaries(
    {}, optional={name: nullable(strategy) for name, strategy in VALUES.items()})
operations = st.lists(st.one_of(
    st.tuples(st.just("save"), rows_strategy),
    st.tuples(st.just("update"), st.integers(0, 50), partial_rows),
    st.tuples(st.just("delete"), st.integers(0, 50)),
    st.tuples(st.just("batch"), st.lists(rows_strategy, min_size=1, max_size=3)),
    st.tuples(st.just("stale"), st.integers(0, 50), partial_rows, partial_rows),
), max_size=14)


def stored_form(name: str, value: Any) -> Any:
    field = QItem._meta.fields_by_name[name]
    return field.toStorage(field.fromInput(value))


def apply_operations(rows: dict[int, dict[str, Any]], ops: list[tuple[Any, ...]]) -> None:
    for op in ops:
        kind = op[0]
        if kind == "save":
            obj = QItem(**op[1])
            rows[obj.save()] = dict(op[1])
            continue
        if kind == "batch":
            objs = [QItem(**row) for row in op[1]]
            for pk, row in zip(QItem.saver.save(objs), op[1]):
                rows[pk] = dict(row)
            continue
        if not rows:
            continue
        pk = sorted(rows)[op[1] % len(rows)]
        obj = QItem.objects.get(pk)
        if kind == "delete":
            assert obj.delete() is True
            del rows[pk]
        elif kind == "update":
            for name, value in op[2].items():
                setattr(obj, name, value)
            obj.save()
            rows[pk].update(op[2])
        else:  # a stale copy saved after another writer changed the object
            original = dict(rows[pk])
            other = QItem.objects.get(pk)
            for name, value in op[2].items():
                setattr(other, name, value)
            other.save()
            rows[pk].update(op[2])
            for name, value in op[3].items():
                setattr(obj, name, value)
            obj.save()
            # the stale copy writes only the fields it changed (by stored form) from
            # what it was fetched with, over the other writer's values
            rows[pk].update({name: value for name, value in op[3].items()
                             if stored_form(name, value) != stored_form(name, original[name])})


@settings(max_examples=100, **SETTINGS)
@given(rows=st.lists(rows_strategy, max_size=6), ops=operations, data=st.data())
def test_queries_after_random_writes_match_python_model(
        redis_client: redis.Redis, rows: list[dict[str, Any]], ops: list[tuple[Any, ...]],
        data: st.DataObject) -> None:
    stored = load(rows)
    apply_operations(stored, ops)
    records = assert_indexes_consistent(redis_client, QItem)
    assert sorted(records) == sorted(stored)
    assert {o._id: row_of(o) for o in QItem.objects.all()} == stored
    for query in draw_queries(data, stored, TEXT_LOOKUPS):
        check_query(stored, query)


@settings(max_examples=80, **SETTINGS)
@given(rows=datasets, data=st.data())
def test_queries_starting_with_a_text_comparison_match_python_model(
        redis_client: redis.Redis, rows: list[dict[str, Any]], data: st.DataObject) -> None:
    """Every query compares the lexicographic field first (which often drives)."""
    stored = load(rows)
    for query in draw_queries(data, stored, TEXT_LOOKUPS, text_first=True):
        check_query(stored, query)


def test_python_model_of_order_is_the_documented_one() -> None:
    """A guard on the oracle itself: nulls last ascending, first descending, ties by pk,
    descending the exact reverse."""
    rows = {1: {"n": 2}, 2: {"n": None}, 3: {"n": 1}, 4: {"n": 2}, 5: {"n": None}}
    order: Callable[[str], list[int]] = lambda spec: expected_pks(  # noqa: E731
        rows, {"filters": [], "order": spec, "slice": None})
    assert order("n") == [3, 1, 4, 2, 5]
    assert order("-n") == [5, 2, 4, 1, 3]
    assert order("-_id") == [5, 4, 3, 2, 1]
    assert matches(None, "ne", 1) and not matches(None, "gt", 0) and not matches(None, "startswith", "")
    assert matches(-0.0, "eq", 0.0) and matches(None, "in", [None]) and not matches(None, "in", [])
