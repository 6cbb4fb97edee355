"""A record's index entries: which index keys a stored record occupies, and the
arguments the write scripts take to add, move or drop them.  Pure: no I/O."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .fields import NULL_STORED, IRClassicField, digest, wire_bytes
from .keys import GenerationKeys, lex_member, lex_text, padded_pk
from .textindex import fold_member, pack_blocks

if TYPE_CHECKING:
    from .options import ModelOptions

__all__ = ["ABSENT", "ABSENT_RECORD", "record_digest", "stored_arg", "score_arg", "lex_arg", "same_stored",
           "index_group", "delete_args",
           "load_groups", "dictionary_blocks", "current_index_keys", "every_index_key", "sorted_index_keys"]

#: A field the believed stored record does not have (the object is new to the script).
ABSENT: Any = object()

Number = Callable[[bytes], int]  # a script's key numbering (flows.common.KeyNumbers)


def stored_arg(stored: Any) -> tuple[bytes, bytes]:
    """A stored value as the scripts take it: a kind ('n' irNull / 'v' value) and bytes."""
    if stored is NULL_STORED:
        return (b"n", b"")
    return (b"v", wire_bytes(stored))


#: What save.lua's ifUnchanged check expects of an object believed not stored.
ABSENT_RECORD = b"absent"


def record_digest(record: Mapping[str, Any], names: Iterable[str]) -> bytes:
    """SHA1 (hex) of the stored values of ``names`` in a record, as lib.lua's
    ``record_digest`` computes it from the stored record: the scripts compare the two
    to learn whether a record still holds what a client read."""
    parts = []
    for name in names:
        stored = record.get(name, ABSENT)
        if stored is ABSENT:
            parts.append(b"a")
        elif stored is NULL_STORED:
            parts.append(b"n")
        else:
            raw = wire_bytes(stored)
            parts.append(b"v%d:%s" % (len(raw), raw))
    return hashlib.sha1(b"".join(parts), usedforsecurity=False).hexdigest().encode("ascii")


def score_arg(field: Any, stored: Any) -> bytes:
    """A numeric field's sorted-set score for a stored value (b'' = not in the set)."""
    if stored is NULL_STORED:
        return b""
    score = field.toScore(field.fromStorage(stored))
    return b"" if score is None else repr(float(score)).encode("ascii")


def lex_arg(stored: Any) -> tuple[bytes, bytes]:
    """Whether a stored text value has a lexicographic entry, and its member's start
    (the script appends the padded pk)."""
    if stored is ABSENT or stored is NULL_STORED:
        return (b"0", b"")
    return (b"1", lex_text(wire_bytes(stored)))


def same_stored(a: Any, b: Any) -> bool:
    """Whether two stored values are the same stored bytes (irNull only equals itself)."""
    if a is NULL_STORED or b is NULL_STORED:
        return a is b
    return wire_bytes(a) == wire_bytes(b)


def index_group(meta: ModelOptions, gk: GenerationKeys, number: Number, field: Any,
                old: Any, new: Any) -> tuple[Any, ...]:
    """What save.lua needs to move one field's index entries from ``old`` to ``new``."""
    spec = meta.specs[field.name]
    if old is ABSENT:
        head: tuple[Any, ...] = (field.name, b"a", b"", 0)
    else:
        head = (field.name, *stored_arg(old), number(meta.index_key(gk, field, old)))
    unique = 1 if spec.unique and new is not NULL_STORED else 0  # irNull never clashes
    group = (*head, number(meta.index_key(gk, field, new)), unique)
    if spec.numeric:
        group += (number(gk.score_index(field.name)), score_arg(field, new))
    else:
        group += (0, b"")
    if spec.lex:
        old_flag, old_text = lex_arg(old)
        new_flag, new_text = lex_arg(new)
        group = (*group, number(gk.lex_index(field.name)), int(old_flag == b"1"), old_text,
                 int(new_flag == b"1"), new_text)
    else:
        group = (*group, 0, 0, b"", 0, b"")
    if spec.text:
        return (*group, *dict_arg(gk, number, field.name, old, new))
    return group


def dict_arg(gk: GenerationKeys, number: Number, name: str, old: Any, new: Any) -> tuple[Any, ...]:
    """save.lua's dictionary part of an index group: dictionary #, folded dictionary #,
    the old value's folded member, whether the new value has a dictionary entry, its
    text and its folded member."""
    old_fold = b"" if old is ABSENT or old is NULL_STORED else fold_member(wire_bytes(old))
    if new is NULL_STORED:
        return (number(gk.text_dict(name)), number(gk.fold_dict(name)), old_fold, 0, b"", b"")
    text = wire_bytes(new)
    return (number(gk.text_dict(name)), number(gk.fold_dict(name)), old_fold, 1, text, fold_member(text))


