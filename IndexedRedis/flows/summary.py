"""Plain data from a query, computed on the server in one query.lua call each:
``values`` / ``values_list`` (no instances built), aggregates, distinct values and
per-value counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgpack

from ..aggregates import check_aggregates
from ..compiler import Query
from ..fields import irNull
from .common import found_pks
from .context import Context
from .read import _whole, query_flow
from .requests import Flow
from .schemas import records_flow

if TYPE_CHECKING:
    from ..options import ModelOptions

__all__ = ["PK_NAMES", "rows_flow", "aggregate_flow", "value_counts_flow"]

#: Names that stand for the primary key in ``values()``.
PK_NAMES = ("_id", "pk")


def _decoders(meta: ModelOptions, names: Sequence[str]) -> list[tuple[str, Any, Any]]:
    by_name = {name: (name, decode, default) for name, decode, default in meta.builder.decoders}
    return [by_name[name] for name in names]


def _decoded(record: dict[str, Any], name: str, decode: Any, default: Any) -> Any:
    """A stored value as ``obj.<name>`` gives it (the default for a field that an
    older record lacks)."""
    stored = record.get(name, _ABSENT)
    if stored is _ABSENT:
        return default() if callable(default) else default
    if decode is None:
        return irNull if stored is False else stored
    return decode(stored)


_ABSENT = object()


def rows_flow(ctx: Context, query: Query, names: Sequence[str]) -> Flow[list[tuple[Any, ...]]]:
    """The values of ``names`` (fields, or ``_id`` / ``pk``) of every matching object,
    one tuple per object, in the query's order."""
    meta = ctx.meta
    packed_pks, blobs = yield from query_flow(ctx, "records", query)
    if not packed_pks:
        return []
    pks = found_pks(packed_pks)
    records = yield from records_flow(meta, blobs)
    order = query.order
    pairs = list(zip(pks, records, strict=True))
    if _whole(query, order) is not None:
        pairs.sort(key=lambda pair: pair[0], reverse=order.descending)
    plan = [None if name in PK_NAMES else _decoders(meta, [name])[0] for name in names]
    return [tuple(pk if step is None else _decoded(record, *step) for step in plan) for pk, record in pairs]


def aggregate_flow(ctx: Context, query: Query, named: dict[str, Any]) -> Flow[dict[str, Any]]:
    """``{label: value}`` of the aggregates, over the matching objects."""
    meta = ctx.meta
    fields = check_aggregates(meta, named)
    extra: list[Any] = [len(fields)]
    for name in fields:
        extra += (("score", name), name)
    reply = yield from query_flow(ctx, "aggregate", query, extra=tuple(extra))
    total = int(reply[0])
    by_field = {name: reply[1 + 4 * i:5 + 4 * i] for i, name in enumerate(fields)}
    out = {}
    for label, agg in named.items():
        n, sum_text, lo, hi = by_field.get(agg.field, (0, b"0", None, None))
        out[label] = agg.result(meta, total, int(n), sum_text, lo, hi)
    return out


def value_counts_flow(ctx: Context, query: Query, name: str) -> Flow[dict[Any, int]]:
    """``{value: how many matching objects hold it}`` for one field, values as
    ``obj.<name>`` gives them, in the order the server met them."""
    meta = ctx.meta
    reply = yield from query_flow(ctx, "distinct", query, extra=(name,))
    flat = msgpack.unpackb(reply[0], raw=False, unicode_errors="surrogateescape")
    if not isinstance(flat, list):  # an empty Lua table packs as a map
        return {}
    _, decode, default = _decoders(meta, [name])[0]
    counts: dict[Any, int] = {}
    for i in range(0, len(flat), 3):
        kind, stored, count = flat[i:i + 3]
        value = _decoded({} if kind == "a" else {name: stored}, name, decode, default)
        counts[value] = counts.get(value, 0) + int(count)
    return counts
