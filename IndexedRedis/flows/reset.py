"""Replacing a model's whole dataset without stalling the server, and freeing the
generations that are no longer live."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import scripts
from ..compiler import Query
from ..entries import current_index_keys, dictionary_blocks, every_index_key, load_groups, sorted_index_keys
from ..exceptions import ConcurrencyError, IndexedRedisError, UniqueConstraintError
from ..fields import NULL_STORED
from ..pks import as_pk
from ..state import assign_pk, mark_stored
from .common import FREE_BATCH, OK, RESET_BATCH, RESET_LEASE_MS, KeyNumbers, script
from .context import Context
from .expiry import remaining_flow
from .read import page_flow
from .requests import Command, Flow, ScriptCall
from .save import cascade_targets, reindex_objects_flow, save_together_flow
from .schemas import records_flow

if TYPE_CHECKING:
    from ..model import IndexedRedisModel
    from ..options import ModelOptions

__all__ = ["reset_flow", "reset_objects_flow", "sweep_flow", "free_dead_flow", "reindex_flow", "pack_dictionaries_flow"]

#: Dictionary values moved per packing step (1000 short values take well under 1 ms).
PACK_STEP = 1000


def _check_unique(meta: ModelOptions, objs: Sequence[IndexedRedisModel], records: list[dict[str, Any]]) -> None:
    for name in meta.unique_names:
        unique_field = meta.fields_by_name[name]
        seen_values: dict[Any, int] = {}
        for position, record in enumerate(records):
            stored = record[name]
            if stored is NULL_STORED:
                continue
            key = unique_field.indexFromStorage(stored)  # equal index values clash
            if key in seen_values:
                value = objs[position].__dict__.get(name)
                raise UniqueConstraintError(
                    f"{meta.name}.reset: {name} must be unique, and objects #{seen_values[key]} and "
                    f"#{position} of the list both have {value!r}; nothing was written",
                    meta.name, name, value)
            seen_values[key] = position


def reset_flow(ctx: Context, objs: Sequence[IndexedRedisModel], batch_size: int = RESET_BATCH,
               thorough: bool = False, progress: Callable[[int, int], None] | None = None,
               ttls: Mapping[int, int] | None = None) -> Flow[tuple[list[int], int]]:
    """Replace the model's whole dataset: write a new generation in bounded batches,
    switch the generation pointer in O(1), then free the old one in batches.

    Returns the pks of ``objs`` and how many stored objects were freed.  ``thorough``
    frees index entries of any former index layout too (see ``free_dead_flow``).
    ``progress(done, total)`` is called after each batch.  A TTL model's objects get
    its default lifetime, or ``ttls`` (ms from now by pk, 0: none).
    """
    meta, keys = ctx.meta, ctx.meta.keys
    if len({id(obj) for obj in objs}) != len(objs):
        raise IndexedRedisError(f"{meta.name}.reset: the same object appears twice in the list")
    given = [as_pk(obj._id, obj) for obj in objs if obj._id is not None]  # chosen pks: in range
    if len(set(given)) != len(given):
        raise IndexedRedisError(f"{meta.name}.reset: two objects in the list have the same pk")
    records = [meta.storage_of(obj) for obj in objs]  # all validation before any write
    _check_unique(meta, objs, records)

    # What killed resets left (their leases lapsed) is freed first, so that memory is
    # given back before this reset needs its own.
    dead = yield from sweep_flow(ctx)
    if dead:
        yield from free_dead_flow(ctx, thorough, dead)
    lease = RESET_LEASE_MS
    begin = ScriptCall(scripts.RESET_BEGIN, (keys.genseq, keys.staging, keys.nextpk, keys.schemas),
                       (len(objs) - len(given), max(given, default=0), meta.codec.schema_tag,
                        meta.codec.schema_blob, lease))
    reply = yield from script((meta,), begin)
    gen, fresh, started_ms = int(reply[1]), int(reply[2]), int(reply[3])
    pks = []
    for obj in objs:
        if obj._id is None:
            pks.append(fresh)
            fresh += 1
        else:
            pks.append(obj._id)
    gk = keys.generation(gen)
    new_objs = [obj for obj in objs if obj._id is None]
    # Objects of the dataset may link to each other: the new ones get their pks first,
    # so that the records name them (rebuilt a batch at a time, so that the lease is
    # renewed all along).
    relink = bool(meta.foreign_fields and new_objs)
    if relink:
        for obj, pk in zip(objs, pks, strict=True):
            assign_pk(obj, pk)
    # The whole dataset is here: its dictionaries go in already packed, a few blocks a
    # batch (a reset that streams its objects packs them on the server instead).
    blocks = dictionary_blocks(meta, records)
    batches = max(1, -(-len(objs) // batch_size))
    per_batch = {name: -(-len(packed) // batches) for name, packed in blocks.items()}
    try:
        for start in range(0, len(objs), batch_size):
            stop = start + batch_size
            if relink:
                records[start:stop] = [meta.storage_of(obj) for obj in objs[start:stop]]
            number = KeyNumbers((keys.staging, gk.objs, gk.ids))
            batch_pks, batch_records = pks[start:stop], records[start:stop]
            args: list[Any] = [gen, lease, len(batch_pks)]
            for pk, record in zip(batch_pks, batch_records):
                args += (pk, meta.codec.pack(record))
            part = start // batch_size
            share = {name: packed[part * per_batch[name]:(part + 1) * per_batch[name]]
                     for name, packed in blocks.items()}
            args += load_groups(meta, gk, number, batch_pks, batch_records, ttls, share)
            reply = yield from script((meta,), ScriptCall(scripts.RESET_LOAD, number.keys, args))
            if reply[0] != OK:
                raise ConcurrencyError(
                    f"{meta.name}.reset: this reset was abandoned: its lease lapsed (no batch was written "
                    f"for {lease / 1000:g}s) and another reset or a repair freed what it had written")
            if progress is not None:
                progress(min(stop, len(objs)), len(objs))
        reply = yield from script((meta,), ScriptCall(
            scripts.RESET_SWITCH, (keys.gen, keys.staging, keys.dead, keys.lastreset),
            (gen, started_ms, len(objs))))
        if reply[0] != OK:
            raise ConcurrencyError(f"{meta.name}.reset: this reset was abandoned before it finished (its lease "
                                   f"lapsed and another reset or a repair freed its generation)")
    except Exception:
        for obj in new_objs:
            assign_pk(obj, None)
        reply = yield ScriptCall(scripts.RESET_ABANDON, (keys.staging, keys.dead, keys.gen), (gen,))
        if reply[0] == OK:
            yield from free_dead_flow(ctx, thorough)  # what this reset wrote, and other leftovers
        raise
    ctx.gen = gen
    for obj, record, pk in zip(objs, records, pks):
        mark_stored(obj, pk, record)
    freed = yield from free_dead_flow(ctx, thorough)
    return pks, freed


def pack_dictionaries_flow(ctx: Context, gen: int, lease: int) -> Flow[None]:
    """Pack the text dictionaries of a reset's staging generation into blocks, in
    bounded steps, before its switch (see ``scripts/textindex.lua``: a skiplist node per
    block of values instead of one per value)."""
    meta = ctx.meta
    gk = meta.keys.generation(gen)
    pairs = [key for f in meta.indexed if meta.specs[f.name].text
             for key in (gk.text_load(f.name), gk.text_dict(f.name))]
    waiting = 1 if pairs else 0
    while waiting:
        reply = yield from script((meta,), ScriptCall(scripts.DICT_PACK, (meta.keys.staging, *pairs),
                                                      (gen, lease, PACK_STEP)))
        if reply[0] != OK:
            raise ConcurrencyError(f"{meta.name}.reset: this reset was abandoned before it finished (its "
                                   f"lease lapsed and another reset or a repair freed its generation)")
        waiting = int(reply[1])


def reset_objects_flow(ctx: Context, objs: Sequence[IndexedRedisModel], thorough: bool = False,
                       progress: Callable[[int, int], None] | None = None) -> Flow[list[int]]:
    """``reset_flow``, after saving the new or changed objects the dataset links to
    from outside it (so that its records can name them)."""
    model = ctx.meta.model
    for obj in objs:
        if not isinstance(obj, model):
            raise TypeError(f"{model.__name__}.reset expects {model.__name__} objects, got {type(obj).__name__}")
    if ctx.meta.foreign_fields:
        members = {id(obj) for obj in objs}
        linked: dict[int, IndexedRedisModel] = {}
        for obj in objs:
            for target in cascade_targets(obj):
                if id(target) not in members:
                    linked.setdefault(id(target), target)
        if linked:
            yield from save_together_flow(ctx, list(linked.values()))
    return (yield from reset_flow(ctx, objs, thorough=thorough, progress=progress))[0]


def sweep_flow(ctx: Context) -> Flow[list[int]]:
    """Hand the staging generations whose lease lapsed to the dead set; returns the
    generations waiting there to be freed."""
    keys = ctx.meta.keys
    reply = yield ScriptCall(scripts.RESET_SWEEP, (keys.staging, keys.dead, keys.gen), ())
    return sorted(int(g) for g in reply[2])


def free_dead_flow(ctx: Context, thorough: bool = False, dead: Sequence[int] | None = None) -> Flow[int]:
    """Free every generation in the dead set (or those of ``dead``, read from it just
    before), a bounded batch per command; returns how many records were freed.

    Only generations that were never, or are no longer, live enter the dead set (the
    scripts that add them check the pointer), so nothing here can touch live data.
    The index keys to drop are derived from the records with the current model; with
    ``thorough``, every layout an index may have had is covered as well (any field in
    the record, hashed or not, or indexed as raw text), for use after INDEXED_FIELDS,
    ``hashIndex`` or a field's type changed.
    """
    meta, keys = ctx.meta, ctx.meta.keys
    if dead is None:
        dead = sorted(int(g) for g in (yield Command(("SMEMBERS", keys.dead))))
    freed = 0
    for raw_gen in dead:
        gk = keys.generation(raw_gen)
        cursor: Any = 0
        while True:
            cursor, found = yield Command(("HSCAN", gk.objs, cursor, "COUNT", FREE_BATCH))
            blobs = found.values() if isinstance(found, dict) else found[1::2]
            records = yield from records_flow(meta, list(blobs))
            freed += len(records)
            if thorough:
                doomed: set[bytes] = set()
                for record in records:
                    doomed |= every_index_key(meta, gk, record)
            else:
                doomed = current_index_keys(meta, gk, records)
            if doomed:
                yield Command(("UNLINK", *doomed))
            if int(cursor) == 0:
                break
        yield ScriptCall(scripts.FREE_DONE, (keys.dead, gk.objs, gk.ids, *sorted_index_keys(meta, gk, thorough)),
                         (raw_gen,))
    return freed


def reindex_flow(ctx: Context, query: Query,
                 progress: Callable[[int, int], None] | None = None) -> Flow[int]:
    """Rebuild the indexes of what ``query`` matches; returns how many objects.

    Everything: an atomic rewrite into a fresh generation that also frees index
    entries of any former layout.  A filtered query: the objects' entries are
    rewritten in place.
    """
    objs = yield from page_flow(ctx, query, use_cache=False)  # instances of its own: they are rewritten
    if query.is_everything:
        ttls = None
        if ctx.meta.ttl_ms is not None:
            ttls = yield from remaining_flow(ctx, [obj._id for obj in objs if obj._id is not None])
        yield from reset_flow(ctx, objs, thorough=True, progress=progress, ttls=ttls)  # expiries kept
    else:
        yield from reindex_objects_flow(ctx, objs)
        if progress is not None:
            progress(len(objs), len(objs))
    return len(objs)
