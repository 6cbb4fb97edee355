"""One test per bug of IndexedRedis 6.0.3 that this successor must not repeat.

Each test names the 6.0.3 bug it guards against; all run against the fixture's
private Redis.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from IndexedRedis import IndexedRedisModel, IRClassicField, IRField, irNull
from IndexedRedis.foreign import IRForeignLinkField, IRForeignMultiLinkField
from IndexedRedis.keys import escape_key_name
from IndexedRedis.model import toggleDeprecatedMessages

try:
    from IndexedRedis.fields import IRBase64Field
except ImportError:  # pragma: no cover - fields.py is being finished concurrently
    IRBase64Field = None  # type: ignore[assignment,misc]

EXTERNAL_DB = 7
BOOKKEEPING = {b"gen", b"genseq", b"nextpk", b"schemas", b"staging", b"dead", b"lastreset"}


def prefix_of(key_name: str) -> bytes:
    return b"ir:{" + escape_key_name(key_name).encode("ascii") + b"}:"


def gen_prefix(client: redis.Redis, key_name: str) -> bytes:
    return prefix_of(key_name) + b"g%d:" % int(client.get(prefix_of(key_name) + b"gen") or 0)


def index_keys(client: redis.Redis, key_name: str) -> dict[bytes, set[int]]:
    """Every index set (value or null) of a model's live generation -> its pks."""
    gp = gen_prefix(client, key_name)
    return {key[len(gp):]: {int(pk) for pk in client.smembers(key)}
            for key in client.scan_iter(count=1000)
            if key.startswith(gp + b"i:") or key.startswith(gp + b"n:")}


def md5(value: bytes) -> bytes:
    return hashlib.md5(value).hexdigest().encode("ascii")


@pytest.fixture
def external(redis_server: Any) -> Iterator[redis.Redis]:
    client = redis_server.client(db=EXTERNAL_DB)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


# ---- models ---------------------------------------------------------------------------------


class RegAuthor(IndexedRedisModel):
    FIELDS = ["name"]
    INDEXED_FIELDS = ["name"]
    KEY_NAME = "RegAuthor"


class RegBook(IndexedRedisModel):
    FIELDS = ["title", IRForeignLinkField("author", foreignModel=RegAuthor),
              IRForeignMultiLinkField("others", foreignModel=RegAuthor)]
    INDEXED_FIELDS = ["title", "author", "others"]
    KEY_NAME = "RegBook"


# ---- copyModel ------------------------------------------------------------------------------


def test_6x_bug_copyModel_fails_on_a_model_with_foreign_links(redis_client: redis.Redis) -> None:
    """6.0.3: IRForeignLinkField.copy() passed valueType= to a constructor without it,
    so copyModel() raised TypeError for any model with a foreign link field."""
    ann = RegAuthor(name="Ann")
    pk = RegBook(title="t", author=ann, others=[ann]).save()
    Copy = RegBook.copyModel()
    assert Copy.KEY_NAME == RegBook.KEY_NAME
    for name in ("author", "others"):
        mine, theirs = Copy._meta.fields_by_name[name], RegBook._meta.fields_by_name[name]
        assert mine is not theirs and type(mine) is type(theirs)
        assert mine.foreignModel is RegAuthor
    got = Copy.objects.get(pk)
    assert got is not None and got.author.name == "Ann" and [o.name for o in got.others] == ["Ann"]
    bob = RegAuthor(name="Bob")
    got.author = bob
    got.save()  # cascades through the copy too
    assert RegBook.objects.filter(author=bob).getPrimaryKeys() == [pk]
    assert Copy.objects.filter(author=ann).count() == 0


# ---- index entries on update ---------------------------------------------------------------------


