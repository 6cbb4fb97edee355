"""Text lookups that match more than ``UNION_LIMIT`` distinct values (flows/text.py):
their value sets are gathered into scratch sets in bounded steps (text_union.lua), and
the query reads those.  The answers must equal plain Python's over the same objects,
for every operation, with other conditions, trees and orders; no script call names
more than a step's value sets; a write between the steps spoils the gathering, which
starts again, so the answer is the data of one moment; the scratch sets are deleted;
and where the server refuses the writes (a read-only ACL user) the query runs as one
script, with the same answer.

Every test runs against the fixture's private redis-server (see conftest.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from consistency import assert_indexes_consistent
from interleave import after_first_reply
from monitor import CommandLog

from IndexedRedis import IndexedRedisModel, IRField, Q, setDefaultRedisConnectionParams
from IndexedRedis.embedded import EmbeddedRedis
from IndexedRedis.flows import text as text_flows

pytestmark = pytest.mark.timeout(600)

N = 7000  # distinct texts; "x" is in 5,250 of them: steps of UNION_STEP value sets


class Big(IndexedRedisModel):
    FIELDS = [IRField("text", valueType=str), "tag", IRField("n", valueType=int)]
    INDEXED_FIELDS = ["text", "tag", "n"]
    KEY_NAME = "textlarge:big"


def text_of(i: int) -> str:
    return f"w{i:05d}" + ("x" if i % 4 else "")


def rows() -> list[dict[str, Any]]:
    # one object per text, and a second object for every 10th text (sets of two)
    out = [{"text": text_of(i), "tag": f"t{i % 3}", "n": i % 17} for i in range(N)]
    out += [{"text": text_of(i), "tag": "dup", "n": 5} for i in range(0, N, 10)]
    return out


@pytest.fixture
def loaded() -> Iterator[list[dict[str, Any]]]:
    data = rows()
    pks = Big.reset([Big(**row) for row in data])
    for pk, row in zip(pks, data):
        row["_id"] = pk
    yield data


def scratch_keys(client: redis.Redis) -> list[bytes]:
    return list(client.scan_iter(match=b"ir:{textlarge%3Abig}:g*:u:*", count=10_000))


def test_a_large_lookup_answers_as_plain_python_for_every_operation(loaded: list[dict[str, Any]],
                                                                    redis_client: redis.Redis) -> None:
    matching = [r for r in loaded if "x" in r["text"]]
    assert len({r["text"] for r in matching}) > 2 * text_flows.UNION_LIMIT
    qs = Big.objects.filter(text__contains="x")
    assert qs.count() == len(matching)
    assert sorted(qs.getPrimaryKeys()) == sorted(r["_id"] for r in matching)
    assert [o._id for o in qs.all()] == sorted(r["_id"] for r in matching)
    by_text = sorted(matching, key=lambda r: (r["text"], r["_id"]))
    assert [o._id for o in qs.orderBy("text")[100:110]] == [r["_id"] for r in by_text[100:110]]
    by_n = sorted(matching, key=lambda r: (-r["n"], -r["_id"]))
    assert [o._id for o in qs.orderBy("-n")[:7]] == [r["_id"] for r in by_n[:7]]
    both = [r for r in matching if r["tag"] == "t1"]
    assert Big.objects.filter(text__contains="x", tag="t1").count() == len(both)
    either = [r for r in loaded if "x" in r["text"] or r["tag"] == "dup"]
    assert Big.objects.filter(Q(text__contains="x") | Q(tag="dup")).count() == len(either)
    assert Big.objects.exclude(text__contains="x").count() == len(loaded) - len(matching)
    assert Big.objects.filter(text__icontains="X").count() == len(matching)
    assert asyncio.run(Big.objects.filter(text__contains="x").acount()) == len(matching)
    assert scratch_keys(redis_client) == []  # every gathering deleted its scratch sets
    assert_indexes_consistent(redis_client, Big)


@pytest.mark.usefixtures("evalsha_only")  # counts the EVALSHA path
def test_no_script_call_names_more_than_a_step_of_value_sets(loaded: list[dict[str, Any]],
                                                             log: CommandLog) -> None:
    Big.objects.filter(text__contains="x").count()  # the plan is made (walk steps)
    sent = log.words(lambda: Big.objects.filter(text__contains="x").count())
    scripts = [words for words in sent if words[0].upper() in ("EVALSHA", "EVALSHA_RO", "EVAL", "EVAL_RO")]
    steps = [words for words in scripts if "add" in words]
    assert len(steps) == -(-5250 // text_flows.UNION_STEP)
    assert max(int(words[2]) for words in scripts) <= text_flows.UNION_STEP + 3
    assert any("drop" in words for words in scripts)


def test_a_write_between_the_steps_spoils_the_gathering(loaded: list[dict[str, Any]],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # A delete of an object whose text keeps another object (its dictionary does not
    # change), after the first step gathered its value set: without the writes count
    # the answer would still hold it.
    victim = next(r for r in loaded if r["tag"] == "dup" and "x" in r["text"])
    real = text_flows._gather_flow
    rounds: list[int] = []

    def delete_once() -> None:
        if not rounds:
            thread = threading.Thread(target=lambda: Big.objects.get(victim["_id"]).delete())
            thread.start()
            thread.join()
        rounds.append(1)

    def gather(*args: Any) -> Any:
        return (yield from after_first_reply(real(*args), delete_once))

    monkeypatch.setattr(text_flows, "_gather_flow", gather)
    expected = sum(1 for r in loaded if "x" in r["text"]) - 1
    assert Big.objects.filter(text__contains="x").count() == expected
    assert len(rounds) == 2  # spoiled once, then gathered again
    assert victim["_id"] not in Big.objects.filter(text__contains="x").getPrimaryKeys()


def test_writes_that_keep_coming_leave_the_query_to_one_script(loaded: list[dict[str, Any]],
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               redis_client: redis.Redis) -> None:
    real = text_flows._gather_flow
    # objects whose text keeps another object: their deletes change no dictionary
    pks = iter(r["_id"] for r in loaded if "x" in r["text"] and r["tag"] == "dup")

    def gather(*args: Any) -> Any:
        made, unions = yield from real(*args)
        gone = next(pks)
        thread = threading.Thread(target=lambda: Big.objects.get(gone).delete())
        thread.start()
        thread.join()
        return made, unions

    monkeypatch.setattr(text_flows, "_gather_flow", gather)
    matching = sum(1 for r in loaded if "x" in r["text"])
    assert Big.objects.filter(text__contains="x").count() == matching - text_flows.UNION_ROUNDS
    assert scratch_keys(redis_client) == []


def test_a_reader_that_may_not_write_gets_the_answer_from_one_script() -> None:
    server = EmbeddedRedis().start()
    try:
        admin = server.client()
        major = int(str(admin.info("server")["redis_version"]).split(".")[0])
        # 6.2: scripts run and their writes are refused; 7: only the read-only forms run
        scripts = ("+evalsha", "+eval") if major < 7 else ("+evalsha_ro", "+eval_ro")
        admin.execute_command("ACL", "SETUSER", "reader", "on", ">pw", "~ir:*", "+@read", "+@connection",
                              *scripts, "+info")
        setDefaultRedisConnectionParams(server.connection_params)
        data = rows()
        Big.reset([Big(**row) for row in data])
        setDefaultRedisConnectionParams({**server.connection_params, "username": "reader", "password": "pw"})
        assert Big.objects.filter(text__contains="x").count() == sum(1 for r in data if "x" in r["text"])
        assert scratch_keys(admin) == []
    finally:
        server.stop()


def test_every_kind_of_index_write_bumps_the_writes_count(loaded: list[dict[str, Any]],
                                                          redis_client: redis.Redis) -> None:
    gen = int(redis_client.get(Big._meta.keys.gen) or 0)
    gk = Big._meta.keys.generation(gen)

    def writes() -> int:
        return int(redis_client.hget(gk.layout, "_w") or 0)

    steps = [writes()]
    obj = Big.objects.get(loaded[1]["_id"])
    obj.tag = "moved"
    obj.save()
    steps.append(writes())
    Big.objects.filter(tag="moved").update(n=99)
    steps.append(writes())
    Big.objects.get(loaded[2]["_id"]).delete()
    steps.append(writes())
    redis_client.srem(gk.index("tag", b"moved"), str(loaded[1]["_id"]))  # drift, for repair to fix
    assert Big.objects.repair().repaired
    steps.append(writes())
    assert all(b > a for a, b in zip(steps, steps[1:])), steps
    assert Big.objects.check().ok
