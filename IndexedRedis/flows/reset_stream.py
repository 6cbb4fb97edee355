"""Replacing a model's whole dataset from an iterator, in constant client memory.

The objects are taken from the iterator one batch at a time, written into a private
generation, and forgotten; the new generation is switched in at the end, exactly as a
list ``reset`` does it (see ``reset.reset_flow``).  Pks are reserved in chunks as the
stream goes (its length is not known in advance), and what a list reset checks over
the whole list before writing (unique values) is checked by ``reset_load.lua`` on the
server, per batch, against everything the stream wrote so far.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from .. import scripts
from ..entries import load_groups
from ..exceptions import ConcurrencyError, IndexedRedisError, UniqueConstraintError
from ..state import assign_pk, mark_stored
from .common import OK, RESET_BATCH, RESET_LEASE_MS, UNIQUE_CLASH, KeyNumbers, script
from .context import Context
from .requests import Flow, ScriptCall
from .reset import free_dead_flow, pack_dictionaries_flow, sweep_flow
from .save import cascade_targets, save_together_flow

if TYPE_CHECKING:
    from ..keys import GenerationKeys
    from ..model import IndexedRedisModel
    from ..options import ModelOptions

__all__ = ["StreamedReset", "SwitchRefused", "reset_stream_flow", "PK_CHUNK"]

PK_CHUNK = 10 * RESET_BATCH  # pks reserved per round trip; the unused ones of the last chunk are skipped


@dataclass(frozen=True)
class StreamedReset:
    """What a streamed reset did: how many objects it wrote, whether it switched them in
    (``before_switch`` may decline), and how many old records it freed."""

    count: int
    switched: bool
    freed: int


class SwitchRefused(ConcurrencyError):
    """The switch was refused because the lease it was guarded by (``switch_lease``)
    is no longer held by this reset's token: nothing was switched in, and the new
    generation was abandoned."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


def _unique_clash(meta: ModelOptions, gk: GenerationKeys, key: bytes) -> UniqueConstraintError:
    for name in meta.unique_names:
        prefix = gk.index_prefix(name)
        if key.startswith(prefix):
            value = key[len(prefix):].decode("utf-8", "replace")
            return UniqueConstraintError(
                f"{meta.name}.reset: {name} must be unique, and two objects of the stream have the "
                f"value indexed as {value!r}; the stream was abandoned and the old dataset is untouched",
                meta.name, name, value)
    return UniqueConstraintError(f"{meta.name}.reset: a unique value appears twice in the stream "
                                 f"(index key {key!r}); the old dataset is untouched", meta.name)


def _batch_records(ctx: Context, batch: list[IndexedRedisModel], pks: list[int],
                   position: int) -> Flow[list[dict[str, Any]]]:
    """Validate a batch and give its objects their pks; links to new objects outside
    the batch are saved first (as a list reset does for links outside the list)."""
    meta = ctx.meta
    model = meta.model
    for offset, obj in enumerate(batch):
        if not isinstance(obj, model):
            raise TypeError(f"{model.__name__}.reset expects {model.__name__} objects, got "
                            f"{type(obj).__name__} (object #{position + offset} of the stream)")
        if obj._id is not None:
            raise IndexedRedisError(
                f"{meta.name}.reset of an iterator takes new objects only, and object "
                f"#{position + offset} has pk {obj._id}; pass a list to keep pks")
    if len({id(obj) for obj in batch}) != len(batch):
        raise IndexedRedisError(f"{meta.name}.reset: the same object appears twice in the stream")
    for obj, pk in zip(batch, pks, strict=True):
        assign_pk(obj, pk)  # before the records: objects of a batch may link to each other
    if meta.foreign_fields:
        members = {id(obj) for obj in batch}
        outside: dict[int, IndexedRedisModel] = {}
        for obj in batch:
            for target in cascade_targets(obj):
                if id(target) not in members:
                    outside.setdefault(id(target), target)
        if outside:
            yield from save_together_flow(ctx, list(outside.values()))
    return [meta.storage_of(obj) for obj in batch]


