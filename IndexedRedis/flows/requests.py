"""What a flow yields: requests for a driver to send, and the shape of a flow.

A flow is a generator.  It yields a request (or a list of them, sent together in one
pipelined round trip) and receives the reply; a failed request is thrown back into
the flow as the exception the server or the connection raised.  It never does I/O
itself, so the same flow runs on every driver (sync or asyncio, standalone or
cluster) and in unit tests fed by hand.

``route`` names the connection a request goes to: ``None`` is the flow's own (the
model it was started for); anything else is an opaque token the flow got from its
``Context`` (``route_of``) and hands back unchanged.  A list of requests shares the
route of its first.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ..scripts import Script

__all__ = ["ScriptCall", "Command", "Transaction", "Emit", "CacheRead", "CacheStore", "CacheAnswer", "Request",
           "Flow", "READ_COMMANDS"]

T = TypeVar("T")

#: Commands that change nothing, so a driver may send them again after a failure.
READ_COMMANDS = frozenset({"GET", "HMGET", "HGET", "HSCAN", "HLEN", "SMEMBERS", "SCARD", "ZCARD", "EXISTS",
                           "INFO", "CONFIG", "PING", "WAIT", "SCAN", "TYPE", "TIME", "ZMSCORE"})


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One Lua script call (EVALSHA, falling back to EVAL).

    With ``wait`` (replicas, timeout ms), the driver sends ``WAIT`` right after the
    script on the same connection, in the same round trip (again after the script
    whenever it resends it: EVAL for an unknown script, a redirect on a cluster), and
    the reply is [the script's reply, how many replicas acknowledged it].  Only a
    request sent on its own carries ``wait`` (``flows.common.script`` makes them); a
    pipelined list never does, and the drivers do not look for it there.
    """

    script: Script
    keys: Sequence[bytes]
    args: Sequence[Any]
    route: Any = None
    wait: tuple[int, int] | None = None

    @property
    def readonly(self) -> bool:
        return self.script.readonly


@dataclass(frozen=True, slots=True)
class Command:
    """One plain command.

    ``key`` names the key whose Redis Cluster slot the command belongs to when its
    arguments name none of the model's keys first (``SCAN ... MATCH`` of a model's
    keys: a cluster node scans only its own keys, so it must go to the model's node).
    """

    args: tuple[Any, ...]
    route: Any = None
    key: bytes | None = None

    @property
    def readonly(self) -> bool:
        name = self.args[0]
        return (name.decode() if isinstance(name, bytes) else str(name)).upper() in READ_COMMANDS


@dataclass(frozen=True, slots=True)
class Transaction:
    """Read-only commands run as one MULTI/EXEC (one round trip); the reply is EXEC's."""

    commands: tuple[tuple[Any, ...], ...]
    route: Any = None
    readonly = True


@dataclass(frozen=True, slots=True)
class Emit:
    """Not sent anywhere: hands ``items`` to whoever iterates the flow (see
    ``QuerySet.iterate``); the flow receives None and goes on when they are consumed."""

    items: Sequence[Any]


@dataclass(slots=True)
class CacheRead:
    """Ask this process's client-side cache of ``meta``'s model on the route's server
    (see ``IndexedRedis/cache``): the objects of ``pks``, or the result of ``query`` (a
    hashable description of a compiled query).  The driver answers from memory, after
    applying the invalidations the server has pushed, with a ``CacheAnswer``, or None
    when the cache cannot be used now (tracking is down): then the flow reads from
    Redis and stores nothing.  (Not frozen, as the other requests are: it is made
    on the hot path of a cache hit, and a frozen dataclass costs more to make.)"""

    meta: Any
    gen: int
    pks: Sequence[int] = ()
    query: Any = None
    route: Any = None


@dataclass(slots=True)
class CacheAnswer:
    """``objects``: for pks, the cached instance of each (None where not cached); for a
    query, the cached result (a tuple) or None.  ``token`` goes with the CacheStore
    of what the flow then fetched."""

    token: Any
    objects: Any


@dataclass(slots=True)
class CacheStore:
    """Keep what a read fetched at generation ``gen`` (verified live by that read):
    ``objects``, (pk, instance) pairs; with ``query``, they are its result, which read
    the keys ``deps``.  Refused, per key, where an invalidation arrived after the
    read that gave ``token`` began.  The reply is None."""

    meta: Any
    gen: int
    token: Any
    objects: Sequence[Any] = ()
    query: Any = None
    deps: Sequence[bytes] = ()
    route: Any = None


Request = ScriptCall | Command | Transaction
#: A flow yields one request, a list of them (one pipelined round trip), an Emit, or a
#: request to the client-side cache (answered in memory).
Flow = Generator["Request | list[Request] | Emit | CacheRead | CacheStore", Any, T]
