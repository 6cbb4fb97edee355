"""Leased resets: how soon what a killed reset wrote is freed.  A reset of a big dataset
runs in another process and is SIGKILLed part way; then a small reset (or a repair)
runs every quarter second until nothing of the killed reset's generation is left.

    python -m bench.lease_cleanup [--n 60000] [--via reset|repair] [--url redis://...]

Without --url it starts a private redis-server (never touching a shared one).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import time
from typing import Any

import redis

from .workload import rows, song_model


def _doomed(params: dict[str, Any], n: int) -> None:
    from IndexedRedis import setDefaultRedisConnectionParams

    setDefaultRedisConnectionParams(params)
    Song = song_model("LeaseSongs")
    Song.reset([Song(**row) for row in rows(n, seed=2)])


def _generation_keys(client: redis.Redis, prefix: bytes) -> list[bytes]:
    from IndexedRedis.keys import glob_escape

    return list(client.scan_iter(match=glob_escape(prefix) + b"*", count=1000))


def measure(params: dict[str, Any], n: int, via: str) -> dict[str, Any]:
    from IndexedRedis import setDefaultRedisConnectionParams
    from IndexedRedis.flows.common import RESET_LEASE_MS

    setDefaultRedisConnectionParams(params)
    Song = song_model("LeaseSongs")
    keys = Song._meta.keys
    client = redis.Redis(**params)
    Song.reset([Song(**row) for row in rows(1000, seed=1)])
    live = int(client.get(keys.gen))
    proc = mp.get_context("spawn").Process(target=_doomed, args=(params, n))
    proc.start()
    doomed = None
    while doomed is None or client.hlen(keys.generation(doomed).objs) < n // 3:
        staging = [int(g) for g in client.zrange(keys.staging, 0, -1) if int(g) != live]
        doomed = staging[0] if staging else None
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    proc.join()
    prefix = keys.generation(doomed).prefix
    left = _generation_keys(client, prefix)
    left_bytes = sum(client.memory_usage(key) or 0 for key in left)
    rounds = 0
    while _generation_keys(client, prefix) or client.zscore(keys.staging, doomed) is not None:
        rounds += 1
        if via == "reset":
            Song.reset([Song(**row) for row in rows(1000, seed=3 + rounds)])
        else:
            Song.objects.repair()
        time.sleep(0.25)
    freed_s = time.monotonic() - killed
    Song.reset([])
    return {"n": n, "via": via, "lease_s": RESET_LEASE_MS / 1000,
            "garbage_keys": len(left), "garbage_mb": left_bytes / 2**20, "rounds": rounds, "freed_after_s": freed_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60_000)
    parser.add_argument("--via", choices=("reset", "repair"), default="reset")
    parser.add_argument("--url", help="Redis URL (default: a private embedded redis-server)")
    args = parser.parse_args()
    from IndexedRedis.connection import params_from_url
    from IndexedRedis.embedded import EmbeddedRedis, free_port

    if args.url:
        result = measure(params_from_url(args.url), args.n, args.via)
    else:
        with EmbeddedRedis(port=free_port(), unix_socket=False) as server:
            result = measure(dict(server.connection_params), args.n, args.via)
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
