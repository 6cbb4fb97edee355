"""Text dictionaries and index layouts: pure helpers (no I/O).

Every indexed text field (``IRField.isText()``) has, per generation, a dictionary of its
distinct stored values (``GenerationKeys.text_dict``: a zset, all scores 0, whose members
are blocks of consecutive values, escaped as ``keys.lex_text`` does, so that blocks sort
by the byte order of their first value's UTF-8 text, which is Unicode code-point order,
and never overlap: see ``scripts/textindex.lua`` and ``block_values``) and a
case-folded one (``fold_dict``) holding ``<escaped casefold>\\0\\0<value>`` only for the
values whose ``str.casefold`` differs from them.  A value enters the dictionaries when
its value set gains its first member and leaves when the set empties, in the same
script as the write (``scripts/textindex.lua``).

A text lookup (``__startswith``, ``__contains``, text ranges, ...) finds *values* in a
dictionary; the query then takes the union of their sets.  Those sets must be declared
keys of the query script, so the client keeps a *plan* per (generation, condition): the
dictionary's version when it was made and the matching values.  Writes bump a field's
version (in the generation's ``layout`` hash) only when a value enters or leaves; the
query script compares the version it is given with the stored one and answers "stale"
(with fresh values when the walk is cheap) instead of a wrong result.

The ``layout`` hash also records which indexes the generation's data has built (issue
#10): per indexed field a string of letters, ``s`` value sets (``h`` when hashed),
``z`` score zset, ``x`` lex zset, ``d`` dictionaries.  A reset writes its model's
layout; the first save into an empty generation writes the writer's; a writer whose
layout lacks an index takes it out (it would not keep it up to date).  A query that
needs an index the layout lacks raises ``IndexNotBuiltError``.  A generation written
before layouts existed (non-empty, no hash) counts as having every index but the
dictionaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .keys import lex_text

if TYPE_CHECKING:
    from .options import IndexSpec

__all__ = ["block_values", "pack_blocks", "PACK_VALUES", "BLOCK_BYTES", "TextPlan", "UnionPlan", "OrderPlan",
           "layout_letters", "model_layout", "folded", "fold_member", "matches", "condition_letters", "walk_spec",
           "after_prefix", "remember", "PLAN_LIMIT"]

#: Plans kept per connection (least recently made dropped first).
PLAN_LIMIT = 4096


def layout_letters(spec: IndexSpec) -> bytes:
    """The index layout of one indexed field (see the module doc)."""
    letters = b"h" if spec.field.hashIndex else b"s"
    if spec.numeric:
        letters += b"z"
    if spec.lex:
        letters += b"x"
    if spec.text:
        letters += b"d"
    return letters


def model_layout(specs: dict[str, IndexSpec]) -> tuple[bytes, tuple[bytes, ...]]:
    """A model's layout: its digest (a readable string) and the flat (field, letters)
    list the scripts take."""
    flat: list[bytes] = []
    for name in sorted(specs):
        flat += (name.encode("utf-8"), layout_letters(specs[name]))
    digest = b",".join(flat[i] + b"=" + flat[i + 1] for i in range(0, len(flat), 2))
    return digest or b"-", tuple(flat)


#: Values per packed dictionary block, and the size that closes a block early
#: (``DICT_PACK`` and ``DICT_BLOCK_BYTES`` in ``scripts/textindex.lua``).
PACK_VALUES, BLOCK_BYTES = 64, 4096


def pack_blocks(ordered: list[bytes]) -> list[bytes]:
    """Distinct values in byte order, as dictionary blocks (``block_values`` reads one)."""
    blocks, run, size = [], [], 0
    for value in ordered:
        entry = lex_text(value)
        run.append(entry)
        size += len(entry)
        if len(run) == PACK_VALUES or size >= BLOCK_BYTES:
            blocks.append(b"".join(run))
            run, size = [], 0
    if run:
        blocks.append(b"".join(run))
    return blocks


def block_values(member: bytes) -> list[bytes]:
    """The values of one text dictionary member, a block (``scripts/textindex.lua``):
    each value escaped and ended as ``keys.lex_text`` makes it.  A member that is not
    a block (a foreign write) reads as the scripts read it: its unended rest is one
    value more (so ``check`` reports it as a stale entry, and ``repair`` takes it out)."""
    values, start = [], 0
    while start < len(member):
        end = member.find(b"\x00\x00", start)  # inside an escaped value a NUL is followed by 0x01
        if end < 0:
            end = len(member)
        values.append(member[start:end].replace(b"\x00\x01", b"\x00"))
        start = end + 2
    return values


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def folded(raw: bytes) -> bytes:
    """The case-folded form (``str.casefold``) of stored or looked-up text."""
    return _text(raw).casefold().encode("utf-8", "surrogateescape")


def fold_member(raw: bytes) -> bytes:
    """A value's member in the folded dictionary, or b'' when its casefold is itself."""
    if raw.isascii() and raw.lower() == raw:  # ASCII folds to lower case: the common case, fast
        return b""
    fold = folded(raw)
    return b"" if fold == raw else lex_text(fold) + raw


