"""Whole-database invariants of a model's stored data, checked straight from Redis.

These helpers read the raw keys described in ``IndexedRedis/keys.py`` with a plain
redis-py client (SCAN is fine here: they only ever run against the tests' private
server) and compare them with what the records imply:

* ``assert_indexes_consistent`` -- the current generation's ids set, record hash and
  index sets agree exactly with each other;
* ``assert_no_garbage`` -- nothing of the model is left besides its fixed keys and
  the keys of its current generation (no old, abandoned or half-written generation);
* ``db_snapshot`` -- every key of the database with its type and content, to prove
  that a refused operation wrote nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import msgpack
import redis

from IndexedRedis.keys import glob_escape

__all__ = [
    "assert_indexes_consistent",
    "assert_no_garbage",
    "current_generation",
    "db_snapshot",
    "decode_record",
    "model_keys",
    "stored_records",
]


def _scan(client: redis.Redis, prefix: bytes) -> set[bytes]:
    return set(client.scan_iter(match=glob_escape(prefix) + b"*", count=1000))


def current_generation(client: redis.Redis, model: Any) -> int:
    """The generation number the model's data lives in right now."""
    raw = client.get(model._meta.keys.gen)
    return int(raw) if raw is not None else 0


def decode_record(client: redis.Redis, model: Any, blob: bytes) -> dict[str, Any]:
    """A stored record as field name -> stored value, decoded from the raw layout alone:
    a msgpack array of values whose last item is a tag naming, in the model's schemas
    hash, the field list the values follow."""
    values = msgpack.unpackb(blob, raw=False, unicode_errors="surrogateescape")
    assert isinstance(values, list) and values, f"a record must be a non-empty array: {values!r}"
    packed = client.hget(model._meta.keys.schemas, str(values[-1]))
    assert packed is not None, f"record tag {values[-1]} is not in the schemas hash"
    names = msgpack.unpackb(packed, raw=False)
    assert len(names) == len(values) - 1, f"record {values!r} does not follow its schema {names!r}"
    return dict(zip(names, values[:-1]))


def stored_records(client: redis.Redis, model: Any) -> dict[int, dict[str, Any]]:
    """pk -> stored record (field name -> stored value) of the current generation."""
    gk = model._meta.keys.generation(current_generation(client, model))
    return {int(pk): decode_record(client, model, blob) for pk, blob in client.hgetall(gk.objs).items()}


def model_keys(client: redis.Redis, model: Any) -> set[bytes]:
    """Every key in the database that belongs to this model."""
    return _scan(client, model._meta.keys.prefix)


def stored_ids(client: redis.Redis, key: bytes) -> set[int]:
    """The pks an ids zset holds, decoded here independently of lib.lua: a member per
    block of 64 pks, its 8-byte bitmap (bit b of byte j: pk 64 * block + 8 * j + b) then
    the block number in decimal, scored by the block number.  Asserts the form: every
    member valid, scored by its block, and no empty block kept."""
    pks: set[int] = set()
    for member, score in client.zrange(key, 0, -1, withscores=True):
        assert len(member) > 8 and member[8:].isdigit(), f"{key!r}: member {member!r} is not a block"
        block = int(member[8:])
        assert str(block).encode() == member[8:] and score == block, f"{key!r}: {member!r} scored {score}"
        bits = int.from_bytes(member[:8], "little")
        assert bits, f"{key!r}: block {block} is empty but kept"
        pks.update(64 * block + offset for offset in range(64) if bits >> offset & 1)
    return pks


def edit_ids(client: redis.Redis, key: bytes, add: Iterable[int] = (), remove: Iterable[int] = ()) -> None:
    """Put pks into, or take them out of, an ids zset by hand (the form ``stored_ids``
    reads), to break a generation in tests."""
    for pk, on in [*((int(pk), True) for pk in add), *((int(pk), False) for pk in remove)]:
        block, offset = divmod(pk, 64)
        found = client.zrangebyscore(key, block, block)
        old = next((m for m in found if m[8:] == str(block).encode()), None)
        bits = int.from_bytes(old[:8], "little") if old else 0
        bits = bits | 1 << offset if on else bits & ~(1 << offset)
        if old:
            client.zrem(key, old)
        if bits:
            client.zadd(key, {bits.to_bytes(8, "little") + str(block).encode(): block})


