"""check, indexes -> records, and garbage: SCAN (MATCH the model's own hash-tagged
prefix) finds every key of the model; each key is judged by its name, and the live
generation's index keys are walked with a cursor (check_members.lua), each entry
checked against the record it names.  A repair drops the garbage keys SCAN found
(free_keys.lua, which refuses a live or staging generation)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ... import scripts
from ...fields import NULL_STORED
from ...keys import GENERATION_KINDS, PK_DIGITS, KeyInfo
from ..common import STALE_GEN, script
from ..inspection import scan_flow
from ..requests import Command, Flow, ScriptCall
from .state import CheckPass, Fix, Moved, apply, pk_of

__all__ = ["keys_flow", "Walk", "WALK_KEYS"]

WALK_KEYS = 100      # index keys looked at per script call (each a cursor of its own)
FREE_KEYS = 200      # garbage keys dropped per script call
_KNOWN_VALUES = 16   # stored values remembered per index key as belonging there


@dataclass
class Walk:
    """An index key of the live generation, walked with a cursor."""

    key: bytes
    mode: bytes            # b"v" value set, b"n" null set, b"z" score, b"x" lex, b"i" ids
    field: str
    expected: int = -1     # how many entries the records imply (-1: not known)
    cursor: bytes = b"0"
    known: list[bytes] = dataclasses.field(default_factory=list)
    size: int | None = None
    stale: int = 0


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


def keys_flow(p: CheckPass) -> Flow[None]:
    """SCAN the model's keys a step at a time, judge each, and walk the live index keys
    (a call per WALK_KEYS of them); a repair drops each step's garbage as it goes."""
    cursor = 0
    pending: list[Walk] = []
    while True:
        cursor, found = yield from scan_flow(p.ctx, cursor)
        p.report.keys_scanned += len(found)
        infos = [p.keys.classify(key) for key in found]
        yield from _new_resets(p, infos)
        garbage: dict[tuple[str, int], list[bytes]] = {}
        for key, info in zip(found, infos):
            walk = _judge_key(p, key, info, garbage)
            if walk is not None:
                pending.append(walk)
        if p.repair:
            yield from _free(p, garbage)
        while len(pending) >= WALK_KEYS:
            pending = yield from _walk_keys(p, pending)
        if p.progress is not None:
            p.progress("keys", p.report.keys_scanned, None)
        if cursor == 0:
            break
    while pending:
        pending = yield from _walk_keys(p, pending)


def _new_resets(p: CheckPass, infos: list[KeyInfo]) -> Flow[None]:
    """Generations the bookkeeping did not know when the check began may be resets
    begun since: those that are staging now are left alone (and so are those that
    hold records while the pointer is gone)."""
    known = p.running | p.abandoned | p.dead | p.asked | {p.gen}
    unknown = sorted({info.gen for info in infos if info.gen is not None and info.gen not in known})
    if not unknown:
        return
    p.asked.update(unknown)
    scores = yield Command(("ZMSCORE", p.keys.staging, *unknown))
    p.running.update(gen for gen, score in zip(unknown, scores) if score is not None)
    if p.pointer_gone:  # a generation with records may be the lost live one: left alone
        others = [gen for gen, score in zip(unknown, scores) if score is None]
        held = yield [Command(("EXISTS", p.keys.generation(gen).objs)) for gen in others]
        for gen, exists in zip(others, held):
            if int(exists):
                p.lost.add(gen)
                p.report.add("pointer_lost", p.keys.gen, detail=f"the pointer is gone; generation {gen} holds records")


def _judge_key(p: CheckPass, key: bytes, info: KeyInfo, garbage: dict[tuple[str, int], list[bytes]]) -> Walk | None:
    """What a key found by SCAN is: a live index key to walk (returned), garbage
    (noted, by kind and generation), or bookkeeping."""
    if info.kind not in GENERATION_KINDS:
        if info.kind == "unknown":
            p.report.add("unknown_key", key)
        return None
    assert info.gen is not None
    if info.gen != p.gen:
        if info.gen in p.running or info.gen in p.lost:
            return None
        kind = ("abandoned_reset" if info.gen in p.abandoned else
                "dead_generation" if info.gen in p.dead else "orphan_key")
        p.report.add(kind, key, detail=f"generation {info.gen}")
        garbage.setdefault((kind, info.gen), []).append(key)
        return None
    if info.kind in ("objs", "layout", "union") or (info.kind == "exp" and p.meta.ttl_ms is not None):
        return None  # records: the records pass; expiry: check/expiry.py; union: a lookup's scratch
    if info.kind == "exp":  # the model had a TTL once
        p.report.add("former_layout", key, detail="expiry zset of a model without TTL")
        garbage.setdefault(("former_layout", p.gen), []).append(key)
        return None
    if info.kind == "ids":
        return Walk(key, b"i", "", -1)  # its size counts blocks, not pks: always walked
    assert info.field is not None
    spec = p.meta.specs.get(info.field)
    current = spec is not None and (info.kind in ("value", "null") or (info.kind == "score" and spec.numeric)
                                    or (info.kind == "lex" and spec.lex)
                                    or (info.kind in ("dict", "fold") and spec.text))
    if not current:
        p.report.add("former_layout", key, detail=f"{info.kind} index of {info.field!r}")
        garbage.setdefault(("former_layout", p.gen), []).append(key)
        return None
    if info.kind in ("dict", "fold"):
        return None  # checked both ways by dictionaries.py
    mode = {"value": b"v", "null": b"n", "score": b"z", "lex": b"x"}[info.kind]
    return Walk(key, mode, info.field, p.expected_size(key))


