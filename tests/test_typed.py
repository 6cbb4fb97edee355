"""Typed models at run time: ``name: type = Field(...)`` declares the same fields, indexes
and unique constraints the FIELDS style would, stores the same records, keeps the
annotations' promises (required fields, no None where the annotation has no None), and
refuses a mixed or wrong declaration with an error naming the model and the field."""

from __future__ import annotations

import asyncio
import datetime as dt
import warnings
from typing import Any, ClassVar, Optional

import pytest
import redis
from consistency import assert_indexes_consistent, db_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from IndexedRedis import (
    Field,
    FieldValueError,
    IndexedRedisModel,
    InvalidModelException,
    IRClassicField,
    IRCompressedField,
    IRField,
    IRFixedPointField,
    IRForeignLinkField,
    IRForeignMultiLinkField,
    IRNullType,
    IRRawField,
    SharedKeysWarning,
    UniqueConstraintError,
    UnknownFieldError,
    irNull,
    setCompatibility,
)

WHEN = dt.datetime(2021, 5, 6, 7, 8, 9, 123456)
pytestmark = pytest.mark.filterwarnings("ignore::IndexedRedis.SharedKeysWarning")


class TSong(IndexedRedisModel):
    KEY_NAME = "test_typed:Song"
    artist: str = Field(index=True)
    title: str = Field(default="")
    track: int = Field(index=True, default=0)
    price: float | None = Field()
    rating: Optional[float] = Field(default=None)  # noqa: UP045 - the Optional spelling is supported too
    live: bool = Field(default=False)
    tags: bytes = Field(default=b"")
    cover: bytes = Field(IRCompressedField(compressMode="bz2"), default=b"")
    fee: float = Field(IRFixedPointField(decimalPlaces=2), index=True, default=0.0)
    when: dt.datetime = Field(index=True, default=WHEN)
    extra: dict[str, Any] | None = Field(default=None)
    code: str | None = Field(unique=True, default=None)


with warnings.catch_warnings():
    warnings.simplefilter("ignore", SharedKeysWarning)

    class FSong(IndexedRedisModel):
        """TSong in the FIELDS style: the same KEY_NAME, so it reads TSong's records (on
        purpose: SharedKeysWarning is silenced for it)."""

        KEY_NAME = "test_typed:Song"
        FIELDS = [IRClassicField("artist"), IRClassicField("title"), IRField("track", valueType=int, defaultValue=0),
                  IRField("price", valueType=float), IRField("rating", valueType=float),
                  IRField("live", valueType=bool, defaultValue=False),
                  IRField("tags", valueType=bytes, defaultValue=b""),
                  IRCompressedField("cover", compressMode="bz2", defaultValue=b""),
                  IRFixedPointField("fee", decimalPlaces=2, defaultValue=0.0),
                  IRField("when", valueType=dt.datetime, defaultValue=WHEN), IRField("extra", valueType=dict),
                  IRField("code", valueType=str)]
        INDEXED_FIELDS = ["artist", "track", "fee", "when", "code"]
        UNIQUE_FIELDS = ["code"]


def song(**values: Any) -> TSong:
    return TSong(**{"artist": "Pink Floyd", "price": 1.5, **values})


# ---- the declaration ------------------------------------------------------------------------


def test_annotations_map_to_the_fields_the_fields_style_names() -> None:
    assert TSong.FIELDS == FSong.FIELDS  # the names, in declaration order
    typed = {f.name: f for f in TSong._meta.fields}
    plain = {f.name: f for f in FSong._meta.fields}
    for name, field in typed.items():
        assert type(field) is type(plain[name]), name
        assert repr(field) == repr(plain[name]), name
    assert TSong._meta.indexed_names == ("artist", "track", "fee", "when", "code")
    assert TSong._meta.unique_names == ("code",)
    assert TSong.INDEXED_FIELDS == list(TSong._meta.indexed_names)
    assert TSong._meta.schema_blob == FSong._meta.schema_blob
    assert TSong._meta.specs["track"].numeric and TSong._meta.specs["when"].numeric
    # The Field() objects are gone from the class: instances hold the values.
    assert "artist" not in vars(TSong)
    with pytest.raises(AttributeError):
        TSong.artist  # noqa: B018


