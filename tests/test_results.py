"""Client-side result lists: every filter operator, sorting, list algebra, and the
Redis-bound methods of IRQueryableList."""

from __future__ import annotations

import copy
import io
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from IndexedRedis import IndexedRedisModel, InvalidQueryError
from IndexedRedis.fields import irNull
from IndexedRedis.results import (
    OPERATORS,
    IRQueryableList,
    QueryableList,
    QueryableListDicts,
    QueryableListMixed,
    QueryableListObjs,
    register,
)


class Obj:
    """A plain object with attributes; hashable by identity like most objects."""

    def __init__(self, **attrs: Any) -> None:
        self.__dict__.update(attrs)

    def __repr__(self) -> str:
        return f"Obj({self.__dict__!r})"


# One dataset, used both as objects and as dicts.  Field "a" holds mixed types on
# purpose: str, int, None, irNull and a missing field.
ROWS: list[dict[str, Any]] = [
    {"name": "Alice", "age": 30, "tags": "red blue", "pets": ["Cat", "dog"], "a": "x"},   # 0
    {"name": "bob", "age": 17, "tags": "green", "pets": [], "a": 5},                     # 1
    {"name": "Carol", "age": None, "tags": "", "pets": ["fish"], "a": None},             # 2
    {"name": "dave", "age": irNull, "tags": irNull, "pets": irNull, "a": irNull},        # 3
    {"name": "ALICE", "age": 45, "tags": "blue,red", "pets": ["DOG"]},                   # 4: no "a"
]


@pytest.fixture(params=["objects", "dicts"])
def items(request: pytest.FixtureRequest) -> list[Any]:
    if request.param == "objects":
        return [Obj(**row) for row in ROWS]
    return [dict(row) for row in ROWS]


@pytest.fixture
def ql(items: list[Any]) -> QueryableList[Any]:
    return QueryableList(items)


def idx(result: list[Any], items: list[Any]) -> list[int]:
    """Positions (in ``items``) of the items in ``result``, by identity."""
    return [next(i for i, it in enumerate(items) if it is r) for r in result]


def check(ql: QueryableList[Any], items: list[Any], expected: list[int], **filters: Any) -> None:
    result = ql.filter(**filters)
    assert type(result) is type(ql)
    assert idx(result, items) == expected, filters


# ---- the registry ------------------------------------------------------------------------


DOCUMENTED = {
    "eq", "ieq", "ne", "ine", "lt", "lte", "gt", "gte", "isnull", "is", "isnot", "in", "notin",
    "contains", "icontains", "notcontains", "noticontains", "inotcontains", "containsAny",
    "notcontainsAny", "splitcontains", "splitnotcontains", "splitcontainsAny",
    "splitnotcontainsAny", "customMatch",
}


def test_every_documented_operator_is_registered() -> None:
    assert DOCUMENTED <= set(OPERATORS)


def test_register_adds_an_operator(ql: QueryableList[Any], items: list[Any]) -> None:
    @register("startswith")
    def _startswith(value: Any, prefix: Any) -> bool:
        return bool(value.startswith(prefix))

    try:
        check(ql, items, [0, 4], name__startswith="A")
        check(ql, items, [], age__startswith="A")  # int/None/irNull: AttributeError -> no match
        check(ql, items, [0, 4], name__startswith="A", age__gt=20)
    finally:
        del OPERATORS["startswith"]
    with pytest.raises(InvalidQueryError):
        ql.filter(name__startswith="A")


# ---- eq / ne / ieq / ine -----------------------------------------------------------------


def test_eq(ql: QueryableList[Any], items: list[Any]) -> None:
    check(ql, items, [0], name="Alice")
    check(ql, items, [0], name__eq="Alice")
    check(ql, items, [1], a=5)
    check(ql, items, [2, 4], a=None)  # a missing field reads as None
    check(ql, items, [3], a=irNull)   # irNull equals only itself
    check(ql, items, [], a="5")
    check(ql, items, [0], name="Alice", age=30)
    check(ql, items, [], name="Alice", age=31)


def test_ne(ql: QueryableList[Any], items: list[Any]) -> None:
    check(ql, items, [1, 2, 3, 4], name__ne="Alice")
    check(ql, items, [0, 1, 3], a__ne=None)
    check(ql, items, [0, 1, 2, 4], a__ne=irNull)
    check(ql, items, [0, 2, 3, 4], a__ne=5)


