"""The memo of first filters (``compiler._first_filter``): I/O-free, no Redis.

``Model.objects.filter(field=value)`` is resolved once per (order, field, value type,
value) and the same immutable query handed out again; these tests check that the memo
never answers for a different filter, nor after a field's settings changed."""

from __future__ import annotations

from typing import Any

from IndexedRedis import IndexedRedisModel, IRBytesField, IRField, IRFixedPointField, setDefaultIREncoding
from IndexedRedis.compiler import FILTER_MEMO_SIZE, Query
from IndexedRedis.lookups import resolve_filter
from IndexedRedis.q import AND


class MemoSong(IndexedRedisModel):
    FIELDS = [IRField("n", valueType=int), "artist", IRField("x", valueType=float), "title"]
    INDEXED_FIELDS = ["n", "artist", "x", "title"]
    KEY_NAME = "MemoSong"


def fresh() -> None:
    MemoSong._meta.filter_memo.clear()


def test_same_filter_same_query_object_and_equal_to_unmemoised() -> None:
    fresh()
    first = MemoSong.objects.filter(artist="a", n=3).query
    again = MemoSong.objects.filter(artist="a", n=3).query
    assert again is first
    # what the memo hands out is what resolving the filter gives
    meta = MemoSong._meta
    resolved = Query()._with((AND, (resolve_filter(meta, "artist", "a"), resolve_filter(meta, "n", 3))))
    assert first == resolved and first.conditions == resolved.conditions


def test_memo_keys_on_value_type_keyword_order_and_query_order() -> None:
    fresh()
    as_int = MemoSong.objects.filter(title=1).query
    as_text = MemoSong.objects.filter(title="1").query
    as_bool = MemoSong.objects.filter(title=True).query
    # a text field stores 1 and "1" alike, and True as "True": a memo keyed on value alone
    # (True == 1) would hand out the int's query for True
    assert as_int.conditions == as_text.conditions
    assert as_bool.conditions != as_int.conditions
    ordered = MemoSong.objects.orderBy("-n").filter(title="1").query
    assert ordered.order != as_text.order and ordered.conditions == as_text.conditions
    swapped = MemoSong.objects.filter(n=3, artist="a").query
    straight = MemoSong.objects.filter(artist="a", n=3).query
    assert set(swapped.conditions) == set(straight.conditions)


def test_floats_and_unhashable_values_are_not_memoised() -> None:
    fresh()
    zero, minus_zero = MemoSong.objects.filter(title=0.0).query, MemoSong.objects.filter(title=-0.0).query
    assert zero.conditions != minus_zero.conditions  # "0.0" and "-0.0" are different text
    MemoSong.objects.filter(x=1.5)
    assert MemoSong._meta.filter_memo == {}


def test_chained_filters_bypass_the_memo_and_errors_are_not_kept() -> None:
    fresh()
    MemoSong.objects.filter(artist="a").filter(n=2)
    assert len(MemoSong._meta.filter_memo) == 1  # only the first link of the chain
    try:
        MemoSong.objects.filter(nope=1)
    except Exception as exc:  # noqa: BLE001 - the error itself is tested elsewhere
        assert "nope" in str(exc)
    else:
        raise AssertionError("filtering on an unknown field must fail")
    assert len(MemoSong._meta.filter_memo) == 1


def test_memo_is_bounded() -> None:
    fresh()
    for i in range(FILTER_MEMO_SIZE + 10):
        MemoSong.objects.filter(n=i)
    assert 0 < len(MemoSong._meta.filter_memo) <= FILTER_MEMO_SIZE
    assert MemoSong.objects.filter(n=7).query.conditions == MemoSong.objects.filter(n=7).query.conditions


class _Shouting(IRField):
    """A user's field type: its conversion is its own, so never memoised."""

    def _fromInput(self, value: Any) -> Any:
        return str(value).upper()


class MemoOwnField(IndexedRedisModel):
    FIELDS = [_Shouting("loud"), IRFixedPointField("price", decimalPlaces=2), IRBytesField("raw")]
    INDEXED_FIELDS = ["loud", "price", "raw"]
    KEY_NAME = "MemoOwnField"


def test_a_change_of_a_fields_settings_empties_the_memo() -> None:
    # 6.x code may change a live field's settings (its unit tests raise decimalPlaces
    # after a save and expect filters to use the new precision)
    price = MemoOwnField._meta.fields_by_name["price"]
    before = MemoOwnField.objects.filter(price=1).query.conditions
    price.decimalPlaces = 4
    try:
        after = MemoOwnField.objects.filter(price=1).query.conditions
        assert after != before
        assert after == (resolve_filter(MemoOwnField._meta, "price", 1),)
    finally:
        price.decimalPlaces = 2
    assert MemoOwnField.objects.filter(price=1).query.conditions == before


def test_a_new_default_encoding_empties_the_memo() -> None:
    before = MemoOwnField.objects.filter(raw="é").query.conditions
    setDefaultIREncoding("latin-1")
    try:
        after = MemoOwnField.objects.filter(raw="é").query.conditions
        assert after == (resolve_filter(MemoOwnField._meta, "raw", "é"),)
    finally:
        setDefaultIREncoding("utf-8")
    assert MemoOwnField.objects.filter(raw="é").query.conditions == before


def test_user_field_types_and_bytes_are_not_memoised() -> None:
    meta = MemoOwnField._meta
    meta.filter_memo.clear()
    fresh()
    MemoOwnField.objects.filter(loud="a")
    MemoSong.objects.filter(title=b"x")
    assert meta.filter_memo == {} and MemoSong._meta.filter_memo == {}
    MemoSong.objects.filter(title="x")  # the same field with a str value is memoised
    assert len(MemoSong._meta.filter_memo) == 1