def test_typed_and_fields_style_models_store_the_same_records(redis_client: redis.Redis) -> None:
    obj = song(title="Time", track=3, tags=b"\x00\xff", cover=b"x" * 500, fee=2.345, extra={"a": [1]}, code="T1")
    pk = obj.save()
    other = FSong.objects.get(pk)
    assert other is not None
    assert other.asDict() == obj.asDict()
    plain = FSong(**{**obj.asDict(), "code": "T2"})
    plain_pk = plain.save()
    back = TSong.objects.get(plain_pk)
    assert back is not None and back.asDict() == {**obj.asDict(), "code": "T2"}
    assert type(back.when) is dt.datetime and back.when == WHEN
    assert back.fee == 2.35 and back.tags == b"\x00\xff" and back.extra == {"a": [1]}
    assert_indexes_consistent(redis_client, TSong)


def test_typed_queries_use_the_indexes(redis_client: redis.Redis) -> None:
    a = song(track=1).save()
    b = song(artist="Queen", track=2, when=WHEN + dt.timedelta(days=1)).save()
    c = song(artist="Queen", track=3, price=None).save()
    assert TSong.objects.filter(artist="Queen").getPrimaryKeys() == [b, c]
    assert TSong.objects.filter(track__gte=2).orderBy("-track").getPrimaryKeys() == [c, b]
    assert TSong.objects.filter(when__gt=WHEN).getPrimaryKeys() == [b]
    found = TSong.objects.filter(track=1).first()
    assert found is not None and found._id == a and type(found) is TSong
    nothing = TSong.objects.get(c)
    assert nothing is not None and nothing.price is irNull  # a null reads back as irNull


def test_unique_is_checked_on_save(redis_client: redis.Redis) -> None:
    song(code="U").save()
    before = db_snapshot(redis_client)
    with pytest.raises(UniqueConstraintError):
        song(code="U").save()
    assert db_snapshot(redis_client) == before
    song().save()
    song().save()  # None never clashes


def test_async_reads_of_a_typed_model() -> None:
    async def main() -> None:
        pk = await song(title="async").asave()
        found = await TSong.objects.filter(artist="Pink Floyd").aall()
        assert [obj._id for obj in found] == [pk]
        one = await TSong.objects.aget(pk)
        assert one is not None and one.title == "async"

    asyncio.run(main())


# ---- the annotations' promises --------------------------------------------------------------


def test_fields_without_default_are_required() -> None:
    with pytest.raises(FieldValueError) as info:
        TSong(price=1.0)
    message = str(info.value)
    assert "TSong()" in message and "artist (str)" in message and "default" in message
    with pytest.raises(FieldValueError, match=r"price \(float \| None\)"):
        TSong(artist="x")
    obj = TSong(artist="x", price=None)  # required, and may be None
    assert obj.price is irNull and obj.track == 0 and obj.title == "" and obj.rating is irNull
    assert obj.when == WHEN and obj.tags == b"" and obj.live is False


def test_none_is_refused_where_the_annotation_has_no_none() -> None:
    obj = song(track=5)
    for name in ("artist", "track", "when", "tags", "fee"):
        before = getattr(obj, name)
        for value in (None, irNull):
            with pytest.raises(FieldValueError) as info:
                setattr(obj, name, value)
            assert f"TSong.{name}" in str(info.value) and "| None" in str(info.value)
            assert getattr(obj, name) == before
    with pytest.raises(FieldValueError, match="TSong.track"):
        song(track=None)
    assert song(track=irNull).track is irNull  # irNull given on purpose (as fetches of old records do)
    obj.price = None
    obj.rating = None
    obj.extra = None
    assert obj.price is irNull and obj.rating is irNull and obj.extra is irNull


