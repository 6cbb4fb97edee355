"""Friendly values: ``repr(obj)`` / ``str(obj)`` show the model, the pk and the field values
(long ones cut), and ``obj.asDict(forJSON=True)`` gives what ``json.dumps`` takes, as
documented in jsonvalues.py: irNull -> None, datetimes -> ISO 8601, bytes -> standard
base64, Decimal -> its text, non-finite floats -> None, links -> pks.

The hypothesis test builds random objects with a value for every field type, saves and
fetches them through a real Redis, and compares ``json.loads(json.dumps(asDict(forJSON=True)))``
with the documented value worked out here in plain Python."""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import IndexedRedis.fields as fields_module
from IndexedRedis import IndexedRedisModel, IRField, IRForeignLinkField, allowPickleFields, irNull
from IndexedRedis import fields as F  # noqa: N812 - the field types, one of each below


class Target(IndexedRedisModel):
    KEY_NAME = "test_friendly:Target"
    FIELDS = ["name"]


_was_allowed = fields_module._pickle_allowed
allowPickleFields(True)  # only for defining Every (it has a pickle field); restored right below


class Every(IndexedRedisModel):
    """One field of every type."""

    KEY_NAME = "test_friendly:Every"
    FIELDS = [
        F.IRClassicField("classic"),
        IRField("text"),
        IRField("integer", valueType=int),
        IRField("number", valueType=float),
        IRField("flag", valueType=bool),
        IRField("binary", valueType=bytes),
        IRField("when", valueType=dt.datetime),
        IRField("mapping", valueType=dict),
        IRField("items", valueType=list),
        IRField("decimal", valueType=Decimal),
        F.IRFixedPointField("fixed", decimalPlaces=2),
        F.IRUnicodeField("unicode", encoding="utf-16"),
        F.IRBytesField("rawbytes"),
        F.IRBase64Field("b64"),
        F.IRCompressedField("packed", compressMode="bz2"),
        F.IRRawField("raw"),
        F.IRFieldChain("chain", [IRField(valueType=int), F.IRBase64Field()]),
        IRForeignLinkField("link", Target),
        F.IRForeignMultiLinkField("links", Target),
        IRField("asis", valueType=None),
        F.IRPickleField("pickled"),
    ]
    INDEXED_FIELDS = ["text", "integer", "when"]


fields_module._pickle_allowed = _was_allowed


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# ---- the documented values, worked out in plain Python ---------------------------------------

JSON_LEAVES = st.none() | st.booleans() | st.integers(-(2 ** 53), 2 ** 53) | st.floats(
    allow_nan=False, allow_infinity=False) | st.text(max_size=8)
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=5), inner, max_size=3), max_leaves=8)
TIMEZONES = st.sampled_from([None, dt.timezone.utc, dt.timezone(dt.timedelta(hours=5, minutes=30)),
                             dt.timezone(-dt.timedelta(hours=8))])


