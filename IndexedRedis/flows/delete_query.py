"""Deleting what a query matches (apart from ``delete.py``, which saves and sweeps use,
so that it needs no reset: no import cycle)."""

from __future__ import annotations

from ..compiler import Query
from .common import found_pks
from .context import Context
from .delete import delete_batches_flow
from .read import query_flow
from .requests import Flow
from .reset import reset_flow
from .schemas import records_flow

__all__ = ["delete_query_flow"]


def delete_query_flow(ctx: Context, query: Query) -> Flow[int]:
    """Delete what a query matches; returns how many.  Everything goes the way
    ``reset([])`` goes (bounded batches, never stalling the server)."""
    if query.is_everything:
        return (yield from reset_flow(ctx, []))[1]
    packed_pks, blobs = yield from query_flow(ctx, "records", query)
    if not packed_pks:
        return 0
    records = yield from records_flow(ctx.meta, blobs)
    return (yield from delete_batches_flow(ctx, list(zip(found_pks(packed_pks), records, strict=True))))
