"""The read helpers of query sets (``values``, aggregates, ``distinct``, ``countBy``,
``get_or_create``, ``update_or_create``, ``in_bulk``), mixed into ``QuerySet``.

Each is one flow (``flows/summary.py``, ``flows/upsert.py``) run on the sync driver,
or, in its ``a``-prefixed twin, on the asyncio one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from .exceptions import InvalidQueryError
from .flows import summary, upsert
from .names import nearest
from .pks import as_pk

if TYPE_CHECKING:
    from .compiler import Query
    from .flows.requests import Flow
    from .model import IndexedRedisModel

__all__ = ["ReadHelpers"]

T = TypeVar("T")
M = TypeVar("M", bound="IndexedRedisModel")


class ReadHelpers(Generic[M]):
    """Mixed into ``QuerySet`` (which gives ``model``, ``query``, ``_run``, ``_arun``)."""

    if TYPE_CHECKING:
        model: Any
        query: Query

        def _run(self, flow: Callable[..., Flow[T]], *args: Any, **kwargs: Any) -> T: ...

        async def _arun(self, flow: Callable[..., Flow[T]], *args: Any, **kwargs: Any) -> T: ...

        def filter(self, *qs: Any, **filters: Any) -> Any: ...

    # ---- plain values ------------------------------------------------------------------

    def _value_names(self, fields: Iterable[str]) -> list[str]:
        meta = self.model._meta
        names = [str(name) for name in fields] or ["_id", *meta.field_names]
        for name in names:
            if name not in meta.fields_by_name and name not in summary.PK_NAMES:
                raise InvalidQueryError(
                    f"{meta.name}.objects.values(): {meta.name} has no field {name!r}; its fields are "
                    f"{', '.join(meta.field_names)} (and '_id' / 'pk' for the primary key)."
                    f"{nearest(name, meta.field_names)}")
        return names

    def values(self, *fields: str) -> list[dict[str, Any]]:
        """The matching objects as dicts of ``fields`` (default: ``_id`` and every
        field), in the query's order; values as ``obj.field`` gives them, and no
        instance is built.  ``'_id'`` / ``'pk'`` name the primary key."""
        names = self._value_names(fields)
        return [dict(zip(names, row)) for row in self._run(summary.rows_flow, self.query, names)]

    async def avalues(self, *fields: str) -> list[dict[str, Any]]:
        """``values``, awaitable."""
        names = self._value_names(fields)
        return [dict(zip(names, row)) for row in await self._arun(summary.rows_flow, self.query, names)]

    def _list_names(self, fields: tuple[str, ...], flat: bool) -> list[str]:
        if flat and len(fields) != 1:
            raise InvalidQueryError(f"{self.model._meta.name}.objects.values_list(flat=True) takes exactly one "
                                    f"field; got {len(fields)}")
        return self._value_names(fields)

    def values_list(self, *fields: str, flat: bool = False) -> list[Any]:
        """Like ``values``, as tuples in the order of ``fields``; with ``flat=True``
        and one field, the values themselves."""
        rows = self._run(summary.rows_flow, self.query, self._list_names(fields, flat))
        return [row[0] for row in rows] if flat else rows

    async def avalues_list(self, *fields: str, flat: bool = False) -> list[Any]:
        """``values_list``, awaitable."""
        rows = await self._arun(summary.rows_flow, self.query, self._list_names(fields, flat))
        return [row[0] for row in rows] if flat else rows

    # ---- aggregates ---------------------------------------------------------------------

    def aggregate(self, **aggregates: Any) -> dict[str, Any]:
        """``{name: value}`` of aggregates over the matching objects, computed on the
        server: ``aggregate(total=Sum('price'), n=Count(), lo=Min('price'))``.  See
        ``IndexedRedis.aggregates`` for what each gives."""
        return self._run(summary.aggregate_flow, self.query, aggregates)

    async def aaggregate(self, **aggregates: Any) -> dict[str, Any]:
        """``aggregate``, awaitable."""
        return await self._arun(summary.aggregate_flow, self.query, aggregates)

    def _indexed_name(self, field: str, what: str) -> str:
        meta = self.model._meta
        name = str(field)
        if name not in meta.specs:
            why = "it is not a field of the model" if name not in meta.fields_by_name else "it is not indexed"
            raise InvalidQueryError(
                f"{meta.name}.objects.{what}({name!r}): {what} needs a field in INDEXED_FIELDS, and {why}; "
                f"indexed fields: {', '.join(meta.indexed_names) or '(none)'}.{nearest(name, meta.indexed_names)}")
        return name

    def countBy(self, field: str) -> dict[Any, int]:
        """``{value: count}``: how many matching objects hold each value of an indexed
        field (a group-by count; irNull is a value like any other)."""
        return self._run(summary.value_counts_flow, self.query, self._indexed_name(field, "countBy"))

    async def acountBy(self, field: str) -> dict[Any, int]:
        """``countBy``, awaitable."""
        return await self._arun(summary.value_counts_flow, self.query, self._indexed_name(field, "countBy"))

    def distinct(self, field: str) -> list[Any]:
        """The distinct values of an indexed field among the matching objects (in no
        particular order)."""
        return list(self._run(summary.value_counts_flow, self.query, self._indexed_name(field, "distinct")))

    async def adistinct(self, field: str) -> list[Any]:
        """``distinct``, awaitable."""
        return list(await self._arun(summary.value_counts_flow, self.query, self._indexed_name(field, "distinct")))

    # ---- get or create -------------------------------------------------------------------

    def _upsert_args(self, defaults: dict[str, Any] | None, kwargs: dict[str, Any],
                     what: str) -> tuple[Any, ...]:
        if defaults is not None and not isinstance(defaults, dict):
            raise TypeError(f"{self.model._meta.name}.objects.{what}(): defaults must be a dict; got {defaults!r}")
        params = {key: value for key, value in kwargs.items() if "__" not in key}
        return self.model, self.filter(**kwargs).query, params, dict(defaults or {})

    def get_or_create(self, defaults: dict[str, Any] | None = None, **kwargs: Any) -> tuple[M, bool]:
        """``(obj, created)``: the object matching ``kwargs`` (filters), or a new one
        saved from the plain ``field=value`` keywords and ``defaults``.  Race-free when
        a UNIQUE_FIELDS field is among the keywords (a creator that loses the save's
        unique check returns the winner's object); otherwise two concurrent callers
        may both create.  Raises InvalidQueryError if several objects match."""
        return cast("tuple[M, bool]", self._run(upsert.get_or_create_flow,
                                                *self._upsert_args(defaults, kwargs, "get_or_create"),
                                                False, "get_or_create"))

    async def aget_or_create(self, defaults: dict[str, Any] | None = None, **kwargs: Any) -> tuple[M, bool]:
        """``get_or_create``, awaitable."""
        return cast("tuple[M, bool]", await self._arun(upsert.get_or_create_flow,
                                                       *self._upsert_args(defaults, kwargs, "get_or_create"),
                                                       False, "get_or_create"))

    def update_or_create(self, defaults: dict[str, Any] | None = None, **kwargs: Any) -> tuple[M, bool]:
        """``(obj, created)``: the object matching ``kwargs`` with ``defaults`` set on
        it and saved, or a new one as ``get_or_create`` makes it.  The create is
        race-free as ``get_or_create``'s; concurrent updates are last-writer-wins per
        field."""
        return cast("tuple[M, bool]", self._run(upsert.get_or_create_flow,
                                                *self._upsert_args(defaults, kwargs, "update_or_create"),
                                                True, "update_or_create"))

    async def aupdate_or_create(self, defaults: dict[str, Any] | None = None, **kwargs: Any) -> tuple[M, bool]:
        """``update_or_create``, awaitable."""
        return cast("tuple[M, bool]", await self._arun(upsert.get_or_create_flow,
                                                       *self._upsert_args(defaults, kwargs, "update_or_create"),
                                                       True, "update_or_create"))

    def in_bulk(self, pks: Iterable[Any] | None = None) -> dict[int, M]:
        """``{pk: obj}`` of the matching objects; with ``pks``, of those among them
        (missing ones left out; on a filtered query set the filters apply too, at the
        cost of one more round trip for the matching pks)."""
        return cast("dict[int, M]", self._run(upsert.in_bulk_flow, self.query, _pks(pks, self.model)))

    async def ain_bulk(self, pks: Iterable[Any] | None = None) -> dict[int, M]:
        """``in_bulk``, awaitable."""
        return cast("dict[int, M]", await self._arun(upsert.in_bulk_flow, self.query, _pks(pks, self.model)))


def _pks(pks: Iterable[Any] | None, model: Any) -> list[int] | None:
    return None if pks is None else [as_pk(pk, model) for pk in pks]
