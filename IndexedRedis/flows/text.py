"""Queries that read text dictionaries or need built indexes (see ``textindex.py``).

A text condition names the value sets of the values its dictionary walk finds; the
client keeps them as a plan per (generation, condition), with the dictionary's version.
The query script answers "stale" when the version moved (with the values of a bounded
walk), "more" when a text order ran out of values before its page was full, and "not
built" when the generation's layout lacks an index the query reads.  Plans are made
or finished by read-only walk steps (``text_walk.lua``) of at most ``WALK_BUDGET``
dictionary members each, so no step stalls the server.

A plan of more than ``UNION_LIMIT`` values would make one query script read thousands
of value sets (a ``__contains`` matching 27,771 of a million values took 43 ms).  Its
value sets are gathered instead, ``UNION_STEP`` at a time, into scratch sets
(``text_union.lua``), and the query reads those.  The answer is still that of one
moment: every step, and the query, checks that the generation, the dictionary's
version and the layout's count of index writes (``_w``, bumped by every save, update,
delete and repair) are those the first step saw; a write in between spoils the gathering and
it starts again.  After ``UNION_ROUNDS`` spoiled gatherings, or where the scratch sets
cannot be written (a read-only ACL user, a replica), the query runs as one script.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from .. import scripts
from ..compiler import Order, order_plan_key
from ..exceptions import ConcurrencyError, IndexNotBuiltError
from ..textindex import OrderPlan, TextPlan, UnionPlan, matches, remember, walk_spec
from .common import STALE_GEN, script
from .context import Context
from .requests import Flow, ScriptCall

if TYPE_CHECKING:
    from ..lookups import Condition

__all__ = ["NOT_BUILT", "STALE_PLAN", "NEED_MORE", "WALK_BUDGET", "text_query_flow", "current_plans",
           "not_built_error"]

NOT_BUILT, STALE_PLAN, NEED_MORE, MOVED = 20, 21, 22, 23  # query.lua / text_walk.lua replies (textindex.lua)
#: Dictionary members read per walk step (1,000 short values: 1-3 ms on a 2-core VM).
WALK_BUDGET = 1000
#: Query attempts while writers keep changing the dictionaries it reads.
MAX_PLAN_ROUNDS = 50
#: A plan of more values than this is gathered into scratch sets (see the module doc),
#: ``UNION_STEP`` value sets per step (1,000 one-member sets: 2-4 ms on a 2-core VM).
UNION_LIMIT = 2000
UNION_STEP = 1000
#: Gatherings that writes may spoil before the query runs as one script.
UNION_ROUNDS = 3
#: How long a scratch set lives (ms) if its query never deletes it (the client died).
SCRATCH_MS = 30_000


def not_built_error(ctx: Context, reply: Any) -> IndexNotBuiltError:
    meta = ctx.meta
    field = _text(reply[1])
    letters = _text(reply[2])
    kinds = {"s": "value sets", "h": "hashed value sets", "z": "number order", "x": "LEX_INDEXED_FIELDS",
             "d": "text dictionaries"}
    what = ", ".join(kinds.get(letter, letter) for letter in letters)
    spec = f"{meta.model.__module__}:{meta.name}"
    return IndexNotBuiltError(
        f"{meta.name}.{field}: the query needs the field's index ({what}), which the stored data has not "
        f"built: the field was indexed, or its index changed, after the data was written. Build it with "
        f"`indexedredis reindex {spec}` or `{meta.name}.objects.reindex()`", meta.name, field)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _is_text_order(ctx: Context, order: Order) -> bool:
    if order.field is None:
        return False
    spec = ctx.meta.specs[order.field]
    return spec.text and not spec.numeric and not spec.lex


def current_plans(ctx: Context, conditions: tuple[Condition, ...], order: Order) -> dict[Any, Any]:
    """The plans this connection holds for a query in the current generation."""
    store, prefix, gen = ctx.gens.plans, ctx.meta.keys.prefix, ctx.gen
    found: dict[Any, Any] = {}
    for condition in conditions:
        if condition[0] == "D":
            plan = store.get((prefix, gen, condition))
            if plan is not None:
                found[condition] = plan
    if _is_text_order(ctx, order):
        key = order_plan_key(order)
        plan = store.get((prefix, gen, key))
        if plan is not None:
            found[key] = plan
    return found


def text_query_flow(ctx: Context, conditions: tuple[Condition, ...], order: Order, wanted: int | None,
                    build: Callable[[int, Mapping[Any, Any]], ScriptCall]) -> Flow[list[Any]]:
    """Run a query script built by ``build(generation, plans)``, following the
    generation and making the text plans it needs; ``wanted`` is how many ordered
    results the page needs (None: all)."""
    meta, store, prefix = ctx.meta, ctx.gens.plans, ctx.meta.keys.prefix
    texts = [c for c in conditions if c[0] == "D"]
    text_order = _is_text_order(ctx, order)
    spoiled = 0  # gatherings into scratch sets that a write spoiled
    for _ in range(MAX_PLAN_ROUNDS):
        gen = ctx.gen
        plans = current_plans(ctx, conditions, order)
        if text_order and order_plan_key(order) not in plans:
            plan = yield from _order_plan_flow(ctx, gen, order, None, wanted)
            if plan is None:
                continue
            remember(store, (prefix, gen, order_plan_key(order)), plan)
            plans[order_plan_key(order)] = plan
        big = [c for c in texts if c in plans and len(plans[c].values) > UNION_LIMIT]
        if big and spoiled < UNION_ROUNDS:
            made, unions = yield from _gather_flow(ctx, gen, big, plans)
            if unions is None:
                spoiled = UNION_ROUNDS if made is None else spoiled + 1
                yield from _drop_flow(made)
                continue
            call = replace(build(gen, {**plans, **unions}), script=scripts.QUERY_ON_MASTER)
            try:
                reply = yield from script((meta,), call)
            except Exception:
                yield from _drop_flow(made)
                raise
            yield from _drop_flow(made)
        else:
            reply = yield from script((meta,), build(gen, plans))
        status = reply[0]
        if status == STALE_GEN:
            ctx.gen = int(reply[1])
            continue
        if status == NOT_BUILT:
            raise not_built_error(ctx, reply)
        if status == STALE_PLAN:
            which = int(reply[1])
            if which == 0:
                store.pop((prefix, gen, order_plan_key(order)), None)
                continue
            condition = texts[which - 1]
            text_plan = yield from _condition_plan_flow(ctx, gen, condition, reply[2], reply[3], reply[4:])
            if text_plan is not None:
                remember(store, (prefix, gen, condition), text_plan)
            continue
        if status == MOVED:  # a write since the scratch sets were made
            spoiled += 1
            continue
        if status == NEED_MORE:
            have = int(reply[1])
            target = None if wanted is None else max(2 * have, wanted, 16)
            plan = yield from _order_plan_flow(ctx, gen, order, plans.get(order_plan_key(order)), target)
            if plan is not None:
                remember(store, (prefix, gen, order_plan_key(order)), plan)
            continue
        return reply
    raise ConcurrencyError(f"{meta.name}: a text lookup kept meeting changed dictionaries ({MAX_PLAN_ROUNDS} "
                           f"attempts): writers add or remove values faster than the query can follow")


def _gather_flow(ctx: Context, gen: int, big: list[Condition],
                 plans: Mapping[Any, Any]) -> Flow[tuple[list[bytes] | None, dict[Any, UnionPlan] | None]]:
    """Gather the value sets of the ``big`` plans into scratch sets, in bounded steps
    (``text_union.lua``).  Returns the scratch sets written and the plans that read
    them, or None for the plans when the gathering is spoiled: the generation moved
    (``ctx.gen`` follows), a plan went stale (it is dropped, to be made again) or a
    write came in; (None, None) when the server refuses the writes (no right to write
    here: an ACL, a replica, maxmemory), which the query then does without."""
    meta, store = ctx.meta, ctx.gens.plans
    gk = meta.keys.generation(gen)
    token = os.urandom(8).hex().encode("ascii")
    made: list[bytes] = []
    unions: dict[Any, UnionPlan] = {}
    writes = b""
    for condition in big:
        plan: TextPlan = plans[condition]
        field = condition[1]
        keys: list[bytes] = []
        for start in range(0, len(plan.values), UNION_STEP):
            key = gk.text_union(token, len(made))
            sets = [gk.index(field, value) for value in plan.values[start:start + UNION_STEP]]
            try:
                reply = yield ScriptCall(scripts.TEXT_UNION, (meta.keys.gen, gk.layout, key, *sets),
                                         (b"add", gen, field, plan.version, writes, SCRATCH_MS))
            except ResponseError:  # nothing of this step was written
                yield from _drop_flow(made)
                return None, None
            status = int(reply[0])
            if status == STALE_GEN:
                ctx.gen = int(reply[1])
                return made, None
            if status == STALE_PLAN:
                store.pop((meta.keys.prefix, gen, condition), None)
                return made, None
            if status == MOVED:
                return made, None
            writes = reply[1]
            made.append(key)
            keys.append(key)
        unions[condition] = UnionPlan(plan.version, tuple(keys), writes)
    return made, unions


def _drop_flow(made: list[bytes] | None) -> Flow[None]:
    """Delete a gathering's scratch sets (they would expire by themselves)."""
    if not made:
        return
    try:
        yield ScriptCall(scripts.TEXT_UNION, tuple(made), (b"drop",))
    except ResponseError:
        pass


