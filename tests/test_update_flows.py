"""The update and ifUnchanged flows on their own, fed replies by hand (no Redis): what
they declare and send, and how they answer each script status."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from flow_router import Router

from IndexedRedis import ConcurrencyError, ConflictError, F, IndexedRedisModel, IRField, scripts
from IndexedRedis.entries import ABSENT_RECORD, record_digest
from IndexedRedis.flows import common, save, update
from IndexedRedis.flows.context import Context
from IndexedRedis.flows.requests import ScriptCall


@pytest.fixture(autouse=True)
def ir_default_connection() -> None:
    """Overrides conftest's: these tests start no server."""


class UCount(IndexedRedisModel):
    FIELDS = ["kind", IRField("n", valueType=int), "note"]
    INDEXED_FIELDS = ["kind", "n"]
    KEY_NAME = "FlowUpdate"


META = UCount._meta


def ctx() -> Context:
    return Context(META, "main", Router())


def query_reply(*records: tuple[int, dict[str, str]]) -> list[Any]:
    return [common.OK, b",".join(b"%d" % pk for pk, _ in records), [META.codec.pack(r) for _, r in records]]


def request_of(call: ScriptCall) -> Any:
    return msgpack.unpackb(call.args[0], raw=True)  # raw: the schema blob is msgpack, not text


def test_an_update_reads_then_writes_with_every_key_declared() -> None:
    flow = update.update_flow(ctx(), UCount.objects.filter(kind="a").query, {"n": F("n") + 1, "note": "x"})
    first = next(flow)
    assert first.script is scripts.QUERY
    record = {"kind": "a", "n": "4", "note": ""}
    second = flow.send(query_reply((9, record)))
    assert second.script is scripts.UPDATE
    gk = META.keys.generation(0)
    for key in (gk.index("n", b"4"), gk.index("n", b"5"), gk.score_index("n"), gk.stamp(9), gk.objs, META.keys.gen):
        assert key in second.keys
    gen, tag, _, checked, objects, layout, digest, _ = request_of(second)
    assert second.keys[layout - 1] == META.keys.generation(0).layout and digest == META.layout[0]
    assert (gen, checked) == (b"0", [b"kind", b"n", b"note"])  # the query's field, what F reads, what changes
    (obj,) = objects
    assert obj[1:3] == [b"9", b"P"] and sorted(p[0] for p in obj[3]) == [b"n", b"note"]
    assert obj[6] == record_digest(record, ["kind", "n", "note"])
    with pytest.raises(StopIteration) as stop:
        flow.send([common.OK, 1])
    assert stop.value.value == 1


def test_a_moved_generation_reads_the_query_again_there() -> None:
    context = ctx()
    flow = update.update_flow(context, UCount.objects.query, {"n": 1})
    next(flow)
    flow.send(query_reply((1, {"kind": "a", "n": "0", "note": ""})))
    again = flow.send([common.STALE_GEN, b"3"])
    assert again.script is scripts.QUERY and context.gen == 3
    write = flow.send(query_reply((1, {"kind": "a", "n": "0", "note": ""})))
    assert META.keys.generation(3).objs in write.keys and request_of(write)[0] == b"3"


def test_an_update_that_keeps_losing_races_gives_up() -> None:
    flow = update.update_flow(ctx(), UCount.objects.query, {"n": F("n") + 1})
    next(flow)
    record = {"kind": "a", "n": "0", "note": ""}
    request = flow.send(query_reply((1, record)))
    changed = META.codec.pack({"kind": "a", "n": "1", "note": ""})
    with pytest.raises(ConcurrencyError, match="update.*racing"):
        for _ in range(common.MAX_ATTEMPTS + 1):
            assert request.script is scripts.UPDATE
            assert flow.send([common.STALE_VALUES, 1, changed]).script is scripts.QUERY
            request = flow.send(query_reply((1, record)))


def test_save_if_unchanged_sends_the_digest_of_what_was_read_and_raises_on_a_conflict() -> None:
    obj = META.builder.instance_from_record(5, {"kind": "a", "n": "1", "note": ""})
    obj.n = 2
    flow = save.save_flow(ctx(), [obj], if_unchanged=True)
    request = next(flow)
    (sent,) = msgpack.unpackb(request.args[0], raw=True)[1]
    assert sent[6] == record_digest({"kind": "a", "n": "1", "note": ""}, META.field_names)
    with pytest.raises(ConflictError, match="UCount pk 5: the stored object was changed or deleted"):
        flow.send([common.CONFLICT, 1])
    assert obj._orig == {"kind": "a", "n": "1", "note": ""}  # still believes what it read
    fresh = UCount(_id=6, kind="b")
    (sent,) = msgpack.unpackb(next(save.save_flow(ctx(), [fresh], if_unchanged=True)).args[0], raw=True)[1]
    assert sent[6] == ABSENT_RECORD
    (sent,) = msgpack.unpackb(next(save.save_flow(ctx(), [fresh])).args[0], raw=True)[1]
    assert sent[6] == b""  # no check asked
