"""Reading: gets by pk, queries (one query.lua call each), streaming, reloads, and
fetching linked objects level by level."""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import msgpack

from .. import scripts
from ..compiler import PK_ORDER, Order, Query, compile_query
from ..exceptions import ConcurrencyError
from ..fields.links import ForeignLink, ForeignLinks
from ..state import mark_stored
from .common import MAX_ATTEMPTS, STALE_GEN, call_current
from .context import Context, routed
from .requests import Command, Emit, Flow, Request, ScriptCall, Transaction
from .save import linked_objects
from .schemas import instances_flow, partial_instances_flow

if TYPE_CHECKING:
    from ..model import IndexedRedisModel
    from ..options import ModelOptions

__all__ = ["get_flow", "query_flow", "objects_flow", "page_flow", "count_flow", "exists_flow", "has_flow",
           "pks_flow", "iterate_flow", "get_objects_flow", "index_key_flow", "reload_flow", "reload_each_flow",
           "links_flow"]

_pk_of = attrgetter("_id")
_EVERYTHING = Query()


def get_flow(ctx: Context, pks: Sequence[int]) -> Flow[list[Any]]:
    """The records of these pks (None where missing): the generation pointer and the
    records are read in one MULTI/EXEC, cheaper than a script for this simplest read."""
    meta = ctx.meta
    for _ in range(MAX_ATTEMPTS):
        gen = ctx.gen
        gk = meta.keys.generation(gen)
        current, records = yield Transaction((("GET", meta.keys.gen), ("HMGET", gk.objs, *pks)))
        live = int(current or 0)
        if live == gen:
            return list(records)
        ctx.gen = live
    raise ConcurrencyError(f"{meta.name}: the dataset kept being reset during the operation")


def _get_call(meta: ModelOptions, gen: int, op: str, pks: Sequence[int], route: Any = None) -> ScriptCall:
    gk = meta.keys.generation(gen)
    return ScriptCall(scripts.QUERY, (meta.keys.gen, gk.objs, gk.ids, meta.keys.schemas), (gen, op, *pks), route)


def query_flow(ctx: Context, op: str, query: Query = _EVERYTHING, order: Order | None = None, offset: int = 0,
               limit: int = -1, after: int | None = None, rnd: int = 0,
               pks: Sequence[int] = ()) -> Flow[list[Any]]:
    """Run query.lua (see its header and ``compiler.py``); ``pks`` go with 'get'/'has'."""
    meta = ctx.meta
    order = query.order if order is None else order

    def build(gen: int) -> ScriptCall:
        if op in ("get", "has"):
            return _get_call(meta, gen, op, pks)
        keys, args = compile_query(meta, meta.keys.generation(gen), gen, op, query.conditions, order,
                                   offset, limit, after, rnd)
        return ScriptCall(scripts.QUERY, keys, args)

    reply = yield from call_current(ctx, build)
    return reply[1:]


def _whole(query: Query, order: Order) -> Order | None:
    """The order the client must sort a whole result in (None: it comes sorted).

    The server leaves a whole pk-ordered result unsorted only when a positive
    condition drove it; otherwise it walked or diffed the pk-ordered ids.
    """
    if order.field is not None or all(c[0] == "N" for c in query.conditions):
        return None
    return order


def _build_flow(meta: ModelOptions, pks: Sequence[int], blobs: Any,
                fields: Sequence[str] | None) -> Flow[list[IndexedRedisModel]]:
    if fields is None:
        return (yield from instances_flow(meta, pks, blobs))
    return (yield from partial_instances_flow(meta, pks, blobs, fields))


