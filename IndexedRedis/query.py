"""Lazy, chainable query sets over an immutable query state.

``Model.objects`` is a ``QuerySet``.  ``filter()`` returns a new query set sharing
nothing mutable with the old one; ``filterInline()`` narrows the query set it is
called on.  Nothing touches Redis until a terminal method runs, and each terminal is
one script call (one round trip).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .connection import generation_cache
from .executor import run
from .lookups import resolve_filter
from .operations import SAVE_BATCH, Context, delete_flow, query_flow
from .options import unpack_record

if TYPE_CHECKING:
    from .model import IndexedRedisModel

__all__ = ["Query", "QuerySet"]

M = TypeVar("M", bound="IndexedRedisModel")


@dataclass(frozen=True, slots=True)
class Query:
    """What a query set selects: the index sets to intersect and the ones to exclude."""

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

    def _run(self, op: str, extra: Iterable[Any] = ()) -> list[Any]:
        client = self.model._get_client()
        ctx = Context(self.model._meta, generation_cache(client))
        return run(client, query_flow(ctx, op, self.query.equal, self.query.excluded, tuple(extra)))

    def _objects(self, pks: list[bytes], blobs: list[bytes | None]) -> list[M]:
        make = self.model._meta.instance_from_record
        pairs = sorted(((int(pk), blob) for pk, blob in zip(pks, blobs) if blob is not None),
                       key=itemgetter(0))
        return [make(pk, unpack_record(blob)) for pk, blob in pairs]  # type: ignore[misc]

    def all(self) -> list[M]:
        """Every matching object, oldest (lowest pk) first."""
        pks, blobs = self._run("all")
        return self._objects(pks, blobs)

    def count(self) -> int:
        """How many objects match (no object is fetched)."""
        return int(self._run("count")[0])

    def getPrimaryKeys(self, sortByAge: bool = False) -> list[int]:
        """The pks of the matching objects, ascending."""
        return sorted(int(pk) for pk in self._run("pks")[0])

    def first(self) -> M | None:
        """The oldest (lowest pk) matching object, or None."""
        pks, blobs = self._run("first")
        objs = self._objects(pks, blobs)
        return objs[0] if objs else None

    def last(self) -> M | None:
        """The newest (highest pk) matching object, or None."""
        pks, blobs = self._run("last")
        objs = self._objects(pks, blobs)
        return objs[0] if objs else None

    def delete(self) -> int:
        """Delete every matching object; returns how many were deleted."""
        client = self.model._get_client()
        ctx = Context(self.model._meta, generation_cache(client))
        pks, blobs = run(client, query_flow(ctx, "all", self.query.equal, self.query.excluded))
        targets = [(int(pk), unpack_record(blob)) for pk, blob in zip(pks, blobs) if blob is not None]
        deleted = 0
        for start in range(0, len(targets), SAVE_BATCH):
            deleted += run(client, delete_flow(ctx, targets[start:start + SAVE_BATCH]))
        return deleted

    def get(self, pk: Any) -> M | None:
        """The object with this pk, or None.  Filters do not apply."""
        objs = self.getMultiple([pk])
        return objs[0]

    def getMultiple(self, pks: Iterable[Any]) -> list[M | None]:
        """The objects with these pks, in the same order; None where a pk is missing."""
        wanted = [_as_pk(pk) for pk in pks]
        if not wanted:
            return []
        found_pks, blobs = self._run("get", wanted)
        make = self.model._meta.instance_from_record
        return [None if blob is None else make(pk, unpack_record(blob))  # type: ignore[misc]
                for pk, blob in zip(wanted, blobs)]

    def exists(self, pk: Any) -> bool:
        """Whether an object with this pk exists."""
        return bool(self._run("exists", [_as_pk(pk)])[0])

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