def _walk_call(ctx: Context, gen: int, field: str, args: tuple[Any, ...]) -> ScriptCall:
    gk = ctx.meta.keys.generation(gen)
    return ScriptCall(scripts.TEXT_WALK, (ctx.meta.keys.gen, gk.layout, gk.text_dict(field), gk.fold_dict(field),
                                          gk.ids), (gen, field, *args))


def _condition_plan_flow(ctx: Context, gen: int, condition: Condition, version: bytes, cursor: bytes,
                         values: Any) -> Flow[TextPlan | None]:
    """Finish a walk the query script began (at ``cursor``; '' when done) in bounded
    steps; None when the generation moved meanwhile."""
    field, mode, a, b = condition[1], condition[2], condition[3], condition[4]
    spec = walk_spec(mode, a, b)
    found = dict.fromkeys(values)
    for _ in range(MAX_PLAN_ROUNDS):
        while cursor != b"":
            reply = yield _walk_call(ctx, gen, field, (b"w", *spec, cursor, WALK_BUDGET))
            if reply[0] == STALE_GEN:
                ctx.gen = int(reply[1])
                return None
            if reply[0] == NOT_BUILT:
                raise not_built_error(ctx, reply)
            if reply[1] != version:  # the dictionary changed under the walk: again
                break
            found.update(dict.fromkeys(reply[3:]))
            cursor = reply[2]
        else:
            return TextPlan(version, tuple(v for v in found if matches(mode, a, b, v)))
        version, cursor, found = reply[1], b"s", {}
    raise ConcurrencyError(f"{ctx.meta.name}.{field}: its dictionary kept changing during a text lookup")


