"""Connection parameters, shared clients (one pool per distinct set of params) and
the per-client cache of each model's current generation.

Where a model's connection comes from, first match wins:

1. an instance's or the class's ``_connection`` (a ready ``redis.Redis``);
2. the class's ``REDIS_CONNECTION_PARAMS``, laid over the default params;
3. the default params: those given to ``setDefaultRedisConnectionParams``, else the
   ``REDIS_URL`` environment variable, else 127.0.0.1:6379 db 0.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any

import redis
from redis.connection import parse_url

__all__ = [
    "setDefaultRedisConnectionParams",
    "getDefaultRedisConnectionParams",
    "getRedisConnection",
    "getRedisPool",
    "clearRedisPools",
    "useEmbeddedRedis",
]

_BUILTIN_DEFAULT: dict[str, Any] = {"host": "127.0.0.1", "port": 6379, "db": 0}
_explicit_default: dict[str, Any] | None = None
_clients: dict[tuple[Any, ...], redis.Redis] = {}
_lock = threading.Lock()
_version = 0  # bumped whenever default params or pools change, to invalidate caches


def default_stamp() -> tuple[int, str | None]:
    """Changes whenever the default connection may have changed (cheap to compute)."""
    return (_version, os.environ.get("REDIS_URL"))


def setDefaultRedisConnectionParams(params: Mapping[str, Any]) -> None:
    """Set the params (keyword arguments of ``redis.Redis``) every model uses by default."""
    global _explicit_default, _version
    if not isinstance(params, Mapping):
        raise TypeError(f"setDefaultRedisConnectionParams expects a dict, got {type(params).__name__}")
    _explicit_default = dict(params)
    _version += 1


def getDefaultRedisConnectionParams() -> dict[str, Any]:
    """A copy of the params models use when they name none of their own."""
    if _explicit_default is not None:
        return dict(_explicit_default)
    url = os.environ.get("REDIS_URL")
    if url:
        return params_from_url(url)
    return dict(_BUILTIN_DEFAULT)


def params_from_url(url: str) -> dict[str, Any]:
    """``redis.Redis`` keyword arguments for a ``redis://``, ``rediss://`` or ``unix://`` URL."""
    params = dict(parse_url(url))
    if "path" in params:  # unix socket
        params["unix_socket_path"] = params.pop("path")
        params.pop("connection_class", None)
    if params.pop("connection_class", None) is not None or url.startswith("rediss://"):
        params["ssl"] = True
    return params


def _freeze(params: Mapping[str, Any]) -> tuple[Any, ...]:
    items = []
    for key in sorted(params):
        value = params[key]
        try:
            hash(value)
        except TypeError:
            value = repr(value)
        items.append((key, value))
    return tuple(items)


def getRedisConnection(params: Mapping[str, Any] | None = None) -> redis.Redis:
    """A client for these params (default params when None), sharing one pool per params."""
    if params is None:
        params = getDefaultRedisConnectionParams()
    key = _freeze(params)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                kwargs = dict(params)
                kwargs["decode_responses"] = False  # records are binary msgpack
                client = _clients[key] = redis.Redis(**kwargs)
    return client


def getRedisPool(params: Mapping[str, Any] | None = None) -> redis.ConnectionPool:
    """The shared connection pool for these params."""
    return getRedisConnection(params).connection_pool


def clearRedisPools() -> None:
    """Disconnect and forget every shared pool (for example after ``fork``)."""
    global _version
    _version += 1
    with _lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.connection_pool.disconnect()


def _reset_default_for_tests() -> None:
    global _explicit_default, _version
    _explicit_default = None
    _version += 1
    clearRedisPools()


_raw_twins: weakref.WeakKeyDictionary[redis.Redis, redis.Redis] = weakref.WeakKeyDictionary()


def raw_client(client: redis.Redis) -> redis.Redis:
    """``client`` itself, or a twin on the same server that returns bytes.

    Records are binary; a user's client made with ``decode_responses=True`` would try
    to decode them as text, so IndexedRedis talks through a twin pool instead.
    """
    pool = getattr(client, "connection_pool", None)
    if pool is None or not pool.connection_kwargs.get("decode_responses"):
        return client
    twin = _raw_twins.get(client)
    if twin is None:
        kwargs = dict(pool.connection_kwargs)
        kwargs["decode_responses"] = False
        twin_pool = type(pool)(connection_class=pool.connection_class, **kwargs)
        twin = _raw_twins[client] = redis.Redis(connection_pool=twin_pool)
    return twin


class GenerationCache:
    """Last known generation of each model on one client, to name keys without a round trip.

    A wrong guess costs one extra round trip: every script checks the generation
    pointer first and answers with the current one when the guess was stale.
    """

    __slots__ = ("_gens",)

    def __init__(self) -> None:
        self._gens: dict[bytes, int] = {}

    def get(self, model_prefix: bytes) -> int:
        return self._gens.get(model_prefix, 0)

    def set(self, model_prefix: bytes, gen: int) -> None:
        self._gens[model_prefix] = gen


_generation_caches: weakref.WeakKeyDictionary[Any, GenerationCache] = weakref.WeakKeyDictionary()


def generation_cache(client: Any) -> GenerationCache:
    cache = _generation_caches.get(client)
    if cache is None:
        cache = _generation_caches[client] = GenerationCache()
    return cache


_embedded_server: Any = None


def useEmbeddedRedis(**kwargs: Any) -> Any:
    """Start a private ``redis-server`` and make it the default connection.

    For scripts and notebooks on a machine without Redis: the server runs on a unix
    socket in a temporary directory and stops when the interpreter exits.  Calling it
    again returns the same server.  Keyword arguments go to ``EmbeddedRedis``.
    """
    global _embedded_server
    from .embedded import EmbeddedRedis

    if _embedded_server is None or not _embedded_server.running:
        _embedded_server = EmbeddedRedis(**kwargs)
        _embedded_server.start()
    setDefaultRedisConnectionParams(_embedded_server.connection_params)
    return _embedded_server