def test_ieq_ine(ql: QueryableList[Any], items: list[Any]) -> None:
    check(ql, items, [0, 4], name__ieq="alice")
    check(ql, items, [0, 4], name__ieq="ALICE")
    check(ql, items, [1, 2, 3], name__ine="aLiCe")
    # Values without .lower() (int, None, irNull, missing) never equal a string.
    check(ql, items, [0], a__ieq="X")
    check(ql, items, [1, 2, 3, 4], a__ine="X")


def test_ieq_needs_a_string_argument(ql: QueryableList[Any]) -> None:
    for bad in (5, None, irNull):
        with pytest.raises(InvalidQueryError, match="expected a string"):
            ql.filter(name__ieq=bad)


# ---- ordering --------------------------------------------------------------------------


def test_lt_lte_gt_gte(ql: QueryableList[Any], items: list[Any]) -> None:
    check(ql, items, [1], age__lt=30)
    check(ql, items, [0, 1], age__lte=30)
    check(ql, items, [4], age__gt=30)
    check(ql, items, [0, 4], age__gte=30)
    check(ql, items, [0, 1, 4], age__gte=0)


def test_ordering_against_null_or_other_types_does_not_match(
        ql: QueryableList[Any], items: list[Any]) -> None:
    # None, irNull, a missing field and str-vs-int would raise TypeError in Python.
    for op in ("lt", "lte", "gt", "gte"):
        assert idx(ql.filter(**{f"age__{op}": "30"}), items) == []
    check(ql, items, [1], a__gt=0)       # only the int; "x", None, irNull, missing: no match
    check(ql, items, [0], a__gt="a")     # only the str
    check(ql, items, [], age__lt=None)
    check(ql, items, [], age__gte=irNull)


def test_ordering_on_strings(ql: QueryableList[Any], items: list[Any]) -> None:
    check(ql, items, [0, 2, 4], name__lt="a")    # upper-case sorts first
    check(ql, items, [1, 3], name__gte="b")


# ---- null and identity ----------------------------------------------------------------


def test_isnull(ql: QueryableList[Any], items: list[Any]) -> None:
    # None, irNull and a missing field are all null.
    check(ql, items, [2, 3, 4], a__isnull=True)
    check(ql, items, [0, 1], a__isnull=False)
    check(ql, items, [2, 3], age__isnull=True)
    check(ql, items, [0, 1, 4], age__isnull=False)
    check(ql, items, [2, 3], age__isnull=1)


def test_isnull_needs_a_bool(ql: QueryableList[Any]) -> None:
    with pytest.raises(InvalidQueryError, match="True or False"):
        ql.filter(age__isnull="yes")


def test_is_isnot(ql: QueryableList[Any], items: list[Any]) -> None:
    check(ql, items, [2, 4], a__is=None)
    check(ql, items, [3], a__is=irNull)
    check(ql, items, [0, 1, 3], a__isnot=None)
    check(ql, items, [0, 1, 2, 4], a__isnot=irNull)
    marker = object()
    check(ql, items, [], a__is=marker)


# ---- in / notin -------------------------------------------------------------------------


def test_in_notin(ql: QueryableList[Any], items: list[Any]) -> None:
    check(ql, items, [0, 1], name__in=["Alice", "bob", "nobody"])
    check(ql, items, [0, 1], name__in=("Alice", "bob"))
    check(ql, items, [0, 1], name__in={"Alice", "bob"})
    check(ql, items, [2, 3, 4], name__notin=["Alice", "bob"])
    check(ql, items, [1, 2, 4], a__in=[5, None])
    check(ql, items, [0, 3], a__notin=[5, None])
    check(ql, items, [3], a__in=[irNull])
    check(ql, items, [1], a__in=range(10))


def test_in_takes_a_generator_once_for_all_items(ql: QueryableList[Any], items: list[Any]) -> None:
    check(ql, items, [0, 1], name__in=(n for n in ["Alice", "bob"]))


def test_in_unhashable_value_against_a_set(ql: QueryableList[Any], items: list[Any]) -> None:
    # A list can't be looked up in a set: not in it.
    check(ql, items, [], pets__in={"dog"})
    check(ql, items, [0, 1, 2, 3, 4], pets__notin={"dog"})


