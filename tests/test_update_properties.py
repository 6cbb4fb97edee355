"""Property test: random objects and random ``update()`` calls (constants, and F
expressions on number fields, with irNull values, a unique field and several index
kinds) against the same updates applied to a plain-Python copy of the data.  After
each step the stored objects equal the copy, the indexes answer for the new values,
and ``Model.objects.check()`` finds no drift.  An update that would give two objects
one unique value must raise UniqueConstraintError and change nothing."""

from __future__ import annotations

import math
from typing import Any

import pytest
import redis
from consistency import assert_indexes_consistent, db_snapshot
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from IndexedRedis import (
    F,
    IndexedRedisModel,
    InvalidQueryError,
    IRField,
    IRFixedPointField,
    UniqueConstraintError,
    irNull,
)
from IndexedRedis.expressions import Expression
from IndexedRedis.flows import update as update_module


class UItem(IndexedRedisModel):
    FIELDS = [IRField("n", valueType=int), IRField("x", valueType=float), IRFixedPointField("p", decimalPlaces=2),
              IRField("h", valueType=int), IRField("u", valueType=int), "tag", "code"]
    INDEXED_FIELDS = ["n", "x", "p", "tag", "code", "u"]
    LEX_INDEXED_FIELDS = ["code"]
    UNIQUE_FIELDS = ["u"]
    KEY_NAME = "UpdateProps:Item"


pytestmark = pytest.mark.timeout(900)
NUMBERS = ["n", "x", "p", "h", "u"]
ints = st.one_of(st.sampled_from([-3, 0, 1, 2, 10]), st.integers(-1000, 1000))
floats = st.one_of(st.sampled_from([-1.5, 0.0, 0.5, 2.25, math.inf]), st.floats(-100, 100, allow_nan=False))
prices = st.sampled_from([0.0, 0.1, 1.25, -2.5, 99.99])
VALUES = {"n": ints, "x": floats, "p": prices, "h": ints, "tag": st.sampled_from(["", "red", "blue"]),
          "code": st.sampled_from(["", "a", "ab", "b\u00e9"])}


def nullable(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(irNull), strategy)


rows = st.fixed_dictionaries({name: nullable(s) for name, s in VALUES.items()})


@st.composite
def expressions(draw: Any, target: str) -> Any:
    """An F expression for a number field (no fractional results for int fields)."""
    source = draw(st.sampled_from(["n", "h", "u"] if target in ("n", "h", "u") else NUMBERS))
    expr = F(source)
    for _ in range(draw(st.integers(1, 2))):
        op = draw(st.sampled_from(["+", "-", "*", "//"] if target in ("n", "h", "u") else ["+", "-", "*", "/"]))
        operand = draw(st.one_of(st.integers(1, 5), st.sampled_from([F("n"), F("h")]))
                       if op in "+-" else st.integers(1, 3))
        expr = {"+": expr + operand, "-": expr - operand, "*": expr * operand, "//": expr // operand,
                "/": expr / operand}[op]
    return expr


@st.composite
def updates(draw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    where = draw(st.one_of(st.just({}), st.sampled_from([{"tag": "red"}, {"tag": ""}, {"n__gte": 0},
                                                          {"code__startswith": "a"}, {"x": irNull}])))
    targets = draw(st.lists(st.sampled_from(["n", "x", "p", "h", "tag", "code", "u"]), min_size=1, max_size=3,
                            unique=True))
    assignments = {}
    for name in targets:
        if name == "u":
            assignments[name] = draw(st.one_of(st.just(irNull), st.just(F("u") + 1), st.just(F("u") * 2),
                                               st.integers(0, 3), st.just(F("n"))))
        elif name in NUMBERS and draw(st.booleans()):
            assignments[name] = draw(expressions(name))
        else:
            assignments[name] = draw(nullable(VALUES[name]))
    return where, assignments


def matches(row: dict[str, Any], where: dict[str, Any]) -> bool:
    for key, want in where.items():
        if key == "n__gte":
            if row["n"] is irNull or row["n"] < want:
                return False
        elif key == "code__startswith":
            if row["code"] is irNull or not row["code"].startswith(want):
                return False
        elif row[key] != want:
            return False
    return True


def evaluate(value: Any, row: dict[str, Any]) -> Any:
    return value.evaluate(row) if isinstance(value, Expression) else value


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


SETTINGS: dict[str, Any] = dict(deadline=None, max_examples=40,
                                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@settings(**SETTINGS)
@given(initial=st.lists(rows, min_size=2, max_size=10), steps=st.lists(updates(), min_size=1, max_size=5),
       batch=st.sampled_from([1000, 2]))
def test_updates_match_a_plain_python_model(redis_client: redis.Redis, initial: list[dict[str, Any]],
                                            steps: list[tuple[dict[str, Any], dict[str, Any]]], batch: int) -> None:
    update_module.UPDATE_BATCH = batch  # 2: most updates take several atomic batches
    try:
        check_steps(redis_client, initial, steps)
    finally:
        update_module.UPDATE_BATCH = 1000


def check_steps(redis_client: redis.Redis, initial: list[dict[str, Any]],
                steps: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    meta = UItem._meta
    objs = [UItem(**row, u=i) for i, row in enumerate(initial)]
    pks = UItem.reset(objs)
    model = {pk: {f.name: getattr(obj, f.name) for f in meta.fields} for pk, obj in zip(pks, objs)}
    for where, assignments in steps:
        matched = [pk for pk, row in model.items() if matches(row, where)]
        new = {}
        error: type[Exception] | None = None
        for pk in matched:
            row = model[pk]
            try:
                new[pk] = {name: meta.to_python(meta.fields_by_name[name], evaluate(value, row))
                           for name, value in assignments.items()}
            except (ValueError, TypeError, OverflowError) as exc:  # e.g. inf in a fixed point field
                error = type(exc)
                break
        if error is None:
            after = {pk: {**row, **new.get(pk, {})} for pk, row in model.items()}
            taken = [row["u"] for row in after.values() if row["u"] is not irNull]
            if isinstance(assignments.get("u"), Expression) and len(matched) > update_module.UPDATE_BATCH:
                error = InvalidQueryError  # checked in one atomic step, or not at all
            elif len(taken) != len(set(taken)):
                error = UniqueConstraintError
        qs = UItem.objects.filter(**where)
        event(f"refused: {error.__name__}" if error else f"updated {min(len(matched), 2)}+")
        if error is not None:
            before = db_snapshot(redis_client)
            with pytest.raises(error):
                qs.update(**assignments)
            assert db_snapshot(redis_client) == before
        else:
            assert qs.update(**assignments) == len(matched)
            model = after
        stored = {obj._id: {f.name: getattr(obj, f.name) for f in meta.fields} for obj in UItem.objects.all()}
        assert stored.keys() == model.keys()
        for pk, row in model.items():
            for name, value in row.items():
                assert same(stored[pk][name], value), (pk, name, stored[pk][name], value, where, assignments)
        for name in ("n", "tag", "u"):
            for value in {row[name] for row in model.values()}:
                want = sorted(pk for pk, row in model.items() if same(row[name], value))
                assert sorted(UItem.objects.filter(**{name: value}).getPrimaryKeys()) == want
        report = UItem.objects.check()
        assert report.ok, report.to_dict()
    assert_indexes_consistent(redis_client, UItem)
