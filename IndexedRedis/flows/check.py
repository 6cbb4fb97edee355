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
   entry checked against the record it names.

A repair sends each batch's fixes as one script (``repair.lua``) that first checks,
for every fix, that the record is still what the check saw: a fix never undoes a
concurrent save or delete, and a batch is applied whole or not at all.  Every fix
adds an entry a record implies or drops one no record backs, so a query's answer
only ever moves towards the right one while a repair runs.  Garbage keys found by
SCAN are dropped by ``free_keys.lua``, which refuses a live or staging generation.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import msgpack

from .. import scripts
from ..entries import score_arg, sorted_index_keys
from ..exceptions import ConcurrencyError
from ..fields import NULL_STORED, wire_bytes
from ..keys import GENERATION_KINDS, KeyInfo, lex_member, padded_pk
from ..records import schema_tag
from ..reports import CheckReport
from .common import STALE_GEN, KeyNumbers, script
from .context import Context
from .inspect import ModelState, model_state_flow, scan_flow
from .requests import Command, Flow, ScriptCall
from .reset import sweep_flow

if TYPE_CHECKING:
    from ..options import ModelOptions

__all__ = ["check_flow", "CHECK_BATCH", "CHECK_BUDGET", "WALK_KEYS"]

CHECK_BATCH = 100    # records checked per script call
CHECK_BUDGET = 300   # index entries walked per script call
WALK_KEYS = 100      # index keys looked at per script call (each a cursor of its own)
#: Index keys whose expected size the records pass remembers (a few dozen bytes each);
#: keys beyond it are walked entry by entry instead of being compared by size.
EXPECTED_KEYS = 2_000_000
FIX_BATCH = 500      # fixes per repair script call
FREE_KEYS = 200      # garbage keys dropped per script call
MAX_RESTARTS = 5     # a reset replaced the data during the check: begin again
_KNOWN_VALUES = 16   # stored values remembered per index key as belonging there

Progress = Callable[[str, int, "int | None"], None]


class _Moved(Exception):
    """A reset made another generation live: the check begins again on it."""


@dataclass
class _Walk:
    """An index key of the live generation, walked with a cursor."""

    key: bytes
    mode: bytes            # b"v" value set, b"n" null set, b"z" score, b"x" lex, b"i" ids
    field: str
    expected: int = -1     # how many entries the records imply (-1: not known)
    cursor: bytes = b"0"
    known: list[bytes] = dataclasses.field(default_factory=list)
    size: int | None = None
    stale: int = 0


@dataclass(frozen=True, slots=True)
class _Fix:
    kind: str              # the finding it repairs
    op: bytes              # SADD SREM ZADD ZREM MAX
    key: bytes
    member: Any
    score: Any = b""
    pk: Any = b""
    belief: bytes = b"x"   # see repair.lua
    belief_field: str = ""
    belief_kind: bytes = b""
    belief_value: Any = b""
    adds: bool = False     # adds an entry the records imply (one more in the key)


def _pk_of(raw: bytes) -> int | None:
    """A record's hash field as a pk (None when it is not one)."""
    if not raw.isdigit() or (raw[:1] == b"0" and len(raw) > 1):
        return None
    return int(raw)


def _stored(kind: bytes, value: Any) -> Any:
    """A value check_members.lua sent back, in the stored form the codec gives."""
    if kind == b"n" or value is None:
        return NULL_STORED
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _belief_of(value: Any) -> tuple[bytes, Any]:
    """The (kind, value) a repair belief holds for a stored value check_members.lua saw."""
    if value is None or value is False:
        return b"n", b""
    return b"v", value


def check_flow(ctx: Context, repair: bool = False, batch: int = CHECK_BATCH, budget: int = CHECK_BUDGET,
               progress: Progress | None = None) -> Flow[CheckReport]:
    """Check the model's data (and with ``repair``, fix what can be fixed in place);
    returns the report.  ``progress(phase, done, total)`` is called after each step
    ('records' with their total, then 'keys' without one)."""
    started = time.monotonic()
    for restarts in range(MAX_RESTARTS + 1):
        checker = _Checker(ctx, repair, batch, budget, progress)
        try:
            yield from checker.run()
        except _Moved:
            continue
        checker.report.restarts = restarts
        checker.report.seconds = time.monotonic() - started
        return checker.report
    raise ConcurrencyError(f"{ctx.meta.name}: the dataset kept being reset while it was checked "
                           f"({MAX_RESTARTS + 1} times); check it when resets are not running back to back")


