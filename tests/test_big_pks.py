"""Primary keys up to 2**53 - 1 (``keys.MAX_PK``), on a real server.

Resets take fresh pks from the model's counter, so a model refreshed every minute with
a million rows passes 10**12 pks in two years.  Sorted-set members used to carry the pk
padded to 12 digits, and Lua's ``tostring`` writes 10**14 and up as '1e+14': past those
points, orders by a number or a text field lost objects, and saves under the counter
wrote pks as text Redis could not read back.  Every pk up to 2**53 - 1 must behave like
a small one; a larger one is refused, naming the model, before anything is written.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
import redis
from consistency import assert_indexes_consistent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from IndexedRedis import Count, IndexedRedisModel, InvalidQueryError, IRField, Max, Min
from IndexedRedis.keys import MAX_PK, PK_DIGITS, padded_pk

BIG = [5, 10**12 - 1, 10**12 + 7, 10**14, 10**15, 10**15 + 1, MAX_PK - 1, MAX_PK]


class BigPk(IndexedRedisModel):
    FIELDS = ["tag", IRField("n", valueType=int), "t"]
    INDEXED_FIELDS = ["tag", "n", "t"]
    LEX_INDEXED_FIELDS = ["t"]
    KEY_NAME = "BigPkTest"


def _saved(pks: list[int], n_of: Any = lambda pk: pk % 7, t_of: Any = lambda pk: "same") -> dict[int, BigPk]:
    BigPk.reset([])
    objs = {}
    for pk in pks:
        obj = BigPk(tag="x", n=n_of(pk), t=t_of(pk), _id=pk)
        obj.save()
        objs[pk] = obj
    return objs


def test_padded_pks_hold_every_pk_in_order() -> None:
    assert len(padded_pk(MAX_PK)) == PK_DIGITS == 16
    lib = (resources.files("IndexedRedis.scripts") / "lib.lua").read_text(encoding="utf-8")
    assert f"local PK_DIGITS = {PK_DIGITS}\n" in lib and f"'%0{PK_DIGITS}d'" in lib  # one width on both sides
    assert sorted(BIG, key=padded_pk) == sorted(BIG)


def test_orders_pages_and_lookups_keep_big_pks(redis_client: redis.Redis) -> None:
    objs = _saved(BIG)
    assert [o._id for o in BigPk.objects.all()] == sorted(BIG)
    assert BigPk.objects.first()._id == 5 and BigPk.objects.last()._id == MAX_PK
    assert [o._id for o in BigPk.objects.all()[2:5]] == sorted(BIG)[2:5]
    by_n = sorted(BIG, key=lambda pk: (pk % 7, pk))
    assert [o._id for o in BigPk.objects.orderBy("n").all()] == by_n
    assert [o._id for o in BigPk.objects.orderBy("-n")[0:3]] == list(reversed(by_n))[0:3]
    # every t is the same: the lex order falls back to the pk, which the padding must keep
    assert [o._id for o in BigPk.objects.orderBy("t").all()] == sorted(BIG)
    assert [o._id for o in BigPk.objects.orderBy("-t")[0:3]] == sorted(BIG, reverse=True)[0:3]
    assert sorted(o._id for o in BigPk.objects.filter(n__gte=0)) == sorted(BIG)
    assert sorted(o._id for o in BigPk.objects.filter(t__startswith="sa")) == sorted(BIG)
    assert BigPk.objects.get(MAX_PK).n == MAX_PK % 7
    assert BigPk.objects.filter(n=MAX_PK % 7).count() == sum(1 for pk in BIG if pk % 7 == MAX_PK % 7)
    # Min / Max are read from the records holding them, found by the pks in the zset
    assert BigPk.objects.aggregate(lo=Min("n"), hi=Max("n"), c=Count()) == {
        "lo": min(pk % 7 for pk in BIG), "hi": max(pk % 7 for pk in BIG), "c": len(BIG)}
    objs[MAX_PK].n = 100
    objs[MAX_PK].save()
    objs[10**15].delete()
    assert [o._id for o in BigPk.objects.orderBy("-n")[0:1]] == [MAX_PK]
    assert 10**15 not in [o._id for o in BigPk.objects.orderBy("n").all()]
    assert_indexes_consistent(redis_client, BigPk)
    report = BigPk.objects.check()
    assert "no drift" in str(report), report


def test_the_counter_past_10_to_the_14_gives_readable_pks(redis_client: redis.Redis) -> None:
    _saved([10**15])  # a chosen pk keeps the counter ahead of it
    obj = BigPk(tag="y", n=1, t="b")
    obj.save()
    assert obj._id == 10**15 + 1
    assert BigPk.objects.get(10**15 + 1).tag == "y"
    assert [o._id for o in BigPk.objects.filter(tag="y")] == [10**15 + 1]


@pytest.mark.parametrize("pk", [MAX_PK + 1, 10**20])
def test_a_pk_beyond_2_to_the_53_is_refused_before_anything_is_written(pk: int) -> None:
    _saved([5])
    with pytest.raises(InvalidQueryError, match=r"BigPk.*at most 2\*\*53 - 1"):
        BigPk(tag="z", n=1, t="c", _id=pk).save()
    with pytest.raises(InvalidQueryError, match="at most"):
        BigPk.reset([BigPk(tag="z", n=1, t="c", _id=pk)])
    with pytest.raises(InvalidQueryError, match="at most"):
        BigPk.objects.get(pk)
    assert [o._id for o in BigPk.objects.all()] == [5]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(min_value=0, max_value=MAX_PK), min_size=1, max_size=12, unique=True),
       st.lists(st.integers(min_value=-3, max_value=3), min_size=12, max_size=12))
def test_orders_match_python_for_any_pks(redis_client: redis.Redis, pks: list[int], ns: list[int]) -> None:
    n_of = dict(zip(pks, ns, strict=False))
    _saved(pks, n_of=n_of.__getitem__, t_of=lambda pk: "ab"[pk % 2])
    assert [o._id for o in BigPk.objects.orderBy("n").all()] == sorted(pks, key=lambda pk: (n_of[pk], pk))
    assert [o._id for o in BigPk.objects.orderBy("-t").all()] == sorted(
        pks, key=lambda pk: ("ab"[pk % 2], pk), reverse=True)
    assert [o._id for o in BigPk.objects.all()[1:4]] == sorted(pks)[1:4]


def test_repair_turns_12_digit_members_of_an_earlier_build_into_16_digit_ones(redis_client: redis.Redis) -> None:
    BigPk.reset([BigPk(tag="x", n=i % 3, t=f"k{i % 2}") for i in range(10)])
    want_n = [o._id for o in BigPk.objects.orderBy("n").all()]
    want_t = [o._id for o in BigPk.objects.orderBy("t").all()]
    gen = int(redis_client.get(b"ir:{BigPkTest}:gen"))
    z, x = b"ir:{BigPkTest}:g%d:z:n" % gen, b"ir:{BigPkTest}:g%d:x:t" % gen
    for member, score in redis_client.zrange(z, 0, -1, withscores=True):  # as a 12-digit build wrote them
        redis_client.zrem(z, member)
        redis_client.zadd(z, {member[-12:]: score})
    for member in redis_client.zrange(x, 0, -1):
        redis_client.zrem(x, member)
        redis_client.zadd(x, {member[:-16] + member[-12:]: 0})
    report = BigPk.objects.check()
    assert not report.ok and "stale_entry 20" in str(report) and "missing_entry" in str(report)
    BigPk.objects.repair()
    assert BigPk.objects.check().ok
    assert all(len(m) == 16 for m in redis_client.zrange(z, 0, -1))
    assert [o._id for o in BigPk.objects.orderBy("n").all()] == want_n
    assert [o._id for o in BigPk.objects.orderBy("t").all()] == want_t
