"""The only module that builds Redis key names.

Layout for a model whose ``KEY_NAME`` escapes to ``TAG`` (percent-encoding every
character outside ``[A-Za-z0-9_.~-]``, so ``{``, ``}``, ``:``, ``*`` and spaces can
never reach a key name unescaped)::

    ir:{TAG}:gen            current generation number ("0" when absent)
    ir:{TAG}:genseq         counter that hands out new generation numbers (reset)
    ir:{TAG}:staging        zset: generations being written by a reset -> when the reset's
                            lease lapses (server time, ms since the epoch)
    ir:{TAG}:dead           set: generations whose keys are being freed
    ir:{TAG}:lastreset      hash: the last reset that went live (generation, started and
                            switched, server time ms, objects)
    ir:{TAG}:nextpk         primary key counter (shared by all generations)
    ir:{TAG}:schemas        hash: schema tag -> msgpack array of the field names whose
                            order records with that tag follow
    ir:{TAG}:refresh:lease  string: the token of the refresh runner working on the model
    ir:{TAG}:refresh:state  hash: the refresh job's metrics and the live dataset's digest
    ir:{TAG}:cached         zset: the processes that keep a client-side cache of the model
                            -> when each last renewed it (server ms); it expires a minute
                            after the last renewal.  While it exists, writes also touch
                            the stamps below
    ir:{TAG}:g<N>:objs      hash: pk -> record, a msgpack array: the stored values in
                            FIELDS order, then the schema tag
    ir:{TAG}:g<N>:ids       zset of every pk of generation N, in blocks of 64: a member per
                            block (pk // 64), its 8-byte bitmap then the block number in
                            decimal, scored by the block number (scripts/lib.lua)
    ir:{TAG}:g<N>:i:<field>:<index value>   set of pks whose field has that value
    ir:{TAG}:g<N>:n:<field>                 set of pks whose field is irNull
    ir:{TAG}:g<N>:z:<field>                 zset of padded pks scored by a number field
    ir:{TAG}:g<N>:x:<field>                 zset of "<escaped text>\0\0<padded pk>" (lexicographic)
    ir:{TAG}:g<N>:d:<field>                 zset (all scores 0): the text field's distinct stored
                                            values, in blocks of consecutive values, each member a
                                            block (text lookups, text order; scripts/textindex.lua)
    ir:{TAG}:g<N>:l:<field>                 zset (all scores 0): a reset's dictionary values while
                                            it loads, one member each, packed into d:<field> before
                                            its switch (so never in a live generation)
    ir:{TAG}:g<N>:f:<field>                 zset (all scores 0): "<escaped casefold>\0\0<value>" for
                                            the distinct values whose casefold differs from them
    ir:{TAG}:g<N>:layout                    hash: field -> letters of the indexes built for it
                                            (see textindex.py), "_" -> the layout digest of the
                                            writers when all agree, "v:<field>" -> the version
                                            of the field's dictionaries, "_w" -> a count of the
                                            writes that changed the indexes
    ir:{TAG}:g<N>:u:<token>:<n>             set: scratch of one large text lookup, the union of
                                            some of its value sets (flows/text.py); it expires
                                            within seconds, and the lookup deletes it
    ir:{TAG}:g<N>:exp                       zset (TTL models only): pk -> when the object expires
                                            (server time, ms since the epoch); see expiry.py
    ir:{TAG}:g<N>:t:<pk>                    an object's stamp: never left behind (a write SETs and
                                            DELs it), so that client-side caches tracking the
                                            model's prefix learn which pk changed

Every key of a model carries the same ``{TAG}`` hash tag, so a model lives in one
Redis Cluster slot and every script can touch all of its keys.  Models that name a
``KEY_GROUP`` share its tag instead, so that they live in one slot together (and a
cascade across them stays one atomic script): their keys are
``ir:{GROUP}@TAG:...``, the rest of the layout as above.  No model's prefix begins
another's: ``@`` never follows the ``}`` of an ungrouped model's tag, and it is escaped
in every ``TAG``.  Because ``TAG``
contains no ``}``, the tag always ends where the escaped name ends, and two different
names never share a prefix.  Index values are raw bytes after ``<field>:``; field
names cannot contain ``:``, so the boundary is unambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from urllib.parse import quote

__all__ = ["ModelKeys", "GenerationKeys", "KeyInfo", "GENERATION_KINDS", "escape_key_name", "glob_escape", "padded_pk",
           "lex_member", "lex_text", "model_prefix", "MAX_PK", "PK_DIGITS", "GENERATION", "FLAG", "RECORDS", "DATA",
           "BOOKKEEPING"]

#: What a change of one of a model's keys means to a client-side cache (``ModelKeys.change_kind``).
GENERATION, FLAG, RECORDS, DATA, BOOKKEEPING = "generation", "flag", "records", "data", "bookkeeping"


def escape_key_name(key_name: str) -> str:
    """Percent-encode a model's KEY_NAME into a safe, injective hash tag."""
    return quote(key_name, safe="")


