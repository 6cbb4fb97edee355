"""The Redis Cluster drivers: ``execute`` for ``redis.cluster.RedisCluster``, ``aexecute``
for ``redis.asyncio.cluster.RedisCluster``, with the contract of the standalone ones.

All keys of a model share one hash tag, so every script call, transaction or command
lies in one slot.  It is packed here and written straight to the master of that slot
(sync: on the connection this thread keeps for that node's pool, as the standalone
driver does), so the hot path costs a slot lookup and none of redis-py's generic
cluster dispatch.  Replies come out as the standalone drivers give them (commands'
through the response callbacks, a transaction's errors raised).  A pipelined list is
grouped by node and every group written before any reply is read.  The slot map is
redis-py's (``client.nodes_manager``): read here, patched for one slot after a MOVED,
rebuilt by ``nodes_manager.initialize()`` when a node cannot be reached or the
cluster is down.

When the first attempt fails, ``_recover`` (I/O-free, shared by both drivers) decides
what to send next:

* NOSCRIPT: the script is sent whole (EVAL) to the same node.
* MOVED: the slot's new owner is recorded and the request resent there.
* ASK (slot being migrated, these keys already moved): ASKING and the request, in
  one write, to the node named.
* TRYAGAIN (a migration has split the keys across two nodes), CLUSTERDOWN, a node
  that cannot be reached: wait (backoff; ``MIGRATION_WINDOW`` or ``RETRY_WINDOW`` in
  all) and send again.  Redis answers all of these before it runs anything, so
  resending is safe even for writes.
* A connection lost or timed out once a request may have been written: a read-only
  request is sent again (bounded); a write raises, because it may have run.
* Keys in several slots: ``CrossSlotError``, before anything is sent.
"""

from __future__ import annotations

import asyncio
import importlib.util
import select
import time
from collections.abc import Generator, Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.connection import AbstractConnection as AbstractAsyncConnection
from redis.asyncio.connection import async_timeout
from redis.cluster import RedisCluster
from redis.connection import HiredisRespSerializer
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterCrossSlotError,
    ClusterDownError,
    MaxConnectionsError,
    MovedError,
    NoScriptError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..exceptions import CrossSlotError
from ..flows.requests import Command, Request, ScriptCall, Transaction
from .scriptforms import plain_nodes, refused_read_only, sent_read_only
from .sync import _checkout, _pinned, pack, parsed, transaction_result, wire_args

__all__ = ["execute", "aexecute", "RETRY_WINDOW", "MIGRATION_WINDOW"]

#: Seconds a request may keep waiting out CLUSTERDOWN or an unreachable node.
RETRY_WINDOW = 2.0
#: Seconds a request may keep waiting out TRYAGAIN: a slot migration is under way, and a
#: model's multi-key scripts cannot run until its keys are all on one side of it.
MIGRATION_WINDOW = 10.0
_FIRST_DELAY = 0.002
_MAX_DELAY = 0.1
_MAX_REDIRECTS = 16  # MOVED / ASK / NOSCRIPT answers in a row, with no wait between
_REFRESH_INTERVAL = 0.5  # seconds between slot map rebuilds for one request (each asks a node)
_MAX_RESENDS = 3  # read-only requests sent again after a lost connection

_ASKING = ("ASKING",)
_MULTI = ("MULTI",)
_EXEC = ("EXEC",)
_LINK_ERRORS = (RedisConnectionError, RedisTimeoutError)


class _NotSent(Exception):
    """A failure before the request was written whole (no connection, or the write
    itself failed): nothing ran, so it may be sent again."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


# -- slots --------------------------------------------------------------------------

_tag_slots: dict[bytes, int] = {}  # hash tag -> slot; tags are model names, so few


def _as_bytes(key: Any) -> bytes:
    """A key as redis-py would send it (str as UTF-8, numbers as their repr)."""
    if type(key) is bytes:
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, (bytearray, memoryview)):
        return bytes(key)
    return repr(key).encode("ascii")


def _key_slot(key: bytes) -> tuple[int, int]:
    """The slot of a key and where its hash tag ends (the ``}``; -1 when untagged)."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            tag = key[start + 1:end]
            slot = _tag_slots.get(tag)
            if slot is None:
                if len(_tag_slots) > 4096:
                    _tag_slots.clear()
                slot = _tag_slots[tag] = key_slot(tag)
            return slot, end
    return key_slot(key), -1