def test_in_needs_a_collection(ql: QueryableList[Any]) -> None:
    with pytest.raises(InvalidQueryError, match="expected a list"):
        ql.filter(a__in=5)
    with pytest.raises(InvalidQueryError):
        ql.filter(a__notin=None)


# ---- contains family ----------------------------------------------------------------------


def test_contains_notcontains(ql: QueryableList[Any], items: list[Any]) -> None:
    check(ql, items, [0, 4], tags__contains="blue")
    check(ql, items, [0], pets__contains="dog")
    check(ql, items, [4], pets__contains="DOG")
    # None, irNull, an int and a missing field contain nothing.
    check(ql, items, [0], a__contains="x")
    check(ql, items, [1, 2, 3, 4], a__notcontains="x")
    check(ql, items, [1, 2, 3], tags__notcontains="blue")
    check(ql, items, [1, 2, 3, 4], pets__notcontains="dog")


def test_icontains_noticontains(ql: QueryableList[Any], items: list[Any]) -> None:
    check(ql, items, [0, 4], name__icontains="LIC")
    check(ql, items, [1, 2, 3], name__noticontains="LIC")
    check(ql, items, [1, 2, 3], name__inotcontains="LIC")
    # A list field: case-insensitive membership of an element.
    check(ql, items, [0, 4], pets__icontains="Dog")
    check(ql, items, [0], pets__icontains="cat")
    check(ql, items, [1, 2, 3], pets__noticontains="dog")
    # Null and non-text values contain nothing.
    check(ql, items, [0], a__icontains="X")
    check(ql, items, [1, 2, 3, 4], a__inotcontains="X")


def test_containsAny_notcontainsAny(ql: QueryableList[Any], items: list[Any]) -> None:
    check(ql, items, [0, 4], tags__containsAny=["red", "purple"])
    check(ql, items, [0, 1, 4], tags__containsAny=["red", "green"])
    check(ql, items, [2, 3], tags__notcontainsAny=["red", "green"])
    check(ql, items, [0, 2], pets__containsAny=["fish", "dog"])
    check(ql, items, [], pets__containsAny=[])
    check(ql, items, [0, 1, 2, 3, 4], pets__notcontainsAny=[])
    check(ql, items, [1, 3, 4], pets__notcontainsAny=iter(["fish", "dog"]))


def test_containsAny_rejects_a_lone_string(ql: QueryableList[Any]) -> None:
    with pytest.raises(InvalidQueryError, match="list of values"):
        ql.filter(tags__containsAny="red")
    with pytest.raises(InvalidQueryError):
        ql.filter(tags__notcontainsAny=5)


# ---- split family ----------------------------------------------------------------------


def test_splitcontains(ql: QueryableList[Any], items: list[Any]) -> None:
    check(ql, items, [0], tags__splitcontains=(" ", "red"))
    check(ql, items, [4], tags__splitcontains=(",", "red"))
    check(ql, items, [0], tags__splitcontains=(None, "blue"))  # None: split on whitespace
    # "red blue" split by "," is one element, not "red": substring is not enough.
    check(ql, items, [], tags__splitcontains=(",", "re"))
    # irNull, lists and missing fields cannot be split: never contain.
    check(ql, items, [], pets__splitcontains=(" ", "dog"))


def test_splitnotcontains(ql: QueryableList[Any], items: list[Any]) -> None:
    check(ql, items, [1, 2, 3, 4], tags__splitnotcontains=(" ", "red"))
    check(ql, items, [0, 1, 2, 3], tags__splitnotcontains=(",", "red"))
    check(ql, items, [0, 1, 2, 3, 4], pets__splitnotcontains=(" ", "dog"))


def test_splitcontainsAny_splitnotcontainsAny(ql: QueryableList[Any], items: list[Any]) -> None:
    check(ql, items, [0, 1], tags__splitcontainsAny=(" ", ["red", "green"]))
    check(ql, items, [2, 3, 4], tags__splitnotcontainsAny=(" ", ["red", "green"]))
    check(ql, items, [2], tags__splitcontainsAny=(",", [""]))  # "".split(",") == [""]
    check(ql, items, [], tags__splitcontainsAny=(" ", []))


