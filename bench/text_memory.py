"""Memory of the standard workload (20k songs, indexed artist / title / track_number):
Redis ``used_memory`` after a reset of N objects, minus the value before it, and the
part the text dictionaries take (MEMORY USAGE of their keys).

    python -m bench.text_memory [--n 20000] [--rounds 3]

It starts a private redis-server (never touching a shared one).  To compare with
another version of IndexedRedis, run this file with that version first on sys.path.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from .workload import rows, song_model


def measure(params: dict[str, Any], n: int) -> dict[str, int]:
    import redis

    from IndexedRedis import setDefaultRedisConnectionParams

    setDefaultRedisConnectionParams(params)
    client = redis.Redis(**params)
    Song = song_model("MemorySongs")
    objs = [Song(**row) for row in rows(n)]
    client.execute_command("MEMORY", "PURGE")
    before = int(client.info("memory")["used_memory"])
    Song.reset(objs)
    client.execute_command("MEMORY", "PURGE")
    after = int(client.info("memory")["used_memory"])
    dictionaries = 0
    gen = int(client.get(Song._meta.keys.gen) or 0)
    gk = Song._meta.keys.generation(gen)
    for name in Song._meta.indexed_names:
        for key in (getattr(gk, "text_dict", None), getattr(gk, "fold_dict", None)):
            if key is not None and client.exists(key(name)):
                dictionaries += int(client.memory_usage(key(name), samples=0) or 0)
    layout = getattr(gk, "layout", None)
    if layout is not None and client.exists(layout):
        dictionaries += int(client.memory_usage(layout, samples=0) or 0)
    Song.reset([])
    client.close()
    return {"dataset_bytes": after - before, "dictionary_bytes": dictionaries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from IndexedRedis.embedded import EmbeddedRedis, free_port

    results = []
    with EmbeddedRedis(port=free_port(), unix_socket=False) as server:
        for _ in range(args.rounds):
            results.append(measure(dict(server.connection_params), args.n))
    data = [r["dataset_bytes"] for r in results]
    print(f"n={args.n} dataset_bytes median={statistics.median(data):.0f} min={min(data)} max={max(data)} "
          f"dictionary_bytes={results[-1]['dictionary_bytes']}")


if __name__ == "__main__":
    main()