@dataclass(frozen=True)
class GenerationKeys:
    """Key names of one generation of a model's data."""

    prefix: bytes  # b"ir:{TAG}:g<N>:"

    @cached_property
    def objs(self) -> bytes:
        return self.prefix + b"objs"

    @cached_property
    def ids(self) -> bytes:
        return self.prefix + b"ids"

    def index_prefix(self, field_name: str) -> bytes:
        """Everything before the index value; callers append the value bytes."""
        return self.prefix + b"i:" + field_name.encode("utf-8") + b":"

    def index(self, field_name: str, index_value: bytes) -> bytes:
        return self.index_prefix(field_name) + index_value

    def null_index(self, field_name: str) -> bytes:
        """The set of pks whose field is irNull (apart from every value's set)."""
        return self.prefix + b"n:" + field_name.encode("utf-8")

    def score_index(self, field_name: str) -> bytes:
        """Sorted set of (zero-padded) pks scored by a numeric field's value."""
        return self.prefix + b"z:" + field_name.encode("utf-8")

    def lex_index(self, field_name: str) -> bytes:
        """Sorted set of ``<text>\\0<zero-padded pk>`` members, in text order."""
        return self.prefix + b"x:" + field_name.encode("utf-8")

    def text_dict(self, field_name: str) -> bytes:
        """Sorted set (scores 0) of a text field's distinct stored values, in blocks."""
        return self.prefix + b"d:" + field_name.encode("utf-8")

    def text_load(self, field_name: str) -> bytes:
        """A reset's text dictionary values while it loads (packed into ``text_dict``
        before the switch)."""
        return self.prefix + b"l:" + field_name.encode("utf-8")

    def text_union(self, token: bytes, step: int) -> bytes:
        """Set: a large text lookup's scratch, the union of some of its value sets."""
        return self.prefix + b"u:" + token + b":%d" % step

    def fold_dict(self, field_name: str) -> bytes:
        """Sorted set (scores 0) of ``<escaped casefold>\\0\\0<value>`` for the distinct
        values of a text field whose casefold differs from the value."""
        return self.prefix + b"f:" + field_name.encode("utf-8")

    @cached_property
    def layout(self) -> bytes:
        """Hash: which indexes the generation's data has built, and dictionary versions."""
        return self.prefix + b"layout"

    @cached_property
    def exp(self) -> bytes:
        """Sorted set of the pks of a TTL model's objects that expire, scored by when
        (server time, ms since the epoch)."""
        return self.prefix + b"exp"

    @cached_property
    def stamp_prefix(self) -> bytes:
        return self.prefix + b"t:"

    def stamp(self, pk: int) -> bytes:
        """The key a write touches (SET then DEL) to tell client-side caches that the
        object with this pk changed; it never exists between scripts."""
        return self.stamp_prefix + b"%d" % pk


def model_prefix(key: bytes) -> bytes | None:
    """The prefix of the model a key belongs to (``ir:{TAG}:``, or ``ir:{GROUP}@TAG:``),
    or None for a key that is not a model's: the hash tag's ``}`` is followed by ``:``
    or by ``@TAG:``, and no ``TAG`` holds a ``:``."""
    if not key.startswith(b"ir:{"):
        return None
    colon = key.find(b":", key.find(b"}"))
    return key[:colon + 1] if colon > 0 else None