def reset_stream_flow(ctx: Context, objs: Iterable[IndexedRedisModel], batch_size: int = RESET_BATCH,
                      progress: Callable[[int, int | None], None] | None = None,
                      on_record: Callable[[bytes], None] | None = None,
                      before_switch: Callable[[int], Flow[bool]] | None = None,
                      between_batches: Callable[[int], Flow[None]] | None = None,
                      switch_lease: tuple[bytes, str] | None = None) -> Flow[StreamedReset]:
    """Replace the model's dataset with the objects ``objs`` yields, holding one batch
    at a time.

    ``on_record(packed)`` sees every record as it is written (to digest the dataset);
    ``before_switch(count)`` is a flow that decides, once everything is written,
    whether to switch the new generation in (False: it is abandoned and freed, and
    the live dataset stays as it was); ``between_batches(count)`` is a flow run after
    each batch (to renew a lease).  ``switch_lease`` (lease key, token): the switch
    script checks, in the same step, that the key still holds the token, and refuses
    to switch otherwise (``SwitchRefused``; the new generation is abandoned).  An
    exception from the iterator (a failed SQL query, a lost connection) abandons the
    new generation the same way, and is raised.
    """
    meta, keys = ctx.meta, ctx.meta.keys
    dead = yield from sweep_flow(ctx)  # what killed resets left is freed first
    if dead:
        yield from free_dead_flow(ctx, dead=dead)
    source: Iterator[IndexedRedisModel] = iter(objs)
    # The first batch is taken before the reset begins: a source may take long to give
    # its first rows (a SQL query), and the lease is renewed only by written batches.
    batch: list[IndexedRedisModel] = list(islice(source, batch_size))
    lease = RESET_LEASE_MS
    begin = ScriptCall(scripts.RESET_BEGIN, (keys.genseq, keys.staging, keys.nextpk, keys.schemas),
                       (0, 0, meta.codec.schema_tag, meta.codec.schema_blob, lease))
    reply = yield from script((meta,), begin)
    gen, started_ms = int(reply[1]), int(reply[3])
    gk = keys.generation(gen)
    count, next_pk, reserved_end = 0, 0, 0
    try:
        while True:
            if count:
                batch = list(islice(source, batch_size))
            if not batch:
                break
            pks: list[int] = []
            while len(pks) < len(batch):
                if next_pk >= reserved_end:
                    reply = yield ScriptCall(scripts.RESERVE_PKS, (keys.nextpk,), (max(PK_CHUNK, batch_size),))
                    next_pk = int(reply[1])
                    reserved_end = next_pk + max(PK_CHUNK, batch_size)
                take = min(len(batch) - len(pks), reserved_end - next_pk)
                pks += range(next_pk, next_pk + take)
                next_pk += take
            records = yield from _batch_records(ctx, batch, pks, count)
            number = KeyNumbers((keys.staging, gk.objs, gk.ids))
            args: list[Any] = [gen, lease, len(pks)]
            for pk, record in zip(pks, records):
                packed = meta.codec.pack(record)
                if on_record is not None:
                    on_record(packed)
                args += (pk, packed)
            args += load_groups(meta, gk, number, pks, records)
            reply = yield from script((meta,), ScriptCall(scripts.RESET_LOAD, number.keys, args))
            if reply[0] == UNIQUE_CLASH:
                raise _unique_clash(meta, gk, number.keys[int(reply[1]) - 1])
            if reply[0] != OK:
                raise ConcurrencyError(
                    f"{meta.name}.reset: this reset was abandoned: its lease lapsed (no batch was written "
                    f"for {lease / 1000:g}s) and another reset or a repair freed what it had written")
            for obj, record, pk in zip(batch, records, pks):
                mark_stored(obj, pk, record)
            count += len(batch)
            batch = []
            if progress is not None:
                progress(count, None)
            if between_batches is not None:
                yield from between_batches(count)
        switch = True if before_switch is None else (yield from before_switch(count))
        if switch:
            yield from pack_dictionaries_flow(ctx, gen, lease)
            switch_keys: tuple[bytes, ...] = (keys.gen, keys.staging, keys.dead, keys.lastreset)
            switch_args: tuple[Any, ...] = (gen, started_ms, count)
            if switch_lease is not None:
                switch_keys, switch_args = switch_keys + (switch_lease[0],), switch_args + (switch_lease[1],)
            reply = yield from script((meta,), ScriptCall(scripts.RESET_SWITCH, switch_keys, switch_args))
            if reply[0] == 2:
                holder = reply[1].decode("utf-8", "replace") if isinstance(reply[1], bytes) else str(reply[1])
                raise SwitchRefused(f"{meta.name}.reset: the switch was refused: the lease it needs is held by "
                                    f"{holder or 'nobody'} now, not by this reset; nothing was switched in", holder)
            if reply[0] != OK:
                raise ConcurrencyError(f"{meta.name}.reset: this reset was abandoned before it finished")
    except Exception:
        for obj in batch:
            assign_pk(obj, None)
        reply = yield ScriptCall(scripts.RESET_ABANDON, (keys.staging, keys.dead, keys.gen), (gen,))
        if reply[0] == OK:
            yield from free_dead_flow(ctx)
        raise
    if not switch:
        reply = yield ScriptCall(scripts.RESET_ABANDON, (keys.staging, keys.dead, keys.gen), (gen,))
        freed = yield from free_dead_flow(ctx)
        return StreamedReset(count, False, freed)
    ctx.gen = gen
    freed = yield from free_dead_flow(ctx)
    return StreamedReset(count, True, freed)
