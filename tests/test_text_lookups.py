"""Text lookups on every indexed text field, through its dictionaries of distinct values
(IndexedRedis/textindex.py): ``__startswith``, ``__istartswith``, ``__gt/__gte/__lt/__lte/
__range`` by text order, ``__iexact``, ``__contains``, ``__icontains``, and ``orderBy`` on
text with pages, compared with plain Python over the same objects.

* Text order is code-point order (= the byte order of UTF-8); irNull matches no text
  lookup and orders last ascending (first descending), ties by pk.
* Case-insensitive means ``str.casefold`` on both sides ('ß' matches 'SS', 'İ' its folded
  'i̇').
* The dictionaries hold exactly the distinct stored values (and the folded members of
  those whose casefold differs), whatever saves, updates, deletes and resets did; check()
  finds no drift.
* A plan made before another client added a value is stale, and the answer still right.

Every test runs against the fixture's private redis-server (see conftest.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import redis
from consistency import assert_indexes_consistent, dictionary_values, rewrite_dictionary
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from monitor import CommandLog
from textops import apply_text_ops

from IndexedRedis import IndexedRedisModel, InvalidQueryError, IRField, irNull
from IndexedRedis.flows.text import WALK_BUDGET

pytestmark = pytest.mark.timeout(900)


class Word(IndexedRedisModel):
    FIELDS = [IRField("text", valueType=str), "tag", IRField("n", valueType=int), "note"]
    INDEXED_FIELDS = ["text", "tag", "n"]
    KEY_NAME = "textlookups:word"


SETTINGS: dict[str, Any] = dict(deadline=None, max_examples=40,
                                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Small pools, so that values, prefixes and substrings collide; mixed case, 'ß', 'İ', NUL.
ALPHABET = "aAbßSİi\u0307\x00é"
texts = st.one_of(st.sampled_from(["", "a", "A", "ab", "AB", "abc", "ß", "SS", "ss", "straße", "STRASSE",
                                   "İ", "i̇", "istanbul", "İstanbul", "\x00", "a\x00b", "é", "É"]),
                  st.text(ALPHABET, max_size=5))
values = st.one_of(texts, st.just(irNull))
needles = st.one_of(st.sampled_from(["", "a", "A", "ss", "SS", "ß", "i̇", "İ", "b", "\x00", "ab", "ST"]),
                    st.text(ALPHABET, max_size=3))

LOOKUPS: dict[str, Callable[[str, Any], bool]] = {
    "startswith": lambda v, p: v.startswith(p),
    "istartswith": lambda v, p: v.casefold().startswith(p.casefold()),
    "iexact": lambda v, p: v.casefold() == p.casefold(),
    "contains": lambda v, p: p in v,
    "icontains": lambda v, p: p.casefold() in v.casefold(),
    "gt": lambda v, p: _b(v) > _b(p),
    "gte": lambda v, p: _b(v) >= _b(p),
    "lt": lambda v, p: _b(v) < _b(p),
    "lte": lambda v, p: _b(v) <= _b(p),
}


def _b(text: str) -> bytes:
    return text.encode("utf-8")


def expected(rows: dict[int, Any], lookup: str, arg: Any) -> list[int]:
    if lookup == "range":
        low, high = arg
        return sorted(pk for pk, v in rows.items() if v is not irNull and _b(low) <= _b(v) <= _b(high))
    test = LOOKUPS[lookup]
    return sorted(pk for pk, v in rows.items() if v is not irNull and test(v, arg))


def ordered(rows: dict[int, Any], descending: bool) -> list[int]:
    texts_ = sorted((pk for pk, v in rows.items() if v is not irNull), key=lambda pk: (_b(rows[pk]), pk))
    nulls = sorted(pk for pk, v in rows.items() if v is irNull)
    whole = texts_ + nulls
    return whole[::-1] if descending else whole


def stored(objs: dict[int, Word]) -> dict[int, Any]:
    return {pk: obj.text for pk, obj in objs.items()}


# ---- operations: saves, updates, deletes, resets ------------------------------------------------

operations = st.lists(st.one_of(
    st.tuples(st.just("save"), values),
    st.tuples(st.just("update"), st.integers(0, 30), values),
    st.tuples(st.just("delete"), st.integers(0, 30)),
    st.tuples(st.just("reset"), st.lists(values, max_size=8)),
), min_size=1, max_size=14)


def apply(ops: list[Any]) -> dict[int, Word]:
    objs: dict[int, Word] = {obj._id: obj for obj in Word.objects.all()}
    return apply_text_ops(Word, objs, ops, lambda text, n: Word(text=text, tag="t", n=1 if n is None else n))


@settings(**SETTINGS)
@given(ops=operations, lookup=st.sampled_from(sorted(LOOKUPS)), arg=needles)
def test_every_text_lookup_matches_plain_python(redis_client: redis.Redis, ops: list[Any], lookup: str,
                                                 arg: str) -> None:
    redis_client.flushdb()
    objs = apply(ops)
    rows = stored(objs)
    qs = Word.objects.filter(**{f"text__{lookup}": arg})
    assert qs.getPrimaryKeys() == expected(rows, lookup, arg)
    assert qs.count() == len(expected(rows, lookup, arg))
    # with another condition driving, and the text one checked against it
    assert Word.objects.filter(tag="t", **{f"text__{lookup}": arg}).getPrimaryKeys() == expected(
        {pk: v for pk, v in rows.items() if objs[pk].tag == "t"}, lookup, arg)
    assert_indexes_consistent(redis_client, Word)  # the dictionaries are exactly the distinct values


@settings(**SETTINGS)
@given(ops=operations, low=texts, high=texts)
def test_text_range_matches_plain_python(redis_client: redis.Redis, ops: list[Any], low: str, high: str) -> None:
    redis_client.flushdb()
    rows = stored(apply(ops))
    assert Word.objects.filter(text__range=(low, high)).getPrimaryKeys() == expected(rows, "range", (low, high))


@settings(**SETTINGS)
@given(ops=operations, descending=st.booleans(), start=st.integers(0, 12), size=st.integers(0, 6))
def test_text_order_and_pages_match_plain_python(redis_client: redis.Redis, ops: list[Any], descending: bool,
                                                 start: int, size: int) -> None:
    redis_client.flushdb()
    rows = stored(apply(ops))
    qs = Word.objects.orderBy("-text" if descending else "text")
    want = ordered(rows, descending)
    assert [o._id for o in qs.all()] == want
    assert [o._id for o in qs[start:start + size]] == want[start:start + size]
    first, last = qs.first(), qs.last()
    assert (first._id if first else None) == (want[0] if want else None)
    assert (last._id if last else None) == (want[-1] if want else None)
    filtered = Word.objects.filter(text__contains="a").orderBy("-text" if descending else "text")
    assert [o._id for o in filtered[start:start + size]] == [
        pk for pk in want if rows[pk] is not irNull and "a" in rows[pk]][start:start + size]


@settings(**SETTINGS)
@given(ops=operations)
def test_dictionaries_follow_every_write_and_check_finds_no_drift(redis_client: redis.Redis,
                                                                  ops: list[Any]) -> None:
    redis_client.flushdb()
    objs = apply(ops)
    gk = Word._meta.keys.generation(int(redis_client.get(Word._meta.keys.gen) or 0))
    assert set(dictionary_values(redis_client, gk.text_dict("text"))) == {
        _b(v) for v in stored(objs).values() if v is not irNull}
    assert_indexes_consistent(redis_client, Word)
    report = Word.objects.check()
    assert report.ok, report.details


def test_a_value_leaves_the_dictionary_when_its_last_object_goes(redis_client: redis.Redis) -> None:
    a, b = Word(text="Straße"), Word(text="Straße")
    a.save()
    b.save()
    gk = Word._meta.keys.generation(0)
    assert dictionary_values(redis_client, gk.text_dict("text")) == [_b("Straße")]
    assert redis_client.zcard(gk.fold_dict("text")) == 1          # its casefold 'strasse' differs
    a.delete()
    assert dictionary_values(redis_client, gk.text_dict("text")) == [_b("Straße")]
    b.text = "plain"
    b.save()
    assert dictionary_values(redis_client, gk.text_dict("text")) == [b"plain"]
    assert redis_client.zcard(gk.fold_dict("text")) == 0          # lowercase ASCII: no folded entry


def test_lowercase_ascii_values_have_no_folded_entries(redis_client: redis.Redis) -> None:
    Word.reset([Word(text=f"title-{i}") for i in range(300)])
    gk = Word._meta.keys.generation(int(redis_client.get(Word._meta.keys.gen)))
    assert len(dictionary_values(redis_client, gk.text_dict("text"))) == 300
    assert not redis_client.exists(gk.fold_dict("text"))
    assert redis_client.zcard(gk.text_dict("text")) <= 5          # the reset packed it: blocks of 64 values


def test_a_plan_made_before_another_client_added_a_value_is_stale_and_the_answer_right(
        redis_url: str) -> None:
    other = Word.connectAlt({"url": redis_url})   # another client: its own connection and plans
    for text in ("apple", "apricot", "banana"):
        Word(text=text).save()
    qs = Word.objects.filter(text__startswith="ap")
    assert [o.text for o in qs.all()] == ["apple", "apricot"]
    log = CommandLog(redis_url)
    try:
        sent = log.commands(lambda: qs.all())
    finally:
        log.close()
    assert sent in (["FCALL_RO"], ["EVALSHA"])  # steady state: one script call per query (FCALL_RO on 7.0+)
    other(text="apex").save()                   # the dictionary's version moves
    assert sorted(o.text for o in qs.all()) == ["apex", "apple", "apricot"]
    other.objects.filter(text="apple").delete()
    assert sorted(o.text for o in qs.all()) == ["apex", "apricot"]
    assert [o.text for o in Word.objects.orderBy("text")[:2]] == ["apex", "apricot"]
    other(text="aaa").save()
    assert [o.text for o in Word.objects.orderBy("text")[:2]] == ["aaa", "apex"]


def test_contains_walks_a_large_dictionary_in_bounded_steps(redis_client: redis.Redis) -> None:
    count = 3 * WALK_BUDGET + 17
    Word.reset([Word(text=f"w{i:06d}", n=i) for i in range(count)])
    assert Word.objects.filter(text__contains="77").count() == len([i for i in range(count) if "77" in f"w{i:06d}"])
    assert Word.objects.filter(text__gte=f"w{count - 2017:06d}").count() == 2017
    assert [o.n for o in Word.objects.orderBy("-text")[3:6]] == [count - 4, count - 5, count - 6]


def test_async_text_lookups_run_the_same_flows() -> None:
    for text in ("Σίσυφος", "ΣΊΣΥΦΟΣ", "other"):
        Word(text=text).save()

    async def main() -> tuple[int, list[str]]:
        count = await Word.objects.filter(text__iexact="σίσυφος").acount()
        page = await Word.objects.filter(text__icontains="ΣΥΦ").orderBy("text").aall()
        return count, [o.text for o in page]

    assert asyncio.run(main()) == (2, ["ΣΊΣΥΦΟΣ", "Σίσυφος"])


@pytest.mark.parametrize("lookup", ["startswith", "istartswith", "iexact", "contains", "icontains"])
def test_text_lookups_refuse_other_fields_and_irnull(lookup: str) -> None:
    with pytest.raises(InvalidQueryError, match=r"Word\.n__.*only text fields"):
        Word.objects.filter(**{f"n__{lookup}": "1"})
    with pytest.raises(InvalidQueryError, match="irNull"):
        Word.objects.filter(**{f"text__{lookup}": irNull})
    with pytest.raises(InvalidQueryError, match="not in INDEXED_FIELDS"):
        Word.objects.filter(**{f"note__{lookup}": "a"})


def test_a_streamed_reset_builds_the_dictionaries_and_frees_the_old_ones(redis_client: redis.Redis) -> None:
    Word.reset([Word(text=t) for t in ("Old", "older")])
    old = Word._meta.keys.generation(int(redis_client.get(Word._meta.keys.gen)))
    count = Word.reset((Word(text=t, n=i) for i, t in enumerate(["Ärger", "ärger", "b", "b", "c"] * 50)),
                       batchSize=7)
    assert count == 250
    assert not redis_client.exists(old.text_dict("text"), old.fold_dict("text"), old.layout)
    assert Word.objects.filter(text__iexact="ÄRGER").count() == 100
    assert [o.text for o in Word.objects.orderBy("-text")[:1]] == ["ärger"]
    assert_indexes_consistent(redis_client, Word)
    assert Word.objects.check().ok


# ---- the plan protocol, fed by hand (no server) ------------------------------------------------


def _query_flow(lookup: dict[str, Any]) -> Any:
    from flow_router import Router

    from IndexedRedis.compiler import Query
    from IndexedRedis.flows import read
    from IndexedRedis.flows.context import Context

    ctx = Context(Word._meta, "main", Router())
    return read.count_flow(ctx, Query().narrowed(Word._meta, lookup))


def test_a_stale_plan_is_replaced_by_the_values_the_script_sent_and_the_query_asked_again() -> None:
    from IndexedRedis import scripts
    from IndexedRedis.flows.text import STALE_PLAN

    flow = _query_flow({"text__startswith": "ab"})
    first = next(flow)
    assert first.script is scripts.QUERY and b"?" in first.args      # no plan yet: an impossible version
    again = flow.send([STALE_PLAN, 1, b"17", b"", b"abc", b"abd"])   # stale: version 17, its values
    assert again.script is scripts.QUERY and b"17" in again.args
    gk = Word._meta.keys.generation(0)
    assert gk.index("text", b"abc") in again.keys and gk.index("text", b"abd") in again.keys
    with pytest.raises(StopIteration) as stop:
        flow.send([1, 2])
    assert stop.value.value == 2


def test_a_walk_left_unfinished_by_the_script_goes_on_in_bounded_read_only_steps() -> None:
    from IndexedRedis import scripts
    from IndexedRedis.flows.text import STALE_PLAN

    flow = _query_flow({"text__contains": "b"})
    next(flow)
    step = flow.send([STALE_PLAN, 1, b"5", b"r(abc", b"abc"])         # walked up to 'abc'
    assert step.script is scripts.TEXT_WALK and step.readonly and step.args[-2:] == (b"r(abc", WALK_BUDGET)
    step = flow.send([1, b"6", b"r(zz", b"xbx"])                    # the dictionary changed: again
    assert step.script is scripts.TEXT_WALK and step.args[-2] == b"s"
    query = flow.send([1, b"6", b"", b"b", b"cab", b"nope"])        # candidates are checked exactly
    gk = Word._meta.keys.generation(0)
    assert {gk.index("text", b"b"), gk.index("text", b"cab")} <= set(query.keys)
    assert gk.index("text", b"nope") not in query.keys


def test_a_large_plan_is_gathered_in_checked_steps_and_its_scratch_sets_dropped() -> None:
    from IndexedRedis import scripts
    from IndexedRedis.flows.text import MOVED, STALE_PLAN, UNION_LIMIT, UNION_STEP

    values = [b"v%05d" % i for i in range(UNION_LIMIT + 1)]
    count = -(-len(values) // UNION_STEP)  # steps
    flow = _query_flow({"text__contains": "v"})
    next(flow)
    walk = flow.send([STALE_PLAN, 1, b"9", b"", *values])  # the plan, whole: the script walked it all
    gk = Word._meta.keys.generation(0)
    for round_ in range(2):
        steps = [walk]
        for _ in range(count - 1):
            steps.append(flow.send([1, b"41"]))  # each step says the writes count it saw
        for n, step in enumerate(steps):
            assert step.script is scripts.TEXT_UNION and step.args[0] == b"add"
            assert len(step.keys) - 3 <= UNION_STEP
            assert step.args[1:5] == (0, "text", b"9", b"" if n == 0 else b"41")  # later steps check it
        scratch = [step.keys[2] for step in steps]
        assert all(key.startswith(gk.prefix + b"u:") for key in scratch)
        query = flow.send([1, b"41"])
        assert query.script is scripts.QUERY_ON_MASTER and not query.readonly
        assert set(scratch) <= set(query.keys) and gk.index("text", values[0]) not in query.keys
        assert b"W" in query.args and b"41" in query.args  # the query checks the count again
        drop = flow.send([MOVED] if round_ == 0 else [1, 3])  # the first time a write came in
        assert drop.script is scripts.TEXT_UNION and drop.args == (b"drop",) and list(drop.keys) == scratch
        if round_ == 0:
            walk = flow.send([1])  # dropped; gathered again under a new token
            assert walk.keys[2] not in scratch
    with pytest.raises(StopIteration) as stop:
        flow.send([1])
    assert stop.value.value == 3


def test_plans_that_never_settle_end_with_a_clear_error() -> None:
    from IndexedRedis import ConcurrencyError
    from IndexedRedis.flows.text import STALE_PLAN

    flow = _query_flow({"text__iexact": "x"})
    next(flow)
    with pytest.raises(ConcurrencyError, match="Word: a text lookup kept meeting changed dictionaries"):
        for version in range(1000):
            flow.send([STALE_PLAN, 1, b"%d" % version, b"", b"x"])


def test_text_lookups_and_order_on_a_redis_cluster(empty_cluster: Any) -> None:
    from IndexedRedis import clearRedisPools, setDefaultRedisConnectionParams

    setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": empty_cluster.master_ports()[0], "cluster": True})
    try:
        words = ["Alpha", "alphabet", "Beta", "ΣΊΣΥΦΟΣ", "σίσυφος", "gamma"]
        Word.reset([Word(text=t, n=i) for i, t in enumerate(words)])
        Word(text="ALPHA").save()
        assert sorted(o.text for o in Word.objects.filter(text__istartswith="alph")) == ["ALPHA", "Alpha", "alphabet"]
        assert Word.objects.filter(text__icontains="ΣΥΦ").count() == 2
        assert [o.text for o in Word.objects.orderBy("text")[1:3]] == ["Alpha", "Beta"]
        assert Word.objects.check().ok
    finally:
        Word.reset([])
        clearRedisPools()


def test_check_finds_dictionary_drift_both_ways_and_repair_mends_it_for_every_plan(
        redis_client: redis.Redis) -> None:
    Word.reset([Word(text=t) for t in ("kiwi", "kiwano", "lime")])
    gk = Word._meta.keys.generation(int(redis_client.get(Word._meta.keys.gen)))
    # kiwi lost, and kumquat, a value no object has, added (as by a foreign write)
    rewrite_dictionary(redis_client, gk.text_dict("text"), [b"kiwano", b"kumquat", b"lime"])
    qs = Word.objects.filter(text__startswith="k")
    assert [o.text for o in qs] == ["kiwano"]                      # the drift shows, and is planned
    report = Word.objects.check()
    assert report.found == {"missing_entry": 1, "stale_entry": 1}, report.details
    assert {f.key for f in report.details} == {gk.text_dict("text")}
    repaired = Word.objects.repair()
    assert repaired.repaired == repaired.found and Word.objects.check().ok
    # the repair bumped the dictionary's version: the plan made from the drifted dictionary is stale
    assert sorted(o.text for o in qs) == ["kiwano", "kiwi"]
    assert_indexes_consistent(redis_client, Word)


def test_update_keeps_the_dictionaries_exact(redis_client: redis.Redis) -> None:
    Word.reset([Word(text=t, tag="x") for t in ("pear", "pear", "plum")])
    qs = Word.objects.filter(text__startswith="p")
    assert qs.count() == 3                                            # a plan, at this version
    assert Word.objects.filter(text="pear").update(text="Peach") == 2
    gk = Word._meta.keys.generation(int(redis_client.get(Word._meta.keys.gen)))
    assert dictionary_values(redis_client, gk.text_dict("text")) == [b"Peach", b"plum"]
    assert Word.objects.filter(text__istartswith="pe").count() == 2
    assert qs.count() == 1                                            # the old plan went stale
    assert_indexes_consistent(redis_client, Word)
