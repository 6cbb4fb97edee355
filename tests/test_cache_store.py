"""The client-side cache's store on its own (no server): what a store is refused for,
what an invalidation drops, the budget."""

from __future__ import annotations

from typing import Any

import pytest

from IndexedRedis import IndexedRedisModel
from IndexedRedis.cache import store
from IndexedRedis.cache.store import ModelCache


@pytest.fixture(autouse=True)
def ir_default_connection() -> None:
    """Overrides conftest's: these tests start no server."""


class StoreSong(IndexedRedisModel):
    FIELDS = ["artist", "title"]
    INDEXED_FIELDS = ["artist"]
    KEY_NAME = "StoreSongs"


def song(pk: int, title: str = "t") -> Any:
    obj = StoreSong(artist="a", title=title)
    obj.__dict__["_id"] = pk
    return obj


def cache(budget: int = 1 << 20) -> ModelCache:
    return ModelCache("StoreSong", StoreSong._meta.keys, budget)


def test_a_store_is_refused_for_an_object_invalidated_since_its_read_began() -> None:
    c = cache()
    token = c.token()
    c.invalidate(b"g3:t:1")  # pk 1 changed while the read was out
    c.store_objects(token, 3, [(1, song(1)), (2, song(2))])
    assert c.get_objects(3, [1, 2])[0] is None and c.get_objects(3, [2])[0] is not None
    assert c.snapshot().refused == 1


def test_an_invalidation_drops_the_object_and_the_queries_holding_it() -> None:
    c = cache()
    one, two = song(1), song(2)
    c.store_query(c.token(), 3, "q-artist", [one, two], [b"g3:i:artist:a"])
    c.store_query(c.token(), 3, "q-other", [two], [b"g3:i:artist:b"])
    c.invalidate(b"g3:t:1")
    assert c.get_query(3, "q-artist") is None and c.get_query(3, "q-other") == (two,)
    assert c.get_objects(3, [1, 2]) == [None, two]
    c.invalidate(b"g3:i:artist:b")  # an index key the query read
    assert c.get_query(3, "q-other") is None
    c.invalidate(b"g3:objs")  # the records hash says nothing: the stamps name the pks
    assert c.get_objects(3, [2]) == [two]
    c.invalidate(b"gen")  # a reset
    assert c.get_objects(3, [2]) == [None] and c.snapshot().flushes == 1


def test_a_token_from_another_cache_or_before_a_flush_is_refused() -> None:
    c, other = cache(), cache()
    c.store_objects(other.token(), 3, [(1, song(1))])
    token = c.token()
    c.flush()
    c.store_objects(token, 3, [(2, song(2))])
    assert c.get_objects(3, [1, 2]) == [None, None] and c.snapshot().refused == 2


def test_forgetting_old_invalidations_refuses_the_reads_that_began_before(monkeypatch: Any) -> None:
    monkeypatch.setattr(store, "_RECENT_LIMIT", 3)
    c = cache()
    token = c.token()
    for pk in range(10, 14):
        c.invalidate(b"g3:t:%d" % pk)
    c.store_objects(token, 3, [(1, song(1))])  # pk 1 was not invalidated, but the memory of it is gone
    assert c.get_objects(3, [1]) == [None]
    c.store_objects(c.token(), 3, [(1, song(1))])
    assert c.get_objects(3, [1])[0] is not None


def test_an_older_generation_is_refused_and_a_newer_one_replaces_the_entries() -> None:
    c = cache()
    c.store_objects(c.token(), 5, [(1, song(1))])
    c.store_objects(c.token(), 4, [(2, song(2))])
    assert c.get_objects(5, [1, 2])[1] is None
    c.store_objects(c.token(), 6, [(3, song(3))])  # a reset the tracker has not reported yet: flush, store nothing
    assert c.get_objects(6, [3]) == [None] and c.gen == 6


def test_the_least_recently_used_entries_go_first_and_the_bytes_stay_within_the_budget() -> None:
    size = store.object_size(song(1)) + store._ENTRY_OVERHEAD
    c = cache(budget=size * 3)
    for pk in (1, 2, 3):
        c.store_objects(c.token(), 3, [(pk, song(pk))])
    c.get_objects(3, [1])  # 1 is used again: 2 is now the oldest
    c.store_objects(c.token(), 3, [(4, song(4))])
    assert [obj is not None for obj in c.get_objects(3, [1, 2, 3, 4])] == [True, False, True, True]
    stats = c.snapshot()
    assert stats.bytes <= stats.budget and stats.evictions == 1 and stats.entries == 3
