"""Connection parameters, shared clients (one pool per distinct set of params) and
the per-client cache of each model's current generation.

Where a model's connection comes from, first match wins:

1. an instance's or the class's ``_connection`` (a ready ``redis.Redis``);
2. the class's ``REDIS_CONNECTION_PARAMS``, laid over the default params;
3. the default params: those given to ``setDefaultRedisConnectionParams``, else the
   ``REDIS_URL`` environment variable, else 127.0.0.1:6379 db 0.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.connection import parse_url

from .cache.store import budget_of
from .exceptions import IndexedRedisError
from .flows.context import GenerationCache
from .names import nearest

__all__ = [
    "setDefaultRedisConnectionParams",
    "getDefaultRedisConnectionParams",
    "getRedisConnection",
    "getAsyncRedisConnection",
    "getRedisPool",
    "clearRedisPools",
    "useEmbeddedRedis",
]

_BUILTIN_DEFAULT: dict[str, Any] = {"host": "127.0.0.1", "port": 6379, "db": 0}
_explicit_default: dict[str, Any] | None = None
_clients: dict[tuple[Any, ...], Any] = {}
_lock = threading.Lock()
_version = 0  # bumped whenever default params or pools change, to invalidate caches


_ENVIRON = getattr(os.environ, "_data", None)  # CPython's raw environment: no encode/decode per look-up
_REDIS_URL = os.environ.encodekey("REDIS_URL") if _ENVIRON is not None else None  # type: ignore[attr-defined]


def default_stamp() -> tuple[int, Any]:
    """Changes whenever the default connection may have changed (cheap to compute: it
    runs for every operation)."""
    if _ENVIRON is not None:
        return (_version, _ENVIRON.get(_REDIS_URL))
    return (_version, os.environ.get("REDIS_URL"))


def setDefaultRedisConnectionParams(params: Mapping[str, Any]) -> None:
    """Set the params every model uses by default: keyword arguments of ``redis.Redis``
    (of ``redis.cluster.RedisCluster`` with ``"cluster": True``), and optionally
    ``"url"`` (``redis://``, ``rediss://`` or ``unix://``), whose settings the other
    keys override.  Checked here: an unknown key raises TypeError now, not at the
    first query."""
    global _explicit_default, _version
    _explicit_default = checked_params(params, "setDefaultRedisConnectionParams")
    _version += 1


_EXTRA_PARAMS = frozenset({"cluster", "url", "client_cache"})


@functools.cache
def _known_params(cluster: bool) -> frozenset[str]:
    found = set(inspect.signature(redis.Redis.__init__).parameters)
    if cluster:
        found |= set(inspect.signature(redis.cluster.RedisCluster.__init__).parameters)
    return frozenset(found - {"self", "args", "kwargs"}) | _EXTRA_PARAMS


def checked_params(params: Any, where: str) -> dict[str, Any]:
    """Connection params as given (a ``"url"`` spelled out into its settings, the
    other keys laid over them), or TypeError naming ``where`` and the unknown key."""
    if not isinstance(params, Mapping):
        raise TypeError(f"{where} expects a dict of redis.Redis arguments, got {type(params).__name__}")
    out = dict(params)
    url = out.pop("url", None)
    if url is not None:
        if not isinstance(url, str):
            raise TypeError(f"{where}: 'url' must be a str such as 'redis://host:6379/0', got {url!r}")
        try:
            out = {**params_from_url(url), **out}
        except ValueError as exc:
            raise ValueError(f"{where}: bad Redis URL {url!r}: {exc}") from None
    known = _known_params(bool(out.get("cluster")))
    for key in out:
        if key not in known:
            raise TypeError(f"{where}: unknown connection param {key!r}.{nearest(str(key), known)} The params are "
                            f"keyword arguments of redis.Redis (of redis.cluster.RedisCluster with "
                            f"'cluster': True), plus 'cluster', 'url' and 'client_cache'")
    if "client_cache" in out:
        try:
            budget_of(out["client_cache"], f"{where}: 'client_cache'")
        except ValueError as exc:
            raise TypeError(str(exc)) from None
    return out


def default_is_named() -> bool:
    """Whether the default connection was named (``setDefaultRedisConnectionParams`` or
    ``REDIS_URL``) rather than left at 127.0.0.1:6379."""
    return _explicit_default is not None or bool(os.environ.get("REDIS_URL"))


def getDefaultRedisConnectionParams() -> dict[str, Any]:
    """A copy of the params models use when they name none of their own."""
    if _explicit_default is not None:
        return dict(_explicit_default)
    url = os.environ.get("REDIS_URL")
    if url:
        return checked_params({"url": url}, "the REDIS_URL environment variable")
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


def _client_kwargs(params: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
    """Whether params ask for a Redis Cluster (``"cluster": True``, or ``?cluster=true``
    in a URL), and the client's keyword arguments."""
    kwargs = dict(params)
    kwargs.pop("client_cache", None)  # ours, not the client's (see _cache_budget)
    wants = kwargs.pop("cluster", False)
    if isinstance(wants, str):
        wants = wants.strip().lower() in ("1", "true", "yes", "on")
    kwargs["decode_responses"] = False  # records are binary msgpack
    if wants:
        if kwargs.pop("db", 0) not in (0, "0", None):
            raise IndexedRedisError("Redis Cluster has database 0 only; drop 'db' from the connection params")
        kwargs.pop("unix_socket_path", None)
    return bool(wants), kwargs


_cache_budgets: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def _cache_budget(params: Mapping[str, Any]) -> int | None:
    """The byte budget the params' ``"client_cache"`` asks for (per model), or None."""
    try:
        return budget_of(params.get("client_cache"), "connection params 'client_cache'")
    except ValueError as exc:
        raise IndexedRedisError(str(exc)) from None


def cache_budget_of(client: Any) -> int | None:
    """The client-side cache budget of a client IndexedRedis made from params asking
    for one (``"client_cache"``), else None."""
    return _cache_budgets.get(client)


def getRedisConnection(params: Mapping[str, Any] | None = None) -> Any:
    """A client for these params (default params when None), sharing one pool per
    params: a ``redis.Redis``, or a ``redis.cluster.RedisCluster`` when they ask for one."""
    if params is None:
        params = getDefaultRedisConnectionParams()
    key = _freeze(params)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                budget = _cache_budget(params)
                wants_cluster, kwargs = _client_kwargs(params)
                client = _clients[key] = (redis.cluster.RedisCluster(**kwargs) if wants_cluster
                                          else redis.Redis(**kwargs))
                if budget is not None:
                    _cache_budgets[client] = budget
    return client


# Asyncio clients bind their connections to the event loop that first uses them, so
# there is one client per loop (and per params); a loop's clients go with the loop.
_async_clients: weakref.WeakKeyDictionary[Any, dict[Any, Any]] = weakref.WeakKeyDictionary()


def _loop_clients() -> dict[Any, Any]:
    loop = asyncio.get_running_loop()
    clients = _async_clients.get(loop)
    if clients is None:
        clients = _async_clients[loop] = {}
    return clients


def getAsyncRedisConnection(params: Mapping[str, Any] | None = None) -> Any:
    """The asyncio client of this event loop for these params (default params when
    None): a ``redis.asyncio.Redis``, or a ``redis.asyncio.cluster.RedisCluster`` when
    they ask for one.  Call it inside a running loop."""
    if params is None:
        params = getDefaultRedisConnectionParams()
    return loop_client(params, async_client_key(params))


def async_client_key(params: Mapping[str, Any]) -> tuple[Any, ...]:
    """What ``loop_client`` keeps a loop's client of ``params`` under (valid while
    ``default_stamp()`` stays the same: a model computes it once per stamp)."""
    return (_version, _freeze(params))


def loop_client(params: Mapping[str, Any], key: tuple[Any, ...]) -> Any:
    """``getAsyncRedisConnection`` with the key of ``params`` computed beforehand."""
    clients = _loop_clients()
    client = clients.get(key)
    if client is None:
        budget = _cache_budget(params)
        wants_cluster, kwargs = _client_kwargs(params)
        if wants_cluster:
            client = redis.asyncio.cluster.RedisCluster(**kwargs)
        else:
            # Many tasks of one loop may run operations at once: past the pool's size
            # they wait for a connection (redis.asyncio's own pool would raise instead).
            kwargs.setdefault("max_connections", ASYNC_MAX_CONNECTIONS)
            url_kwargs = {k: v for k, v in kwargs.items() if k != "max_connections"}
            pool = redis.asyncio.BlockingConnectionPool(
                max_connections=kwargs["max_connections"], **_async_pool_kwargs(url_kwargs))
            client = redis.asyncio.Redis(connection_pool=pool)
        if budget is not None:
            _cache_budgets[client] = budget
        clients[key] = client
    return client


#: Connections of an asyncio client IndexedRedis makes, unless params give ``max_connections``.
ASYNC_MAX_CONNECTIONS = 100


def _async_pool_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Connection-pool keyword arguments for ``redis.asyncio.Redis``-style ones."""
    kwargs = dict(kwargs)
    if kwargs.pop("ssl", False):
        kwargs["connection_class"] = redis.asyncio.SSLConnection
    elif "unix_socket_path" in kwargs:
        kwargs["path"] = kwargs.pop("unix_socket_path")
        kwargs["connection_class"] = redis.asyncio.UnixDomainSocketConnection
    return kwargs


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
        if isinstance(client, redis.cluster.RedisCluster):
            client.disconnect_connection_pools()
        else:
            client.connection_pool.disconnect()
    from .cache import registry  # it builds on this module

    registry.forget()  # the client-side caches and their tracking connections


async def acloseRedisConnections() -> None:
    """Close the asyncio clients IndexedRedis made for the running event loop (from
    connection params, and twins of sync ``_connection`` clients) and forget them; the
    next async call makes new ones.  Await it before the loop ends, for example in an
    ASGI app's shutdown, so that no connection outlives its loop (redis-py 5.0 prints
    "Event loop is closed" for those as they are garbage collected).  Clients you
    passed as ``_connection`` yourself are yours to close."""
    clients = _loop_clients()
    found = list(clients.values())
    clients.clear()
    for client in found:
        client = client[1] if type(client) is tuple else client  # a twin: (its sync client, itself)
        if isinstance(client, redis.asyncio.cluster.RedisCluster):
            await client.aclose() if hasattr(client, "aclose") else await client.close()
        else:  # made on a pool of its own, which closing the client leaves open
            await client.connection_pool.disconnect()


def server_label(client: Any) -> str:
    """host:port/db (or the socket path) of a client, for messages."""
    pool = getattr(client, "connection_pool", None)
    if pool is None:  # a cluster client
        nodes = getattr(client, "startup_nodes", None) or []
        return "cluster " + ", ".join(f"{getattr(n, 'host', '?')}:{getattr(n, 'port', '?')}" for n in nodes[:3])
    kwargs = pool.connection_kwargs
    where = kwargs.get("path") or f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
    return f"{where}/{kwargs.get('db', 0)}"


def _reset_default_for_tests() -> None:
    global _explicit_default, _version
    _explicit_default = None
    _version += 1
    clearRedisPools()


_raw_twins: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def is_async_client(client: Any) -> bool:
    return isinstance(client, (redis.asyncio.Redis, redis.asyncio.cluster.RedisCluster))


def _decodes(client: Any) -> bool:
    if isinstance(client, (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster)):
        return bool(client.get_encoder().decode_responses)
    pool = getattr(client, "connection_pool", None)
    return pool is not None and bool(pool.connection_kwargs.get("decode_responses"))


def raw_client(client: Any) -> Any:
    """``client`` itself, or a twin on the same server that returns bytes.

    Records are binary; a user's client made with ``decode_responses=True`` would try
    to decode them as text, so IndexedRedis talks through a twin pool instead.
    """
    if not _decodes(client):
        return client
    twin = _raw_twins.get(client)
    if twin is None:
        if isinstance(client, (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster)):
            raise IndexedRedisError(
                "IndexedRedis needs a Redis Cluster client made with decode_responses=False (records "
                "are binary); pass connection params instead and IndexedRedis makes its own client")
        pool = client.connection_pool
        kwargs = dict(pool.connection_kwargs)
        kwargs["decode_responses"] = False
        twin_pool = type(pool)(connection_class=pool.connection_class, **kwargs)
        kind = redis.asyncio.Redis if is_async_client(client) else redis.Redis
        twin = _raw_twins[client] = kind(connection_pool=twin_pool)
    return twin


# Connection classes of the sync and asyncio clients that reach a server the same way.
_ASYNC_CONNECTION = {redis.Connection: redis.asyncio.Connection,
                     redis.SSLConnection: redis.asyncio.SSLConnection,
                     redis.UnixDomainSocketConnection: redis.asyncio.UnixDomainSocketConnection}
_SYNC_CONNECTION = {a: s for s, a in _ASYNC_CONNECTION.items()}
_twins: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _pool_twin(client: Any, classes: dict[type, type], pool_class: type, client_class: type) -> Any:
    """A client of the other kind (sync or asyncio) to the server ``client`` reaches."""
    if isinstance(client, (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster)):
        raise IndexedRedisError(
            "a Redis Cluster client given as _connection serves only its own kind of calls (sync or "
            "async); give connection params (with 'cluster': True) to use both")
    pool = client.connection_pool
    connection_class = classes.get(pool.connection_class)
    if connection_class is None:
        raise IndexedRedisError(
            f"cannot make a {'sync' if client_class is redis.Redis else 'asyncio'} twin of a client whose "
            f"connections are {pool.connection_class.__name__}; set _connection to a client of that kind")
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if k not in ("retry", "redis_connect_func")}
    kwargs["decode_responses"] = False
    return client_class(connection_pool=pool_class(connection_class=connection_class, **kwargs))


def sync_client_of(client: Any) -> Any:
    """A sync client for a model's ``_connection``: itself, or a twin of an asyncio one."""
    if not is_async_client(client):
        return raw_client(client)
    twin = _twins.get(client)
    if twin is None:
        twin = _twins[client] = _pool_twin(client, _SYNC_CONNECTION, redis.ConnectionPool, redis.Redis)
    return twin