def test_split_operators_check_their_argument(ql: QueryableList[Any]) -> None:
    for bad in ("red", ("red",), (" ", "a", "b"), (5, "red"), None):
        with pytest.raises(InvalidQueryError, match="separator"):
            ql.filter(tags__splitcontains=bad)
    with pytest.raises(InvalidQueryError, match="list of values"):
        ql.filter(tags__splitcontainsAny=(" ", "red"))


# ---- customMatch / customFilter -----------------------------------------------------------


def test_customMatch(ql: QueryableList[Any], items: list[Any]) -> None:
    check(ql, items, [0, 4], age__customMatch=lambda v: isinstance(v, int) and v >= 30)
    check(ql, items, [0, 1, 2, 4], name__customMatch=lambda v: len(v) != 4)


def test_customMatch_errors_propagate(ql: QueryableList[Any]) -> None:
    # Not tolerant: a bug in the user's function surfaces.
    with pytest.raises(TypeError):
        ql.filter(age__customMatch=lambda v: v > 20)
    with pytest.raises(InvalidQueryError, match="function"):
        ql.filter(age__customMatch=5)


def test_customFilter(ql: QueryableList[Any], items: list[Any]) -> None:
    get = QueryableList._get_item_value
    result = ql.customFilter(lambda item: get(item, "name").lower() == "alice")
    assert idx(result, items) == [0, 4]
    assert type(result) is QueryableList


# ---- filter / filterAnd / filterOr --------------------------------------------------------


def test_filter_is_filterAnd(ql: QueryableList[Any], items: list[Any]) -> None:
    assert idx(ql.filterAnd(name__icontains="a", age__gt=20), items) == [0, 4]
    assert idx(ql.filter(name__icontains="a", age__gt=20), items) == [0, 4]


def test_filterOr(ql: QueryableList[Any], items: list[Any]) -> None:
    assert idx(ql.filterOr(name="bob", age__gt=40), items) == [1, 4]
    assert idx(ql.filterOr(a__isnull=True, a=5), items) == [1, 2, 3, 4]


def test_no_filters(ql: QueryableList[Any], items: list[Any]) -> None:
    assert idx(ql.filter(), items) == [0, 1, 2, 3, 4]
    assert idx(ql.filterOr(), items) == []


def test_filters_chain_and_leave_the_original_alone(ql: QueryableList[Any], items: list[Any]) -> None:
    result = ql.filter(age__gte=17).filter(name__icontains="a").filterOr(age=30, age__gt=40)
    assert idx(result, items) == [0, 4]
    assert idx(ql, items) == [0, 1, 2, 3, 4]
    assert result is not ql


def test_field_names_with_double_underscores() -> None:
    items = [{"a__b": 1, "x__": 2, "__y": 3}, {"a__b": 2}]
    ql = QueryableList(items)
    assert ql.filter(a__b__eq=1) == [items[0]]  # field is everything before the last "__"
    assert ql.filter(x__=2) == [items[0]]       # nothing after "__": a plain field name
    assert ql.filter(__y=3) == [items[0]]       # nothing before "__": a plain field name


def test_unknown_operator_lists_valid_ones_and_suggests(ql: QueryableList[Any]) -> None:
    with pytest.raises(ValueError) as info:
        ql.filter(age__gtt=5)
    message = str(info.value)
    assert "'gtt'" in message and "Did you mean 'gt'?" in message
    for name in DOCUMENTED:
        assert name in message
    with pytest.raises(InvalidQueryError, match="Did you mean 'containsAny'"):
        ql.filterOr(tags__containsany=["red"])
    with pytest.raises(InvalidQueryError, match="Did you mean 'icontains'"):
        ql.filter(tags__icontain="red")
    with pytest.raises(InvalidQueryError) as info:
        ql.filter(tags__zzzzzzzz=1)
    assert "Did you mean" not in str(info.value)


def test_unknown_operator_raises_even_on_an_empty_list() -> None:
    with pytest.raises(InvalidQueryError):
        QueryableList([]).filter(a__bogus=1)


def test_objects_with_properties_and_dict_subclasses() -> None:
    class Sized:
        def __init__(self, n: int) -> None:
            self.n = n

        @property
        def double(self) -> int:
            return self.n * 2

    class D(dict):
        pass

    objs = QueryableList([Sized(1), Sized(5)])
    assert [o.n for o in objs.filter(double__gt=4)] == [5]
    dicts = QueryableList([D(n=1), D(n=5)])
    assert dicts.filter(n=5) == [{"n": 5}]


