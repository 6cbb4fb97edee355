"""WAIT_REPLICAS: writes wait for replicas in the same round trip, and a write too few
replicas acknowledged raises NotReplicatedError (after being applied on the master).
Real servers: a private master and a private replica of it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from IndexedRedis import IndexedRedisModel, InvalidModelException, NotReplicatedError
from IndexedRedis.embedded import EmbeddedRedis, free_port


@pytest.fixture
def master_and_replica() -> Iterator[tuple[EmbeddedRedis, EmbeddedRedis]]:
    master = EmbeddedRedis(port=free_port(), unix_socket=False).start()
    replica = EmbeddedRedis(port=free_port(), unix_socket=False,
                            extra_args=["--replicaof", "127.0.0.1", str(master.port)]).start()
    try:
        probe = redis.Redis(port=master.port)
        deadline = time.monotonic() + 20
        while probe.info("replication").get("connected_slaves", 0) < 1:
            assert time.monotonic() < deadline, "the replica never connected"
            time.sleep(0.05)
        probe.close()
        follower = redis.Redis(port=replica.port)
        while follower.info("replication").get("master_link_status") != "up":  # initial sync done
            assert time.monotonic() < deadline, "the replica never finished its first sync"
            time.sleep(0.05)
        follower.close()
        yield master, replica
    finally:
        replica.stop()
        master.stop()


def _model(master: EmbeddedRedis, wait: int, timeout_ms: int = 500) -> type[Any]:
    return type("Durable", (IndexedRedisModel,), {
        "__module__": __name__, "FIELDS": ["name"], "INDEXED_FIELDS": ["name"], "KEY_NAME": "Durable",
        "WAIT_REPLICAS": wait, "WAIT_TIMEOUT_MS": timeout_ms,
        "REDIS_CONNECTION_PARAMS": {"host": "127.0.0.1", "port": master.port, "db": 0}})


def test_writes_wait_for_the_replica_in_the_same_round_trip(master_and_replica: Any) -> None:
    master, replica = master_and_replica
    durable = _model(master, wait=1)
    obj = durable(name="kept")
    obj.save()
    seen = redis.Redis(port=replica.port)
    # WAIT returned only once the replica had the write: it is there at once
    assert seen.hlen(durable._meta.keys.generation(0).objs) == 1
    durable.reset([durable(name=f"n{i}") for i in range(250)])
    assert seen.get(durable._meta.keys.gen) is not None and durable.objects.count() == 250
    obj2 = durable.objects.filter(name="n7").first()
    assert obj2.delete()
    assert durable.objects.filter(name="n7").count() == 0
    seen.close()


def test_a_write_no_replica_acknowledges_raises_and_says_it_was_applied(master_and_replica: Any) -> None:
    master, replica = master_and_replica
    durable = _model(master, wait=1, timeout_ms=200)
    os.kill(replica.pid, signal.SIGSTOP)  # the replica stops acknowledging
    try:
        obj = durable(name="maybe lost")
        with pytest.raises(NotReplicatedError, match=r"applied on the master.*0 of 1 replicas.*200 ms") as info:
            obj.save()
        assert info.value.acknowledged == 0 and info.value.wanted == 1
        assert durable.objects.filter(name="maybe lost").count() == 1  # on the master it is stored
    finally:
        os.kill(replica.pid, signal.SIGCONT)


@pytest.mark.usefixtures("evalsha_only")  # counts the EVALSHA path
def test_without_wait_replicas_no_wait_is_sent(master_and_replica: Any) -> None:
    from monitor import CommandLog

    master, _ = master_and_replica
    plain = _model(master, wait=0)
    log = CommandLog(f"redis://127.0.0.1:{master.port}/0")
    try:
        plain(name="x").save()  # warm up: scripts loaded
        assert log.commands(lambda: plain(name="y").save()) == ["EVALSHA"]
        durable = _model(master, wait=1)
        assert log.commands(lambda: durable(name="z").save()) == ["EVALSHA", "WAIT"]
    finally:
        log.close()


class _OwnClient(redis.Redis):
    """A client subclass: the drivers send through its own execute_command and pipelines."""


@pytest.mark.parametrize("client_class", [redis.Redis, _OwnClient], ids=["packed", "own-client"])
def test_a_script_the_server_lacks_is_sent_whole_and_waited_for_again(master_and_replica: Any,
                                                                      client_class: type[Any]) -> None:
    """After SCRIPT FLUSH the EVALSHA fails, so the WAIT after it waited for nothing of
    this write: the script goes again whole, with its own WAIT after it."""
    from monitor import CommandLog

    master, _ = master_and_replica
    durable = _model(master, wait=1)
    durable._connection = client_class(host="127.0.0.1", port=master.port)
    log = CommandLog(f"redis://127.0.0.1:{master.port}/0")
    try:
        durable(name="warm").save()
        redis.Redis(port=master.port).script_flush()
        assert log.commands(lambda: durable(name="after flush").save()) == ["EVALSHA", "WAIT", "EVAL", "WAIT"]
        assert durable.objects.filter(name="after flush").count() == 1
    finally:
        log.close()


@pytest.mark.parametrize(("attribute", "value"), [("WAIT_REPLICAS", -1), ("WAIT_REPLICAS", "1"),
                                                  ("WAIT_TIMEOUT_MS", True)])
def test_wait_settings_are_checked_when_the_model_is_defined(attribute: str, value: Any) -> None:
    with pytest.raises(InvalidModelException, match=f"{attribute} must be an int >= 0"):
        type("BadWait", (IndexedRedisModel,), {"__module__": __name__, "FIELDS": ["a"], "KEY_NAME": "bw",
                                               attribute: value})
