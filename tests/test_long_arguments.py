"""Long argument lists: an ``__in`` and an ``__ne`` with 20,000 values each (Lua's
unpack() spreads only a few thousand values into one call, so the scripts chunk), and
a model with 500 fields."""

from __future__ import annotations

import random

import pytest
import redis

from IndexedRedis import IndexedRedisModel, IRField

N = 30_000
VALUES = 20_000


class Many(IndexedRedisModel):
    FIELDS = [IRField("n", valueType=int), "parity", "label"]
    INDEXED_FIELDS = ["n", "parity", "label"]
    KEY_NAME = "LongArgs"


@pytest.fixture
def stored(redis_client: redis.Redis) -> dict[int, int]:
    """pk -> n of N objects (n = 0 .. N-1)."""
    objs = [Many(n=i, parity=str(i % 2), label=f"l{i % 7}") for i in range(N)]
    pks = Many.reset(objs)
    return dict(zip(pks, range(N)))


def _pks(stored: dict[int, int], keep) -> list[int]:
    return sorted(pk for pk, n in stored.items() if keep(n))


def test_in_with_20000_values(stored: dict[int, int]) -> None:
    wanted = set(random.Random(1).sample(range(N + 5000), VALUES))  # some match nothing
    qs = Many.objects.filter(n__in=sorted(wanted))
    expected = _pks(stored, lambda n: n in wanted)
    assert qs.count() == len(expected)
    assert qs.getPrimaryKeys() == expected
    assert [o._id for o in qs.all()] == expected
    assert [o.n for o in qs.orderBy("-n")[:5]] == sorted((stored[pk] for pk in expected), reverse=True)[:5]
    assert qs.exists() and stored[qs.random()._id] in wanted
    # not the smallest condition: checked for the members of another one
    odd = qs.filter(label="l3")
    assert odd.getPrimaryKeys() == _pks(stored, lambda n: n in wanted and n % 7 == 3)
    assert Many.objects.filter(label="l3").filter(n__in=sorted(wanted)).count() == len(odd.getPrimaryKeys())


def test_ne_with_20000_values(stored: dict[int, int]) -> None:
    excluded = set(random.Random(2).sample(range(N + 5000), VALUES))
    qs = Many.objects
    for value in sorted(excluded):
        qs = qs.filter(n__ne=value)
    assert len(qs.query.conditions) == VALUES
    expected = _pks(stored, lambda n: n not in excluded)
    assert qs.count() == len(expected)
    assert qs.getPrimaryKeys() == expected
    assert [o._id for o in qs.all()] == expected
    assert [o._id for o in qs[10:20]] == expected[10:20]            # pk order, walked in chunks
    assert [o.n for o in qs.orderBy("n")[:3]] == sorted(stored[pk] for pk in expected)[:3]
    assert qs.first()._id == expected[0] and qs.last()._id == expected[-1]
    assert stored[qs.random()._id] not in excluded
    # with a positive condition driving
    assert qs.filter(parity="1").getPrimaryKeys() == _pks(stored, lambda n: n not in excluded and n % 2)


def test_in_and_ne_together(stored: dict[int, int]) -> None:
    wanted = set(range(0, N, 3))
    qs = Many.objects.filter(n__in=sorted(wanted))
    for value in range(0, N, 2):
        qs = qs.filter(n__ne=value)
    assert qs.getPrimaryKeys() == _pks(stored, lambda n: n % 3 == 0 and n % 2 == 1)


FIVE_HUNDRED = [f"f{i}" for i in range(500)]


class Wide(IndexedRedisModel):
    FIELDS = [*FIVE_HUNDRED[:250], *(IRField(name, valueType=int) for name in FIVE_HUNDRED[250:])]
    INDEXED_FIELDS = FIVE_HUNDRED
    KEY_NAME = "Wide"


def _wide(i: int) -> Wide:
    return Wide(**{name: (f"v{i}-{j % 3}" if j < 250 else i * 1000 + j) for j, name in enumerate(FIVE_HUNDRED)})


def test_a_model_with_500_indexed_fields(redis_client: redis.Redis) -> None:
    pks = Wide.reset([_wide(i) for i in range(150)])     # more than one reset batch
    extra = _wide(150)
    extra.save()
    assert Wide.objects.count() == 151
    got = Wide.objects.get(pks[7])
    assert got.f0 == "v7-0" and got.f249 == "v7-0" and got.f499 == 7499
    assert Wide.objects.filter(f499=7499).getPrimaryKeys() == [pks[7]]
    assert Wide.objects.filter(f1="v3-1", f250__gte=3250).getPrimaryKeys() == [pks[3]]
    got.f100, got.f400 = "changed", -1
    got.save()
    assert Wide.objects.filter(f100="changed").getPrimaryKeys() == [pks[7]]
    assert Wide.objects.filter(f400__lt=0).getPrimaryKeys() == [pks[7]]
    assert Wide.objects.filter(f100="v7-1").count() == 0
    assert Wide.objects.orderBy("-f499").first()._id == extra._id
    assert got.delete() and Wide.objects.count() == 150
    assert Wide.objects.reindex() == 150
    report = Wide.objects.check()
    assert report.ok and report.objects == 150 and report.index_keys >= 500