def test_mixed_objects_and_dicts() -> None:
    items: list[Any] = [Obj(n=1), {"n": 2}, Obj(m=3), {"m": 4}]
    ql = QueryableListMixed(items)
    assert ql.filter(n__gte=1) == items[:2]
    assert ql.filter(n__isnull=True) == items[2:]


def test_objs_and_dicts_variants() -> None:
    objs = QueryableListObjs([Obj(n=1), {"n": 2}])
    assert len(objs.filter(n=2)) == 0  # a dict has no attribute "n"
    assert len(objs.filter(n=1)) == 1
    dicts = QueryableListDicts([{"n": 1}, Obj(n=2), [1, 2]])
    assert dicts.filter(n=1) == [{"n": 1}]
    assert len(dicts.filter(n__isnull=True)) == 2
    assert type(dicts.filter(n=1)) is QueryableListDicts


# ---- sort_by ----------------------------------------------------------------------------


def test_sort_by(ql: QueryableList[Any], items: list[Any]) -> None:
    result = ql.sort_by("name")
    assert type(result) is QueryableList
    assert idx(result, items) == [4, 0, 2, 1, 3]
    assert idx(ql.sort_by("name", reverse=True), items) == [3, 1, 2, 0, 4]
    assert idx(ql, items) == [0, 1, 2, 3, 4]  # the original is untouched


def test_sort_by_puts_nulls_first_and_does_not_raise(ql: QueryableList[Any], items: list[Any]) -> None:
    # age: 30, 17, None, irNull, 45 -- nulls first, in their original order (stable).
    assert idx(ql.sort_by("age"), items) == [2, 3, 1, 0, 4]
    assert idx(ql.sort_by("age", reverse=True), items) == [4, 0, 1, 2, 3]
    # a: "x", 5, None, irNull, missing -- mixed types group by type name (int < str).
    assert idx(ql.sort_by("a"), items) == [2, 3, 4, 1, 0]
    assert idx(ql.sort_by("missing"), items) == [0, 1, 2, 3, 4]


# ---- count / all / copies --------------------------------------------------------------


def test_count_and_all(ql: QueryableList[Any], items: list[Any]) -> None:
    assert ql.count() == 5 == len(ql)
    assert ql.count(items[0]) == 1  # list.count(x) still works
    assert QueryableList([1, 1, 2]).count(1) == 2
    everything = ql.all()
    assert type(everything) is QueryableList and everything == ql and everything is not ql
    assert all(a is b for a, b in zip(everything, ql))


def test_copies_and_slices_keep_the_class() -> None:
    ql = QueryableList([3, 1, 2])
    for result in (ql.copy(), copy.copy(ql), ql[1:], ql[::-1], ql * 2, 2 * ql):
        assert type(result) is QueryableList
    assert ql[1:] == [1, 2]
    assert ql * 2 == [3, 1, 2, 3, 1, 2]
    assert ql[0] == 3 and ql[-1] == 2
    deep = copy.deepcopy(QueryableList([{"a": 1}]))
    assert type(deep) is QueryableList and deep == [{"a": 1}]
    assert pickle.loads(pickle.dumps(ql)) == ql
    assert repr(ql) == "QueryableList([3, 1, 2])"


def test_plain_list_behaviour_is_kept() -> None:
    ql = QueryableList([1, 2])
    ql.append(3)
    ql.extend([4])
    ql.sort(reverse=True)
    assert ql == [4, 3, 2, 1] and isinstance(ql, list)
    assert ql.pop() == 1 and ql.index(3) == 1


# ---- list algebra ------------------------------------------------------------------------


@pytest.fixture
def objs() -> list[Obj]:
    return [Obj(n=i) for i in range(6)]


def pick(objs: list[Any], *positions: int) -> QueryableList[Any]:
    return QueryableList([objs[p] for p in positions])


def test_add(objs: list[Obj]) -> None:
    a, b = pick(objs, 0, 1), pick(objs, 3, 5)
    result = a + b
    assert type(result) is QueryableList
    assert idx(result, objs) == [0, 1, 3, 5]
    assert idx(a, objs) == [0, 1] and idx(b, objs) == [3, 5]
    assert idx(a + [objs[2]], objs) == [0, 1, 2]
    assert idx(a + (objs[2],), objs) == [0, 1, 2]  # any iterable, unlike list + tuple