def _slot_of_keys(keys: Sequence[Any], request: Request) -> int | None:
    """The one slot of ``keys`` (None when there are none), or CrossSlotError.

    Keys that begin with the first key's text up to its tag's ``}`` share its tag,
    so for a model's keys the check is one ``startswith`` each.
    """
    if not keys:
        return None
    first = _as_bytes(keys[0])
    slot, end = _key_slot(first)
    prefix = first[:end + 1] if end >= 0 else None
    for index in range(1, len(keys)):
        key = keys[index]
        if prefix is not None and type(key) is bytes and key.startswith(prefix):
            continue
        if _key_slot(_as_bytes(key))[0] != slot:
            raise _cross_slot_error(request, keys)
    return slot


_KEYLESS = frozenset({"PING", "INFO", "CONFIG", "SCRIPT", "TIME", "DBSIZE", "CLUSTER", "CLIENT", "ECHO",
                      "FLUSHALL", "FLUSHDB", "COMMAND", "FUNCTION", "ROLE", "LASTSAVE"})
_EVERY_ARG_A_KEY = frozenset({"DEL", "UNLINK", "EXISTS", "TOUCH", "MGET", "SINTER", "SUNION", "SDIFF", "PFCOUNT"})
_command_kinds: dict[Any, int] = {}  # command name as given -> 0 keyless, 1 first argument, 2 every argument


def _command_keys(args: Sequence[Any]) -> Sequence[Any]:
    """The keys of a plain command, for routing and the slot check.  Commands not
    listed here are taken to have one key, their first argument: where that is wrong
    the node answers MOVED (a redirect fixes the route) or CROSSSLOT (reported)."""
    name = args[0]
    kind = _command_kinds.get(name)
    if kind is None:
        upper = (name.decode() if isinstance(name, bytes) else str(name)).upper()
        kind = _command_kinds[name] = 0 if upper in _KEYLESS else 2 if upper in _EVERY_ARG_A_KEY else 1
    return args[1:2] if kind == 1 else args[1:] if kind == 2 else ()


def _request_keys(request: Request) -> Sequence[Any]:
    kind = type(request)
    if kind is ScriptCall:
        return request.keys  # type: ignore[union-attr]
    if kind is Transaction:
        return [key for command in request.commands for key in _command_keys(command)]  # type: ignore[union-attr]
    if request.key is not None:  # type: ignore[union-attr]
        return (request.key,)  # type: ignore[union-attr]
    return _command_keys(request.args)  # type: ignore[union-attr]


def _request_slot(request: Request) -> int | None:
    if type(request) is ScriptCall:
        return _slot_of_keys(request.keys, request)
    return _slot_of_keys(_request_keys(request), request)


def _describe(request: Request) -> str:
    if type(request) is ScriptCall:
        return f"script call ({request.script.name})"
    if type(request) is Transaction:
        return "transaction"
    name = request.args[0]  # type: ignore[union-attr]
    return f"{name.decode() if isinstance(name, bytes) else name} command"


def _cross_slot_error(request: Request, keys: Sequence[Any]) -> CrossSlotError:
    slots: dict[str, int] = {}
    for key in keys:
        raw = _as_bytes(key)
        slot, end = _key_slot(raw)
        shown = raw[raw.find(b"{"):end + 1] if end >= 0 else raw
        slots.setdefault(shown.decode("utf-8", "backslashreplace"), slot)
    listed = ", ".join(f"{name} (slot {slot})" for name, slot in slots.items())
    return CrossSlotError(
        f"the keys of one {_describe(request)} are in several Redis Cluster hash slots: {listed}. "
        "A script, transaction or multi-key command runs on one node, so all its keys must share "
        "one hash tag: models written or read together in one request need one KEY_GROUP.", slots)


# -- what to send, what came back --------------------------------------------------


def _commands(request: Request, whole: bool = False, read_only: bool = False) -> list[tuple[Any, ...]]:
    """The commands a request is sent as (``whole``: a script by EVAL; ``read_only``: a
    read-only script by EVALSHA_RO / EVAL_RO, see ``scriptforms``)."""
    if type(request) is ScriptCall:
        script = request.script
        if read_only:
            return [script.ro_args(request.keys, request.args, whole)]  # never with a WAIT: it writes nothing
        call = (script.eval_args if whole else script.evalsha_args)(request.keys, request.args)
        return [call] if request.wait is None else [call, ("WAIT", *request.wait)]
    if type(request) is Transaction:
        return [_MULTI, *request.commands, _EXEC]
    args: tuple[Any, ...] = request.args  # type: ignore[union-attr,assignment]
    return [args]


