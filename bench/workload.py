"""The standard workload of ../shared/bench/WORKLOAD.md: songs with 7 text fields,
3 of them indexed."""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from typing import Any

FIELDS = ["artist", "title", "album", "track_number", "duration", "description", "copyright"]
INDEXED = ["artist", "title", "track_number"]
ARTISTS = 200
COPYRIGHT = "Copyright 2012 (c) Media Mogul Incorporated"


def rows(n: int, seed: int = 12345) -> Iterator[dict[str, str]]:
    """Row i of n, as the workload defines it (random parts seeded, so runs compare)."""
    rng = random.Random(seed)
    letters = string.ascii_letters + " "
    for i in range(n):
        yield {
            "artist": f"artist-{i % ARTISTS}",
            "title": f"title-{i}",
            "album": f"album-{i % ARTISTS}-{i % 5}",
            "track_number": str(i % 12 + 1),
            "duration": f"{rng.randrange(10)}:{rng.randrange(10)}{rng.randrange(10)}",
            "description": "".join(rng.choice(letters) for _ in range(40)),
            "copyright": COPYRIGHT,
        }


def song_model(key_name: str = "BenchSongs") -> Any:
    """An IndexedRedis model for the workload."""
    from IndexedRedis import IndexedRedisModel

    return type("Song", (IndexedRedisModel,), {
        "FIELDS": list(FIELDS), "INDEXED_FIELDS": list(INDEXED), "KEY_NAME": key_name,
        "__module__": __name__,
    })
