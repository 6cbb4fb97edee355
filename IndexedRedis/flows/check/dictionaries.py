"""check, text dictionaries both ways (``textindex.py``): a field's dictionary holds
exactly the distinct values its records hold (the records pass collects them), and its
folded dictionary exactly the folded members of those whose casefold differs from
them.  Read in bounded steps (``STEP`` members a command).  A repair adds a value with
the belief that its set has members, and drops one with the belief that its set has
none (the index walk dropped what no record backs before), bumping the field's
dictionary version so that no client keeps a stale plan (``repair.lua``)."""

from __future__ import annotations

from ...textindex import block_values, fold_member
from ..requests import Command, Flow
from .state import CheckPass, Fix, apply

__all__ = ["dictionaries_flow", "STEP"]

STEP = 500  # dictionary members read per command
_UNREADABLE = ("bad_record", "unknown_schema", "bad_value", "lacks_field")


def layout_flow(p: CheckPass) -> Flow[dict[bytes, bytes]]:
    """The live generation's layout hash (with the dictionaries' versions)."""
    if not any(spec.text for spec in p.meta.specs.values()):
        return {}
    layout = yield Command(("HGETALL", p.gk.layout))
    if isinstance(layout, list):
        layout = dict(zip(layout[::2], layout[1::2]))
    return dict(layout)


def dictionaries_flow(p: CheckPass, before: dict[bytes, bytes]) -> Flow[None]:
    """``before``: the layout hash as it was before the records were read.  A field whose
    dictionary version moved since was written meanwhile (and every write keeps the
    dictionaries exact): it is not judged against the records read before."""
    names = [f.name for f in p.meta.indexed if p.meta.specs[f.name].text]
    if not names:
        return
    layout = yield from layout_flow(p)
    for name in names:
        letters = layout.get(name.encode("utf-8"))
        if letters is None or b"d" not in letters:
            continue  # not built (queries say so): nothing to compare
        version = b"v:" + name.encode("utf-8")
        if layout.get(version) != before.get(version):
            continue
        implied = p.text_implied.get(name, set())
        fixes: list[Fix] = []
        yield from _compare_flow(p, name, p.gk.text_dict(name), {value: value for value in implied}, fixes)
        folds = {}
        for value in implied:
            member = fold_member(value)
            if member:
                folds[member] = value
        yield from _compare_flow(p, name, p.gk.fold_dict(name), folds, fixes)
        if p.repair and fixes:
            yield from apply(p, fixes)


def _compare_flow(p: CheckPass, name: str, key: bytes, wanted: dict[bytes, bytes], fixes: list[Fix]) -> Flow[None]:
    """A dictionary's members against ``wanted`` (member -> the value it stands for)."""
    if key in p.wrong_typed:
        return
    seen: set[bytes] = set()
    # Records that cannot be read may hold any value: no dictionary value is judged stale.
    unsure = any(p.report.found[kind] for kind in _UNREADABLE)
    blocks = key == p.gk.text_dict(name)  # its members are blocks of values (textindex.lua)
    low = b"-"
    while True:
        got = yield Command(("ZRANGEBYLEX", key, low, b"+", "LIMIT", 0, STEP))
        for member in got:
            for entry in (block_values(member) if blocks else (member,)):
                seen.add(entry)
                if entry not in wanted and not unsure:
                    cut = entry.find(b"\x00\x00")
                    value = entry if blocks or cut < 0 else entry[cut + 2:]
                    _fix(p, "stale_entry", b"TREM" if blocks else b"DREM", key, entry, name, value, fixes)
        if len(got) < STEP:
            break
        low = b"(" + got[-1]
    for member, value in wanted.items():
        if member not in seen:
            _fix(p, "missing_entry", b"TADD" if blocks else b"DADD", key, member, name, value, fixes)


def _fix(p: CheckPass, kind: str, op: bytes, key: bytes, member: bytes, name: str, value: bytes,
         fixes: list[Fix]) -> None:
    p.report.add(kind, key, detail=f"dictionary value {value.decode('utf-8', 'replace')!r}")
    # An add holds while the value's set has members, a removal while it has none.
    adds = op in (b"DADD", b"TADD")
    fixes.append(Fix(kind, op, key, member, p.gk.layout, b"", b"s" if adds else b"z", name, b"",
                     p.gk.index(name, value), adds=adds))