def _failure(request: Request, replies: list[Any]) -> Exception | None:
    """The error that decides what happens next, if any: for a transaction the first
    (it names the cause where EXEC says only EXECABORT)."""
    if type(request) is Transaction:
        for reply in replies:
            if isinstance(reply, Exception):
                return reply
        return None
    reply = replies[0]
    return reply if isinstance(reply, Exception) else None


def _result(request: Request, replies: list[Any], callbacks: Any) -> Any:
    """The reply as the standalone drivers give it: commands' through the client's
    response callbacks, a transaction's errors raised."""
    if type(request) is ScriptCall:
        return replies[0] if request.wait is None else [replies[0], replies[1]]
    if type(request) is Transaction:
        return transaction_result(callbacks, request.commands, replies)
    return parsed(callbacks, request.args, replies[0])  # type: ignore[union-attr]


_CODES: dict[type, str] = {NoScriptError: "NOSCRIPT", MovedError: "MOVED", AskError: "ASK",
                           TryAgainError: "TRYAGAIN", ClusterDownError: "CLUSTERDOWN",
                           ClusterCrossSlotError: "CROSSSLOT"}


def _code(error: ResponseError) -> tuple[str, str]:
    """An error reply's code and the rest: redis-py's cluster parsers give these
    their own classes (without the code in the message), other parsers do not."""
    message = str(error.args[0]) if error.args else ""
    code = _CODES.get(type(error))
    if code is not None:
        return code, message
    code, _, rest = message.partition(" ")
    return code, rest


def _address(detail: str) -> tuple[str, int]:
    """``"<slot> <host>:<port>"`` of MOVED and ASK -> (host, port)."""
    host, _, port = detail.rpartition(" ")[2].rpartition(":")
    return host, int(port)


# -- recovery (I/O-free) -------------------------------------------------------------


class _Send:
    """Send the request (``address`` None: to the slot's owner), ASKING first if ``asking``.
    ``again``: to the node the last attempt went to (a script sent whole after its
    NOSCRIPT, or in its plain form: the same replica, not the next one a load
    balancer would pick), where the driver knows it."""

    __slots__ = ("address", "commands", "asking", "again")

    def __init__(self, address: tuple[str, int] | None, commands: list[tuple[Any, ...]], asking: bool,
                 again: bool = False) -> None:
        self.address = address
        self.commands = commands
        self.asking = asking
        self.again = again


class _Moved:
    """The slot is served by ``address`` now: record it."""

    __slots__ = ("address",)

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address


class _Sleep:
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class _Refresh:
    """Rebuild the slot map from the cluster."""


class _Plain:
    """The node last sent to refused EVALSHA_RO (Redis 6.2, or an ACL user without it):
    record that it gets the plain form of read-only scripts from now on."""


_REFRESH = _Refresh()
_PLAIN = _Plain()
_Action = _Send | _Moved | _Sleep | _Refresh | _Plain


