"""Unit tests of the field types, without Redis: conversion, validation messages,
idempotence of ``fromInput``, index values, ``repr``, ``copy``, pickling of field
objects, indexability and the pickle-field opt-in."""

from __future__ import annotations

import base64
import bz2
import copy
import datetime as dt
import enum
import hashlib
import lzma
import math
import pickle
import zlib
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import IndexedRedis.fields as fields_module
from IndexedRedis import FieldValueError, IndexedRedisModel, InvalidModelException
from IndexedRedis.fields import (
    NULL_STORED,
    IRBase64Field,
    IRBytesField,
    IRClassicField,
    IRCompressedField,
    IRField,
    IRFieldChain,
    IRFixedPointField,
    IRPickleField,
    IRRawField,
    IRUnicodeField,
    allowPickleFields,
    getDefaultIREncoding,
    irNull,
    pickleFieldsAllowed,
    setDefaultIREncoding,
    wire_bytes,
)

UTC = dt.timezone.utc
PLUS_ONE = dt.timezone(dt.timedelta(hours=1))


def md5(raw: bytes) -> bytes:
    return hashlib.md5(raw).hexdigest().encode("ascii")


def same(a: Any, b: Any) -> bool:
    """Equal and of the same type, all the way down (nan equals nan)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def roundtrip(field: IRField, value: Any) -> Any:
    """What fetching a stored value gives back (the stored form going through the wire
    as msgpack would deliver it: text as str, other bytes surrogate-escaped)."""
    stored = field.toStorage(field.fromInput(value))
    if stored is NULL_STORED:
        return field.fromStorage(stored)
    wire = wire_bytes(stored).decode("utf-8", "surrogateescape")
    return field.fromStorage(wire)


def message(exc_info: pytest.ExceptionInfo[BaseException]) -> str:
    return str(exc_info.value)


@pytest.fixture
def default_encoding():
    """Restore the default encoding after a test changes it."""
    before = getDefaultIREncoding()
    yield
    setDefaultIREncoding(before)


@pytest.fixture
def pickle_state(monkeypatch):
    """Pickle fields neither allowed nor forbidden explicitly, and no env variable."""
    monkeypatch.setattr(fields_module, "_pickle_allowed", None)
    monkeypatch.delenv("INDEXEDREDIS_ALLOW_PICKLE", raising=False)
    return monkeypatch


# ---- IRField(valueType=str) ---------------------------------------------------------------


def test_str_field_defaults():
    field = IRField("name")
    assert field == "name" and field.name == "name"
    assert field.valueType is str
    assert field.getDefaultValue() is irNull
    assert field.fromInput(None) is irNull
    assert field.fromInput(irNull) is irNull
    assert field.toStorage(irNull) is NULL_STORED
    assert field.fromStorage(NULL_STORED) is irNull
    assert field.canIndex() and not field.isIndexHashed()


def test_str_field_conversions(default_encoding):
    field = IRField("name")
    assert field.fromInput("héllo 𝄞") == "héllo 𝄞"
    assert field.fromInput("") == ""
    assert field.fromInput("caf\u00e9".encode()) == "café"
    assert field.fromInput(41) == "41" and field.fromInput(4.5) == "4.5"
    assert field.fromInput(True) == "True"
    assert field.toStorage("x") == "x"
    assert field.fromStorage(b"\xc3\xa9") == "é"
    assert field.toIndex("é") == "é".encode()
    setDefaultIREncoding("latin-1")
    assert field.fromInput(b"\xe9") == "é"


def test_str_field_subclass_becomes_plain_str():
    class Name(str):
        pass

    value = IRField("name").fromInput(Name("bob"))
    assert type(value) is str and value == "bob"


def test_str_field_rejections():
    field = IRField("name")
    with pytest.raises(ValueError) as info:
        field.fromInput(b"\xff\xfe")
    assert "utf-8" in message(info) and "bytes field" in message(info)
    with pytest.raises(ValueError, match="valid Unicode"):
        field.fromInput("lone \ud800 surrogate")
    with pytest.raises(TypeError, match="text"):
        field.fromInput(["a"])


def test_hash_index_is_md5_of_the_index_value():
    field = IRField("genome", hashIndex=True)
    assert field.isIndexHashed()
    assert field.toIndex("ACGT" * 100) == md5(("ACGT" * 100).encode())
    assert field.indexFromStorage("ACGT") == md5(b"ACGT")


# ---- IRField(valueType=int) ------------------------------------------------------------------


class Color(enum.IntEnum):
    RED = 7


def test_int_field_accepts():
    field = IRField("n", valueType=int)
    for raw, expected in [(41, 41), (-5, -5), (10**100, 10**100), ("41", 41), (" -41 ", -41),
                            (b"41", 41), (41.0, 41), (Decimal("12"), 12), (True, 1), (False, 0),
                            (Color.RED, 7)]:
        value = field.fromInput(raw)
        assert same(value, expected), raw
    assert field.toStorage(-41) == "-41"
    assert field.fromStorage("-41") == -41 and field.fromStorage(b"7") == 7
    assert field.toIndex(41) == b"41"
    assert field.toIndex(field.fromInput("0041")) == b"41"


@pytest.mark.parametrize("bad", [41.5, "4.5", "abc", "", float("nan"), float("inf"), Decimal("1.5"),
                                 pytest.param(10**5000, id="5000-digits")])
def test_int_field_rejects_values(bad):
    with pytest.raises(ValueError, match="int"):
        IRField("n", valueType=int).fromInput(bad)


@pytest.mark.parametrize("bad", [[1], {"a": 1}, object(), dt.datetime(2020, 1, 1)])
def test_int_field_rejects_types(bad):
    with pytest.raises(TypeError, match="an int"):
        IRField("n", valueType=int).fromInput(bad)


# ---- IRField(valueType=float) ---------------------------------------------------------------


def test_float_field():
    field = IRField("x", valueType=float)
    assert same(field.fromInput(41), 41.0)
    assert same(field.fromInput("41"), 41.0)
    assert same(field.fromInput(b"1e3"), 1000.0)
    assert same(field.fromInput(Decimal("0.5")), 0.5)
    assert same(field.fromInput(True), 1.0)
    assert field.toStorage(0.1) == "0.1"
    assert field.toStorage(-0.0) == "-0.0"
    assert same(field.fromStorage("-0.0"), -0.0) and math.copysign(1, field.fromStorage("-0.0")) < 0
    # filter(x=41) finds 41.0: equal values, equal index
    assert field.toIndex(field.fromInput(41)) == field.toIndex(41.0) == b"41.0"
    # -0.0 == 0.0, so they share an index
    assert field.toIndex(-0.0) == field.toIndex(0.0)
    assert field.toIndex(float("nan")) == b"nan" and field.toIndex(float("-inf")) == b"-inf"
    assert field.canIndex()


def test_float_field_rejections():
    field = IRField("x", valueType=float)
    with pytest.raises(ValueError, match="too large"):
        field.fromInput(10**400)
    with pytest.raises(ValueError, match="float"):
        field.fromInput("forty")
    with pytest.raises(TypeError, match="float"):
        field.fromInput([1.0])


@given(st.floats())
def test_float_storage_round_trips_exactly(value):
    field = IRField("x", valueType=float)
    back = roundtrip(field, value)
    assert same(back, value)
    if not math.isnan(value):
        assert math.copysign(1, back) == math.copysign(1, value)


# ---- IRField(valueType=bool) ----------------------------------------------------------------


@pytest.mark.parametrize("given_value, expected", [
    (True, True), (False, False), (1, True), (0, False), ("true", True), ("TRUE", True),
    ("False", False), ("1", True), ("0", False), (b"true", True), (" false ", False)])
def test_bool_field_accepts(given_value, expected):
    field = IRField("flag", valueType=bool)
    assert field.fromInput(given_value) is expected
    assert roundtrip(field, given_value) is expected


@pytest.mark.parametrize("bad", [2, -1, "yes", "", "2"])
def test_bool_field_rejects_values(bad):
    with pytest.raises(ValueError, match="a bool"):
        IRField("flag", valueType=bool).fromInput(bad)


def test_bool_field_rejects_types_and_indexes():
    field = IRField("flag", valueType=bool)
    with pytest.raises(TypeError, match="a bool"):
        field.fromInput(1.0)
    assert field.toIndex(True) == b"True" and field.toIndex(False) == b"False"
    assert field.canIndex()


# ---- IRField(valueType=bytes) ---------------------------------------------------------------


def test_bytes_value_type(default_encoding):
    field = IRField("blob", valueType=bytes)
    assert same(field.fromInput(b"\x00\xff"), b"\x00\xff")
    assert same(field.fromInput(bytearray(b"ab")), b"ab")
    assert same(field.fromInput(memoryview(b"ab")), b"ab")
    assert same(field.fromInput("é"), "é".encode())
    assert same(field.toStorage(b"\xff"), b"\xff")
    assert field.fromStorage("\udcff") == b"\xff"  # surrogate-escaped from the wire
    assert field.toIndex(b"\x00\xff") == b"\x00\xff"
    assert field.canIndex()
    setDefaultIREncoding("utf-16-le")
    assert field.fromInput("a") == b"a\x00"
    with pytest.raises(TypeError, match="bytes"):
        field.fromInput(5)


# ---- IRField(valueType=dict / list) ---------------------------------------------------------


def test_json_fields():
    dfield = IRField("meta", valueType=dict)
    lfield = IRField("tags", valueType=list)
    value = {"a": [1, 2.5, None, True, "x", {"b": []}], "é": {}}
    assert same(dfield.fromInput(value), value)
    assert dfield.fromInput(value) is not value  # a copy, not the caller's object
    assert same(roundtrip(dfield, value), value)
    assert same(dfield.fromInput('{"a": 1}'), {"a": 1})
    assert same(lfield.fromInput((1, (2, 3))), [1, [2, 3]])
    assert same(lfield.fromInput(b"[1, 2]"), [1, 2])
    assert same(roundtrip(lfield, []), [])
    assert dfield.toStorage({"a": [1, "é"]}) == '{"a":[1,"é"]}'
    assert not dfield.canIndex() and not lfield.canIndex()


def test_tuple_value_type():
    field = IRField("pair", valueType=tuple)
    assert same(field.fromInput([1, (2, 3)]), (1, [2, 3]))
    assert same(roundtrip(field, (1, "a")), (1, "a"))


@pytest.mark.parametrize("bad, kind, where", [
    ({1: "a"}, TypeError, "key must be a str"),
    ({"a": {1, 2}}, TypeError, "$['a']"),
    ({"a": [float("nan")]}, ValueError, "$['a'][0]"),
    ({"a": float("inf")}, ValueError, "no JSON form"),
    ({"a": b"bytes"}, TypeError, "bytes"),
    ({"a": "\ud800"}, ValueError, "valid Unicode"),
    ('{"a": ', ValueError, "not JSON"),
    ("[1, 2]", TypeError, "a dict"),
    ([1, 2], TypeError, "a dict"),
])
def test_json_field_rejections(bad, kind, where):
    with pytest.raises(kind) as info:
        IRField("meta", valueType=dict).fromInput(bad)
    assert where in message(info)


def test_json_field_rejects_deep_nesting():
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValueError, match="nested too deeply"):
        IRField("tags", valueType=list).fromInput(deep)


def test_indexing_a_json_field_is_refused_at_class_definition():
    with pytest.raises(InvalidModelException, match="cannot be indexed"):
        class Bad(IndexedRedisModel):
            FIELDS = [IRField("meta", valueType=dict)]
            INDEXED_FIELDS = ["meta"]
            KEY_NAME = "test_fields:BadJson"


# ---- IRField(valueType=datetime) -------------------------------------------------------------


def test_datetime_field():
    field = IRField("when", valueType=dt.datetime)
    naive = dt.datetime(2020, 5, 17, 13, 45, 12, 345678)
    aware = dt.datetime(2020, 5, 17, 13, 45, tzinfo=PLUS_ONE)
    assert same(field.fromInput(naive), naive)
    assert field.toStorage(naive) == "2020-05-17T13:45:12.345678"
    assert field.toStorage(aware) == "2020-05-17T13:45:00+01:00"
    assert same(roundtrip(field, naive), naive)
    back = roundtrip(field, aware)
    assert same(back, aware) and back.utcoffset() == dt.timedelta(hours=1)
    assert same(field.fromInput("2020-05-17T13:45:12.345678"), naive)
    assert same(field.fromInput("2020-05-17 12:45:00Z"), aware)
    assert same(field.fromInput(b"2020-05-17T13:45:00+01:00"), aware)
    assert field.canIndex()


def test_datetime_index_is_the_instant_for_aware_values():
    field = IRField("when", valueType=dt.datetime)
    a = dt.datetime(2020, 1, 1, 12, tzinfo=UTC)
    b = dt.datetime(2020, 1, 1, 13, tzinfo=PLUS_ONE)
    naive = dt.datetime(2020, 1, 1, 12)
    assert a == b and field.toIndex(a) == field.toIndex(b) == b"2020-01-01T12:00:00Z"
    assert field.toIndex(naive) == b"2020-01-01T12:00:00" != field.toIndex(a)
    # near datetime.min the UTC instant does not fit a datetime; still deterministic
    early = dt.datetime.min.replace(tzinfo=PLUS_ONE)
    same_instant = dt.datetime.min.replace(hour=1, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert early == same_instant and field.toIndex(early) == field.toIndex(same_instant)


def test_datetime_timestamps_as_in_6x():
    field = IRField("when", valueType=dt.datetime)
    assert field.fromInput(1500000000) == dt.datetime.fromtimestamp(1500000000)
    assert field.fromInput("1500000000.5") == dt.datetime.fromtimestamp(1500000000.5)


def test_datetime_subclass_is_normalised():
    class Stamp(dt.datetime):
        pass

    value = IRField("when", valueType=dt.datetime).fromInput(Stamp(2020, 1, 2, 3, tzinfo=UTC))
    assert type(value) is dt.datetime and value == dt.datetime(2020, 1, 2, 3, tzinfo=UTC)


@pytest.mark.parametrize("bad, kind", [
    ("yesterday", ValueError), ("", ValueError), (dt.date(2020, 1, 1), TypeError),
    (True, TypeError), (10**30, ValueError), ([2020], TypeError)])
def test_datetime_rejections(bad, kind):
    with pytest.raises(kind, match="datetime"):
        IRField("when", valueType=dt.datetime).fromInput(bad)


# ---- IRField(valueType=None) and custom types --------------------------------------------------


def test_none_value_type_passes_str_and_bytes_through():
    field = IRField("raw", valueType=None)
    assert field.valueType is None
    assert same(field.fromInput("héllo"), "héllo")
    assert same(field.fromInput(b"\xff"), b"\xff")
    assert field.toStorage("héllo") == "héllo" and field.toStorage(b"\xff") == b"\xff"
    assert same(roundtrip(field, "héllo"), "héllo".encode())  # bytes come out, as 6.x says
    assert same(roundtrip(field, b"\x00\xff"), b"\x00\xff")
    assert not field.canIndex()
    assert IRField("raw", valueType=type(None)).valueType is None
    with pytest.raises(TypeError, match="str or bytes"):
        field.fromInput(5)


class Celsius:
    """A custom value type: one-argument constructor, str() for storage, indexable."""

    CAN_INDEX = True

    def __init__(self, value: Any) -> None:
        self.degrees = round(float(value), 1)

    def __str__(self) -> str:
        return f"{self.degrees:.1f}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Celsius) and other.degrees == self.degrees

    def __hash__(self) -> int:
        return hash(self.degrees)


def test_custom_value_type():
    field = IRField("temp", valueType=Celsius)
    value = field.fromInput("21.04")
    assert type(value) is Celsius and value == Celsius(21.0)
    assert field.fromInput(value) is value
    assert field.toStorage(value) == "21.0"
    assert same(roundtrip(field, 21.04), Celsius(21.0))
    assert field.canIndex() and field.toIndex(value) == b"21.0"
    with pytest.raises(ValueError) as info:
        field.fromInput("warm")
    assert "Celsius" in message(info) and "ValueError" in message(info)


def test_custom_value_type_without_can_index_is_not_indexable():
    field = IRField("amount", valueType=Decimal)
    assert not field.canIndex()
    assert same(roundtrip(field, "1.10"), Decimal("1.10"))
    assert same(roundtrip(field, Decimal("-0")), Decimal("-0"))


@pytest.mark.parametrize("bad", [set, frozenset, bytearray, object, complex, dt.date, dt.time,
                                 dt.timedelta, type(irNull), 42, "int", len, IRBase64Field])
def test_unsupported_value_types_are_refused_at_field_creation(bad):
    with pytest.raises(TypeError, match="valueType"):
        IRField("x", valueType=bad)


def test_default_values_are_normalised_and_checked():
    assert IRField("n", valueType=int, defaultValue="5").getDefaultValue() == 5
    assert IRFixedPointField("p", 2, defaultValue=1).defaultValue == 1.0
    assert IRField("n", valueType=int, defaultValue=None).defaultValue is irNull
    assert IRBytesField("b", defaultValue="x").defaultValue == b"x"
    with pytest.raises(ValueError) as info:
        IRField("n", valueType=int, defaultValue="five")
    assert "defaultValue 'five'" in message(info) and "an int" in message(info)
    mutable = IRField("d", valueType=dict, defaultValue={"a": [1]})
    first = mutable.getDefaultValue()
    first["a"].append(2)
    assert mutable.getDefaultValue() == {"a": [1]}


# ---- IRClassicField (6.x's behaviour) --------------------------------------------------------


def test_classic_field():
    field = IRClassicField("name", defaultValue="ignored")
    assert field.getDefaultValue() == "" and field.defaultValue == ""
    assert field.fromInput(None) == ""
    assert field.fromInput(irNull) is irNull and field.toStorage(irNull) is NULL_STORED  # as in 6.x
    assert field.fromInput(1) == "1"
    assert field.toIndex("é") == "é".encode()
    assert repr(field) == "IRClassicField('name')"
    assert repr(IRClassicField("h", hashIndex=True)) == "IRClassicField('h', hashIndex=True)"


# ---- IRRawField, IRUnicodeField, IRBytesField, IRBase64Field -----------------------------------


def test_raw_field():
    """As in 6.x: the value is kept as assigned, stored as its bytes, read back as bytes;
    the default is ''."""
    field = IRRawField("data")
    assert same(field.fromInput(b"\x00\xff"), b"\x00\xff")
    assert same(field.fromInput(bytearray(b"ab")), b"ab")
    assert same(roundtrip(field, b"\xff\xfe\x00"), b"\xff\xfe\x00")
    for value, stored in (("é", "é".encode()), (5, b"5"), (-2, b"-2"), (3.14, b"3.14"), (1e100, b"1e+100"),
                          (Decimal("1.50"), b"1.50")):
        assert same(field.fromInput(value), value)
        assert same(field.toStorage(field.fromInput(value)), stored) and same(roundtrip(field, value), stored)
    assert same(field.getDefaultValue(), "") and same(roundtrip(field, ""), b"")
    assert same(field.fromInput(None), "") and same(field.fromInput(irNull), "")
    assert not field.canIndex()
    for wrong in (True, [1], {"a": 1}, object()):
        with pytest.raises(TypeError, match="bytes, a str"):
            field.fromInput(wrong)
    with pytest.raises(ValueError):
        field.fromInput("\udcff")  # cannot be encoded


def test_unicode_field_encodings(default_encoding):
    field = IRUnicodeField("text", encoding="utf-16")
    assert field.toStorage("hé") == "hé".encode("utf-16")
    assert same(roundtrip(field, "hé 𝄞"), "hé 𝄞")
    assert same(field.fromInput("hé".encode("utf-16")), "hé")
    assert field.canIndex() and field.isIndexHashed()
    # the index does not depend on the storage encoding
    assert field.toIndex("hé") == IRUnicodeField("t2", encoding="latin-1").toIndex("hé") == md5("hé".encode())
    latin = IRUnicodeField("text", encoding="latin-1")
    with pytest.raises(ValueError) as info:
        latin.fromInput("€")
    assert "latin-1" in message(info)
    with pytest.raises(TypeError, match="latin-1"):
        latin.fromInput(5)
    with pytest.raises(ValueError, match="unknown encoding"):
        IRUnicodeField("text", encoding="no-such-codec")
    follows_default = IRUnicodeField("text")
    assert follows_default.getEncoding() == "utf-8"
    setDefaultIREncoding("utf-16-le")
    assert follows_default.toStorage("a") == b"a\x00"


def test_bytes_field(default_encoding):
    field = IRBytesField("blob")
    assert same(field.fromInput("é"), "é".encode())
    assert same(roundtrip(field, b"\x00\xff\xfe"), b"\x00\xff\xfe")
    assert field.canIndex() and field.toIndex(b"\x00\xff") == md5(b"\x00\xff")
    assert same(IRBytesField("b", encoding="utf-16-le").fromInput("a"), b"a\x00")
    with pytest.raises(ValueError, match="ascii"):
        IRBytesField("b", encoding="ascii").fromInput("é")
    with pytest.raises(TypeError, match="bytes"):
        field.fromInput(1.5)


def test_base64_field():
    field = IRBase64Field("b64")
    assert field.toStorage(b"\x00\xff") == base64.b64encode(b"\x00\xff")
    assert isinstance(field.toStorage(b"x"), bytes)  # as 6.x's asDict(forStorage=True) gave it
    assert same(roundtrip(field, b"\x00\xff\xfe"), b"\x00\xff\xfe")
    assert same(roundtrip(field, b""), b"")
    assert same(field.fromInput("héllo"), "héllo".encode())
    # the index is the value's, not the base64 text's
    assert field.toIndex(b"abc") == md5(b"abc")
    assert field.indexFromStorage(field.toStorage(b"abc")) == md5(b"abc")
    with pytest.raises(ValueError, match="base64"):
        field.fromStorage("not base64!")


# ---- IRCompressedField ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode, canonical, decompress", [
    ("zlib", "zlib", zlib.decompress), ("gzip", "zlib", zlib.decompress), ("gz", "zlib", zlib.decompress),
    ("bz2", "bz2", bz2.decompress), ("bzip2", "bz2", bz2.decompress),
    ("lzma", "lzma", lzma.decompress), ("xz", "lzma", lzma.decompress)])
def test_compressed_field_modes(mode, canonical, decompress):
    field = IRCompressedField("c", compressMode=mode)
    assert field.compressMode == canonical
    data = b"abc" * 1000 + b"\x00\xff"
    stored = field.toStorage(field.fromInput(data))
    assert isinstance(stored, bytes) and len(stored) < len(data)
    assert decompress(stored) == data
    assert same(roundtrip(field, data), data)
    assert same(roundtrip(field, b""), b"")
    assert field.toIndex(data) == md5(data) and field.indexFromStorage(stored) == md5(data)
    assert repr(field) == f"IRCompressedField('c', compressMode={canonical!r}, defaultValue=irNull)"


def test_compressed_field_input_and_errors():
    field = IRCompressedField("c")
    assert field.compressMode == "zlib"
    assert same(field.fromInput("héllo"), "héllo")  # kept as assigned, as in 6.x
    assert field.toStorage("héllo") == field.toStorage("héllo".encode()) == zlib.compress("héllo".encode(), 9)
    assert same(roundtrip(field, "héllo"), "héllo".encode())  # read back as bytes
    assert field.toIndex("héllo") == field.toIndex("héllo".encode()) == md5("héllo".encode())
    with pytest.raises(TypeError, match="bytes"):
        field.fromInput(7)
    with pytest.raises(ValueError, match="compressMode 'rar'"):
        IRCompressedField("c", compressMode="rar")
    with pytest.raises(ValueError, match="not zlib data"):
        field.fromStorage("plain")
    with pytest.raises(ValueError, match="not lzma data"):
        IRCompressedField("c", compressMode="xz").fromStorage(b"plain")
    with pytest.raises(ValueError, match="not bz2 data"):
        IRCompressedField("c", compressMode="bz2").fromStorage(b"plain")


# ---- IRFixedPointField ----------------------------------------------------------------------------


def test_fixed_point_field():
    field = IRFixedPointField("price", decimalPlaces=2)
    assert same(field.fromInput(3.14159), 3.14)
    assert same(field.fromInput("2.005"), round(2.005, 2))
    assert same(field.fromInput(7), 7.0)
    assert same(field.fromInput(Decimal("1.239")), 1.24)
    assert field.toStorage(3.14) == "3.14" and field.toStorage(7.0) == "7.00"
    assert IRFixedPointField("p").toStorage(1.5) == "1.50000"
    assert IRFixedPointField("p", 0).toStorage(3.0) == "3"
    value = field.fromInput(-0.001)
    assert value == 0.0 and math.copysign(1, value) > 0  # -0.0 becomes 0.0
    assert field.toIndex(field.fromInput(3.14159)) == b"3.14"
    assert field.canIndex() and not field.isIndexHashed()


@pytest.mark.parametrize("bad, kind", [(float("nan"), ValueError), (float("inf"), ValueError),
                                       ("pi", ValueError), ([1], TypeError)])
def test_fixed_point_rejections(bad, kind):
    with pytest.raises(kind, match="finite number"):
        IRFixedPointField("p").fromInput(bad)


@pytest.mark.parametrize("bad", [-1, 2.0, "2", True])
def test_fixed_point_decimal_places_checked(bad):
    with pytest.raises(ValueError, match="decimalPlaces"):
        IRFixedPointField("p", decimalPlaces=bad)


@settings(max_examples=300)
@given(st.floats(allow_nan=False, allow_infinity=False), st.integers(0, 12))
def test_fixed_point_round_trip_is_exact(value, places):
    field = IRFixedPointField("p", decimalPlaces=places)
    rounded = field.fromInput(value)
    assert same(field.fromInput(rounded), rounded)
    assert same(roundtrip(field, value), rounded)
    assert field.toIndex(roundtrip(field, value)) == field.toIndex(rounded)


# ---- IRPickleField and its opt-in ------------------------------------------------------------------


def test_pickle_field_values():
    field = IRPickleField("obj")
    value = {"a": {1, 2}, "b": (1.5, b"\x00"), "c": complex(1, 2)}
    assert field.fromInput(value) is value
    stored = field.toStorage(value)
    assert isinstance(stored, bytes)
    assert roundtrip(field, value) == value
    assert not field.canIndex()
    with pytest.raises(TypeError, match="picklable"):
        field.fromInput(lambda: None)


def test_pickle_field_is_refused_without_opt_in(pickle_state):
    assert not pickleFieldsAllowed()
    with pytest.raises(InvalidModelException) as info:
        class Pickled(IndexedRedisModel):
            FIELDS = [IRField("name"), IRPickleField("obj")]
            KEY_NAME = "test_fields:Pickled"
    text = message(info)
    assert "Pickled" in text and "'obj'" in text
    assert "arbitrary code" in text
    assert "allowPickleFields(True)" in text and "INDEXEDREDIS_ALLOW_PICKLE=1" in text


def test_pickle_field_inside_a_chain_is_refused_too(pickle_state):
    with pytest.raises(InvalidModelException, match="arbitrary code"):
        class ChainPickled(IndexedRedisModel):
            FIELDS = [IRFieldChain("obj", [IRPickleField(), IRCompressedField()])]
            KEY_NAME = "test_fields:ChainPickled"


def test_pickle_opt_in_by_function(pickle_state):
    allowPickleFields(True)
    assert pickleFieldsAllowed()

    class Allowed(IndexedRedisModel):
        FIELDS = [IRPickleField("obj")]
        KEY_NAME = "test_fields:Allowed"

    assert Allowed(obj={1, 2}).obj == {1, 2}
    allowPickleFields(False)
    assert not pickleFieldsAllowed()


@pytest.mark.parametrize("setting, allowed", [("1", True), ("true", True), ("0", False), ("", False)])
def test_pickle_opt_in_by_environment(pickle_state, setting, allowed):
    pickle_state.setenv("INDEXEDREDIS_ALLOW_PICKLE", setting)
    assert pickleFieldsAllowed() is allowed
    if allowed:
        class EnvAllowed(IndexedRedisModel):
            FIELDS = [IRPickleField("obj")]
            KEY_NAME = "test_fields:EnvAllowed"


def test_explicit_refusal_beats_the_environment(pickle_state):
    pickle_state.setenv("INDEXEDREDIS_ALLOW_PICKLE", "1")
    allowPickleFields(False)
    assert not pickleFieldsAllowed()


def test_validate_for_model_is_a_no_op_for_other_fields():
    for field in (IRField("a"), IRClassicField("b"), IRCompressedField("c"),
                  IRFieldChain("d", [IRField(valueType=int), IRBase64Field()])):
        assert field.validateForModel("M") is None


# ---- IRFieldChain ----------------------------------------------------------------------------------


def test_chain_unicode_then_compressed():
    chain = IRFieldChain("lyrics", [IRUnicodeField(encoding="utf-16"), IRCompressedField()])
    text = "la la 𝄞 " * 100
    stored = chain.toStorage(chain.fromInput(text))
    assert zlib.decompress(stored) == text.encode("utf-16")  # left to right on store
    assert same(roundtrip(chain, text), text)  # right to left on fetch
    assert chain.canIndex() and chain.isIndexHashed()
    assert chain.toIndex(text) == md5(text.encode())  # the first field's index of the value
    assert chain.valueType is str


def test_chain_int_then_base64():
    chain = IRFieldChain("n", [IRField(valueType=int), IRBase64Field()])
    assert same(chain.fromInput("41"), 41)
    assert chain.toStorage(41) == base64.b64encode(b"41")
    assert same(roundtrip(chain, -7), -7)
    assert chain.toIndex(41) == md5(b"41")


def test_chain_hashing_and_indexability():
    plain = IRFieldChain("a", [IRField(valueType=int), IRFixedPointField(decimalPlaces=0)])
    assert plain.canIndex() and not plain.isIndexHashed() and plain.toIndex(5) == b"5"
    assert IRFieldChain("a", [IRField(valueType=int)], hashIndex=True).toIndex(5) == md5(b"5")
    assert not IRFieldChain("a", [IRField(), IRRawField()]).canIndex()
    assert not IRFieldChain("a", [IRPickleField(), IRBase64Field()]).canIndex()


def test_chain_accepts_field_classes_and_checks_its_arguments():
    chain = IRFieldChain("c", [IRUnicodeField, IRCompressedField])
    assert [type(f) for f in chain.chainedFields] == [IRUnicodeField, IRCompressedField]
    with pytest.raises(ValueError, match="has a name"):
        IRFieldChain("c", [IRField("named")])
    with pytest.raises(ValueError, match="empty"):
        IRFieldChain("c", [])
    with pytest.raises(ValueError, match="IRField objects"):
        IRFieldChain("c", ["text"])
    with pytest.raises(ValueError, match="needs a name"):
        IRFieldChain("", [IRField()])


def test_chain_default_value():
    chain = IRFieldChain("c", [IRField(valueType=int), IRBase64Field()], defaultValue="3")
    assert chain.getDefaultValue() == 3


# ---- errors through the model layer ----------------------------------------------------------------


class Typed(IndexedRedisModel):
    FIELDS = [IRField("n", valueType=int), IRField("when", valueType=dt.datetime),
              IRField("meta", valueType=dict), IRFixedPointField("price", 2)]
    INDEXED_FIELDS = ["n", "when", "price"]
    KEY_NAME = "test_fields:Typed"


def test_model_errors_name_model_field_and_expectation():
    with pytest.raises(FieldValueError) as info:
        Typed(n="forty-one")
    text = message(info)
    assert text.startswith("Typed.n: expected an int") and "'forty-one'" in text
    obj = Typed()
    with pytest.raises(FieldValueError, match=r"Typed\.meta: expected JSON values; at \$\['s'\]"):
        obj.meta = {"s": {1}}
    with pytest.raises(FieldValueError, match=r"Typed\.when: expected a datetime"):
        obj.when = "soon"
    assert obj.n is irNull and obj.when is irNull


def test_model_filters_convert_their_values():
    qs = Typed.objects.filter(n="41", price=3.14159)
    assert ("S", "n", b"41") in qs.query.conditions and ("S", "price", b"3.14") in qs.query.conditions
    with pytest.raises(FieldValueError, match="Typed.n"):
        Typed.objects.filter(n="x")


# ---- every field: idempotence, repr, copy, pickling ------------------------------------------------


ALL_FIELDS: list[tuple[IRField, Any]] = [
    (IRField("s"), st.text() | st.binary(max_size=8).filter(lambda b: b.isascii())
     | st.integers() | st.floats()),
    (IRField("i", valueType=int), st.integers() | st.integers().map(str) | st.booleans()),
    (IRField("f", valueType=float), st.floats() | st.integers(-10**300, 10**300)),
    (IRField("b", valueType=bool), st.booleans() | st.sampled_from(["TRUE", "false", "1", "0", 0, 1])),
    (IRField("y", valueType=bytes), st.binary() | st.text()),
    (IRField("d", valueType=dict), st.dictionaries(st.text(), st.integers() | st.text() | st.none())),
    (IRField("l", valueType=list), st.lists(st.integers() | st.tuples(st.text()))),
    (IRField("t", valueType=dt.datetime), st.datetimes() | st.datetimes(timezones=st.just(UTC))),
    (IRField("n", valueType=None), st.binary() | st.text()),
    (IRField("c", valueType=Celsius), st.floats(-1000, 1000)),
    (IRClassicField("k"), st.text() | st.integers()),
    (IRRawField("r"), st.binary() | st.text()),
    (IRUnicodeField("u", encoding="utf-16"), st.text()),
    (IRBytesField("by"), st.binary()),
    (IRBase64Field("b64"), st.binary()),
    (IRCompressedField("z", compressMode="bz2"), st.binary()),
    (IRFixedPointField("fp", 3), st.floats(allow_nan=False, allow_infinity=False)),
    (IRPickleField("p"), st.integers() | st.text() | st.frozensets(st.integers())),
    (IRFieldChain("ch", [IRUnicodeField(encoding="utf-16"), IRCompressedField()]), st.text()),
]


@pytest.mark.parametrize("field, values", ALL_FIELDS, ids=[repr(f) for f, _ in ALL_FIELDS])
@settings(max_examples=40)
@given(data=st.data())
def test_from_input_is_idempotent_and_round_trips(field, values, data):
    once = field.fromInput(data.draw(values))
    twice = field.fromInput(once)
    assert same(twice, once)
    back = roundtrip(field, once)
    if field.valueType is None and not isinstance(field, IRPickleField):
        assert same(back, wire_bytes(once))
    else:
        assert same(back, once)
    if field.canIndex():
        assert field.toIndex(once) == field.toIndex(twice) == field.toIndex(back)


EXPECTED_REPRS = {
    "s": "IRField('s', valueType=str, hashIndex=False, defaultValue=irNull)",
    "t": "IRField('t', valueType=datetime.datetime, hashIndex=False, defaultValue=irNull)",
    "n": "IRField('n', valueType=None, hashIndex=False, defaultValue=irNull)",
    "c": "IRField('c', valueType=test_fields.Celsius, hashIndex=False, defaultValue=irNull)",
    "r": "IRRawField('r', defaultValue='')",
    "u": "IRUnicodeField('u', encoding='utf-16', defaultValue=irNull)",
    "by": "IRBytesField('by', encoding=None, defaultValue=irNull)",
    "b64": "IRBase64Field('b64', encoding=None, defaultValue=irNull)",
    "z": "IRCompressedField('z', compressMode='bz2', defaultValue=irNull)",
    "fp": "IRFixedPointField('fp', decimalPlaces=3, defaultValue=irNull)",
    "p": "IRPickleField('p', defaultValue=irNull)",
    "ch": ("IRFieldChain('ch', chainedFields=[IRUnicodeField(encoding='utf-16'), "
           "IRCompressedField(compressMode='zlib')], hashIndex=True, defaultValue=irNull)"),
}


@pytest.mark.parametrize("field", [f for f, _ in ALL_FIELDS], ids=[repr(f) for f, _ in ALL_FIELDS])
def test_repr_copy_and_pickle(field):
    if field.name in EXPECTED_REPRS:
        assert repr(field) == EXPECTED_REPRS[field.name]
    assert repr(field).startswith(f"{type(field).__name__}({field.name!r}")
    for clone in (field.copy(), copy.deepcopy(field), pickle.loads(pickle.dumps(field))):
        assert type(clone) is type(field) and clone == field and clone.name == field.name
        assert repr(clone) == repr(field)
        assert clone.canIndex() == field.canIndex() and clone.isIndexHashed() == field.isIndexHashed()
    if isinstance(field, IRFieldChain):
        clone = field.copy()
        assert clone.chainedFields is not field.chainedFields
        assert all(a is not b for a, b in zip(clone.chainedFields, field.chainedFields))


def test_repr_shows_defaults_and_hashing():
    assert repr(IRField("x", valueType=int, defaultValue=3, hashIndex=True)) == (
        "IRField('x', valueType=int, hashIndex=True, defaultValue=3)")


def test_copied_chain_is_independent():
    chain = IRFieldChain("c", [IRField(valueType=int), IRBase64Field()], defaultValue=1)
    clone = chain.copy()
    clone.chainedFields.append(IRCompressedField())
    assert len(chain.chainedFields) == 2


def test_6x_style_subclass_without_init():
    class Upper(IRField):
        CAN_INDEX = True

        def __init__(self, name: str = "") -> None:  # does not call IRField.__init__
            pass

        def _fromInput(self, value: Any) -> str:
            return str(value).upper()

        def _toStorage(self, value: str) -> str:
            return value

        def _fromStorage(self, stored: Any) -> str:
            return stored

    field = Upper("shout")
    assert field.name == "shout" and field.fromInput("hi") == "HI"
    assert field.toIndex("HI") == b"HI" and field.getDefaultValue() is irNull
    assert repr(field) == "Upper('shout', valueType=str, hashIndex=False, defaultValue=irNull)"
