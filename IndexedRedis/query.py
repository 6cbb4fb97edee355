"""Lazy, chainable query sets over an immutable query state.

``Model.objects`` is a ``QuerySet``.  ``filter()`` returns a new query set sharing
nothing mutable with the old one; ``filterInline()`` narrows the query set it is
called on.  Nothing touches Redis until a terminal method runs, and each terminal is
one script call (one round trip; ``cascadeFetch=True`` adds one per level of links).
"""

from __future__ import annotations

import random as _random
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from .cache import registry as cache_registry
from .compiler import PK_ORDER, Order, Query, resolve_order
from .dispatch import cached_async, cached_sync, iterate_async, iterate_sync, run_async, run_sync
from .exceptions import InvalidQueryError
from .expiry import SWEEP_BATCH
from .flows import delete_query, read, reset, update
from .flows.check import CHECK_BATCH, Progress, check_flow
from .flows.expiry import sweep_expired_flow
from .flows.stats import stats_flow
from .names import nearest
from .pks import as_pk, lookup_pk
from .q import Q
from .query_helpers import ReadHelpers
from .results import IRQueryableList

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from 3.11; only read by type checkers here

    from .flows.requests import Flow
    from .model import IndexedRedisModel
    from .reports import CheckReport, StatsReport

__all__ = ["Query", "QuerySet", "as_pk", "cacheStats"]

M = TypeVar("M", bound="IndexedRedisModel")
_EVERYTHING = Query()  # immutable: every unfiltered query set shares it
T = TypeVar("T")


