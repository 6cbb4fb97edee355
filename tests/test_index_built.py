"""Issue #10: a query on an index the stored data has not built raises IndexNotBuiltError
(naming the model and the field, and saying to reindex), never a wrong, empty answer.

Each generation's layout hash records which indexes its data has built (see
IndexedRedis/textindex.py): a reset writes its model's; the first save into an empty
generation writes the writer's; a writer that does not keep an index takes it out.
Two model classes with one KEY_NAME stand for an old and a new version of a model.
"""

from __future__ import annotations

import asyncio
import warnings

import pytest
import redis
from consistency import assert_indexes_consistent

from IndexedRedis import IndexedRedisModel, IndexNotBuiltError, InvalidQueryError, IRField

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # two versions of one model share their keys on purpose

    class ShopV1(IndexedRedisModel):
        FIELDS = ["name", IRField("price", valueType=int), "city"]
        INDEXED_FIELDS = ["name"]
        KEY_NAME = "built:shop"

    class ShopV2(IndexedRedisModel):
        """price indexed (a number order), city indexed (sets and text dictionaries)."""

        FIELDS = ["name", IRField("price", valueType=int), "city"]
        INDEXED_FIELDS = ["name", "price", "city"]
        KEY_NAME = "built:shop"

    class ShopHashed(IndexedRedisModel):
        FIELDS = [IRField("name", hashIndex=True), IRField("price", valueType=int), "city"]
        INDEXED_FIELDS = ["name"]
        KEY_NAME = "built:shop"


def seed() -> None:
    for i in range(6):
        ShopV1(name=f"s{i}", price=i * 50, city="Oslo" if i % 2 else "Rome").save()


def test_a_field_indexed_after_the_data_was_written_refuses_until_reindex(redis_client: redis.Redis) -> None:
    seed()
    for query in (ShopV2.objects.filter(price__lt=100), ShopV2.objects.filter(city="Oslo"),
                  ShopV2.objects.filter(city__startswith="O"), ShopV2.objects.orderBy("price")):
        with pytest.raises(IndexNotBuiltError) as info:
            query.count() if query.query.conditions else query.all()
        message = str(info.value)
        assert "ShopV2." in message and "reindex" in message
        assert "indexedredis reindex test_index_built:ShopV2" in message and "ShopV2.objects.reindex()" in message
        assert isinstance(info.value, InvalidQueryError) and info.value.model == "ShopV2"
    assert ShopV2.objects.filter(name="s1").count() == 1     # what is built still answers
    ShopV2(name="new", price=5, city="Oslo").save()           # a save does not make it built
    with pytest.raises(IndexNotBuiltError, match="ShopV2.price"):
        ShopV2.objects.filter(price__lt=100).count()
    assert ShopV2.objects.reindex() == 7
    assert ShopV2.objects.filter(price__lt=100).count() == 3
    assert sorted(o.name for o in ShopV2.objects.filter(city__istartswith="o")) == ["new", "s1", "s3", "s5"]
    assert_indexes_consistent(redis_client, ShopV2)


def test_an_old_writer_takes_out_the_indexes_it_does_not_keep() -> None:
    ShopV2.reset([ShopV2(name=f"s{i}", price=i, city="Oslo") for i in range(3)])
    assert ShopV2.objects.filter(price__gte=1).count() == 2
    ShopV1(name="old", price=1, city="Rome").save()           # keeps no price or city index
    with pytest.raises(IndexNotBuiltError, match="ShopV2.price"):
        ShopV2.objects.filter(price__gte=1).count()
    with pytest.raises(IndexNotBuiltError, match="ShopV2.city"):
        ShopV2.objects.filter(city__contains="sl").count()
    assert ShopV2.objects.filter(name="old").count() == 1
    ShopV2.objects.reindex()
    assert ShopV2.objects.filter(price__gte=1).count() == 3


def test_a_changed_index_layout_refuses_too() -> None:
    seed()
    with pytest.raises(IndexNotBuiltError, match="ShopHashed.name.*hashed value sets"):
        ShopHashed.objects.filter(name="s1").count()
    ShopHashed.objects.reindex()
    assert ShopHashed.objects.filter(name="s1").count() == 1


def test_a_new_model_and_an_emptied_one_have_every_index_built() -> None:
    assert ShopV2.objects.filter(price__lt=5).count() == 0
    ShopV2(name="a", price=1, city="x").save()
    assert ShopV2.objects.filter(price__lt=5).count() == 1
    ShopV1.objects.delete()                                    # emptied: the next writer's layout holds
    ShopV1(name="b", price=1, city="y").save()
    with pytest.raises(IndexNotBuiltError):
        ShopV2.objects.filter(price__lt=5).count()
    ShopV1.objects.delete()
    ShopV2(name="c", price=1, city="z").save()
    assert ShopV2.objects.filter(price__lt=5, city__iexact="Z").count() == 1


def test_data_written_before_layouts_existed_has_every_index_but_the_dictionaries(
        redis_client: redis.Redis) -> None:
    ShopV2.reset([ShopV2(name=f"s{i}", price=i, city="Oslo") for i in range(3)])
    gk = ShopV2._meta.keys.generation(int(redis_client.get(ShopV2._meta.keys.gen)))
    for key in (gk.layout, gk.text_dict("city"), gk.text_dict("name")):
        redis_client.delete(key)                               # as an earlier version left it
    assert ShopV2.objects.filter(price__lt=2, city="Oslo").count() == 2
    with pytest.raises(IndexNotBuiltError, match="ShopV2.city.*text dictionaries"):
        ShopV2.objects.filter(city__startswith="O").count()
    with pytest.raises(IndexNotBuiltError, match="ShopV2.name"):
        ShopV2.objects.orderBy("name").first()
    ShopV2(name="later", price=9, city="Oslo").save()         # keeps no partial dictionary
    assert not redis_client.exists(gk.text_dict("city"))
    ShopV2.objects.reindex()
    assert [o.name for o in ShopV2.objects.orderBy("-name")[:2]] == ["s2", "s1"]


def test_async_queries_refuse_the_same_way() -> None:
    seed()

    async def main() -> None:
        with pytest.raises(IndexNotBuiltError, match="ShopV2.price"):
            await ShopV2.objects.filter(price__lt=100).acount()
        await ShopV2.objects.areindex()
        assert await ShopV2.objects.filter(price__lt=100).acount() == 2

    asyncio.run(main())