def test_a_custom_init_gets_old_records_without_a_new_field(redis_client: redis.Redis) -> None:
    class Before(IndexedRedisModel):
        KEY_NAME = "test_typed:Evolving"
        name: str = Field()

    pk = Before(name="old").save()

    class After(IndexedRedisModel):  # a field added since, and an __init__ of its own
        KEY_NAME = "test_typed:Evolving"
        name: str = Field()
        size: int = Field()

        def __init__(self, **values: Any) -> None:
            super().__init__(**values)

    found = After.objects.get(pk)
    assert found is not None and found.name == "old" and found.size is irNull
    with pytest.raises(FieldValueError, match="After.size"):
        found.size = None
    found.size = 3
    found.save()
    assert After.objects.filter().first().size == 3  # type: ignore[union-attr]


def test_update_keeps_the_no_none_rule(redis_client: redis.Redis) -> None:
    song(track=2).save()
    before = db_snapshot(redis_client)
    for value in (None, irNull):
        with pytest.raises(FieldValueError, match="TSong.track"):
            TSong.objects.update(track=value)
    assert db_snapshot(redis_client) == before
    assert TSong.objects.update(price=None, track=3) == 1
    found = TSong.objects.first()
    assert found is not None and found.price is irNull and found.track == 3


def test_values_are_converted_and_checked_as_the_fields_do() -> None:
    obj = song(track="7", when="2020-01-02T03:04:05")
    assert obj.track == 7 and obj.when == dt.datetime(2020, 1, 2, 3, 4, 5)
    with pytest.raises(FieldValueError, match="TSong.track"):
        obj.track = "seven"
    with pytest.raises(UnknownFieldError, match="'trak'.*Did you mean 'track'"):
        song(trak=1)


def test_bare_annotations_and_plain_defaults_are_fields_of_a_typed_model() -> None:
    class Bare(IndexedRedisModel):
        KEY_NAME = "test_typed:Bare"
        name: str
        count: int = 3
        label: ClassVar[str] = "not a field"

    assert list(Bare.FIELDS) == ["name", "count"]
    assert Bare._meta.indexed_names == ()
    obj = Bare(name="n")
    assert obj.count == 3 and Bare.label == "not a field"
    with pytest.raises(FieldValueError, match="name"):
        Bare()


def test_typed_subclasses_and_abstract_bases() -> None:
    class Stamped(IndexedRedisModel):  # no KEY_NAME: an abstract base
        created: dt.datetime = Field(index=True, default=WHEN)

    class Note(Stamped):
        KEY_NAME = "test_typed:Note"
        text: str = Field()

    class Memo(Note):
        KEY_NAME = "test_typed:Memo"
        urgent: bool = Field(index=True, default=False)

    assert Stamped._meta is None
    assert list(Note.FIELDS) == ["created", "text"] and Note._meta.indexed_names == ("created",)
    assert list(Memo.FIELDS) == ["created", "text", "urgent"]
    assert Memo._meta.indexed_names == ("created", "urgent")
    assert Memo._meta.fields[0] is not Note._meta.fields[0]  # each model its own field objects
    pk = Memo(text="hi", urgent=True).save()
    assert Memo.objects.filter(urgent=True).getPrimaryKeys() == [pk]
    assert Note.objects.count() == 0
    with pytest.raises(FieldValueError, match="text"):
        Memo()


def test_copy_model_and_connect_alt_keep_the_rules() -> None:
    Copy = TSong.copyModel()
    assert list(Copy.FIELDS) == list(TSong.FIELDS) and Copy._meta.unique_names == ("code",)
    with pytest.raises(FieldValueError, match="artist"):
        Copy(price=1.0)
    copied = Copy(artist="a", price=None)
    with pytest.raises(FieldValueError, match="track"):
        copied.track = None
    Alt = TSong.connectAlt({"db": 0})
    with pytest.raises(FieldValueError, match="artist"):
        Alt(price=1.0)
    pk = copied.save()
    found = TSong.objects.get(pk)
    assert found is not None and found.artist == "a"


