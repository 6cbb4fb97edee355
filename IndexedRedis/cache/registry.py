"""Which tracker and model cache serve a client (a server, or on a Redis Cluster the
node that owns the model's slot), and the drivers' answers to the flows' cache
requests.  One tracker per process and server address, shared by sync and asyncio
clients; forgotten in a forked child (the parent's socket is not the child's)."""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.crc import key_slot

from ..connection import _SYNC_CONNECTION, cache_budget_of
from ..flows.requests import CacheAnswer, CacheRead, CacheStore
from .store import DEFAULT_BUDGET, CacheStats, ModelCache
from .tracker import Tracker

__all__ = ["answer", "lookup", "stats", "model_stats", "forget"]

_CLUSTERS = (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster)
_DROPPED = ("retry", "redis_connect_func", "connection_pool", "cache", "cache_config", "event_dispatcher",
            "maint_notifications_config", "maint_notifications_pool_handler", "orig_host_address",
            "orig_socket_timeout", "orig_socket_connect_timeout", "oss_cluster_maint_notifications_handler")

_lock = threading.Lock()
_trackers: dict[Any, Tracker] = {}  # server address -> tracker
_caches: dict[tuple[Any, int, bytes], ModelCache] = {}  # (address, db, model prefix) -> cache
#: Each client's places (meta -> place) live in an attribute of the client itself: a
#: look-up by a weak key (or by id and a weak reference) costs more than the rest of a
#: cache hit.  Every client that ever had one, to forget them (weakly).
_PLACES = "_indexedredis_cache_places"
_with_places: weakref.WeakSet[Any] = weakref.WeakSet()


def _connection_factory(connection_class: type, kwargs: dict[str, Any]) -> Any:
    kwargs = {k: v for k, v in kwargs.items() if k not in _DROPPED}
    kwargs["protocol"] = 3
    kwargs["decode_responses"] = False
    if kwargs.get("socket_timeout") is None:
        kwargs["socket_timeout"] = 5.0
    if kwargs.get("socket_connect_timeout") is None:
        kwargs["socket_connect_timeout"] = 5.0
    connection_class = _SYNC_CONNECTION.get(connection_class, connection_class)
    return lambda: connection_class(**kwargs)


def _address(kwargs: dict[str, Any]) -> Any:
    path = kwargs.get("path") or kwargs.get("unix_socket_path")
    return ("unix", path) if path else (kwargs.get("host", "localhost"), int(kwargs.get("port", 6379)))


def _tracker(address: Any, connection_class: type, kwargs: dict[str, Any]) -> Tracker:
    tracker = _trackers.get(address)
    if tracker is None:
        tracker = _trackers[address] = Tracker(":".join(map(str, address)),
                                              _connection_factory(connection_class, kwargs))
    return tracker


def _model_cache(tracker: Tracker, address: Any, db: int, meta: Any, budget: int) -> ModelCache:
    key = (address, db, meta.keys.prefix)
    cache = _caches.get(key)
    if cache is None:
        cache = _caches[key] = ModelCache(meta.name, meta.keys, budget)
        with tracker.lock:
            tracker.add(cache)
    return cache


class _Place:
    """Where one model's cache is for one client: a standalone server, or (``slot`` not
    None) the cluster node that owns the model's slot, looked up on every request."""

    __slots__ = ("tracker", "cache", "slot", "node", "budget")

    def __init__(self, tracker: Any, cache: Any, slot: int | None, budget: int) -> None:
        self.tracker = tracker
        self.cache = cache
        self.slot = slot
        self.node: Any = None
        self.budget = budget


def _place(client: Any, meta: Any) -> _Place:
    places = getattr(client, _PLACES, None)
    if places is None:
        places = {}
        setattr(client, _PLACES, places)
        _with_places.add(client)
    place = places.get(meta)
    if place is None:
        budget = meta.client_cache or cache_budget_of(client) or DEFAULT_BUDGET
        with _lock:
            if isinstance(client, _CLUSTERS):
                place = _Place(None, None, key_slot(meta.keys.hash_tag.encode("utf-8")), budget)
            else:
                pool = client.connection_pool
                kwargs = dict(pool.connection_kwargs)
                address = _address(kwargs)
                tracker = _tracker(address, pool.connection_class, kwargs)
                place = _Place(tracker, _model_cache(tracker, address, int(kwargs.get("db") or 0), meta, budget),
                               None, budget)
        places[meta] = place
    if place.slot is not None:
        _follow_slot(client, meta, place)
    return place


