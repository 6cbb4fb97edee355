"""Check stall: how long another client's PING waits while ``check`` (or ``repair``)
walks a big model.  A second process PINGs every millisecond during the check and
reports latency percentiles; a little drift is injected first, so the check also
finds (and with --repair fixes) something.

    python -m bench.check_stall [--n 1000000] [--repair] [--url redis://...] [--renice 10]

Without --url it starts a private redis-server (never touching a shared one).  On a
machine shared with other work, a PING also waits for the CPU: ``--renice N`` raises
the private server's and the pinger's scheduling priority by N (as a dedicated Redis
host would have it; needs root), so that what is measured is the server's own stalls.
The server's slow log (every command of 1 ms or more) is summarised too.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time
from typing import Any

import redis

from .stall import percentile
from .workload import rows, song_model


def _pinger(params: dict[str, Any], ready: Any, stop: Any, out: Any, renice: int) -> None:
    if renice:
        os.setpriority(os.PRIO_PROCESS, 0, -renice)
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


def _inject_drift(client: redis.Redis, model: Any) -> int:
    """A few missing and stale index entries and a garbage key; returns how many."""
    keys = model._meta.keys
    gk = keys.generation(int(client.get(keys.gen) or 0))
    client.srem(gk.index("artist", b"artist-1"), 2)              # object 2 (row 1) has artist-1
    client.sadd(gk.index("artist", b"artist-2"), 4, 10**9)      # 4 has artist-3; 10**9 has no record
    client.zadd(gk.ids, {str(10**9 + 1): 10**9 + 1})             # an id with no record
    client.sadd(keys.generation(999).index("artist", b"x"), 1)    # a key of no live generation
    return 5


def _name(entry: dict[str, Any]) -> str:
    """A slow log entry's command, scripts by name."""
    from IndexedRedis import scripts

    command = entry["command"]
    words = (command.decode("utf-8", "replace") if isinstance(command, bytes) else str(command)).split()
    if words and words[0].upper() == "EVALSHA":
        for name in dir(scripts):
            script = getattr(scripts, name)
            if isinstance(script, scripts.Script) and script.sha == words[1]:
                return script.name
    return " ".join(words[:2])


def _pings(params: dict[str, Any], renice: int, during: Any) -> list[float]:
    """PING latencies (ms) of another process while ``during()`` runs."""
    ctx = mp.get_context("spawn")
    ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_pinger, args=(params, ready, stop, out, renice))
    proc.start()
    ready.wait(30)
    time.sleep(0.05)
    try:
        during()
    finally:
        time.sleep(0.05)
        stop.set()
    latencies = out.get(timeout=60)
    proc.join(30)
    return [v * 1000 for v in latencies]


def measure(params: dict[str, Any], n: int, repair: bool, renice: int = 0, baseline: float = 0) -> dict[str, Any]:
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
    # The server's own view: every command of 1 ms or more is logged with its duration
    # (a pause of the whole machine lengthens it too, but not the time spent waiting
    # for the CPU before the command began).
    client.config_set("slowlog-log-slower-than", 1000)
    client.config_set("slowlog-max-len", 100_000)
    idle = _pings(params, renice, lambda: time.sleep(baseline)) if baseline else []
    client.slowlog_reset()
    outcome: dict[str, Any] = {}

    def run() -> None:
        started = time.perf_counter()
        outcome["report"] = Song.objects.repair() if repair else Song.objects.check()
        outcome["seconds"] = time.perf_counter() - started

    ms = _pings(params, renice, run)
    report, elapsed = outcome["report"], outcome["seconds"]
    slow = client.slowlog_get(100_000)
    result = {"n": n, "mode": "repair" if repair else "check", "renice": renice, "load_s": load_s, "check_s": elapsed,
              "found": sum(report.found.values()), "injected": injected,
              "repaired": sum(report.repaired.values()), "pings": len(ms), "p50_ms": statistics.median(ms),
              "p99_ms": percentile(ms, 0.99), "max_ms": max(ms),
              "server_steps_over_1ms": len(slow),
              "server_max_step_ms": max((entry["duration"] for entry in slow), default=0) / 1000,
              "idle_s": baseline, "idle_pings": len(idle),
              "idle_p99_ms": percentile(idle, 0.99) if idle else 0.0, "idle_max_ms": max(idle, default=0.0),
              "slowest": ", ".join(f"{_name(entry)} {entry['duration'] / 1000:.1f}ms"
                                   for entry in sorted(slow, key=lambda e: -e["duration"])[:5])}
    Song.reset([])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repair", action="store_true", help="run repair() instead of check()")
    parser.add_argument("--url", help="Redis URL (default: a private embedded redis-server)")
    parser.add_argument("--renice", type=int, default=0,
                        help="raise the private server's and the pinger's priority by this much (root)")
    parser.add_argument("--baseline", type=float, default=0,
                        help="first PING the idle server for this many seconds, to show the machine's own pauses")
    args = parser.parse_args()
    from IndexedRedis.connection import params_from_url
    from IndexedRedis.embedded import EmbeddedRedis, free_port

    if args.url:
        result = measure(params_from_url(args.url), args.n, args.repair, baseline=args.baseline)
    else:
        with EmbeddedRedis(port=free_port(), unix_socket=False) as server:
            if args.renice:
                os.setpriority(os.PRIO_PROCESS, server.pid, -args.renice)
            result = measure(dict(server.connection_params), args.n, args.repair, args.renice, args.baseline)
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
