"""A full drop of a model: every key it has, bookkeeping included
(``destroyModel(full=True)``), found from the model's own bookkeeping, never by SCAN.

1. Resets being written are abandoned (their staging generations go to the dead set;
   such a reset then fails at its next batch, leaving nothing).
2. A reset to an empty dataset switches the live generation to an empty one and frees
   the old one and every dead one in bounded batches (HSCAN of 200 records, an UNLINK
   of their index keys per batch, every index layout a record may have had).
3. One script drops the bookkeeping keys (generation pointer and counter, staging,
   dead, last reset, pk counter, schemas, refresh lease and state, cache flag) if
   nothing was written meanwhile; else steps 1-3 run again.

Each step is atomic, the drop as a whole is not: a reader sees the model's objects
until step 2 switches, an empty model afterwards.
"""

from __future__ import annotations

from .. import scripts
from ..exceptions import ConcurrencyError
from .common import OK, script
from .context import Context
from .requests import Command, Flow, ScriptCall
from .reset import reset_flow

__all__ = ["drop_flow", "DROP_ATTEMPTS"]

DROP_ATTEMPTS = 20  # rounds of steps 1-3 while writers keep adding objects


def drop_flow(ctx: Context) -> Flow[int]:
    """Drop every key of the model; returns how many stored objects were freed."""
    meta, keys = ctx.meta, ctx.meta.keys
    freed = 0
    for _ in range(DROP_ATTEMPTS):
        staging = yield Command(("ZRANGE", keys.staging, 0, -1))
        for raw in staging:  # a few at most: one per reset running now
            yield ScriptCall(scripts.RESET_ABANDON, (keys.staging, keys.dead, keys.gen), (int(raw),))
        freed += (yield from reset_flow(ctx, [], thorough=True))[1]
        gk = keys.generation(ctx.gen)
        fixed = (keys.gen, keys.staging, keys.dead, gk.objs, gk.ids)
        rest = tuple(key for key in keys.bookkeeping if key not in fixed)
        reply = yield from script((meta,), ScriptCall(scripts.DROP_BOOKKEEPING, (*fixed, *rest), (ctx.gen,)))
        if reply[0] == OK:
            ctx.gen = 0
            return freed
    raise ConcurrencyError(f"{meta.name}.destroyModel(full=True): writes kept coming in; the objects were "
                           f"freed {DROP_ATTEMPTS} times, the bookkeeping keys are left")