def _follow_slot(client: Any, meta: Any, place: _Place) -> None:
    """Point a cluster place at the node that owns the slot now; a move flushes the
    cache of the node it left (its tracker no longer hears about the slot's writes)."""
    nodes = client.nodes_manager.slots_cache.get(place.slot)
    node = nodes[0] if nodes else None
    if node is place.node:
        return
    if place.cache is not None:
        with place.tracker.lock:
            place.cache.flush()
    place.node = node
    if node is None:
        place.tracker = place.cache = None
        return
    address = (node.host, int(node.port))
    if isinstance(client, redis.cluster.RedisCluster):
        connection = node.redis_connection or client.get_redis_connection(node)
        pool = connection.connection_pool
        connection_class, kwargs = pool.connection_class, dict(pool.connection_kwargs)
    else:
        connection_class, kwargs = node.connection_class, dict(node.connection_kwargs)
    kwargs.update(host=node.host, port=int(node.port))
    with _lock:
        place.tracker = _tracker(address, connection_class, kwargs)
        place.cache = _model_cache(place.tracker, address, 0, meta, place.budget)


def lookup(client: Any, meta: Any, gen: int | None, pks: Any = None, query: Any = None) -> Any:
    """The query sets' way in before they run a flow: the cached instances of all
    ``pks`` (a list), or the cached result of ``query`` (a tuple); None when anything
    is missing or the cache cannot be used now (then the flow reads, and counts the
    miss).  Invalidations the server pushed are applied first, as for ``answer``."""
    places = getattr(client, _PLACES, None)
    place = None if places is None else places.get(meta)
    if place is None or place.slot is not None:
        place = _place(client, meta)
    tracker = place.tracker
    if tracker is None:
        return None
    cache = place.cache
    with tracker.lock:
        # The steady state of ``tracker.ready`` inlined (the hot path of a hit): one poll.
        steady = False
        if tracker.conn is not None:
            if tracker.poller.poll(0) or tracker.tls and tracker.sock.pending():
                tracker.poll()
            steady = time.monotonic() < cache.steady_until  # 0 once the connection is lost
        if not steady and not tracker.ready(cache):
            return None
        if query is not None:
            return cache.peek_query(gen, query)
        return cache.peek_objects(gen, pks)


def answer(client: Any, request: CacheRead | CacheStore) -> Any:
    """The driver's reply to a cache request (see ``flows.requests``)."""
    place = _place(client, request.meta)
    tracker, cache = place.tracker, place.cache
    if tracker is None:
        return None
    with tracker.lock:
        if type(request) is CacheRead:
            if not tracker.ready(cache):
                return None
            if request.query is not None:
                return CacheAnswer(cache.token(), cache.get_query(request.gen, request.query))
            return CacheAnswer(cache.token(), cache.get_objects(request.gen, request.pks))
        assert type(request) is CacheStore
        if tracker.conn is None:
            return None
        tracker.poll()  # what arrived while the read was out: its invalidations refuse the store
        if request.query is not None:
            cache.store_query(request.token, request.gen, request.query, request.objects, request.deps)
        else:
            cache.store_objects(request.token, request.gen, request.objects)
    return None


def model_stats(meta: Any) -> CacheStats:
    """The counters of a model's caches in this process, summed over servers."""
    total = CacheStats()
    for (_, _, prefix), cache in list(_caches.items()):
        if prefix == meta.keys.prefix:
            total.add(cache.snapshot())
    return total


def stats() -> dict[str, CacheStats]:
    """Model name -> its counters, summed over servers (models cached in this process)."""
    out: dict[str, CacheStats] = {}
    for cache in list(_caches.values()):
        out.setdefault(cache.name, CacheStats()).add(cache.snapshot())
    return out


def trackers() -> list[Tracker]:
    return list(_trackers.values())


def forget() -> None:
    """Close every tracking connection and forget every cache (tests; ``clearRedisPools``)."""
    with _lock:
        found = list(_trackers.values())
        _trackers.clear()
        _caches.clear()
        holders = list(_with_places)
        _with_places.clear()
    for client in holders:
        client.__dict__.pop(_PLACES, None)
    for tracker in found:
        tracker.close()


def _forget_after_fork() -> None:
    _trackers.clear()
    _caches.clear()
    for client in list(_with_places):
        client.__dict__.pop(_PLACES, None)
    _with_places.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
