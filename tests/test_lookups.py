"""Server-side lookups beyond equality, ordering, slicing and iteration, by example.

Every lookup (eq, ne, in, isnull, gt, gte, lt, lte, range, startswith) on every field
kind that supports it; the errors for the ones that do not; ``orderBy`` on numbers,
datetimes and text; pages (``qs[a:b]``, ``qs[i]``), ``iterate``, ``count``, ``exists``,
``first`` / ``last``; one round trip per query; and the sorted-set indexes kept exact
by every write path (save, partial update, delete, reset).

The query engine picks the smallest positive condition to drive and checks the
others member by member, and walks the ordered index when nothing drives; several
tests therefore ask the same question both ways (see ``both_paths``) -- the answer
must not depend on which index the planner happened to pick.
"""

from __future__ import annotations

import datetime as dt
import inspect
import random
from collections.abc import Callable, Iterable
from typing import Any

import pytest
import redis
from consistency import assert_indexes_consistent, assert_no_garbage
from monitor import CommandLog

from IndexedRedis import (
    FieldValueError,
    IndexedRedisModel,
    InvalidQueryError,
    IRClassicField,
    IRField,
    IRFixedPointField,
    irNull,
)

UTC = dt.timezone.utc


class Product(IndexedRedisModel):
    FIELDS = [
        IRField("qty", valueType=int),
        IRField("price", valueType=float),
        IRFixedPointField("cost", decimalPlaces=2),
        IRField("when", valueType=dt.datetime),
        IRField("active", valueType=bool),
        IRField("name", valueType=str),                      # text, lexicographic index
        IRClassicField("code"),                               # classic text, lexicographic index
        "category",                                           # text, equality-only index
        IRField("digest", valueType=str, hashIndex=True),     # hashed, equality-only index
        "note",                                               # not indexed
    ]
    INDEXED_FIELDS = ["qty", "price", "cost", "when", "active", "category", "digest"]
    LEX_INDEXED_FIELDS = ["name", "code"]
    KEY_NAME = "lookups:product"


NUMERIC = ["qty", "price", "cost", "when", "active"]
LEX = ["name", "code"]


# ---- helpers ---------------------------------------------------------------------------------


def load(rows: Iterable[dict[str, Any]]) -> list[int]:
    """Replace the dataset with one object per row; returns their pks (ascending)."""
    pks = Product.reset([Product(**row) for row in rows])
    assert pks == sorted(pks)
    return pks


def where(pks: list[int], rows: list[dict[str, Any]], field: str,
          pred: Callable[[Any], bool]) -> list[int]:
    """pks (ascending) whose row's ``field`` (None when absent) satisfies ``pred``."""
    return [pk for pk, row in zip(pks, rows) if pred(row.get(field))]


def check(qs: Any, expected: list[int]) -> None:
    """Every terminal of ``qs`` agrees with ``expected`` (pks in the query's order)."""
    assert qs.getPrimaryKeys() == expected
    assert [o._id for o in qs.all()] == expected
    assert qs.count() == len(expected)
    assert len(qs) == len(expected)
    assert qs.exists() is bool(expected)
    if expected:
        assert qs.first()._id == expected[0]
        assert qs.last()._id == expected[-1]
    else:
        assert qs.first() is None and qs.last() is None


def ordered(pks: list[int], rows: list[dict[str, Any]], field: str, descending: bool = False,
            keep: Callable[[dict[str, Any]], bool] = lambda row: True) -> list[int]:
    """The documented order: by value, irNull last, ties by pk; DESC = reverse of ASC."""
    chosen = [(row.get(field), pk) for pk, row in zip(pks, rows) if keep(row)]
    out = [pk for _, pk in sorted(chosen, key=lambda item: (item[0] is None,
                                                             0 if item[0] is None else item[0],
                                                             item[1]))]
    return out[::-1] if descending else out


def both_paths(filters: dict[str, Any]) -> list[Any]:
    """The same query driven by its own conditions, and (through a condition every
    object meets that is bigger than any index) walked or sorted the other way; plus a
    negative-only form.  ``category='all'`` must be set on every row."""
    return [Product.objects.filter(**filters),
            Product.objects.filter(category="all").filter(**filters),
            Product.objects.filter(digest__ne="no such digest").filter(**filters)]


# ---- numeric comparisons are by value ----------------------------------------------------------


INT_VALUES = [9, 10, -3, 100, 0, None, 2, -20, 9, 1_000_000, -1_000_001]


@pytest.mark.parametrize("lookup,arg,pred", [
    ("gt", 9, lambda v: v > 9),
    ("gte", 9, lambda v: v >= 9),
    ("lt", 10, lambda v: v < 10),
    ("lte", 10, lambda v: v <= 10),
    ("gt", -3, lambda v: v > -3),
    ("lt", -3, lambda v: v < -3),
    ("gte", "10", lambda v: v >= 10),          # filter values are converted like saved ones
    ("range", (-3, 10), lambda v: -3 <= v <= 10),
    ("range", (10, -3), lambda v: False),      # an empty range
    ("range", (9, 9), lambda v: v == 9),
    ("gt", 1_000_000, lambda v: False),
    ("gte", -1_000_001, lambda v: True),
])
def test_int_comparisons_are_by_value(lookup: str, arg: Any, pred: Callable[[Any], bool]) -> None:
    rows = [{"qty": v, "category": "all"} for v in INT_VALUES]
    pks = load(rows)
    expected = where(pks, rows, "qty", lambda v: v is not None and pred(v))
    for qs in both_paths({f"qty__{lookup}": arg}):
        check(qs, expected)


FLOAT_VALUES = [-1.5, -0.0, 0.0, 0.5, 2.25, 10.0, 9.0, float("inf"), float("-inf"), None, 1e-300,
                1e300, -2.5e-8]


@pytest.mark.parametrize("lookup,arg,pred", [
    ("gt", 0.0, lambda v: v > 0.0),
    ("gte", -0.0, lambda v: v >= 0.0),        # -0.0 == 0.0
    ("lt", 0.0, lambda v: v < 0.0),           # neither zero
    ("lte", 0, lambda v: v <= 0.0),
    ("gt", 9, lambda v: v > 9.0),
    ("lt", 10.0, lambda v: v < 10.0),
    ("range", (0.5, 10), lambda v: 0.5 <= v <= 10.0),
    ("range", (float("-inf"), float("inf")), lambda v: True),
    ("gte", float("inf"), lambda v: v == float("inf")),
    ("gt", float("inf"), lambda v: False),
    ("lt", float("-inf"), lambda v: False),
    ("lte", "-1.5", lambda v: v <= -1.5),
    ("gt", float("nan"), lambda v: False),    # nothing compares with nan
])
def test_float_comparisons_are_by_value(lookup: str, arg: Any, pred: Callable[[Any], bool]) -> None:
    rows = [{"price": v, "category": "all"} for v in FLOAT_VALUES]
    pks = load(rows)
    expected = where(pks, rows, "price", lambda v: v is not None and pred(v))
    for qs in both_paths({f"price__{lookup}": arg}):
        check(qs, expected)


