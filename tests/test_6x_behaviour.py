"""IndexedRedis 6.x behaviours kept in the default mode (no switch), each found by
running 6.0.3's own unit tests against this package (tests/compat6/run.py): save()
results that concatenate, stored forms in bytes, ``_origData``, ``_get_key_for_index``,
``IRDatetimeValue``, irNull's length, the link objects behind link fields, and
``reload(cascadeObjects=True)``.  All against the fixture's private Redis.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import zlib
from typing import Any

import pytest
import redis
from monitor import CommandLog

from IndexedRedis import (
    IndexedRedisModel,
    InvalidQueryError,
    IRBase64Field,
    IRCompressedField,
    IRField,
    IRFieldChain,
    IRUnicodeField,
    LinkNotFetchedError,
    irNull,
)
from IndexedRedis.fields import IRDatetimeValue
from IndexedRedis.foreign import ForeignLink, ForeignLinks, IRForeignLinkField, IRForeignMultiLinkField

oga = object.__getattribute__


class Item(IndexedRedisModel):
    FIELDS = ["name", IRField("value", hashIndex=True), IRBase64Field("b64"),
              IRFieldChain("chain", [IRUnicodeField(), IRBase64Field()]), IRCompressedField("packed"),
              IRField("count", valueType=int)]
    INDEXED_FIELDS = ["name", "value"]
    KEY_NAME = "test_6x_behaviour:Item"


class Leaf(IndexedRedisModel):
    FIELDS = ["name", IRField("n", valueType=int)]
    INDEXED_FIELDS = ["name"]
    KEY_NAME = "test_6x_behaviour:Leaf"


class Mid(IndexedRedisModel):
    FIELDS = ["name", IRForeignLinkField("leaf", Leaf), IRForeignMultiLinkField("leaves", Leaf)]
    INDEXED_FIELDS = ["name"]
    KEY_NAME = "test_6x_behaviour:Mid"


class Top(IndexedRedisModel):
    FIELDS = ["name", IRForeignLinkField("mid", Mid)]
    INDEXED_FIELDS = ["name"]
    KEY_NAME = "test_6x_behaviour:Top"


# ---- save() results ---------------------------------------------------------------


def test_save_results_concatenate_like_6x_lists() -> None:
    a, b = Item(name="a"), Item(name="b")
    ids = a.save() + b.save()
    assert ids == [a._id, b._id] and type(ids) is list
    pk = Item(name="c").save()
    assert pk[0] == pk and len(pk) == 1 and list(pk) == [pk] and pk in pk and pk + 1 not in pk
    assert ids + pk == [a._id, b._id, pk] and pk + ids == [pk, a._id, b._id]
    for total in (pk + 1, 1 + pk, sum([pk, pk]), pk - 1):
        assert type(total) is int
    assert pk + 1 == int(pk) + 1 and sum([pk, pk]) == 2 * int(pk)


# ---- stored forms and _origData ------------------------------------------------------


def test_stored_forms_of_binary_fields_are_bytes() -> None:
    obj = Item(name="x", b64=b"Hello World", chain="✏ hé", packed="text")
    for candidate in (obj, Item.objects.get(obj.save())):
        stored = candidate.asDict(forStorage=True)
        assert stored["b64"] == b"SGVsbG8gV29ybGQ="
        assert stored["chain"] == base64.b64encode("✏ hé".encode())
        assert stored["packed"] == zlib.compress(b"text", 9)
        assert stored["name"] == "x"  # text stays text


def test_orig_data_holds_the_values_last_saved_or_fetched() -> None:
    obj = Item(name="x", count=1)
    assert obj._origData == {}
    obj.save()
    obj.count = 2
    assert obj._origData["count"] == 1
    obj.save()
    assert obj._origData["count"] == 2
    fetched = Item.objects.get(obj._id)
    assert fetched._origData["count"] == 2 and fetched._origData["name"] == "x"
    fetched._origData["count"] = 99  # a fresh dict each time: changing it changes nothing
    assert fetched._origData["count"] == 2 and not fetched.hasUnsavedChanges()


# ---- _get_key_for_index ---------------------------------------------------------------


def test_get_key_for_index_names_the_index_set(redis_client: redis.Redis) -> None:
    obj = Item(name="Tim", value="purple")
    obj.save()
    key = Item.objects._get_key_for_index(Item.FIELDS["value"], "purple")
    assert isinstance(key, str) and len(key[key.rfind(":") + 1:]) == 32  # the md5 of a hashed index
    assert redis_client.smembers(key) == {str(obj._id).encode()}
    plain = Item.objects._get_key_for_index("name", "Tim")
    assert plain.endswith(":Tim") and redis_client.smembers(plain) == {str(obj._id).encode()}
    assert redis_client.smembers(Item.objects._get_key_for_index("name", irNull)) == set()
    Item.reset([obj])  # a new generation: the key follows it
    moved = Item.objects._get_key_for_index("value", "purple")
    assert moved != key and redis_client.smembers(moved) == {str(obj._id).encode()}
    assert asyncio.run(Item.objects._aget_key_for_index("value", "purple")) == moved
    with pytest.raises(InvalidQueryError, match="no index on 'count'"):
        Item.objects._get_key_for_index("count", 1)


# ---- IRDatetimeValue and irNull -------------------------------------------------------------


def test_irdatetimevalue_builds_datetimes_as_6x_did() -> None:
    noon = dt.datetime(2015, 5, 12, 12, 0, 0)
    assert IRDatetimeValue("2015-05-12 12:00:00") == noon
    assert IRDatetimeValue("2015-05-12 12:00:00.203511") == noon  # 6.x dropped microseconds
    assert IRDatetimeValue(noon.replace(microsecond=5)) == noon
    assert IRDatetimeValue(2015, 5, 12, 12, 0, 0, 99) == noon
    assert IRDatetimeValue(noon.timestamp()) == noon
    assert type(IRDatetimeValue("2015-05-12 12:00:00")) is dt.datetime
    field = IRField("when", valueType=IRDatetimeValue)  # as a valueType: datetimes, microseconds kept
    precise = dt.datetime(2015, 5, 12, 12, 0, 0, 203511)
    assert field.fromStorage(field.toStorage(field.fromInput(precise))) == precise


def test_irnull_is_an_empty_value() -> None:
    assert len(irNull) == 0 and list(irNull) == [] and "x" not in irNull and not irNull
    assert len(Mid(name="no leaves").leaves) == 0  # an unset multi-link, as 6.x code reads it


# ---- the link objects behind link fields --------------------------------------------------


def test_the_instance_keeps_the_link_object() -> None:
    leaf = Leaf(name="l", n=1)
    mid = Mid(name="m", leaf=leaf, leaves=[leaf])
    mid.save()
    fetched = Mid.objects.get(mid._id)
    link, links = oga(fetched, "leaf"), oga(fetched, "leaves")
    assert isinstance(link, ForeignLink) and isinstance(links, ForeignLinks)
    assert link.isFetched() is False and links.isFetched() is False and links.obj == [None]
    assert link.getPk() == leaf._id and links.getPks() == [leaf._id] and links.pk == [leaf._id]
    with pytest.raises(LinkNotFetchedError, match="fetchLink"):
        link.getObj()
    assert fetched.leaf.n == 1  # reading the attribute fetches
    assert link.isFetched() is True and link.getObj() is link.obj is fetched.leaf
    assert fetched.leaves[0].n == 1 and links.isFetched() and links.getObj() == links.obj == [fetched.leaves[0]]
    assert oga(Mid(name="unset"), "leaf") is irNull
    assert Mid.leaf is Mid.FIELDS["leaf"]


def test_models_without_links_keep_the_plain_attribute_lookup() -> None:
    """Only models with link fields pay for a __getattribute__ of their own."""
    assert Leaf.__getattribute__ is object.__getattribute__
    assert Mid.__getattribute__ is not object.__getattribute__


# ---- reload(cascadeObjects=True) -----------------------------------------------------------------


def _tree() -> tuple[Top, Mid, Leaf]:
    leaf = Leaf(name="leaf", n=1)
    mid = Mid(name="mid", leaf=leaf, leaves=[leaf])
    top = Top(name="top", mid=mid)
    top.save()
    return top, mid, leaf


def _store_n(leaf: Leaf, n: int) -> None:
    other = Leaf.objects.get(leaf._id)
    other.n = n
    other.save()


def test_cascade_reload_reloads_held_objects_changed_in_redis() -> None:
    top, mid, leaf = _tree()
    _store_n(leaf, 5)
    assert top.reload(cascadeObjects=False) == {} and leaf.n == 1
    changes = top.reload(cascadeObjects=True)
    assert list(changes) == ["mid"]
    assert leaf.n == 5 and top.mid is mid and mid.leaf is leaf  # reloaded in place
    old, new = changes["mid"]
    assert new is oga(top, "mid") and old.getObj() is not mid and old.getObj().name == "mid"
    assert top.reload(cascadeObjects=True) == {}


def test_cascade_reload_sees_local_changes_at_any_depth() -> None:
    top, mid, leaf = _tree()
    fetched = Top.objects.get(top._id)
    fetched.mid.leaf.n = 33  # two levels down, fetched on access
    assert fetched.reload(cascadeObjects=False) == {}
    changes = fetched.reload(cascadeObjects=True)
    assert list(changes) == ["mid"] and fetched.mid.leaf.n == 1


def test_cascade_reload_reports_old_and_new_linked_values() -> None:
    mid = Mid(name="m", leaf=Leaf(name="l", n=5), leaves=[Leaf(name="l2", n=5)])
    mid.save()
    mid.leaf.n = 99
    mid.leaves[0].n = 98
    changes = mid.reload(cascadeObjects=True)
    assert set(changes) == {"leaf", "leaves"}
    assert changes["leaf"][0].getObj().n == 99 and changes["leaf"][1].getObj().n == 5
    assert changes["leaves"][0].getObj()[0].n == 98 and changes["leaves"][1].getObj()[0].n == 5


def test_cascade_reload_fetches_nothing_not_held(log: CommandLog) -> None:
    top, _, _ = _tree()
    fetched = Top.objects.get(top._id)
    commands = log.commands(lambda: fetched.reload(cascadeObjects=True))
    assert commands == ["MULTI", "GET", "HMGET", "EXEC"]  # the object's own record only
    assert oga(fetched, "mid").isFetched() is False


def test_cascade_reload_reads_one_level_per_round_trip(log: CommandLog) -> None:
    top, _, _ = _tree()
    fetched = Top.objects.get(top._id, cascadeFetch=True)
    words = log.words(lambda: fetched.reload(cascadeObjects=True))
    scripts = [w for w in words if w[0].upper() in ("EVALSHA", "EVAL", "EVALSHA_RO", "EVAL_RO")]
    assert len(scripts) == 2  # the Mid, then the Leaf (linked twice, read once)


def test_cascade_reload_lets_a_deleted_object_go() -> None:
    top, mid, leaf = _tree()
    Leaf.deleter.deleteByPk(leaf._id)
    changes = top.reload(cascadeObjects=True)
    assert list(changes) == ["mid"]
    assert oga(mid, "leaf").isFetched() is False
    assert mid.leaf is irNull and mid.leaves == []


def test_cascade_reload_leaves_unsaved_linked_objects_alone() -> None:
    mid = Mid(name="m", leaf=Leaf(name="saved", n=1))
    mid.save()
    unsaved = Leaf(name="new", n=2)
    mid.leaves = [unsaved]  # stores no link until it is saved: nothing to reload
    assert mid.reload(cascadeObjects=True) == {}
    assert mid.leaves == [unsaved] and unsaved._id is None and unsaved.n == 2


def test_areload_cascades_too() -> None:
    top, mid, leaf = _tree()
    _store_n(leaf, 7)

    async def main() -> Any:
        return await top.areload(cascadeObjects=True)

    assert list(asyncio.run(main())) == ["mid"] and leaf.n == 7
