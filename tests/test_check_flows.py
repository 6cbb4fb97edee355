"""The check, repair and stats flows on their own, I/O-free: replies are fed by hand
and the requests they make are checked.  No Redis is involved."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from flow_router import Router

from IndexedRedis import IndexedRedisModel, IRField, scripts
from IndexedRedis.flows import common
from IndexedRedis.flows.check import check_flow
from IndexedRedis.flows.context import Context
from IndexedRedis.flows.inspection import SCAN_COUNT
from IndexedRedis.flows.requests import Command, ScriptCall
from IndexedRedis.flows.stats import stats_flow
from IndexedRedis.reports import CheckReport


@pytest.fixture(autouse=True)
def ir_default_connection() -> None:
    """Overrides conftest's: these tests start no server."""


class CSong(IndexedRedisModel):
    FIELDS = ["artist", IRField("track", valueType=int)]
    INDEXED_FIELDS = ["artist", "track"]
    KEY_NAME = "CheckFlowSongs"


META = CSong._meta
KEYS = META.keys


def ctx(gen: int = 3) -> Context:
    """A context that believes generation ``gen`` is live."""
    context = Context(META, "main", Router())
    context.gen = gen
    return context


def state_reply(gen: int = 3, records: int = 1, staging: list[Any] | None = None,
                dead: list[bytes] | None = None) -> list[Any]:
    return [common.OK, [b""] * 9, str(gen).encode(), str(gen).encode(), b"1", staging or [], dead or [],
            [str(META.schema_tag).encode(), META.schema_blob], [], b"1700000000000", records, records,
            b"# Stats\r\nevicted_keys:7\r\n", b"# Memory\r\nmaxmemory_policy:allkeys-lru\r\n"]


def finish(flow: Any, reply: Any) -> Any:
    with pytest.raises(StopIteration) as stop:
        flow.send(reply)
    return stop.value.value


def test_check_reads_the_bookkeeping_at_once_then_the_records_then_the_keys() -> None:
    flow = check_flow(ctx(0))
    first = next(flow)
    assert type(first) is ScriptCall and first.script is scripts.CHECK_STATE and first.readonly
    g0 = KEYS.generation(0)
    assert list(first.keys) == [KEYS.gen, KEYS.genseq, KEYS.nextpk, KEYS.staging, KEYS.dead, KEYS.schemas,
                                KEYS.lastreset, g0.objs, g0.ids]
    again = flow.send([common.STALE_GEN, b"3"])           # another generation is live: its keys
    gk = KEYS.generation(3)
    assert list(again.keys[7:]) == [gk.objs, gk.ids] and again.args == (3,)
    layout = flow.send(state_reply())
    assert layout == Command(("HGETALL", gk.layout))  # the text dictionaries' versions, before the records
    hscan = flow.send({})
    assert hscan == Command(("HSCAN", gk.objs, 0, "COUNT", 100))
    record = META.codec.pack({"artist": "x", "track": "2"})
    pipelined = flow.send([b"0", {b"5": record}])
    assert type(pipelined) is list and len(pipelined) == 1  # the last batch: no HSCAN after it
    check = pipelined[0]
    assert check.script is scripts.CHECK_RECORDS and check.readonly
    assert check.args[:4] == [3, b"5", record, 4]            # ids, artist set, track set, track score
    assert gk.index("artist", b"x") in check.keys and gk.score_index("track") in check.keys
    scan = flow.send([[common.OK, []]])
    assert scan == Command(("SCAN", 0, "MATCH", KEYS.pattern, "COUNT", SCAN_COUNT), key=KEYS.gen)
    walk = flow.send([0, [gk.objs, gk.ids, gk.index("artist", b"x")]])
    assert walk.script is scripts.CHECK_MEMBERS and list(walk.keys[3:]) == [gk.ids, gk.index("artist", b"x")]
    assert walk.args[2:7] == [b"i", "", b"0", -1, 0]            # the ids (blocks of pks): always walked
    counter = flow.send([common.OK, [[b"0", 0, 1, b"", []], [b"0", 0, 1, b"", []]]])
    assert counter == Command(("GET", KEYS.nextpk))
    assert flow.send(b"5") == Command(("HGETALL", gk.layout))  # no dictionary built: nothing to compare
    report: CheckReport = finish(flow, {})
    assert report.ok and report.objects == 1 and report.index_keys == 2 and report.entries == 2
    assert report.evicted_keys == 7 and report.maxmemory_policy == "allkeys-lru"