def _recover(request: Request, error: Exception, read_only: bool = False) -> Generator[_Action, Any, list[Any]]:
    """After a first attempt failed with ``error``: yield what to do until the request
    succeeds (returns its replies) or must fail (raises).  A ``_Send`` receives the
    replies, failures included as values; the other actions receive None.
    ``read_only``: the attempt sent a read-only script's EVALSHA_RO form."""
    whole = asking = False
    address: tuple[str, int] | None = None
    redirects = resends = 0
    waiting_since = 0.0
    refreshed = -_REFRESH_INTERVAL
    delay = _FIRST_DELAY
    while True:
        wait = refresh = reroute = False
        window = RETRY_WINDOW
        if read_only and refused_read_only(error):
            read_only = whole = False  # the plain EVALSHA next (its NOSCRIPT brings EVAL)
            redirects += 1
            yield _PLAIN
        elif isinstance(error, ResponseError):
            code, detail = _code(error)
            if code == "NOSCRIPT" and type(request) is ScriptCall and not whole:
                whole = True
                redirects += 1
            elif code == "MOVED" or code == "ASK":
                redirects += 1
                address, asking = _address(detail), code == "ASK"
                if not asking:
                    yield _Moved(address)
            elif code == "TRYAGAIN":
                wait = reroute = True
                window = MIGRATION_WINDOW
            elif code == "CLUSTERDOWN":
                wait = refresh = reroute = True
            elif code == "CROSSSLOT":
                keys = request.args[1:] if type(request) is Command else _request_keys(request)
                raise _cross_slot_error(request, keys) from error
            else:
                raise error
            if redirects > _MAX_REDIRECTS:
                raise error
        elif isinstance(error, _NotSent):
            wait = refresh = reroute = True  # a node down, or a failover: the map may be stale
        elif request.readonly and resends < _MAX_RESENDS and isinstance(error, _LINK_ERRORS):
            resends += 1  # it may have been sent, but reading twice is harmless
            refresh = resends > 1  # one lost connection says nothing about the node; more may
            reroute = True
        else:
            raise error
        now = time.monotonic()
        if wait:
            waiting_since = waiting_since or now
            if now - waiting_since >= window:
                raise error.cause if isinstance(error, _NotSent) else error
            yield _Sleep(min(delay, waiting_since + window - now))
            delay = min(delay * 2, _MAX_DELAY)
            redirects = 0  # bounded by the deadline now: ASK, TRYAGAIN, ASK... is a wait
        if refresh and now - refreshed >= _REFRESH_INTERVAL:
            refreshed = now
            yield _REFRESH
        if reroute:
            address = None
            asking = False
        replies = yield _Send(address, _commands(request, whole, read_only), asking,
                              address is None and not reroute)
        error = _failure(request, replies)  # type: ignore[assignment]
        if error is None:
            return replies


def _node_of(nodes_manager: Any, slot: int | None, address: tuple[str, int] | None, reader: Any = None) -> Any:
    """The node to send to (None when unknown): the one named, else the slot's
    master (or, with ``reader``, the client of a request that may be served by a
    replica, the node its load balancing picks), else (no keys) the default node."""
    if address is not None:
        return nodes_manager.get_node(host=address[0], port=address[1]) if address[0] else None
    if slot is None:
        return nodes_manager.default_node
    nodes = nodes_manager.slots_cache.get(slot)
    if not nodes:
        return None
    if reader is not None and len(nodes) > 1:
        return _balanced(nodes_manager, slot, reader)
    return nodes[0]


def _reader(client: Any, request: Any) -> Any:
    """``client`` if ``request`` may go to a replica: a read-only script call, on a
    client made with ``read_from_replicas=True`` (redis-py 5.0 on) or a
    ``load_balancing_strategy`` (5.3 on), whose connections say READONLY; else None.
    Plain commands and MULTI/EXEC reads (gets by pk, a refresh job's bookkeeping) stay
    on the master, which has read every write the flow made before them."""
    if type(request) is not ScriptCall or not request.script.readonly:
        return None
    if getattr(client, "load_balancing_strategy", None) or getattr(client, "read_from_replicas", False):
        return client
    return None


_BALANCING_KWARG: list[bool] = []  # whether get_node_from_slot takes load_balancing_strategy (redis-py 5.3+)


def _balanced(nodes_manager: Any, slot: int, client: Any) -> Any:
    """The node of ``slot`` that redis-py's own load balancing picks for a read."""
    if not _BALANCING_KWARG:
        import inspect

        _BALANCING_KWARG.append("load_balancing_strategy" in inspect.signature(
            nodes_manager.get_node_from_slot).parameters)
    try:
        if _BALANCING_KWARG[0]:
            return nodes_manager.get_node_from_slot(slot, read_from_replicas=bool(client.read_from_replicas),
                                                    load_balancing_strategy=client.load_balancing_strategy)
        return nodes_manager.get_node_from_slot(slot, read_from_replicas=True)
    except SlotNotCoveredError:
        return None


def _read_only_form(request: Request, node: Any) -> bool:
    """Whether a request to ``node`` is sent as a read-only script's EVALSHA_RO form."""
    return type(request) is ScriptCall and node is not None and sent_read_only(request, node.name not in plain_nodes)