@pytest.mark.skipif(IRBase64Field is None, reason="IRBase64Field is not available yet")
def test_6x_bug_updating_an_indexed_base64_field_writes_a_wrong_index_entry(
        redis_client: redis.Redis) -> None:
    """6.0.3: an update of an indexed IRBase64Field removed / added the wrong index entry,
    so the object was not found by its new value (and still by its old one)."""

    class RegBlob(IndexedRedisModel):
        FIELDS = ["name", IRBase64Field("data")]
        INDEXED_FIELDS = ["name", "data"]
        KEY_NAME = "RegBlob"

    first, second, third = b"\x00\xff first", b"second \xfe", b"third"
    obj = RegBlob(name="n", data=first)
    pk = obj.save()
    other = RegBlob(name="o", data=first)
    other.save()
    assert index_keys(redis_client, "RegBlob")[b"i:data:" + md5(first)] == {pk, other._id}
    obj.data = second
    obj.save()
    assert RegBlob.objects.filter(data=second).getPrimaryKeys() == [pk]
    assert RegBlob.objects.filter(data=first).getPrimaryKeys() == [other._id]
    stale = RegBlob.objects.get(pk)
    assert stale is not None and stale.data == second
    stale.data = third
    stale.save()
    obj.name = "renamed"  # obj still believes `second` is stored: a partial save of name only
    obj.save()
    fresh = RegBlob.objects.get(pk)
    assert fresh is not None and (fresh.name, fresh.data) == ("renamed", third)
    assert index_keys(redis_client, "RegBlob") == {
        b"i:name:renamed": {pk},
        b"i:name:o": {other._id},
        b"i:data:" + md5(first): {other._id},
        b"i:data:" + md5(third): {pk},
    }
    assert RegBlob.objects.filter(data=second).count() == 0


def test_6x_bug_updating_an_indexed_foreign_link_writes_a_wrong_index_entry(
        redis_client: redis.Redis) -> None:
    """6.0.3: an update of an indexed link field left the object under its old linked pk."""
    ann, bob = RegAuthor(name="Ann"), RegAuthor(name="Bob")
    RegAuthor.saver.save([ann, bob])
    book = RegBook(title="t", author=ann, others=[ann])
    pk = book.save()
    book.author = bob
    book.others = [bob, ann]
    book.save()
    assert RegBook.objects.filter(author=bob).getPrimaryKeys() == [pk]
    assert RegBook.objects.filter(author=ann).count() == 0
    assert RegBook.objects.filter(others=[bob, ann]).getPrimaryKeys() == [pk]
    stale = RegBook.objects.get(pk)
    assert stale is not None
    stale.author = ann._id
    stale.save()
    stale.author = irNull
    stale.save()
    assert index_keys(redis_client, "RegBook") == {
        b"i:title:t": {pk},
        b"n:author": {pk},
        b"i:others:" + f"{bob._id},{ann._id}".encode(): {pk},
    }


# ---- compat_convertHashedIndexes -------------------------------------------------------------------


class RegPlain(IndexedRedisModel):
    FIELDS = [IRField("a"), IRField("b"), IRClassicField("c"), "d"]
    INDEXED_FIELDS = ["a", "b", "c", "d"]
    KEY_NAME = "RegHashConvert"


class RegHashed(IndexedRedisModel):
    FIELDS = [IRField("a", hashIndex=True), IRField("b", hashIndex=True),
              IRClassicField("c", hashIndex=True), IRClassicField("d")]
    INDEXED_FIELDS = ["a", "b", "c", "d"]
    KEY_NAME = "RegHashConvert"


def test_6x_bug_compat_convertHashedIndexes_indexes_every_field_with_the_last_fields_value(
        redis_client: redis.Redis) -> None:
    """6.0.3: the conversion loop used a leaked loop variable, indexing every field
    under the value of the last indexed field."""
    pks = [RegPlain(a=f"a{i}", b=f"b{i}", c=f"c{i}", d=f"d{i}").save() for i in range(3)]
    RegHashed.objects.compat_convertHashedIndexes()
    expected: dict[bytes, set[int]] = {}
    for i, pk in enumerate(pks):
        for name in ("a", "b", "c"):
            expected[f"i:{name}:".encode() + md5(f"{name}{i}".encode())] = {pk}
        expected[f"i:d:d{i}".encode()] = {pk}
    assert index_keys(redis_client, "RegHashConvert") == expected  # no unhashed a/b/c key left
    for i, pk in enumerate(pks):
        for name in ("a", "b", "c", "d"):
            assert RegHashed.objects.filter(**{name: f"{name}{i}"}).getPrimaryKeys() == [pk]
    RegPlain.objects.compat_convertHashedIndexes()
    assert index_keys(redis_client, "RegHashConvert") == {
        f"i:{name}:{name}{i}".encode(): {pk}
        for i, pk in enumerate(pks) for name in ("a", "b", "c", "d")}