def _walk_keys(p: CheckPass, pending: list[Walk]) -> Flow[list[Walk]]:
    """One check_members.lua call over the first keys of ``pending``; returns the
    keys still to walk."""
    now, rest = pending[:WALK_KEYS], pending[WALK_KEYS:]
    gk = p.gk
    keys = [p.keys.gen, gk.objs, p.keys.schemas]
    args: list[Any] = [p.gen, p.budget]
    for walk in now:
        keys.append(walk.key)
        args += (walk.mode, walk.field, walk.cursor, walk.expected, len(walk.known), *walk.known)
    reply = yield from script((p.meta,), ScriptCall(scripts.CHECK_MEMBERS, keys, args))
    if reply[0] == STALE_GEN:
        raise Moved
    fixes: list[Fix] = []
    later: list[Walk] = []
    for walk, (cursor, seen, size, status, found) in zip(now, reply[1]):
        if status == b"later":
            later.append(walk)
            continue
        if status:
            p.wrong_type(walk.key, status.decode())
            continue
        if walk.size is None:
            walk.size = int(size)
            if cursor == b"0" and not int(seen):
                seen = size  # its size was the expected one: it was not walked
        p.report.entries += int(seen)
        for position in range(0, len(found), 3):
            fix = _judge_entry(p, walk, found[position], found[position + 1], found[position + 2])
            if fix is not None:
                walk.stale += 1
                fixes.append(fix)
        if cursor != b"0":
            walk.cursor = cursor
            later.append(walk)
            continue
        p.report.index_keys += 1
        spec = p.meta.specs.get(walk.field)
        if walk.mode == b"v" and spec is not None and spec.unique and walk.size - walk.stale > 1:
            p.report.add("unique_clash", walk.key,
                            detail=f"{walk.size - walk.stale} objects have this {walk.field}")
    if p.repair:
        yield from apply(p, fixes)
    return later + rest


def _judge_entry(p: CheckPass, walk: Walk, member: bytes, code: bytes, value: Any) -> Fix | None:
    """One entry check_members.lua flagged: the fix for it when it is stale (and the
    finding noted), or None."""
    key, mode = walk.key, walk.mode
    if code in (b"a", b"u"):
        return None  # the record itself is reported by the records pass
    pk = int(member[-PK_DIGITS:]) if mode in (b"z", b"x") and code != b"f" else pk_of(member)
    kind = "stale_id" if mode == b"i" else "stale_entry"
    if code == b"f":
        p.report.add(kind, key, None, f"entry {member[:40]!r} names no pk")
        return Fix(kind, b"ZREM", key, member)
    remove = b"SREM" if mode in (b"v", b"n") else b"IREM" if mode == b"i" else b"ZREM"
    if code == b"m":
        p.report.add(kind, key, pk, "no record")
        return Fix(kind, remove, key, member, pk=member if mode in (b"v", b"n", b"i") else str(pk),
                    belief=b"a")
    if code == b"v" and mode == b"v":
        stored = _stored(b"v", value)
        try:
            belongs = p.meta.index_key(p.gk, p.meta.fields_by_name[walk.field], stored) == key
        except Exception:  # noqa: BLE001 - the records pass reports the value
            return None
        if belongs:
            if len(walk.known) < _KNOWN_VALUES:
                walk.known.append(value)
            return None
    belief_kind, belief_value = _belief_of(value if code != b"n" else None)
    p.report.add(kind, key, pk, f"the record's {walk.field} is "
                                   f"{'irNull' if belief_kind == b'n' else repr(_stored(b'v', value))}")
    return Fix(kind, remove, key, member, pk=str(pk), belief=b"f", belief_field=walk.field,
                belief_kind=belief_kind, belief_value=belief_value)


def _free(p: CheckPass, garbage: dict[tuple[str, int], list[bytes]]) -> Flow[None]:
    """Drop garbage keys found by SCAN, a bounded batch per call (free_keys.lua
    refuses a generation that is live or being written, and 'layout' keys once
    their generation is no longer live)."""
    for (kind, gen), found in garbage.items():
        mode = b"layout" if kind == "former_layout" else b"gen"
        for start in range(0, len(found), FREE_KEYS):
            part = found[start:start + FREE_KEYS]
            reply = yield from script((p.meta,), ScriptCall(
                scripts.FREE_KEYS, (p.keys.gen, p.keys.staging, *part), (mode, gen)))
            if reply[0] != 1:
                if mode == b"layout":
                    raise Moved
                break
            p.report.repaired[kind] += len(part)
