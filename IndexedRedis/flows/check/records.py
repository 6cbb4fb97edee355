"""check, records -> indexes: the records are read with HSCAN, a batch at a time, and
one read-only script per batch (check_records.lua) asks whether every index entry each
record implies is there; a record changed since it was read is skipped."""

from __future__ import annotations

from functools import partial
from typing import Any

import msgpack

from ... import scripts
from ...entries import score_arg
from ...fields import NULL_STORED, wire_bytes
from ...keys import lex_member, padded_pk
from ..common import STALE_GEN, KeyNumbers
from ..requests import Command, Flow, ScriptCall
from .state import CheckPass, Fix, Moved, apply, pk_of

__all__ = ["records_flow"]


def records_flow(p: CheckPass, total: int) -> Flow[None]:
    """HSCAN the records a batch at a time; each batch's check goes in one round trip
    with the next batch's HSCAN."""
    cursor, found = yield Command(("HSCAN", p.gk.objs, 0, "COUNT", p.batch))
    done = 0
    while True:
        pairs = list(found.items()) if isinstance(found, dict) else list(zip(found[::2], found[1::2]))
        check = _check_request(p, pairs)
        more = int(cursor) != 0
        requests: list[Any] = ([check[0]] if check else []) + (
            [Command(("HSCAN", p.gk.objs, cursor, "COUNT", p.batch))] if more else [])
        replies = (yield requests) if requests else []
        if check:
            yield from _judge_records(p, replies[0], check[1])
        done += len(pairs)
        if p.progress is not None:
            p.progress("records", done, max(total, done))
        if not more:
            return
        cursor, found = replies[-1]


def _decode(p: CheckPass, pk: int, blob: bytes) -> dict[str, Any] | None:
    """A stored record as field name -> stored value, or None (reported) when it
    cannot be read."""
    try:
        values = msgpack.unpackb(blob, raw=False, unicode_errors="surrogateescape", use_list=False)
    except Exception:  # noqa: BLE001 - anything unreadable is reported
        values = None
    key = p.gk.objs
    if not isinstance(values, tuple) or not values:
        p.report.add("bad_record", key, pk, f"not a msgpack array: {blob[:40]!r}")
        return None
    tag = values[-1]
    names = p.schemas.get(tag) if isinstance(tag, int) else None
    if names is None:
        p.report.add("unknown_schema", key, pk, f"schema tag {tag!r}")
        return None
    if len(names) != len(values) - 1:
        p.report.add("bad_record", key, pk, f"{len(values) - 1} values for the {len(names)} fields of "
                                               f"schema {tag}")
        return None
    p.report.schemas[tag] = p.report.schemas.get(tag, 0) + 1
    return dict(zip(names, values[:-1]))


def _check_request(p: CheckPass, pairs: list[tuple[bytes, bytes]]) -> tuple[ScriptCall, list[Any]] | None:
    """The check_records.lua call for a batch of records, and what each record
    implies (None when no record of the batch can be checked)."""
    meta, gk = p.meta, p.gk
    number = KeyNumbers((p.keys.gen, gk.objs))
    args: list[Any] = [p.gen]
    checked: list[tuple[int, bytes, bytes, list[tuple[str, bytes, int, Any]]]] = []
    for raw_pk, blob in pairs:
        p.report.objects += 1
        pk = pk_of(raw_pk)
        if pk is None:
            p.report.add("bad_pk", gk.objs, detail=f"hash field {raw_pk[:40]!r}")
            continue
        p.max_pk = max(p.max_pk, pk)
        record = _decode(p, pk, blob)
        if record is None:
            continue
        checks: list[tuple[str, bytes, int, Any]] = [("I", gk.ids, number(gk.ids), b"")]
        for indexed in meta.indexed:
            name = indexed.name
            if name not in record:
                p.report.add("lacks_field", gk.objs, pk, f"no value for {name!r}")
                continue
            stored = record[name]
            spec = meta.specs[name]
            try:
                key = meta.index_key(gk, indexed, stored)
                score = score_arg(indexed, stored) if spec.numeric else b""
            except Exception as exc:  # noqa: BLE001 - a value the field cannot read
                p.report.add("bad_value", gk.objs, pk, f"{name}: {stored!r} ({exc})")
                continue
            checks.append(("S", key, number(key), b""))
            if spec.numeric:
                zkey = gk.score_index(name)
                checks.append(("Z" if score else "A", zkey, number(zkey), score))
            if spec.text and stored is not NULL_STORED:
                p.text_implied.setdefault(name, set()).add(wire_bytes(stored))
            if spec.lex and stored is not NULL_STORED:
                xkey = gk.lex_index(name)
                checks.append(("X", xkey, number(xkey), lex_member(wire_bytes(stored), pk)))
        args += (raw_pk, blob, len(checks))
        for what, key, key_number, value in checks:
            args += (what, key_number, value)
            if what != "A":
                p.expect(key)
        checked.append((pk, raw_pk, blob, checks))
    if not checked:
        return None
    return ScriptCall(scripts.CHECK_RECORDS, number.keys, args), checked


def _judge_records(p: CheckPass, reply: Any, checked: list[Any]) -> Flow[None]:
    """The findings (and, for a repair, the fixes) of a check_records.lua reply."""
    if reply[0] == STALE_GEN:
        raise Moved
    failed = reply[1]
    fixes: list[Fix] = []
    for position in range(0, len(failed), 3):
        r, c, seen = int(failed[position]), int(failed[position + 1]), failed[position + 2]
        if c == 0:
            continue  # changed since it was read: the save that changed it kept its entries exact
        pk, raw_pk, blob, checks = checked[r - 1]
        what, key, _, value = checks[c - 1]
        if seen == b"T":
            p.wrong_type(key, "another type")
            continue
        if not seen:
            p.expect(key, -1)  # not there: the key's size is one less than the records imply
        fix = partial(Fix, key=key, pk=raw_pk, belief=b"b", belief_value=blob, adds=not seen)
        if what == "I":
            p.report.add("missing_id", key, pk)
            fixes.append(fix("missing_id", b"IADD", member=raw_pk))
        elif what == "S":
            p.report.add("missing_entry", key, pk)
            fixes.append(fix("missing_entry", b"SADD", member=raw_pk))
        elif what == "X":
            p.report.add("missing_entry", key, pk, "lexicographic entry")
            fixes.append(fix("missing_entry", b"ZADD", member=value, score=b"0"))
        elif what == "Z":
            detail = f"scored {seen.decode()}, its value scores {value.decode()}" if seen else "missing"
            p.report.add("wrong_score", key, pk, detail)
            fixes.append(fix("wrong_score", b"ZADD", member=padded_pk(pk), score=value))
        else:
            p.report.add("wrong_score", key, pk, f"scored {seen.decode()}, but its value has no score")
            fixes.append(fix("wrong_score", b"ZREM", member=padded_pk(pk)))
    if p.repair:
        yield from apply(p, fixes)
