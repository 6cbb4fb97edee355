"""``reload()``: an object takes its stored values again; with ``cascadeObjects``, so
do the linked objects it holds in memory, at any depth."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..exceptions import IndexedRedisError
from ..fields.links import ForeignLink, ForeignLinks
from ..state import is_shared, mark_stored
from .context import Context, routed
from .links import fetch_by_pk_flow
from .read import get_flow
from .requests import Flow
from .save import linked_objects
from .schemas import instances_flow

if TYPE_CHECKING:
    from ..model import IndexedRedisModel
    from ..options import ModelOptions

__all__ = ["reload_flow", "reload_each_flow"]

Changes = dict[str, tuple[Any, Any]]


def reload_flow(ctx: Context, obj: IndexedRedisModel, cascade: bool = True) -> Flow[Changes]:
    """Replace an object's values with the stored ones; returns name -> (old, new) for
    each field that changed.  Raises KeyError if it has no pk or no longer exists.

    With ``cascade``, as in 6.x: a link field whose pk did not change and whose linked
    objects are all in memory counts as changed when any object held below it (at any
    depth) differs from its stored copy.  Those objects take their stored values in
    place (holders of them see the update), and the field's old value in the result
    holds copies of its objects as they were.  Links not fetched are not fetched.
    """
    meta = type(obj)._meta
    if obj._id is None:
        raise KeyError(f"{meta.name} object was never saved: nothing to reload")
    if is_shared(obj):
        raise IndexedRedisError(
            f"{meta.name} pk {obj._id} came from the client cache (CLIENT_CACHE), which shares one read-only "
            f"instance among all readers and keeps it current: read it again with {meta.name}.objects.get(pk) "
            f"instead of reloading it")
    blob = (yield from get_flow(ctx, (obj._id,)))[0]
    if blob is None:
        raise KeyError(f"{meta.name} with pk {obj._id} no longer exists")
    fresh = (yield from instances_flow(meta, (obj._id,), (blob,)))[0]
    changes = _take_stored(obj, fresh)
    if cascade:
        yield from _reload_held_flow(ctx, obj, changes)
    return changes


def _take_stored(obj: IndexedRedisModel, fresh: IndexedRedisModel) -> Changes:
    """``obj`` takes the values of ``fresh`` (its copy just read) where they differ;
    unchanged fields keep their values (and linked objects)."""
    changes = obj.diff(fresh)
    if is_shared(obj):  # the client cache's: other readers hold it, and the cache keeps it current
        return changes
    for name in changes:
        obj.__dict__[name] = fresh.__dict__[name]
    mark_stored(obj, obj._id, fresh._orig)
    return changes


def _reload_held_flow(ctx: Context, obj: IndexedRedisModel, changes: Changes) -> Flow[None]:
    """The cascade of ``reload_flow``: one pipelined read per level of held objects."""
    fields: list[tuple[str, ForeignLink | ForeignLinks]] = []
    for field in type(obj)._meta.foreign_fields:
        value = obj.__dict__.get(field.name)
        if (field.name not in changes and isinstance(value, (ForeignLink, ForeignLinks)) and value.isFetched()
                and value.objects()):
            fields.append((field.name, value))
    if not fields:
        return
    fresh_of = yield from _stored_copies_flow(ctx, [held for _, value in fields for held in value.objects()],
                                              {id(obj)})
    stale = {key for key, (held, fresh) in fresh_of.items() if fresh is None or held.diff(fresh)}
    if not stale:
        return
    for name, value in fields:
        if _holds_any(value.objects(), stale):
            changes[name] = (_snapshot(value), value)
    for key in stale:
        held, fresh = fresh_of[key]
        if fresh is not None:
            _take_stored(held, fresh)
    for held, _ in fresh_of.values():  # a deleted object is let go: the link reads as irNull
        for field in type(held)._meta.foreign_fields:
            _let_go(held.__dict__.get(field.name), fresh_of)
    for _, value in fields:
        _let_go(value, fresh_of)


def _stored_copies_flow(ctx: Context, roots: Sequence[IndexedRedisModel], seen: set[int]
                        ) -> Flow[dict[int, tuple[IndexedRedisModel, IndexedRedisModel | None]]]:
    """id(held) -> (held, its stored copy or None if deleted), for ``roots`` and every
    saved object held in memory below them; one round trip per level."""
    found: dict[int, tuple[IndexedRedisModel, IndexedRedisModel | None]] = {}
    level = list(roots)
    while level:
        wanted: dict[ModelOptions, dict[int, list[IndexedRedisModel]]] = {}
        for held in level:
            if id(held) in seen or held._id is None:  # an unsaved object has no stored copy
                continue
            seen.add(id(held))
            wanted.setdefault(type(held)._meta, {}).setdefault(held._id, []).append(held)
        if not wanted:
            return found
        copies = yield from fetch_by_pk_flow(ctx, {meta: list(by_pk) for meta, by_pk in wanted.items()})
        level = []
        for meta, by_pk in wanted.items():
            for pk, holders in by_pk.items():
                for held in holders:
                    found[id(held)] = (held, copies[meta].get(pk))
                    level += linked_objects(held)
    return found


def _holds_any(objs: Sequence[IndexedRedisModel], keys: set[int]) -> bool:
    """Whether any of ``objs``, or an object held below them, is one of ``keys``."""
    seen: set[int] = set()
    pending = list(objs)
    while pending:
        held = pending.pop()
        if id(held) in seen:
            continue
        if id(held) in keys:
            return True
        seen.add(id(held))
        pending += linked_objects(held)
    return False


def _snapshot(value: ForeignLink | ForeignLinks) -> ForeignLink | ForeignLinks:
    """A link value holding copies of its objects as they are now (reload's "old")."""
    def copied(link: ForeignLink) -> ForeignLink:
        held = link.obj
        return ForeignLink(link.current_pk(), None if held is None else held.copy(copyPrimaryKey=True))
    if isinstance(value, ForeignLink):
        return copied(value)
    return ForeignLinks([copied(link) for link in value.links])


def _let_go(value: Any, fresh_of: dict[int, tuple[IndexedRedisModel, IndexedRedisModel | None]]) -> None:
    links = value.links if isinstance(value, ForeignLinks) else [value] if isinstance(value, ForeignLink) else []
    for link in links:
        if link.obj is not None and id(link.obj) in fresh_of and fresh_of[id(link.obj)][1] is None:
            link.pk, link.obj = link.current_pk(), None


def reload_each_flow(ctx: Context, objs: Sequence[IndexedRedisModel | None]) -> Flow[list[Any]]:
    """``reload()`` each object (None slots stay None); a missing one gives its KeyError
    instead of stopping the others, as in 6.x."""
    results: list[Any] = []
    for obj in objs:
        if obj is None:
            results.append(None)
            continue
        route = ctx.route_of(obj)
        try:
            results.append((yield from routed(ctx, route, reload_flow(ctx.on(type(obj)._meta, route), obj))))
        except KeyError as exc:
            results.append(exc)
    return results