def assert_indexes_consistent(client: redis.Redis, model: Any) -> dict[int, dict[str, Any]]:
    """Check the current generation's ids, records and index sets against each other.

    * the ids set is exactly the set of pks of the stored records;
    * every record holds every indexed field;
    * for each indexed field, each record's pk is in exactly the index set named by its
      stored value, and every index set of the generation holds exactly the pks whose
      stored value names it -- so no index set is missing a member, holds a stale
      member (old value, deleted object) or exists without a member.

    Returns the records, for further checks by the caller.
    """
    meta = model._meta
    gen = current_generation(client, model)
    gk = meta.keys.generation(gen)

    records = {int(pk): decode_record(client, model, blob) for pk, blob in client.hgetall(gk.objs).items()}
    ids = stored_ids(client, gk.ids)
    only_ids = sorted(ids - set(records))
    only_records = sorted(set(records) - ids)
    assert not only_ids and not only_records, (
        f"{meta.name} g{gen}: ids set and records disagree; pks only in ids: "
        f"{only_ids[:20]}, pks only in records: {only_records[:20]}")

    expected: dict[bytes, set[int]] = defaultdict(set)
    for pk, record in records.items():
        for field in meta.indexed:
            assert field.name in record, (
                f"{meta.name} g{gen}: record {pk} has no stored value for indexed field "
                f"{field.name!r}: {record!r}")
            expected[meta.index_key(gk, field, record[field.name])].add(pk)

    actual: dict[bytes, set[int]] = {}
    index_keys = _scan(client, gk.prefix + b"i:") | _scan(client, gk.prefix + b"n:")
    for key in index_keys:
        key_type = client.type(key)
        assert key_type == b"set", f"{key!r} is a {key_type!r}, not a set"
        actual[key] = {int(pk) for pk in client.smembers(key)}

    problems = []
    # Sorted-set indexes: a numeric field's scores, a lex field's "<text>\0<padded pk>".
    from IndexedRedis.fields import NULL_STORED, wire_bytes
    from IndexedRedis.keys import lex_member, padded_pk

    for field in meta.indexed:
        spec = meta.specs[field.name]
        if spec.numeric:
            want_scores = {}
            for pk, record in records.items():
                stored = record[field.name]
                if stored is not NULL_STORED:
                    score = field.toScore(field.fromStorage(stored))
                    if score is not None:
                        want_scores[padded_pk(pk)] = float(score)
            have_scores = dict(client.zrange(gk.score_index(field.name), 0, -1, withscores=True))
            if want_scores != have_scores:
                problems.append(f"  score index of {field.name!r} disagrees: want "
                                f"{sorted(want_scores.items())[:5]} have {sorted(have_scores.items())[:5]}")
        if spec.lex:
            want_lex = {lex_member(wire_bytes(record[field.name]), pk) for pk, record in records.items()
                        if record[field.name] is not NULL_STORED}
            have_lex = set(client.zrange(gk.lex_index(field.name), 0, -1))
            if want_lex != have_lex:
                problems.append(f"  lex index of {field.name!r} disagrees: missing "
                                f"{sorted(want_lex - have_lex)[:5]} stale {sorted(have_lex - want_lex)[:5]}")
    # Text dictionaries (IndexedRedis/textindex.py): exactly the distinct stored values, and the
    # folded members of those whose casefold differs -- where the layout says they are built.
    from IndexedRedis.textindex import fold_member

    layout = client.hgetall(gk.layout)
    for field in meta.indexed:
        if not meta.specs[field.name].text or b"d" not in layout.get(field.name.encode(), b""):
            continue
        values = {wire_bytes(record[field.name]) for record in records.values()
                  if record[field.name] is not NULL_STORED}
        listed = dictionary_values(client, gk.text_dict(field.name))
        have_words = set(listed)
        if any(a >= b for a, b in zip(listed, listed[1:])):
            problems.append(f"  dictionary of {field.name!r}: its blocks overlap or repeat a value")
        if values != have_words:
            problems.append(f"  dictionary of {field.name!r} disagrees: missing {sorted(values - have_words)[:5]} "
                            f"stale {sorted(have_words - values)[:5]}")
        want_folds = {fold_member(v) for v in values} - {b""}
        have_folds = set(client.zrange(gk.fold_dict(field.name), 0, -1))
        if want_folds != have_folds:
            problems.append(f"  folded dictionary of {field.name!r} disagrees: missing "
                            f"{sorted(want_folds - have_folds)[:5]} stale {sorted(have_folds - want_folds)[:5]}")
    for key in sorted(set(expected) | set(actual)):
        want, have = expected.get(key, set()), actual.get(key, set())
        if want != have:
            problems.append(
                f"  {key!r}: missing {sorted(want - have)[:10]}, stale {sorted(have - want)[:10]}")
    assert not problems, (
        f"{meta.name} g{gen}: {len(problems)} index set(s) disagree with the records:\n"
        + "\n".join(problems[:30]))
    return records