def glob_escape(raw: bytes) -> bytes:
    """``raw`` with the characters that are special in a Redis glob pattern escaped."""
    out = bytearray()
    for byte in raw:
        if byte in b"*?[]\\":
            out += b"\\"
        out.append(byte)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What a key of a model is, read back from its name (``ModelKeys.classify``).

    ``kind`` is one of the bookkeeping names (``gen``, ``genseq``, ``staging``, ``dead``,
    ``nextpk``, ``schemas``, ``lastreset``, ``refresh_lease``, ``refresh_state``), a
    generation's ``objs`` / ``ids`` / ``layout`` / ``exp`` (expiry zset), an index (``value``
    set, ``null`` set, ``score`` zset, ``lex`` zset, text ``dict`` / ``fold`` dictionary,
    with ``field`` and, for a value set, the index ``value``), a large text lookup's
    scratch set (``union``), or ``unknown`` (a name of no
    layout this version knows).
    """

    kind: str
    gen: int | None = None
    field: str | None = None
    value: bytes | None = None


_INDEX_KINDS = {b"i": "value", b"n": "null", b"z": "score", b"x": "lex", b"d": "dict", b"f": "fold",
                b"l": "dictload"}
#: The kinds of key that hold a generation's data (the rest is bookkeeping or unknown).
GENERATION_KINDS = frozenset({"objs", "ids", "exp", "value", "null", "score", "lex", "dict", "fold", "dictload",
                              "layout", "union"})


#: The largest pk: scripts read pks as Lua numbers, doubles, exact up to 2**53.
MAX_PK = 2**53 - 1
#: Digits of a padded pk: enough for MAX_PK (lib.lua's PK_DIGITS is the same).
PK_DIGITS = 16


def padded_pk(pk: int) -> bytes:
    """A pk as sorted-set members hold it: zero-padded to ``PK_DIGITS``, so ties sort by pk."""
    return b"%016d" % pk


def lex_text(text: bytes) -> bytes:
    """Text as it starts a lex member: NUL escaped as NUL 0x01 and ended by NUL NUL, so
    members sort by text in byte order (a text before any longer text it begins)."""
    return text.replace(b"\x00", b"\x00\x01") + b"\x00\x00"


def lex_member(text: bytes, pk: int) -> bytes:
    return lex_text(text) + padded_pk(pk)


class ModelKeys:
    """Key names of one model (one ``KEY_NAME``, in its ``KEY_GROUP`` if it has one)."""

    def __init__(self, key_name: str, group: str | None = None) -> None:
        self.key_name = key_name
        self.group = group
        self.tag = escape_key_name(key_name)
        if group is None:
            self.hash_tag = self.tag
            self.prefix = b"ir:{" + self.tag.encode("ascii") + b"}:"
        else:
            self.hash_tag = escape_key_name(group)
            self.prefix = b"ir:{" + self.hash_tag.encode("ascii") + b"}@" + self.tag.encode("ascii") + b":"
        self.gen = self.prefix + b"gen"
        self.genseq = self.prefix + b"genseq"
        self.staging = self.prefix + b"staging"
        self.dead = self.prefix + b"dead"
        self.nextpk = self.prefix + b"nextpk"
        self.schemas = self.prefix + b"schemas"
        self.refresh_lease = self.prefix + b"refresh:lease"
        self.refresh_state = self.prefix + b"refresh:state"
        self.cache_flag = self.prefix + b"cached"
        self.lastreset = self.prefix + b"lastreset"
        #: Every bookkeeping key, by its kind (``KeyInfo.kind``).
        self.bookkeeping: dict[bytes, str] = {
            self.gen: "gen", self.genseq: "genseq", self.staging: "staging", self.dead: "dead",
            self.nextpk: "nextpk", self.schemas: "schemas", self.lastreset: "lastreset",
            self.refresh_lease: "refresh_lease", self.refresh_state: "refresh_state",
            self.cache_flag: "cache_flag"}
        #: A SCAN MATCH pattern for every key of this model (and of no other model).
        self.pattern = glob_escape(self.prefix) + b"*"
        self._generations: dict[int, GenerationKeys] = {}

    def change_kind(self, rest: bytes) -> str:
        """What a change of the key ``prefix + rest`` means to a client-side cache: the
        generation pointer moved (GENERATION), the cache flag changed (FLAG), a
        generation's records hash (RECORDS: its stamps name the pks), any other key of a
        generation (DATA: ids, indexes, stamps), or reset and pk bookkeeping."""
        if rest == b"gen":
            return GENERATION
        if rest == b"cached":
            return FLAG
        if rest[:1] == b"g" and rest[1:2].isdigit():
            if rest.endswith(b":objs"):
                return RECORDS
            return BOOKKEEPING if rest.partition(b":")[2][:2] == b"u:" else DATA  # u: a lookup's scratch
        return BOOKKEEPING

    def generation(self, gen: int) -> GenerationKeys:
        keys = self._generations.get(gen)
        if keys is None:
            if len(self._generations) > 64:  # old generations are never asked for again
                self._generations.clear()
            keys = self._generations[gen] = GenerationKeys(self.prefix + b"g%d:" % gen)
        return keys

    def classify(self, key: bytes) -> KeyInfo:
        """What one of this model's keys is, by its name (``unknown`` for names this
        layout does not produce, like keys written by something else)."""
        kind = self.bookkeeping.get(key)
        if kind is not None:
            return KeyInfo(kind)
        if not key.startswith(self.prefix):
            return KeyInfo("unknown")
        rest = key[len(self.prefix):]
        head, sep, tail = rest.partition(b":")
        number = head[1:]
        if not sep or head[:1] != b"g" or not number.isdigit() or (number[:1] == b"0" and len(number) > 1):
            return KeyInfo("unknown")
        gen = int(number)
        if tail in (b"objs", b"ids", b"layout", b"exp"):
            return KeyInfo(tail.decode(), gen)
        if tail[:2] == b"u:":
            return KeyInfo("union", gen)
        index_kind = _INDEX_KINDS.get(tail[:1])
        if index_kind is None or tail[1:2] != b":":
            return KeyInfo("unknown", gen)
        name, sep, value = tail[2:].partition(b":")
        try:
            field = name.decode("utf-8")
        except UnicodeDecodeError:
            return KeyInfo("unknown", gen)
        if not field.isidentifier() or (index_kind == "value") != bool(sep):
            return KeyInfo("unknown", gen)
        return KeyInfo(index_kind, gen, field, value if index_kind == "value" else None)

    def __repr__(self) -> str:
        group = "" if self.group is None else f", group={self.group!r}"
        return f"ModelKeys({self.key_name!r}{group})"