def _record_move(nodes_manager: Any, slot: int | None, address: tuple[str, int]) -> bool:
    """Point ``slot`` at the node named by a MOVED; False when that node is unknown.

    A new list, since redis-py shares one list among all slots of a range."""
    node = nodes_manager.get_node(host=address[0], port=address[1]) if address[0] else None
    if node is None:
        return False
    if slot is not None:
        nodes = nodes_manager.slots_cache.get(slot)
        if not nodes or nodes[0] is not node:
            nodes_manager.slots_cache[slot] = [node]
    return True


def _unknown(count: int, slot: int | None, address: tuple[str, int] | None) -> list[Any]:
    """The replies of ``count`` commands for a node the slot map does not know."""
    where = f"node {address[0]}:{address[1]}" if address else f"slot {slot}"
    return [_NotSent(SlotNotCoveredError(f"no known node serves {where}"))] * count


# -- the synchronous driver --------------------------------------------------------


def execute(client: RedisCluster, request: Request | list[Request]) -> Any:
    """Send one request to the node of its slot, or a list of them (see
    ``_execute_list``), and return the reply; redirects are followed as the module
    docstring says."""
    if type(request) is list:
        return _execute_list(client, request)
    slot = _request_slot(request)  # type: ignore[arg-type]
    reader = _reader(client, request)
    node = _node_of(client.nodes_manager, slot, None, reader)
    read_only = _read_only_form(request, node)  # type: ignore[arg-type]
    commands = _commands(request, False, read_only)  # type: ignore[arg-type]
    replies = _roundtrip(client, node, commands, True) if node is not None else _unknown(len(commands), slot, None)
    error = _failure(request, replies)  # type: ignore[arg-type]
    if error is not None:
        return _run(client, request, slot, error, node, read_only)  # type: ignore[arg-type]
    return _result(request, replies, node.redis_connection.response_callbacks)  # type: ignore[arg-type]


def _run(client: RedisCluster, request: Request, slot: int | None, error: Exception, node: Any = None,
         read_only: bool = False) -> Any:
    """Carry out ``_recover``'s plan for a request that failed with ``error`` (sent to
    ``node``, in the read-only form if ``read_only``)."""
    nodes_manager = client.nodes_manager
    plan = _recover(request, error, read_only)
    reader = _reader(client, request)
    reply: Any = None
    try:
        while True:
            action = plan.send(reply)
            reply = None
            if type(action) is _Send:
                if not (action.again and node is not None):
                    node = _node_of(nodes_manager, slot, action.address, reader)
                commands = [_ASKING, *action.commands] if action.asking else action.commands
                if node is None:
                    reply = _unknown(len(commands), slot, action.address)
                else:
                    reply = _roundtrip(client, node, commands, True)
                if action.asking:
                    reply = reply[1:]
            elif type(action) is _Moved:
                if not _record_move(nodes_manager, slot, action.address):
                    nodes_manager.initialize()
            elif type(action) is _Sleep:
                time.sleep(action.seconds)
            elif type(action) is _Plain:
                if node is not None:
                    plain_nodes.add(node.name)
            else:
                nodes_manager.initialize()
    except StopIteration as stop:
        return _result(request, stop.value, node.redis_connection.response_callbacks)


def _open(client: RedisCluster, node: Any) -> tuple[Any, Any] | _NotSent:
    """A connection to ``node`` and the pool to give it back to (None for the one this
    thread keeps, see ``sync._pinned``), or why there is none.  A kept connection that
    the server closed while it sat idle, or that holds unread data, is replaced first,
    as the pool does with those it hands out."""
    pool = (node.redis_connection or client.get_redis_connection(node)).connection_pool
    try:
        conn = _pinned(pool)
        if conn is None:
            return _checkout(pool), pool
        if conn._sock is not None and _closed(conn):
            conn.disconnect()
        if conn._sock is None:
            conn.connect()
    except MaxConnectionsError:
        raise
    except _LINK_ERRORS as exc:
        return _NotSent(exc)
    return conn, None


def _closed(conn: Any) -> bool:
    """Whether the server closed an idle connection (or it holds unread data)."""
    try:
        return bool(conn.can_read(timeout=0))
    except (*_LINK_ERRORS, OSError):
        return True