def objects_flow(ctx: Context, query: Query, op: str = "records", order: Order | None = None, offset: int = 0,
                 limit: int = -1, after: int | None = None, rnd: int = 0, fields: Sequence[str] | None = None,
                 cascade: bool = False, sort: Order | None = None) -> Flow[list[IndexedRedisModel]]:
    """The objects a 'records' / 'random' query finds, in the reply's order, or sorted
    by pk per ``sort`` (a whole result in pk order, which the server leaves to the
    client); only ``fields`` loaded, if given; with ``cascade``, their links fetched."""
    packed_pks, blobs = yield from query_flow(ctx, op, query, order, offset, limit, after, rnd)
    pks = msgpack.unpackb(packed_pks) if packed_pks else []
    objs = (yield from _build_flow(ctx.meta, pks, blobs, fields)) if pks else []
    if sort is not None:
        objs.sort(key=_pk_of, reverse=sort.descending)
    if cascade:
        yield from links_flow(ctx, objs)
    return objs


def page_flow(ctx: Context, query: Query, offset: int = 0, limit: int = -1, order: Order | None = None,
              fields: Sequence[str] | None = None, cascade: bool = False) -> Flow[list[IndexedRedisModel]]:
    """A page of the result (the whole result by default) in the query's order, or in
    ``order``; only the page is fetched."""
    order = query.order if order is None else order
    whole = offset == 0 and limit < 0  # then pk order is left to the client
    return (yield from objects_flow(ctx, query, order=order, offset=offset, limit=limit, fields=fields,
                                    cascade=cascade, sort=_whole(query, order) if whole else None))


def count_flow(ctx: Context, query: Query) -> Flow[int]:
    return int((yield from query_flow(ctx, "count", query))[0])


def exists_flow(ctx: Context, query: Query) -> Flow[bool]:
    return bool((yield from query_flow(ctx, "exists", query))[0])


def has_flow(ctx: Context, pk: int) -> Flow[bool]:
    return bool((yield from query_flow(ctx, "has", pks=[pk]))[0])


def pks_flow(ctx: Context, query: Query, order: Order | None = None) -> Flow[list[int]]:
    """The pks of the matching objects, in the query's order (or ``order``)."""
    order = query.order if order is None else order
    pks = [int(pk) for pk in (yield from query_flow(ctx, "pks", query, order))[0]]
    if order.field is None:
        pks.sort(reverse=order.descending)
    return pks


def iterate_flow(ctx: Context, query: Query, batch_size: int, cascade: bool = False) -> Flow[None]:
    """Emit the matching objects, in the query's order, ``batch_size`` at a time, so
    memory stays bounded however large the result."""
    if batch_size < 1:
        raise ValueError("batchSize must be at least 1")
    after: int | None = None
    offset = 0
    while True:
        if query.order == PK_ORDER:  # a pk cursor: each batch starts where the last ended
            batch = yield from objects_flow(ctx, query, limit=batch_size, after=after, cascade=cascade)
        else:
            batch = yield from objects_flow(ctx, query, offset=offset, limit=batch_size, cascade=cascade)
        if batch:
            yield Emit(batch)
        if len(batch) < batch_size:
            return
        after = int(batch[-1]._id)  # type: ignore[arg-type]
        offset += len(batch)


def get_objects_flow(ctx: Context, pks: Sequence[int], fields: Sequence[str] | None = None,
                     cascade: bool = False) -> Flow[list[IndexedRedisModel | None]]:
    """The objects with these pks, in order; None where a pk is missing."""
    if not pks:
        return []
    blobs = yield from get_flow(ctx, pks)
    if fields is None and None not in blobs:  # all found, the common case: no gaps to fill
        objs: list[IndexedRedisModel | None] = (yield from instances_flow(ctx.meta, pks, blobs))  # type: ignore[assignment]
        if cascade:
            yield from links_flow(ctx, objs)  # type: ignore[arg-type]
        return objs
    found = [(pk, blob) for pk, blob in zip(pks, blobs, strict=True) if blob is not None]
    built = yield from _build_flow(ctx.meta, [pk for pk, _ in found], tuple(blob for _, blob in found), fields)
    by_pk = iter(built)
    objs = [None if blob is None else next(by_pk) for blob in blobs]
    if cascade:
        yield from links_flow(ctx, [obj for obj in objs if obj is not None])
    return objs