def nullable(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def as_float(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def picked(value: Any) -> Any:
    """A pickle field's value converts by its own type, as the table says."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return b64(value)
    if isinstance(value, (list, tuple)):
        return [picked(item) for item in value]
    return value  # int, str


#: field -> (strategy of values to assign, the JSON value documented for an assigned value)
CASES: dict[str, tuple[st.SearchStrategy[Any], Any]] = {
    "classic": (st.text(max_size=20), lambda v: v),
    "text": (nullable(st.text(max_size=20)), lambda v: v),
    "integer": (nullable(st.integers(-(2 ** 70), 2 ** 70)), lambda v: v),
    "number": (nullable(st.floats() | st.sampled_from([math.nan, math.inf, -math.inf])), as_float),
    "flag": (nullable(st.booleans()), lambda v: v),
    "binary": (nullable(st.binary(max_size=40)), lambda v: None if v is None else b64(v)),
    "when": (nullable(st.datetimes(min_value=dt.datetime(1000, 1, 1), timezones=TIMEZONES)),
             lambda v: None if v is None else v.isoformat()),
    "mapping": (nullable(st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=4)), lambda v: v),
    "items": (nullable(st.lists(JSON_VALUES, max_size=4)), lambda v: v),
    "decimal": (nullable(st.decimals(allow_nan=False, allow_infinity=False)),
                lambda v: None if v is None else str(v)),
    "fixed": (nullable(st.floats(-1e9, 1e9)), lambda v: None if v is None else round(v, 2) + 0.0),
    "unicode": (nullable(st.text(max_size=20)), lambda v: v),
    "rawbytes": (nullable(st.binary(max_size=40)), lambda v: None if v is None else b64(v)),
    "b64": (nullable(st.binary(max_size=40)), lambda v: None if v is None else b64(v)),
    "packed": (nullable(st.binary(max_size=200)), lambda v: None if v is None else b64(v)),
    "raw": (st.binary(max_size=40), lambda v: b64(v)),
    "chain": (nullable(st.integers(-1000, 1000)), lambda v: v),
    "link": (nullable(st.integers(1, 10 ** 6)), lambda v: v),
    "links": (st.lists(st.integers(1, 10 ** 6), max_size=4), lambda v: v or None),
    "asis": (nullable(st.binary(max_size=40)), lambda v: None if v is None else b64(v)),
    "pickled": (nullable(st.recursive(st.integers() | st.text(max_size=5) | st.binary(max_size=5),
                                      lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner),
                                      max_leaves=6)), lambda v: picked(v)),
}
assert set(CASES) == set(Every.FIELDS), "a case per field type"

OBJECTS = st.fixed_dictionaries({name: strategy for name, (strategy, _) in CASES.items()})


def documented(values: dict[str, Any]) -> dict[str, Any]:
    return {name: CASES[name][1](value) for name, value in values.items()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(values=OBJECTS)
def test_for_json_values_of_every_field_type_dump_and_read_back_as_documented(values: dict[str, Any]) -> None:
    obj = Every(**values)
    expected = documented(values)
    for stage, current in (("unsaved", obj), ("fetched", None)):
        if current is None:
            pk = obj.save()
            current = Every.objects.get(pk)
            assert current is not None
            expected = {**expected, "_id": pk}
        safe = current.asDict(forJSON=True, includeMeta=stage == "fetched")
        text = json.dumps(safe, allow_nan=False)  # strict JSON: no NaN / Infinity
        assert json.loads(text) == expected, stage
        assert all(type(key) is str for key in safe)
    assert obj.asDict()["when"] == (irNull if values["when"] is None else values["when"])  # asDict() unchanged


def test_for_json_keeps_the_other_asdict_options() -> None:
    obj = Every(when=dt.datetime(2020, 1, 2, 3, 4, 5), binary=b"\x00\xff", decimal=Decimal("1.10"), number=math.inf)
    assert obj.asDict(forJSON=True)["when"] == "2020-01-02T03:04:05"
    safe = obj.asDict(forJSON=True)
    assert "_id" not in safe
    assert safe["binary"] == "AP8=" and safe["decimal"] == "1.10" and safe["number"] is None
    assert safe["text"] is None and safe["link"] is None and safe["links"] is None and safe["classic"] == ""
    assert obj.asDict(True, forJSON=True)["_id"] is None
    with pytest.raises(ValueError, match="Every.asDict: forJSON and forStorage cannot be combined"):
        obj.asDict(forStorage=True, forJSON=True)
    assert obj.asDict()["text"] is irNull and obj.asDict()["binary"] == b"\x00\xff"


def test_for_json_of_a_fetched_link_gives_the_pk() -> None:
    target = Target(name="t")
    target.save()
    obj = Every(link=target, links=[target, target._id])
    pk = obj.save()
    fetched = Every.objects.get(pk)
    assert fetched is not None
    assert fetched.link.name == "t"  # fetched on read
    assert fetched.asDict(forJSON=True)["link"] == target._id
    assert fetched.asDict(forJSON=True)["links"] == [target._id, target._id]


# ---- repr and str ----------------------------------------------------------------------------


class Song(IndexedRedisModel):
    KEY_NAME = "test_friendly:Song"
    FIELDS = ["artist", "title", IRField("length", valueType=int), IRField("cover", valueType=bytes),
              IRField("when", valueType=dt.datetime), IRForeignLinkField("target", Target)]


def test_repr_shows_model_pk_and_values() -> None:
    obj = Song(artist="Pink Floyd", title="Time", length=413, cover=b"\x89PNG", when=dt.datetime(1973, 3, 1))
    assert repr(obj) == ("<Song _id=None artist='Pink Floyd' title='Time' length=413 cover=b'\\x89PNG' "
                         "when=1973-03-01T00:00:00 target=irNull>")
    pk = obj.save()
    fetched = Song.objects.get(pk)
    assert repr(fetched) == repr(obj).replace("_id=None", f"_id={pk}")
    assert str(fetched) == repr(fetched)


def test_long_values_are_cut_and_bytes_shortened() -> None:
    obj = Song(artist="x" * 500, cover=bytes(range(256)) * 40)
    text = repr(obj)
    assert "artist='" + "x" * 56 + "..." in text and "x" * 60 not in text
    assert "cover=b'\\x00\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08\\t\\n\\x0b\\x0c\\r\\x0e\\x0f'...(10240 bytes)" in text
    assert len(text) < 300


def test_str_says_when_a_stored_object_has_unsaved_changes() -> None:
    target = Target(name="t")
    target.save()
    obj = Song(artist="a", target=target)
    assert "(unsaved changes)" not in str(obj)  # new: _id=None says it
    pk = obj.save()
    assert str(obj) == (f"<Song _id={pk} artist='a' title='' length=irNull cover=irNull when=irNull "
                        f"target=->{target._id}>")
    obj.title = "changed"
    assert str(obj).startswith(f"<Song _id={pk} (unsaved changes) artist='a' title='changed'")
    assert "(unsaved changes)" not in repr(obj)


def test_many_fields_are_shown_up_to_a_limit() -> None:
    wide = type("Wide", (IndexedRedisModel,), {"KEY_NAME": "test_friendly:Wide", "__module__": __name__,
                                               "FIELDS": [f"f{i}" for i in range(40)]})
    text = repr(wide(f0="zero", f39="last"))
    assert text.startswith("<Wide _id=None f0='zero' f1='' ") and "f11=''" in text
    assert "f12" not in text and "last" not in text
    assert text.endswith(" ...(+28 fields)>")
