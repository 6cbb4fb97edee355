"""``check`` and ``repair``: compare a model's stored records and indexes both ways,
judge its bookkeeping, find its garbage, and (repair) fix what can be fixed in place.

Everything runs in bounded steps, each one script call or command that touches at
most a few hundred records or entries, so the server is never stalled:

1. the bookkeeping, read at one instant (``check_state.lua``): pointers, counters,
   leases, schema tags, the server's evicted keys;
2. records -> indexes: the records are read with HSCAN, and for each batch one
   read-only script (``check_records.lua``) asks whether every index entry each record
   implies is there;
3. indexes -> records, and garbage: SCAN (MATCH the model's own hash-tagged prefix)
   finds every key of the model; each key is judged by its name (a key of another
   generation, of a former index layout, of no known layout), and the live
   generation's index keys are walked with a cursor (``check_members.lua``), each
   entry checked against the record it names;
4. a TTL model's expiry zset (``expiry.py``): entries without records are drift,
   expired objects waiting for a sweep are counted (a repair sweeps them).

A repair sends each batch's fixes as one script (``repair.lua``) that first checks,
for every fix, that the record is still what the check saw: a fix never undoes a
concurrent save or delete, and a batch is applied whole or not at all.  Every fix
adds an entry a record implies or drops one no record backs, so a query's answer
only ever moves towards the right one while a repair runs.  Garbage keys found by
SCAN are dropped by ``free_keys.lua``, which refuses a live or staging generation.
"""

from __future__ import annotations

import time

from ... import scripts
from ...entries import sorted_index_keys
from ...exceptions import ConcurrencyError
from ...reports import CheckReport
from ..context import Context
from ..inspection import model_state_flow
from ..requests import Flow, ScriptCall
from ..reset import sweep_flow
from .bookkeeping import bookkeeping, counters, server
from .dictionaries import dictionaries_flow, layout_flow
from .expiry import expiry_flow
from .indexes import WALK_KEYS, keys_flow
from .records import records_flow
from .state import CheckPass, Moved, Progress, apply

__all__ = ["check_flow", "Progress", "CHECK_BATCH", "CHECK_BUDGET", "WALK_KEYS"]

CHECK_BATCH = 100    # records checked per script call
CHECK_BUDGET = 300   # index entries walked per script call
MAX_RESTARTS = 5     # a reset replaced the data during the check: begin again


def check_flow(ctx: Context, repair: bool = False, batch: int = CHECK_BATCH, budget: int = CHECK_BUDGET,
               progress: Progress | None = None) -> Flow[CheckReport]:
    """Check the model's data (and with ``repair``, fix what can be fixed in place);
    returns the report.  ``progress(phase, done, total)`` is called after each step
    ('records' with their total, then 'keys' without one)."""
    started = time.monotonic()
    for restarts in range(MAX_RESTARTS + 1):
        checker = CheckPass(ctx, repair, batch, budget, progress)
        try:
            yield from _run(checker)
        except Moved:
            continue
        checker.report.restarts = restarts
        checker.report.seconds = time.monotonic() - started
        return checker.report
    raise ConcurrencyError(f"{ctx.meta.name}: the dataset kept being reset while it was checked "
                           f"({MAX_RESTARTS + 1} times); check it when resets are not running back to back")


def _run(p: CheckPass) -> Flow[None]:
    state = yield from model_state_flow(p.ctx)
    if isinstance(state, str):
        p.report.add("bad_pointer", p.keys.gen, detail=f"the generation pointer holds {state}")
        return
    p.gen = p.report.generation = state.gen
    p.gk = p.keys.generation(state.gen)
    # A reset always sets the pointer: gone while resets happened (or with no live
    # records), it was lost, and other generations may hold the data.
    p.pointer_gone = state.pointer is None and (state.genseq is not None or not state.records)
    server(p, state)
    fixes = bookkeeping(p, state)
    if p.repair:
        yield from apply(p, fixes)
        swept = yield from sweep_flow(p.ctx)  # lapsed leases: their generations are dead now
        p.dead |= {gen for gen in swept if gen != p.gen}
    before = yield from layout_flow(p)  # the dictionaries' versions before the records are read
    if p.gk.objs not in state.wrong_types:
        yield from records_flow(p, state.records)
    yield from keys_flow(p)
    yield from expiry_flow(p)
    if p.keys.nextpk not in state.wrong_types:
        yield from counters(p)
    yield from dictionaries_flow(p, before)
    if p.repair:
        for gen in sorted(p.dead):  # their keys are gone (SCAN found them all): forget them
            gk = p.keys.generation(gen)
            yield ScriptCall(scripts.FREE_DONE, (p.keys.dead, gk.objs, gk.ids,
                                                 *sorted_index_keys(p.meta, gk, False)), (gen,))