def test_a_given_field_class_or_instance() -> None:
    class Given(IndexedRedisModel):
        KEY_NAME = "test_typed:Given"
        blob: bytes = Field(IRCompressedField, default=b"")
        named: str = Field(IRField("named", valueType=str, hashIndex=True), index=True, default="x")
        cost: float | None = Field(IRFixedPointField(decimalPlaces=1), default=None)

    blob, named, cost = Given._meta.fields
    assert type(blob) is IRCompressedField and blob.name == "blob" and blob.defaultValue == b""
    assert named.hashIndex and named.defaultValue == "x" and Given._meta.indexed_names == ("named",)
    assert type(cost) is IRFixedPointField and cost.decimalPlaces == 1
    obj = Given()
    assert obj.cost is irNull
    obj.cost = 2.26
    assert obj.cost == 2.3
    pk = obj.save()
    assert Given.objects.filter(named="x").getPrimaryKeys() == [pk]


# ---- wrong declarations -------------------------------------------------------------------


def _define(body: dict[str, Any], annotations: dict[str, Any], base: type = IndexedRedisModel) -> type:
    namespace = {"KEY_NAME": "test_typed:Bad", "__module__": __name__, "__annotations__": annotations, **body}
    return type("Bad", (base,), namespace)


@pytest.mark.parametrize(("body", "annotations", "expected"), [
    ({"FIELDS": ["a"], "b": Field()}, {"b": "int"}, r"Model Bad declares fields both in FIELDS and as typed"),
    ({"INDEXED_FIELDS": ["a"], "a": Field()}, {"a": "str"}, r"INDEXED_FIELDS with typed fields.*index=True"),
    ({"UNIQUE_FIELDS": ["a"], "a": Field()}, {"a": "str"}, r"UNIQUE_FIELDS with typed fields"),
    ({"a": Field()}, {}, r"Model Bad: a = Field\(\) needs an annotation"),
    ({"a": Field()}, {"a": "complex"}, r"Model Bad: field 'a': annotation 'complex': complex maps to no field"),
    ({"a": Field()}, {"a": "int | str"}, r"field 'a': its annotation 'int \| str' names more than one value type"),
    ({"a": Field()}, {"a": "NoSuchName"}, r"field 'a': cannot evaluate its annotation 'NoSuchName' \(NameError"),
    ({"a": Field(default=None)}, {"a": "int"}, r"field 'a': default None, but its annotation 'int' does not admit"),
    ({"a": Field(default="x")}, {"a": "int"}, r"field 'a': IRField\('a'\): defaultValue 'x' does not fit"),
    ({"a": Field(IRField("b"))}, {"a": "str"}, r"field 'a': the field given, .* is named 'b'"),
    ({"a": Field(IRField(), hashIndex=True)}, {"a": "str"}, r"give hashIndex to the field itself"),
    ({"a": Field(42)}, {"a": "str"}, r"Field\(42\): expected an IRField class or instance"),
    ({"a": Field(IRRawField(), index=True)}, {"a": "bytes"}, r"field 'a' \(IRRawField\) cannot be indexed"),
    ({"a": Field(index=True)}, {"a": "dict"}, r"field 'a' \(IRField of dict\) cannot be indexed"),
    ({"_a": Field()}, {"_a": "str"}, r"field name '_a' must be a Python identifier that does not start with '_'"),
])
def test_wrong_declarations_are_refused_naming_model_and_field(body: dict[str, Any], annotations: dict[str, Any],
                                                                expected: str) -> None:
    with pytest.raises(InvalidModelException, match=expected):
        _define(body, annotations)


def test_typed_fields_cannot_extend_a_fields_style_model() -> None:
    with pytest.raises(InvalidModelException, match=r"Model Bad: typed fields \(venue\) cannot extend the FIELDS-style"
                                                    r" model FSong"):
        _define({"venue": Field()}, {"venue": "str"}, base=FSong)


