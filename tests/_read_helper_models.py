"""Models and process bodies for test_read_helpers (importable by spawned children)."""

from __future__ import annotations

import os
from typing import Any

from _models import _report

from IndexedRedis import IndexedRedisModel, IRField


class Member(IndexedRedisModel):
    FIELDS = ["email", "name", IRField("visits", valueType=int)]
    INDEXED_FIELDS = ["email", "name"]
    UNIQUE_FIELDS = ["email"]
    KEY_NAME = "readhelpers:{member}"


def get_or_create_worker(url: str, email: str, barrier: Any, queue: Any) -> None:
    _report(queue, _get_or_create_body, url, email, barrier)


def _get_or_create_body(url: str, email: str, barrier: Any) -> tuple[int, bool]:
    os.environ["REDIS_URL"] = url
    barrier.wait(timeout=60)
    obj, created = Member.objects.get_or_create(email=email, defaults={"name": f"pid {os.getpid()}"})
    return int(obj._id), created