def index_key_flow(ctx: Context, field: Any, value: Any) -> Flow[bytes]:
    """The name of the index set of the objects whose ``field`` holds ``value`` (the
    irNull set for irNull), in the live generation (read from the server)."""
    meta = ctx.meta
    ctx.gen = int((yield Command(("GET", meta.keys.gen))) or 0)
    stored = field.toStorage(meta.to_python(field, value))
    return meta.index_key(meta.keys.generation(ctx.gen), field, stored)


def reload_flow(ctx: Context, obj: IndexedRedisModel, cascade: bool = True) -> Flow[dict[str, tuple[Any, Any]]]:
    """Replace an object's values with the stored ones; returns name -> (old, new) for
    each field that changed.  Raises KeyError if it has no pk or no longer exists.

    With ``cascade``, linked objects held in memory that have unsaved changes are
    reloaded too (each from its own connection).
    """
    meta = type(obj)._meta
    if obj._id is None:
        raise KeyError(f"{meta.name} object was never saved: nothing to reload")
    blob = (yield from get_flow(ctx, (obj._id,)))[0]
    if blob is None:
        raise KeyError(f"{meta.name} with pk {obj._id} no longer exists")
    fresh = (yield from instances_flow(meta, (obj._id,), (blob,)))[0]
    changes = obj.diff(fresh)
    for name in changes:  # unchanged fields keep their values (and linked objects)
        obj.__dict__[name] = fresh.__dict__[name]
    mark_stored(obj, obj._id, fresh._orig)
    if not cascade:
        return changes
    seen = {id(obj)}
    for field in meta.foreign_fields:
        value = obj.__dict__.get(field.name)
        pending = linked_objects_of(value)
        reloaded = False
        while pending:
            linked = pending.pop()
            if id(linked) in seen:
                continue
            seen.add(id(linked))
            if linked._id is not None and linked.hasUnsavedChanges():
                route = ctx.route_of(linked)
                yield from routed(ctx, route, reload_flow(ctx.on(type(linked)._meta, route), linked, False))
                reloaded = True
            pending += linked_objects(linked)
        if reloaded and field.name not in changes:
            changes[field.name] = (value, value)  # the linked object(s) changed
    return changes


def linked_objects_of(value: Any) -> list[IndexedRedisModel]:
    """The objects a link field's value holds in memory."""
    return value.objects() if isinstance(value, (ForeignLink, ForeignLinks)) else []


def reload_each_flow(ctx: Context, objs: Sequence[IndexedRedisModel | None]) -> Flow[list[Any]]:
    """``reload()`` each object (None slots stay None); a missing one gives its KeyError
    instead of stopping the others, as in 6.x."""
    results: list[Any] = []
    for obj in objs:
        if obj is None:
            results.append(None)
            continue
        route = ctx.route_of(obj)
        try:
            results.append((yield from routed(ctx, route, reload_flow(ctx.on(type(obj)._meta, route), obj))))
        except KeyError as exc:
            results.append(exc)
    return results


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
        while wanted:
            routes: dict[int, tuple[Any, list[ModelOptions]]] = {}
            for meta in wanted:
                route = ctx.route_of(meta.model)
                routes.setdefault(id(route), (route, []))[1].append(meta)
            for route, metas in routes.values():
                gens = ctx.router.gens(route)
                sent_to = None if route is ctx.route else route
                calls: list[Request] = [_get_call(meta, gens.get(meta.keys.prefix), "get", list(wanted[meta]),
                                                  sent_to) for meta in metas]
                replies = yield calls
                for meta, reply in zip(metas, replies, strict=True):
                    if reply[0] == STALE_GEN:  # asked again, at the current generation
                        gens.set(meta.keys.prefix, int(reply[1]))
                        continue
                    pks = msgpack.unpackb(reply[1]) if reply[1] else []
                    fetched = (yield from routed(ctx, route, instances_flow(meta, pks, reply[2]))) if pks else []
                    for pk, obj in zip(pks, fetched, strict=True):
                        known[(meta, pk)] = obj
                        level.append(obj)
                        for link in wanted[meta][pk]:
                            link.obj = obj
                    del wanted[meta]
        if not deep:
            return