def test_iadd_is_in_place(objs: list[Obj]) -> None:
    a, b = pick(objs, 0, 1), pick(objs, 3, 5)
    before = a
    a += b
    assert a is before and idx(a, objs) == [0, 1, 3, 5] and idx(b, objs) == [3, 5]


def test_sub_removes_every_occurrence(objs: list[Obj]) -> None:
    a, b = pick(objs, 0, 1, 5, 1, 3), pick(objs, 3, 1)
    result = a - b
    assert type(result) is QueryableList and idx(result, objs) == [0, 5]
    assert idx(a, objs) == [0, 1, 5, 1, 3]
    before = a
    a -= b
    assert a is before and idx(a, objs) == [0, 5]
    assert QueryableList(["a", "b", "a"]) - ["a"] == ["b"]


def test_and(objs: list[Obj]) -> None:
    a, b = pick(objs, 0, 1, 2, 1), pick(objs, 2, 1, 4)
    result = a & b
    assert type(result) is QueryableList and idx(result, objs) == [1, 2, 1]
    before = a
    a &= b
    assert a is before and idx(a, objs) == [1, 2, 1]


def test_or(objs: list[Obj]) -> None:
    a, b = pick(objs, 0, 1), pick(objs, 1, 2, 2, 3)
    result = a | b
    assert type(result) is QueryableList and idx(result, objs) == [0, 1, 2, 3]
    before = a
    a |= b
    assert a is before and idx(a, objs) == [0, 1, 2, 3]


def test_xor(objs: list[Obj]) -> None:
    a, b = pick(objs, 0, 1, 2), pick(objs, 2, 3)
    result = a ^ b
    assert type(result) is QueryableList and idx(result, objs) == [0, 1, 3]
    before = a
    a ^= b
    assert a is before and idx(a, objs) == [0, 1, 3]


def test_xor_with_a_filter_is_its_complement(ql: QueryableList[Any], items: list[Any]) -> None:
    adults = ql.filter(age__gte=18)
    assert idx(ql ^ adults, items) == [1, 2, 3]
    assert idx(adults | (ql ^ adults), items) == [0, 4, 1, 2, 3]


def test_algebra_on_unhashable_items() -> None:
    a = QueryableList([{"n": 1}, {"n": 2}, {"n": 3}])
    b = [{"n": 2}, {"n": 4}]
    assert a - b == [{"n": 1}, {"n": 3}]
    assert a & b == [{"n": 2}]
    assert a | b == [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]
    assert a ^ b == [{"n": 1}, {"n": 3}, {"n": 4}]
    assert QueryableList([{1}]) & [frozenset({1})] == [{1}]  # unhashable equal to hashable


def test_algebra_with_a_non_iterable_is_a_type_error() -> None:
    ql = QueryableList([1])
    ops: list[Callable[[], Any]] = [
        lambda: ql + 1, lambda: ql - 1, lambda: ql & 1, lambda: ql | 1, lambda: ql ^ 1,  # type: ignore[operator]
    ]
    for op in ops:
        with pytest.raises(TypeError):
            op()


# ---- subclasses keep their attributes ------------------------------------------------


class Tagged(QueryableList[Any]):
    def __init__(self, items: Any, tag: str) -> None:
        super().__init__(items)
        self.tag = tag


def test_subclass_attributes_survive_every_method() -> None:
    t = Tagged([{"n": 1}, {"n": 2}], tag="mine")
    other = [{"n": 2}, {"n": 3}]
    results: list[Callable[[], Any]] = [
        lambda: t.filter(n=1), lambda: t.filterOr(n=1), lambda: t.customFilter(bool),
        lambda: t.sort_by("n"), lambda: t.all(), lambda: t.copy(), lambda: t[:1],
        lambda: t + other, lambda: t - other, lambda: t & other, lambda: t | other,
        lambda: t ^ other, lambda: copy.copy(t),
    ]
    for make in results:
        result = make()
        assert type(result) is Tagged and result.tag == "mine"


# ---- IRQueryableList ------------------------------------------------------------------


