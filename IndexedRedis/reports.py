"""What ``check`` / ``repair`` and ``stats`` find: plain data, with a dict form for JSON.

A check's findings are counted by kind (``KINDS``: what each kind means, its group, and
whether a repair can fix it in place); the first ``MAX_DETAILS`` of each kind are kept
with the key, the pk and what was seen.  Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any

__all__ = ["Kind", "KINDS", "GROUPS", "Finding", "CheckReport", "StatsReport", "KeyKindStats", "IndexStats",
           "MAX_DETAILS"]

#: Findings of one kind kept with their details (all are counted).
MAX_DETAILS = 20


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of finding: its group, what it means, and whether repair fixes it."""

    group: str
    title: str
    repairable: bool
    advice: str = ""


GROUPS = ("index", "records", "pointers", "garbage")

KINDS: dict[str, Kind] = {
    "missing_entry": Kind("index", "a record missing from an index it belongs in", True),
    "stale_entry": Kind("index", "an index entry that no stored record backs", True),
    "wrong_score": Kind("index", "a sorted-set index entry with the wrong score (or one that must not be there)",
                        True),
    "missing_id": Kind("index", "a record missing from the ids index", True),
    "stale_id": Kind("index", "an ids index entry with no record", True),
    "unique_clash": Kind("index", "a UNIQUE_FIELDS value held by several objects", False,
                         "change or delete all but one of them"),
    "wrong_type": Kind("index", "a key of the model holding the wrong Redis type", False,
                       "something else wrote it: delete the key, then run reindex"),
    "bad_record": Kind("records", "a stored record that cannot be read (not msgpack, or not the shape of "
                       "its schema)", False, "something else wrote it: delete or rewrite the object"),
    "unknown_schema": Kind("records", "a record whose schema tag the schemas hash lacks", False,
                           "the schemas hash lost the entry, or something else wrote the record"),
    "lacks_field": Kind("records", "a record without a value for an indexed field (written before the "
                        "field was added)", False, "run reindex"),
    "bad_value": Kind("records", "a stored value that the field cannot index", False,
                      "something else wrote it: rewrite the object"),
    "bad_pk": Kind("records", "a record under a name that is not a primary key", False,
                   "something else wrote it: delete that hash field"),
    "bad_schema": Kind("pointers", "a schemas hash entry that is not a field list matching its tag", False,
                       "something else wrote it"),
    "bad_pointer": Kind("pointers", "a generation pointer or counter that is not a number", False,
                        "something else wrote it; the model cannot be read until it is fixed"),
    "pointer_lost": Kind("pointers", "the generation pointer is gone (evicted?) while another generation holds "
                         "data", False, "if that generation is the data you expect, SET the pointer to it; "
                         "else reset the model (its keys are left alone until then)"),
    "counter_behind": Kind("pointers", "a counter behind what is stored (the next pk or generation it hands "
                           "out is taken)", True),
    "live_marked_dead": Kind("pointers", "the live generation listed as staging or dead (a reset or a free "
                             "would drop live data)", True),
    "abandoned_reset": Kind("garbage", "a key of a reset whose lease lapsed (its owner died)", True),
    "dead_generation": Kind("garbage", "a key of a replaced generation that is waiting to be freed", True),
    "orphan_key": Kind("garbage", "a key of a generation that is neither live, being written, nor waiting to "
                       "be freed", True),
    "former_layout": Kind("garbage", "an index key of a former index layout (a field no longer indexed that "
                          "way)", True),
    "stale_expiry": Kind("index", "an expiry entry (TTL models) that no stored record backs", True),
    "unknown_key": Kind("garbage", "a key under the model's prefix that no IndexedRedis layout names", False,
                        "something else wrote it: look at it, then delete it"),
}


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "backslashreplace")


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of drift or garbage: its kind, the key and pk concerned, what was seen."""

    kind: str
    key: bytes | None = None
    pk: int | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": _text(self.key), "pk": self.pk, "detail": self.detail}


@dataclass
class CheckReport:
    """What ``Model.objects.check()`` (or ``repair()``) found, and what it repaired.

    ``found`` counts findings by kind (see ``KINDS``), ``repaired`` those fixed;
    ``details`` keeps the first few of each kind.  ``ok`` is true when nothing is left
    to fix: no drift and no garbage (resets still running are not garbage).
    """

    model: str
    prefix: bytes
    repair: bool = False
    generation: int = 0
    objects: int = 0               # records read
    index_keys: int = 0            # index keys walked
    entries: int = 0               # index entries walked
    keys_scanned: int = 0          # keys of the model seen by SCAN
    found: Counter[str] = dataclasses.field(default_factory=Counter)
    repaired: Counter[str] = dataclasses.field(default_factory=Counter)
    details: list[Finding] = dataclasses.field(default_factory=list)
    running_resets: dict[int, int] = dataclasses.field(default_factory=dict)  # generation -> ms left on its lease
    schemas: dict[int, int] = dataclasses.field(default_factory=dict)         # schema tag -> records with it
    evicted_keys: int | None = None
    maxmemory_policy: str | None = None
    expired_pending: int = 0       # TTL models: expired objects waiting for a sweep (not drift)
    expired_swept: int = 0         # ... of which a repair deleted
    restarts: int = 0              # begun again because a reset replaced the data meanwhile
    seconds: float = 0.0

    def add(self, kind: str, key: bytes | None = None, pk: int | None = None, detail: str = "",
            count: int = 1) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown finding kind {kind!r}")
        if self.found[kind] < MAX_DETAILS:
            self.details.append(Finding(kind, key, pk, detail))
        self.found[kind] += count

    @property
    def remaining(self) -> Counter[str]:
        """Findings not repaired (all of them, for a check)."""
        left = Counter(self.found)
        left.subtract(self.repaired)
        return +left

    @property
    def drift(self) -> int:
        """How many findings there were, of every kind."""
        return sum(self.found.values())

    @property
    def ok(self) -> bool:
        return not self.remaining

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "prefix": _text(self.prefix), "repair": self.repair, "ok": self.ok,
            "generation": self.generation, "objects": self.objects, "index_keys": self.index_keys,
            "entries": self.entries, "keys_scanned": self.keys_scanned,
            "found": dict(self.found), "repaired": dict(self.repaired), "remaining": dict(self.remaining),
            "details": [finding.to_dict() for finding in self.details],
            "running_resets": {str(gen): ms for gen, ms in self.running_resets.items()},
            "schemas": {str(tag): count for tag, count in self.schemas.items()},
            "evicted_keys": self.evicted_keys, "maxmemory_policy": self.maxmemory_policy,
            "expired_pending": self.expired_pending, "expired_swept": self.expired_swept,
            "restarts": self.restarts, "seconds": round(self.seconds, 3),
        }

    def __str__(self) -> str:
        what = "repair" if self.repair else "check"
        if not self.found:
            return f"{self.model} {what}: {self.objects} objects, no drift, no garbage"
        parts = ", ".join(f"{kind} {count}" for kind, count in sorted(self.found.items()))
        fixed = f"; repaired {sum(self.repaired.values())}" if self.repair else ""
        return f"{self.model} {what}: {self.objects} objects; found {parts}{fixed}"


@dataclass
class KeyKindStats:
    """The keys of one kind (records, value sets, ...): how many, and their memory."""

    keys: int = 0
    bytes: int = 0
    sampled: int = 0               # keys whose MEMORY USAGE was read (bytes is extrapolated when fewer)

    def to_dict(self) -> dict[str, Any]:
        return {"keys": self.keys, "bytes": self.bytes, "sampled": self.sampled,
                "estimated": self.sampled < self.keys}


@dataclass
class IndexStats:
    """One indexed field's indexes."""

    field: str
    kinds: tuple[str, ...]         # "value" sets, plus "score" / "lex" sorted sets
    values: int = 0                # distinct values (value sets)
    entries: int = 0               # members of all its value sets
    nulls: int = 0                 # members of its null set
    largest: list[tuple[str, int]] = dataclasses.field(default_factory=list)  # the biggest value sets
    scored: int | None = None      # members of its score sorted set
    lexed: int | None = None       # members of its lexicographic sorted set

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "kinds": list(self.kinds), "values": self.values, "entries": self.entries,
                "nulls": self.nulls, "largest": [list(pair) for pair in self.largest], "scored": self.scored,
                "lexed": self.lexed}