def _order_plan_flow(ctx: Context, gen: int, order: Order, plan: OrderPlan | None,
                     target: int | None) -> Flow[OrderPlan | None]:
    """The first ``target`` values (None: all) of a text order, extending ``plan``."""
    field = order.field
    assert field is not None
    desc = b"1" if order.descending else b"0"
    for _ in range(MAX_PLAN_ROUNDS):
        version = plan.version if plan is not None else None
        values = list(plan.values) if plan is not None else []
        bound = b"(" + values[-1] if values else b""
        complete = False
        while target is None or len(values) < target:
            budget = WALK_BUDGET if target is None else max(1, min(WALK_BUDGET, target - len(values)))
            reply = yield _walk_call(ctx, gen, field, (b"o", desc, bound, budget))
            if reply[0] == STALE_GEN:
                ctx.gen = int(reply[1])
                return None
            if reply[0] == NOT_BUILT:
                raise not_built_error(ctx, reply)
            if version is not None and reply[1] != version:
                break
            version = reply[1]
            values += _past(reply[3:], values[-1] if values else None, order.descending)
            if reply[2] == b"":
                complete = True
                break
            bound = reply[2]
        else:
            return OrderPlan(version or b"0", tuple(values), complete)
        if complete:
            return OrderPlan(version or b"0", tuple(values), True)
        plan = None  # the dictionary changed: start over
    raise ConcurrencyError(f"{ctx.meta.name}.{field}: its dictionary kept changing while a text order was read")


def _past(found: list[bytes], last: bytes | None, descending: bool) -> list[bytes]:
    """A walk step's values, less those not past ``last`` (a step that goes on after a
    value also returns the rest of the block that holds it)."""
    if last is None:
        return found
    skip = 0
    if descending:
        while skip < len(found) and found[skip] >= last:
            skip += 1
    else:
        while skip < len(found) and found[skip] <= last:
            skip += 1
    return found[skip:]