class ResultItem(IndexedRedisModel):
    FIELDS = ["name", "color", "size"]
    INDEXED_FIELDS = ["color"]
    KEY_NAME = "Test:ResultItem"


class OtherItem(IndexedRedisModel):
    FIELDS = ["name"]
    KEY_NAME = "Test:OtherItem"


def make(n: int = 3) -> list[ResultItem]:
    return [ResultItem(name=f"item{i}", color="red" if i % 2 else "blue", size=str(i)) for i in range(n)]


def test_ir_model_given_or_inferred() -> None:
    objs = make()
    assert IRQueryableList(objs, ResultItem).getModel() is ResultItem
    assert IRQueryableList(objs).getModel() is ResultItem
    assert IRQueryableList(objs, mdl=ResultItem).mdl is ResultItem  # 6.x spelling
    empty: IRQueryableList[ResultItem] = IRQueryableList()
    assert empty.getModel() is None and IRQueryableList(None).getModel() is None
    empty.append(objs[0])
    assert empty.getModel() is ResultItem  # inferred once there is an object


def test_ir_model_must_be_a_model() -> None:
    with pytest.raises(ValueError):
        IRQueryableList([], model=dict)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        IRQueryableList([], model=ResultItem())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        IRQueryableList([{"name": "x"}])


def test_ir_filtering_keeps_class_and_model() -> None:
    objs = make(4)
    results = IRQueryableList(objs, ResultItem)
    for result in (results.filter(color="red"), results.sort_by("name", reverse=True),
                   results[1:], results.all(), results - objs[:1], results.filter(color="green")):
        assert type(result) is IRQueryableList and result.getModel() is ResultItem
    assert [o.name for o in results.filter(color="red")] == ["item1", "item3"]
    assert [o.name for o in results.filter(name__splitcontains=("m", "1"))] == ["item1"]
    assert "model=ResultItem" in repr(results.filter(color="green"))


def test_ir_unset_fields_are_null() -> None:
    objs = [ResultItem(name="a"), ResultItem(name="b")]
    # What a typed field holds until set (set directly: field types are not under test).
    objs[0].__dict__["weight"] = irNull
    objs[1].__dict__["weight"] = "heavy"
    results = IRQueryableList(objs)
    assert results.filter(weight__isnull=True) == [objs[0]]
    assert results.filter(weight__ne=irNull) == [objs[1]]
    assert results.filter(weight__gt="a") == [objs[1]]
    assert results.filter(weight__contains="e") == [objs[1]]
    assert results.filter(weight__notcontains="e") == [objs[0]]
    assert results.sort_by("weight", reverse=True) == [objs[1], objs[0]]


def test_ir_empty_list_needs_no_model() -> None:
    empty: IRQueryableList[ResultItem] = IRQueryableList()
    assert empty.delete() == 0
    assert empty.save() == []
    assert empty.reload() == []
    fetched = empty.refetch()
    assert type(fetched) is IRQueryableList and fetched == []