def test_annotations_beside_fields_or_in_plain_subclasses_are_ignored_as_before() -> None:
    class Annotated(IndexedRedisModel):
        KEY_NAME = "test_typed:Annotated"
        FIELDS = ["name"]
        name: str
        cache: dict[str, int] = {}  # noqa: RUF012 - a class attribute, as FIELDS-style models may have

    assert list(Annotated.FIELDS) == ["name"] and Annotated._typed_rules is None
    assert Annotated.cache == {} and Annotated().name == ""

    class Sub(FSong):
        helper: int = 3

    assert list(Sub.FIELDS) == list(FSong.FIELDS) and Sub.helper == 3

    class Mixin(IndexedRedisModel):  # abstract, no Field(): plain annotations stay attributes
        registry: dict[str, int] = {}  # noqa: RUF012

    assert Mixin.registry == {} and Mixin._typed_rules is None


def test_the_6x_switch_defers_a_wrong_typed_model_to_first_use() -> None:
    setCompatibility(6)
    Bad = _define({"a": Field()}, {"a": "complex"})
    with pytest.raises(InvalidModelException, match="complex maps to no field"):
        Bad.validateModel()
    with pytest.raises(InvalidModelException, match="complex maps to no field"):
        Bad.objects.count()


class TArtist(IndexedRedisModel):
    KEY_NAME = "test_typed:Artist"
    name: str = Field(index=True)


class TAlbum(IndexedRedisModel):
    KEY_NAME = "test_typed:Album"
    title: str = Field()
    artist: TArtist | None = Field(index=True, default=None)
    guests: list[TArtist] = Field(default=[])
    producer: TArtist = Field()


def test_model_annotations_are_links() -> None:
    artist, guests, producer = TAlbum._meta.fields[1:]
    assert type(artist) is IRForeignLinkField and artist.foreignModel is TArtist
    assert type(guests) is IRForeignMultiLinkField and guests.foreignModel is TArtist
    assert type(producer) is IRForeignLinkField and TAlbum._meta.indexed_names == ("artist",)
    queen, may = TArtist(name="Queen"), TArtist(name="May")
    may.save()
    album = TAlbum(title="A Night at the Opera", artist=queen, guests=[may], producer=may._id)
    pk = album.save()  # saves queen too (cascadeSave)
    assert queen._id is not None
    fetched = TAlbum.objects.filter(artist=queen).first()
    assert fetched is not None and fetched._id == pk
    assert fetched.artist.name == "Queen" and [g.name for g in fetched.guests] == ["May"]
    assert fetched.producer._id == may._id
    assert fetched.asDict(forJSON=True) == {"title": "A Night at the Opera", "artist": queen._id,
                                           "guests": [may._id], "producer": may._id}
    with pytest.raises(FieldValueError, match="TAlbum.producer"):
        fetched.producer = None
    with pytest.raises(FieldValueError, match="producer"):
        TAlbum(title="x")
    with pytest.raises(InvalidModelException, match="a link's default can only be no link"):
        _define({"a": Field(default=5)}, {"a": "TArtist | None"})


def test_annotations_may_use_names_local_to_the_defining_function() -> None:
    Count = int  # noqa: N806 - a local alias, as a type

    class Local(IndexedRedisModel):
        KEY_NAME = "test_typed:Local"
        n: Count = Field(index=True, default=1)
        m: Count | None = Field(default=None)

    assert Local._meta.fields[0].valueType is int and Local._meta.specs["n"].numeric
    assert Local().m is irNull
    Alt = Local.connectAlt({"db": 0})  # derived elsewhere: the annotations were evaluated already
    assert Alt._meta.fields[0].valueType is int and Alt().n == 1


def test_a_model_extending_a_typed_base_without_fields_of_its_own() -> None:
    class Base(IndexedRedisModel):
        name: str = Field(index=True)

    class Concrete(Base):
        KEY_NAME = "test_typed:Concrete"

    class Again(Concrete):
        KEY_NAME = "test_typed:Again"

    assert list(Concrete.FIELDS) == ["name"] and Concrete._meta.indexed_names == ("name",)
    assert Again._meta.fields[0] is not Concrete._meta.fields[0]
    pk = Again(name="n").save()
    assert Again.objects.filter(name="n").getPrimaryKeys() == [pk] and Concrete.objects.count() == 0
    with pytest.raises(FieldValueError, match="name"):
        Again()