def async_client_of(client: Any) -> Any:
    """An asyncio client for a model's ``_connection``: itself, or (one per event loop)
    a twin of a sync one."""
    if is_async_client(client):
        return raw_client(client)
    clients = _loop_clients()
    key = ("twin", id(client))
    twin = clients.get(key)
    if twin is None or twin[0] is not client:
        twin = clients[key] = (client, _pool_twin(client, _ASYNC_CONNECTION, redis.asyncio.ConnectionPool,
                                                  redis.asyncio.Redis))
    return twin[1]


_generation_caches: weakref.WeakKeyDictionary[Any, GenerationCache] = weakref.WeakKeyDictionary()


def generation_cache(client: Any) -> GenerationCache:
    """The generation cache of one client."""
    cache = _generation_caches.get(client)
    if cache is None:
        cache = _generation_caches[client] = GenerationCache()
    return cache


class ClientRouter:
    """Routes of one driver: each model's (or instance's) client of that driver's kind,
    found through the model's ``_get_client`` / ``_get_async_client`` (and the
    instance's own ``_connection``, if it has one)."""

    __slots__ = ("_of_model", "_of_instance")

    def __init__(self, of_model: str, of_instance: str) -> None:
        self._of_model = of_model
        self._of_instance = of_instance

    def route_of(self, target: Any) -> Any:
        return getattr(target, self._of_model if isinstance(target, type) else self._of_instance)()

    def gens(self, route: Any) -> GenerationCache:
        return generation_cache(route)

    def is_cluster(self, route: Any) -> bool:
        return isinstance(route, (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster))

    def caching(self, route: Any, meta: Any) -> bool:
        """Whether reads of ``meta``'s model on ``route`` use the client-side cache: the
        model's ``CLIENT_CACHE`` says so, or it says nothing and the route's params
        ask for one (models with link fields or a TTL are never cached that way)."""
        setting = meta.client_cache
        if setting is not None:
            return setting > 0
        return not meta.foreign_fields and meta.ttl_ms is None and route in _cache_budgets


SYNC_ROUTER = ClientRouter("_get_client", "_get_instance_client")
ASYNC_ROUTER = ClientRouter("_get_async_client", "_get_instance_async_client")


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
