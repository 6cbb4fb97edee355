"""Every operation, written once as an I/O-free generator ("flow").

A flow yields requests (a ``ScriptCall`` or a plain ``Command``) and receives their
replies; ``executor.py`` runs flows against a client.  Keeping the logic free of I/O
lets one body of code serve the sync driver today and an asyncio driver beside it.

Scripts name the keys of one generation of the model's data.  The client guesses the
current generation from its cache; a script that finds the guess stale answers with
the right one, and ``call_current`` builds the call again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import msgpack
from redis.exceptions import ResponseError

from . import scripts
from .compiler import PK_ORDER, Order, compile_query
from .exceptions import ConcurrencyError, IndexedRedisError, UniqueConstraintError
from .fields import NULL_STORED, digest, wire_bytes
from .flows.requests import Command, Flow, Request, ScriptCall, Transaction
from .keys import GenerationKeys, lex_member, lex_text, padded_pk
from .options import ModelOptions, UnknownSchemas

if TYPE_CHECKING:
    from .connection import GenerationCache
    from .model import IndexedRedisModel

__all__ = ["ScriptCall", "Command", "Transaction", "Context", "save_flow", "get_flow", "reserve_pks_flow",
           "delete_flow", "query_flow", "fetch_links_flow", "reset_flow", "free_dead_flow"]

STALE_GEN, OK, STALE_VALUES, MISSING, UNIQUE_CLASH = 0, 1, 2, 3, 4
MAX_ATTEMPTS = 200
RESET_BATCH = 100          # objects per reset script call: bounds how long one call runs
FREE_BATCH = 200           # records read per HSCAN step when freeing a dead generation
SAVE_BATCH = 1000          # objects per script call in the non-atomic bulk paths
STALE_RESET_SECONDS = 600  # a staging generation silent this long was left by a dead reset

T = TypeVar("T")


@dataclass(slots=True)
class Context:
    """What a flow needs besides its inputs: the model and the client's generation cache."""

    meta: ModelOptions
    gens: GenerationCache

    @property
    def gen(self) -> int:
        return self.gens.get(self.meta.keys.prefix)

    @gen.setter
    def gen(self, value: int) -> None:
        self.gens.set(self.meta.keys.prefix, value)


def _script(metas: Sequence[ModelOptions], request: Request) -> Flow[Any]:
    """Send a script call; a stored record whose schema tag the schemas hash lacks
    (the script then fails before writing anything) becomes a clear error."""
    try:
        return (yield request)
    except ResponseError as exc:
        match = re.search(r"IR_UNKNOWN_SCHEMA (\d+) ", str(exc))
        if match is None:
            raise
        names = ", ".join(m.name for m in metas)
        raise IndexedRedisError(
            f"Model {names}: a stored record carries schema tag {match[1]}, which the "
            f"model's schemas hash does not hold (the data was not written by IndexedRedis, "
            f"or the hash was deleted); nothing was written") from None


def call_current(ctx: Context, build: Callable[[int], ScriptCall]) -> Flow[list[Any]]:
    """Run a script against the current generation, following it if it moves."""
    for _ in range(MAX_ATTEMPTS):
        reply = yield from _script((ctx.meta,), build(ctx.gen))
        if reply[0] != STALE_GEN:
            return reply
        ctx.gen = int(reply[1])
    raise ConcurrencyError(f"{ctx.meta.name}: the dataset kept being reset during the operation")


def learn_schemas_flow(meta: ModelOptions, tags: Iterable[int]) -> Flow[None]:
    """Learn the field lists of records written by other versions of the model."""
    wanted = sorted(tags)
    found = yield Command(("HMGET", meta.keys.schemas, *wanted))
    meta.learn_schemas(wanted, found)


def records_flow(meta: ModelOptions, blobs: Sequence[bytes]) -> Flow[list[dict[str, Any]]]:
    """Stored records as dicts (see ``ModelOptions.records``)."""
    try:
        return meta.records(blobs)
    except UnknownSchemas as unknown:
        yield from learn_schemas_flow(meta, unknown.tags)
        return meta.records(blobs)