def test_irnull_in_an_annotation_means_nullable_too() -> None:
    class WithIrNull(IndexedRedisModel):
        KEY_NAME = "test_typed:IrNull"
        n: int | IRNullType = Field(default=irNull)

    obj = WithIrNull()
    obj.n = None
    assert obj.n is irNull


# ---- the mapping, against a plain-Python reading of the README's table -------------------------

KINDS: dict[str, tuple[Any, st.SearchStrategy[Any]]] = {
    # annotation text -> (valueType, defaults it may be given)
    "str": (str, st.text(max_size=3)),
    "int": (int, st.integers(-5, 5)),
    "float": (float, st.floats(-5, 5)),
    "bool": (bool, st.booleans()),
    "bytes": (bytes, st.binary(max_size=3)),
    "dt.datetime": (dt.datetime, st.datetimes(min_value=dt.datetime(2000, 1, 1))),
    "dict[str, Any]": (dict, st.just({"k": 1})),
    "list": (list, st.just([1])),
}
SAMPLE = {"str": "s", "int": 1, "float": 1.5, "bool": True, "bytes": b"b", "dt.datetime": WHEN,
          "dict[str, Any]": {"a": 1}, "list": [1]}
INDEXABLE = {"str", "int", "float", "bool", "bytes", "dt.datetime"}
MISSING_DEFAULT = object()


@st.composite
def declarations(draw: st.DrawFn) -> list[tuple[str, str, bool, bool, Any]]:
    """(name, annotation text, nullable, indexed, default or MISSING_DEFAULT) per field."""
    found = []
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(sorted(KINDS)))
        nullable = draw(st.booleans())
        options = [MISSING_DEFAULT, *([None] if nullable else [])]
        default = draw(st.sampled_from(options) | KINDS[kind][1])
        found.append((f"f{i}", kind, nullable, kind in INDEXABLE and draw(st.booleans()), default))
    return found


def expected_field(name: str, kind: str, nullable: bool, default: Any) -> IRField:
    value_type = KINDS[kind][0]
    given = irNull if default is MISSING_DEFAULT or default is None else default
    if value_type is str and not nullable and given in (irNull, ""):
        return IRClassicField(name)
    return IRField(name, valueType=value_type, defaultValue=given)


@settings(max_examples=80, deadline=None)
@given(fields=declarations())
def test_typed_declarations_give_the_fields_the_table_names(fields: list[tuple[str, str, bool, bool, Any]]) -> None:
    annotations = {name: f"{kind} | None" if nullable else kind for name, kind, nullable, _, _ in fields}
    body = {name: Field(index=indexed) if default is MISSING_DEFAULT else Field(index=indexed, default=default)
            for name, _, _, indexed, default in fields}
    model = _define(body, annotations)
    expected = [expected_field(name, kind, nullable, default) for name, kind, nullable, _, default in fields]
    assert [repr(f) for f in model._meta.fields] == [repr(f) for f in expected]
    assert [type(f) for f in model._meta.fields] == [type(f) for f in expected]
    assert model._meta.indexed_names == tuple(name for name, _, _, indexed, _ in fields if indexed)
    rules = model._typed_rules
    assert rules.required == tuple(name for name, *_, default in fields if default is MISSING_DEFAULT)
    assert rules.not_null == {name for name, _, nullable, _, _ in fields if not nullable}
    values = {name: None for name, _, nullable, _, _ in fields if nullable}
    values.update({name: SAMPLE[kind] for name, kind, nullable, _, default in fields
                   if not nullable and default is MISSING_DEFAULT})
    obj = model(**values)
    for name, _, nullable, _, default in fields:
        if nullable and default is MISSING_DEFAULT:
            assert getattr(obj, name) is irNull
