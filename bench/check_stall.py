"""Check stall: how long another client's PING waits while ``check`` (or ``repair``)
walks a big model.  A second process PINGs every millisecond during the check and
reports latency percentiles; a little drift is injected first, so the check also
finds (and with --repair fixes) something.

    python -m bench.check_stall [--n 1000000] [--repair] [--url redis://...]

Without --url it starts a private redis-server (never touching a shared one).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time
from typing import Any

import redis

from .stall import _pinger, percentile
from .workload import rows, song_model


def _inject_drift(client: redis.Redis, model: Any) -> int:
    """A few missing and stale index entries and a garbage key; returns how many."""
    keys = model._meta.keys
    gk = keys.generation(int(client.get(keys.gen) or 0))
    client.srem(gk.index("artist", b"artist-1"), 2)              # object 2 (row 1) has artist-1
    client.sadd(gk.index("artist", b"artist-2"), 4, 10**9)      # 4 has artist-3; 10**9 has no record
    client.zadd(gk.ids, {str(10**9 + 1): 10**9 + 1})             # an id with no record
    client.sadd(keys.generation(999).index("artist", b"x"), 1)    # a key of no live generation
    return 5


def measure(params: dict[str, Any], n: int, repair: bool) -> dict[str, Any]:
    from IndexedRedis import setDefaultRedisConnectionParams

    setDefaultRedisConnectionParams(params)
    Song = song_model("CheckStallSongs")
    client = redis.Redis(**params)
    loaded = time.perf_counter()
    batch = 100_000
    for start in range(0, n, batch):  # saveMultiple keeps client memory lower than one reset of all
        Song.saver.saveMultiple([Song(**row) for row in rows(min(batch, n - start), seed=start + 1)])
    load_s = time.perf_counter() - loaded
    injected = _inject_drift(client, Song)
    ctx = mp.get_context("spawn")
    ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_pinger, args=(params, ready, stop, out))
    proc.start()
    ready.wait(30)
    time.sleep(0.05)
    started = time.perf_counter()
    report = Song.objects.repair() if repair else Song.objects.check()
    elapsed = time.perf_counter() - started
    time.sleep(0.05)
    stop.set()
    latencies = out.get(timeout=60)
    proc.join(30)
    ms = [v * 1000 for v in latencies]
    result = {"n": n, "mode": "repair" if repair else "check", "load_s": load_s, "check_s": elapsed,
              "found": sum(report.found.values()), "injected": injected,
              "repaired": sum(report.repaired.values()), "pings": len(ms), "p50_ms": statistics.median(ms),
              "p99_ms": percentile(ms, 0.99), "max_ms": max(ms)}
    Song.reset([])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repair", action="store_true", help="run repair() instead of check()")
    parser.add_argument("--url", help="Redis URL (default: a private embedded redis-server)")
    args = parser.parse_args()
    from IndexedRedis.connection import params_from_url
    from IndexedRedis.embedded import EmbeddedRedis, free_port

    if args.url:
        result = measure(params_from_url(args.url), args.n, args.repair)
    else:
        with EmbeddedRedis(port=free_port(), unix_socket=False) as server:
            result = measure(dict(server.connection_params), args.n, args.repair)
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
