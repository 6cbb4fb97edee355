"""values / values_list, aggregates, distinct, countBy, get_or_create,
update_or_create and in_bulk: compared with plain Python over the same objects
(hypothesis), raced between processes, and their async twins against the sync ones."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import multiprocessing
from collections import Counter
from typing import Any

import pytest
import redis
from _models import run_children
from _read_helper_models import Member, get_or_create_worker
from hypothesis import given, settings
from hypothesis import strategies as st
from test_q_objects import as_q, holds, tree_strategy
from test_query_model import SETTINGS, QItem, datasets, expected_pks, load, pools_of

from IndexedRedis import Avg, Count, InvalidQueryError, Max, Min, Q, Sum, UniqueConstraintError, irNull

pytestmark = pytest.mark.timeout(900)

FIELDS = ["n", "x", "d", "code", "tag"]


def plain(value: Any) -> Any:
    return None if value is irNull else value


def close(got: Any, want: Any, scale: float) -> bool:
    if want is None or got is None:
        return got is want
    if math.isnan(want):
        return math.isnan(got)
    if math.isinf(want):
        return got == want
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9 * scale + 1e-12)


def python_aggregates(rows: list[dict[str, Any]], total: int) -> dict[str, Any]:
    ns = [row["n"] for row in rows if row["n"] is not None]
    xs = [row["x"] for row in rows if row["x"] is not None]
    ds = [row["d"] for row in rows if row["d"] is not None]
    return {
        "count": total, "n_count": len(ns), "x_count": len(xs),
        "n_sum": sum(ns) if ns else None, "n_min": min(ns) if ns else None, "n_max": max(ns) if ns else None,
        "n_avg": sum(ns) / len(ns) if ns else None,
        "x_sum": sum(xs) if xs else None, "x_min": min(xs) if xs else None, "x_max": max(xs) if xs else None,
        "d_min": min(ds) if ds else None, "d_max": max(ds) if ds else None,
    }


AGGREGATES = dict(count=Count(), n_count=Count("n"), x_count=Count("x"), n_sum=Sum("n"), n_min=Min("n"),
                  n_max=Max("n"), n_avg=Avg("n"), x_sum=Sum("x"), x_min=Min("x"), x_max=Max("x"),
                  d_min=Min("d"), d_max=Max("d"))


@settings(max_examples=120, **SETTINGS)
@given(rows=datasets, data=st.data())
def test_read_helpers_match_python_model(redis_client: redis.Redis, rows: list[dict[str, Any]],
                                         data: st.DataObject) -> None:
    stored = load(rows)
    tree = data.draw(st.one_of(st.none(), tree_strategy(pools_of(stored), depth=2)), label="tree")
    order = data.draw(st.sampled_from([None, "n", "-x", "-_id", "code"]), label="order")
    qs = QItem.objects if tree is None else QItem.objects.filter(as_q(tree))
    if order is not None:
        qs = qs.orderBy(order)
    chosen = {pk: row for pk, row in stored.items() if tree is None or holds(row, tree)}
    want_pks = expected_pks(chosen, {"filters": [], "order": order, "slice": None})
    matching = [chosen[pk] for pk in want_pks]

    # values / values_list: in the query's order, values as the fields give them
    got = qs.values("_id", *FIELDS)
    assert [row["_id"] for row in got] == want_pks
    assert [{name: plain(row[name]) for name in FIELDS} for row in got] == \
        [{name: row[name] for name in FIELDS} for row in matching]
    assert qs.values_list("tag", "pk") == [(irNull if row["tag"] is None else row["tag"], pk)
                                           for pk, row in zip(want_pks, matching)]
    assert [plain(v) for v in qs.values_list("n", flat=True)] == [row["n"] for row in matching]
    assert [set(row) for row in qs.values()[:1]] in ([], [{"_id", "note", *FIELDS}])

    # aggregates
    result = qs.aggregate(**AGGREGATES)
    want = python_aggregates(matching, len(matching))
    for label in ("count", "n_count", "x_count", "n_sum", "n_min", "n_max", "x_min", "x_max", "d_min", "d_max"):
        assert result[label] == want[label], label
    assert close(result["n_avg"], want["n_avg"], 1e6)
    xs = [abs(row["x"]) for row in matching if row["x"] is not None and math.isfinite(row["x"])]
    assert close(result["x_sum"], want["x_sum"], sum(xs))
    assert type(result["n_sum"]) in (int, type(None)) and type(result["x_sum"]) in (float, type(None))

    # distinct / countBy
    for name in ("n", "x", "d", "tag"):
        counts = qs.countBy(name)
        assert {plain(k): v for k, v in counts.items()} == dict(Counter(row[name] for row in matching)), name
        distinct = [plain(value) for value in qs.distinct(name)]
        assert len(distinct) == len(set(distinct)) and set(distinct) == {row[name] for row in matching}

    # in_bulk
    assert {pk: obj._id for pk, obj in qs.in_bulk().items()} == {pk: pk for pk in want_pks}
    some = sorted(stored)[::2] + [10 ** 9]
    assert sorted(qs.in_bulk(some)) == sorted(set(some) & set(want_pks))


def test_aggregate_examples_and_errors(redis_client: redis.Redis) -> None:
    QItem.reset([QItem(n=1, x=1.5, tag="a"), QItem(n=5, x=irNull, tag="a"), QItem(n=irNull, x=-2.0, tag="b")])
    objs = QItem.objects
    assert objs.aggregate(total=Sum("n"), n=Count(), lo=Min("x"), hi=Max("n"), mean=Avg("n")) == \
        {"total": 6, "n": 3, "lo": -2.0, "hi": 5, "mean": 3.0}
    assert objs.filter(tag="zzz").aggregate(total=Sum("n"), n=Count(), lo=Min("n"), mean=Avg("x")) == \
        {"total": None, "n": 0, "lo": None, "mean": None}
    assert objs.filter(Q(tag="b") | Q(n=5)).aggregate(c=Count("n"), s=Sum("x")) == {"c": 1, "s": -2.0}
    with pytest.raises(InvalidQueryError, match=r"QItem\.tag: Min\(\) needs a number field in INDEXED_FIELDS"):
        objs.aggregate(lo=Min("tag"))
    with pytest.raises(InvalidQueryError, match=r"QItem\.note: Sum\(\) needs .*not indexed"):
        objs.aggregate(s=Sum("note"))
    with pytest.raises(InvalidQueryError, match=r"QItem\.d: Sum\(\) needs numbers to add up; 'd' holds datetime"):
        objs.aggregate(s=Sum("d"))
    with pytest.raises(InvalidQueryError, match=r"QItem\.nope: Max\(\) needs a field of the model"):
        objs.aggregate(s=Max("nope"))
    with pytest.raises(InvalidQueryError, match="expects Count, Sum"):
        objs.aggregate(s="n")
    with pytest.raises(InvalidQueryError, match=r"QItem.objects.countBy\('note'\): .*it is not indexed"):
        objs.countBy("note")
    with pytest.raises(InvalidQueryError, match="QItem has no field 'nope'"):
        objs.values("nope")
    with pytest.raises(InvalidQueryError, match="flat=True"):
        objs.values_list("n", "x", flat=True)
    assert objs.countBy("tag") == {"a": 2, "b": 1}
    assert sorted(objs.filter(tag="a").distinct("n")) == [1, 5]
    assert objs.orderBy("-n").values_list("n", flat=True) == [irNull, 5, 1]
    assert QItem.objects.filter(n__gt=10 ** 7).values() == []


def test_get_or_create_and_update_or_create(redis_client: redis.Redis) -> None:
    obj, created = Member.objects.get_or_create(email="a@x", defaults={"name": "Ann", "visits": 1})
    assert created and obj._id is not None and obj.name == "Ann"
    again, created = Member.objects.get_or_create(email="a@x", defaults={"name": "Other"})
    assert (again._id, again.name, created) == (obj._id, "Ann", False)
    updated, created = Member.objects.update_or_create(email="a@x", defaults={"visits": 2})
    assert (updated._id, updated.visits, created) == (obj._id, 2, False)
    assert Member.objects.get(obj._id).visits == 2
    made, created = Member.objects.update_or_create(email="b@x", defaults={"name": "Bob"})
    assert created and Member.objects.get(made._id).name == "Bob"
    # lookups with __ are filters only
    found, created = Member.objects.get_or_create(email__in=["b@x"], defaults={"email": "c@x"})
    assert (found._id, created) == (made._id, False)
    # a unique clash with an object the lookups do not select is the caller's to see
    with pytest.raises(UniqueConstraintError):
        Member.objects.get_or_create(name="Zed", defaults={"email": "a@x"})
    assert Member.objects.filter(name="Zed").count() == 0
    Member(email="d@x", name="Ann").save()
    with pytest.raises(InvalidQueryError, match="more than one object matches"):
        Member.objects.get_or_create(name="Ann")


def test_get_or_create_races_between_processes_create_exactly_one(redis_url: str,
                                                                   redis_client: redis.Redis) -> None:
    spawn = multiprocessing.get_context("spawn")
    n = 4
    for round_ in range(3):
        barrier = spawn.Barrier(n)
        queue = spawn.Queue()
        results = run_children(spawn, get_or_create_worker, [(redis_url, f"race{round_}@x", barrier)] * n, queue)
        assert sum(created for _, created in results) == 1, results
        assert len({pk for pk, _ in results}) == 1, results
        assert Member.objects.filter(email=f"race{round_}@x").count() == 1


def test_async_twins_return_what_the_sync_ones_do(redis_client: redis.Redis) -> None:
    QItem.reset([QItem(n=i % 4, x=i / 2, tag=["a", "b", "c"][i % 3], note=str(i)) for i in range(30)])
    qs = QItem.objects.filter(Q(tag="a") | Q(n__gte=2)).exclude(n=3).orderBy("-x")

    async def both() -> list[Any]:
        return [await qs.avalues("n", "tag"), await qs.avalues_list("x", flat=True),
                await qs.aaggregate(**{k: v for k, v in AGGREGATES.items() if not k.startswith("d")}),
                await qs.acountBy("tag"), sorted(await qs.adistinct("n")),
                sorted(await qs.ain_bulk()), sorted(await qs.ain_bulk([1, 2, 3, 4])),
                [o._id for o in await qs.aall()], await qs.acount(), await qs.aexists(),
                (await qs.afirst())._id, (await qs.alast())._id]

    sync = [qs.values("n", "tag"), qs.values_list("x", flat=True),
            qs.aggregate(**{k: v for k, v in AGGREGATES.items() if not k.startswith("d")}),
            qs.countBy("tag"), sorted(qs.distinct("n")), sorted(qs.in_bulk()), sorted(qs.in_bulk([1, 2, 3, 4])),
            [o._id for o in qs.all()], qs.count(), qs.exists(), qs.first()._id, qs.last()._id]
    assert asyncio.run(both()) == sync
    assert sync[0] and sync[3]

    async def upserts() -> list[Any]:
        a, created_a = await Member.objects.aget_or_create(email="async@x", defaults={"name": "A"})
        b, created_b = await Member.objects.aget_or_create(email="async@x")
        c, created_c = await Member.objects.aupdate_or_create(email="async@x", defaults={"visits": 7})
        return [(a._id, created_a), (b._id, created_b), (c._id, created_c, c.visits)]

    (pk, created), (pk_b, created_b), (pk_c, created_c, visits) = asyncio.run(upserts())
    assert created and not created_b and not created_c and pk == pk_b == pk_c and visits == 7
    assert Member.objects.get(pk).visits == 7


def test_values_of_records_written_by_an_older_schema_use_defaults(redis_client: redis.Redis) -> None:
    """values() gives what obj.field gives, field defaults included."""
    obj = QItem(n=3, d=dt.datetime(2020, 1, 2))
    obj.save()
    (row,) = QItem.objects.values()
    assert row == {name: getattr(obj, name) for name in row if name != "_id"} | {"_id": obj._id}