def assert_no_garbage(client: redis.Redis, model: Any, *, idle: bool = True) -> None:
    """The model's only keys are its fixed keys plus keys of its current generation.

    ``gen``, ``genseq``, ``nextpk``, ``schemas`` and ``lastreset`` may exist; so may ``staging`` and ``dead`` (Redis
    drops them when empty), but with ``idle`` (the default: no reset is running) they
    must not, since a finished reset leaves nothing staging and nothing waiting to be
    freed.  Any key of another generation is garbage.
    """
    keys = model._meta.keys
    gen = current_generation(client, model)
    live_prefix = keys.generation(gen).prefix
    fixed = set(keys.bookkeeping)
    garbage = sorted(k for k in model_keys(client, model)
                     if k not in fixed and not k.startswith(live_prefix))
    assert not garbage, (
        f"{model._meta.name}: {len(garbage)} key(s) outside the live generation g{gen}: "
        f"{garbage[:20]}")
    if idle:  # a reset packs its dictionaries' load sets away before its switch
        loads = sorted(k for k in model_keys(client, model) if k.startswith(live_prefix + b"l:"))
        assert not loads, f"{model._meta.name}: dictionary load sets left in the live generation: {loads!r}"
        staging = client.zrange(keys.staging, 0, -1)
        dead = client.smembers(keys.dead)
        assert not staging, f"{model._meta.name}: generations still staging: {staging!r}"
        assert not dead, f"{model._meta.name}: generations still waiting to be freed: {dead!r}"


def db_snapshot(client: redis.Redis) -> dict[bytes, tuple[bytes, Any]]:
    """Every key of the database -> (type, content), for before/after comparisons."""
    snapshot: dict[bytes, tuple[bytes, Any]] = {}
    for key in client.scan_iter(count=1000):
        key_type = client.type(key)
        if key_type == b"string":
            content: Any = client.get(key)
        elif key_type == b"hash":
            content = client.hgetall(key)
        elif key_type == b"set":
            content = frozenset(client.smembers(key))
        elif key_type == b"zset":
            content = tuple(client.zrange(key, 0, -1, withscores=True))
        elif key_type == b"list":
            content = tuple(client.lrange(key, 0, -1))
        else:
            content = client.dump(key)
        snapshot[key] = (key_type, content)
    return snapshot


def dictionary_values(client: Any, key: bytes) -> list[bytes]:
    """A text dictionary's values, block after block (IndexedRedis/scripts/textindex.lua):
    in byte order when the blocks are right."""
    from IndexedRedis.textindex import block_values

    return [value for member in client.zrange(key, 0, -1) for value in block_values(member)]


def rewrite_dictionary(client: Any, key: bytes, values: Any) -> None:
    """Store a text dictionary holding exactly ``values``, in blocks of 64 (a foreign
    write, for the tests that make drift on purpose)."""
    from IndexedRedis.keys import lex_text

    ordered = sorted(set(values))
    client.delete(key)
    if ordered:
        client.zadd(key, {b"".join(lex_text(v) for v in ordered[i:i + 64]): 0 for i in range(0, len(ordered), 64)})
