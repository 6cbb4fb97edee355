"""Saving: one atomic script call per save, cascades to linked objects, bulk saves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgpack

from .. import scripts
from ..entries import ABSENT, ABSENT_RECORD, index_group, insert_group, record_digest, same_stored, stored_arg
from ..exceptions import ConcurrencyError, ConflictError, IndexedRedisError, UniqueConstraintError
from ..expiry import KEEP, save_ttl_ms
from ..fields.links import ForeignLink, ForeignLinks
from ..pks import as_pk
from ..state import assign_pk, forget_stored_record, is_shared, mark_stored, read_only_error
from .common import (
    CONFLICT,
    MAX_ATTEMPTS,
    MISSING,
    OK,
    SAVE_BATCH,
    STALE_GEN,
    STALE_VALUES,
    UNIQUE_CLASH,
    KeyNumbers,
    script,
)
from .context import Context, routed
from .expiry import sweep_expired_flow
from .requests import Flow, ScriptCall
from .schemas import records_flow

if TYPE_CHECKING:
    from ..model import IndexedRedisModel
    from ..options import ModelOptions

__all__ = ["save_flow", "reserve_pks_flow", "save_objects_flow", "save_together_flow", "save_batches_flow",
           "reindex_objects_flow", "cascade_targets", "linked_objects"]

_request_packer = msgpack.Packer(use_bin_type=False)  # the scripts' cmsgpack knows no bin type


class _PendingSave:
    """One object on its way to storage: ``record`` is the object's stored form,
    ``changed`` what is written (its changed fields, or the whole record when
    ``full``), ``believed`` the stored record the scripts' index updates start from,
    ``expected`` what save.lua must find stored to write anything (ifUnchanged: the
    digest of the record the object was read from, or ABSENT_RECORD; b'': no check)."""

    __slots__ = ("obj", "meta", "pk", "record", "changed", "believed", "full", "expected")

    def __init__(self, obj: IndexedRedisModel, if_unchanged: bool = False) -> None:
        self.obj = obj
        self.meta = meta = type(obj)._meta
        self.record = meta.storage_of(obj)  # validates every value before any I/O
        self.pk = None if obj._id is None else as_pk(obj._id, obj)  # a chosen pk: in range, before any I/O
        orig: dict[str, Any] = obj._orig
        self.believed = orig
        self.full = self.pk is None or not orig
        self.expected = b""
        if if_unchanged and self.pk is not None:
            self.expected = record_digest(orig, meta.field_names) if orig else ABSENT_RECORD
        if self.full:
            self.changed = self.record
        else:
            self.changed = {name: value for name, value in self.record.items()
                            if name not in orig or not same_stored(orig[name], value)}
            if self.changed and is_shared(obj):  # a value changed in place (a list, say)
                raise read_only_error(obj, next(iter(self.changed)))


def reserve_pks_flow(ctx: Context, objs: Sequence[IndexedRedisModel]) -> Flow[None]:
    """Give every new object among ``objs`` its pk now, in one round trip, so that
    records linking to them can be built before the save."""
    new_by_model: dict[ModelOptions, list[IndexedRedisModel]] = {}
    for obj in objs:
        if obj._id is None:
            new_by_model.setdefault(type(obj)._meta, []).append(obj)
    if not new_by_model:
        return
    metas = list(new_by_model)
    reply = yield from script(metas, ScriptCall(scripts.RESERVE_PKS, [m.keys.nextpk for m in metas],
                                                [len(new_by_model[m]) for m in metas]))
    for meta, first in zip(metas, reply[1:], strict=True):
        for offset, obj in enumerate(new_by_model[meta]):
            assign_pk(obj, int(first) + offset)


def save_flow(ctx: Context, objs: Sequence[IndexedRedisModel], if_unchanged: bool = False,
              ttls: Mapping[int, int] | None = None) -> Flow[list[int]]:
    """Save objects (of one model or several, on ctx's route) in one atomic script
    call; returns their pks in order.  With ``if_unchanged``, every object that has a
    pk is written only if its stored record is still the one it was read from (or,
    for an object never read, still absent); otherwise ConflictError, nothing written.
    ``ttls``: the expiry (``expiry.save_ttl_ms``) of objects of TTL models, by
    ``id(obj)``; the others get their model's default.  When the save's reply says
    expired objects wait, one sweep batch follows."""
    router, route = ctx.router, ctx.route
    gens = router.gens(route)
    pending = [_PendingSave(obj, if_unchanged) for obj in objs]
    seen: dict[tuple[ModelOptions, int], IndexedRedisModel] = {}
    for p in pending:
        if p.pk is not None and seen.setdefault((p.meta, p.pk), p.obj) is not p.obj:
            raise IndexedRedisError(f"{p.meta.name}: two different objects with pk {p.pk} in one save")

    def expiry_of(meta: ModelOptions, obj: IndexedRedisModel) -> int:
        given = None if ttls is None else ttls.get(id(obj))
        return save_ttl_ms(meta, None) if given is None else given

    # An object of a TTL model is written even unchanged when the save sets its expiry.
    active = [p for p in pending if p.full or p.changed or p.expected
              or (p.meta.ttl_ms is not None and expiry_of(p.meta, p.obj) >= 0)]
    metas = list(dict.fromkeys(p.meta for p in active))
    expiring = [meta for meta in metas if meta.ttl_ms is not None]

    model_numbers = {meta: number for number, meta in enumerate(metas, 1)}

    def build() -> ScriptCall:
        number = KeyNumbers(())
        models = []
        gen_keys = {}
        for meta in metas:
            gen = gens.get(meta.keys.prefix)
            gk = gen_keys[meta] = meta.keys.generation(gen)
            models.append((b"%d" % gen, number(meta.keys.gen), number(gk.objs), number(gk.ids),
                           number(meta.keys.nextpk), number(meta.keys.schemas),
                           b"%d" % meta.codec.schema_tag, meta.codec.schema_blob, number(meta.keys.cache_flag),
                           number(gk.layout), meta.layout[0], meta.layout[1],
                           *((number(gk.exp),) if meta.ttl_ms is not None else ())))
        objects = []
        for p in active:
            meta, gk = p.meta, gen_keys[p.meta]
            if p.full:
                payload: Any = meta.codec.pack(p.changed)
                to_index = meta.indexed
            else:
                payload = [(name, *stored_arg(value)) for name, value in p.changed.items()]
                to_index = tuple(f for f in meta.indexed if f.name in p.changed)
            if p.pk is None:
                groups = [insert_group(meta, gk, number, field, p.changed[field.name]) for field in to_index]
            else:
                groups = [index_group(meta, gk, number, field, p.believed.get(field.name, ABSENT),
                                      p.changed[field.name]) for field in to_index]
            item: tuple[Any, ...] = (model_numbers[meta], b"" if p.pk is None else b"%d" % p.pk,
                                     b"F" if p.full else b"P", payload, groups,
                                     0 if p.pk is None else number(gk.stamp(p.pk)), p.expected)
            if meta.ttl_ms is not None:
                item += (expiry_of(meta, p.obj),)
            objects.append(item)
        return ScriptCall(scripts.SAVE, number.keys, (_request_packer.pack((models, objects)),))

    if active:
        for _ in range(MAX_ATTEMPTS):
            reply = yield from script(metas, build())
            status = reply[0]
            if status == OK:
                for p, pk in zip(active, reply[1:len(active) + 1], strict=True):
                    p.pk = int(pk)
                if expiring and int(reply[-1]):
                    for meta in expiring:
                        yield from sweep_expired_flow(ctx.on(meta), batches=1)
                break
            if status == STALE_GEN:
                gens.set(metas[int(reply[2]) - 1].keys.prefix, int(reply[1]))
                continue
            culprit = active[int(reply[1]) - 1]
            if status == CONFLICT:
                raise ConflictError(
                    f"{culprit.meta.name} pk {culprit.pk}: {_conflict_cause(culprit)} (save with "
                    f"ifUnchanged=True), so nothing was saved. Read it again (obj.reload(), or "
                    f"{culprit.meta.name}.objects.get({culprit.pk})) and redo the change",
                    culprit.meta.name, culprit.pk)
            if status == UNIQUE_CLASH:
                name = _text(reply[2])
                value = culprit.obj.__dict__.get(name)
                raise UniqueConstraintError(
                    f"{culprit.meta.name}.{name} must be unique, and {value!r} is already taken "
                    f"by another object; nothing was saved", culprit.meta.name, name, value)
            if status == STALE_VALUES:
                stored = culprit.believed = (yield from records_flow(culprit.meta, [reply[2]]))[0]
                if not culprit.full and culprit.meta.codec.stored_tag(reply[2]) != culprit.meta.codec.schema_tag:
                    # Written by another version of the model: rewrite it whole in our
                    # layout, with the stored values of every field this save leaves
                    # alone (as a partial update would).  The object still believes its
                    # own values stored, as after a partial update.
                    changed = culprit.changed
                    culprit.changed = {name: changed[name] if name in changed else stored.get(name, value)
                                       for name, value in culprit.record.items()}
                    culprit.full = True
            elif status == MISSING:  # deleted meanwhile: write it whole again
                culprit.full, culprit.believed, culprit.changed = True, {}, culprit.record
        else:
            raise ConcurrencyError(f"{', '.join(m.name for m in metas)}: save kept racing with other writers")
    for p in pending:
        mark_stored(p.obj, p.pk, p.record)
    return [p.pk for p in pending if p.pk is not None]


def _conflict_cause(p: _PendingSave) -> str:
    if p.expected == ABSENT_RECORD:
        return "another writer stored an object with this pk, which this object was never read from"
    return "the stored object was changed or deleted by another writer since this object was read or saved"


def _text(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def linked_objects(obj: IndexedRedisModel) -> list[IndexedRedisModel]:
    """The linked objects an instance holds in memory (none are fetched)."""
    found: list[IndexedRedisModel] = []
    for field in type(obj)._meta.foreign_fields:
        value = obj.__dict__.get(field.name)
        if isinstance(value, (ForeignLink, ForeignLinks)):
            found += value.objects()
    return found


def cascade_targets(root: IndexedRedisModel) -> list[IndexedRedisModel]:
    """Linked objects (held in memory, at any depth) that are new or changed."""
    seen = {id(root)}
    found: list[IndexedRedisModel] = []
    pending = linked_objects(root)
    while pending:
        obj = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if obj.hasUnsavedChanges():
            found.append(obj)
        pending += linked_objects(obj)
    return found


def save_together_flow(ctx: Context, objs: Sequence[IndexedRedisModel], if_unchanged: bool = False,
                       ttls: Mapping[int, int] | None = None) -> Flow[None]:
    """Save objects and the linked objects they bring, atomically per *place*: a
    connection, or on a Redis Cluster one hash slot (a model's own, or its KEY_GROUP's).

    The objects of other places are saved first, each place in one atomic script
    call, and last those of the first object's place.  A place whose new objects are
    linked to by objects saved before it (or beside them) first reserves their pks (one
    more call), so that every record names the objects it links to.  Across places the
    cascade is therefore not atomic: a failure part way leaves the linked objects saved
    and the first object's place unchanged.
    """
    places: dict[tuple[int, str], tuple[Any, list[IndexedRedisModel]]] = {}
    place_of: dict[int, tuple[int, str]] = {}
    for obj in objs:
        route = ctx.route_of(obj)
        place = (id(route), type(obj)._meta.keys.hash_tag if ctx.router.is_cluster(route) else "")
        places.setdefault(place, (route, []))[1].append(obj)
        place_of[id(obj)] = place
    order = list(places)
    order = order[1:] + order[:1]
    position = {place: number for number, place in enumerate(order)}
    # A new object needs its pk before its place is saved when an object saved no later
    # (in its own place, or one saved before it) links to it.
    reserve: set[tuple[int, str]] = set()
    for obj in objs:
        for linked in linked_objects(obj):
            target = place_of.get(id(linked))
            if linked._id is None and target is not None and position[place_of[id(obj)]] <= position[target]:
                reserve.add(target)
    for place in order:
        route, group = places[place]
        sub = ctx.on(type(group[0])._meta, route)
        if place in reserve:
            yield from routed(ctx, route, reserve_pks_flow(sub, group))
        yield from routed(ctx, route, save_flow(sub, group, if_unchanged, ttls))


def save_objects_flow(ctx: Context, objs: Sequence[IndexedRedisModel], cascade: bool = True,
                      if_unchanged: bool = False, ttl: Any = None) -> Flow[list[int]]:
    """Save objects in ONE atomic step (with the new or changed objects they link to,
    when ``cascade``); returns their pks in order.  Without ``cascade``, a link to an
    unsaved object is stored as no link.  ``if_unchanged``: see ``save_flow`` (every
    object saved is checked, linked ones too).  ``ttl`` (seconds, 0: none) is the
    expiry of ``objs`` (not of the linked objects), for a model with TTL."""
    objs = list(objs)
    if not objs:
        return []
    ttls = None if ttl is None else {id(obj): save_ttl_ms(type(obj)._meta, ttl) for obj in objs}
    if not cascade or not any(type(obj)._meta.foreign_fields for obj in objs):
        return (yield from save_flow(ctx, objs, if_unchanged, ttls))
    targets = list(objs)
    seen = {id(obj) for obj in objs}
    for obj in objs:
        for linked in cascade_targets(obj):
            if id(linked) not in seen:
                seen.add(id(linked))
                targets.append(linked)
    yield from save_together_flow(ctx, targets, if_unchanged, ttls)
    return [obj._id for obj in objs]  # type: ignore[misc]


def save_batches_flow(ctx: Context, objs: Sequence[IndexedRedisModel], cascade: bool = True,
                      if_unchanged: bool = False) -> Flow[list[int]]:
    """Save many objects, ``SAVE_BATCH`` per atomic step (with what they link to)."""
    objs = list(objs)
    pks: list[int] = []
    for start in range(0, len(objs), SAVE_BATCH):
        pks += yield from save_objects_flow(ctx, objs[start:start + SAVE_BATCH], cascade, if_unchanged)
    return pks


def reindex_objects_flow(ctx: Context, objs: Sequence[IndexedRedisModel]) -> Flow[None]:
    """Rewrite the index entries of these objects for the current INDEXED_FIELDS."""
    for obj in objs:
        forget_stored_record(obj)  # a whole-record save re-derives every index entry
    if ctx.meta.ttl_ms is None:
        yield from save_batches_flow(ctx, objs, cascade=False)
        return
    for start in range(0, len(objs), SAVE_BATCH):  # a TTL model's objects keep their expiry
        batch = objs[start:start + SAVE_BATCH]
        yield from save_flow(ctx, batch, ttls={id(obj): KEEP for obj in batch})
