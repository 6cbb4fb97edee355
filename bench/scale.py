"""Scale: a query's latency as the model grows.  ``filter(artist=x).all()`` (100 of
N... objects per artist) and ``filter(artist=x, track_number__gte=6).all()`` at 10k,
100k and 1M objects; the query cost should follow the result and the smallest index,
not the model's size.

    python -m bench.scale [--sizes 10000 100000 1000000] [--queries 300] [--url ...]

Without --url it starts a private redis-server (never touching a shared one).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

from .workload import FIELDS, rows


def typed_song_model(key_name: str) -> Any:
    """The workload's songs, with track_number an int (so it can be compared)."""
    from IndexedRedis import IndexedRedisModel, IRField

    fields: list[Any] = [IRField("track_number", valueType=int) if f == "track_number" else f for f in FIELDS]
    return type("ScaleSong", (IndexedRedisModel,), {
        "FIELDS": fields, "INDEXED_FIELDS": ["artist", "title", "track_number"], "KEY_NAME": key_name,
        "__module__": __name__,
    })


def measure(n: int, queries: int, artists: int) -> dict[str, float]:
    Song = typed_song_model(f"ScaleSongs{n}")
    objs = []
    for row in rows(n):
        row = dict(row, artist=f"artist-{int(row['title'][6:]) % artists}")
        objs.append(Song(**row))
    started = time.perf_counter()
    Song.reset(objs)
    loaded = time.perf_counter() - started
    del objs
    rng = random.Random(7)
    results: dict[str, float] = {"n": n, "reset_s": loaded}
    for name, make in (("eq", lambda a: Song.objects.filter(artist=a)),
                       ("eq_gte", lambda a: Song.objects.filter(artist=a, track_number__gte=6))):
        timings = []
        sizes = []
        for _ in range(queries):
            artist = f"artist-{rng.randrange(artists)}"
            started = time.perf_counter()
            found = make(artist).all()
            timings.append(time.perf_counter() - started)
            sizes.append(len(found))
        results[f"{name}_ms"] = statistics.median(timings) * 1000
        results[f"{name}_rows"] = statistics.median(sizes)
    Song.deleter.destroyModel()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rows-per-artist", type=int, default=100,
                        help="objects per artist, kept the same at every size (default 100)")
    parser.add_argument("--url", help="Redis URL (default: a private embedded redis-server)")
    args = parser.parse_args()
    from IndexedRedis import setDefaultRedisConnectionParams
    from IndexedRedis.connection import params_from_url
    from IndexedRedis.embedded import EmbeddedRedis, free_port

    def run_all() -> None:
        print("| objects | reset (s) | filter(artist=x) | rows "
              "| filter(artist=x, track_number__gte=6) | rows |")
        print("|---|---|---|---|---|---|")
        for n in args.sizes:
            r = measure(n, args.queries, max(1, n // args.rows_per_artist))
            print(f"| {n:,} | {r['reset_s']:.1f} | {r['eq_ms']:.3f} ms | {r['eq_rows']:.0f} | "
                  f"{r['eq_gte_ms']:.3f} ms | {r['eq_gte_rows']:.0f} |", flush=True)

    if args.url:
        setDefaultRedisConnectionParams(params_from_url(args.url))
        run_all()
    else:
        with EmbeddedRedis(port=free_port(), unix_socket=False) as server:
            setDefaultRedisConnectionParams(dict(server.connection_params))
            run_all()


if __name__ == "__main__":
    main()
