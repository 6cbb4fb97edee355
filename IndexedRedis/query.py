"""Lazy, chainable query sets over an immutable query state.

``Model.objects`` is a ``QuerySet``.  ``filter()`` returns a new query set sharing
nothing mutable with the old one; ``filterInline()`` narrows the query set it is
called on.  Nothing touches Redis until a terminal method runs, and each terminal is
one script call (one round trip; ``cascadeFetch=True`` adds one per level of links).
"""

from __future__ import annotations

import random as _random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .connection import generation_cache
from .exceptions import InvalidQueryError
from .executor import run
from .lookups import resolve_filter
from .operations import SAVE_BATCH, Context, delete_flow, fetch_links_flow, query_flow, reset_flow
from .options import nearest, unpack_record
from .results import IRQueryableList

if TYPE_CHECKING:
    from .model import IndexedRedisModel

__all__ = ["Query", "QuerySet"]

M = TypeVar("M", bound="IndexedRedisModel")


@dataclass(frozen=True, slots=True)
class Query:
    """What a query set selects: the index sets to intersect and the ones to exclude
    (an index value of None stands for the irNull set)."""

    equal: tuple[tuple[str, bytes | None], ...] = ()
    excluded: tuple[tuple[str, bytes | None], ...] = ()

    def narrowed(self, model: type[IndexedRedisModel], filters: dict[str, Any]) -> Query:
        equal, excluded = list(self.equal), list(self.excluded)
        for key, value in filters.items():
            kind, name, index_value = resolve_filter(model._meta, key, value)
            target = equal if kind == "equal" else excluded
            if (name, index_value) not in target:
                target.append((name, index_value))
        return replace(self, equal=tuple(equal), excluded=tuple(excluded))

    @property
    def is_everything(self) -> bool:
        return not self.equal and not self.excluded


