"""Reset stall: how long another client's PING waits while ``reset`` replaces a big
dataset.  A second process PINGs every millisecond during the reset and reports
latency percentiles.

    python -m bench.stall [--n 100000] [--url redis://...]

Without --url it starts a private redis-server (never touching a shared one).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time
from typing import Any

import redis

from .workload import rows, song_model


def _pinger(params: dict[str, Any], ready: Any, stop: Any, out: Any) -> None:
    client = redis.Redis(**params)
    client.ping()
    latencies: list[float] = []
    ready.set()
    while not stop.is_set():
        start = time.perf_counter()
        client.ping()
        latencies.append(time.perf_counter() - start)
        time.sleep(0.001)
    out.put(latencies)


def start_pinger(params: dict[str, Any]) -> Any:
    """Start a process that PINGs every millisecond; returns the function that stops
    it and gives its latencies (seconds)."""
    ctx = mp.get_context("spawn")
    ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_pinger, args=(params, ready, stop, out))
    proc.start()
    ready.wait(30)
    time.sleep(0.05)

    def finish() -> list[float]:
        time.sleep(0.05)
        stop.set()
        latencies: list[float] = out.get(timeout=60)
        proc.join(30)
        return latencies

    return finish


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(params: dict[str, Any], n: int) -> dict[str, float]:
    from IndexedRedis import setDefaultRedisConnectionParams

    setDefaultRedisConnectionParams(params)
    Song = song_model("StallSongs")
    Song.reset([Song(**row) for row in rows(n, seed=1)])  # an old dataset to replace
    new = [Song(**row) for row in rows(n, seed=2)]
    stop_pinging = start_pinger(params)
    started = time.perf_counter()
    Song.reset(new)
    elapsed = time.perf_counter() - started
    latencies = stop_pinging()
    Song.reset([])
    ms = [v * 1000 for v in latencies]
    return {"n": n, "reset_s": elapsed, "pings": len(ms), "p50_ms": statistics.median(ms),
            "p99_ms": percentile(ms, 0.99), "max_ms": max(ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--url", help="Redis URL (default: a private embedded redis-server)")
    args = parser.parse_args()
    from IndexedRedis.connection import params_from_url
    from IndexedRedis.embedded import EmbeddedRedis, free_port

    if args.url:
        result = measure(params_from_url(args.url), args.n)
    else:
        with EmbeddedRedis(port=free_port(), unix_socket=False) as server:
            result = measure(dict(server.connection_params), args.n)
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
