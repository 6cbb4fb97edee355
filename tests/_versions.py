"""Two versions of one model on the same keys (a schema change during a migration)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import IndexedRedis
from IndexedRedis import IndexedRedisModel


def model_versions(key_name: str, indexed: Sequence[str], *field_lists: Sequence[Any]) -> list[Any]:
    """One model class per field list, all on ``key_name`` (their SharedKeysWarning is
    what they are meant for, so it is silenced)."""
    models = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IndexedRedis.SharedKeysWarning)
        for number, fields in enumerate(field_lists, 1):
            models.append(type(IndexedRedisModel)(f"Version{number}", (IndexedRedisModel,), {
                "FIELDS": list(fields), "INDEXED_FIELDS": list(indexed), "KEY_NAME": key_name,
                "__module__": __name__}))
    return models