class QuerySet(ReadHelpers[M], Generic[M]):
    """The objects of a model matching every filter applied so far."""

    def __init__(self, model: type[M], query: Query | None = None) -> None:
        self.model = model
        self.query = query if query is not None else _EVERYTHING

    # ---- building ------------------------------------------------------------------

    def filter(self, *qs: Q, **filters: Any) -> Self:
        """A new query set narrowed by filters (``field=value``, ``field__<lookup>=value``)
        and ``Q`` objects (``Q(a=1) | Q(b=2)``): all of them must hold."""
        return type(self)(self.model, self.query.narrowed(self.model._meta, filters, qs))

    def filterInline(self, *qs: Q, **filters: Any) -> Self:
        """Narrow this query set in place and return it."""
        self.query = self.query.narrowed(self.model._meta, filters, qs)
        return self

    def exclude(self, *qs: Q, **filters: Any) -> Self:
        """A new query set without the objects for which the filters and ``Q`` objects
        all hold: ``exclude(a=1, b=2)`` keeps those where NOT (a=1 AND b=2)."""
        return type(self)(self.model, self.query.narrowed(self.model._meta, filters, qs, exclude=True))

    def orderBy(self, field: str) -> Self:
        """A new query set ordered by ``field`` (``'-field'``: descending), on the server.

        The field must be an indexed number field, or a text field in LEX_INDEXED_FIELDS;
        ``'_id'`` orders by primary key (the default).  irNull values come last
        (first when descending); ties are ordered by pk.
        """
        return type(self)(self.model, replace(self.query, order=resolve_order(self.model._meta, field)))

    order_by = orderBy

    # ---- running -------------------------------------------------------------------
    #
    # Every terminal builds one flow (``flows/``) and runs it on the sync driver, or,
    # in its ``a``-prefixed twin, on the asyncio one.

    def _run(self, flow: Callable[..., Flow[T]], *args: Any, **kwargs: Any) -> T:
        return run_sync(self.model, lambda ctx: flow(ctx, *args, **kwargs))

    async def _arun(self, flow: Callable[..., Flow[T]], *args: Any, **kwargs: Any) -> T:
        return await run_async(self.model, lambda ctx: flow(ctx, *args, **kwargs))

    def _list(self, objs: Iterable[Any]) -> IRQueryableList[Any]:
        return IRQueryableList(objs, self.model)

    def _checked_fields(self, fields: Iterable[str]) -> list[str]:
        meta = self.model._meta
        names = [str(name) for name in fields]
        for name in names:
            if name not in meta.fields_by_name:
                raise InvalidQueryError(
                    f"{meta.name} has no field {name!r}; its fields are {', '.join(meta.field_names)}."
                    f"{nearest(name, meta.field_names)}")
        return names

    def all(self, cascadeFetch: bool = False) -> IRQueryableList[M]:
        """Every matching object, in the query's order (oldest, lowest pk, first by default)."""
        if not cascadeFetch:
            hit = cached_sync(self.model, query=read.page_key(self.query))
            if hit is not None:
                return self._list(hit)
        return self._list(self._run(read.page_flow, self.query, cascade=cascadeFetch))

    async def aall(self, cascadeFetch: bool = False) -> IRQueryableList[M]:
        """``all``, awaitable."""
        if not cascadeFetch:
            hit = cached_async(self.model, query=read.page_key(self.query))
            if hit is not None:
                return self._list(hit)
        return self._list(await self._arun(read.page_flow, self.query, cascade=cascadeFetch))

    def allByAge(self, cascadeFetch: bool = False) -> IRQueryableList[M]:
        """Every matching object, oldest (lowest pk) first."""
        return self._list(self._run(read.page_flow, self.query, order=PK_ORDER, cascade=cascadeFetch))

    def allOnlyFields(self, fields: Iterable[str], cascadeFetch: bool = False) -> IRQueryableList[M]:
        """The matching objects with only ``fields`` loaded; the others hold their
        defaults and are not written back by ``save()`` unless you change them."""
        names = self._checked_fields(fields)
        return self._list(self._run(read.page_flow, self.query, fields=names, cascade=cascadeFetch))

    async def aallOnlyFields(self, fields: Iterable[str], cascadeFetch: bool = False) -> IRQueryableList[M]:
        """``allOnlyFields``, awaitable."""
        names = self._checked_fields(fields)
        return self._list(await self._arun(read.page_flow, self.query, fields=names, cascade=cascadeFetch))

    def allOnlyIndexedFields(self) -> IRQueryableList[M]:
        """The matching objects with only their indexed fields loaded."""
        return self.allOnlyFields(self.model._meta.indexed_names)

    def count(self) -> int:
        """How many objects match (no object is fetched)."""
        return self._run(read.count_flow, self.query)

    async def acount(self) -> int:
        """``count``, awaitable."""
        return await self._arun(read.count_flow, self.query)

    def getPrimaryKeys(self, sortByAge: bool = False) -> list[int]:
        """The pks of the matching objects, in the query's order (by pk when ``sortByAge``)."""
        return self._run(read.pks_flow, self.query, PK_ORDER if sortByAge else None)

    async def agetPrimaryKeys(self, sortByAge: bool = False) -> list[int]:
        """``getPrimaryKeys``, awaitable."""
        return await self._arun(read.pks_flow, self.query, PK_ORDER if sortByAge else None)

    def _cached_one(self, cached: Any, cascade: bool, order: Order | None = None) -> list[Any] | None:
        """The cached first page of one object (in ``order``: the query's by default),
        looked up with ``cached_sync`` / ``cached_async``; None: run the flow."""
        return None if cascade else cached(self.model, query=read.page_key(self.query, 0, 1, order))

    def first(self, cascadeFetch: bool = False) -> M | None:
        """The first matching object in the query's order (the oldest by default), or None."""
        hit = self._cached_one(cached_sync, cascadeFetch)
        if hit is not None:
            return _first(hit)
        return _first(self._run(read.page_flow, self.query, 0, 1, cascade=cascadeFetch))

    async def afirst(self, cascadeFetch: bool = False) -> M | None:
        """``first``, awaitable."""
        hit = self._cached_one(cached_async, cascadeFetch)
        if hit is not None:
            return _first(hit)
        return _first(await self._arun(read.page_flow, self.query, 0, 1, cascade=cascadeFetch))

    def last(self, cascadeFetch: bool = False) -> M | None:
        """The last matching object in the query's order (the newest by default), or None."""
        backwards = self.query.order.reversed()
        hit = self._cached_one(cached_sync, cascadeFetch, backwards)
        if hit is not None:
            return _first(hit)
        return _first(self._run(read.page_flow, self.query, 0, 1, backwards, cascade=cascadeFetch))

    async def alast(self, cascadeFetch: bool = False) -> M | None:
        """``last``, awaitable."""
        backwards = self.query.order.reversed()
        hit = self._cached_one(cached_async, cascadeFetch, backwards)
        if hit is not None:
            return _first(hit)
        return _first(await self._arun(read.page_flow, self.query, 0, 1, backwards, cascade=cascadeFetch))

    def random(self, cascadeFetch: bool = False) -> M | None:
        """A random matching object, or None."""
        return _first(self._run(read.objects_flow, self.query, "random", rnd=_random.getrandbits(48),
                                cascade=cascadeFetch))

    async def arandom(self, cascadeFetch: bool = False) -> M | None:
        """``random``, awaitable."""
        return _first(await self._arun(read.objects_flow, self.query, "random", rnd=_random.getrandbits(48),
                                       cascade=cascadeFetch))

    def exists(self, pk: Any = None) -> bool:
        """Whether anything matches; with ``pk`` (the 6.x form): whether that pk exists."""
        if pk is not None:
            return self._run(read.has_flow, as_pk(pk, self.model))
        return self._run(read.exists_flow, self.query)

    async def aexists(self, pk: Any = None) -> bool:
        """``exists``, awaitable."""
        if pk is not None:
            return await self._arun(read.has_flow, as_pk(pk, self.model))
        return await self._arun(read.exists_flow, self.query)

    def iterate(self, batchSize: int = 1000, cascadeFetch: bool = False) -> Iterator[M]:
        """Every matching object, in the query's order, fetched ``batchSize`` at a time,
        so client memory stays bounded however large the result."""
        return iterate_sync(self.model, lambda ctx: read.iterate_flow(ctx, self.query, batchSize, cascadeFetch))

    def aiterate(self, batchSize: int = 1000, cascadeFetch: bool = False) -> AsyncIterator[M]:
        """``iterate``, for ``async for``."""
        return iterate_async(self.model, lambda ctx: read.iterate_flow(ctx, self.query, batchSize, cascadeFetch))

    @overload
    def __getitem__(self, index: int) -> M: ...

    @overload
    def __getitem__(self, index: slice) -> IRQueryableList[M]: ...

    def __getitem__(self, index: int | slice) -> Any:
        """``qs[5]`` is the sixth object in order; ``qs[20:40]`` fetches that page only."""
        offset, limit = _page_of(self.model, index)
        found = self._list(self._run(read.page_flow, self.query, offset, limit) if limit else [])
        return found if isinstance(index, slice) else _only(self.model, found, index)

    def delete(self) -> int:
        """Delete every matching object; returns how many were deleted.

        Without filters this empties the model the way ``reset([])`` does.
        """
        return self._run(delete_query.delete_query_flow, self.query)

    async def adelete(self) -> int:
        """``delete``, awaitable."""
        return await self._arun(delete_query.delete_query_flow, self.query)

    def update(self, **values: Any) -> int:
        """Set fields of every matching object, on the server: ``field=value``, or
        ``field=F('other') + 1`` (see ``IndexedRedis.F``); returns how many objects were
        updated.  Every index stays exact.  Atomic per 1000 objects (``UPDATE_BATCH``:
        a larger match is updated in atomic batches, one after the other); each object
        gets exactly the values its stored record gives, even with other writers."""
        return self._run(update.update_flow, self.query, values)

    async def aupdate(self, **values: Any) -> int:
        """``update``, awaitable."""
        return await self._arun(update.update_flow, self.query, values)

    def _pk(self, pk: Any) -> int:
        """A pk to get (see ``pks.lookup_pk``): InvalidQueryError naming the model for a
        pk that is not an int or its text."""
        return lookup_pk(pk, self.model)

    def get(self, pk: Any, cascadeFetch: bool = False) -> M | None:
        """The object with this pk, or None.  Filters do not apply."""
        pks = (self._pk(pk),)
        if not cascadeFetch:
            hit = cached_sync(self.model, pks)
            if hit is not None:
                return hit[0]  # type: ignore[no-any-return]
        return self._run(read.get_objects_flow, pks, cascade=cascadeFetch)[0]  # type: ignore[return-value]

    async def aget(self, pk: Any, cascadeFetch: bool = False) -> M | None:
        """``get``, awaitable."""
        pks = (self._pk(pk),)
        if not cascadeFetch:
            hit = cached_async(self.model, pks)
            if hit is not None:
                return hit[0]  # type: ignore[no-any-return]
        return (await self._arun(read.get_objects_flow, pks, cascade=cascadeFetch))[0]  # type: ignore[return-value]

    def getMultiple(self, pks: Iterable[Any], cascadeFetch: bool = False) -> IRQueryableList[M | None]:
        """The objects with these pks, in the same order; None where a pk is missing."""
        return self._list(self._run(read.get_objects_flow, [self._pk(pk) for pk in pks], cascade=cascadeFetch))

    async def agetMultiple(self, pks: Iterable[Any], cascadeFetch: bool = False) -> IRQueryableList[M | None]:
        """``getMultiple``, awaitable."""
        return self._list(await self._arun(read.get_objects_flow, [self._pk(pk) for pk in pks], cascade=cascadeFetch))

    def getOnlyFields(self, pk: Any, fields: Iterable[str], cascadeFetch: bool = False) -> M | None:
        """The object with this pk with only ``fields`` loaded, or None."""
        return self._run(read.get_objects_flow, [self._pk(pk)], self._checked_fields(fields), cascadeFetch)[0]  # type: ignore[return-value]

    async def agetOnlyFields(self, pk: Any, fields: Iterable[str], cascadeFetch: bool = False) -> M | None:
        """``getOnlyFields``, awaitable."""
        return (await self._arun(read.get_objects_flow, [self._pk(pk)], self._checked_fields(fields),  # type: ignore[return-value]
                                 cascadeFetch))[0]

    def getMultipleOnlyFields(self, pks: Iterable[Any], fields: Iterable[str],
                              cascadeFetch: bool = False) -> IRQueryableList[M | None]:
        """Like ``getMultiple``, with only ``fields`` loaded."""
        return self._list(self._run(read.get_objects_flow, [self._pk(pk) for pk in pks],
                                    self._checked_fields(fields), cascadeFetch))

    async def agetMultipleOnlyFields(self, pks: Iterable[Any], fields: Iterable[str],
                                     cascadeFetch: bool = False) -> IRQueryableList[M | None]:
        """``getMultipleOnlyFields``, awaitable."""
        return self._list(await self._arun(read.get_objects_flow, [self._pk(pk) for pk in pks],
                                           self._checked_fields(fields), cascadeFetch))

    def getOnlyIndexedFields(self, pk: Any) -> M | None:
        return self.getOnlyFields(pk, self.model._meta.indexed_names)

    def getMultipleOnlyIndexedFields(self, pks: Iterable[Any]) -> IRQueryableList[M | None]:
        return self.getMultipleOnlyFields(pks, self.model._meta.indexed_names)

    # ---- client-side cache -----------------------------------------------------------

    def cacheStats(self) -> dict[str, int]:
        """This process's client-side cache counters for the model, summed over servers:
        hits, misses (per object or query looked up), invalidations (entries dropped
        because the server said their data changed), flushes, refused (fetched entries
        not kept: an invalidation for them arrived meanwhile), evictions, bytes, entries
        and budget.  All zero for a model that is not cached."""
        return cache_registry.model_stats(self.model._meta).as_dict()

    # ---- maintenance ---------------------------------------------------------------

    def reindex(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Rebuild the indexes after INDEXED_FIELDS (or a field's type) changed; returns
        how many objects were reindexed.

        Without filters, the model's data is rewritten into a fresh generation (pks
        kept) and switched in atomically, so queries keep answering from the old,
        complete indexes until the new ones are complete; the old generation is then
        freed, including index entries of any former layout.  Writes made while it runs
        are not carried over, so run it while the model is not being written.  With
        filters, the matching objects' index entries are rewritten in place.
        ``progress(done, total)`` is called as batches are written.
        """
        return self._run(reset.reindex_flow, self.query, progress)

    async def areindex(self, progress: Callable[[int, int], None] | None = None) -> int:
        """``reindex``, awaitable."""
        return await self._arun(reset.reindex_flow, self.query, progress)

    def _whole(self, what: str) -> None:
        if not self.query.is_everything:
            raise InvalidQueryError(f"{self.model.__name__}.objects.{what}() covers the whole model; call it on "
                                    f"{self.model.__name__}.objects, not on a filtered query set")

    def check(self, progress: Progress | None = None, batchSize: int = CHECK_BATCH) -> CheckReport:
        """Compare the stored records and indexes both ways, and look at the model's
        bookkeeping (pointers, counters, reset leases, schema tags) and garbage (keys of
        dead or abandoned generations, of former index layouts); changes nothing.

        Runs in bounded steps (``batchSize`` records or 1000 index entries per script
        call), so the server is never stalled.  Returns a ``CheckReport``: ``.ok``,
        ``.found`` (counts by kind), ``.details``, ``.to_dict()``.  ``progress(phase,
        done, total)`` is called after each step.
        """
        self._whole("check")
        return self._run(check_flow, False, batchSize, progress=progress)

    async def acheck(self, progress: Progress | None = None, batchSize: int = CHECK_BATCH) -> CheckReport:
        """``check``, awaitable."""
        self._whole("check")
        return await self._arun(check_flow, False, batchSize, progress=progress)

    def repair(self, progress: Progress | None = None, batchSize: int = CHECK_BATCH) -> CheckReport:
        """``check``, fixing what can be fixed in place as it goes: missing index entries
        are added, stale ones dropped, counters raised, garbage freed (including the
        staging generations of resets whose lease lapsed).  Each batch of fixes is one
        atomic script that skips any fix whose record changed since it was read, so
        concurrent writes are never undone and a query never sees a half-made fix.
        The report's ``repaired`` counts what was fixed, ``remaining`` what was not
        (see ``reports.KINDS`` for what cannot be fixed in place, and what to do)."""
        self._whole("repair")
        return self._run(check_flow, True, batchSize, progress=progress)

    async def arepair(self, progress: Progress | None = None, batchSize: int = CHECK_BATCH) -> CheckReport:
        """``repair``, awaitable."""
        self._whole("repair")
        return await self._arun(check_flow, True, batchSize, progress=progress)

    def sweepExpired(self, batchSize: int = SWEEP_BATCH) -> int:
        """Delete the model's expired objects for real (TTL models; they are already
        absent from every read), ``batchSize`` per atomic script, until none is left;
        returns how many were deleted.  An object saved again meanwhile survives."""
        self._whole("sweepExpired")
        return self._run(sweep_expired_flow, batchSize)

    async def asweepExpired(self, batchSize: int = SWEEP_BATCH) -> int:
        """``sweepExpired``, awaitable."""
        self._whole("sweepExpired")
        return await self._arun(sweep_expired_flow, batchSize)

    def stats(self, progress: Callable[[int], None] | None = None) -> StatsReport:
        """The model's objects, memory by kind of key (MEMORY USAGE of a sample of each
        kind), index cardinalities, generations, schemas and last reset."""
        self._whole("stats")
        return self._run(stats_flow, progress=progress)

    async def astats(self, progress: Callable[[int], None] | None = None) -> StatsReport:
        """``stats``, awaitable."""
        self._whole("stats")
        return await self._arun(stats_flow, progress=progress)

    def compat_convertHashedIndexes(self, fetchAll: bool = True) -> None:
        """Rebuild the indexes after ``hashIndex`` changed on a field: entries of both
        the hashed and the plain form are dropped, and the current form is written."""
        type(self)(self.model).reindex()

    def _get_key_for_index(self, field: Any, value: Any) -> str:
        """The Redis key of the index set holding the objects whose indexed ``field`` (a
        field or its name) has ``value``, as 6.x's helper of that name gave it (a str;
        index bytes that are not UTF-8 are surrogate-escaped).  Reads the live
        generation: one round trip."""
        key = self._run(read.index_key_flow, self._indexed(field), value)
        return key.decode("utf-8", "surrogateescape")

    async def _aget_key_for_index(self, field: Any, value: Any) -> str:
        """``_get_key_for_index``, awaitable."""
        key = await self._arun(read.index_key_flow, self._indexed(field), value)
        return key.decode("utf-8", "surrogateescape")

    def _indexed(self, field: Any) -> Any:
        meta = self.model._meta
        name = str(field)
        if name not in meta.specs:
            raise InvalidQueryError(
                f"{meta.name} has no index on {name!r}; its indexed fields: {', '.join(meta.indexed_names)}."
                f"{nearest(name, meta.indexed_names)}")
        return meta.specs[name].field

    # ---- python protocol -----------------------------------------------------------

    def __iter__(self) -> Iterator[M]:
        return iter(self.all())

    def __aiter__(self) -> AsyncIterator[M]:
        """``async for obj in qs``: the whole result, fetched at once, like ``for``
        (``aiterate(batchSize)`` streams it in batches instead)."""
        return _yield_all(self)

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        parts = [f"{c[0]}:{c[1]}={c[2:]!r}" for c in self.query.conditions]
        parts += [f"where={tree!r}" for tree in self.query.where]
        order = self.query.order
        if order != PK_ORDER:
            parts.append(f"orderBy={'-' if order.descending else ''}{order.field or '_id'}")
        return f"<QuerySet {self.model.__name__} {' '.join(parts) or '(all)'}>"


async def _yield_all(qs: QuerySet[Any]) -> AsyncIterator[Any]:
    for obj in await qs.aall():
        yield obj


def _first(found: list[Any]) -> Any:
    return found[0] if found else None


def _page_of(model: Any, index: int | slice) -> tuple[int, int]:
    """The (offset, limit) of a query set index or slice; limit 0: nothing to fetch."""
    if isinstance(index, slice):
        if index.step not in (None, 1):
            raise ValueError("query set slices take no step")
        start, stop = index.start or 0, index.stop
        if start < 0 or (stop is not None and stop < 0):
            raise ValueError("query set slices cannot be negative; use orderBy('-field') instead")
        if stop is not None and stop <= start:
            return start, 0
        return start, -1 if stop is None else stop - start
    if not isinstance(index, int):
        raise TypeError(f"query set indices are ints or slices, not {type(index).__name__}")
    if index < 0:
        raise ValueError("query set indices cannot be negative; use last() or orderBy('-field')")
    return index, 1


def _only(model: Any, found: list[Any], index: int) -> Any:
    if not found:
        raise IndexError(f"{model.__name__} query set index {index} out of range")
    return found[0]


def cacheStats() -> dict[str, dict[str, int]]:
    """Client-side cache counters of this process, by model name (see ``QuerySet.cacheStats``)."""
    return {name: stats.as_dict() for name, stats in cache_registry.stats().items()}
