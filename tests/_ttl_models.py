"""Models of the expiry (TTL) tests, importable by the processes they spawn."""

from __future__ import annotations

from IndexedRedis import IndexedRedisModel, IRField, IRForeignLinkField


class Session(IndexedRedisModel):
    """Objects expire only when a save says so (``TTL = True``)."""

    FIELDS = ["user", IRField("n", valueType=int), "token", "note"]
    INDEXED_FIELDS = ["user", "n", "token"]
    UNIQUE_FIELDS = ["token"]
    KEY_NAME = "TtlSessions"
    TTL = True


class Cached(IndexedRedisModel):
    """Every save renews a default lifetime of 600 s."""

    FIELDS = ["kind", IRField("n", valueType=int)]
    INDEXED_FIELDS = ["kind", "n"]
    KEY_NAME = "TtlCached"
    TTL = 600


class Plain(IndexedRedisModel):
    """No TTL: no expiry key is ever declared or written."""

    FIELDS = ["kind", IRField("n", valueType=int)]
    INDEXED_FIELDS = ["kind", "n"]
    KEY_NAME = "TtlPlain"


class Visit(IndexedRedisModel):
    """Links to a Session (a TTL model): an expired session reads as no object."""

    FIELDS = ["page", IRForeignLinkField("session", Session)]
    INDEXED_FIELDS = ["page"]
    KEY_NAME = "TtlVisits"
