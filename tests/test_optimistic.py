"""Optimistic concurrency: ``save(ifUnchanged=True)`` writes only if the stored record is
still the one the object was read from (a digest compared inside save.lua; nothing is
kept per object on the server), else ``ConflictError`` naming the model and the pk,
with nothing written.  A plain save of an object another process deleted re-creates
it; ``ifUnchanged`` refuses instead."""

from __future__ import annotations

import asyncio

import pytest
import redis
from _versions import model_versions
from consistency import assert_indexes_consistent, db_snapshot

import IndexedRedis
from IndexedRedis import ConcurrencyError, ConflictError, IndexedRedisModel, IRField, irNull


class Doc(IndexedRedisModel):
    FIELDS = ["title", IRField("version", valueType=int), "body"]
    INDEXED_FIELDS = ["title", "version"]
    KEY_NAME = "Optimistic:Doc"


def doc(**values: object) -> Doc:
    obj = Doc(title="t", version=1, body="b")
    for name, value in values.items():
        setattr(obj, name, value)
    obj.save()
    return obj


def test_a_change_by_another_writer_is_a_conflict(redis_client: redis.Redis) -> None:
    mine = doc()
    theirs = Doc.objects.get(mine._id)
    theirs.body = "theirs"
    theirs.save()
    mine.title = "mine"
    before = db_snapshot(redis_client)
    with pytest.raises(ConflictError, match=f"Doc pk {mine._id}: .*changed or deleted") as caught:
        mine.save(ifUnchanged=True)
    assert (caught.value.model, caught.value.pk) == ("Doc", mine._id)
    assert isinstance(caught.value, ConcurrencyError)
    assert db_snapshot(redis_client) == before
    assert mine.hasUnsavedChanges()  # the object keeps its change, and still believes the old record
    mine.reload()
    mine.title = "mine"
    mine.save(ifUnchanged=True)
    assert (Doc.objects.get(mine._id).title, Doc.objects.get(mine._id).body) == ("mine", "theirs")
    assert_indexes_consistent(redis_client, Doc)


def test_own_saves_keep_the_belief_current() -> None:
    obj = doc()
    for version in range(2, 6):
        obj.version = version
        obj.save(ifUnchanged=True)
    obj.save(ifUnchanged=True)  # nothing changed: only the check
    assert Doc.objects.get(obj._id).version == 5
    fetched = Doc.objects.filter(version=5).first()
    fetched.body = irNull
    fetched.save(ifUnchanged=True)
    fetched.body = "again"
    fetched.save(ifUnchanged=True)


def test_a_deleted_object_is_recreated_by_a_plain_save_and_refused_by_ifUnchanged(
        redis_client: redis.Redis) -> None:
    obj = doc()
    pk = obj._id
    Doc.objects.get(pk).delete()
    obj.body = "edited"
    before = db_snapshot(redis_client)
    with pytest.raises(ConflictError, match=f"Doc pk {pk}"):
        obj.save(ifUnchanged=True)
    assert db_snapshot(redis_client) == before and Doc.objects.get(pk) is None
    assert obj.save() == pk  # the documented default: the object is stored again, whole
    again = Doc.objects.get(pk)
    assert (again.title, again.version, again.body) == ("t", 1, "edited")
    assert_indexes_consistent(redis_client, Doc)


def test_an_object_never_read_expects_its_pk_free() -> None:
    fresh = Doc(_id=500, title="new", version=1)
    fresh.save(ifUnchanged=True)  # nothing stored under 500: inserted
    rival = Doc(_id=500, title="rival", version=1)
    with pytest.raises(ConflictError, match="Doc pk 500: another writer stored an object with this pk"):
        rival.save(ifUnchanged=True)
    assert Doc.objects.get(500).title == "new"
    Doc(title="no pk").save(ifUnchanged=True)  # a new object has nothing to compare with


def test_a_list_is_checked_object_by_object_and_writes_nothing_on_a_conflict(redis_client: redis.Redis) -> None:
    a, b, c = doc(title="a"), doc(title="b"), doc(title="c")
    stale = Doc.objects.get(b._id)
    b.version = 2
    b.save()
    for obj, title in ((a, "a2"), (stale, "b2"), (c, "c2")):
        obj.title = title
    before = db_snapshot(redis_client)
    with pytest.raises(ConflictError, match=f"pk {b._id}"):
        Doc.saver.save([a, stale, c], ifUnchanged=True)
    with pytest.raises(ConflictError, match=f"pk {b._id}"):
        Doc.saver.saveMultiple([a, stale, c], ifUnchanged=True)
    assert db_snapshot(redis_client) == before
    stale.reload()
    stale.title = "b2"
    Doc.saver.save([a, stale, c], ifUnchanged=True)
    assert [o.title for o in Doc.objects.all()] == ["a2", "b2", "c2"]


def test_async_save_if_unchanged() -> None:
    obj = doc()
    other = Doc.objects.get(obj._id)
    other.version = 9
    other.save()

    async def main() -> None:
        try:
            obj.body = "x"
            with pytest.raises(ConflictError):
                await obj.asave(ifUnchanged=True)
            await obj.areload()
            obj.body = "x"
            await obj.asave(ifUnchanged=True)
            obj.body = "y"
            await Doc.saver.asave([obj], ifUnchanged=True)
            await Doc.saver.asaveMultiple([obj], ifUnchanged=True)
        finally:
            await IndexedRedis.acloseRedisConnections()

    asyncio.run(main())
    assert Doc.objects.get(obj._id).body == "y"


def test_records_of_another_schema_are_compared_by_field_name() -> None:
    Short, Long = model_versions("Optimistic:Evolving", ["title", "version"],
                                 ["title", IRField("version", valueType=int)],
                                 ["body", "title", IRField("version", valueType=int)])
    pk = Short(title="s", version=1).save()
    obj = Long.objects.get(pk)
    obj.version = 2
    obj.save(ifUnchanged=True)  # stored in the short layout, read by the long one: the same values
    obj.body = "b"
    obj.save(ifUnchanged=True)
    old = Short.objects.get(pk)
    old.version = 3
    old.save(ifUnchanged=True)
    obj.version = 4
    with pytest.raises(ConflictError):
        obj.save(ifUnchanged=True)