class _KeyNumbers:
    """Collects a script's KEYS, numbering each distinct key once (1-based, as in Lua)."""

    __slots__ = ("keys", "_numbers")

    def __init__(self, fixed: Iterable[bytes]) -> None:
        self.keys = list(fixed)
        self._numbers: dict[bytes, int] = {}

    def __call__(self, key: bytes) -> int:
        number = self._numbers.get(key)
        if number is None:
            self.keys.append(key)
            number = self._numbers[key] = len(self.keys)
        return number


# ---- save ---------------------------------------------------------------------------------


class _PendingSave:
    """One object on its way to storage: ``record`` is the object's stored form,
    ``changed`` what is written (its changed fields, or the whole record when
    ``full``), ``believed`` the stored record the scripts' index updates start from."""

    __slots__ = ("obj", "meta", "pk", "record", "changed", "believed", "full")

    def __init__(self, obj: IndexedRedisModel) -> None:
        self.obj = obj
        self.meta = meta = type(obj)._meta
        self.record = meta.storage_of(obj)  # validates every value before any I/O
        self.pk = obj._id
        orig: dict[str, Any] = obj._orig
        self.believed = orig
        self.full = self.pk is None or not orig
        if self.full:
            self.changed = self.record
        else:
            self.changed = {name: value for name, value in self.record.items()
                            if name not in orig or not same_stored(orig[name], value)}


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
    reply = yield ScriptCall(scripts.RESERVE_PKS, [m.keys.nextpk for m in metas],
                             [len(new_by_model[m]) for m in metas])
    for meta, first in zip(metas, reply[1:], strict=True):
        for offset, obj in enumerate(new_by_model[meta]):
            obj.__dict__["_id"] = int(first) + offset


def save_flow(ctx: Context, objs: Sequence[IndexedRedisModel]) -> Flow[list[int]]:
    """Save objects (of one model or several) in one atomic script call; returns their
    pks in order."""
    gens = ctx.gens
    pending = [_PendingSave(obj) for obj in objs]
    seen: dict[tuple[ModelOptions, int], IndexedRedisModel] = {}
    for p in pending:
        if p.pk is not None and seen.setdefault((p.meta, p.pk), p.obj) is not p.obj:
            raise IndexedRedisError(f"{p.meta.name}: two different objects with pk {p.pk} in one save")
    active = [p for p in pending if p.full or p.changed]
    metas = list(dict.fromkeys(p.meta for p in active))
    model_numbers = {meta: number for number, meta in enumerate(metas, 1)}

    def build() -> ScriptCall:
        number = _KeyNumbers(())
        models = []
        gen_keys = {}
        for meta in metas:
            gen = gens.get(meta.keys.prefix)
            gk = gen_keys[meta] = meta.keys.generation(gen)
            models.append((b"%d" % gen, number(meta.keys.gen), number(gk.objs), number(gk.ids),
                           number(meta.keys.nextpk), number(meta.keys.schemas),
                           b"%d" % meta.schema_tag, meta.schema_blob))
        objects = []
        for p in active:
            meta, gk = p.meta, gen_keys[p.meta]
            if p.full:
                payload: Any = meta.pack(p.changed)
                to_index = meta.indexed
            else:
                payload = [(name, *_stored_arg(value)) for name, value in p.changed.items()]
                to_index = tuple(f for f in meta.indexed if f.name in p.changed)
            groups = [_index_group(meta, gk, number, field, p.believed.get(field.name, _ABSENT),
                                   p.changed[field.name]) for field in to_index]
            objects.append((model_numbers[meta], b"" if p.pk is None else b"%d" % p.pk,
                            b"F" if p.full else b"P", payload, groups))
        return ScriptCall(scripts.SAVE, number.keys, (_request_packer.pack((models, objects)),))

    if active:
        for _ in range(MAX_ATTEMPTS):
            reply = yield from _script(metas, build())
            status = reply[0]
            if status == OK:
                for p, pk in zip(active, reply[1:], strict=True):
                    p.pk = int(pk)
                break
            if status == STALE_GEN:
                gens.set(metas[int(reply[2]) - 1].keys.prefix, int(reply[1]))
                continue
            culprit = active[int(reply[1]) - 1]
            if status == UNIQUE_CLASH:
                name = _text(reply[2])
                value = culprit.obj.__dict__.get(name)
                raise UniqueConstraintError(
                    f"{culprit.meta.name}.{name} must be unique, and {value!r} is already taken "
                    f"by another object; nothing was saved", culprit.meta.name, name, value)
            if status == STALE_VALUES:
                stored = culprit.believed = (yield from records_flow(culprit.meta, [reply[2]]))[0]
                if not culprit.full and culprit.meta.stored_tag(reply[2]) != culprit.meta.schema_tag:
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
        state = p.obj.__dict__
        state["_id"] = p.pk
        state["_orig"] = p.record
    return [p.pk for p in pending if p.pk is not None]