def matches(mode: bytes, a: bytes, b: bytes, value: bytes) -> bool:
    """Whether a dictionary value meets a text condition (see ``lookups.TextLookup``);
    the walk's candidates are checked with it, so the plan holds exactly the matches."""
    if mode == b"r":
        return _in_bound(value, a, low=True) and _in_bound(value, b, low=False)
    if mode == b"i":
        fold = folded(value)
        return fold == a if b == b"e" else fold.startswith(a)
    if b == b"i":
        return a in folded(value)
    return a in value


def walk_spec(mode: bytes, a: bytes, b: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """How text_walk (textindex.lua) finds a condition's candidates: lex bounds over the
    values, over the folded members (b'' min: not walked), and a substring filter."""
    if mode == b"r":
        return (a, b, b"", b"", b"")
    if mode == b"i":
        if b == b"e":
            whole = lex_text(a)
            return (b"[" + a, b"[" + a, b"[" + whole, after_prefix(whole), b"")
        if not a:
            return (b"-", b"+", b"-", b"+", b"")
        escaped = a.replace(b"\x00", b"\x00\x01")
        return (b"[" + a, after_prefix(a), b"[" + escaped, after_prefix(escaped), b"")
    return (b"-", b"+", b"-" if b == b"i" else b"", b"+", a)


def after_prefix(prefix: bytes) -> bytes:
    """The exclusive lex bound just past every text that starts with ``prefix``."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"+"
    return b"(" + stripped[:-1] + bytes([stripped[-1] + 1])


def _in_bound(value: bytes, bound: bytes, low: bool) -> bool:
    if bound in (b"-", b"+"):
        return True
    text, inclusive = bound[1:], bound[:1] == b"["
    if low:
        return value > text or (inclusive and value == text)
    return value < text or (inclusive and value == text)


def condition_letters(spec: IndexSpec, kind: str) -> bytes:
    """The index a condition of this kind reads, as a layout letter."""
    if kind == "Z":
        return b"z"
    if kind == "L":
        return b"x"
    if kind == "D":
        return b"d"
    return b"h" if spec.field.hashIndex else b"s"


@dataclass(frozen=True, slots=True)
class TextPlan:
    """The values of a field's dictionary that meet a condition, at ``version``."""

    version: bytes
    values: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class UnionPlan:
    """A large ``TextPlan`` whose value sets were gathered, in bounded steps, into the
    scratch sets ``keys`` (``flows/text.py``), while the layout's count of index writes
    was ``writes``: the query reads those instead of the value sets."""

    version: bytes
    keys: tuple[bytes, ...]
    writes: bytes


@dataclass(frozen=True, slots=True)
class OrderPlan:
    """The first values of a field's dictionary in one direction, at ``version``;
    ``complete`` when they are all of them."""

    version: bytes
    values: tuple[bytes, ...]
    complete: bool


def remember(plans: dict[Any, Any], key: Any, plan: Any) -> None:
    """Keep a plan, dropping the oldest when there are too many."""
    plans.pop(key, None)
    if len(plans) >= PLAN_LIMIT:
        del plans[next(iter(plans))]
    plans[key] = plan
