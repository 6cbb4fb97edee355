"""Expiry (TTL models, see ``expiry.py``): sweeps that delete expired objects for real,
and the expiry filter of gets by pk.

A sweep lists a bounded batch of expired pks with their records (``expired.lua``,
read-only), then deletes them with ``delete.lua`` in sweep mode: one atomic script per
batch that removes each object's record, every index entry and its expiry entry, and
skips any object that is no longer expired (saved again meanwhile).  The delete's
beliefs are the records just read; a record changed in between is read again, as for
any delete.  A process killed between the two calls leaves nothing half-done: the
listing wrote nothing, and each delete is whole or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import scripts
from ..expiry import NO_EXPIRY, SWEEP_BATCH
from .common import call_current
from .context import Context
from .delete import delete_flow
from .requests import Flow, ScriptCall, Transaction
from .schemas import records_flow

__all__ = ["sweep_expired_flow", "expired_batch_flow", "alive_records", "remaining_flow"]


def expired_batch_flow(ctx: Context, limit: int) -> Flow[tuple[list[int], list[Any], int]]:
    """Up to ``limit`` expired pks of the live generation, their stored records (None
    where none: an expiry entry with no record), and how many are expired in all."""
    meta = ctx.meta

    def build(gen: int) -> ScriptCall:
        gk = meta.keys.generation(gen)
        return ScriptCall(scripts.EXPIRED, (meta.keys.gen, gk.objs, gk.exp), (gen, limit))

    reply = yield from call_current(ctx, build)
    return [int(pk) for pk in reply[1]], [blob or None for blob in reply[2]], int(reply[3])


def sweep_expired_flow(ctx: Context, batch_size: int = SWEEP_BATCH, batches: int | None = None) -> Flow[int]:
    """Delete expired objects, ``batch_size`` per atomic script, until none is left (or
    after ``batches`` batches); returns how many were deleted."""
    if ctx.meta.ttl_ms is None:
        return 0
    if batch_size < 1:
        raise ValueError("batchSize must be at least 1")
    deleted = done = 0
    last: list[int] = []
    while batches is None or done < batches:
        pks, blobs, total = yield from expired_batch_flow(ctx, batch_size)
        if not pks or pks == last:  # none left, or none of them could go
            break
        last = pks
        found = [blob for blob in blobs if blob is not None]
        records = iter((yield from records_flow(ctx.meta, found)) if found else [])
        targets = [(pk, {} if blob is None else next(records)) for pk, blob in zip(pks, blobs, strict=True)]
        deleted += yield from delete_flow(ctx, targets, sweep=True)
        done += 1
        if total <= len(pks):
            break
    return deleted


def alive_records(records: Sequence[Any], scores: Sequence[Any], time: Any) -> list[Any]:
    """A MULTI/EXEC get's records (HMGET) with the expired ones made None, by the
    ZMSCORE of the expiry zset and the server's TIME read in the same transaction."""
    seconds, micros = time
    now = int(seconds) * 1000 + int(micros) // 1000
    return [None if score is not None and float(score) <= now else record
            for record, score in zip(records, scores, strict=True)]


def remaining_flow(ctx: Context, pks: Sequence[int], chunk: int = 1000) -> Flow[dict[int, int]]:
    """How long each of these objects (of the live generation ``ctx.gen``) has left,
    in ms (NO_EXPIRY for none; at least 1 for one that expired meanwhile), read with
    the server's clock, ``chunk`` pks per MULTI/EXEC."""
    exp = ctx.meta.keys.generation(ctx.gen).exp
    left: dict[int, int] = {}
    for start in range(0, len(pks), chunk):
        part = list(pks[start:start + chunk])
        scores, (seconds, micros) = yield Transaction((("ZMSCORE", exp, *part), ("TIME",)))
        now = int(seconds) * 1000 + int(micros) // 1000
        for pk, score in zip(part, scores, strict=True):
            left[pk] = NO_EXPIRY if score is None else max(1, int(float(score)) - now)
    return left