# ---- saveToExternal ----------------------------------------------------------------------------


def test_6x_bug_saveToExternal_with_a_redis_client_raises_UnboundLocalError(
        external: redis.Redis, redis_server: Any) -> None:
    """6.0.3: saveToExternal(redis.Redis(...)) tested an unassigned variable and raised
    UnboundLocalError; only a dict of params worked."""
    obj = RegAuthor(name="Ann")
    pk = obj.save()
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, db=EXTERNAL_DB)
    try:
        ext_pk = obj.saveToExternal(client)
    finally:
        client.close()
    assert isinstance(ext_pk, int)
    assert obj.getPk() == pk
    ext = RegAuthor.connectAlt({"db": EXTERNAL_DB})
    got = ext.objects.get(ext_pk)
    assert got is not None and got.name == "Ann"
    assert ext.objects.filter(name="Ann").getPrimaryKeys() == [ext_pk]
    assert RegAuthor.objects.count() == 1


# ---- getMultiple ----------------------------------------------------------------------------------


def test_6x_bug_getMultiple_returns_ghost_objects_for_missing_pks() -> None:
    """6.0.3: HGETALL of a missing key is {}, which became an object with default values
    and the asked-for pk instead of None."""
    kept, gone = RegAuthor(name="kept"), RegAuthor(name="gone")
    RegAuthor.saver.save([kept, gone])
    gone_pk = gone._id
    gone.delete()
    result = RegAuthor.objects.getMultiple([kept._id, gone_pk, 4242])
    assert result[0] is not None and result[0].name == "kept"
    assert result[1:] == [None, None]
    partial = RegAuthor.objects.getMultipleOnlyFields([gone_pk, kept._id], ["name"])
    assert partial[0] is None and partial[1] is not None
    assert RegAuthor.objects.get(gone_pk) is None
    assert RegAuthor.objects.getOnlyFields(4242, ["name"]) is None
    assert not RegAuthor.objects.exists(gone_pk)


# ---- reset / destroyModel and neighbouring models ----------------------------------------------------


def _model(key_name: str) -> type[IndexedRedisModel]:
    return type(f"RegNeighbour{abs(hash(key_name))}", (IndexedRedisModel,),
                {"FIELDS": ["name"], "INDEXED_FIELDS": ["name"], "KEY_NAME": key_name,
                 "__module__": __name__})


REG_NAMES = ["Reg", "RegX", "Reg2", "Re", "Reg*", "R*", "Re?", "R[e]g", "[R]eg", "Reg\\*"]
REG_MODELS = {name: _model(name) for name in REG_NAMES}


@pytest.mark.parametrize("how", ["destroyModel", "reset"])
@pytest.mark.parametrize("victim", ["Reg", "Reg*", "R*", "Re?", "[R]eg"])
def test_6x_bug_reset_and_destroyModel_wipe_models_whose_key_name_matches_a_prefix_glob(
        victim: str, how: str, redis_client: redis.Redis) -> None:
    """6.0.3 deleted ``KEYS <KEY_NAME>*``: a model named with this one's name as a prefix,
    or any model matched when the name holds glob characters, lost its data too."""
    for model in REG_MODELS.values():
        model.saver.save([model(name=f"{model.KEY_NAME} {i}") for i in range(2)])
    redis_client.set(b"Reg", b"a plain key")
    redis_client.set(b"Reg:1", b"a plain key")
    target = REG_MODELS[victim]
    target_prefix = prefix_of(victim)
    before = {key: redis_client.dump(key) for key in redis_client.scan_iter(count=1000)
              if not key.startswith(target_prefix)}
    if how == "destroyModel":
        assert target.deleter.destroyModel() == 2
    else:
        target.reset([target(name="fresh")])
    after = {key: redis_client.dump(key) for key in redis_client.scan_iter(count=1000)
             if not key.startswith(target_prefix)}
    assert after == before
    for name, model in REG_MODELS.items():
        if name != victim:
            assert sorted(o.name for o in model.objects.all()) == [f"{name} 0", f"{name} 1"]
    left = [o.name for o in target.objects.all()]
    assert left == ([] if how == "destroyModel" else ["fresh"])
    if how == "destroyModel":
        leftover = {key[len(target_prefix):] for key in redis_client.scan_iter(count=1000)
                    if key.startswith(target_prefix)}
        assert leftover <= BOOKKEEPING