def insert_group(meta: ModelOptions, gk: GenerationKeys, number: Number, field: Any, new: Any) -> Any:
    """``index_group`` for an object saved without a pk (so nothing is believed of it):
    for a plain index (not unique, no sorted set) only the number of the set the pk
    joins, which save.lua unpacks and walks at a fraction of a whole group's cost; for a
    plain text index, the set's number with the dictionary entry it may add."""
    spec = meta.specs[field.name]
    if spec.numeric or spec.lex or (spec.unique and new is not NULL_STORED):
        return index_group(meta, gk, number, field, ABSENT, new)
    if spec.text and new is not NULL_STORED:
        text = wire_bytes(new)
        group = (field.name, number(meta.index_key(gk, field, new)), number(gk.text_dict(field.name)), text)
        fold = fold_member(text)
        return group + (number(gk.fold_dict(field.name)), fold) if fold else group
    return number(meta.index_key(gk, field, new))


def delete_args(meta: ModelOptions, gk: GenerationKeys, number: Number,
                believed: dict[str, Any]) -> list[Any]:
    """delete.lua's per-object arguments for the index entries of a believed record."""
    args: list[Any] = []
    for field in meta.indexed:
        old = believed.get(field.name, ABSENT)
        if old is ABSENT:
            args += (b"a", b"", 0, b"0", b"", b"")
        else:
            fold = fold_member(wire_bytes(old)) if meta.specs[field.name].text and old is not NULL_STORED else b""
            args += (*stored_arg(old), number(meta.index_key(gk, field, old)), *lex_arg(old), fold)
    return args


def load_groups(meta: ModelOptions, gk: GenerationKeys, number: Number, pks: Sequence[int],
                records: Sequence[dict[str, Any]], ttls: Mapping[int, int] | None = None,
                blocks: Mapping[str, Sequence[bytes]] | None = None) -> list[Any]:
    """reset_load.lua's index arguments for a batch of new records: per index key, its
    kind ('S' set, 'U' the set of a unique value, 'Z' sorted set), number, and members
    (with scores for 'Z'); then a TTL model's expiry zset ('E': ``ttls`` in ms by pk,
    0 for none, the model's default for a pk it lacks).

    Each text value goes to its field's load set, packed into the dictionary before the
    switch (``flows/reset.pack_dictionaries_flow``); with ``blocks`` (field -> packed
    dictionary blocks, ``dictionary_blocks``: a reset that holds its whole dataset) the
    batch writes those blocks into the dictionaries instead."""
    members: dict[int, list[Any]] = {}
    unique: set[int] = set()
    scored: dict[int, list[Any]] = {}
    lexed: dict[int, list[Any]] = {}
    words: dict[int, dict[bytes, None]] = {}  # dictionary members, in order, without repeats
    # What each indexed field needs, worked out once per batch (this loop runs per
    # object and field: a reset's client time is mostly here).
    plans = []
    for field in meta.indexed:
        spec = meta.specs[field.name]
        plain = type(field) is IRClassicField and not field.hashIndex  # the value's bytes name its set
        plans.append((field, field.name, gk.index_prefix(field.name) if plain else None, spec.unique, spec.numeric,
                      spec.lex, spec.text, number(gk.text_load(field.name)) if spec.text and blocks is None else 0))
    for pk, record in zip(pks, records, strict=True):
        for field, name, prefix, is_unique, numeric, lex, text_field, load_number in plans:
            stored = record[name]
            if stored is NULL_STORED:
                key_number = number(gk.null_index(name))
                members.setdefault(key_number, []).append(pk)
                if numeric:
                    score = score_arg(field, stored)
                    if score:
                        scored.setdefault(number(gk.score_index(name)), []).extend((score, padded_pk(pk)))
                continue
            text = stored if type(stored) is bytes else wire_bytes(stored) if (prefix or lex or text_field) else b""
            key_number = number(prefix + text if prefix is not None else meta.index_key(gk, field, stored))
            members.setdefault(key_number, []).append(pk)
            if is_unique:  # irNull never clashes
                unique.add(key_number)
            if numeric:
                score = score_arg(field, stored)
                if score:
                    scored.setdefault(number(gk.score_index(name)), []).extend((score, padded_pk(pk)))
            if lex:
                lexed.setdefault(number(gk.lex_index(name)), []).extend((b"0", lex_member(text, pk)))
            if text_field:
                if load_number:
                    words.setdefault(load_number, {})[lex_text(text)] = None  # packed later
                fold = fold_member(text)
                if fold:
                    words.setdefault(number(gk.fold_dict(name)), {})[fold] = None
    args: list[Any] = []
    for key_number, items in members.items():
        args += (b"U" if key_number in unique else b"S", key_number, len(items), *items)
    for groups in (scored, lexed):
        for key_number, items in groups.items():
            args += (b"Z", key_number, len(items), *items)
    for name, packed in (blocks or {}).items():
        if packed:
            words.setdefault(number(gk.text_dict(name)), {}).update(dict.fromkeys(packed))
    for key_number, distinct in words.items():
        args += (b"Z", key_number, 2 * len(distinct))
        for word in distinct:
            args += (b"0", word)
    digest, flat = meta.layout  # a reset builds every index of the model
    # Fresh dictionary versions, that no earlier dataset had (a plan of one never fits another).
    token = b"%d" % (int.from_bytes(os.urandom(7), "big") + 1)  # an integer: writes HINCRBY it
    versions = [item for f in meta.indexed if meta.specs[f.name].text for item in (b"v:" + f.name.encode(), token)]
    args += (b"H", number(gk.layout), len(flat) + 2 + len(versions), b"_", digest, *flat, *versions)
    if meta.ttl_ms is not None:  # a TTL model: 'E' (ms from now, pk) pairs, by ``ttls`` or the default
        pairs: list[Any] = []
        for pk in pks:
            ms = meta.ttl_ms if ttls is None else ttls.get(pk, meta.ttl_ms)
            if ms > 0:
                pairs += (ms, pk)
        if pairs:
            args += (b"E", number(gk.exp), len(pairs), *pairs)
    return args


