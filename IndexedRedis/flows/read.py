"""Reading: gets by pk, queries (one query.lua call each), streaming.  Linked objects
are fetched by ``links.py``, reloads are ``reload.py``'s."""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from .. import scripts
from ..compiler import PK_ORDER, Order, Query, compile_query
from ..exceptions import ConcurrencyError
from ..state import mark_shared
from .common import MAX_ATTEMPTS, call_current, found_pks
from .context import Context
from .expiry import alive_records
from .links import get_call, links_flow
from .requests import CacheRead, CacheStore, Command, Emit, Flow, ScriptCall, Transaction
from .schemas import instances_flow, partial_instances_flow
from .text import current_plans, text_query_flow

if TYPE_CHECKING:
    from ..model import IndexedRedisModel
    from ..options import ModelOptions

__all__ = ["cache_key", "page_key", "get_flow", "query_flow", "objects_flow", "page_flow", "count_flow",
           "exists_flow", "has_flow", "pks_flow", "iterate_flow", "get_objects_flow", "index_key_flow"]

_pk_of = attrgetter("_id")
_EVERYTHING = Query()


def get_flow(ctx: Context, pks: Sequence[int]) -> Flow[list[Any]]:
    """The records of these pks (None where missing): the generation pointer and the
    records are read in one MULTI/EXEC, cheaper than a script for this simplest read."""
    meta = ctx.meta
    for _ in range(MAX_ATTEMPTS):
        gen = ctx.gen
        gk = meta.keys.generation(gen)
        if meta.ttl_ms is None:
            current, records = yield Transaction((("GET", meta.keys.gen), ("HMGET", gk.objs, *pks)))
        else:  # expired objects are absent: their expiry and the server's clock, at the same instant
            current, records, scores, now = yield Transaction((("GET", meta.keys.gen), ("HMGET", gk.objs, *pks),
                                                                ("ZMSCORE", gk.exp, *pks), ("TIME",)))
            records = alive_records(records, scores, now)
        live = int(current or 0)
        if live == gen:
            return list(records)
        ctx.gen = live
    raise ConcurrencyError(f"{meta.name}: the dataset kept being reset during the operation")


def query_flow(ctx: Context, op: str, query: Query = _EVERYTHING, order: Order | None = None, offset: int = 0,
               limit: int = -1, after: int | None = None, rnd: int = 0,
               pks: Sequence[int] = (), extra: tuple[Any, ...] = ()) -> Flow[list[Any]]:
    """Run query.lua (see its header and ``compiler.py``); ``pks`` go with 'get'/'has',
    ``extra`` (the operation's own arguments, see ``compile_query``) with the others."""
    meta = ctx.meta
    order = query.order if order is None else order
    if op in ("get", "has"):
        reply = yield from call_current(ctx, lambda gen: get_call(meta, gen, op, pks))
        return reply[1:]
    if op in ("count", "random", "exists", "aggregate", "distinct"):
        order = PK_ORDER  # the order does not change the answer

    def build(gen: int, plans: Any) -> ScriptCall:
        keys, args = compile_query(meta, meta.keys.generation(gen), gen, op, query.conditions, order,
                                   offset, limit, after, rnd, plans, query.where, extra)
        return ScriptCall(scripts.QUERY, keys, args)

    wanted = None if limit < 0 else offset + limit
    reply = yield from text_query_flow(ctx, query.leaves, order, wanted, build)
    return reply[1:]


def _whole(query: Query, order: Order) -> Order | None:
    """The order the client must sort a whole result in (None: it comes sorted).

    The server leaves a whole pk-ordered result unsorted only when a positive
    condition (or a tree) drove it; otherwise it walked or diffed the pk-ordered ids.
    With trees the client cannot tell, and sorts (a sorted list sorts in linear time).
    """
    if order.field is not None or query.only_negations:
        return None
    return order


def _build_flow(meta: ModelOptions, pks: Sequence[int], blobs: Any,
                fields: Sequence[str] | None) -> Flow[list[IndexedRedisModel]]:
    if fields is None:
        return (yield from instances_flow(meta, pks, blobs))
    return (yield from partial_instances_flow(meta, pks, blobs, fields))


def objects_flow(ctx: Context, query: Query, op: str = "records", order: Order | None = None, offset: int = 0,
                 limit: int = -1, after: int | None = None, rnd: int = 0, fields: Sequence[str] | None = None,
                 cascade: bool = False, sort: Order | None = None,
                 use_cache: bool = True) -> Flow[list[IndexedRedisModel]]:
    """The objects a 'records' / 'random' query finds, in the reply's order, or sorted
    by pk per ``sort`` (a whole result in pk order, which the server leaves to the
    client); only ``fields`` loaded, if given; with ``cascade``, their links fetched.
    A model with a client-side cache answers whole-object 'records' queries from it."""
    if ctx.cached and use_cache and op == "records" and fields is None and not cascade:
        return (yield from _cached_objects_flow(ctx, query, order, offset, limit, after, sort))
    packed_pks, blobs = yield from query_flow(ctx, op, query, order, offset, limit, after, rnd)
    pks = found_pks(packed_pks)
    objs = (yield from _build_flow(ctx.meta, pks, blobs, fields)) if pks else []
    if sort is not None:
        objs.sort(key=_pk_of, reverse=sort.descending)
    if cascade:
        yield from links_flow(ctx, objs)
    return objs