class _Checker:
    """One pass of a check over one live generation."""

    def __init__(self, ctx: Context, repair: bool, batch: int, budget: int, progress: Progress | None) -> None:
        self.ctx = ctx
        self.meta: ModelOptions = ctx.meta
        self.keys = ctx.meta.keys
        self.repair = repair
        self.batch = batch
        self.budget = budget
        self.progress = progress
        self.report = CheckReport(ctx.meta.name, ctx.meta.keys.prefix, repair=repair)
        self.gen = 0
        self.gk = self.keys.generation(0)
        self.schemas: dict[int, tuple[str, ...]] = {}
        self.wrong_typed: set[bytes] = set()
        self.max_pk = 0
        self.running: set[int] = set()
        self.abandoned: set[int] = set()
        self.dead: set[int] = set()
        self.asked: set[int] = set()  # generations looked up in the staging zset since
        self.lost: set[int] = set()   # generations that hold data while the pointer is gone
        self.pointer_gone = False
        # How many entries the records imply in each index key (by the key's hash, to
        # keep it small): a key of that size holds nothing stale, since every implied
        # entry was found there.  Keys not counted (beyond EXPECTED_KEYS) are walked.
        self.expected: dict[int, int] = {}
        self.counted_all = True

    # ---- the phases ------------------------------------------------------------------

    def run(self) -> Flow[None]:
        state = yield from model_state_flow(self.ctx)
        if isinstance(state, str):
            self.report.add("bad_pointer", self.keys.gen, detail=f"the generation pointer holds {state}")
            return
        self.gen = self.report.generation = state.gen
        self.gk = self.keys.generation(state.gen)
        # A reset always sets the pointer: gone while resets happened (or with no live
        # records), it was lost, and other generations may hold the data.
        self.pointer_gone = state.pointer is None and (state.genseq is not None or not state.records)
        self._server(state)
        fixes = self._bookkeeping(state)
        if self.repair:
            yield from self._apply(fixes)
            swept = yield from sweep_flow(self.ctx)  # lapsed leases: their generations are dead now
            self.dead |= {gen for gen in swept if gen != self.gen}
            self.abandoned -= self.dead
        if self.gk.objs not in state.wrong_types:
            yield from self._records(state.records)
        yield from self._keys()
        if self.keys.nextpk not in state.wrong_types:
            yield from self._counters()
        if self.repair:
            for gen in sorted(self.dead):  # their keys are gone (SCAN found them all): forget them
                gk = self.keys.generation(gen)
                yield ScriptCall(scripts.FREE_DONE, (self.keys.dead, gk.objs, gk.ids,
                                                     *sorted_index_keys(self.meta, gk, False)), (gen,))

    def _server(self, state: ModelState) -> None:
        evicted = state.info.get("evicted_keys")
        self.report.evicted_keys = int(evicted) if evicted and evicted.isdigit() else None
        self.report.maxmemory_policy = state.info.get("maxmemory_policy")

    def _bookkeeping(self, state: ModelState) -> list[_Fix]:
        """Judge pointers, counters, leases and schema tags; returns the fixes to make
        before anything is freed (a live generation marked dead must be unmarked first)."""
        report, keys = self.report, self.keys
        for key, kind in state.wrong_types.items():
            self._wrong_type(key, kind)
        fixes: list[_Fix] = []
        top = self.gen
        for gen_raw, lease_end in state.staging:
            gen = _pk_of(gen_raw)
            if gen is None:
                report.add("bad_pointer", keys.staging, detail=f"staging lists {gen_raw!r}, not a generation")
            elif gen == self.gen:
                report.add("live_marked_dead", keys.staging, detail=f"the live generation {gen} is listed as staging")
                fixes.append(_Fix("live_marked_dead", b"ZREM", keys.staging, gen_raw))
            elif lease_end > state.now_ms:
                self.running.add(gen)
                report.running_resets[gen] = int(lease_end - state.now_ms)
            else:
                self.abandoned.add(gen)
            top = max(top, gen or 0)
        for gen_raw in state.dead:
            gen = _pk_of(gen_raw)
            if gen is None:
                report.add("bad_pointer", keys.dead, detail=f"the dead set lists {gen_raw!r}, not a generation")
            elif gen == self.gen:
                report.add("live_marked_dead", keys.dead, detail=f"the live generation {gen} is in the dead set")
                fixes.append(_Fix("live_marked_dead", b"SREM", keys.dead, gen_raw))
            else:
                self.dead.add(gen)
            top = max(top, gen or 0)
        genseq = self._counter(keys.genseq, state.genseq)
        if genseq is not None and genseq < top:
            report.add("counter_behind", keys.genseq,
                       detail=f"the generation counter is {genseq}, but generation {top} exists")
            fixes.append(_Fix("counter_behind", b"MAX", keys.genseq, top))
        for tag_raw, packed in state.schemas:
            names = self._schema(tag_raw, packed)
            if names is not None:
                self.schemas[int(tag_raw)] = names
        return fixes

    def _counter(self, key: bytes, raw: bytes | None) -> int | None:
        if raw is None:
            return 0
        value = _pk_of(raw)
        if value is None:
            self.report.add("bad_pointer", key, detail=f"holds {raw!r}, not a number")
        return value

    def _schema(self, tag_raw: bytes, packed: bytes) -> tuple[str, ...] | None:
        try:
            names = msgpack.unpackb(packed, raw=False, use_list=False)
        except Exception:  # noqa: BLE001 - anything unreadable is reported
            names = None
        if (not isinstance(names, tuple) or not all(isinstance(n, str) for n in names) or _pk_of(tag_raw) is None
                or schema_tag(names) != int(tag_raw)):
            self.report.add("bad_schema", self.keys.schemas,
                            detail=f"tag {tag_raw.decode('ascii', 'backslashreplace')} -> {packed[:60]!r}")
            return None
        return names

    # ---- records -> indexes ------------------------------------------------------------

    def _records(self, total: int) -> Flow[None]:
        """HSCAN the records a batch at a time; each batch's check goes in one round trip
        with the next batch's HSCAN."""
        cursor, found = yield Command(("HSCAN", self.gk.objs, 0, "COUNT", self.batch))
        done = 0
        while True:
            pairs = list(found.items()) if isinstance(found, dict) else list(zip(found[::2], found[1::2]))
            check = self._check_request(pairs)
            more = int(cursor) != 0
            requests: list[Any] = ([check[0]] if check else []) + (
                [Command(("HSCAN", self.gk.objs, cursor, "COUNT", self.batch))] if more else [])
            replies = (yield requests) if requests else []
            if check:
                yield from self._judge_records(replies[0], check[1])
            done += len(pairs)
            if self.progress is not None:
                self.progress("records", done, max(total, done))
            if not more:
                return
            cursor, found = replies[-1]

    def _expect(self, key: bytes, more: int = 1) -> None:
        slot = hash(key)
        count = self.expected.get(slot)
        if count is not None:
            self.expected[slot] = count + more
        elif len(self.expected) < EXPECTED_KEYS:
            self.expected[slot] = more
        else:
            self.counted_all = False

    def _expected(self, key: bytes) -> int:
        """How many entries the records imply in ``key`` (-1: not known)."""
        count = self.expected.get(hash(key))
        if count is not None:
            return count
        return 0 if self.counted_all else -1

    def _decode(self, pk: int, blob: bytes) -> dict[str, Any] | None:
        """A stored record as field name -> stored value, or None (reported) when it
        cannot be read."""
        try:
            values = msgpack.unpackb(blob, raw=False, unicode_errors="surrogateescape", use_list=False)
        except Exception:  # noqa: BLE001 - anything unreadable is reported
            values = None
        key = self.gk.objs
        if not isinstance(values, tuple) or not values:
            self.report.add("bad_record", key, pk, f"not a msgpack array: {blob[:40]!r}")
            return None
        tag = values[-1]
        names = self.schemas.get(tag) if isinstance(tag, int) else None
        if names is None:
            self.report.add("unknown_schema", key, pk, f"schema tag {tag!r}")
            return None
        if len(names) != len(values) - 1:
            self.report.add("bad_record", key, pk, f"{len(values) - 1} values for the {len(names)} fields of "
                                                   f"schema {tag}")
            return None
        self.report.schemas[tag] = self.report.schemas.get(tag, 0) + 1
        return dict(zip(names, values[:-1]))

    def _check_request(self, pairs: list[tuple[bytes, bytes]]) -> tuple[ScriptCall, list[Any]] | None:
        """The check_records.lua call for a batch of records, and what each record
        implies (None when no record of the batch can be checked)."""
        meta, gk = self.meta, self.gk
        number = KeyNumbers((self.keys.gen, gk.objs))
        args: list[Any] = [self.gen]
        checked: list[tuple[int, bytes, bytes, list[tuple[str, bytes, int, Any]]]] = []
        for raw_pk, blob in pairs:
            self.report.objects += 1
            pk = _pk_of(raw_pk)
            if pk is None:
                self.report.add("bad_pk", gk.objs, detail=f"hash field {raw_pk[:40]!r}")
                continue
            self.max_pk = max(self.max_pk, pk)
            record = self._decode(pk, blob)
            if record is None:
                continue
            checks: list[tuple[str, bytes, int, Any]] = [("I", gk.ids, number(gk.ids), b"")]
            for indexed in meta.indexed:
                name = indexed.name
                if name not in record:
                    self.report.add("lacks_field", gk.objs, pk, f"no value for {name!r}")
                    continue
                stored = record[name]
                spec = meta.specs[name]
                try:
                    key = meta.index_key(gk, indexed, stored)
                    score = score_arg(indexed, stored) if spec.numeric else b""
                except Exception as exc:  # noqa: BLE001 - a value the field cannot read
                    self.report.add("bad_value", gk.objs, pk, f"{name}: {stored!r} ({exc})")
                    continue
                checks.append(("S", key, number(key), b""))
                if spec.numeric:
                    zkey = gk.score_index(name)
                    checks.append(("Z" if score else "A", zkey, number(zkey), score))
                if spec.lex and stored is not NULL_STORED:
                    xkey = gk.lex_index(name)
                    checks.append(("X", xkey, number(xkey), lex_member(wire_bytes(stored), pk)))
            args += (raw_pk, blob, len(checks))
            for what, key, key_number, value in checks:
                args += (what, key_number, value)
                if what != "A":
                    self._expect(key)
            checked.append((pk, raw_pk, blob, checks))
        if not checked:
            return None
        return ScriptCall(scripts.CHECK_RECORDS, number.keys, args), checked

    def _judge_records(self, reply: Any, checked: list[Any]) -> Flow[None]:
        """The findings (and, for a repair, the fixes) of a check_records.lua reply."""
        if reply[0] == STALE_GEN:
            raise _Moved
        failed = reply[1]
        fixes: list[_Fix] = []
        for position in range(0, len(failed), 3):
            r, c, seen = int(failed[position]), int(failed[position + 1]), failed[position + 2]
            if c == 0:
                continue  # changed since it was read: the save that changed it kept its entries exact
            pk, raw_pk, blob, checks = checked[r - 1]
            what, key, _, value = checks[c - 1]
            if seen == b"T":
                self._wrong_type(key, "another type")
                continue
            if not seen:
                self._expect(key, -1)  # not there: the key's size is one less than the records imply
            fix = partial(_Fix, key=key, pk=raw_pk, belief=b"b", belief_value=blob, adds=not seen)
            if what == "I":
                self.report.add("missing_id", key, pk, "" if not seen else f"scored {seen.decode()}")
                fixes.append(fix("missing_id", b"ZADD", member=raw_pk, score=raw_pk))
            elif what == "S":
                self.report.add("missing_entry", key, pk)
                fixes.append(fix("missing_entry", b"SADD", member=raw_pk))
            elif what == "X":
                self.report.add("missing_entry", key, pk, "lexicographic entry")
                fixes.append(fix("missing_entry", b"ZADD", member=value, score=b"0"))
            elif what == "Z":
                detail = f"scored {seen.decode()}, its value scores {value.decode()}" if seen else "missing"
                self.report.add("wrong_score", key, pk, detail)
                fixes.append(fix("wrong_score", b"ZADD", member=padded_pk(pk), score=value))
            else:
                self.report.add("wrong_score", key, pk, f"scored {seen.decode()}, but its value has no score")
                fixes.append(fix("wrong_score", b"ZREM", member=padded_pk(pk)))
        if self.repair:
            yield from self._apply(fixes)

    # ---- indexes -> records, garbage -------------------------------------------------

    def _keys(self) -> Flow[None]:
        cursor = 0
        pending: list[_Walk] = []
        while True:
            cursor, found = yield from scan_flow(self.ctx, cursor)
            self.report.keys_scanned += len(found)
            infos = [self.keys.classify(key) for key in found]
            yield from self._new_resets(infos)
            garbage: dict[tuple[str, int], list[bytes]] = {}
            for key, info in zip(found, infos):
                walk = self._judge(key, info, garbage)
                if walk is not None:
                    pending.append(walk)
            if self.repair:
                yield from self._free(garbage)
            while len(pending) >= WALK_KEYS:
                pending = yield from self._walk(pending)
            if self.progress is not None:
                self.progress("keys", self.report.keys_scanned, None)
            if cursor == 0:
                break
        while pending:
            pending = yield from self._walk(pending)

    def _new_resets(self, infos: list[KeyInfo]) -> Flow[None]:
        """Generations the bookkeeping did not know when the check began may be resets
        begun since: those that are staging now are left alone (and so are those that
        hold records while the pointer is gone)."""
        known = self.running | self.abandoned | self.dead | self.asked | {self.gen}
        unknown = sorted({info.gen for info in infos if info.gen is not None and info.gen not in known})
        if not unknown:
            return
        self.asked.update(unknown)
        scores = yield Command(("ZMSCORE", self.keys.staging, *unknown))
        self.running.update(gen for gen, score in zip(unknown, scores) if score is not None)
        if self.pointer_gone:  # a generation with records may be the lost live one: left alone
            others = [gen for gen, score in zip(unknown, scores) if score is None]
            held = yield [Command(("EXISTS", self.keys.generation(gen).objs)) for gen in others]
            for gen, exists in zip(others, held):
                if int(exists):
                    self.lost.add(gen)
                    self.report.add("pointer_lost", self.keys.gen,
                                    detail=f"the pointer is gone; generation {gen} holds records")

    def _judge(self, key: bytes, info: KeyInfo, garbage: dict[tuple[str, int], list[bytes]]) -> _Walk | None:
        """What a key found by SCAN is: a live index key to walk (returned), garbage
        (noted, by kind and generation), or bookkeeping."""
        if info.kind not in GENERATION_KINDS:
            if info.kind == "unknown":
                self.report.add("unknown_key", key)
            return None
        assert info.gen is not None
        if info.gen != self.gen:
            if info.gen in self.running:
                return None
            if info.gen in self.lost:
                return None
            kind = ("abandoned_reset" if info.gen in self.abandoned else
                    "dead_generation" if info.gen in self.dead else "orphan_key")
            self.report.add(kind, key, detail=f"generation {info.gen}")
            garbage.setdefault((kind, info.gen), []).append(key)
            return None
        if info.kind == "objs":
            return None
        if info.kind == "ids":
            return _Walk(key, b"i", "", self._expected(key))
        assert info.field is not None
        spec = self.meta.specs.get(info.field)
        current = spec is not None and (info.kind in ("value", "null") or (info.kind == "score" and spec.numeric)
                                        or (info.kind == "lex" and spec.lex))
        if not current:
            self.report.add("former_layout", key, detail=f"{info.kind} index of {info.field!r}")
            garbage.setdefault(("former_layout", self.gen), []).append(key)
            return None
        mode = {"value": b"v", "null": b"n", "score": b"z", "lex": b"x"}[info.kind]
        return _Walk(key, mode, info.field, self._expected(key))

    def _walk(self, pending: list[_Walk]) -> Flow[list[_Walk]]:
        """One check_members.lua call over the first keys of ``pending``; returns the
        keys still to walk."""
        now, rest = pending[:WALK_KEYS], pending[WALK_KEYS:]
        gk = self.gk
        keys = [self.keys.gen, gk.objs, self.keys.schemas]
        args: list[Any] = [self.gen, self.budget]
        for walk in now:
            keys.append(walk.key)
            args += (walk.mode, walk.field, walk.cursor, walk.expected, len(walk.known), *walk.known)
        reply = yield from script((self.meta,), ScriptCall(scripts.CHECK_MEMBERS, keys, args))
        if reply[0] == STALE_GEN:
            raise _Moved
        fixes: list[_Fix] = []
        later: list[_Walk] = []
        for walk, (cursor, seen, size, status, found) in zip(now, reply[1]):
            if status == b"later":
                later.append(walk)
                continue
            if status:
                self._wrong_type(walk.key, status.decode())
                continue
            if walk.size is None:
                walk.size = int(size)
                if cursor == b"0" and not int(seen):
                    seen = size  # its size was the expected one: it was not walked
            self.report.entries += int(seen)
            for position in range(0, len(found), 3):
                fix = self._judge_entry(walk, found[position], found[position + 1], found[position + 2])
                if fix is not None:
                    walk.stale += 1
                    fixes.append(fix)
            if cursor != b"0":
                walk.cursor = cursor
                later.append(walk)
                continue
            self.report.index_keys += 1
            spec = self.meta.specs.get(walk.field)
            if walk.mode == b"v" and spec is not None and spec.unique and walk.size - walk.stale > 1:
                self.report.add("unique_clash", walk.key,
                                detail=f"{walk.size - walk.stale} objects have this {walk.field}")
        if self.repair:
            yield from self._apply(fixes)
        return later + rest

    def _judge_entry(self, walk: _Walk, member: bytes, code: bytes, value: Any) -> _Fix | None:
        """One entry check_members.lua flagged: the fix for it when it is stale (and the
        finding noted), or None."""
        key, mode = walk.key, walk.mode
        if code in (b"a", b"u"):
            return None  # the record itself is reported by the records pass
        pk = int(member[-12:]) if mode in (b"z", b"x") and code != b"f" else _pk_of(member)
        kind = "stale_id" if mode == b"i" else "stale_entry"
        if code == b"f":
            self.report.add(kind, key, None, f"entry {member[:40]!r} names no pk")
            return _Fix(kind, b"ZREM", key, member)
        remove = b"SREM" if mode in (b"v", b"n") else b"ZREM"
        if code == b"m":
            self.report.add(kind, key, pk, "no record")
            return _Fix(kind, remove, key, member, pk=member if mode in (b"v", b"n", b"i") else str(pk),
                        belief=b"a")
        if code == b"v" and mode == b"v":
            stored = _stored(b"v", value)
            try:
                belongs = self.meta.index_key(self.gk, self.meta.fields_by_name[walk.field], stored) == key
            except Exception:  # noqa: BLE001 - the records pass reports the value
                return None
            if belongs:
                if len(walk.known) < _KNOWN_VALUES:
                    walk.known.append(value)
                return None
        belief_kind, belief_value = _belief_of(value if code != b"n" else None)
        self.report.add(kind, key, pk, f"the record's {walk.field} is "
                                       f"{'irNull' if belief_kind == b'n' else repr(_stored(b'v', value))}")
        return _Fix(kind, remove, key, member, pk=str(pk), belief=b"f", belief_field=walk.field,
                    belief_kind=belief_kind, belief_value=belief_value)

    def _counters(self) -> Flow[None]:
        """The pk counter against the highest pk seen (read after the records: objects
        saved meanwhile moved it on)."""
        nextpk = self._counter(self.keys.nextpk, (yield Command(("GET", self.keys.nextpk))))
        if nextpk is not None and nextpk < self.max_pk:
            self.report.add("counter_behind", self.keys.nextpk,
                            detail=f"the pk counter is {nextpk}, but pk {self.max_pk} is stored")
            if self.repair:
                yield from self._apply([_Fix("counter_behind", b"MAX", self.keys.nextpk, self.max_pk)])

    def _wrong_type(self, key: bytes, kind: str) -> None:
        if key not in self.wrong_typed:
            self.wrong_typed.add(key)
            self.report.add("wrong_type", key, detail=f"holds {kind}")

    # ---- repairs ---------------------------------------------------------------------

    def _apply(self, fixes: list[_Fix]) -> Flow[None]:
        """Send fixes in atomic batches (repair.lua); counts those applied."""
        for start in range(0, len(fixes), FIX_BATCH):
            part = fixes[start:start + FIX_BATCH]
            number = KeyNumbers((self.keys.gen, self.gk.objs, self.keys.schemas))
            args: list[Any] = [self.gen]
            for fix in part:
                args += (fix.op, number(fix.key), fix.member, fix.score, fix.pk, fix.belief, fix.belief_field,
                         fix.belief_kind, fix.belief_value)
            reply = yield from script((self.meta,), ScriptCall(scripts.REPAIR, number.keys, args))
            if reply[0] == STALE_GEN:
                raise _Moved
            for fix, applied in zip(part, reply[1]):
                if applied == ord("1"):
                    self.report.repaired[fix.kind] += 1
                    if fix.adds:
                        self._expect(fix.key)

    def _free(self, garbage: dict[tuple[str, int], list[bytes]]) -> Flow[None]:
        """Drop garbage keys found by SCAN, a bounded batch per call (free_keys.lua
        refuses a generation that is live or being written, and 'layout' keys once
        their generation is no longer live)."""
        for (kind, gen), found in garbage.items():
            mode = b"layout" if kind == "former_layout" else b"gen"
            for start in range(0, len(found), FREE_KEYS):
                part = found[start:start + FREE_KEYS]
                reply = yield from script((self.meta,), ScriptCall(
                    scripts.FREE_KEYS, (self.keys.gen, self.keys.staging, *part), (mode, gen)))
                if reply[0] != 1:
                    if mode == b"layout":
                        raise _Moved
                    break
                self.report.repaired[kind] += len(part)
