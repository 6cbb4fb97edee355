"""Faults, with real processes and bounded loops: writers SIGKILLed mid-storm, the
server SIGKILLed under ``appendfsync always``, connections cut at random moments by a
proxy (between a request and its reply too), and a socket timeout shorter than one
reset batch.  Afterwards the indexes agree with the records, no acknowledged write is
lost, no write is applied twice and no pk is handed out twice."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from consistency import assert_indexes_consistent

from IndexedRedis import IndexedRedisModel, IRField, setDefaultRedisConnectionParams
from IndexedRedis.embedded import find_redis_server, free_port

pytestmark = pytest.mark.timeout(240)


class FaultItem(IndexedRedisModel):
    FIELDS = ["tag", IRField("n", valueType=int), "color", "payload"]
    INDEXED_FIELDS = ["tag", "n", "color"]
    KEY_NAME = "FaultItems"


COLORS = ["red", "green", "blue"]


# ---- writers SIGKILLed in the middle of saves, updates and deletes ------------------------


def _storm(url: str, seed: int, done: Any) -> None:
    """Save, update and delete at random, for ever (until killed); ``done`` counts."""
    setDefaultRedisConnectionParams({"url": url})
    rng = random.Random(seed)
    mine: list[Any] = []
    number = 0
    while True:
        action = rng.random()
        if action < 0.5 or not mine:
            obj = FaultItem(tag=f"w{seed}", n=number, color=rng.choice(COLORS), payload="x" * rng.randrange(200))
            obj.save()
            mine.append(obj)
            number += 1
        elif action < 0.8:
            obj = rng.choice(mine)
            obj.color = rng.choice(COLORS)
            obj.n += 1000
            obj.save()
        else:
            mine.pop(rng.randrange(len(mine))).delete()
        done.value += 1


def test_writers_killed_mid_storm_leave_exact_indexes(redis_url: str, redis_client: redis.Redis) -> None:
    context = multiprocessing.get_context("spawn")
    rng = random.Random(11)
    for round_number in range(3):
        counters = [context.Value("i", 0) for _ in range(4)]
        writers = [context.Process(target=_storm, args=(redis_url, 10 * round_number + i, counters[i]), daemon=True)
                   for i in range(4)]
        for writer in writers:
            writer.start()
        deadline = time.monotonic() + 60  # a spawned child takes a while to start on a busy machine
        while min(c.value for c in counters) < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.random())  # then a random moment: each is mid-way through something
        for writer in writers:
            os.kill(writer.pid, signal.SIGKILL)  # type: ignore[arg-type]
            writer.join(10)
    records = assert_indexes_consistent(redis_client, FaultItem)
    assert len(records) > 50, "the writers hardly wrote anything"
    print(f"{len(records)} objects left by 3 rounds of 4 writers SIGKILLed mid-storm; indexes exact")
    for color in COLORS:
        assert sorted(o._id for o in FaultItem.objects.filter(color=color)) == sorted(
            pk for pk, rec in records.items() if rec["color"] == color)


# ---- the server SIGKILLed under appendfsync always -----------------------------------------


@pytest.fixture
def durable_server(tmp_path: Any) -> Iterator[dict[str, Any]]:
    """A redis-server with AOF and appendfsync always, in a directory that outlives it."""
    port = free_port()
    args = [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--loglevel", "warning"]
    state: dict[str, Any] = {"port": port, "args": args, "process": None}

    def start() -> None:
        state["process"] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                if redis.Redis(port=port, socket_connect_timeout=0.2).ping():
                    return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    state["start"] = start
    start()
    yield state
    if state["process"].poll() is None:
        state["process"].kill()
        state["process"].wait()


def _acked_writer(port: int, out: Any) -> None:
    """Saves objects one by one and reports each acknowledged pk (then keeps going)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # no retries: once the server is gone the writer stops (it must not write to the restarted one)
    setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": port, "socket_timeout": 5,
                                     "retry": Retry(NoBackoff(), 0)})
    number = 0
    while True:
        obj = FaultItem(tag="durable", n=number, color=COLORS[number % 3])
        try:
            obj.save()
        except redis.RedisError:
            return  # the server is gone
        out.send(obj._id)
        number += 1


def test_a_server_killed_under_appendfsync_always_loses_no_acknowledged_write(
        durable_server: dict[str, Any]) -> None:
    port = durable_server["port"]
    setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": port})
    FaultItem.reset([FaultItem(tag="before", n=i, color="red") for i in range(50)])
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    writer = context.Process(target=_acked_writer, args=(port, send), daemon=True)
    writer.start()
    acked: list[int] = []
    deadline = time.monotonic() + 60
    while len(acked) < 300 and time.monotonic() < deadline:
        if receive.poll(0.5):
            acked.append(receive.recv())
    durable_server["process"].send_signal(signal.SIGKILL)
    durable_server["process"].wait()
    while receive.poll(0.5):  # acknowledgements that were on their way
        acked.append(receive.recv())
    writer.join(20)
    if writer.is_alive():  # it must not write to the restarted server while the checks run
        writer.kill()
        writer.join()
    assert len(acked) >= 300
    first_client = FaultItem._get_client()  # holds connections to the dead server
    durable_server["start"]()
    assert FaultItem._get_client() is first_client
    stored = {obj._id for obj in FaultItem.objects.filter(tag="durable")}  # the first operation: it works
    print(f"server SIGKILLed after {len(acked)} acknowledged saves; {len(set(acked) - stored)} lost, "
          f"{len(stored - set(acked))} applied but not acknowledged")
    assert set(acked) <= stored, f"lost {len(set(acked) - stored)} acknowledged writes"
    assert len(stored - set(acked)) <= 1  # at most the save in flight when the server died
    assert FaultItem.objects.filter(tag="before").count() == 50
    assert_indexes_consistent(redis.Redis(port=port), FaultItem)


