"""check against a plain-Python model of drift: random drift is written with redis-py,
the expected findings are computed from the raw keys by plain Python (what every
record implies, against what every index key holds), and check's counts must be
exactly those; repair must then leave exact indexes."""

from __future__ import annotations

from collections import Counter
from typing import Any

import redis
from consistency import assert_indexes_consistent, current_generation, decode_record, edit_ids, stored_ids
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from IndexedRedis import IndexedRedisModel, IRField
from IndexedRedis.fields import NULL_STORED, wire_bytes
from IndexedRedis.keys import lex_member, padded_pk
from IndexedRedis.reports import CheckReport


class Drifty(IndexedRedisModel):
    FIELDS = ["artist", IRField("n", valueType=int), "title"]
    INDEXED_FIELDS = ["artist", "n"]
    LEX_INDEXED_FIELDS = ["title"]
    KEY_NAME = "Drifty"


SIZE = 40
ARTISTS = ["a0", "a1", "a2", "a3"]


def dataset() -> list[Drifty]:
    return [Drifty(artist=ARTISTS[i % 4], n=None if i % 9 == 0 else i % 6, title=f"t{i % 13}") for i in range(SIZE)]


objects = st.integers(0, SIZE - 1)
ghosts = st.integers(10_000, 10_010)
drift = st.one_of(
    st.tuples(st.just("srem"), objects, st.sampled_from(["artist", "n", "title"])),
    st.tuples(st.just("sadd"), objects, st.sampled_from(ARTISTS)),
    st.tuples(st.just("ghost"), ghosts, st.sampled_from(ARTISTS)),
    st.tuples(st.just("drop_id"), objects, st.just(0)),
    st.tuples(st.just("ghost_id"), ghosts, st.just(0)),
    st.tuples(st.just("score"), objects, st.sampled_from([-1.0, 2.0, 7.5])),
    st.tuples(st.just("unscore"), objects, st.just(0)),
    st.tuples(st.just("lex"), objects, st.sampled_from(["t1", "zz"])),
    st.tuples(st.just("hdel"), objects, st.just(0)),
    st.tuples(st.just("del_key"), st.sampled_from(ARTISTS), st.just(0)),
)


def inject(client: redis.Redis, pks: list[int], op: tuple[str, Any, Any]) -> None:
    gk = Drifty._meta.keys.generation(current_generation(client, Drifty))
    what, a, b = op
    pk = pks[a] if isinstance(a, int) and a < SIZE else a
    if what == "srem":
        record = client.hget(gk.objs, pk)
        if record is not None:
            stored = decode_record(client, Drifty, record)[b]
            key = gk.null_index(b) if stored is False else gk.index(b, str(stored).encode())
            client.srem(key, pk)
    elif what in ("sadd", "ghost"):
        client.sadd(gk.index("artist", b.encode()), pk)
    elif what == "drop_id":
        edit_ids(client, gk.ids, remove=[pk])
    elif what == "ghost_id":
        edit_ids(client, gk.ids, add=[pk])
    elif what == "score":
        client.zadd(gk.score_index("n"), {padded_pk(pk): b})
    elif what == "unscore":
        client.zrem(gk.score_index("n"), padded_pk(pk))
    elif what == "lex":
        client.zadd(gk.lex_index("title"), {lex_member(b.encode(), pk): 0})
    elif what == "hdel":
        client.hdel(gk.objs, pk)
    else:
        client.delete(gk.index("artist", a.encode()))


def expected_findings(client: redis.Redis) -> Counter[str]:
    """What the records imply against what the keys hold, in plain Python."""
    meta = Drifty._meta
    gk = meta.keys.generation(current_generation(client, Drifty))
    records = {int(pk): decode_record(client, Drifty, blob) for pk, blob in client.hgetall(gk.objs).items()}
    out: Counter[str] = Counter()
    ids = stored_ids(client, gk.ids)
    out["missing_id"] = sum(1 for pk in records if pk not in ids)
    out["stale_id"] = sum(1 for pk in ids if pk not in records)
    implied: dict[bytes, set[int]] = {}
    for pk, record in records.items():
        for field in meta.indexed:
            implied.setdefault(meta.index_key(gk, field, record[field.name]), set()).add(pk)
    held = {key: {int(m) for m in client.smembers(key)}
            for key in client.scan_iter(match=gk.prefix + b"[in]:*", count=1000)}
    for key in set(implied) | set(held):
        out["missing_entry"] += len(implied.get(key, set()) - held.get(key, set()))
        out["stale_entry"] += len(held.get(key, set()) - implied.get(key, set()))
    scores = {int(m): s for m, s in client.zrange(gk.score_index("n"), 0, -1, withscores=True)}
    for pk, record in records.items():
        want = None if record["n"] is NULL_STORED else float(record["n"])
        if scores.get(pk) != want:
            out["wrong_score"] += 1
    out["stale_entry"] += sum(1 for pk in scores if pk not in records)
    lexes = set(client.zrange(gk.lex_index("title"), 0, -1))
    wanted = {lex_member(wire_bytes(r["title"]), pk) for pk, r in records.items()}
    out["missing_entry"] += len(wanted - lexes)
    out["stale_entry"] += len(lexes - wanted)
    return +out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(drift, min_size=1, max_size=8))
def test_check_counts_what_a_plain_model_of_the_keys_finds(ops: list[Any], redis_client: redis.Redis) -> None:
    redis_client.flushdb()
    objs = dataset()
    pks = Drifty.reset(objs)
    for op in ops:
        inject(redis_client, pks, op)
    expected = expected_findings(redis_client)

    report: CheckReport = Drifty.objects.check(batchSize=7)
    assert report.found == expected, (ops, report.details)

    repaired = Drifty.objects.repair(batchSize=7)
    assert repaired.found == expected and repaired.repaired == expected and repaired.ok
    assert not expected_findings(redis_client)
    assert Drifty.objects.check().ok
    assert_indexes_consistent(redis_client, Drifty)
