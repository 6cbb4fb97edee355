"""Models of the client-side cache tests: one data set (KEY_NAME CacheSongs) read
through a cache (CachedSong) and written by a model without one (WriterSong, which
another process uses too)."""

from __future__ import annotations

import warnings

from IndexedRedis import IndexedRedisModel, IRField, SharedKeysWarning

_FIELDS = ["artist", "title", IRField("track", valueType=int)]


class CachedSong(IndexedRedisModel):
    FIELDS = _FIELDS
    INDEXED_FIELDS = ["artist", "track"]
    KEY_NAME = "CacheSongs"
    CLIENT_CACHE = True


with warnings.catch_warnings():  # one data set, read with a cache and written without: meant
    warnings.simplefilter("ignore", SharedKeysWarning)

    class WriterSong(IndexedRedisModel):
        FIELDS = _FIELDS
        INDEXED_FIELDS = ["artist", "track"]
        KEY_NAME = "CacheSongs"
        CLIENT_CACHE = False
