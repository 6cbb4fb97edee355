"""Lazy, chainable query sets over an immutable query state.

``Model.objects`` is a ``QuerySet``.  ``filter()`` returns a new query set sharing
nothing mutable with the old one; ``filterInline()`` narrows the query set it is
called on.  Nothing touches Redis until a terminal method runs, and each terminal is
one script call (one round trip; ``cascadeFetch=True`` adds one per level of links).
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgpack

from .compiler import PK_ORDER, Order, resolve_order
from .connection import generation_cache
from .drivers.sync import run
from .exceptions import InvalidQueryError
from .lookups import Condition, resolve_filter
from .operations import (
    SAVE_BATCH,
    Context,
    delete_flow,
    fetch_links_flow,
    get_flow,
    learn_schemas_flow,
    query_flow,
    reset_flow,
)
from .options import ModelOptions, UnknownSchemas, nearest
from .results import IRQueryableList

if TYPE_CHECKING:
    from .model import IndexedRedisModel

__all__ = ["Query", "QuerySet", "decode_records", "with_schemas"]

_pk_of = attrgetter("_id")

M = TypeVar("M", bound="IndexedRedisModel")
T = TypeVar("T")


def with_schemas(client: Any, meta: ModelOptions, decode: Callable[..., T], *args: Any) -> T:
    """``decode(*args)``, first learning (one round trip) the field lists of records
    written by other versions of the model if it meets some this process does not know."""
    try:
        return decode(*args)
    except UnknownSchemas as unknown:
        run(client, learn_schemas_flow(meta, unknown.tags))
        return decode(*args)


def decode_records(client: Any, meta: ModelOptions, blobs: bytes | Sequence[bytes]) -> list[dict[str, Any]]:
    """Stored records as dicts of field name -> stored value."""
    return with_schemas(client, meta, meta.records, blobs)


@dataclass(frozen=True, slots=True)
class Query:
    """What a query set selects and in which order (see ``lookups.py`` for conditions)."""

    conditions: tuple[Condition, ...] = ()
    order: Order = PK_ORDER

    def narrowed(self, model: type[IndexedRedisModel], filters: dict[str, Any]) -> Query:
        conditions = list(self.conditions)
        for key, value in filters.items():
            condition = resolve_filter(model._meta, key, value)
            if condition not in conditions:
                conditions.append(condition)
        return replace(self, conditions=tuple(conditions))

    @property
    def is_everything(self) -> bool:
        return not self.conditions


class QuerySet(Generic[M]):
    """The objects of a model matching every filter applied so far."""

    def __init__(self, model: type[M], query: Query | None = None) -> None:
        self.model = model
        self.query = query if query is not None else Query()

    # ---- building ------------------------------------------------------------------

    def filter(self, **filters: Any) -> QuerySet[M]:
        """A new query set narrowed by filters (``field=value``, ``field__<lookup>=value``)."""
        return type(self)(self.model, self.query.narrowed(self.model, filters))

    def filterInline(self, **filters: Any) -> QuerySet[M]:
        """Narrow this query set in place and return it."""
        self.query = self.query.narrowed(self.model, filters)
        return self

    def orderBy(self, field: str) -> QuerySet[M]:
        """A new query set ordered by ``field`` (``'-field'``: descending), on the server.

        The field must be an indexed number field, or a text field in LEX_INDEXED_FIELDS;
        ``'_id'`` orders by primary key (the default).  irNull values come last
        (first when descending); ties are ordered by pk.
        """
        return type(self)(self.model, replace(self.query, order=resolve_order(self.model._meta, field)))

    order_by = orderBy

    # ---- running -------------------------------------------------------------------

    def _context(self) -> tuple[Any, Context]:
        client = self.model._get_client()
        return client, Context(self.model._meta, generation_cache(client))

    def _run(self, op: str, *, order: Order | None = None, offset: int = 0, limit: int = -1,
             after: int | None = None, rnd: int = 0, pks: Sequence[int] = ()) -> list[Any]:
        client, ctx = self._context()
        return run(client, query_flow(ctx, op, self.query.conditions,
                                      self.query.order if order is None else order,
                                      offset, limit, after, rnd, pks))

    def _found(self, op: str, **kwargs: Any) -> tuple[list[int], list[bytes]]:
        """Run a 'records' / 'random' query: the pks found and their records."""
        packed_pks, blobs = self._run(op, **kwargs)
        if not packed_pks:
            return [], []
        return msgpack.unpackb(packed_pks), blobs

    def _build(self, client: Any, pks: Sequence[int], blobs: Sequence[bytes],
               fields: Sequence[str] | None) -> list[Any]:
        """Instances of stored records (with only ``fields`` loaded, if given)."""
        meta = self.model._meta
        if fields is None:
            return with_schemas(client, meta, meta.instances, pks, blobs)
        return [meta.partial_instance(pk, record, fields)
                for pk, record in zip(pks, decode_records(client, meta, blobs), strict=True)]

    def _objects(self, pks: list[int], blobs: list[bytes], cascadeFetch: bool = False,
                 fields: Sequence[str] | None = None, order: Order | None = None) -> IRQueryableList[M]:
        """Objects from a reply, in the reply's order; with ``order`` (a whole result in
        pk order, which the server leaves to the client), sorted by pk."""
        objs = self._build(self.model._get_client(), pks, blobs, fields)
        if order is not None:
            objs.sort(key=_pk_of, reverse=order.descending)
        if cascadeFetch:
            self._cascade(objs)
        return IRQueryableList(objs, self.model)  # type: ignore[arg-type]

    def _cascade(self, objs: Sequence[IndexedRedisModel]) -> None:
        """Fetch every linked object of ``objs``, level by level, one round trip a level."""
        if not objs or not self.model._meta.foreign_fields:
            return
        client, ctx = self._context()
        run(client, fetch_links_flow(ctx, objs, lambda meta: meta.model._get_client() is client))

    def _checked_fields(self, fields: Iterable[str]) -> list[str]:
        meta = self.model._meta
        names = [str(name) for name in fields]
        for name in names:
            if name not in meta.fields_by_name:
                raise InvalidQueryError(
                    f"{meta.name} has no field {name!r}; its fields are {', '.join(meta.field_names)}."
                    f"{nearest(name, meta.field_names)}")
        return names

    def _whole(self, order: Order) -> Order | None:
        """The order the client must sort a whole result in (None: it comes sorted).

        The server leaves a whole pk-ordered result unsorted only when a positive
        condition drove it; otherwise it walked or diffed the pk-ordered ids.
        """
        if order.field is not None or all(c[0] == "N" for c in self.query.conditions):
            return None
        return order

    def all(self, cascadeFetch: bool = False) -> IRQueryableList[M]:
        """Every matching object, in the query's order (oldest, lowest pk, first by default)."""
        pks, blobs = self._found("records")
        return self._objects(pks, blobs, cascadeFetch, order=self._whole(self.query.order))

    def allByAge(self, cascadeFetch: bool = False) -> IRQueryableList[M]:
        """Every matching object, oldest (lowest pk) first."""
        pks, blobs = self._found("records", order=PK_ORDER)
        return self._objects(pks, blobs, cascadeFetch, order=PK_ORDER)

    def allOnlyFields(self, fields: Iterable[str], cascadeFetch: bool = False) -> IRQueryableList[M]:
        """The matching objects with only ``fields`` loaded; the others hold their
        defaults and are not written back by ``save()`` unless you change them."""
        names = self._checked_fields(fields)
        pks, blobs = self._found("records")
        return self._objects(pks, blobs, cascadeFetch, fields=names, order=self._whole(self.query.order))

    def allOnlyIndexedFields(self) -> IRQueryableList[M]:
        """The matching objects with only their indexed fields loaded."""
        return self.allOnlyFields(self.model._meta.indexed_names)

    def count(self) -> int:
        """How many objects match (no object is fetched)."""
        return int(self._run("count")[0])

    def getPrimaryKeys(self, sortByAge: bool = False) -> list[int]:
        """The pks of the matching objects, in the query's order (by pk when ``sortByAge``)."""
        order = PK_ORDER if sortByAge else self.query.order
        pks = [int(pk) for pk in self._run("pks", order=order)[0]]
        if order.field is None:
            pks.sort(reverse=order.descending)
        return pks

    def _page(self, offset: int, limit: int, order: Order | None = None,
              cascadeFetch: bool = False) -> IRQueryableList[M]:
        pks, blobs = self._found("records", order=order, offset=offset, limit=limit)
        whole = offset == 0 and limit < 0  # then pk order is left to the client
        return self._objects(pks, blobs, cascadeFetch,
                             order=self._whole(order or self.query.order) if whole else None)

    def first(self, cascadeFetch: bool = False) -> M | None:
        """The first matching object in the query's order (the oldest by default), or None."""
        found = self._page(0, 1, cascadeFetch=cascadeFetch)
        return found[0] if found else None

    def last(self, cascadeFetch: bool = False) -> M | None:
        """The last matching object in the query's order (the newest by default), or None."""
        found = self._page(0, 1, order=self.query.order.reversed(), cascadeFetch=cascadeFetch)
        return found[0] if found else None

    def random(self, cascadeFetch: bool = False) -> M | None:
        """A random matching object, or None."""
        pks, blobs = self._found("random", rnd=_random.getrandbits(48))
        found = self._objects(pks, blobs, cascadeFetch)
        return found[0] if found else None

    def exists(self, pk: Any = None) -> bool:
        """Whether anything matches; with ``pk`` (the 6.x form): whether that pk exists."""
        if pk is not None:
            return bool(self._run("has", pks=[_as_pk(pk)])[0])
        return bool(self._run("exists")[0])

    def iterate(self, batchSize: int = 1000, cascadeFetch: bool = False) -> Iterator[M]:
        """Every matching object, in the query's order, fetched ``batchSize`` at a time,
        so client memory stays bounded however large the result."""
        if batchSize < 1:
            raise ValueError("batchSize must be at least 1")
        order = self.query.order
        after: int | None = None
        offset = 0
        while True:
            if order == PK_ORDER:  # a pk cursor: each batch starts where the last ended
                pks, blobs = self._found("records", limit=batchSize, after=after)
            else:
                pks, blobs = self._found("records", offset=offset, limit=batchSize)
            batch = self._objects(pks, blobs, cascadeFetch)
            yield from batch
            if len(pks) < batchSize:
                return
            after = int(pks[-1])
            offset += len(pks)

    def __getitem__(self, index: int | slice) -> Any:
        """``qs[5]`` is the sixth object in order; ``qs[20:40]`` fetches that page only."""
        if isinstance(index, slice):
            if index.step not in (None, 1):
                raise ValueError("query set slices take no step")
            start, stop = index.start or 0, index.stop
            if start < 0 or (stop is not None and stop < 0):
                raise ValueError("query set slices cannot be negative; use orderBy('-field') instead")
            if stop is not None and stop <= start:
                return IRQueryableList([], self.model)
            return self._page(start, -1 if stop is None else stop - start)
        if not isinstance(index, int):
            raise TypeError(f"query set indices are ints or slices, not {type(index).__name__}")
        if index < 0:
            raise ValueError("query set indices cannot be negative; use last() or orderBy('-field')")
        found = self._page(index, 1)
        if not found:
            raise IndexError(f"{self.model.__name__} query set index {index} out of range")
        return found[0]

    def delete(self) -> int:
        """Delete every matching object; returns how many were deleted.

        Without filters this empties the model the way ``reset([])`` does.
        """
        client, ctx = self._context()
        if self.query.is_everything:
            return run(client, reset_flow(ctx, []))[1]
        pks, data = self._found("records")
        targets = list(zip(pks, decode_records(client, ctx.meta, data), strict=True))
        deleted = 0
        for start in range(0, len(targets), SAVE_BATCH):
            deleted += run(client, delete_flow(ctx, targets[start:start + SAVE_BATCH]))
        return deleted

    def get(self, pk: Any, cascadeFetch: bool = False) -> M | None:
        """The object with this pk, or None.  Filters do not apply."""
        key = _as_pk(pk)
        client, ctx = self._context()
        blob = run(client, get_flow(ctx, (key,)))[0]
        if blob is None:
            return None
        obj = self._build(client, (key,), (blob,), None)[0]
        if cascadeFetch:
            self._cascade([obj])
        return obj  # type: ignore[return-value]

    def getMultiple(self, pks: Iterable[Any], cascadeFetch: bool = False) -> IRQueryableList[M | None]:
        """The objects with these pks, in the same order; None where a pk is missing."""
        return self._get_many(pks, None, cascadeFetch)

    def _get_many(self, pks: Iterable[Any], fields: Sequence[str] | None,
                  cascadeFetch: bool) -> IRQueryableList[Any]:
        wanted = [_as_pk(pk) for pk in pks]
        if not wanted:
            return IRQueryableList([], self.model)
        client, ctx = self._context()
        blobs = run(client, get_flow(ctx, wanted))
        found = [(pk, blob) for pk, blob in zip(wanted, blobs, strict=True) if blob is not None]
        by_pk = iter(self._build(client, [pk for pk, _ in found], [b for _, b in found], fields))
        objs: list[Any] = [None if blob is None else next(by_pk) for blob in blobs]
        if cascadeFetch:
            self._cascade([o for o in objs if o is not None])
        return IRQueryableList(objs, self.model)

    def getOnlyFields(self, pk: Any, fields: Iterable[str], cascadeFetch: bool = False) -> M | None:
        """The object with this pk with only ``fields`` loaded, or None."""
        return self._get_many([pk], self._checked_fields(fields), cascadeFetch)[0]

    def getMultipleOnlyFields(self, pks: Iterable[Any], fields: Iterable[str],
                              cascadeFetch: bool = False) -> IRQueryableList[M | None]:
        """Like ``getMultiple``, with only ``fields`` loaded."""
        return self._get_many(pks, self._checked_fields(fields), cascadeFetch)

    def getOnlyIndexedFields(self, pk: Any) -> M | None:
        return self.getOnlyFields(pk, self.model._meta.indexed_names)

    def getMultipleOnlyIndexedFields(self, pks: Iterable[Any]) -> IRQueryableList[M | None]:
        return self.getMultipleOnlyFields(pks, self.model._meta.indexed_names)

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
        client, ctx = self._context()
        objs = list(self.all())
        if self.query.is_everything:
            run(client, reset_flow(ctx, objs, thorough=True, progress=progress))
        else:
            self.model.saver.reindex(objs)
            if progress is not None:
                progress(len(objs), len(objs))
        return len(objs)

    def compat_convertHashedIndexes(self, fetchAll: bool = True) -> None:
        """Rebuild the indexes after ``hashIndex`` changed on a field: entries of both
        the hashed and the plain form are dropped, and the current form is written."""
        client, ctx = self._context()
        run(client, reset_flow(ctx, list(self.model.objects.all()), thorough=True))

    # ---- python protocol -----------------------------------------------------------

    def __iter__(self) -> Iterator[M]:
        return iter(self.all())

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        parts = [f"{c[0]}:{c[1]}={c[2:]!r}" for c in self.query.conditions]
        order = self.query.order
        if order != PK_ORDER:
            parts.append(f"orderBy={'-' if order.descending else ''}{order.field or '_id'}")
        return f"<QuerySet {self.model.__name__} {' '.join(parts) or '(all)'}>"


def _as_pk(pk: Any) -> int:
    try:
        value = int(pk)
    except (TypeError, ValueError):
        raise TypeError(f"a primary key is an int (or its text); got {pk!r}") from None
    if isinstance(pk, bool) or value < 0 or (isinstance(pk, float) and pk != value):
        raise TypeError(f"a primary key is a non-negative int; got {pk!r}")
    return value