def _pack(conn: Any, commands: list[tuple[Any, ...]]) -> bytes:
    """The commands in RESP, by hiredis where the connection packs with it anyway."""
    fast = type(getattr(conn, "_command_packer", None)) is HiredisRespSerializer
    if len(commands) == 1:
        return pack(conn, fast, commands[0])
    return b"".join([pack(conn, fast, command) for command in commands])


def _send(conn: Any, commands: list[tuple[Any, ...]], single: bool) -> Exception | None:
    """Write the commands at once; the failure, if any, to stand for each reply.

    A failed write is ``_NotSent`` for one request: a command the server did not
    receive whole never runs (nor does a transaction without its EXEC).
    """
    try:
        conn.send_packed_command([_pack(conn, commands)], False)
    except _LINK_ERRORS as exc:
        return _NotSent(exc) if single else exc
    return None


def _read(conn: Any, count: int) -> list[Any]:
    """``count`` replies; error replies and a lost connection are kept as values."""
    out: list[Any] = []
    for _ in range(count):
        try:
            out.append(conn.read_response())
        except ResponseError as exc:
            out.append(exc)
        except _LINK_ERRORS as exc:
            conn.disconnect()
            out.extend([exc] * (count - len(out)))
            break
    return out


def _roundtrip(client: RedisCluster, node: Any, commands: list[tuple[Any, ...]], single: bool) -> list[Any]:
    """Send ``commands`` to ``node`` in one write and read their replies."""
    opened = _open(client, node)
    if type(opened) is _NotSent:
        return [opened] * len(commands)
    conn, pool = opened  # type: ignore[misc]
    try:
        failed = _send(conn, commands, single)
        return [failed] * len(commands) if failed is not None else _read(conn, len(commands))
    except BaseException:
        conn.disconnect()  # replies may be left unread
        raise
    finally:
        if pool is not None:
            pool.release(conn)


def _groups(client: Any, requests: list[Request], slots: list[int | None],
            replies: list[Any]) -> dict[str, tuple[Any, list[int]]]:
    """node name -> (node, positions of the requests it serves); a request whose slot
    has no known node gets a ``_NotSent`` reply instead."""
    nodes_manager = client.nodes_manager
    groups: dict[str, tuple[Any, list[int]]] = {}
    for position, slot in enumerate(slots):
        node = _node_of(nodes_manager, slot, None, _reader(client, requests[position]))
        if node is None:
            replies[position] = _unknown(1, slot, None)[0]
        else:
            groups.setdefault(node.name, (node, []))[1].append(position)
    return groups


def _execute_list(client: RedisCluster, requests: list[Request]) -> list[Any]:
    """A list of ScriptCalls and Commands: grouped by node; every group is written
    before any reply is read, so the list takes one round trip however many nodes it
    spans.  Replies come back in request order.  A request answered with a redirect
    (or whose connection failed) is then handled on its own, as ``execute`` would,
    so it runs after the others: the requests of a list must be independent.  An
    error that is not followed up is raised, the first by position, once every
    request has been dealt with."""
    slots = [_request_slot(request) for request in requests]  # CrossSlotError before any write
    replies: list[Any] = [None] * len(requests)
    pending: list[tuple[Any, Any, list[int]]] = []
    callbacks: Any = None
    sent_to: dict[int, Any] = {}  # position -> the node it went to
    try:
        for node, positions in _groups(client, requests, slots, replies).values():
            read_only = node.name not in plain_nodes
            for position in positions:
                sent_to[position] = node
            opened = _open(client, node)
            if type(opened) is _NotSent:
                for position in positions:
                    replies[position] = opened
                continue
            conn, pool = opened  # type: ignore[misc]
            callbacks = node.redis_connection.response_callbacks
            pending.append((conn, pool, positions))
            failed = _send(conn, [wire_args(requests[position], read_only) for position in positions],
                           len(positions) == 1)
            if failed is not None:
                pending.pop()
                if pool is not None:
                    pool.release(conn)
                for position in positions:
                    replies[position] = failed
        while pending:
            conn, pool, positions = pending[0]
            for position, reply in zip(positions, _read(conn, len(positions))):
                replies[position] = reply
            pending.pop(0)
            if pool is not None:
                pool.release(conn)
    except BaseException:
        for conn, pool, _ in pending:
            conn.disconnect()
            if pool is not None:
                pool.release(conn)
        raise
    first: Exception | None = None
    for position, request in enumerate(requests):
        reply = replies[position]
        try:
            if isinstance(reply, Exception):
                node = sent_to.get(position)
                replies[position] = _run(client, request, slots[position], reply, node,
                                         _read_only_form(request, node))
            elif type(request) is Command:
                replies[position] = parsed(callbacks, request.args, reply)
        except Exception as exc:
            first = first or exc
    if first is not None:
        raise first
    return replies


