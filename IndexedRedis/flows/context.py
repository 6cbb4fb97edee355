"""What a flow knows besides its inputs: the model, where its data lives, and the last
known generation of each model's data (to name keys without asking the server)."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .requests import Emit, Flow

if TYPE_CHECKING:
    from ..options import ModelOptions

__all__ = ["Context", "GenerationCache", "Router", "routed"]

T = TypeVar("T")


class GenerationCache:
    """Last known generation of each model on one connection.

    A wrong guess costs one extra round trip: every script checks the generation
    pointer first and answers with the current one when the guess was stale.
    """

    __slots__ = ("_gens", "plans")

    def __init__(self) -> None:
        self._gens: dict[bytes, int] = {}
        #: Text-dictionary plans made on this connection (``flows/text.py``).
        self.plans: dict[Any, Any] = {}

    def get(self, model_prefix: bytes) -> int:
        return self._gens.get(model_prefix, 0)

    def set(self, model_prefix: bytes, gen: int) -> None:
        self._gens[model_prefix] = gen


class Router(Protocol):
    """Where models and objects keep their data, as a driver sees it.  Routes are
    opaque to flows (the drivers use clients); looking one up does no I/O."""

    def route_of(self, target: Any) -> Any:
        """The route of a model class, or of an instance (which may have its own)."""

    def gens(self, route: Any) -> GenerationCache:
        """The generation cache of a route."""

    def is_cluster(self, route: Any) -> bool:
        """Whether a route is a Redis Cluster, where one script reaches one slot only."""

    def caching(self, route: Any, meta: ModelOptions) -> bool:
        """Whether reads of a model on a route go through the client-side cache."""


class Context:
    """A flow's model (``meta``), its own route, the router for any other, and whether
    its reads go through the client-side cache (``cached``)."""

    __slots__ = ("meta", "route", "router", "gens", "cached")

    def __init__(self, meta: ModelOptions, route: Any, router: Router) -> None:
        self.meta = meta
        self.route = route
        self.router = router
        self.gens = router.gens(route)
        self.cached = router.caching(route, meta)

    @property
    def gen(self) -> int:
        return self.gens.get(self.meta.keys.prefix)

    @gen.setter
    def gen(self, value: int) -> None:
        self.gens.set(self.meta.keys.prefix, value)

    def route_of(self, target: Any) -> Any:
        return self.router.route_of(target)

    def on(self, meta: ModelOptions, route: Any = None) -> Context:
        """A context for another model, on ``route`` (this one's when None)."""
        return Context(meta, self.route if route is None else route, self.router)


def routed(ctx: Context, route: Any, flow: Flow[T]) -> Generator[Any, Any, T]:
    """Run ``flow`` (made with ``ctx.on(..., route)``) so that its requests go to ``route``."""
    if route is ctx.route:
        return (yield from flow)
    try:
        request = next(flow)
        while True:
            if type(request) is list:
                request = [replace(item, route=route) for item in request]
            elif type(request) is not Emit:
                request = replace(request, route=route)  # type: ignore[type-var]
            try:
                reply = yield request
            except Exception as exc:
                request = flow.throw(exc)
            else:
                request = flow.send(reply)
    except StopIteration as stop:
        return stop.value
