"""What one pass of a check knows as it goes (``CheckPass``), the fixes a repair
sends, and sending them (``repair.lua``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ... import scripts
from ...reports import CheckReport
from ..common import STALE_GEN, KeyNumbers, script
from ..context import Context
from ..requests import Flow, ScriptCall

if TYPE_CHECKING:
    from ...options import ModelOptions

__all__ = ["CheckPass", "Fix", "Moved", "Progress", "apply", "pk_of", "FIX_BATCH", "EXPECTED_KEYS"]

#: Index keys whose expected size the records pass remembers (a few dozen bytes each);
#: keys beyond it are walked entry by entry instead of being compared by size.
EXPECTED_KEYS = 2_000_000
FIX_BATCH = 500      # fixes per repair script call

Progress = Callable[[str, int, "int | None"], None]


class Moved(Exception):
    """A reset made another generation live: the check begins again on it."""


def pk_of(raw: bytes) -> int | None:
    """A record's hash field (or a set member) as a pk (None when it is not one)."""
    if not raw.isdigit() or (raw[:1] == b"0" and len(raw) > 1):
        return None
    return int(raw)


@dataclass(frozen=True, slots=True)
class Fix:
    """One fix for repair.lua, with the belief it holds (see there)."""

    kind: str              # the finding it repairs
    #: SADD SREM ZADD ZREM MAX, IADD IREM (a pk into or out of the ids), TADD TREM (a text
    #: dictionary value), DADD DREM (a folded one)
    op: bytes
    key: bytes
    member: Any
    score: Any = b""
    pk: Any = b""
    belief: bytes = b"x"
    belief_field: str = ""
    belief_kind: bytes = b""
    belief_value: Any = b""
    adds: bool = False     # adds an entry the records imply (one more in the key)


class CheckPass:
    """One pass of a check over one live generation: its settings, its report, and
    what the phases learn for the later ones."""

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
        #: The distinct values the records imply per text field (their dictionaries must hold them).
        self.text_implied: dict[str, set[bytes]] = {}

    def expect(self, key: bytes, more: int = 1) -> None:
        slot = hash(key)
        count = self.expected.get(slot)
        if count is not None:
            self.expected[slot] = count + more
        elif len(self.expected) < EXPECTED_KEYS:
            self.expected[slot] = more
        else:
            self.counted_all = False

    def expected_size(self, key: bytes) -> int:
        """How many entries the records imply in ``key`` (-1: not known)."""
        count = self.expected.get(hash(key))
        if count is not None:
            return count
        return 0 if self.counted_all else -1

    def wrong_type(self, key: bytes, kind: str) -> None:
        if key not in self.wrong_typed:
            self.wrong_typed.add(key)
            self.report.add("wrong_type", key, detail=f"holds {kind}")


def apply(p: CheckPass, fixes: list[Fix]) -> Flow[None]:
    """Send fixes in atomic batches (repair.lua); counts those applied."""
    for start in range(0, len(fixes), FIX_BATCH):
        part = fixes[start:start + FIX_BATCH]
        number = KeyNumbers((p.keys.gen, p.gk.objs, p.keys.schemas, p.gk.layout))
        args: list[Any] = [p.gen]
        for fix in part:
            if fix.op in (b"DADD", b"DREM", b"TADD", b"TREM"):  # the layout hash and the value set are keys too
                args += (fix.op, number(fix.key), fix.member, number(fix.score), fix.pk, fix.belief,
                         fix.belief_field, fix.belief_kind, number(fix.belief_value))
                continue
            args += (fix.op, number(fix.key), fix.member, fix.score, fix.pk, fix.belief, fix.belief_field,
                     fix.belief_kind, fix.belief_value)
        reply = yield from script((p.meta,), ScriptCall(scripts.REPAIR, number.keys, args))
        if reply[0] == STALE_GEN:
            raise Moved
        for fix, applied in zip(part, reply[1]):
            if applied == ord("1"):
                p.report.repaired[fix.kind] += 1
                if fix.adds:
                    p.expect(fix.key)
