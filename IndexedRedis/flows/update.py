"""``QuerySet.update``: set fields of every object a query matches (constants, or F
expressions over the stored values), atomically per batch of ``UPDATE_BATCH``.

One query call reads the matching records; the new values, their stored forms and the
index keys they move between are worked out here (all of them before the first write,
so a value a field refuses raises with nothing written); then one update.lua call per
batch writes them.  The script checks each record still holds, in the fields the
query and the expressions read and the fields changed, what was read (a digest of
them), so every new value is exactly what the server's data gives: a record changed
meanwhile makes the call write nothing, and the batch's part of the query is read
again (the object may no longer match; one page of the query by pk cursor) before
the batch is sent again.  Objects deleted meanwhile are left out of the count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgpack

from .. import scripts
from ..compiler import PK_ORDER, Query
from ..entries import ABSENT, index_group, record_digest, stored_arg
from ..exceptions import ConcurrencyError, FieldValueError, InvalidQueryError, UniqueConstraintError
from ..expiry import expected
from ..expressions import Expression, check_expression
from ..fields import NULL_STORED, irNull
from ..fields.links import ForeignLink, ForeignLinks
from .common import MAX_ATTEMPTS, OK, STALE_GEN, STALE_VALUES, UNIQUE_CLASH, KeyNumbers, found_pks, script
from .context import Context
from .read import query_flow
from .requests import Flow, ScriptCall
from .schemas import records_flow

if TYPE_CHECKING:
    from ..options import ModelOptions

__all__ = ["UPDATE_BATCH", "UpdatePlan", "update_flow"]

#: Objects per update.lua call: each call is atomic and bounded.
UPDATE_BATCH = 1000
_KNOWN_CONDITIONS = frozenset("SUZLN")  # condition kinds whose second item is the field they read
_packer = msgpack.Packer(use_bin_type=False)  # the scripts' cmsgpack knows no bin type


class UpdatePlan:
    """What an update sets (validated before any I/O) and how it is worked out per object."""

    def __init__(self, meta: ModelOptions, query: Query, assignments: Mapping[str, Any]) -> None:
        self.meta = meta
        if not assignments:
            raise InvalidQueryError(f"{meta.name}.objects.update() needs field=value arguments")
        self.constants: dict[str, Any] = {}  # field name -> stored value
        self.expressions: dict[str, Expression] = {}
        for name, value in assignments.items():
            field = meta.field(name)  # UnknownFieldError names the model and the nearest field
            if isinstance(value, Expression):
                check_expression(meta, name, value)
                self.expressions[name] = value
            else:
                rules = meta.model._typed_rules  # a typed model: no None where its annotation has none
                if rules is not None and name in rules.not_null and (value is None or value is irNull):
                    raise rules.null_error(meta.name, name, value)
                value = meta.to_python(field, value)
                if isinstance(value, (ForeignLink, ForeignLinks)) and any(o._id is None for o in value.objects()):
                    raise FieldValueError(
                        f"{meta.name}.{name}: update() stores links by pk, and a linked object given is not saved "
                        f"yet; save it first")
                self.constants[name] = field.toStorage(value)
        read: set[str] = set(assignments)
        for expr in self.expressions.values():
            read |= expr.fields()
        for condition in query.leaves:  # those of Q trees too
            if isinstance(condition, tuple) and condition and condition[0] in _KNOWN_CONDITIONS:
                read.add(condition[1])
            else:  # a condition of another shape: every field may decide whether it matches
                read.update(meta.field_names)
        #: The fields whose stored values the script checks (by digest) before writing.
        self.checked = tuple(name for name in meta.field_names if name in read)
        self.unique = [name for name in assignments if name in meta.specs and meta.specs[name].unique]

    def check_matches(self, count: int) -> None:
        """Refuse, before any write, an update no outcome of which could keep a unique
        field unique, or that could not be checked for it in one atomic step."""
        for name in self.unique:
            if name in self.constants and self.constants[name] is not NULL_STORED and count > 1:
                value = self.meta.fields_by_name[name].fromStorage(self.constants[name])
                raise UniqueConstraintError(
                    f"{self.meta.name}.{name} must be unique, and update() would give {value!r} to all {count} "
                    f"matching objects; nothing was updated", self.meta.name, name, value)
            if name in self.expressions and count > UPDATE_BATCH:
                raise InvalidQueryError(
                    f"{self.meta.name}.objects.update({name}={self.expressions[name]!r}): an expression on the "
                    f"unique field {name!r} is checked for clashes in one atomic step, so it may update at most "
                    f"{UPDATE_BATCH} objects, and {count} match; narrow the query")

    def changes(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The new stored values of the assigned fields for one stored record."""
        meta = self.meta
        changed = dict(self.constants)
        if self.expressions:
            values = {}
            for expr in self.expressions.values():
                for name in expr.fields():
                    field = meta.fields_by_name[name]
                    stored = record.get(name, ABSENT)
                    values[name] = (field.getDefaultValue() if stored is ABSENT
                                    else irNull if stored is NULL_STORED else field.fromStorage(stored))
            for name, expr in self.expressions.items():
                field = meta.fields_by_name[name]
                try:
                    result = expr.evaluate(values)
                except ArithmeticError as exc:
                    raise type(exc)(f"{meta.name}.{name} = {expr!r} with {values}: {exc}") from None
                changed[name] = field.toStorage(meta.to_python(field, result))
        return changed

    def full_record(self, record: Mapping[str, Any], changed: Mapping[str, Any]) -> dict[str, Any]:
        """A stored record of another schema rewritten whole in the model's own layout."""
        out = {}
        for field in self.meta.fields:
            name = field.name
            if name in changed:
                out[name] = changed[name]
            elif name in record:
                out[name] = record[name]
            else:
                out[name] = field.toStorage(field.getDefaultValue())
        return out