def test_repair_fixes_pointers_before_anything_is_freed() -> None:
    flow = check_flow(ctx(), repair=True)
    next(flow)
    fix = flow.send(state_reply(dead=[b"3", b"2"]))            # the live generation 3 is in the dead set
    assert fix.script is scripts.REPAIR and fix.args[0] == 3
    assert fix.args[1:4] == [b"SREM", fix.keys.index(KEYS.dead) + 1, b"3"] and fix.args[6] == b"x"
    sweep = flow.send([common.OK, b"1"])
    assert sweep.script is scripts.RESET_SWEEP
    layout = flow.send([common.OK, 0, [b"2"]])
    assert layout.args[0] == "HGETALL"
    hscan = flow.send({})
    assert hscan.args[0] == "HSCAN"


def test_a_repair_of_a_missing_entry_believes_in_the_record_it_read() -> None:
    flow = check_flow(ctx(), repair=True)
    next(flow)
    flow.send(state_reply())
    flow.send([common.OK, 0, []])                              # nothing swept, nothing dead
    flow.send({})  # the layout hash
    record = META.codec.pack({"artist": "x", "track": "2"})
    (check,) = flow.send([b"0", [b"5", record]])               # RESP3-less flat HSCAN reply
    gk = KEYS.generation(3)
    number = check.keys.index(gk.index("artist", b"x")) + 1
    fix = flow.send([[common.OK, [1, 2, b""]]])                # record 1, check 2 (its artist set): missing
    assert fix.script is scripts.REPAIR
    assert fix.keys[fix.args[2] - 1] == gk.index("artist", b"x") == check.keys[number - 1]
    assert fix.args[1:] == [b"SADD", fix.args[2], b"5", b"", b"5", b"b", "", b"", record]
    scan = flow.send([common.OK, b"1"])
    assert scan.args[0] == "SCAN"


def test_a_reset_during_the_check_makes_it_begin_again() -> None:
    flow = check_flow(ctx())
    next(flow)
    flow.send(state_reply())
    flow.send({})  # the layout hash
    (check,) = flow.send([b"0", {b"5": META.codec.pack({"artist": "x", "track": "2"})}])
    restart = flow.send([[common.STALE_GEN, b"9"]])
    assert restart.script is scripts.CHECK_STATE


def test_stats_counts_keys_by_kind_and_samples_their_memory() -> None:
    flow = stats_flow(ctx(), sample=2)
    next(flow)
    gk = KEYS.generation(3)
    scan = flow.send(state_reply(staging=[b"4", b"1700000005000"]))
    assert scan.args[0] == "SCAN" and scan.key == KEYS.gen
    values = [gk.index("artist", v) for v in (b"a", b"b", b"c")]
    sizes = flow.send([0, [KEYS.gen, gk.objs, *values, gk.score_index("track"), KEYS.generation(1).objs]])
    assert [c.args for c in sizes] == [("SCARD", k) for k in values] + [("ZCARD", gk.score_index("track"))]
    memory = flow.send([5, 1, 3, 9])
    measured = []
    while True:
        assert memory.script is scripts.MEMORY_USAGE and len(memory.keys) <= 2 and memory.readonly
        measured.append(list(memory.keys))
        try:
            memory = flow.send([1, *([100] * len(memory.keys))])
        except StopIteration as stop:
            report = stop.value
            break
    assert report.memory["value sets"].keys == 3 and report.memory["value sets"].sampled == 2
    assert report.memory["value sets"].bytes == 300                  # 2 sampled, 100 each, times 3/2
    assert report.memory["records"].bytes == 100 and report.memory["other generations"].keys == 1
    artist = next(index for index in report.indexes if index.field == "artist")
    assert artist.values == 3 and artist.entries == 9 and artist.largest == [("a", 5), ("c", 3), ("b", 1)]
    assert report.staging == {4: 5000} and report.objects == 1
    assert report.evicted_keys == 7 and report.maxmemory_policy == "allkeys-lru"
    assert msgpack.unpackb(META.schema_blob) == report.schemas[META.schema_tag]