def _cached_objects_flow(ctx: Context, query: Query, order: Order | None, offset: int, limit: int,
                         after: int | None, sort: Order | None) -> Flow[list[IndexedRedisModel]]:
    """``objects_flow`` through the client-side cache: the result (its instances) is
    kept, keyed by the query, and dropped when a key it read, or one of its objects,
    changes."""
    meta = ctx.meta
    order = query.order if order is None else order
    key = cache_key(query, order, offset, limit, after, sort)
    answer = yield CacheRead(meta, ctx.gen, query=key)
    if answer is not None and answer.objects is not None:
        return list(answer.objects)
    packed_pks, blobs = yield from query_flow(ctx, "records", query, order, offset, limit, after)
    pks = found_pks(packed_pks)
    objs = (yield from instances_flow(meta, pks, blobs)) if pks else []
    if sort is not None:
        objs.sort(key=_pk_of, reverse=sort.descending)
    mark_shared(objs)
    if answer is not None:
        gen = ctx.gen  # the one the query script found live
        gk = meta.keys.generation(gen)
        plans = current_plans(ctx, query.leaves, order)
        keys, _ = compile_query(meta, gk, gen, "records", query.conditions, order, offset, limit, after,
                                plans=plans, where=query.where)
        # The keys the script may have read, bar the records (the objects' stamps
        # stand for them) and the schemas: the ids too, unless a positive condition
        # drove a whole result.
        positive = not query.where and any(c[0] != "N" for c in query.conditions)
        read = keys[4:] if positive and offset == 0 and limit < 0 and after is None else [keys[2], *keys[4:]]
        if not plans:  # the layout hash only says which indexes exist: not a dependency
            read = [k for k in read if k != gk.layout]
        start = len(meta.keys.prefix)
        yield CacheStore(meta, gen, answer.token, objs, query=key, deps=[k[start:] for k in read])
    return objs


def cache_key(query: Query, order: Order, offset: int, limit: int, after: int | None, sort: Order | None) -> Any:
    """What a cached query result is kept under: a tuple of plain values (hashed in C,
    unlike the dataclasses)."""
    return (query.conditions, query.where, order.field, order.descending, offset, limit, after,
            None if sort is None else sort.descending)


def page_key(query: Query, offset: int = 0, limit: int = -1, order: Order | None = None) -> Any:
    """``cache_key`` of what ``page_flow`` reads."""
    order = query.order if order is None else order
    whole = offset == 0 and limit < 0
    return cache_key(query, order, offset, limit, None, _whole(query, order) if whole else None)


def page_flow(ctx: Context, query: Query, offset: int = 0, limit: int = -1, order: Order | None = None,
              fields: Sequence[str] | None = None, cascade: bool = False,
              use_cache: bool = True) -> Flow[list[IndexedRedisModel]]:
    """A page of the result (the whole result by default) in the query's order, or in
    ``order``; only the page is fetched."""
    order = query.order if order is None else order
    whole = offset == 0 and limit < 0  # then pk order is left to the client
    return (yield from objects_flow(ctx, query, order=order, offset=offset, limit=limit, fields=fields,
                                    cascade=cascade, sort=_whole(query, order) if whole else None,
                                    use_cache=use_cache))


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
            batch = yield from objects_flow(ctx, query, limit=batch_size, after=after, cascade=cascade,
                                            use_cache=False)
        else:
            batch = yield from objects_flow(ctx, query, offset=offset, limit=batch_size, cascade=cascade,
                                            use_cache=False)
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
    if ctx.cached and fields is None and not cascade:
        return (yield from _cached_get_flow(ctx, pks))
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


def _cached_get_flow(ctx: Context, pks: Sequence[int]) -> Flow[list[IndexedRedisModel | None]]:
    """``get_objects_flow`` through the client-side cache: the pks it lacks are read
    in one MULTI/EXEC, and kept."""
    meta = ctx.meta
    gen = ctx.gen
    answer = yield CacheRead(meta, gen, pks=pks)
    objs: list[IndexedRedisModel | None] = [None] * len(pks) if answer is None else list(answer.objects)
    wanted = [pk for pk, obj in zip(pks, objs) if obj is None]
    if not wanted:
        return objs
    blobs = yield from get_flow(ctx, wanted)
    if ctx.gen != gen and len(wanted) < len(pks):  # a reset meanwhile: no mix of generations
        wanted, objs = list(pks), [None] * len(pks)
        blobs = yield from get_flow(ctx, wanted)
    found = [(pk, blob) for pk, blob in zip(wanted, blobs, strict=True) if blob is not None]
    built = (yield from instances_flow(meta, [pk for pk, _ in found], [blob for _, blob in found])) if found else []
    mark_shared(built)
    if answer is not None and built:
        yield CacheStore(meta, ctx.gen, answer.token, [(obj._id, obj) for obj in built])
    by_pk = {obj._id: obj for obj in built}
    return [obj if obj is not None else by_pk.get(pk) for pk, obj in zip(pks, objs)]