# -- the asyncio driver ------------------------------------------------------------


async def aexecute(client: AsyncRedisCluster, request: Request | list[Request]) -> Any:
    """``execute`` for ``redis.asyncio.cluster.RedisCluster``; a list's node groups
    are sent concurrently."""
    nodes_manager = client.nodes_manager
    if not nodes_manager.slots_cache:
        await client.initialize()
    if type(request) is list:
        return await _aexecute_list(client, request)
    slot = _request_slot(request)  # type: ignore[arg-type]
    node = _node_of(nodes_manager, slot, None, _reader(client, request))
    read_only = _read_only_form(request, node)  # type: ignore[arg-type]
    commands = _commands(request, False, read_only)  # type: ignore[arg-type]
    if node is None:
        replies = _unknown(len(commands), slot, None)
    else:
        replies = await _aroundtrip(node, commands, not request.readonly)  # type: ignore[union-attr]
    error = _failure(request, replies)  # type: ignore[arg-type]
    if error is not None:
        return await _arun(client, request, slot, error, node, read_only)  # type: ignore[arg-type]
    return _result(request, replies, node.response_callbacks)  # type: ignore[arg-type]


async def _arun(client: AsyncRedisCluster, request: Request, slot: int | None, error: Exception, node: Any = None,
                read_only: bool = False) -> Any:
    """``_run`` for asyncio."""
    nodes_manager = client.nodes_manager
    plan = _recover(request, error, read_only)
    check = not request.readonly
    reader = _reader(client, request)
    reply: Any = None
    try:
        while True:
            action = plan.send(reply)
            reply = None
            if type(action) is _Send:
                if not (action.again and node is not None):
                    node = _node_of(nodes_manager, slot, action.address, reader)
                commands = [_ASKING, *action.commands] if action.asking else action.commands
                if node is None:
                    reply = _unknown(len(commands), slot, action.address)
                else:
                    reply = await _aroundtrip(node, commands, check)
                if action.asking:
                    reply = reply[1:]
            elif type(action) is _Moved:
                if not _record_move(nodes_manager, slot, action.address):
                    await nodes_manager.initialize()
            elif type(action) is _Sleep:
                await asyncio.sleep(action.seconds)
            elif type(action) is _Plain:
                if node is not None:
                    plain_nodes.add(node.name)
            else:
                await nodes_manager.initialize()
    except StopIteration as stop:
        return _result(request, stop.value, node.response_callbacks)


def _release(node: Any, conn: Any) -> None:
    """Give a connection back: ``ClusterNode.release`` from redis-py 5.3 on (it also
    drops connections marked for reconnection), the free list before."""
    release = getattr(node, "release", None)
    if release is None:
        node._free.append(conn)
    else:
        release(conn)


async def _aroundtrip(node: Any, commands: list[tuple[Any, ...]], check: bool) -> list[Any]:
    """``_roundtrip`` on one of an asyncio ClusterNode's connections (``check``: see
    ``_aclosed``, before a write).

    Unlike a blocking ``sendall``, an asyncio write hands the bytes to the transport,
    and a failure may show only once they are gone: the request counts as not sent
    only where the connection failed before the write.  A plain connection writes and
    reads under one timeout (redis.asyncio spends a timer per reply, and before
    Python 3.12 a task per write), as the standalone asyncio driver does.
    """
    conn = node.acquire_connection()  # MaxConnectionsError propagates
    count = len(commands)
    try:
        try:
            if not conn.is_connected:
                await conn.connect()
            elif check and await _aclosed(conn):
                await conn.disconnect()
                await conn.connect()
        except _LINK_ERRORS as exc:
            return [_NotSent(exc)] * count
        packed = _apack(conn, commands)
        if conn._writer is None:  # closed meanwhile by another task (redis-py 5.0's slot-map refresh
            # disconnects every connection of a node it replaces, in use or not): nothing was sent
            return [_NotSent(RedisConnectionError("the connection was closed before the write"))] * count
        out: list[Any] = []
        try:
            kind = type(conn)
            if kind.read_response is _PLAIN_READ and kind.send_packed_command is _PLAIN_SEND \
                    and not conn.health_check_interval:
                async with async_timeout(conn.socket_timeout):
                    conn._writer.writelines((packed,))
                    await conn._writer.drain()
                    parser = conn._parser  # error replies come back as values
                    while len(out) < count:
                        out.append(await parser.read_response())
            else:
                await conn.send_packed_command([packed], False)
                while len(out) < count:
                    try:
                        out.append(await conn.read_response())
                    except ResponseError as exc:
                        out.append(exc)
        except (*_LINK_ERRORS, OSError, asyncio.TimeoutError, AttributeError) as exc:  # AttributeError: the
            await conn.disconnect(nowait=True)  # connection torn down by another task mid-request
            out.extend([_link_error(conn, exc)] * (count - len(out)))
        return out
    except BaseException:  # cancelled, say: replies may be left unread
        await conn.disconnect(nowait=True)
        raise
    finally:
        _release(node, conn)


