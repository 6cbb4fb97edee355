"""The Redis Cluster drivers (``IndexedRedis.drivers.cluster``) against a real cluster.

Raw requests and small test scripts, each test through the sync driver and the
asyncio one (the ``drive`` fixture).  Slots are migrated by hand (SETSLOT
IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE) to provoke MOVED, ASK and TRYAGAIN;
connections are killed with CLIENT KILL, held in flight with CLIENT PAUSE.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
import redis
from clusters import LocalCluster
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ClusterDownError, RedisClusterException, ResponseError, TryAgainError

from IndexedRedis.drivers import cluster as driver
from IndexedRedis.drivers import scriptforms
from IndexedRedis.exceptions import CrossSlotError
from IndexedRedis.flows.requests import Command, Request, ScriptCall, Transaction
from IndexedRedis.scripts import Script

pytestmark = pytest.mark.timeout(120)


class LuaScript(Script):
    """A ``Script`` of test-only Lua (the package's scripts are files)."""

    def __init__(self, name: str, source: str, readonly: bool = False) -> None:  # no file to read
        self.name = name
        self.source = source
        self.readonly = readonly
        self.sha = hashlib.sha1(source.encode()).hexdigest()


#: Appends ARGV[1] to the log KEYS[1] and counts it in KEYS[2], atomically; returns the count.
LOG = LuaScript("log", "redis.call('RPUSH', KEYS[1], ARGV[1]) return redis.call('INCR', KEYS[2])")
READ = LuaScript("read", "return {redis.call('LRANGE', KEYS[1], 0, -1), redis.call('GET', KEYS[2])}",
                 readonly=True)
LRANGE = LuaScript("lrange", "return redis.call('LRANGE', KEYS[1], 0, -1)", readonly=True)
#: LOG, then the node stays busy for ARGV[2] milliseconds.
SLOW_LOG = LuaScript("slow_log", """
redis.call('RPUSH', KEYS[1], ARGV[1])
local n = redis.call('INCR', KEYS[2])
local t0 = redis.call('TIME')
repeat
  local t = redis.call('TIME')
until (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) >= tonumber(ARGV[2]) * 1000
return n""")


def keys(tag: str) -> tuple[bytes, bytes]:
    """The log and the counter of a hash tag."""
    return b"{%s}:log" % tag.encode(), b"{%s}:n" % tag.encode()


def tag_on(cluster: LocalCluster, port: int, taken: Sequence[str] = ()) -> str:
    """A hash tag (not in ``taken``) whose slot the master on ``port`` serves."""
    for number in range(1000):
        tag = f"t{number}"
        if tag not in taken and cluster.owner(key_slot(tag.encode())) == port:
            return tag
    raise AssertionError(f"no tag found on {port}")


class Driver:
    """A cluster client and the driver for it: sync, or asyncio on a private event
    loop, so that a test reads the same for both."""

    def __init__(self, mode: str, port: int, **options: Any) -> None:
        self.mode = mode
        self.loop: asyncio.AbstractEventLoop | None = None
        self.client: Any
        if mode == "sync":
            self.client = RedisCluster(host="127.0.0.1", port=port, **options)
        else:
            self.loop = asyncio.new_event_loop()
            self.client = self.loop.run_until_complete(self._connect(port, options))
        self._background = ThreadPoolExecutor(1)

    @staticmethod
    async def _connect(port: int, options: dict[str, Any]) -> AsyncRedisCluster:
        client = AsyncRedisCluster(host="127.0.0.1", port=port, **options)
        await client.initialize()
        return client

    def __call__(self, request: Request | list[Request]) -> Any:
        if self.loop is None:
            return driver.execute(self.client, request)
        return self.loop.run_until_complete(driver.aexecute(self.client, request))

    def in_background(self, request: Request) -> Future[Any]:
        """Send ``request`` from another thread, while the test acts on the cluster."""
        return self._background.submit(self, request)

    def owner(self, slot: int) -> int:
        """The port the client's slot map routes ``slot`` to."""
        return int(self.client.nodes_manager.slots_cache[slot][0].port)

    def close(self) -> None:
        self._background.shutdown()
        if self.loop is None:
            self.client.close()
        else:
            self.loop.run_until_complete(self.client.aclose())
            self.loop.close()


@pytest.fixture(params=["sync", "async"])
def connect(request: pytest.FixtureRequest, empty_cluster: LocalCluster) -> Iterator[Callable[..., Driver]]:
    """Makes drivers (options go to the client) of the mode under test; closes them."""
    made: list[Driver] = []

    def make(**options: Any) -> Driver:
        made.append(Driver(request.param, empty_cluster.master_ports()[0], **options))
        return made[-1]

    yield make
    for each in made:
        each.close()


@pytest.fixture
def drive(connect: Callable[..., Driver]) -> Driver:
    return connect()


def kill_clients(cluster: LocalCluster, port: int) -> None:
    """Close every client connection of a node but the admin's own."""
    cluster.admin(port).execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")


def wait_blocked(cluster: LocalCluster, port: int) -> None:
    """Until a client of the node is held by CLIENT PAUSE (its request received)."""
    deadline = time.monotonic() + 5
    while int(cluster.admin(port).info("clients")["blocked_clients"]) < 1:
        assert time.monotonic() < deadline, "the request never reached the paused node"
        time.sleep(0.005)


def test_scripts_run_on_the_master_of_their_slot(drive: Driver, empty_cluster: LocalCluster) -> None:
    for port in empty_cluster.master_ports():
        log, n = keys(tag_on(empty_cluster, port))
        assert drive(ScriptCall(LOG, (log, n), ("a",))) == 1
        assert drive(ScriptCall(LOG, (log, n), ("b",))) == 2
        assert drive(ScriptCall(READ, (log, n), ())) == [[b"a", b"b"], b"2"]
        assert empty_cluster.admin(port).lrange(log, 0, -1) == ["a", "b"]
    assert drive(ScriptCall(LuaScript("keyless", "return 7"), (), ())) == 7
    assert drive(Command(("PING",))) is True  # through the response callbacks, as standalone


def test_unknown_script_is_sent_whole(drive: Driver, empty_cluster: LocalCluster) -> None:
    masters = empty_cluster.master_ports()
    tags: list[str] = []
    for port in masters:
        tags.append(tag_on(empty_cluster, port))
    for port in masters:
        empty_cluster.admin(port).script_flush()
    assert [drive(ScriptCall(LOG, keys(tag), ("x",))) for tag in tags] == [1, 1, 1]
    assert all(empty_cluster.admin(port).script_exists(LOG.sha) == [True] for port in masters)
    for port in masters:
        empty_cluster.admin(port).script_flush()
    assert drive([ScriptCall(LOG, keys(tag), ("y",)) for tag in tags]) == [2, 2, 2]


def test_pipelined_list_across_nodes_answers_in_request_order(drive: Driver, empty_cluster: LocalCluster) -> None:
    tags: list[str] = []
    for port in empty_cluster.master_ports():
        tags.append(tag_on(empty_cluster, port))
    tags.append(tag_on(empty_cluster, empty_cluster.owner(key_slot(tags[0].encode())), tags))  # two on one node
    requests: list[Request] = [ScriptCall(LOG, keys(tag), (f"{tag}-{round_}",)) for round_ in (1, 2) for tag in tags]
    requests += [Command(("GET", keys(tag)[1])) for tag in tags] + [Command(("PING",))]
    assert drive(requests) == [1] * len(tags) + [2] * len(tags) + [b"2"] * len(tags) + [True]
    assert drive([ScriptCall(READ, keys(tag), ()) for tag in reversed(tags)]) == [
        [[f"{tag}-1".encode(), f"{tag}-2".encode()], b"2"] for tag in reversed(tags)]


def test_transaction(drive: Driver, empty_cluster: LocalCluster) -> None:
    log, n = keys(tag_on(empty_cluster, empty_cluster.master_ports()[1]))
    drive(ScriptCall(LOG, (log, n), ("a",)))
    drive(ScriptCall(LOG, (log, n), ("b",)))
    assert drive(Transaction((("GET", n), ("LRANGE", log, 0, -1)))) == [b"2", [b"a", b"b"]]
    with pytest.raises(ResponseError, match="WRONGTYPE"):  # an error in EXEC's reply, as standalone
        drive(Transaction((("GET", log), ("GET", n))))
    assert drive(Command(("SET", b"%s:x" % n, "v"))) is True  # through the response callbacks
    assert drive([Command(("EXISTS", n)), Command(("SET", b"%s:y" % n, "v"))]) == [1, True]


def test_keys_in_several_slots_are_refused_before_sending(drive: Driver, empty_cluster: LocalCluster) -> None:
    a, b = keys("a"), keys("b")
    assert key_slot(b"a") != key_slot(b"b")
    with pytest.raises(CrossSlotError, match=r"\{a\} \(slot \d+\), \{b\} \(slot \d+\)") as refused:
        drive(ScriptCall(LOG, (a[0], b[1]), ("x",)))
    assert refused.value.slots == {"{a}": key_slot(b"a"), "{b}": key_slot(b"b")}
    with pytest.raises(CrossSlotError, match="transaction"):
        drive(Transaction((("GET", a[1]), ("GET", b[1]))))
    with pytest.raises(CrossSlotError, match="UNLINK command"):
        drive(Command(("UNLINK", a[1], b[1])))
    with pytest.raises(CrossSlotError):  # one bad request: none of the list is sent
        drive([ScriptCall(LOG, a, ("x",)), ScriptCall(LOG, (a[0], b[1]), ("y",))])
    with pytest.raises(CrossSlotError, match="MSET"):  # not known to be multi-key here: the server refuses
        drive(Command(("MSET", a[1], 1, b[1], 2)))
    assert sum(empty_cluster.admin(port).dbsize() for port in empty_cluster.master_ports()) == 0


def test_moved_slot_is_followed_and_remembered(drive: Driver, empty_cluster: LocalCluster) -> None:
    cluster = empty_cluster
    tag = tag_on(cluster, cluster.master_ports()[0])
    slot, (log, n) = key_slot(tag.encode()), keys(tag)
    target = cluster.master_ports()[1]
    assert drive(ScriptCall(LOG, (log, n), ("1",))) == 1
    source = cluster.move_slot(slot, target)
    assert drive.owner(slot) == source  # the client has not noticed yet
    assert drive(ScriptCall(LOG, (log, n), ("2",))) == 2
    assert drive.owner(slot) == target
    cluster.move_slot(slot, source)
    assert drive(Transaction((("GET", n),))) == [b"2"]  # MOVED inside MULTI
    assert drive.owner(slot) == source
    cluster.move_slot(slot, target)
    assert drive([Command(("GET", n)), ScriptCall(READ, (log, n), ())]) == [b"2", [[b"1", b"2"], b"2"]]
    cluster.move_slot(slot, source)
    assert drive(Command(("LLEN", log))) == 2


def half_migrated(cluster: LocalCluster) -> tuple[int, int, int, bytes, bytes]:
    """A slot with one logged id, marked as migrating, its log moved and its counter
    not: (slot, source port, target port, log key, counter key)."""
    source, target = cluster.master_ports()[:2]
    tag = tag_on(cluster, source)
    slot, (log, n) = key_slot(tag.encode()), keys(tag)
    cluster.admin(source).eval(LOG.source, 2, log, n, "1")
    cluster.begin_migration(slot, target)
    cluster.admin(source).execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", log)
    return slot, source, target, log, n


def test_ask_and_tryagain_while_a_slot_migrates(drive: Driver, empty_cluster: LocalCluster) -> None:
    cluster = empty_cluster
    slot, source, target, log, n = half_migrated(cluster)
    assert drive(ScriptCall(LRANGE, (log,), ())) == [b"1"]  # ASK: moved already
    assert drive(Command(("LRANGE", log, 0, -1))) == [b"1"]
    assert drive(Transaction((("LRANGE", log, 0, -1),))) == [[b"1"]]  # ASK inside MULTI
    assert drive(Command(("GET", n))) == b"1"  # still on the source
    assert drive(Command(("SET", b"%s:new" % log, "v"))) is True  # a new key goes to the target
    assert cluster.admin(target).execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 2
    assert drive([Command(("GET", n)), Command(("LLEN", log))]) == [b"1", 1]

    # Both keys at once: TRYAGAIN until the migration moves on, then done exactly once.
    future = drive.in_background(ScriptCall(LOG, (log, n), ("2",)))
    time.sleep(0.3)
    assert not future.done()
    cluster.migrate_keys(slot, source, target)
    cluster.end_migration(slot, source, target)
    assert future.result(timeout=5) == 2
    assert drive(ScriptCall(READ, (log, n), ())) == [[b"1", b"2"], b"2"]


def test_tryagain_is_waited_out_for_the_migration_window_only(drive: Driver, empty_cluster: LocalCluster,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver, "MIGRATION_WINDOW", 0.3)
    slot, source, target, log, n = half_migrated(empty_cluster)
    started = time.monotonic()
    with pytest.raises(TryAgainError):
        drive(ScriptCall(LOG, (log, n), ("2",)))
    assert 0.3 <= time.monotonic() - started < 1.5
    empty_cluster.migrate_keys(slot, source, target)
    empty_cluster.end_migration(slot, source, target)
    assert drive(ScriptCall(READ, (log, n), ())) == [[b"1"], b"1"]  # it never ran


WRITES_PER_WRITER = 1500


def _writer(port: int, mode: str, tag: str, results: Any) -> None:
    """In a child process: WRITES_PER_WRITER LOG calls (ids ``<mode>-<i>``), then
    puts (mode, acknowledged ids, errors, the redirects met by kind) on ``results``."""
    log, n = keys(tag)
    acked: list[str] = []
    errors: list[str] = []
    met: dict[str, int] = {}
    failure = driver._failure

    def counting(request: Request, replies: list[Any]) -> Exception | None:
        error = failure(request, replies)
        if error is not None:
            kind = driver._code(error)[0] if isinstance(error, ResponseError) else type(error).__name__
            met[kind] = met.get(kind, 0) + 1
        return error

    driver._failure = counting  # type: ignore[assignment]  # in this process only
    drive = Driver(mode, port)
    try:
        for number in range(WRITES_PER_WRITER):
            ident = f"{mode}-{number}"
            try:
                drive(ScriptCall(LOG, (log, n), (ident,)))
            except Exception as exc:
                errors.append(f"{ident}: {exc!r}")
                break  # the test fails anyway; and a writer whose parent died stops soon
            acked.append(ident)
            time.sleep(0.0005)  # spread the writes over many migrations
    finally:
        drive.close()
        results.put((mode, acked, errors, met))


def test_writes_during_migrations_happen_exactly_once(empty_cluster: LocalCluster) -> None:
    cluster = empty_cluster
    first, second = cluster.master_ports()[:2]
    tag = tag_on(cluster, first)
    slot, (log, n) = key_slot(tag.encode()), keys(tag)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    writers = [context.Process(target=_writer, args=(first, mode, tag, results), daemon=True)
               for mode in ("sync", "async")]
    for writer in writers:
        writer.start()
    migrations = 0
    try:
        deadline = time.monotonic() + 40
        while any(writer.is_alive() for writer in writers) and time.monotonic() < deadline:
            cluster.move_slot(slot, second if migrations % 2 == 0 else first, batch=1,
                              between=lambda: time.sleep(0.002))  # the log and the count apart a while
            migrations += 1
            time.sleep(0.01)
        outcomes = [results.get(timeout=10) for _ in writers]
    finally:
        for writer in writers:
            writer.join(timeout=10)
            if writer.is_alive():
                writer.kill()
                writer.join()
    assert [errors for _, _, errors, _ in outcomes] == [[], []]
    owner = cluster.admin(cluster.owner(slot))
    stored = [str(ident) for ident in owner.lrange(log, 0, -1)]
    acked = [ident for _, idents, _, _ in outcomes for ident in idents]
    assert sorted(stored) == sorted(acked)  # each acknowledged write exactly once, nothing else
    assert owner.get(n) == str(len(stored)) == str(2 * WRITES_PER_WRITER)
    for mode in ("sync", "async"):
        assert [ident for ident in stored if ident.startswith(mode)] == [
            f"{mode}-{number}" for number in range(WRITES_PER_WRITER)]
    assert migrations >= 10, "the writers finished before the slot moved much"
    for mode, _, _, met in outcomes:
        assert {"MOVED", "ASK", "TRYAGAIN"} <= met.keys(), f"the {mode} writer met only {met}"


def test_read_survives_a_killed_connection(drive: Driver, empty_cluster: LocalCluster) -> None:
    port = empty_cluster.master_ports()[0]
    log, n = keys(tag_on(empty_cluster, port))
    drive(ScriptCall(LOG, (log, n), ("1",)))
    kill_clients(empty_cluster, port)  # idle: noticed when the read is sent again
    assert drive(ScriptCall(READ, (log, n), ())) == [[b"1"], b"1"]
    kill_clients(empty_cluster, port)  # idle: noticed before a write is sent, so it is sent once
    assert drive(ScriptCall(LOG, (log, n), ("2",))) == 2
    assert empty_cluster.admin(port).llen(log) == 2

    admin = empty_cluster.admin(port)
    # CLIENT PAUSE WRITE holds EVALSHA, but not Redis 7's EVALSHA_RO: the read goes by
    # the plain form here, so that it is held in flight on either server
    node = f"127.0.0.1:{port}"
    scriptforms.plain_nodes.add(node)
    try:
        admin.execute_command("CLIENT", "PAUSE", 400, "WRITE")
        future = drive.in_background(ScriptCall(READ, (log, n), ()))
        wait_blocked(empty_cluster, port)
        kill_clients(empty_cluster, port)  # in flight: sent again
        assert future.result(timeout=5) == [[b"1", b"2"], b"2"]
    finally:
        scriptforms.plain_nodes.discard(node)


def test_write_is_not_sent_again_once_it_may_have_run(connect: Callable[..., Driver],
                                                      empty_cluster: LocalCluster) -> None:
    drive = connect()
    port = empty_cluster.master_ports()[0]
    admin = empty_cluster.admin(port)
    log, n = keys(tag_on(empty_cluster, port))
    drive(ScriptCall(LOG, (log, n), ("1",)))

    admin.execute_command("CLIENT", "PAUSE", 3000, "WRITE")
    try:
        future = drive.in_background(ScriptCall(LOG, (log, n), ("2",)))
        wait_blocked(empty_cluster, port)
        kill_clients(empty_cluster, port)  # lost after sending (the pause kept it from running)
        with pytest.raises(redis.ConnectionError):
            future.result(timeout=2)  # resent, it would wait out the pause
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
    assert admin.get(n) == "1"

    slow = connect(socket_timeout=0.25)
    with pytest.raises(redis.TimeoutError):
        slow(ScriptCall(SLOW_LOG, (log, n), ("3", 600)))
    assert admin.get(n) == "2"  # waits for the script: it ran, once
    assert admin.lrange(log, 0, -1) == ["1", "3"]


def test_write_waits_for_a_restarting_node(drive: Driver, empty_cluster: LocalCluster,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver, "RETRY_WINDOW", 8.0)  # a restarted master says CLUSTERDOWN for a node timeout
    port = empty_cluster.master_ports()[0]
    log, n = keys(tag_on(empty_cluster, port))
    assert drive(ScriptCall(LOG, (log, n), ("1",))) == 1
    empty_cluster.kill(port)
    future = drive.in_background(ScriptCall(LOG, (log, n), ("2",)))  # refused: not sent, so retried
    time.sleep(0.3)
    assert not future.done()
    empty_cluster.restart(port)  # without its data: nothing is persisted
    assert future.result(timeout=5) == 1
    assert drive(ScriptCall(READ, (log, n), ())) == [[b"2"], b"1"]


def test_writes_resume_after_a_failover(redis_cluster_with_replicas: LocalCluster) -> None:
    cluster = redis_cluster_with_replicas
    cluster.heal()
    cluster.flushall()
    master = cluster.master_ports()[0]
    tag = tag_on(cluster, master)
    log, n = keys(tag)
    drivers = [Driver(mode, master) for mode in ("sync", "async")]
    try:
        for each in drivers:
            each(ScriptCall(LOG, (log, n), (each.mode,)))
        assert cluster.admin(master).execute_command("WAIT", 1, 2000) == 1
        cluster.kill(master)
        deadline = time.monotonic() + 20
        for each in drivers:
            while True:
                try:
                    each(ScriptCall(LOG, (log, n), (f"{each.mode}-after",)))
                    break
                except (redis.ConnectionError, ClusterDownError, RedisClusterException):
                    assert time.monotonic() < deadline, "no failover"
        new_master = cluster.owner(key_slot(tag.encode()))
        assert new_master != master
        assert cluster.admin(new_master).lrange(log, 0, -1) == ["sync", "async", "sync-after", "async-after"]
    finally:
        for each in drivers:
            each.close()
        if not cluster.alive(master):
            cluster.restart(master)  # it rejoins as a replica
        cluster.wait_healthy()


def test_recovery_plan_without_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """The I/O-free part: what follows CLUSTERDOWN and an untyped MOVED, and when
    waiting stops."""
    request = ScriptCall(LOG, keys("a"), ("x",))
    plan = driver._recover(request, ClusterDownError("The cluster is down"))
    assert type(next(plan)) is driver._Sleep
    assert next(plan) is driver._REFRESH
    send = next(plan)
    assert isinstance(send, driver._Send)
    assert send.address is None and not send.asking
    moved = plan.send([ResponseError("MOVED 15495 127.0.0.1:30001")])  # from a parser without cluster classes
    assert isinstance(moved, driver._Moved)
    assert moved.address == ("127.0.0.1", 30001)
    send = next(plan)
    assert isinstance(send, driver._Send)
    assert send.address == ("127.0.0.1", 30001) and send.commands[0][0] == "EVALSHA"
    with pytest.raises(StopIteration) as done:
        plan.send([3])
    assert done.value.value == [3]
    monkeypatch.setattr(driver, "RETRY_WINDOW", 0.0)
    with pytest.raises(ClusterDownError):
        next(driver._recover(request, ClusterDownError("The cluster is down")))