# ---- from IndexedRedis import * --------------------------------------------------------------------


def _star_import() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec("from IndexedRedis import *", namespace)  # noqa: S102 - a fixed statement
    return namespace


def test_6x_bug_star_import_fails() -> None:
    """6.0.3 listed names in __all__ that it never defined (setIndexedRedisEncoding,
    getIndexedRedisEncoding), so ``from IndexedRedis import *`` raised AttributeError."""
    namespace = _star_import()
    for name in ("IndexedRedisModel", "IRField", "IRClassicField", "irNull", "isIndexedRedisModel",
                 "InvalidModelException", "setDefaultRedisConnectionParams",
                 "getDefaultRedisConnectionParams"):
        assert name in namespace, name
    assert issubclass(namespace["IndexedRedisModel"], object)
    assert namespace["irNull"] is irNull


#: 6.0.3's IndexedRedis.__all__, less the two names it never defined.
SIX_X_ALL = [
    "INDEXED_REDIS_PREFIX", "INDEXED_REDIS_VERSION", "INDEXED_REDIS_VERSION_STR",
    "IndexedRedisDelete", "IndexedRedisHelper", "IndexedRedisModel", "IndexedRedisQuery", "IndexedRedisSave",
    "isIndexedRedisModel", "InvalidModelException",
    "fields", "IRField", "IRFieldChain", "IRForeignLinkFieldBase", "irNull",
    "setDefaultIREncoding", "getDefaultIREncoding",
    "setDefaultRedisConnectionParams", "getDefaultRedisConnectionParams",
    "toggleDeprecatedMessages",
]
#: What a 6.x model module needs after a star import besides those.
LINK_FIELDS = ["IRForeignLinkField", "IRForeignMultiLinkField"]


def test_star_import_exports_the_6x_public_names() -> None:
    namespace = _star_import()
    # IndexedRedisHelper was 6.0.3's internal base of its query/save/delete helpers.
    missing = [name for name in SIX_X_ALL + LINK_FIELDS
               if name not in namespace and name != "IndexedRedisHelper"]
    assert missing == []
    import IndexedRedis.fields as fields_module

    assert namespace["fields"] is fields_module
    assert namespace["toggleDeprecatedMessages"] is toggleDeprecatedMessages
    assert namespace["IRForeignLinkField"] is IRForeignLinkField


def test_star_import_in_a_fresh_interpreter() -> None:
    code = ("from IndexedRedis import *\n"
            "class M(IndexedRedisModel):\n"
            "    FIELDS = ['a', IRField('n', valueType=int)]\n"
            "    INDEXED_FIELDS = ['a']\n"
            "    KEY_NAME = 'StarImport'\n"
            "print(M(a='x', n=3).asDict(), irNull is fields.irNull, IRForeignLinkField.__name__)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{'a': 'x', 'n': 3} True IRForeignLinkField"


def test_6x_field_imports_from_IndexedRedis_fields() -> None:
    """6.x code imports field classes, the link fields included, from IndexedRedis.fields."""
    namespace: dict[str, Any] = {}
    exec("from IndexedRedis.fields import *", namespace)  # noqa: S102 - a fixed statement
    wanted = ["IRField", "IRNullType", "irNull", "IRPickleField", "IRCompressedField", "IRUnicodeField",
              "IRRawField", "IRBase64Field", "IRFixedPointField", "IRBytesField", "IRClassicField",
              "IRFieldChain", "IRForeignLinkFieldBase", "IRForeignLinkField", "IRForeignMultiLinkField"]
    assert [name for name in wanted if name not in namespace] == []
    assert namespace["IRForeignLinkField"] is IRForeignLinkField
