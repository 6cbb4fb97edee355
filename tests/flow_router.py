"""A Router for the I/O-free flow tests: routes are plain names, and each route has
its own generation cache.  ``"cluster"`` is a cluster route and ``"cached"`` one whose
models keep a client-side cache; every other name is a plain standalone route."""

from __future__ import annotations

from typing import Any

from IndexedRedis.flows.context import GenerationCache

__all__ = ["Router"]


class Router:
    def __init__(self, routes: dict[str, str] | None = None) -> None:
        #: model class name -> route (default "main")
        self.routes = routes or {}
        self.caches: dict[str, GenerationCache] = {}

    def route_of(self, target: Any) -> str:
        model = target if isinstance(target, type) else type(target)
        return self.routes.get(model.__name__, "main")

    def gens(self, route: Any) -> GenerationCache:
        return self.caches.setdefault(route, GenerationCache())

    def is_cluster(self, route: Any) -> bool:
        return route == "cluster"

    def caching(self, route: Any, meta: Any) -> bool:
        return route == "cached"