# ---- connections cut at random moments -------------------------------------------------------


class CuttingProxy:
    """A TCP proxy that cuts each connection after a random number of bytes in either
    direction (so also between a request and its reply, or in the middle of either)."""

    def __init__(self, upstream: int, seed: int, mean_bytes: int = 3000) -> None:
        self.upstream = upstream
        self.rng = random.Random(seed)
        self.mean = mean_bytes
        self.cuts = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _budget(self) -> int:
        with self.lock:
            return int(self.rng.expovariate(1 / self.mean)) + 1

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            pair = (client, upstream)
            threading.Thread(target=self._pump, args=(client, upstream, pair, self._budget()), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, pair, self._budget()), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, pair: tuple[socket.socket, ...],
              budget: int) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data or len(data) >= budget:
                try:
                    if data and budget > 1:
                        target.sendall(data[:budget - 1])  # part of it, then the cut
                except OSError:
                    pass
                with self.lock:
                    self.cuts += 1
                for sock in pair:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    sock.close()
                return
            budget -= len(data)
            try:
                target.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()


def test_connections_cut_at_random_never_apply_a_write_twice_or_hand_out_a_pk_twice(
        redis_url: str, redis_client: redis.Redis) -> None:
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    db = int(redis_url.rsplit("/", 1)[1])
    proxy = CuttingProxy(port, seed=5)
    setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": proxy.port, "db": db, "socket_timeout": 2,
                                     "socket_connect_timeout": 2})
    outcomes: dict[str, Any] = {}
    started = time.monotonic()
    for number in range(400):
        tag = f"cut-{number}"
        obj = FaultItem(tag=tag, n=number, color=COLORS[number % 3], payload="p" * (number % 500))
        try:
            obj.save()
            outcomes[tag] = obj._id
        except redis.RedisError as exc:  # a clear error, never a hang (the loop's time is checked below)
            outcomes[tag] = None
            assert "Model FaultItem" in str(exc) or "may or may not" in str(exc), exc
        if number % 40 == 0:
            try:
                FaultItem.objects.filter(color="red").count()  # reads through the cuts too
            except redis.RedisError:
                pass
    proxy.close()
    assert time.monotonic() - started < 180
    assert proxy.cuts > 20, "the proxy hardly cut anything"
    setDefaultRedisConnectionParams({"url": redis_url})
    stored: dict[str, list[int]] = {}
    for obj in FaultItem.objects.all():
        stored.setdefault(obj.tag, []).append(obj._id)
    assert all(len(pks) == 1 for pks in stored.values()), "a save was applied twice"
    acked = {tag: pk for tag, pk in outcomes.items() if pk is not None}
    assert all(stored.get(tag) == [pk] for tag, pk in acked.items()), "an acknowledged save is missing"
    assert len(set(acked.values())) == len(acked), "a pk was handed out twice"
    failed = [tag for tag, pk in outcomes.items() if pk is None]
    print(f"{proxy.cuts} cuts; {len(acked)} saves acknowledged, {len(failed)} failed, of which "
          f"{sum(tag in stored for tag in failed)} had been applied (once)")
    assert len(failed) > 5, "no save failed: the cuts missed the writes"
    assert_indexes_consistent(redis_client, FaultItem)


# ---- a socket timeout shorter than one reset batch -----------------------------------------


def test_a_socket_timeout_shorter_than_a_reset_batch_fails_clearly_and_keeps_the_old_data(
        redis_url: str, redis_client: redis.Redis) -> None:
    FaultItem.reset([FaultItem(tag="old", n=i, color="blue") for i in range(20)])
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    setDefaultRedisConnectionParams({"url": redis_url, "socket_timeout": 0.002, "retry": Retry(NoBackoff(), 0)})
    big = [FaultItem(tag="new", n=i, color="red", payload="z" * 200_000) for i in range(300)]
    with pytest.raises(redis.RedisError, match="Model FaultItem"):
        FaultItem.reset(big)
    setDefaultRedisConnectionParams({"url": redis_url})
    assert sorted(o.n for o in FaultItem.objects.filter(tag="old")) == list(range(20))  # the old dataset, whole
    assert FaultItem.objects.filter(tag="new").count() == 0
    FaultItem.reset(big[:30])  # with a sane timeout it goes through
    assert FaultItem.objects.count() == 30
    assert_indexes_consistent(redis_client, FaultItem)
