"""I/O-free: the value sets a reset frees with the old generation's records
(``entries.current_index_keys``), made once per distinct stored value, are exactly the
union of each record's own keys, whatever the values' types (``True == 1``,
``-0.0 == 0.0`` and ``False == 0`` are equal in Python, but their index values differ)."""

from __future__ import annotations

from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from IndexedRedis import IndexedRedisModel, IRField
from IndexedRedis.entries import current_index_keys
from IndexedRedis.fields import NULL_STORED


class Freed(IndexedRedisModel):
    FIELDS = ["name", IRField("hashed", hashIndex=True), IRField("n", valueType=int), IRField("f", valueType=float),
              "other"]
    INDEXED_FIELDS = ["name", "hashed", "n", "f"]
    KEY_NAME = "FreeKeysTest"


STORED = st.one_of(st.sampled_from([True, False, 1, 0, 0.0, -0.0, 1.0, "1", "True", b"1", NULL_STORED]),
                   st.text(max_size=4), st.integers(-3, 3), st.floats(allow_nan=False, width=16))
RECORD = st.fixed_dictionaries({}, optional={name: STORED for name in ("name", "hashed", "n", "f", "other")})


def _each(meta: Any, gk: Any, record: dict[str, Any]) -> set[bytes]:
    return {meta.index_key(gk, field, record[field.name]) for field in meta.indexed if field.name in record}


def _readable(meta: Any, gk: Any, record: dict[str, Any]) -> bool:
    """Whether every value is one the field's index can name (as stored values are)."""
    try:
        _each(meta, gk, record)
    except (AttributeError, TypeError, ValueError, OverflowError):
        return False
    return True


@given(st.lists(RECORD, max_size=30))
def test_the_keys_of_a_batch_are_the_union_of_each_records(records: list[dict[str, Any]]) -> None:
    meta = Freed._meta
    gk = meta.keys.generation(3)
    assume(all(_readable(meta, gk, record) for record in records))
    expected = set().union(*(_each(meta, gk, record) for record in records))
    assert current_index_keys(meta, gk, records) == expected


def test_equal_values_of_other_types_keep_their_own_keys() -> None:
    meta = Freed._meta
    gk = meta.keys.generation(1)
    records = [{"n": value, "f": value, "name": "x"} for value in (True, 1, 0.0, -0.0, 0, NULL_STORED)]
    keys = current_index_keys(meta, gk, records)
    assert keys == set().union(*(_each(meta, gk, r) for r in records))
    assert gk.null_index("n") in keys and gk.index("n", b"0") in keys and gk.index("n", b"1") in keys
