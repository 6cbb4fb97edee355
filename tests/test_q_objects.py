"""Q objects and exclude(): random condition trees (depth <= 3, every lookup kind,
negations) evaluated on the server, compared with the same trees evaluated in plain
Python over the same objects, with ordering, slicing, count, exists, first / last,
and the delete of a query set.  The oracle of single lookups is test_query_model's."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from _cache_models import CachedSong
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cache import Writer
from test_query_model import (
    ORDERED_FIELDS,
    SETTINGS,
    TEXT_LOOKUPS,
    QItem,
    assert_query_set,
    datasets,
    expected_pks,
    load,
    lookup_strategy,
    matches,
    pools_of,
)

from IndexedRedis import InvalidQueryError, Q
from IndexedRedis.flows.update import UpdatePlan

pytestmark = pytest.mark.timeout(900)

# A tree: ("leaf", key, arg) | ("and", [kids]) | ("or", [kids]) | ("not", kid)


def tree_strategy(pools: Any, depth: int = 3) -> st.SearchStrategy[Any]:
    leaf = lookup_strategy(TEXT_LOOKUPS, pools).map(lambda kv: ("leaf", kv[0], kv[1]))
    if depth == 0:
        return leaf
    kid = tree_strategy(pools, depth - 1)
    # ORs of leaves with candidate sets: the server drives from their union
    positive = leaf.filter(lambda t: not t[1].endswith("__ne") and not (t[1].endswith("__isnull") and not t[2]))
    shapes = {
        "leaf": leaf,
        "and": st.tuples(st.just("and"), st.lists(kid, min_size=1, max_size=3)),
        "or": st.tuples(st.just("or"), st.lists(kid, min_size=1, max_size=3)),
        "or of positives": st.tuples(st.just("or"), st.lists(positive, min_size=2, max_size=3)),
        "not": st.tuples(st.just("not"), kid),
    }
    # the shape first: one_of would draw leaves far more often (it flattens their options)
    return st.sampled_from(sorted(shapes)).flatmap(shapes.__getitem__)


def holds(row: dict[str, Any], tree: Any) -> bool:
    kind = tree[0]
    if kind == "leaf":
        name, _, lookup = tree[1].partition("__")
        return matches(row.get(name), lookup or "eq", tree[2])
    if kind == "and":
        return all(holds(row, kid) for kid in tree[1])
    if kind == "or":
        return any(holds(row, kid) for kid in tree[1])
    return not holds(row, tree[1])


def as_q(tree: Any) -> Q:
    kind = tree[0]
    if kind == "leaf":
        return Q(**{tree[1]: tree[2]})
    if kind == "not":
        return ~as_q(tree[1])
    kids = [as_q(kid) for kid in tree[1]]
    combined = kids[0]
    for kid in kids[1:]:
        combined = (combined & kid) if kind == "and" else (combined | kid)
    return combined


def query_strategy(pools: Any) -> st.SearchStrategy[dict[str, Any]]:
    # often trees alone, so that they drive (no plain condition is cheaper)
    keywords = st.one_of(st.just({}), st.lists(lookup_strategy(TEXT_LOOKUPS, pools), max_size=2).map(dict))
    step = st.tuples(st.sampled_from(["filter", "filter", "exclude"]),
                     st.lists(tree_strategy(pools), min_size=0, max_size=2), keywords)
    return st.fixed_dictionaries({
        "steps": st.lists(step, min_size=1, max_size=2),
        "order": st.one_of(st.none(), st.sampled_from(
            ["_id", "-_id"] + ORDERED_FIELDS + [f"-{name}" for name in ORDERED_FIELDS])),
        "slice": st.one_of(st.none(), st.tuples(st.integers(0, 14), st.one_of(st.none(), st.integers(0, 16)))),
    })


def step_holds(row: dict[str, Any], step: Any) -> bool:
    how, trees, filters = step
    together = all(holds(row, tree) for tree in trees) and all(
        holds(row, ("leaf", key, arg)) for key, arg in filters.items())
    return together if how == "filter" else (not together if (trees or filters) else True)


def build(query: dict[str, Any]) -> Any:
    qs = QItem.objects
    for how, trees, filters in query["steps"]:
        qs = getattr(qs, how)(*[as_q(tree) for tree in trees], **filters)
    if query["order"] is not None:
        qs = qs.orderBy(query["order"])
    return qs


def expected(rows: dict[int, dict[str, Any]], query: dict[str, Any]) -> list[int]:
    chosen = {pk: row for pk, row in rows.items() if all(step_holds(row, step) for step in query["steps"])}
    return expected_pks(chosen, {"filters": [], "order": query["order"], "slice": None})


def check(rows: dict[int, dict[str, Any]], query: dict[str, Any]) -> None:
    want = expected(rows, query)
    qs = build(query)
    assert_query_set(qs, rows, want, query["slice"])
    assert [o._id for o in qs.iterate(batchSize=3)] == want


@settings(max_examples=150, **SETTINGS)
@given(rows=datasets, data=st.data())
def test_q_trees_match_python_model(redis_client: redis.Redis, rows: list[dict[str, Any]],
                                    data: st.DataObject) -> None:
    stored = load(rows)
    for query in data.draw(st.lists(query_strategy(pools_of(stored)), min_size=1, max_size=3), label="queries"):
        check(stored, query)


@settings(max_examples=40, **SETTINGS)
@given(rows=datasets, data=st.data())
def test_delete_of_a_q_query_set_deletes_exactly_its_matches(redis_client: redis.Redis, rows: list[dict[str, Any]],
                                                              data: st.DataObject) -> None:
    stored = load(rows)
    query = data.draw(query_strategy(pools_of(stored)), label="query")
    want = set(expected(stored, query))
    assert build(query).delete() == len(want)
    assert set(QItem.objects.getPrimaryKeys()) == set(stored) - want


def test_q_semantics_examples(redis_client: redis.Redis) -> None:
    pks = QItem.reset([QItem(n=1, tag="red"), QItem(n=2, tag="red"), QItem(n=2, tag="green"), QItem(tag="Blue")])
    a, b, c, d = pks
    objs = QItem.objects
    assert objs.filter(Q(n=1) | Q(tag="green")).getPrimaryKeys() == [a, c]
    assert {objs.filter(Q(n=1) | Q(tag="green")).random()._id for _ in range(20)} <= {a, c}
    assert objs.exclude(Q(n=1) | Q(tag="green")).random()._id in (b, d)
    assert objs.filter(Q(n=1) | Q(tag="green"), tag="red").getPrimaryKeys() == [a]
    # exclude of several keywords: NOT (a AND b)
    assert objs.exclude(n=2, tag="red").getPrimaryKeys() == [a, c, d]
    assert objs.exclude(Q(n=2) | Q(tag="Blue")).getPrimaryKeys() == [a]
    assert objs.filter(~Q(n=2)).getPrimaryKeys() == [a, d]  # irNull is not 2
    assert objs.exclude(n__gt=1).getPrimaryKeys() == [a, d]  # irNull is not > 1
    assert objs.filter(~Q(n__in=[1, 2]) & ~Q(tag="Blue")).count() == 0
    assert objs.exclude().getPrimaryKeys() == pks
    assert objs.exclude(Q()).getPrimaryKeys() == pks  # an empty Q is a no-op, as in Django
    assert objs.exclude(Q() | Q()).getPrimaryKeys() == pks
    assert objs.filter(Q()).count() == 4
    assert objs.filter(Q(n__in=[]) | Q(n=1)).getPrimaryKeys() == [a]
    assert objs.filter(Q(n=1) | Q(tag="Blue")).orderBy("-n").getPrimaryKeys() == [d, a]
    assert objs.exclude(Q(n=1) | Q(tag="Blue")).delete() == 2
    assert objs.getPrimaryKeys() == [a, d]


def test_q_errors_name_the_field_and_model(redis_client: redis.Redis) -> None:
    with pytest.raises(InvalidQueryError, match="QItem.*'nope'"):
        QItem.objects.filter(Q(nope=1) | Q(n=1))
    with pytest.raises(InvalidQueryError, match="QItem.n__startswith"):
        QItem.objects.exclude(Q(n__startswith="a"))
    with pytest.raises(TypeError, match="QItem.*Q objects"):
        QItem.objects.filter({"n": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Q objects"):
        Q(1)  # type: ignore[arg-type]


def test_plain_filters_keep_the_fast_path() -> None:
    """filter(**kw) and exclude(one equality) compile to plain conditions, no trees."""
    qs = QItem.objects.filter(n=1, tag="red").exclude(tag="green")
    assert qs.query.where == ()
    assert [c[0] for c in qs.query.conditions] == ["S", "S", "N"]
    # exclude(a__ne=1, b__ne=2) is a=1 OR b=2: a tree with candidates (a union)
    tree = QItem.objects.exclude(n__ne=1, tag__ne="red").query.where[0]
    assert tree[0] == "OR" and {kid[0] for kid in tree[1]} == {"S"}


def test_cached_q_queries_see_another_process_writes(redis_url: str) -> None:
    """A model with a client-side cache keeps Q query results, and drops them when a
    key a tree read changes (its keys are the query's dependencies)."""
    writer = Writer(redis_url)
    try:
        pks = CachedSong.reset([CachedSong(artist=f"artist-{i % 4}", title=f"t{i}", track=i % 3) for i in range(12)])
        either = CachedSong.objects.filter(Q(artist="artist-2") | Q(track=0))
        negated = CachedSong.objects.filter(~Q(track__gt=0) | Q(artist="artist-1"))

        def want(rows: dict[int, tuple[str, int]], tree: Any) -> list[int]:
            return [pk for pk in sorted(rows) if tree(*rows[pk])]

        rows = {pk: (f"artist-{i % 4}", i % 3) for i, pk in enumerate(pks)}
        first = either.all()
        assert [o._id for o in first] == want(rows, lambda a, t: a == "artist-2" or t == 0)
        assert either.all()[0] is first[0]  # kept
        writer.do(op="save", pk=pks[2], values={"artist": "artist-3"})  # matched by artist only
        rows[pks[2]] = ("artist-3", 2)
        assert [o._id for o in either.all()] == want(rows, lambda a, t: a == "artist-2" or t == 0)
        assert [o._id for o in negated.all()] == want(rows, lambda a, t: t <= 0 or a == "artist-1")
        new = writer.do(op="insert", values={"artist": "artist-3", "title": "x", "track": 0})["pk"]
        rows[new] = ("artist-3", 0)
        assert [o._id for o in negated.all()] == want(rows, lambda a, t: t <= 0 or a == "artist-1")
        assert [o._id for o in either.all()] == want(rows, lambda a, t: a == "artist-2" or t == 0)
    finally:
        writer.close()


def test_update_of_a_q_query_set(redis_client: redis.Redis) -> None:
    """update() takes Q trees, and checks the fields of their leaves (a concurrent
    change of one of them re-reads the object, as for plain conditions)."""
    a, b, c = QItem.reset([QItem(n=1, tag="red"), QItem(n=2, tag="green"), QItem(n=3, tag="Blue")])
    qs = QItem.objects.filter(Q(n=1) | Q(tag="green"))
    assert set(UpdatePlan(QItem._meta, qs.query, {"note": "x"}).checked) == {"n", "tag", "note"}
    assert qs.update(note="hit") == 2
    assert QItem.objects.exclude(Q(n=1) | Q(tag="green")).update(note="miss") == 1
    assert [o.note for o in QItem.objects.getMultiple([a, b, c])] == ["hit", "hit", "miss"]


TEXT_CASES = [("tag__contains", "e"), ("tag__icontains", "E"), ("tag__istartswith", "B"), ("tag__iexact", "RED"),
              ("tag__startswith", "gr"), ("tag__gt", "green"), ("tag__range", ("a", "h"))]


def text_holds(value: Any, key: str, arg: Any) -> bool:
    if value is None:
        return False
    lookup = key.partition("__")[2]
    folded, arg_folded = value.casefold(), arg.casefold() if isinstance(arg, str) else arg
    return {"contains": lambda: arg in value, "icontains": lambda: arg_folded in folded,
            "istartswith": lambda: folded.startswith(arg_folded), "iexact": lambda: folded == arg_folded,
            "startswith": lambda: value.startswith(arg), "gt": lambda: value > arg,
            "range": lambda: arg[0] <= value <= arg[1]}[lookup]()


def test_text_dictionary_lookups_inside_q_trees(redis_client: redis.Redis) -> None:
    """Text lookups (dictionary walks, with their plans) are leaves like any other:
    inside ORs and negations, driving or tested, with a text order."""
    tags = ["red", "green", "Blue", "", "Grey", "reef", "BLUE", "gr\u00e9en"]
    pks = QItem.reset([QItem(tag=tags[i % len(tags)], n=i % 3) for i in range(24)])
    rows = {pk: (tags[i % len(tags)], i % 3) for i, pk in enumerate(pks)}
    for (k1, v1), (k2, v2) in zip(TEXT_CASES, TEXT_CASES[1:] + TEXT_CASES[:1]):
        either = QItem.objects.filter(Q(**{k1: v1}) | Q(**{k2: v2}, n=1))
        want = [pk for pk in pks if text_holds(rows[pk][0], k1, v1)
                or (text_holds(rows[pk][0], k2, v2) and rows[pk][1] == 1)]
        assert either.getPrimaryKeys() == want, (k1, k2)
        assert either.count() == len(want)
        neither = QItem.objects.exclude(Q(**{k1: v1}) | Q(n=2))
        want_not = [pk for pk in pks if not (text_holds(rows[pk][0], k1, v1) or rows[pk][1] == 2)]
        assert neither.getPrimaryKeys() == want_not, k1
        by_tag = neither.orderBy("-tag")
        assert by_tag.getPrimaryKeys() == sorted(want_not, key=lambda pk: (rows[pk][0], pk), reverse=True)
        assert [o._id for o in by_tag[1:4]] == by_tag.getPrimaryKeys()[1:4]
