"""Models of the client-side cache tests: one data set (KEY_NAME CacheSongs) read
through a cache (CachedSong) and written by a model without one (WriterSong, which
another process uses too)."""

from __future__ import annotations

from IndexedRedis import IndexedRedisModel, IRField

_FIELDS = ["artist", "title", IRField("track", valueType=int)]


class CachedSong(IndexedRedisModel):
    FIELDS = _FIELDS
    INDEXED_FIELDS = ["artist", "track"]
    KEY_NAME = "CacheSongs"
    CLIENT_CACHE = True


class WriterSong(IndexedRedisModel):
    FIELDS = _FIELDS
    INDEXED_FIELDS = ["artist", "track"]
    KEY_NAME = "CacheSongs"
    CLIENT_CACHE = False