_ABSENT = object()


def _stored_arg(stored: Any) -> tuple[bytes, bytes]:
    """A stored value as the scripts take it: a kind ('n' irNull / 'v' value) and bytes."""
    if stored is NULL_STORED:
        return (b"n", b"")
    return (b"v", wire_bytes(stored))


_request_packer = msgpack.Packer(use_bin_type=False)  # the scripts' cmsgpack knows no bin type


def _index_group(meta: ModelOptions, gk: GenerationKeys, number: _KeyNumbers, field: Any,
                 old: Any, new: Any) -> tuple[Any, ...]:
    """What save.lua needs to move one field's index entries from ``old`` to ``new``."""
    spec = meta.specs[field.name]
    if old is _ABSENT:
        head: tuple[Any, ...] = (field.name, b"a", b"", 0)
    else:
        head = (field.name, *_stored_arg(old), number(meta.index_key(gk, field, old)))
    unique = 1 if spec.unique and new is not NULL_STORED else 0  # irNull never clashes
    group = (*head, number(meta.index_key(gk, field, new)), unique)
    if spec.numeric:
        group += (number(gk.score_index(field.name)), _score_arg(meta, field, new))
    else:
        group += (0, b"")
    if spec.lex:
        old_flag, old_text = _lex_arg(old)
        new_flag, new_text = _lex_arg(new)
        return (*group, number(gk.lex_index(field.name)), int(old_flag == b"1"), old_text,
                int(new_flag == b"1"), new_text)
    return (*group, 0, 0, b"", 0, b"")


def _score_arg(meta: ModelOptions, field: Any, stored: Any) -> bytes:
    """A numeric field's sorted-set score for a stored value (b'' = not in the set)."""
    if stored is NULL_STORED:
        return b""
    score = field.toScore(field.fromStorage(stored))
    return b"" if score is None else repr(float(score)).encode("ascii")


def _lex_arg(stored: Any) -> tuple[bytes, bytes]:
    """Whether a stored text value has a lexicographic entry, and its member's start
    (the script appends the padded pk)."""
    if stored is _ABSENT or stored is NULL_STORED:
        return (b"0", b"")
    return (b"1", lex_text(wire_bytes(stored)))


