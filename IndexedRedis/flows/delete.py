"""Deleting objects by pk, atomic per batch (what a query matches: ``delete_query.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgpack

from .. import scripts
from ..entries import delete_args
from ..exceptions import ConcurrencyError
from ..expiry import expected
from ..state import mark_unsaved
from .common import MAX_ATTEMPTS, OK, SAVE_BATCH, KeyNumbers, call_current
from .context import Context
from .requests import Flow, ScriptCall
from .schemas import records_flow

if TYPE_CHECKING:
    from ..model import IndexedRedisModel

_packer = msgpack.Packer(use_bin_type=False)  # the scripts' cmsgpack knows no bin type

__all__ = ["delete_flow", "delete_batches_flow", "delete_objects_flow"]


def delete_flow(ctx: Context, targets: Sequence[tuple[int, dict[str, Any]]], sweep: bool = False) -> Flow[int]:
    """Delete (pk, believed stored record) pairs atomically; returns how many existed.
    A ``sweep`` (TTL models) deletes only those still expired when the script runs.

    The script refuses (writing nothing) when a belief is wrong and answers with the
    stored record, and the delete is sent again with it.
    """
    meta = ctx.meta
    items: list[tuple[int, dict[str, Any]]] = list(targets)
    if not items:
        return 0

    def build(gen: int) -> ScriptCall:
        gk = meta.keys.generation(gen)
        number = KeyNumbers((meta.keys.gen, gk.objs, gk.ids, meta.keys.schemas, meta.keys.cache_flag))
        args: list[Any] = [expected(meta, gk, gen, number, sweep), len(meta.indexed), *meta.indexed_names]
        for field in meta.indexed:  # the sorted sets and dictionaries of each field, or 0
            spec = meta.specs[field.name]
            args += (number(gk.score_index(field.name)) if spec.numeric else 0,
                     number(gk.lex_index(field.name)) if spec.lex else 0,
                     number(gk.text_dict(field.name)) if spec.text else 0,
                     number(gk.fold_dict(field.name)) if spec.text else 0)
        args += (number(gk.layout), meta.layout[0], _packer.pack(list(meta.layout[1])))
        for pk, believed in items:
            args += (pk, number(gk.stamp(pk)))
            args += delete_args(meta, gk, number, believed)
        return ScriptCall(scripts.DELETE, number.keys, args)

    for _ in range(MAX_ATTEMPTS):
        reply = yield from call_current(ctx, build)
        if reply[0] == OK:
            return int(reply[1])
        culprit = int(reply[1]) - 1
        items[culprit] = (items[culprit][0], (yield from records_flow(meta, [reply[2]]))[0])
    raise ConcurrencyError(f"{meta.name}: delete kept racing with other writers")


def delete_batches_flow(ctx: Context, targets: Sequence[tuple[int, dict[str, Any]]]) -> Flow[int]:
    """``delete_flow`` for any number of targets, ``SAVE_BATCH`` per atomic step."""
    deleted = 0
    for start in range(0, len(targets), SAVE_BATCH):
        deleted += yield from delete_flow(ctx, targets[start:start + SAVE_BATCH])
    return deleted


def delete_objects_flow(ctx: Context, objs: Sequence[IndexedRedisModel]) -> Flow[int]:
    """Delete these objects; returns how many were stored.  They keep their values and
    become unsaved."""
    stored = [obj for obj in objs if obj._id is not None]
    deleted = yield from delete_batches_flow(ctx, [(obj._id, obj._orig) for obj in stored])  # type: ignore[misc]
    for obj in stored:
        mark_unsaved(obj)
    return deleted