def test_ir_delete_and_save_call_the_model_apis(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wiring only: the model APIs are stubbed (pure Python)."""
    calls: list[tuple[str, Any]] = []

    class Deleter:
        def deleteMultiple(self, objs: Any) -> int:
            calls.append(("delete", objs))
            return len(objs)

    class Saver:
        def save(self, objs: Any) -> list[int]:
            calls.append(("save", objs))
            return list(range(10, 10 + len(objs)))

    monkeypatch.setattr(ResultItem, "deleter", Deleter(), raising=False)
    monkeypatch.setattr(ResultItem, "saver", Saver(), raising=False)
    objs = make(2)
    results = IRQueryableList(objs)
    assert results.save() == [10, 11]
    assert results.delete() == 2
    assert [kind for kind, _ in calls] == ["save", "delete"]
    for _, passed in calls:
        assert type(passed) is list and passed == objs  # a plain list copy, same objects


def test_ir_reload_collects_results_and_key_errors() -> None:
    """Each slot gets what its reload() gives, a missing object its KeyError (the
    others are still reloaded), a None slot None."""
    objs = make(3)
    for obj in objs:
        obj.save()
    stored = ResultItem.objects.get(objs[0]._id)
    stored.name = "renamed elsewhere"
    stored.save()
    objs[1].delete()
    objs[2].name = "unsaved edit"
    objs[1]._id = 999  # as if another process deleted it
    result = IRQueryableList([objs[0], objs[1], None, objs[2], ResultItem(name="never saved")]).reload()
    assert len(result) == 5
    assert result[0] == {"name": ("item0", "renamed elsewhere")} and objs[0].name == "renamed elsewhere"
    assert isinstance(result[1], KeyError) and "999" in str(result[1])
    assert result[2] is None
    assert result[3] == {"name": ("unsaved edit", "item2")} and objs[2].name == "item2"
    assert isinstance(result[4], KeyError) and "never saved" in str(result[4])


def test_ir_refetch_against_redis() -> None:
    objs = make(3)
    for obj in objs:
        obj.save()
    unsaved = ResultItem(name="never saved")
    gone = ResultItem(name="deleted")
    gone.save()
    gone_pk = gone.getPk()
    results = IRQueryableList([*objs, unsaved, gone], ResultItem)
    gone.delete()
    gone.__dict__["_id"] = gone_pk  # still holds the pk of an object no longer stored
    objs[0].name = "changed locally"
    fresh = results.refetch()
    assert type(fresh) is IRQueryableList and fresh.getModel() is ResultItem
    assert [o.getPk() for o in fresh] == [o.getPk() for o in objs]
    assert [o.name for o in fresh] == ["item0", "item1", "item2"]
    assert all(f is not o for f, o in zip(fresh, objs))


def test_ir_pprint() -> None:
    out = io.StringIO()
    IRQueryableList(make(1)).pprint(stream=out)
    assert "'name': 'item0'" in out.getvalue() and "'_id': None" in out.getvalue()


# ---- IRQueryableList against the model APIs --------------------------------------------


@pytest.fixture
def saved() -> IRQueryableList[ResultItem]:
    objs = make(4)
    for obj in objs:
        obj.save()
    return IRQueryableList(objs, ResultItem)


def test_query_results_are_ir_queryable_lists(saved: IRQueryableList[ResultItem]) -> None:
    results = ResultItem.objects.all()
    assert type(results) is IRQueryableList and results.getModel() is ResultItem
    reds = results.filter(color="red", size__in=["1", "2"])
    assert type(reds) is IRQueryableList and [o.name for o in reds] == ["item1"]


def test_ir_save_against_redis() -> None:
    objs = make(3)
    results = IRQueryableList(objs, ResultItem)
    pks = results.save()
    assert pks == [o.getPk() for o in objs] and all(pk is not None for pk in pks)
    assert [o.name for o in ResultItem.objects.all()] == ["item0", "item1", "item2"]


def test_ir_delete_against_redis(saved: IRQueryableList[ResultItem]) -> None:
    assert saved.filter(color="red").delete() == 2
    assert sorted(o.name for o in ResultItem.objects.all()) == ["item0", "item2"]
    assert saved.filter(color="red").delete() == 0  # already gone


def test_ir_reload_against_redis(saved: IRQueryableList[ResultItem]) -> None:
    saved[0].name = "changed locally"
    ResultItem.objects.filter(color="red").delete()  # items 1 and 3
    result = saved.reload()
    assert len(result) == 4
    assert isinstance(result[1], KeyError) and isinstance(result[3], KeyError)
    assert not isinstance(result[0], KeyError) and not isinstance(result[2], KeyError)
    assert saved[0].name == "item0"
    assert isinstance(IRQueryableList([ResultItem(name="unsaved")]).reload()[0], KeyError)


def test_ir_none_slots_from_getMultiple(saved: IRQueryableList[ResultItem]) -> None:
    pks = [o.getPk() for o in saved]
    saved[1].delete()
    fetched = ResultItem.objects.getMultiple(pks)
    assert type(fetched) is IRQueryableList and fetched[1] is None
    assert fetched.getModel() is ResultItem
    assert IRQueryableList(list(fetched)).getModel() is ResultItem  # inferred past the None
    assert [o.name for o in fetched.refetch()] == ["item0", "item2", "item3"]
    assert len(fetched.reload()) == 4 and fetched.reload()[1] is None
    assert fetched.filter(color="blue") == [fetched[0], fetched[2]]
    assert fetched.save() == [pks[0], pks[2], pks[3]]
    assert fetched.delete() == 3
    assert ResultItem.objects.count() == 0