class QuerySet(Generic[M]):
    """The objects of a model matching every filter applied so far."""

    def __init__(self, model: type[M], query: Query | None = None) -> None:
        self.model = model
        self.query = query if query is not None else Query()

    # ---- building ------------------------------------------------------------------

    def filter(self, **filters: Any) -> QuerySet[M]:
        """A new query set narrowed by ``field=value`` / ``field__ne=value`` filters."""
        return type(self)(self.model, self.query.narrowed(self.model, filters))

    def filterInline(self, **filters: Any) -> QuerySet[M]:
        """Narrow this query set in place and return it."""
        self.query = self.query.narrowed(self.model, filters)
        return self

    # ---- running -------------------------------------------------------------------

    def _context(self) -> tuple[Any, Context]:
        client = self.model._get_client()
        return client, Context(self.model._meta, generation_cache(client))

    def _run(self, op: str, extra: Iterable[Any] = ()) -> list[Any]:
        client, ctx = self._context()
        return run(client, query_flow(ctx, op, self.query.equal, self.query.excluded, tuple(extra)))

    def _objects(self, pks: Sequence[Any], blobs: Sequence[bytes | None], cascadeFetch: bool = False,
                 fields: Sequence[str] | None = None) -> IRQueryableList[M]:
        meta = self.model._meta
        pairs = sorted(((int(pk), blob) for pk, blob in zip(pks, blobs, strict=True) if blob is not None),
                       key=itemgetter(0))
        if fields is None:
            objs = [meta.instance_from_record(pk, unpack_record(blob)) for pk, blob in pairs]
        else:
            objs = [meta.partial_instance(pk, unpack_record(blob), fields) for pk, blob in pairs]
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

    def all(self, cascadeFetch: bool = False) -> IRQueryableList[M]:
        """Every matching object, oldest (lowest pk) first."""
        pks, blobs = self._run("all")
        return self._objects(pks, blobs, cascadeFetch)

    def allByAge(self, cascadeFetch: bool = False) -> IRQueryableList[M]:
        """Every matching object, oldest (lowest pk) first (``all`` orders so as well)."""
        return self.all(cascadeFetch=cascadeFetch)

    def allOnlyFields(self, fields: Iterable[str], cascadeFetch: bool = False) -> IRQueryableList[M]:
        """The matching objects with only ``fields`` loaded; the others hold their
        defaults and are not written back by ``save()`` unless you change them."""
        names = self._checked_fields(fields)
        pks, blobs = self._run("all")
        return self._objects(pks, blobs, cascadeFetch, fields=names)

    def allOnlyIndexedFields(self) -> IRQueryableList[M]:
        """The matching objects with only their indexed fields loaded."""
        return self.allOnlyFields(self.model._meta.indexed_names)

    def count(self) -> int:
        """How many objects match (no object is fetched)."""
        return int(self._run("count")[0])

    def getPrimaryKeys(self, sortByAge: bool = False) -> list[int]:
        """The pks of the matching objects, ascending (oldest first) whatever ``sortByAge``."""
        return sorted(int(pk) for pk in self._run("pks")[0])

    def _one(self, op: str, extra: Iterable[Any] = (), cascadeFetch: bool = False) -> M | None:
        pks, blobs = self._run(op, extra)
        objs = self._objects(pks, blobs, cascadeFetch)
        return objs[0] if objs else None

    def first(self, cascadeFetch: bool = False) -> M | None:
        """The oldest (lowest pk) matching object, or None."""
        return self._one("first", cascadeFetch=cascadeFetch)

    def last(self, cascadeFetch: bool = False) -> M | None:
        """The newest (highest pk) matching object, or None."""
        return self._one("last", cascadeFetch=cascadeFetch)

    def random(self, cascadeFetch: bool = False) -> M | None:
        """A random matching object, or None."""
        return self._one("random", (_random.getrandbits(48),), cascadeFetch)

    def delete(self) -> int:
        """Delete every matching object; returns how many were deleted.

        Without filters this empties the model the way ``reset([])`` does.
        """
        client, ctx = self._context()
        if self.query.is_everything:
            return run(client, reset_flow(ctx, []))[1]
        pks, blobs = run(client, query_flow(ctx, "all", self.query.equal, self.query.excluded))
        targets = [(int(pk), unpack_record(blob)) for pk, blob in zip(pks, blobs, strict=True)
                   if blob is not None]
        deleted = 0
        for start in range(0, len(targets), SAVE_BATCH):
            deleted += run(client, delete_flow(ctx, targets[start:start + SAVE_BATCH]))
        return deleted

    def get(self, pk: Any, cascadeFetch: bool = False) -> M | None:
        """The object with this pk, or None.  Filters do not apply."""
        return self.getMultiple([pk], cascadeFetch=cascadeFetch)[0]

    def getMultiple(self, pks: Iterable[Any], cascadeFetch: bool = False) -> IRQueryableList[M | None]:
        """The objects with these pks, in the same order; None where a pk is missing."""
        return self._get_many(pks, None, cascadeFetch)

    def _get_many(self, pks: Iterable[Any], fields: Sequence[str] | None,
                  cascadeFetch: bool) -> IRQueryableList[Any]:
        wanted = [_as_pk(pk) for pk in pks]
        if not wanted:
            return IRQueryableList([], self.model)
        _, blobs = self._run("get", wanted)
        meta = self.model._meta
        objs: list[Any] = []
        for pk, blob in zip(wanted, blobs, strict=True):
            if blob is None:
                objs.append(None)
            elif fields is None:
                objs.append(meta.instance_from_record(pk, unpack_record(blob)))
            else:
                objs.append(meta.partial_instance(pk, unpack_record(blob), fields))
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

    def exists(self, pk: Any) -> bool:
        """Whether an object with this pk exists."""
        return bool(self._run("exists", [_as_pk(pk)])[0])

    # ---- maintenance ---------------------------------------------------------------

    def reindex(self) -> None:
        """Rebuild the indexes after INDEXED_FIELDS (or a field's type) changed.

        Without filters, the model's data is rewritten into a fresh generation (pks
        kept) and switched in atomically, so queries never see a half-built index; the
        old generation is then freed, including index entries of any former layout.
        With filters, the matching objects' index entries are rewritten in place.
        """
        client, ctx = self._context()
        if self.query.is_everything:
            objs = self.all()
            run(client, reset_flow(ctx, list(objs), thorough=True))
        else:
            self.model.saver.reindex(self.all())

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
        parts = [f"{name}={value!r}" for name, value in self.query.equal]
        parts += [f"{name}__ne={value!r}" for name, value in self.query.excluded]
        return f"<QuerySet {self.model.__name__} {' '.join(parts) or '(all)'}>"


def _as_pk(pk: Any) -> int:
    try:
        value = int(pk)
    except (TypeError, ValueError):
        raise TypeError(f"a primary key is an int (or its text); got {pk!r}") from None
    if isinstance(pk, bool) or value < 0 or (isinstance(pk, float) and pk != value):
        raise TypeError(f"a primary key is a non-negative int; got {pk!r}")
    return value