@dataclass
class StatsReport:
    """What ``Model.objects.stats()`` measured."""

    model: str
    prefix: bytes
    generation: int = 0
    objects: int = 0
    highest_pk: int = 0             # the pk counter: the highest pk handed out so far
    generations_handed_out: int = 0
    staging: dict[int, int] = dataclasses.field(default_factory=dict)   # generation -> ms left on its lease
    dead: list[int] = dataclasses.field(default_factory=list)
    schemas: dict[int, list[str]] = dataclasses.field(default_factory=dict)
    current_schema: int = 0
    memory: dict[str, KeyKindStats] = dataclasses.field(default_factory=dict)
    indexes: list[IndexStats] = dataclasses.field(default_factory=list)
    last_reset: dict[str, int] | None = None  # generation, started_ms, switched_ms, objects, duration_ms
    evicted_keys: int | None = None
    maxmemory_policy: str | None = None
    used_memory: int | None = None
    seconds: float = 0.0

    @property
    def total_bytes(self) -> int:
        return sum(kind.bytes for kind in self.memory.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "prefix": _text(self.prefix), "generation": self.generation,
            "objects": self.objects, "highest_pk": self.highest_pk,
            "generations_handed_out": self.generations_handed_out,
            "staging": {str(gen): ms for gen, ms in self.staging.items()}, "dead": self.dead,
            "schemas": {str(tag): names for tag, names in self.schemas.items()},
            "current_schema": self.current_schema,
            "memory": {kind: stats.to_dict() for kind, stats in self.memory.items()},
            "total_bytes": self.total_bytes,
            "indexes": [index.to_dict() for index in self.indexes], "last_reset": self.last_reset,
            "evicted_keys": self.evicted_keys, "maxmemory_policy": self.maxmemory_policy,
            "used_memory": self.used_memory, "seconds": round(self.seconds, 3),
        }