def _text(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def same_stored(a: Any, b: Any) -> bool:
    if a is NULL_STORED or b is NULL_STORED:
        return a is b
    return wire_bytes(a) == wire_bytes(b)


# ---- delete -------------------------------------------------------------------------------


def delete_flow(ctx: Context, targets: Sequence[tuple[int, dict[str, Any]]]) -> Flow[int]:
    """Delete (pk, believed stored record) pairs atomically; returns how many existed."""
    meta = ctx.meta
    items: list[tuple[int, dict[str, Any]]] = list(targets)
    if not items:
        return 0

    def build(gen: int) -> ScriptCall:
        gk = meta.keys.generation(gen)
        number = _KeyNumbers((meta.keys.gen, gk.objs, gk.ids, meta.keys.schemas))
        args: list[Any] = [gen, len(meta.indexed), *meta.indexed_names]
        for field in meta.indexed:  # the sorted sets of each field, or 0
            spec = meta.specs[field.name]
            args += (number(gk.score_index(field.name)) if spec.numeric else 0,
                     number(gk.lex_index(field.name)) if spec.lex else 0)
        for pk, believed in items:
            args.append(pk)
            for field in meta.indexed:
                old = believed.get(field.name, _ABSENT)
                if old is _ABSENT:
                    args += (b"a", b"", 0, b"0", b"")
                else:
                    args += (*_stored_arg(old), number(meta.index_key(gk, field, old)), *_lex_arg(old))
        return ScriptCall(scripts.DELETE, number.keys, args)

    for _ in range(MAX_ATTEMPTS):
        reply = yield from call_current(ctx, build)
        if reply[0] == OK:
            return int(reply[1])
        culprit = int(reply[1]) - 1
        items[culprit] = (items[culprit][0], (yield from records_flow(meta, [reply[2]]))[0])
    raise ConcurrencyError(f"{meta.name}: delete kept racing with other writers")


# ---- query --------------------------------------------------------------------------------


def get_flow(ctx: Context, pks: Sequence[int]) -> Flow[list[Any]]:
    """The records of these pks (None where missing): the generation pointer and the
    records are read in one MULTI/EXEC, cheaper than a script for this simplest read."""
    meta = ctx.meta
    for _ in range(MAX_ATTEMPTS):
        gen = ctx.gen
        gk = meta.keys.generation(gen)
        current, records = yield Transaction((("GET", meta.keys.gen), ("HMGET", gk.objs, *pks)))
        live = int(current or 0)
        if live == gen:
            return list(records)
        ctx.gen = live
    raise ConcurrencyError(f"{meta.name}: the dataset kept being reset during the operation")


def query_flow(ctx: Context, op: str, conditions: tuple[Any, ...] = (), order: Order = PK_ORDER,
               offset: int = 0, limit: int = -1, after: int | None = None, rnd: int = 0,
               pks: Sequence[int] = ()) -> Flow[list[Any]]:
    """Run query.lua (see its header and ``compiler.py``); ``pks`` go with 'get'/'has'."""
    meta = ctx.meta

    def build(gen: int) -> ScriptCall:
        gk = meta.keys.generation(gen)
        if op in ("get", "has"):
            return ScriptCall(scripts.QUERY, (meta.keys.gen, gk.objs, gk.ids, meta.keys.schemas),
                              (gen, op, *pks))
        keys, args = compile_query(meta, gk, gen, op, conditions, order, offset, limit, after, rnd)
        return ScriptCall(scripts.QUERY, keys, args)

    reply = yield from call_current(ctx, build)
    return reply[1:]


def fetch_links_flow(ctx: Context, objs: Sequence[IndexedRedisModel],
                     same_client: Callable[[ModelOptions], bool]) -> Flow[None]:
    """Load the objects that ``objs`` link to, and theirs, and so on: one pipelined round
    trip per level of links.  Links to models on another connection stay lazy."""
    from .foreign import ForeignLink, ForeignLinks

    known: dict[tuple[ModelOptions, int], IndexedRedisModel] = {}
    for obj in objs:
        if obj._id is not None:
            known[(type(obj)._meta, obj._id)] = obj
    level = list(objs)
    while level:
        wanted: dict[ModelOptions, dict[int, list[ForeignLink]]] = {}
        for obj in level:
            for field in type(obj)._meta.foreign_fields:
                value = obj.__dict__.get(field.name)
                links = value.links if isinstance(value, ForeignLinks) else (
                    [value] if isinstance(value, ForeignLink) else [])
                target: ModelOptions = field.foreignModel._meta
                for link in links:
                    if link.obj is not None or link.pk is None:
                        continue
                    if (target, link.pk) in known:
                        link.obj = known[(target, link.pk)]
                    elif same_client(target):
                        wanted.setdefault(target, {}).setdefault(link.pk, []).append(link)
        level = []
        while wanted:
            metas = list(wanted)
            calls: list[Request] = []
            for meta in metas:
                gen = ctx.gens.get(meta.keys.prefix)
                gk = meta.keys.generation(gen)
                calls.append(ScriptCall(scripts.QUERY, (meta.keys.gen, gk.objs, gk.ids, meta.keys.schemas),
                                        (gen, "get", *wanted[meta])))
            replies = yield calls
            for meta, reply in zip(metas, replies, strict=True):
                if reply[0] == STALE_GEN:
                    ctx.gens.set(meta.keys.prefix, int(reply[1]))
                    continue
                pks = msgpack.unpackb(reply[1]) if reply[1] else []
                records = yield from records_flow(meta, reply[2])
                for pk, record in zip(pks, records, strict=True):
                    links = wanted[meta][pk]
                    obj = meta.instance_from_record(pk, record)
                    known[(meta, pk)] = obj
                    level.append(obj)
                    for link in links:
                        link.obj = obj
                del wanted[meta]


# ---- reset --------------------------------------------------------------------------------


def reset_flow(ctx: Context, objs: Sequence[IndexedRedisModel], batch_size: int = RESET_BATCH,
               thorough: bool = False,
               progress: Callable[[int, int], None] | None = None) -> Flow[tuple[list[int], int]]:
    """Replace the model's whole dataset: write a new generation in bounded batches,
    switch the generation pointer in O(1), then free the old one in batches.

    Returns the pks of ``objs`` and how many stored objects were freed.  ``thorough``
    frees index entries of any former index layout too (see ``free_dead_flow``).
    ``progress(done, total)`` is called after each batch.
    """
    meta, keys = ctx.meta, ctx.meta.keys
    if len({id(obj) for obj in objs}) != len(objs):
        raise IndexedRedisError(f"{meta.name}.reset: the same object appears twice in the list")
    given = [obj._id for obj in objs if obj._id is not None]
    if len(set(given)) != len(given):
        raise IndexedRedisError(f"{meta.name}.reset: two objects in the list have the same pk")
    records = [meta.storage_of(obj) for obj in objs]  # all validation before any write
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

    reply = yield ScriptCall(scripts.RESET_BEGIN, (keys.genseq, keys.staging, keys.nextpk, keys.schemas),
                             (len(objs) - len(given), max(given, default=0), meta.schema_tag,
                              meta.schema_blob))
    gen, fresh = int(reply[1]), int(reply[2])
    pks = []
    for obj in objs:
        if obj._id is None:
            pks.append(fresh)
            fresh += 1
        else:
            pks.append(obj._id)
    gk = keys.generation(gen)
    new_objs = [obj for obj in objs if obj._id is None]
    if meta.foreign_fields and new_objs:
        # Objects of the dataset may link to each other: give the new ones their pks
        # first, so that the records name them.
        for obj, pk in zip(objs, pks, strict=True):
            obj.__dict__["_id"] = pk
        records = [meta.storage_of(obj) for obj in objs]
    try:
        for start in range(0, len(objs), batch_size):
            stop = start + batch_size
            number = _KeyNumbers((keys.staging, gk.objs, gk.ids))
            args: list[Any] = [gen, len(pks[start:stop])]
            members: dict[int, list[Any]] = {}
            scored: dict[int, list[Any]] = {}
            lexed: dict[int, list[Any]] = {}
            for pk, record in zip(pks[start:stop], records[start:stop]):
                args += (pk, meta.pack(record))
                for field in meta.indexed:
                    stored = record[field.name]
                    members.setdefault(number(meta.index_key(gk, field, stored)), []).append(pk)
                    spec = meta.specs[field.name]
                    if spec.numeric:
                        score = _score_arg(meta, field, stored)
                        if score:
                            scored.setdefault(number(gk.score_index(field.name)), []).extend(
                                (score, padded_pk(pk)))
                    if spec.lex and stored is not NULL_STORED:
                        lexed.setdefault(number(gk.lex_index(field.name)), []).extend(
                            (b"0", lex_member(wire_bytes(stored), pk)))
            for kind, groups in ((b"S", members), (b"Z", scored), (b"Z", lexed)):
                for key_number, items in groups.items():
                    args += (kind, key_number, len(items), *items)
            reply = yield ScriptCall(scripts.RESET_LOAD, number.keys, args)
            if reply[0] != OK:
                raise ConcurrencyError(
                    f"{meta.name}.reset: this reset was abandoned (it was silent for more than "
                    f"{STALE_RESET_SECONDS}s while another reset finished)")
            if progress is not None:
                progress(min(stop, len(objs)), len(objs))
        reply = yield ScriptCall(scripts.RESET_SWITCH, (keys.gen, keys.staging, keys.dead),
                                 (gen, STALE_RESET_SECONDS))
        if reply[0] != OK:
            raise ConcurrencyError(f"{meta.name}.reset: this reset was abandoned before it finished")
    except Exception:
        for obj in new_objs:
            obj.__dict__["_id"] = None
        reply = yield ScriptCall(scripts.RESET_ABANDON, (keys.staging, keys.dead, keys.gen), (gen,))
        if reply[0] == OK:
            yield from free_dead_flow(ctx, thorough)  # what this reset wrote, and other leftovers
        raise
    ctx.gen = gen
    for obj, record, pk in zip(objs, records, pks):
        state = obj.__dict__
        state["_id"] = pk
        state["_orig"] = record
    freed = yield from free_dead_flow(ctx, thorough)
    return pks, freed


def free_dead_flow(ctx: Context, thorough: bool = False) -> Flow[int]:
    """Free every generation in the dead set, a bounded batch per command; returns how
    many records were freed.

    Only generations that were never, or are no longer, live enter the dead set (the
    scripts that add them check the pointer), so nothing here can touch live data.
    The index keys to drop are derived from the records with the current model; with
    ``thorough``, every layout an index may have had is covered as well (any field in
    the record, hashed or not, or indexed as raw text), for use after INDEXED_FIELDS,
    ``hashIndex`` or a field's type changed.
    """
    meta, keys = ctx.meta, ctx.meta.keys
    dead = yield Command(("SMEMBERS", keys.dead))
    freed = 0
    for raw_gen in sorted(int(g) for g in dead):
        gk = keys.generation(raw_gen)
        cursor: Any = 0
        while True:
            cursor, found = yield Command(("HSCAN", gk.objs, cursor, "COUNT", FREE_BATCH))
            blobs = found.values() if isinstance(found, dict) else found[1::2]
            doomed: set[bytes] = set()
            for record in (yield from records_flow(meta, list(blobs))):
                freed += 1
                if thorough:
                    doomed.update(_every_index_key(meta, gk, record))
                    continue
                for field in meta.indexed:
                    if field.name in record:
                        doomed.add(meta.index_key(gk, field, record[field.name]))
            if doomed:
                yield Command(("UNLINK", *doomed))
            if int(cursor) == 0:
                break
        sorted_sets = [gk.score_index(f.name) for f in meta.indexed if meta.specs[f.name].numeric]
        sorted_sets += [gk.lex_index(f.name) for f in meta.indexed if meta.specs[f.name].lex]
        if thorough:
            sorted_sets = [key for name in sorted(meta.field_names)
                           for key in (gk.score_index(name), gk.lex_index(name))]
        yield ScriptCall(scripts.FREE_DONE, (keys.dead, gk.objs, gk.ids, *sorted_sets), (raw_gen,))
    return freed


def _every_index_key(meta: ModelOptions, gk: GenerationKeys, record: dict[str, Any]) -> set[bytes]:
    """Every key an index of this record may live under, in any layout it may have had."""
    keys: set[bytes] = set()
    for name, stored in record.items():
        keys.add(gk.null_index(name))
        if stored is NULL_STORED:
            continue
        candidates = {wire_bytes(stored)}
        field = meta.fields_by_name.get(name)
        if field is not None:
            try:
                raw = field._toIndex(field.fromStorage(stored))
            except Exception:  # a value the current field type cannot read
                raw = None
            if raw is not None:
                candidates.add(raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape"))
        for value in candidates:
            keys.add(gk.index(name, value))
            keys.add(gk.index(name, digest(value)))
    return keys
