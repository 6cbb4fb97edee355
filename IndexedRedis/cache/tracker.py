"""The tracking connection: one per process and server (a cluster node), opened with
RESP3 and ``CLIENT TRACKING ON BCAST NOLOOP PREFIX <model prefix>...``, so the
server pushes the name of every key of a cached model that anyone changes.  It is
polled without blocking before every cache read, so a read applies every
invalidation the server sent before it.

It also keeps each cached model's *cache flag* (``keys.ModelKeys.cache_flag``, a
sorted set of the processes that cache the model, expiring ``FLAG_TTL`` seconds
after its last renewal): while it exists, writes touch their objects' stamps.  Each
process renews its own member every ``FLAG_RENEW`` seconds while it reads, and
checks it is still there whenever the flag changes (another process renewed it, or it
was deleted or evicted): a flag that may have lapsed flushes the model's cache, as
writes meanwhile may not have stamped.

A lost connection (hang-up, error, a server restart, a failover that closes it, a
missed heartbeat) flushes every cache of the server; nothing is served from them until
tracking is on again (retried at most once per ``RETRY`` seconds).
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError, ResponseError

from .. import scripts
from ..keys import model_prefix
from .resp import Push, RespReader
from .store import ModelCache

__all__ = ["Tracker", "HEARTBEAT", "FLAG_TTL", "FLAG_RENEW", "RETRY"]

HEARTBEAT = 1.0  # seconds without a word from the server before a read PINGs first
FLAG_TTL = 60.0  # seconds a cache flag lives after its last renewal
FLAG_RENEW = 20.0  # seconds between renewals of this process's member of a flag
_FLAG_MARGIN = 10.0  # a flag renewed longer ago than FLAG_TTL - this may have lapsed
RETRY = 1.0  # seconds between attempts to open a lost tracking connection
_HANG_UP = select.POLLHUP | select.POLLERR | select.POLLNVAL


class Tracker:
    """One tracking connection and the model caches it serves.  ``lock`` guards the
    connection and every cache of it (threads of one process share them)."""

    def __init__(self, name: str, make_connection: Callable[[], Any]) -> None:
        self.name = name
        self.make_connection = make_connection
        self.lock = threading.Lock()
        self.caches: dict[bytes, list[ModelCache]] = {}  # model prefix -> its caches (one per db)
        self.member = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.conn: Any = None
        self.sock: Any = None
        self.poller: Any = None
        self.tls = False
        self.reader = RespReader()
        self.tracked: set[bytes] = set()
        self.epoch = 0
        self.contact = 0.0
        self.failed_at = -RETRY
        self.error: str | None = None

    def add(self, cache: ModelCache) -> None:
        self.caches.setdefault(cache.prefix, []).append(cache)

    # ---- before each read -------------------------------------------------------------

    def ready(self, cache: ModelCache) -> bool:
        """Apply pending invalidations, then make sure tracking covers ``cache`` and its
        flag is set: whether the cache may be used now (call under ``lock``)."""
        if self.conn is not None:
            if self.poller.poll(0) or self.tls and self.sock.pending():
                self.poll()
            if time.monotonic() < cache.steady_until:
                return True  # the steady state: one poll(2), nothing to send
        now = time.monotonic()
        if self.conn is None:
            if now - self.failed_at < RETRY or not self._connect():
                return False
        try:
            if cache.prefix not in self.tracked:
                self._track(cache.prefix)
            if cache.flag_epoch != self.epoch or cache.flag_uncertain or now - cache.flag_set_at >= FLAG_RENEW:
                self._flag(cache, now)
            elif now - self.contact >= HEARTBEAT:
                self.roundtrip(("PING",))
        except (OSError, RedisError) as exc:
            self.lost(exc)
            return False
        if self.conn is None:
            return False
        cache.steady_until = min(cache.flag_set_at + FLAG_RENEW, self.contact + HEARTBEAT)
        return True

    def poll(self) -> None:
        """Read whatever the server has pushed, without blocking."""
        sock = self.sock
        try:
            while True:
                events = self.poller.poll(0)
                if not events and not (self.tls and sock.pending()):
                    return
                if events and events[0][1] & _HANG_UP:
                    raise ConnectionError("the server closed the tracking connection")
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("the server closed the tracking connection")
                self.reader.feed(data)
                self._drain()
        except (OSError, RedisError) as exc:
            self.lost(exc)

    # ---- the connection ---------------------------------------------------------------

    def _connect(self) -> bool:
        try:
            conn = self.make_connection()
            conn.connect()
            self.conn, self.sock = conn, conn._sock
            self.tls = isinstance(self.sock, ssl.SSLSocket)  # decrypted bytes may wait inside it
            self.poller = select.poll()
            self.poller.register(self.sock, select.POLLIN)
            self.reader = RespReader()
            self.epoch += 1
            self.tracked = set()
            prefixes = list(self.caches)
            if prefixes:
                self._track(*prefixes)
        except (OSError, RedisError) as exc:
            self.lost(exc)
            return False
        self.error = None
        return True

    def _track(self, *prefixes: bytes) -> None:
        args: list[Any] = ["CLIENT", "TRACKING", "ON", "BCAST", "NOLOOP"]
        for prefix in prefixes:
            args += ("PREFIX", prefix)
        reply = self.roundtrip(tuple(args))[0]
        if isinstance(reply, ResponseError):
            raise reply
        self.tracked.update(prefixes)

    def _flag(self, cache: ModelCache, now: float) -> None:
        """Renew this process's member of the cache flag, after checking that a flag
        that changed still holds it; flush the cache if the flag may have lapsed."""
        flag = cache.keys.cache_flag
        current = cache.flag_epoch == self.epoch
        if current and cache.flag_uncertain and now - cache.flag_set_at < FLAG_TTL - _FLAG_MARGIN:
            cache.flag_uncertain = False
            if self.roundtrip(("ZSCORE", flag, self.member))[0] is not None:
                if now - cache.flag_set_at < FLAG_RENEW:
                    return  # renewed by another process, ours still there
            else:
                cache.flush()  # deleted or evicted: writes since may not have stamped
        elif not current or now - cache.flag_set_at >= FLAG_TTL - _FLAG_MARGIN:
            cache.flush(count=current and bool(cache.lru))
        sent = time.monotonic()
        script = scripts.CACHE_FLAG
        args = (flag, self.member, int(FLAG_TTL * 1000))
        reply = self.roundtrip(script.evalsha_args((args[0],), args[1:]))[0]
        if isinstance(reply, ResponseError) and "NOSCRIPT" in str(reply):
            reply = self.roundtrip(script.eval_args((args[0],), args[1:]))[0]
        if isinstance(reply, ResponseError):
            raise reply
        cache.flag_set_at, cache.flag_epoch, cache.flag_uncertain = sent, self.epoch, False

    def roundtrip(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Send commands and read their replies (blocking, within the socket timeout),
        applying the pushes that come before them."""
        conn, sock = self.conn, self.sock
        sock.sendall(b"".join(b"".join(conn.pack_command(*command)) for command in commands))
        replies: list[Any] = []
        reader = self.reader
        while len(replies) < len(commands):
            done, message = reader.next()
            if not done:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("the server closed the tracking connection")
                reader.feed(data)
            elif type(message) is Push:
                self._apply(message)
            else:
                replies.append(message)
        self.contact = time.monotonic()
        return replies

    def _drain(self) -> None:
        reader = self.reader
        while True:
            done, message = reader.next()
            if not done:
                return
            if type(message) is Push:
                self._apply(message)
        # replies to nothing cannot come: every command's replies are read by roundtrip

    def _apply(self, push: Push) -> None:
        if not push or push[0] != b"invalidate":
            return
        self.contact = time.monotonic()
        keys = push[1] if len(push) > 1 else None
        if keys is None:  # FLUSHDB / FLUSHALL
            for caches in self.caches.values():
                for cache in caches:
                    cache.flush()
            return
        by_prefix = self.caches
        for key in keys:
            prefix = model_prefix(key)
            found = by_prefix.get(prefix) if prefix is not None else None
            if found:
                rest = key[len(prefix):]  # type: ignore[arg-type]
                for cache in found:
                    cache.invalidate(rest)

    def lost(self, exc: BaseException) -> None:
        """The connection failed: flush every cache of it; reconnect later."""
        conn = self.conn
        self.conn = self.sock = self.poller = None
        self.tracked = set()
        self.epoch += 1
        self.failed_at = time.monotonic()
        self.error = f"{type(exc).__name__}: {exc}"
        for caches in self.caches.values():
            for cache in caches:
                cache.steady_until = 0.0
                if conn is not None:
                    cache.flush()
        if conn is not None:
            try:
                conn.disconnect()
            except Exception:  # closing a broken connection
                pass

    def close(self) -> None:
        with self.lock:
            if self.conn is not None:
                self.lost(ConnectionError("closed"))