_PLAIN_READ = AbstractAsyncConnection.read_response
_PLAIN_SEND = AbstractAsyncConnection.send_packed_command
_HIREDIS = importlib.util.find_spec("hiredis") is not None


def _apack(conn: Any, commands: list[tuple[Any, ...]]) -> bytes:
    """redis.asyncio packs in Python only; hiredis packs the same bytes where str is UTF-8."""
    encoder = conn.encoder
    fast = _HIREDIS and encoder.encoding.lower() in ("utf-8", "utf8") and encoder.encoding_errors == "strict"
    if len(commands) == 1:
        return pack(conn, fast, commands[0])
    return b"".join([pack(conn, fast, command) for command in commands])


def _link_error(conn: Any, exc: BaseException) -> Exception:
    """A socket-level failure of the plain path, as redis.asyncio words it."""
    if isinstance(exc, _LINK_ERRORS):
        return exc
    if isinstance(exc, asyncio.TimeoutError):
        error: Exception = RedisTimeoutError(f"Timeout reading from {conn._host_error()}")
    else:
        error = RedisConnectionError(f"Error while reading from {conn._host_error()}: {exc!r}")
    error.__cause__ = exc
    return error


async def _aclosed(conn: Any) -> bool:
    """Whether the server closed an idle connection (or it holds unread data).
    redis-py's probe (``can_read`` from redis-py 8 on) sees only what the event loop
    has read; a close the loop has not noticed yet (it may not have run since) shows
    as a readable socket."""
    probe = getattr(conn, "can_read", None) or conn.can_read_destructive
    try:
        if await probe():
            return True
    except (*_LINK_ERRORS, OSError):
        return True
    sock = conn._writer.get_extra_info("socket") if conn._writer is not None else None
    if sock is None or sock.fileno() < 0:  # closed under us (the transport let go of it)
        return True
    return bool(select.select([sock], [], [], 0)[0])


async def _aexecute_list(client: AsyncRedisCluster, requests: list[Request]) -> list[Any]:
    """``_execute_list`` for asyncio: one task per node group."""
    slots = [_request_slot(request) for request in requests]
    replies: list[Any] = [None] * len(requests)
    groups = list(_groups(client, requests, slots, replies).values())
    sent_to = {position: node for node, positions in groups for position in positions}

    async def exchange(node: Any, positions: list[int]) -> None:
        read_only = node.name not in plain_nodes
        got = await _aroundtrip(node, [wire_args(requests[position], read_only) for position in positions],
                                not all(requests[position].readonly for position in positions))
        for position, reply in zip(positions, got):
            replies[position] = reply

    if len(groups) == 1:
        await exchange(*groups[0])
    elif groups:
        await asyncio.gather(*(exchange(node, positions) for node, positions in groups))
    first: Exception | None = None
    for position, request in enumerate(requests):
        reply = replies[position]
        try:
            if isinstance(reply, Exception):
                node = sent_to.get(position)
                replies[position] = await _arun(client, request, slots[position], reply, node,
                                                _read_only_form(request, node))
            elif type(request) is Command:
                replies[position] = parsed(groups[0][0].response_callbacks, request.args, reply)
        except Exception as exc:
            first = first or exc
    if first is not None:
        raise first
    return replies
