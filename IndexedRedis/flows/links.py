"""Reading objects by pk across models and routes, and fetching linked objects level
by level (``cascadeFetch``, ``fetchLink``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import scripts
from ..expiry import expected
from ..fields.links import ForeignLink, ForeignLinks
from .common import STALE_GEN, found_pks
from .context import Context, routed
from .requests import Flow, Request, ScriptCall
from .schemas import instances_flow

if TYPE_CHECKING:
    from ..model import IndexedRedisModel
    from ..options import ModelOptions

__all__ = ["get_call", "fetch_by_pk_flow", "links_flow", "linked_objects_of"]


def get_call(meta: ModelOptions, gen: int, op: str, pks: Sequence[int], route: Any = None) -> ScriptCall:
    """query.lua's 'get' / 'has' of these pks, at generation ``gen``."""
    gk = meta.keys.generation(gen)
    keys = [meta.keys.gen, gk.objs, gk.ids, meta.keys.schemas]
    if meta.ttl_ms is not None:
        keys.append(gk.exp)
    return ScriptCall(scripts.QUERY, keys, (expected(meta, gk, gen, lambda key: 5), op, *pks), route)


def linked_objects_of(value: Any) -> list[IndexedRedisModel]:
    """The objects a link field's value holds in memory."""
    return value.objects() if isinstance(value, (ForeignLink, ForeignLinks)) else []


def fetch_by_pk_flow(ctx: Context, wanted: dict[ModelOptions, Sequence[int]]
                     ) -> Flow[dict[ModelOptions, dict[int, IndexedRedisModel]]]:
    """The stored objects of these pks, per model (a missing pk is left out), each model
    read on its own route: one pipelined round trip per route, and one more for a model
    whose generation moved (a reset) since this process last saw it."""
    found: dict[ModelOptions, dict[int, IndexedRedisModel]] = {meta: {} for meta in wanted}
    pending = {meta: list(pks) for meta, pks in wanted.items() if pks}
    while pending:
        routes: dict[int, tuple[Any, list[ModelOptions]]] = {}
        for meta in pending:
            route = ctx.route_of(meta.model)
            routes.setdefault(id(route), (route, []))[1].append(meta)
        for route, metas in routes.values():
            gens = ctx.router.gens(route)
            sent_to = None if route is ctx.route else route
            calls: list[Request] = [get_call(meta, gens.get(meta.keys.prefix), "get", pending[meta], sent_to)
                                    for meta in metas]
            replies = yield calls
            for meta, reply in zip(metas, replies, strict=True):
                if reply[0] == STALE_GEN:  # asked again, at the current generation
                    gens.set(meta.keys.prefix, int(reply[1]))
                    continue
                pks = found_pks(reply[1])
                fetched = (yield from routed(ctx, route, instances_flow(meta, pks, reply[2]))) if pks else []
                found[meta].update(zip(pks, fetched, strict=True))
                del pending[meta]
    return found


def links_flow(ctx: Context, objs: Sequence[IndexedRedisModel], field_name: str | None = None,
               deep: bool = True) -> Flow[None]:
    """Load the objects that ``objs`` link to (through every link field, or only
    ``field_name``), and with ``deep`` theirs, and so on: one pipelined round trip per
    level of links and connection."""
    known: dict[tuple[ModelOptions, int], IndexedRedisModel] = {}
    for obj in objs:
        if obj._id is not None:
            known[(type(obj)._meta, obj._id)] = obj
    level = list(objs)
    while level:
        wanted: dict[ModelOptions, dict[int, list[ForeignLink]]] = {}
        for obj in level:
            for field in type(obj)._meta.foreign_fields:
                if field_name is not None and field.name != field_name:
                    continue
                value = obj.__dict__.get(field.name)
                links = value.links if isinstance(value, ForeignLinks) else (
                    [value] if isinstance(value, ForeignLink) else [])
                target: ModelOptions = field.foreignModel._meta
                for link in links:
                    if link.obj is not None or link.pk is None:
                        continue
                    if (target, link.pk) in known:
                        link.obj = known[(target, link.pk)]
                    else:
                        wanted.setdefault(target, {}).setdefault(link.pk, []).append(link)
        level = []
        if wanted:
            found = yield from fetch_by_pk_flow(ctx, {meta: list(by_pk) for meta, by_pk in wanted.items()})
            for meta, by_pk in wanted.items():
                for pk, links in by_pk.items():
                    fetched = found[meta].get(pk)
                    if fetched is None:
                        continue  # deleted: the link reads as irNull (or is left out)
                    known[(meta, pk)] = fetched
                    level.append(fetched)
                    for link in links:
                        link.obj = fetched
        if not deep:
            return
