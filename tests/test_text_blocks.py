"""Text dictionaries stored as blocks of values (IndexedRedis/scripts/textindex.lua): a
reset packs them into blocks of 64; saves add a value as a block of its own between
blocks or into the block whose range holds it, splitting a block past 128 values;
deletes take values out of their block.

Whatever the writes, the blocks hold exactly the distinct stored values, in byte order,
without overlaps (the consistency checker reads them block after block), and every text
lookup and text order answers as plain Python does over the same objects.

Every test runs against the fixture's private redis-server (see conftest.py).
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from consistency import assert_indexes_consistent, dictionary_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from textops import apply_text_ops

from IndexedRedis import IndexedRedisModel, IRField
from IndexedRedis.keys import lex_text
from IndexedRedis.textindex import block_values

pytestmark = pytest.mark.timeout(900)


class Label(IndexedRedisModel):
    FIELDS = [IRField("text", valueType=str), IRField("n", valueType=int)]
    INDEXED_FIELDS = ["text"]
    KEY_NAME = "textblocks:label"


def _b(text: str) -> bytes:
    return text.encode("utf-8")


def _dict_key(client: redis.Redis) -> bytes:
    return Label._meta.keys.generation(int(client.get(Label._meta.keys.gen) or 0)).text_dict("text")


def _blocks(client: redis.Redis) -> list[list[bytes]]:
    return [block_values(member) for member in client.zrange(_dict_key(client), 0, -1)]


# ---- no Redis: the block format ---------------------------------------------------------------

@given(st.lists(st.text("a\x00\x01b\u00e9", max_size=4), unique=True, min_size=1, max_size=20))
def test_a_block_of_escaped_values_reads_back_and_sorts_by_its_first_value(words: list[str]) -> None:
    raw = sorted(_b(w) for w in words)
    member = b"".join(lex_text(v) for v in raw)
    assert block_values(member) == raw
    # blocks sort as their first values do (lex_text is order-preserving and prefix-free)
    firsts = sorted(raw)
    members = sorted(lex_text(v) + b"".join(lex_text(v + b"z" * i) for i in range(1, 3)) for v in firsts)
    assert [block_values(m)[0] for m in members] == firsts


def test_a_member_that_is_not_a_block_reads_as_the_scripts_read_it() -> None:
    # textindex.lua's dict_entries: the unended rest of a member is one value more
    assert block_values(b"plain") == [b"plain"]
    assert block_values(b"a\x00\x00b\x00\x01c") == [b"a", b"b\x00c"]
    assert block_values(b"") == []


# ---- against the server -----------------------------------------------------------------------

def test_a_reset_packs_the_dictionary_into_blocks_of_64(redis_client: redis.Redis) -> None:
    n = 20_000
    Label.reset([Label(text=f"title-{i}", n=i) for i in range(n)])
    key = _dict_key(redis_client)
    blocks = _blocks(redis_client)
    assert sum(len(b) for b in blocks) == n and max(len(b) for b in blocks) == 64
    assert redis_client.zcard(key) == -(-n // 64)
    per_value = redis_client.memory_usage(key, samples=0) / n
    assert per_value < 20, f"{per_value:.1f} B a value (a skiplist node per value costs ~110 B)"
    assert Label.objects.filter(text__startswith="title-1999").count() == 11
    assert [o.text for o in Label.objects.orderBy("-text")[:3]] == ["title-9999", "title-9998", "title-9997"]
    assert_indexes_consistent(redis_client, Label)


def test_saves_into_one_block_split_it_and_deletes_empty_it(redis_client: redis.Redis) -> None:
    Label.reset([Label(text=f"k{i:03d}", n=i) for i in range(128)])
    assert [len(b) for b in _blocks(redis_client)] == [64, 64]
    added = [Label(text=f"k050-{j:03d}", n=j) for j in range(300)]  # all inside the first block's range
    for obj in added:
        obj.save()
    sizes = [len(b) for b in _blocks(redis_client)]
    assert sum(sizes) == 428 and max(sizes) <= 128 and len(sizes) >= 4, sizes
    assert_indexes_consistent(redis_client, Label)
    assert Label.objects.filter(text__startswith="k050").count() == 301
    assert [o.text for o in Label.objects.filter(text__gt="k050-297").orderBy("text")[:4]] == [
        "k050-298", "k050-299", "k051", "k052"]
    for obj in added:
        obj.delete()
    assert [v for b in _blocks(redis_client) for v in b] == [_b(f"k{i:03d}") for i in range(128)]
    assert_indexes_consistent(redis_client, Label)


def test_a_save_before_every_block_and_one_after_the_last(redis_client: redis.Redis) -> None:
    Label.reset([Label(text=f"m{i:03d}", n=i) for i in range(100)])
    Label(text="a", n=0).save()          # before every block: a block of its own, first
    Label(text="z", n=0).save()          # after the last block's last value
    Label(text="m050", n=0).save()       # already there: nothing changes
    values = dictionary_values(redis_client, _dict_key(redis_client))
    assert values[0] == b"a" and values[-1] == b"z" and len(values) == 102
    assert [o.text for o in Label.objects.orderBy("text")[:2]] == ["a", "m000"]
    assert_indexes_consistent(redis_client, Label)


@pytest.mark.parametrize("descending", [False, True])
def test_a_text_order_plan_grows_past_the_block_it_ended_in(redis_client: redis.Redis, descending: bool) -> None:
    Label.reset([Label(text=f"w{i:03d}", n=i) for i in range(300)])
    want = [f"w{i:03d}" for i in range(300)]
    if descending:
        want = want[::-1]
    qs = Label.objects.orderBy("-text" if descending else "text")
    assert [o.text for o in qs[:3]] == want[:3]            # a plan of one block (64 values)
    assert [o.text for o in qs[200:205]] == want[200:205]  # extended from its last value: no repeats
    assert [o.text for o in qs] == want


# Values from small pools, so that writes land inside, between and around the blocks,
# with shared prefixes, NULs, 0x01 and non-ASCII text.
_pieces = st.sampled_from(["", "a", "b", "\x00", "\x01", "é", "ab", "a\x00"])
words = st.builds(lambda p, i, s: f"{p}{i:03d}{s}", st.sampled_from(["a", "b", "a\x00", "é"]),
                  st.integers(0, 150), _pieces)
operations = st.lists(st.one_of(
    st.tuples(st.just("save"), words),
    st.tuples(st.just("update"), st.integers(0, 10**6), words),
    st.tuples(st.just("delete"), st.integers(0, 10**6)),
), min_size=1, max_size=60)


@settings(deadline=None, max_examples=25,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(base=st.lists(words, min_size=0, max_size=400) | st.lists(words, min_size=150, max_size=400),
       ops=operations, prefix=words, bounds=st.tuples(words, words),
       page=st.tuples(st.integers(0, 300), st.integers(1, 80)))
def test_blocks_follow_every_write_and_queries_match_python(redis_client: redis.Redis, base: list[str],
                                                             ops: list[Any], prefix: str,
                                                             bounds: tuple[str, str],
                                                             page: tuple[int, int]) -> None:
    redis_client.flushdb()
    fresh = [Label(text=w, n=i) for i, w in enumerate(base)]
    Label.reset(fresh)
    objs = apply_text_ops(Label, {obj._id: obj for obj in fresh}, ops, lambda text, n: Label(text=text, n=n or 0))
    rows = {pk: obj.text for pk, obj in objs.items()}
    assert dictionary_values(redis_client, _dict_key(redis_client)) == sorted({_b(v) for v in rows.values()})
    assert_indexes_consistent(redis_client, Label)

    start = prefix[:2]
    assert sorted(o._id for o in Label.objects.filter(text__startswith=start)) == sorted(
        pk for pk, v in rows.items() if v.startswith(start))
    low, high = sorted(bounds, key=_b)
    assert sorted(o._id for o in Label.objects.filter(text__range=(low, high))) == sorted(
        pk for pk, v in rows.items() if _b(low) <= _b(v) <= _b(high))
    assert sorted(o._id for o in Label.objects.filter(text__lt=high)) == sorted(
        pk for pk, v in rows.items() if _b(v) < _b(high))
    offset, size = page
    for descending in (False, True):
        want = sorted(rows, key=lambda pk: (_b(rows[pk]), pk))
        if descending:
            want = want[::-1]
        qs = Label.objects.orderBy("-text" if descending else "text")
        assert [o._id for o in qs[:3]] == want[:3]                       # a short plan first
        assert [o._id for o in qs[offset:offset + size]] == want[offset:offset + size]  # then extended


def test_check_reports_a_member_that_is_not_a_block_and_repair_takes_it_out(redis_client: redis.Redis) -> None:
    Label.reset([Label(text=f"k{i:03d}", n=i) for i in range(100)])
    redis_client.zadd(_dict_key(redis_client), {b"k050zz": 0})  # a foreign write: no block ending
    report = Label.objects.check()
    assert dict(report.found) == {"stale_entry": 1} and report.details[0].key == _dict_key(redis_client)
    Label.objects.repair()
    assert Label.objects.check().ok
    assert sum(len(b) for b in _blocks(redis_client)) == 100
    assert Label.objects.filter(text__startswith="k05").count() == 10