class _Target:
    """One matched object: its pk, the record read, and its new values."""

    __slots__ = ("pk", "record", "changed", "full")

    def __init__(self, plan: UpdatePlan, pk: int, record: dict[str, Any]) -> None:
        self.pk, self.record = pk, record
        self.changed = plan.changes(record)
        self.full = False  # the stored record has another schema: send it whole


def _call(plan: UpdatePlan, gen: int, batch: Sequence[_Target]) -> ScriptCall:
    meta = plan.meta
    gk = meta.keys.generation(gen)
    number = KeyNumbers((meta.keys.gen, gk.objs, gk.ids, meta.keys.schemas, meta.keys.cache_flag))
    objects = []
    for t in batch:
        if t.full:
            whole = plan.full_record(t.record, t.changed)
            payload: Any = meta.codec.pack(whole)
            groups = [index_group(meta, gk, number, field, t.record.get(field.name, ABSENT), whole[field.name])
                      for field in meta.indexed]
        else:
            payload = [(name, *stored_arg(value)) for name, value in t.changed.items()]
            groups = [index_group(meta, gk, number, field, t.record.get(field.name, ABSENT), t.changed[field.name])
                      for field in meta.indexed if field.name in t.changed]
        objects.append((0, b"%d" % t.pk, b"F" if t.full else b"P", payload, groups, number(gk.stamp(t.pk)),
                        record_digest(t.record, plan.checked)))
    gen_arg = b"%d" % gen if meta.ttl_ms is None else expected(meta, gk, gen, number)
    request = (gen_arg, b"%d" % meta.codec.schema_tag, meta.codec.schema_blob, plan.checked, objects,
               number(gk.layout), meta.layout[0], meta.layout[1])
    return ScriptCall(scripts.UPDATE, number.keys, (_packer.pack(request),))


def _matching(ctx: Context, plan: UpdatePlan, query: Query, after: int | None = None,
              limit: int = -1) -> Flow[list[_Target]]:
    """The objects the query matches now (those after pk ``after``, at most ``limit``),
    in pk order, with their new values."""
    packed_pks, blobs = yield from query_flow(ctx, "records", query, order=PK_ORDER, limit=limit, after=after)
    if not packed_pks:
        return []
    records = yield from records_flow(ctx.meta, blobs)
    found = sorted(zip(found_pks(packed_pks), records, strict=True), key=lambda item: item[0])
    return [_Target(plan, int(pk), record) for pk, record in found]


def _refreshed(ctx: Context, plan: UpdatePlan, query: Query, batch: Sequence[_Target]) -> Flow[list[_Target]]:
    """The objects of a batch that still match the query, read again: pages of the
    query from the batch's first pk on (by pk cursor), until its last pk is passed, so
    a conflict costs a page of the query, not the whole of it."""
    wanted = {t.pk: t for t in batch}
    after, last = batch[0].pk - 1, batch[-1].pk
    size = max(len(batch), 100)
    found: list[_Target] = []
    while True:
        page = yield from _matching(ctx, plan, query, after, size)
        for t in page:
            if t.pk in wanted:
                t.full = wanted[t.pk].full
                found.append(t)
        if len(page) < size or page[-1].pk >= last:
            return found
        after = page[-1].pk


def update_flow(ctx: Context, query: Query, assignments: Mapping[str, Any]) -> Flow[int]:
    """Set ``assignments`` (field name -> value or F expression) on every object the
    query matches; returns how many objects were updated."""
    meta = ctx.meta
    plan = UpdatePlan(meta, query, assignments)
    pending = yield from _matching(ctx, plan, query)
    plan.check_matches(len(pending))
    updated = 0
    attempts = 0
    while pending:
        batch = pending[:UPDATE_BATCH]
        reply = yield from script((meta,), _call(plan, ctx.gen, batch))
        status = reply[0]
        if status == OK:
            updated += int(reply[1])
            pending = pending[UPDATE_BATCH:]
            continue
        attempts += 1
        if attempts >= MAX_ATTEMPTS:
            raise ConcurrencyError(f"{meta.name}: update() kept racing with other writers")
        if status == UNIQUE_CLASH:
            culprit, name = batch[int(reply[1]) - 1], _text(reply[2])
            value = meta.fields_by_name[name].fromStorage(culprit.changed[name])
            raise UniqueConstraintError(
                f"{meta.name}.{name} must be unique, and {value!r} is already taken by another object; nothing "
                f"of this batch was updated{_earlier(updated)}", meta.name, name, value)
        if status == STALE_VALUES:
            culprit = batch[int(reply[1]) - 1]
            stored = (yield from records_flow(meta, [reply[2]]))[0]
            if record_digest(stored, plan.checked) == record_digest(culprit.record, plan.checked):
                culprit.full = True  # the same values, in another version's layout
                continue
        elif status == STALE_GEN:
            ctx.gen = int(reply[1])
        # Read the batch's part of the query again: a changed object may have stopped matching.
        pending = (yield from _refreshed(ctx, plan, query, batch)) + pending[len(batch):]
    return updated


def _earlier(updated: int) -> str:
    return f" ({updated} objects of earlier batches were)" if updated else ""


def _text(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)