def test_float_nan_values_match_no_comparison_but_are_counted() -> None:
    rows = [{"price": v, "category": "all"} for v in [1.0, float("nan"), None, -1.0]]
    pks = load(rows)
    for qs in both_paths({"price__gt": -100}):
        check(qs, [pks[0], pks[3]])
    for qs in both_paths({"price__lt": 100}):
        check(qs, [pks[0], pks[3]])
    check(Product.objects.filter(price=float("nan")), [pks[1]])   # equality finds nan
    check(Product.objects.filter(price__isnull=False), [pks[0], pks[1], pks[3]])
    assert Product.objects.count() == 4


# Regression: this was a bug before the change that fixed it.
def test_order_by_float_keeps_nan_values() -> None:
    rows = [{"price": v, "category": "all"} for v in [1.0, float("nan"), None, -1.0]]
    pks = load(rows)
    walked = Product.objects.orderBy("price").getPrimaryKeys()
    sorted_ = Product.objects.filter(category="all").orderBy("price").getPrimaryKeys()
    assert sorted(walked) == pks, "every object must be returned"
    assert walked == sorted_, "the order must not depend on the plan"
    assert Product.objects.orderBy("-price").getPrimaryKeys() == walked[::-1]


COSTS = [0.1, 0.25, 10, 9.99, -0.01, 100.5, None, 1.22, 1.23]


@pytest.mark.parametrize("lookup,arg,pred", [
    ("gt", 9.99, lambda v: v > 9.99),
    ("gte", 1.23, lambda v: v >= 1.23),
    ("lt", 0.25, lambda v: v < 0.25),
    ("lte", "0.25", lambda v: v <= 0.25),
    ("range", (0, 10), lambda v: 0 <= v <= 10),
    ("gt", -1, lambda v: True),
])
def test_fixed_point_comparisons_are_by_value(lookup: str, arg: Any, pred: Callable[[Any], bool]) -> None:
    rows = [{"cost": v, "category": "all"} for v in COSTS]
    pks = load(rows)
    expected = where(pks, rows, "cost", lambda v: v is not None and pred(v))
    for qs in both_paths({f"cost__{lookup}": arg}):
        check(qs, expected)


# Regression: this was a bug before the change that fixed it.
@pytest.mark.parametrize("lookup,arg,pred", [
    ("gte", 1.224, lambda v: v >= 1.224),
    ("gt", 1.226, lambda v: v > 1.226),
    ("lte", 1.226, lambda v: v <= 1.226),
    ("range", (1.224, 1.226), lambda v: 1.224 <= v <= 1.226),
])
def test_fixed_point_bounds_are_not_rounded(lookup: str, arg: Any, pred: Callable[[Any], bool]) -> None:
    rows = [{"cost": v} for v in [1.22, 1.23, None]]
    pks = load(rows)
    expected = where(pks, rows, "cost", lambda v: v is not None and pred(v))
    assert Product.objects.filter(**{f"cost__{lookup}": arg}).getPrimaryKeys() == expected


NAIVE_DATES = [
    dt.datetime(2020, 1, 1),
    dt.datetime(1999, 12, 31, 23, 59, 59, 999_999),
    dt.datetime(2020, 1, 1, 0, 0, 0, 1),
    dt.datetime(1969, 7, 20, 20, 17, 40),      # before 1970: a negative score
    None,
    dt.datetime(2038, 1, 19, 3, 14, 8),
    dt.datetime(2020, 1, 1),
]


@pytest.mark.parametrize("lookup,arg,pred", [
    ("gt", dt.datetime(2020, 1, 1), lambda v: v > dt.datetime(2020, 1, 1)),
    ("gte", dt.datetime(2020, 1, 1), lambda v: v >= dt.datetime(2020, 1, 1)),
    ("lt", dt.datetime(2000, 1, 1), lambda v: v < dt.datetime(2000, 1, 1)),
    ("lte", "1999-12-31T23:59:59.999999", lambda v: v <= dt.datetime(1999, 12, 31, 23, 59, 59, 999_999)),
    ("range", (dt.datetime(1969, 1, 1), dt.datetime(2020, 1, 1)),
     lambda v: dt.datetime(1969, 1, 1) <= v <= dt.datetime(2020, 1, 1)),
])
def test_naive_datetime_comparisons(lookup: str, arg: Any, pred: Callable[[Any], bool]) -> None:
    rows = [{"when": v, "category": "all"} for v in NAIVE_DATES]
    pks = load(rows)
    expected = where(pks, rows, "when", lambda v: v is not None and pred(v))
    for qs in both_paths({f"when__{lookup}": arg}):
        check(qs, expected)


