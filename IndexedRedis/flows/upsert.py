"""``get_or_create`` / ``update_or_create`` / ``in_bulk``: reads and saves composed in
one flow (so the sync and async twins run the same steps).

Race-free where UNIQUE_FIELDS make them so: the save's atomic unique check decides
which of several concurrent creators wins; a loser reads the winner instead.  Without
a unique field among the lookups, two concurrent callers may both create.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..compiler import Query
from ..exceptions import InvalidQueryError, UniqueConstraintError
from .context import Context
from .read import get_objects_flow, page_flow, pks_flow
from .requests import Flow
from .save import save_objects_flow

if TYPE_CHECKING:
    from ..model import IndexedRedisModel

__all__ = ["get_or_create_flow", "in_bulk_flow"]


def _one_flow(ctx: Context, query: Query, what: str) -> Flow[IndexedRedisModel | None]:
    found = yield from page_flow(ctx, query, 0, 2, use_cache=False)
    if len(found) > 1:
        raise InvalidQueryError(f"{ctx.meta.name}.objects.{what}(): more than one object matches "
                                f"({found[0]._id}, {found[1]._id}, ...); the lookups must select one at most")
    return found[0] if found else None


def _update_flow(ctx: Context, obj: IndexedRedisModel, defaults: dict[str, Any]) -> Flow[None]:
    for name, value in defaults.items():
        setattr(obj, name, value)
    yield from save_objects_flow(ctx, [obj])


def get_or_create_flow(ctx: Context, model: type[IndexedRedisModel], query: Query, params: dict[str, Any],
                       defaults: dict[str, Any], update: bool, what: str) -> Flow[tuple[IndexedRedisModel, bool]]:
    """The object ``query`` matches (updated with ``defaults`` if ``update``), or a
    new one made of ``params`` and ``defaults``; and whether it was created."""
    found = yield from _one_flow(ctx, query, what)
    if found is None:
        obj = model(**{**params, **defaults})
        try:
            yield from save_objects_flow(ctx, [obj])
            return obj, True
        except UniqueConstraintError as clash:
            found = yield from _one_flow(ctx, query, what)  # another creator won: take its object
            if found is None:
                raise clash  # the clash is with an object the lookups do not select
    if update:
        yield from _update_flow(ctx, found, defaults)
    return found, False


def in_bulk_flow(ctx: Context, query: Query, pks: Sequence[int] | None) -> Flow[dict[int, IndexedRedisModel]]:
    """``{pk: object}`` of the matching objects (of those among ``pks``, if given)."""
    if pks is None:
        objs = yield from page_flow(ctx, query)
        return {obj._id: obj for obj in objs}  # type: ignore[misc]
    wanted = list(dict.fromkeys(pks))
    if not query.is_everything:
        matching = set((yield from pks_flow(ctx, query)))
        wanted = [pk for pk in wanted if pk in matching]
    found = yield from get_objects_flow(ctx, wanted)
    return {obj._id: obj for obj in found if obj is not None}  # type: ignore[misc]