def current_index_keys(meta: ModelOptions, gk: GenerationKeys, records: Sequence[dict[str, Any]]) -> set[bytes]:
    """The value sets some records occupy under the current index layout: each distinct
    stored value's key made once (a reset's old generation shares most of its values).
    Values are told apart by type too, and floats by their text (``True == 1``,
    ``False == 0`` and ``-0.0 == 0.0`` in Python, yet a field may index them apart)."""
    keys: set[bytes] = set()
    for field in meta.indexed:
        name = field.name
        distinct: dict[Any, Any] = {}
        for record in records:
            if name in record:
                stored = record[name]
                kind = type(stored)
                try:
                    distinct.setdefault((kind, repr(stored) if kind is float else stored), stored)
                except TypeError:  # an unhashable stored value: its key at once
                    keys.add(meta.index_key(gk, field, stored))
        keys.update(meta.index_key(gk, field, stored) for stored in distinct.values())
    return keys


def every_index_key(meta: ModelOptions, gk: GenerationKeys, record: dict[str, Any]) -> set[bytes]:
    """Every key an index of this record may live under, in any layout it may have had
    (any field, hashed or not, or indexed as raw text; its sorted sets and dictionaries)."""
    keys: set[bytes] = set()
    for name, stored in record.items():
        keys.add(gk.null_index(name))
        keys.update((gk.score_index(name), gk.lex_index(name), gk.text_dict(name), gk.text_load(name),
                     gk.fold_dict(name)))
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


def sorted_index_keys(meta: ModelOptions, gk: GenerationKeys, thorough: bool) -> list[bytes]:
    """The sorted sets of a generation: the current layout's, or (``thorough``) every
    field's of both kinds."""
    if thorough:  # the expiry zset too (the model may have had a TTL)
        return [gk.layout, gk.exp] + [key for name in sorted(meta.field_names) for key in (
            gk.score_index(name), gk.lex_index(name), gk.text_dict(name), gk.text_load(name), gk.fold_dict(name))]
    keys = [gk.score_index(f.name) for f in meta.indexed if meta.specs[f.name].numeric]
    keys += [key for f in meta.indexed if meta.specs[f.name].text
             for key in (gk.text_dict(f.name), gk.text_load(f.name), gk.fold_dict(f.name))]
    keys += [gk.exp] if meta.ttl_ms is not None else []
    return [gk.layout] + keys + [gk.lex_index(f.name) for f in meta.indexed if meta.specs[f.name].lex]


def dictionary_blocks(meta: ModelOptions, records: Sequence[dict[str, Any]]) -> dict[str, list[bytes]]:
    """Every text field's dictionary for a whole dataset, packed as ``dict_pack.lua``
    packs one (``textindex.pack_blocks``): field -> blocks."""
    out: dict[str, list[bytes]] = {}
    for field in meta.indexed:
        if meta.specs[field.name].text:
            name = field.name
            distinct = {wire_bytes(r[name]) for r in records if r[name] is not NULL_STORED}
            out[name] = pack_blocks(sorted(distinct))
    return out