def test_aware_datetimes_compare_and_order_by_instant() -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    minus4 = dt.timezone(dt.timedelta(hours=-4))
    values = [
        dt.datetime(2021, 6, 1, 12, 0, tzinfo=plus2),      # 10:00Z
        dt.datetime(2021, 6, 1, 11, 0, tzinfo=UTC),        # 11:00Z
        dt.datetime(2021, 6, 1, 5, 0, tzinfo=minus4),      # 09:00Z
        None,
        dt.datetime(2021, 6, 1, 6, 0, tzinfo=minus4),      # 10:00Z, the same instant as the first
        dt.datetime(2021, 5, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ]
    rows = [{"when": v, "category": "all"} for v in values]
    pks = load(rows)
    bound = dt.datetime(2021, 6, 1, 12, 0, tzinfo=plus2)  # 10:00Z
    for qs in both_paths({"when__gt": bound}):
        check(qs, [pks[1]])
    for qs in both_paths({"when__gte": dt.datetime(2021, 6, 1, 10, 0, tzinfo=UTC)}):
        check(qs, [pks[0], pks[1], pks[4]])
    minus8 = dt.timezone(dt.timedelta(hours=-8))
    for qs in both_paths({"when__lt": dt.datetime(2021, 6, 1, 2, 30, tzinfo=minus8)}):
        check(qs, [pks[0], pks[2], pks[4], pks[5]])   # before 10:30Z
    # equality is by instant too
    check(Product.objects.filter(when=dt.datetime(2021, 6, 1, 10, 0, tzinfo=UTC)), [pks[0], pks[4]])
    want = [pks[5], pks[2], pks[0], pks[4], pks[1], pks[3]]
    for qs in (Product.objects, Product.objects.filter(category="all")):
        check(qs.orderBy("when"), want)
        check(qs.orderBy("-when"), want[::-1])
    fetched = Product.objects.orderBy("when").all()
    assert [o.when for o in fetched] == [values[pks.index(o._id)] or irNull for o in fetched]


def test_bool_comparisons_and_order() -> None:
    values = [True, False, None, True, False, True]
    rows = [{"active": v, "category": "all"} for v in values]
    pks = load(rows)
    trues = where(pks, rows, "active", lambda v: v is True)
    falses = where(pks, rows, "active", lambda v: v is False)
    for qs in both_paths({"active__gt": False}):
        check(qs, trues)
    for qs in both_paths({"active__lt": True}):
        check(qs, falses)
    for qs in both_paths({"active__gte": False}):
        check(qs, sorted(trues + falses))
    for qs in both_paths({"active__range": (True, True)}):
        check(qs, trues)
    check(Product.objects.filter(active__in=[True, None]),
          where(pks, rows, "active", lambda v: v is not False))
    check(Product.objects.orderBy("active"), falses + trues + [pks[2]])
    check(Product.objects.orderBy("-active"), [pks[2]] + trues[::-1] + falses[::-1])
    assert ordered(pks, rows, "active") == falses + trues + [pks[2]]


@pytest.mark.xfail(strict=True, reason=(
    "LIMITATION (documented in the README): int scores are floats, so ints beyond "
    "2**53 compare by their float "
    "approximation (2**53 + 1 is not > 2**53; every int beyond the float range scores "
    "inf, so 10**401 is not > 10**400) and tie, ordered by pk instead of value"))
@pytest.mark.parametrize("big", [2 ** 53, 10 ** 400, -(10 ** 400) - 3],
                         ids=["2**53", "10**400", "-10**400-3"])
def test_huge_ints_compare_by_value(big: int) -> None:
    rows = [{"qty": big + 1}, {"qty": big}, {"qty": big + 2}]
    pks = load(rows)
    assert Product.objects.filter(qty__gt=big).getPrimaryKeys() == [pks[0], pks[2]]
    assert Product.objects.orderBy("qty").getPrimaryKeys() == [pks[1], pks[0], pks[2]]


def test_ints_beyond_the_float_range_are_saved_and_sort_at_their_end(redis_client: redis.Redis) -> None:
    rows = [{"qty": 10 ** 400, "category": "all"}, {"qty": -(10 ** 400), "category": "all"},
            {"qty": 10 ** 300, "category": "all"}, {"qty": 0, "category": "all"}, {"category": "all"}]
    pks = load(rows)
    obj = Product(qty=-(10 ** 500), category="all")
    obj.save()
    pks.append(obj._id)
    assert_indexes_consistent(redis_client, Product)
    check(Product.objects.filter(qty=10 ** 400), [pks[0]])
    for qs in both_paths({"qty__gt": 0}):
        check(qs, [pks[0], pks[2]])
    for qs in both_paths({"qty__lt": -(10 ** 300)}):
        check(qs, [pks[1], pks[5]])
    for qs in both_paths({}):
        got = qs.orderBy("qty").getPrimaryKeys()
        assert set(got[:2]) == {pks[1], pks[5]} and got[2:] == [pks[3], pks[2], pks[0], pks[4]]


@pytest.mark.xfail(strict=True, reason=(
    "LIMITATION (documented in the README): datetime scores are float seconds since "
    "1970, which hold microseconds only "
    "within about 1700..2240; later (or earlier) datetimes a microsecond apart get the "
    "same score, so gt misses the later one and ordering falls back to pk "
    "(toScore's docstring promises 'microsecond exact')"))
def test_far_future_datetimes_keep_microsecond_order() -> None:
    base = dt.datetime(9999, 1, 1, 0, 0, 0, 1)
    rows = [{"when": base + dt.timedelta(microseconds=1)}, {"when": base}]
    pks = load(rows)
    assert Product.objects.filter(when__gt=base).getPrimaryKeys() == [pks[0]]
    assert Product.objects.orderBy("when").getPrimaryKeys() == [pks[1], pks[0]]


# ---- in / isnull / ne ----------------------------------------------------------------------------


def test_in_lookup() -> None:
    rows = [{"qty": v, "category": c, "name": n, "digest": d, "price": p}
            for v, c, n, d, p in [(1, "a", "x", "d1", 0.0), (2, "b", "y", "d2", -0.0),
                                  (None, "c", None, None, 1.5), (1, "", "", "d1", None),
                                  (3, "a", "x", "d3", 2.0)]]
    pks = load(rows)
    check(Product.objects.filter(qty__in=[1, 3]), [pks[0], pks[3], pks[4]])
    check(Product.objects.filter(qty__in=["2", 2, 2.0]), [pks[1]])          # converted, deduplicated
    check(Product.objects.filter(qty__in=[None, 3]), [pks[2], pks[4]])       # irNull in the list
    check(Product.objects.filter(qty__in=[irNull]), [pks[2]])
    check(Product.objects.filter(qty__in=(v for v in [2, 3])), [pks[1], pks[4]])  # any iterable
    check(Product.objects.filter(qty__in=[]), [])                            # empty list: nothing
    check(Product.objects.filter(qty__in=[]).filter(category="a"), [])
    check(Product.objects.filter(qty__in=[]).orderBy("-qty"), [])
    check(Product.objects.filter(qty__in=[1]).filter(qty__in=[3]), [])
    check(Product.objects.filter(category__in=["a", ""]), [pks[0], pks[3], pks[4]])
    check(Product.objects.filter(name__in=["x", None]), [pks[0], pks[2], pks[4]])
    check(Product.objects.filter(digest__in=["d1", "d3"]), [pks[0], pks[3], pks[4]])   # hashed index
    check(Product.objects.filter(price__in=[0.0]), [pks[0], pks[1]])         # -0.0 == 0.0
    check(Product.objects.filter(qty__in=[1, 2, 3], category__in=["a", "b"]), [pks[0], pks[1], pks[4]])


def test_isnull_lookup() -> None:
    rows = [{"qty": 1, "name": "a"}, {"qty": None, "name": None}, {"qty": 0, "name": ""},
            {"name": "b"}]
    pks = load(rows)
    check(Product.objects.filter(qty__isnull=True), [pks[1], pks[3]])
    check(Product.objects.filter(qty__isnull=False), [pks[0], pks[2]])
    check(Product.objects.filter(name__isnull=True), [pks[1]])
    check(Product.objects.filter(name__isnull=False), [pks[0], pks[2], pks[3]])   # '' is a value
    check(Product.objects.filter(qty__isnull=True, name__isnull=False), [pks[3]])
    check(Product.objects.filter(qty__isnull=True).filter(qty__isnull=False), [])
    check(Product.objects.filter(qty=None), [pks[1], pks[3]])                # = None is isnull
    check(Product.objects.filter(qty__eq=None), [pks[1], pks[3]])


def test_ne_includes_irnull_values() -> None:
    rows = [{"qty": 1, "category": "x"}, {"qty": None, "category": "x"}, {"qty": 2, "category": "y"},
            {"qty": 1, "category": "y"}]
    pks = load(rows)
    check(Product.objects.filter(qty__ne=1), [pks[1], pks[2]])
    check(Product.objects.filter(qty__ne=None), [pks[0], pks[2], pks[3]])
    check(Product.objects.filter(qty__ne=1, category="x"), [pks[1]])
    check(Product.objects.filter(category="y").filter(qty__ne=2), [pks[3]])
    check(Product.objects.filter(qty__ne=1).filter(qty__ne=2), [pks[1]])
    check(Product.objects.filter(qty__ne=1).filter(qty__gt=0), [pks[2]])


# ---- startswith and text ranges -----------------------------------------------------------------


NAMES = ["apple", "apricot", "banana", "ap", "a", "", None, "Apple", "épée", "é", "日本語", "日本",
         "\U0010ffff", "\U0010ffffx", "z\U0010ffff", "a\U0010ffff", "ab", "b", "\uffff", "\u07ff"]


@pytest.mark.parametrize("prefix", ["ap", "", "A", "a", "é", "日本", "\U0010ffff", "a\U0010ffff", "\u07ff",
                                    "\uffff", "z", "apples", "日本語!", "b", "ba"])
@pytest.mark.parametrize("field", LEX)
def test_startswith(field: str, prefix: str) -> None:
    rows = [{field: n, "category": "all"} for n in NAMES]
    pks = load(rows)
    if field == "code":  # a classic field stores None as ''
        expected = [pk for pk, n in zip(pks, NAMES) if (n or "").startswith(prefix)]
    else:
        expected = where(pks, rows, field, lambda v: v is not None and v.startswith(prefix))
    for qs in both_paths({f"{field}__startswith": prefix}):
        check(qs, expected)


def test_startswith_combines_with_other_conditions() -> None:
    rows = [{"name": n, "qty": i, "category": "even" if i % 2 == 0 else "odd"} for i, n in enumerate(NAMES)]
    pks = load(rows)
    check(Product.objects.filter(name__startswith="ap", category="odd"),
          [pk for pk, r in zip(pks, rows) if (r["name"] or "-").startswith("ap") and r["category"] == "odd"])
    check(Product.objects.filter(name__startswith="a").filter(qty__gte=3).filter(name__ne="ab"),
          [pk for pk, r in zip(pks, rows)
           if (r["name"] or "-").startswith("a") and r["qty"] >= 3 and r["name"] != "ab"])
    check(Product.objects.filter(name__startswith="a", code__startswith="x"), [])
    check(Product.objects.filter(name__startswith="a").filter(name__startswith="ap"),
          [pk for pk, r in zip(pks, rows) if (r["name"] or "-").startswith("ap")])


@pytest.mark.parametrize("lookup,arg,pred", [
    ("gte", "b", lambda v: v >= "b"),
    ("lt", "b", lambda v: v < "b"),
    ("gte", "", lambda v: True),
    ("lt", "", lambda v: False),
    ("lt", "é", lambda v: v < "é"),
    ("gte", "日本", lambda v: v >= "日本"),
    ("lt", "\U0010ffff", lambda v: v < "\U0010ffff"),
])
@pytest.mark.parametrize("field", LEX)
def test_text_ranges_in_code_point_order(field: str, lookup: str, arg: Any,
                                         pred: Callable[[Any], bool]) -> None:
    names = [n for n in NAMES if n is not None]
    rows = [{field: n, "category": "all"} for n in names]
    pks = load(rows)
    expected = where(pks, rows, field, pred)
    for qs in both_paths({f"{field}__{lookup}": arg}):
        check(qs, expected)


def test_text_ranges_when_another_condition_drives() -> None:
    """With a one-object equality set driving, the stored text is checked: every
    comparison, inclusive or not, is right there."""
    names = [n for n in NAMES if n is not None]
    rows = [{"name": n, "category": f"c{i}"} for i, n in enumerate(names)]
    pks = load(rows)
    top = "\U0010ffff" * 3
    for pk, row in zip(pks, rows):
        value = row["name"]
        for bound in names:
            cases: list[tuple[str, Any, bool]] = [
                ("gt", bound, value > bound), ("gte", bound, value >= bound), ("lt", bound, value < bound),
                ("range", (bound, top), bound <= value <= top), ("lte", bound, value <= bound),
                ("range", ("", bound), value <= bound), ("range", (bound, bound), value == bound),
                ("startswith", bound, value.startswith(bound))]
            for lookup, arg, hit in cases:
                qs = Product.objects.filter(category=row["category"], **{f"name__{lookup}": arg})
                assert qs.getPrimaryKeys() == ([pk] if hit else []), (value, lookup, arg)


@pytest.mark.parametrize("lookup,arg,pred", [
    ("gt", "b", lambda v: v > "b"),
    ("lte", "b", lambda v: v <= "b"),
    ("range", ("ap", "b"), lambda v: "ap" <= v <= "b"),
    ("gt", "", lambda v: v > ""),
])
@pytest.mark.parametrize("field", LEX)
def test_text_gt_lte_range_when_lex_index_drives(field: str, lookup: str, arg: Any,
                                                 pred: Callable[[Any], bool]) -> None:
    """Inclusive and exclusive bounds are exact when the text index itself drives (a
    regression: its members hold more than the text, so raw bounds were off by the
    values equal to the bound)."""
    names = [n for n in NAMES if n is not None]
    rows = [{field: n} for n in names]
    pks = load(rows)
    expected = where(pks, rows, field, pred)
    qs = Product.objects.filter(**{f"{field}__{lookup}": arg})
    assert qs.getPrimaryKeys() == expected
    assert qs.count() == len(expected)


NUL_TEXTS = ["a\x00", "a", "a\x00b", "\x00", "", "a\x00\x00", "a\x01", "ab", "\x00\x00a", "a\x00\x01"]


@pytest.mark.parametrize("field", LEX)
def test_texts_with_nul_characters_order_compare_and_match_prefixes(field: str) -> None:
    """NUL is an ordinary character: 'a' < 'a\\0' < 'a\\0\\0' < 'a\\0\\1' < 'a\\0b' < 'a\\1'."""
    rows = [{field: t, "category": "all"} for t in NUL_TEXTS]
    pks = load(rows)
    want = ordered(pks, rows, field)
    for qs in both_paths({}):
        check(qs.orderBy(field), want)
        check(qs.orderBy(f"-{field}"), want[::-1])
    for bound in NUL_TEXTS:
        for lookup, pred in [("gt", lambda v, b=bound: v > b), ("gte", lambda v, b=bound: v >= b),
                             ("lt", lambda v, b=bound: v < b), ("lte", lambda v, b=bound: v <= b),
                             ("startswith", lambda v, b=bound: v.startswith(b))]:
            expected = where(pks, rows, field, pred)
            for qs in both_paths({f"{field}__{lookup}": bound}):
                assert qs.getPrimaryKeys() == expected, (lookup, bound)
                assert qs.count() == len(expected), (lookup, bound)


# ---- combinations --------------------------------------------------------------------------------


def make_mixed(n: int = 40, seed: int = 7) -> tuple[list[int], list[dict[str, Any]]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append({
            "qty": rng.choice([None, -5, 0, 1, 2, 9, 10, 11, 100]),
            "price": rng.choice([None, -1.5, 0.0, 0.5, 2.25, 99.0]),
            "when": rng.choice([None, dt.datetime(2020, 1, 1), dt.datetime(2021, 3, 4, 5, 6, 7),
                                dt.datetime(1990, 1, 1)]),
            "name": rng.choice([None, "", "a", "ab", "abc", "b", "ba", "é"]),
            "category": rng.choice(["x", "y", "z"]),
            "note": f"row {i}",
        })
    return load(rows), rows


def test_combinations_in_one_filter_and_chained() -> None:
    pks, rows = make_mixed()
    by_pk = dict(zip(pks, rows))

    def want(pred: Callable[[dict[str, Any]], bool]) -> list[int]:
        return [pk for pk in pks if pred(by_pk[pk])]

    def num(v: Any) -> bool:
        return v is not None

    check(Product.objects.filter(qty__gte=2, qty__lt=11),
          want(lambda r: num(r["qty"]) and 2 <= r["qty"] < 11))
    check(Product.objects.filter(qty__gt=0, price__lte=2.25, category="x"),
          want(lambda r: num(r["qty"]) and r["qty"] > 0 and num(r["price"]) and r["price"] <= 2.25
               and r["category"] == "x"))
    check(Product.objects.filter(qty__gt=0).filter(price__lt=5).filter(name__startswith="a"),
          want(lambda r: num(r["qty"]) and r["qty"] > 0 and num(r["price"]) and r["price"] < 5
               and r["name"] is not None and r["name"].startswith("a")))
    check(Product.objects.filter(category="y", qty__ne=9).filter(when__isnull=False),
          want(lambda r: r["category"] == "y" and r["qty"] != 9 and r["when"] is not None))
    check(Product.objects.filter(qty__ne=None, price__ne=0.0).filter(name__ne="a"),
          want(lambda r: r["qty"] is not None and r["price"] != 0.0 and r["name"] != "a"))
    check(Product.objects.filter(when__range=(dt.datetime(2000, 1, 1), dt.datetime(2030, 1, 1)))
          .filter(category__in=["x", "z"], qty__in=[None, 10]),
          want(lambda r: r["when"] is not None and dt.datetime(2000, 1, 1) <= r["when"]
               and r["category"] in ("x", "z") and r["qty"] in (None, 10)))
    qs = Product.objects.filter(qty__gte=1)
    qs.filterInline(name__gte="b")
    check(qs, want(lambda r: num(r["qty"]) and r["qty"] >= 1 and r["name"] is not None and r["name"] >= "b"))
    # ordered and sliced combinations
    base = Product.objects.filter(qty__gte=0, category__ne="z")
    keep = lambda r: num(r["qty"]) and r["qty"] >= 0 and r["category"] != "z"  # noqa: E731
    check(base.orderBy("price"), ordered(pks, rows, "price", keep=keep))
    check(base.orderBy("-when"), ordered(pks, rows, "when", descending=True, keep=keep))
    assert [o._id for o in base.orderBy("name")[2:7]] == ordered(pks, rows, "name", keep=keep)[2:7]


def test_repeated_and_contradicting_conditions() -> None:
    pks, rows = make_mixed()
    same = Product.objects.filter(qty__gt=1).filter(qty__gt=1)
    assert same.query.conditions == Product.objects.filter(qty__gt=1).query.conditions
    check(Product.objects.filter(qty__gt=10, qty__lt=10), [])
    check(Product.objects.filter(qty=9).filter(qty=10), [])
    check(Product.objects.filter(qty__gte=10).filter(qty__lte=10),
          [pk for pk, r in zip(pks, rows) if r["qty"] == 10])


# ---- errors -----------------------------------------------------------------------------------


def test_unknown_lookup_lists_valid_ones_and_suggests_nearest() -> None:
    with pytest.raises(InvalidQueryError) as info:
        Product.objects.filter(price__gtt=5)
    message = str(info.value)
    assert "'gtt'" in message
    for name in ["eq", "ne", "in", "isnull", "gt", "gte", "lt", "lte", "range", "startswith"]:
        assert name in message
    assert "Did you mean 'gt'?" in message
    with pytest.raises(InvalidQueryError, match="Did you mean 'startswith'"):
        Product.objects.filter(name__startswit="a")
    with pytest.raises(InvalidQueryError, match="Did you mean 'isnull'"):
        Product.objects.filter(qty__is_null=True)


def test_errors_for_unknown_and_unindexed_fields() -> None:
    with pytest.raises(InvalidQueryError, match="not a field.*Did you mean 'price'"):
        Product.objects.filter(pricee__gt=5)
    with pytest.raises(InvalidQueryError, match="not in INDEXED_FIELDS"):
        Product.objects.filter(note__gt="a")


@pytest.mark.parametrize("lookup", ["gt", "gte", "lt", "lte"])
def test_range_on_hashed_text_field_explains(lookup: str) -> None:
    # Every other indexed text field is ordered by its dictionary (tests/test_text_lookups.py).
    with pytest.raises(InvalidQueryError) as info:
        Product.objects.filter(**{f"digest__{lookup}": "a"})
    message = str(info.value)
    assert "digest" in message and "hashed" in message and "text field" in message and "number field" in message


def test_range_lookup_on_hashed_field_explains() -> None:
    with pytest.raises(InvalidQueryError, match="hashed.*text field"):
        Product.objects.filter(digest__range=("a", "b"))


@pytest.mark.parametrize("field", NUMERIC + ["digest"])
def test_startswith_on_non_text_field_is_refused(field: str) -> None:
    with pytest.raises(InvalidQueryError, match="cannot be matched by prefix"):
        Product.objects.filter(**{f"{field}__startswith": "1"})


def test_startswith_on_number_field_says_only_text() -> None:
    with pytest.raises(InvalidQueryError, match="only text fields can be matched by prefix"):
        Product.objects.filter(qty__startswith="1")


@pytest.mark.parametrize("spec,why", [
    ("note", "not indexed"),
    ("-note", "not indexed"),
    ("-digest", "one set per value, which has no order"),
    ("nosuch", "not a field of the model"),
])
def test_order_by_explains_refusal(spec: str, why: str) -> None:
    with pytest.raises(InvalidQueryError) as info:
        Product.objects.orderBy(spec)
    message = str(info.value)
    assert why in message
    assert "text field" in message and "'_id'" in message


@pytest.mark.parametrize("spec", ["", "-", None, 5])
def test_order_by_refuses_malformed_specs(spec: Any) -> None:
    with pytest.raises(InvalidQueryError, match="orderBy expects a field name"):
        Product.objects.orderBy(spec)


@pytest.mark.parametrize("filters,match", [
    ({"qty__in": 5}, "expects a list of values"),
    ({"qty__in": "12"}, "expects a list of values"),
    ({"name__in": b"ab"}, "expects a list of values"),
    ({"qty__isnull": "yes"}, "expects True or False"),
    ({"qty__isnull": 1}, "expects True or False"),
    ({"qty__isnull": None}, "expects True or False"),
    ({"qty__range": (1,)}, r"expects a \(low, high\) pair"),
    ({"qty__range": (1, 2, 3)}, r"expects a \(low, high\) pair"),
    ({"qty__range": 5}, r"expects a \(low, high\) pair"),
    ({"name__range": "ab"}, r"expects a \(low, high\) pair"),
    ({"qty__gt": None}, "use __isnull"),
    ({"when__lte": irNull}, "use __isnull"),
    ({"name__gte": None}, "use __isnull"),
    ({"qty__range": (None, 5)}, "use __isnull"),
    ({"name__startswith": None}, "expects text"),
])
def test_bad_lookup_values_are_refused(filters: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidQueryError, match=match):
        Product.objects.filter(**filters)


@pytest.mark.parametrize("filters", [
    {"qty__gt": "ten"}, {"qty__in": [1, "x"]}, {"qty__gt": 9.5}, {"price__lt": "abc"},
    {"when__gte": "not a date"}, {"active__gt": 7}, {"cost__gt": float("inf")},
])
def test_unconvertible_lookup_values_raise_field_value_error(filters: dict[str, Any]) -> None:
    with pytest.raises(FieldValueError):
        Product.objects.filter(**filters)


def test_range_accepts_any_two_item_iterable() -> None:
    pks = load([{"qty": 1}, {"qty": 5}, {"qty": 9}])
    assert Product.objects.filter(qty__range=(v for v in (2, 9))).getPrimaryKeys() == pks[1:]
    assert Product.objects.filter(qty__range=[1, 5]).getPrimaryKeys() == pks[:2]
    with pytest.raises(InvalidQueryError, match="pair"):
        Product.objects.filter(qty__range=(v for v in (1, 2, 3)))


def test_query_errors_are_raised_when_building_and_leave_the_queryset_usable() -> None:
    pks = load([{"qty": 1}, {"qty": 5}])
    qs = Product.objects.filter(qty__gt=1)
    with pytest.raises(InvalidQueryError):
        qs.filterInline(qty__gtt=3)
    with pytest.raises(InvalidQueryError):
        qs.orderBy("note")
    check(qs, [pks[1]])


# ---- ordering -----------------------------------------------------------------------------------


ORDER_ROWS = {
    "qty": [5, None, 3, 5, None, -1, 3, 10, 9, -1],
    "price": [2.5, -0.5, None, 2.5, 1e10, -1e10, 0.0, None, 2.5, -0.0],
    "cost": [1.5, None, 0.25, 1.5, -3, 100, None, 0.25, 7, 7],
    "when": [dt.datetime(2020, 1, 1), None, dt.datetime(1960, 5, 5), dt.datetime(2020, 1, 1),
             dt.datetime(2020, 1, 1, 0, 0, 0, 1), None, dt.datetime(2099, 1, 1), dt.datetime(1960, 5, 5),
             dt.datetime(2000, 1, 1), dt.datetime(1999, 12, 31, 23, 59, 59)],
    "active": [True, None, False, True, False, None, True, False, True, True],
    "name": ["b", None, "a", "b", "", "é", "ab", None, "B", "\U0001f600"],
    "code": ["b", "", "a", "b", "", "é", "ab", "", "B", "z"],
}


@pytest.mark.parametrize("field", list(ORDER_ROWS))
@pytest.mark.parametrize("descending", [False, True])
def test_order_by_field_nulls_and_ties(field: str, descending: bool) -> None:
    values = ORDER_ROWS[field]
    rows = [{field: v, "category": "all", "qty": i if field != "qty" else v} for i, v in enumerate(values)]
    if field == "code":
        rows = [{**r, field: r[field] or ""} for r in rows]
    pks = load(rows)
    want = ordered(pks, rows, field, descending)
    spec = f"-{field}" if descending else field
    # walked (no driving condition), sorted (a driving equality), negative-only, ranged
    for qs in both_paths({}):
        check(qs.orderBy(spec), want)
    def keep(r: dict[str, Any]) -> bool:
        return r["qty"] is not None and r["qty"] >= 0

    check(Product.objects.filter(qty__gte=0).orderBy(spec), ordered(pks, rows, field, descending, keep))
    check(Product.objects.filter(category="all", qty__gte=0).orderBy(spec),
          ordered(pks, rows, field, descending, keep))
    # DESC is the exact reverse of ASC
    other = field if descending else f"-{field}"
    assert Product.objects.orderBy(other).getPrimaryKeys() == want[::-1]


def test_order_by_pk_and_default_order() -> None:
    pks = load([{"qty": i % 3, "category": "all"} for i in range(12)])
    check(Product.objects, pks)
    check(Product.objects.orderBy("_id"), pks)
    check(Product.objects.orderBy("pk"), pks)
    check(Product.objects.orderBy("-_id"), pks[::-1])
    check(Product.objects.orderBy("-pk").filter(qty=1), [pk for i, pk in enumerate(pks) if i % 3 == 1][::-1])
    check(Product.objects.filter(category="all").orderBy("-_id"), pks[::-1])
    # getPrimaryKeys(sortByAge) and allByAge ignore the order
    qs = Product.objects.orderBy("-qty")
    assert qs.getPrimaryKeys(sortByAge=True) == pks
    assert [o._id for o in qs.allByAge()] == pks
    assert qs.getPrimaryKeys() == ordered(pks, [{"qty": i % 3} for i in range(12)], "qty", True)


def test_order_by_does_not_change_the_original_queryset() -> None:
    pks = load([{"qty": 3 - i} for i in range(4)])
    base = Product.objects.filter(qty__gte=0)
    by_qty = base.orderBy("qty")
    assert by_qty is not base
    assert base.getPrimaryKeys() == pks
    assert by_qty.getPrimaryKeys() == pks[::-1]
    assert by_qty.orderBy("_id").getPrimaryKeys() == pks
    assert "orderBy=qty" in repr(by_qty)
    assert Product.objects.order_by("-qty").getPrimaryKeys() == pks


# ---- slicing, indexing, first / last -----------------------------------------------------------


@pytest.fixture
def hundred() -> tuple[list[int], list[dict[str, Any]]]:
    rng = random.Random(42)
    rows = [{"qty": rng.choice([None] + list(range(-10, 30))),
             "name": rng.choice([None, "a", "b", "ab", "c"]),
             "category": "all" if i % 4 else "quarter"} for i in range(100)]
    return load(rows), rows


@pytest.mark.parametrize("spec", ["_id", "-_id", "qty", "-qty", "name", "-name"])
def test_slices_return_exactly_that_page(hundred: Any, spec: str) -> None:
    pks, rows = hundred
    field = spec.lstrip("-")
    full = pks if field == "_id" else ordered(pks, rows, field)
    if spec.startswith("-"):
        full = full[::-1]
    for base in (Product.objects, Product.objects.filter(category="all"),
                 Product.objects.filter(qty__gte=0)):
        keep_all = base.getPrimaryKeys() if base is not Product.objects else pks
        mine = [pk for pk in full if pk in set(keep_all)]
        qs = base.orderBy(spec)
        assert qs.getPrimaryKeys() == mine
        for start, stop in [(20, 40), (0, 10), (95, 120), (0, 1), (len(mine) - 1, None), (7, None), (0, None),
                            (None, None),
                            (None, 5), (200, 300), (30, 30), (40, 20)]:
            page = qs[start:stop]
            assert [o._id for o in page] == mine[start:stop], (start, stop)
        for i in [0, 1, 19, len(mine) - 1]:
            assert qs[i]._id == mine[i]
        with pytest.raises(IndexError):
            qs[len(mine)]
        assert qs.first()._id == mine[0]
        assert qs.last()._id == mine[-1]


def test_index_and_slice_errors(hundred: Any) -> None:
    qs = Product.objects.orderBy("qty")
    with pytest.raises(ValueError, match="negative"):
        qs[-1]
    with pytest.raises(ValueError, match="negative"):
        qs[-5:]
    with pytest.raises(ValueError, match="negative"):
        qs[0:-1]
    with pytest.raises(ValueError, match="step"):
        qs[0:10:2]
    with pytest.raises(TypeError):
        qs["3"]
    with pytest.raises(IndexError):
        Product.objects.filter(qty__gt=1000)[0]


def test_slice_on_empty_model() -> None:
    assert list(Product.objects.orderBy("qty")[0:10]) == []
    assert Product.objects.orderBy("-name").first() is None
    assert Product.objects.orderBy("-name").last() is None
    with pytest.raises(IndexError):
        Product.objects.orderBy("when")[0]
    assert Product.objects.orderBy("qty").count() == 0
    assert Product.objects.orderBy("qty").exists() is False


def test_first_last_honour_the_order(hundred: Any) -> None:
    pks, rows = hundred
    asc = ordered(pks, rows, "qty")
    assert Product.objects.orderBy("qty").first()._id == asc[0]
    assert Product.objects.orderBy("qty").last()._id == asc[-1]      # an irNull, the newest of them
    assert Product.objects.orderBy("-qty").first()._id == asc[-1]
    assert Product.objects.orderBy("-qty").last()._id == asc[0]
    assert Product.objects.first()._id == pks[0]
    assert Product.objects.last()._id == pks[-1]
    def keep(r: dict[str, Any]) -> bool:
        return r["category"] == "quarter" and r["qty"] is not None

    sub = ordered(pks, rows, "qty", keep=keep)
    qs = Product.objects.filter(category="quarter", qty__isnull=False).orderBy("qty")
    assert (qs.first()._id, qs.last()._id) == (sub[0], sub[-1])


def test_exists_and_count_on_filtered_sets(hundred: Any) -> None:
    pks, rows = hundred
    cases = [
        ({"qty__gt": 25}, lambda r: r["qty"] is not None and r["qty"] > 25),
        ({"qty__gt": 1000}, lambda r: False),
        ({"qty__ne": 3}, lambda r: r["qty"] != 3),
        ({"qty__ne": 3, "name__ne": "a"}, lambda r: r["qty"] != 3 and r["name"] != "a"),
        ({"name__startswith": "a", "category": "quarter"},
         lambda r: (r["name"] or "-").startswith("a") and r["category"] == "quarter"),
        ({"qty__in": []}, lambda r: False),
        ({"qty__isnull": True}, lambda r: r["qty"] is None),
        ({"qty__range": (0, 5), "name__isnull": False},
         lambda r: r["qty"] is not None and 0 <= r["qty"] <= 5 and r["name"] is not None),
    ]
    for filters, pred in cases:
        want = [pk for pk, r in zip(pks, rows) if pred(r)]
        qs = Product.objects.filter(**filters)
        assert qs.count() == len(want), filters
        assert qs.exists() is bool(want), filters
        assert qs.orderBy("-qty").count() == len(want)
        assert qs.orderBy("name").exists() is bool(want)
    # exists(pk): the 6.x form, regardless of filters
    assert Product.objects.exists(pks[3]) is True
    assert Product.objects.exists(str(pks[3])) is True
    assert Product.objects.exists(max(pks) + 1) is False
    Product.objects.get(pks[3]).delete()
    assert Product.objects.exists(pks[3]) is False


# ---- iterate --------------------------------------------------------------------------------------


def evalsha_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(stats.get(name, {}).get("calls", 0)  # Redis 7 runs the read scripts by EVALSHA_RO / EVAL_RO
               for name in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_evalsha_ro", "cmdstat_eval_ro"))


@pytest.mark.usefixtures("evalsha_only")  # counts the EVALSHA path
@pytest.mark.parametrize("spec", ["_id", "-_id", "qty", "-qty", "name", "-name", "price"])
@pytest.mark.parametrize("filtered", [False, True])
def test_iterate_yields_everything_in_order_once(redis_client: redis.Redis, spec: str,
                                                 filtered: bool) -> None:
    rng = random.Random(spec)
    rows = [{"qty": rng.choice([None, 1, 2, 3, 4]), "name": rng.choice([None, "a", "b"]),
             "price": rng.choice([None, 0.5, -2.0]), "category": "all" if i % 5 else "fifth"}
            for i in range(50)]
    load(rows)
    qs = Product.objects.orderBy(spec)
    if filtered:
        qs = qs.filter(category="all")
    want = qs.getPrimaryKeys()
    assert len(want) == (40 if filtered else 50)
    Product.objects.first()  # scripts loaded, generation known
    before = evalsha_calls(redis_client)
    got = [o._id for o in qs.iterate(batchSize=7)]
    assert got == want
    assert len(set(got)) == len(got)
    assert evalsha_calls(redis_client) - before == len(want) // 7 + 1   # one page per call


@pytest.mark.usefixtures("evalsha_only")  # counts the EVALSHA path
def test_iterate_is_a_lazy_generator_holding_one_batch(redis_client: redis.Redis) -> None:
    load([{"qty": i % 6} for i in range(30)])
    want = Product.objects.orderBy("-qty").getPrimaryKeys()
    before = evalsha_calls(redis_client)
    it = Product.objects.orderBy("-qty").iterate(batchSize=7)
    assert inspect.isgenerator(it)
    assert evalsha_calls(redis_client) == before            # nothing asked yet
    got = []
    for n in range(1, 31):
        got.append(next(it)._id)
        # after n objects, only the pages holding them were fetched
        assert evalsha_calls(redis_client) - before == (n - 1) // 7 + 1, n
    with pytest.raises(StopIteration):
        next(it)
    assert got == want
    assert evalsha_calls(redis_client) - before == 30 // 7 + 1


def test_iterate_pk_order_uses_a_cursor(redis_url: str) -> None:
    """pk order pages by 'after pk', so objects deleted behind the cursor do not shift
    the following pages."""
    pks = load([{"qty": i} for i in range(30)])
    it = Product.objects.iterate(batchSize=7)
    got = [next(it)._id for _ in range(7)]
    Product.deleter.deleteMultipleByPks(pks[:7])
    got += [o._id for o in it]
    assert got == pks


def test_iterate_edge_cases() -> None:
    assert list(Product.objects.iterate(batchSize=7)) == []
    pks = load([{"qty": i} for i in range(14)])
    assert [o._id for o in Product.objects.iterate(batchSize=7)] == pks     # exactly two pages
    assert [o._id for o in Product.objects.iterate(batchSize=1)] == pks
    assert [o._id for o in Product.objects.orderBy("-qty").iterate(batchSize=100)] == pks[::-1]
    assert [o._id for o in Product.objects.filter(qty__in=[]).iterate(batchSize=3)] == []
    with pytest.raises(ValueError, match="batchSize"):
        next(Product.objects.iterate(batchSize=0))


# ---- large sets: the chunked walks and the sort limit -------------------------------------------


def test_large_sets_use_walks_and_agree_with_python() -> None:
    n = 6200   # more than the engine's sort limit (5000) and several walk chunks (1000)
    rows = [{"qty": (i * 7919) % 1000 if i % 13 else None, "category": "all" if i % 3 else "third",
             "name": f"n{(i * 31) % 500:03d}"} for i in range(n)]
    pks = load(rows)
    asc = ordered(pks, rows, "qty")
    qs = Product.objects.filter(category__ne="nothing")     # no driver: walk
    big = Product.objects.filter(qty__gte=-1)               # a driver bigger than the sort limit
    assert big.count() == sum(1 for r in rows if r["qty"] is not None)
    assert [o._id for o in qs.orderBy("qty")[4990:5010]] == asc[4990:5010]
    not_null = [pk for pk in asc[::-1] if rows[pks.index(pk)]["qty"] is not None]
    assert [o._id for o in big.orderBy("-qty")[10:20]] == not_null[10:20]
    assert big.orderBy("qty").first()._id == asc[0]
    assert big.first()._id == next(pk for pk, r in zip(pks, rows) if r["qty"] is not None)
    assert big.last()._id == next(pk for pk, r in zip(pks[::-1], rows[::-1]) if r["qty"] is not None)
    assert Product.objects.orderBy("-qty").first()._id == asc[-1]
    assert Product.objects.orderBy("name").getPrimaryKeys() == ordered(pks, rows, "name")
    third = [pk for pk, r in zip(pks, rows) if r["category"] == "third"]
    assert Product.objects.filter(category="third")[1000:1003] == \
        Product.objects.getMultiple(third[1000:1003])
    assert [o._id for o in Product.objects.filter(qty__gte=990).iterate(batchSize=50)] == \
        [pk for pk, r in zip(pks, rows) if r["qty"] is not None and r["qty"] >= 990]


# ---- one round trip per query --------------------------------------------------------------------


@pytest.mark.usefixtures("evalsha_only")  # counts the EVALSHA path
def test_every_query_terminal_is_one_round_trip(log: CommandLog, hundred: Any) -> None:
    Product.objects.filter(qty__gt=1).orderBy("name").all()   # scripts loaded
    qs = Product.objects.filter(qty__gt=1, name__startswith="a").filter(category__ne="x").orderBy("-qty")
    terminals: list[Callable[[], Any]] = [
        qs.all, qs.count, qs.exists, qs.first, qs.last, qs.getPrimaryKeys, lambda: qs[3:9], lambda: qs[2],
        lambda: Product.objects.orderBy("name")[20:40], Product.objects.count,
        lambda: Product.objects.filter(qty__in=[1, 2, None]).all(), lambda: Product.objects.exists(5),
        lambda: Product.objects.filter(price__range=(0, 1)).orderBy("when").first(),
        lambda: len(Product.objects.filter(qty__lt=0)),
    ]
    for terminal in terminals:
        assert log.commands(terminal) == ["EVALSHA"], terminal
    assert log.commands(lambda: Product.objects.filter(qty__gt=0).orderBy("qty")) == []   # lazy
    assert log.commands(lambda: list(Product.objects.orderBy("qty").iterate(batchSize=40))) == \
        ["EVALSHA"] * 3   # 100 objects: pages of 40, 40, 20


# ---- write paths keep the sorted-set indexes exact -------------------------------------------------


def assert_queries_match(rows_by_pk: dict[int, dict[str, Any]]) -> None:
    pks = sorted(rows_by_pk)
    rows = [rows_by_pk[pk] for pk in pks]
    for field in ["qty", "price", "when", "name", "code", "cost"]:
        assert Product.objects.orderBy(field).getPrimaryKeys() == ordered(pks, rows, field), field
        assert Product.objects.filter(category__in=["a", "b", ""]).orderBy(f"-{field}").getPrimaryKeys() == \
            ordered(pks, rows, field, True, keep=lambda r: r.get("category", "") in ("a", "b", "")), field
    assert Product.objects.filter(qty__gte=5).getPrimaryKeys() == \
        [pk for pk, r in zip(pks, rows) if r.get("qty") is not None and r["qty"] >= 5]
    assert Product.objects.filter(qty__lt=5).count() == \
        sum(1 for r in rows if r.get("qty") is not None and r["qty"] < 5)
    assert Product.objects.filter(name__startswith="a").getPrimaryKeys() == \
        [pk for pk, r in zip(pks, rows) if r.get("name") is not None and r["name"].startswith("a")]
    assert Product.objects.filter(code__gte="m").getPrimaryKeys() == \
        [pk for pk, r in zip(pks, rows) if r.get("code", "") >= "m"]
    assert Product.objects.filter(price__isnull=True).getPrimaryKeys() == \
        [pk for pk, r in zip(pks, rows) if r.get("price") is None]


def row_of(obj: Product) -> dict[str, Any]:
    out = {}
    for name in ["qty", "price", "when", "name", "code", "cost", "category"]:
        value = getattr(obj, name)
        out[name] = None if value is irNull else value
    return out


def test_updates_deletes_and_resets_keep_sorted_indexes_exact(redis_client: redis.Redis) -> None:
    rng = random.Random(99)
    objs = [Product(qty=rng.randint(-5, 20), price=rng.choice([None, 1.5, -2.0, 7.25]),
                    when=rng.choice([None, dt.datetime(2020, 1, i + 1)]),
                    name=rng.choice([None, "a", "ab", "b"]),
                    code=rng.choice(["", "m", "n", "a"]), cost=rng.choice([None, 0.5, 3]),
                    category=rng.choice(["a", "b", ""]))
            for i in range(20)]
    Product.saver.save(objs)
    model = {o._id: row_of(o) for o in objs}
    assert_indexes_consistent(redis_client, Product)
    assert_queries_match(model)

    for step in range(60):
        pk = rng.choice(sorted(model))
        obj = Product.objects.get(pk)
        action = rng.choice(["numeric", "lex", "null", "both", "delete", "new", "stale"])
        if action == "numeric":
            obj.qty, obj.price = rng.randint(-5, 20), rng.choice([0.0, 99.5, -1.0])
            obj.cost = rng.randint(0, 4)
            obj.when = dt.datetime(2019, 12, rng.randint(1, 31))
        elif action == "lex":
            obj.name, obj.code = rng.choice(["a", "abc", "ba", "é", ""]), rng.choice(["a", "z", "mm"])
        elif action == "null":
            obj.qty = obj.price = obj.when = obj.name = obj.cost = None
            obj.code = None    # classic: ''
        elif action == "both":
            obj.qty, obj.name = rng.randint(-5, 20), rng.choice(["ab", "b", None])
            obj.category = rng.choice(["a", "b", ""])
        elif action == "delete":
            assert obj.delete()
            del model[pk]
            if len(model) < 3:
                extra = Product(qty=step, name="a", category="a")
                extra.save()
                model[extra._id] = row_of(extra)
            continue
        elif action == "new":
            obj = Product(qty=rng.randint(-5, 20), name=rng.choice(["a", "zz"]), price=step * 0.5,
                          category="b")
        else:  # a stale copy: someone else changes the numeric fields first
            other = Product.objects.get(pk)
            other.qty, other.price = 1000 + step, 0.25
            other.save()
            model[pk] = row_of(other)
            obj.name, obj.code = "stale", "stale"
        obj.save()
        model[obj._id] = row_of(Product.objects.get(obj._id))
        if action == "stale":
            assert model[pk]["qty"] == 1000 + step and model[pk]["name"] == "stale"
        assert_indexes_consistent(redis_client, Product)
    assert_queries_match(model)

    # deletes by a range query, by pk, and a partial reindex
    doomed = Product.objects.filter(qty__gte=10).getPrimaryKeys()
    assert Product.objects.filter(qty__gte=10).delete() == len(doomed)
    for pk in doomed:
        del model[pk]
    assert_indexes_consistent(redis_client, Product)
    assert_queries_match(model)
    Product.objects.filter(name__startswith="a").reindex()
    assert_indexes_consistent(redis_client, Product)
    assert_queries_match(model)

    # reset replaces everything; the old sorted sets are freed
    fresh = [Product(qty=i, name=f"r{i}", price=float(-i), when=dt.datetime(2001, 1, i + 1), code="q",
                     category="a") for i in range(8)]
    pks = Product.reset(fresh)
    model = {pk: row_of(o) for pk, o in zip(pks, fresh)}
    assert_indexes_consistent(redis_client, Product)
    assert_no_garbage(redis_client, Product)
    assert_queries_match(model)
    Product.objects.reindex()
    assert_indexes_consistent(redis_client, Product)
    assert_no_garbage(redis_client, Product)
    assert_queries_match(model)
    Product.reset([])
    assert Product.objects.orderBy("qty").all() == []
    assert_no_garbage(redis_client, Product)
