"""The staleness window of the client-side cache: how long after another process's
write is acknowledged a cached reader still sees the old value.

A writer process saves a new value of one object and notes the moment its save
returned (the acknowledgement); this process, which holds the old value in its
cache, reads the object through the cache in a tight loop from before the write and
notes the first read that returns the new value.  The window is the difference
(negative: the reader saw the new value before the writer's save had even returned).
Both use the same clock (``time.monotonic``, system-wide on Linux).  Results:
bench/results/cache_staleness_latest.{md,json}.

    python -m bench.cache_staleness [--writes 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import warnings
from typing import Any

from . import report

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)


def song_models() -> tuple[Any, Any]:
    from IndexedRedis import IndexedRedisModel, SharedKeysWarning

    fields = ["artist", "title"]
    cached = type("StaleSong", (IndexedRedisModel,), {"FIELDS": fields, "INDEXED_FIELDS": ["artist"],
                                                      "KEY_NAME": "StaleSongs", "CLIENT_CACHE": True,
                                                      "__module__": __name__})
    with warnings.catch_warnings():  # the same data set, written without a cache: meant
        warnings.simplefilter("ignore", SharedKeysWarning)
        plain = type("StaleWriter", (IndexedRedisModel,), {"FIELDS": fields, "INDEXED_FIELDS": ["artist"],
                                                           "KEY_NAME": "StaleSongs", "__module__": __name__})
    return cached, plain


def writer(port: int) -> None:
    """The other process: for each line "<pk> <title>", save it and print the ack time."""
    import IndexedRedis

    IndexedRedis.setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": port})
    _, plain = song_models()
    objs: dict[int, Any] = {}
    for line in sys.stdin:
        pk_text, title = line.split()
        pk = int(pk_text)
        obj = objs.get(pk) or plain.objects.get(pk)
        objs[pk] = obj
        obj.title = title
        obj.save()
        print(time.monotonic(), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--writer", type=int, help=argparse.SUPPRESS)  # the writer process, on this port
    parser.add_argument("--out", default=os.path.join(BENCH, "results"))
    args = parser.parse_args(argv)
    if args.writer is not None:
        writer(args.writer)
        return 0
    import IndexedRedis
    from IndexedRedis.embedded import EmbeddedRedis, free_port

    load_start = report.load_average()
    server = EmbeddedRedis(port=free_port(), unix_socket=False)
    server.start()
    windows: list[float] = []
    stale = 0  # reads that began after the ack and were still served the old value
    last_old: list[float] = []  # when the last read served the old value began, after the ack
    try:
        IndexedRedis.setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": server.port})
        cached, plain = song_models()
        pks = plain.reset([plain(artist=f"a{i % 10}", title="v0") for i in range(args.objects)])
        proc = subprocess.Popen([sys.executable, "-m", "bench.cache_staleness", "--writer", str(server.port)],
                                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        assert proc.stdin is not None and proc.stdout is not None
        get = cached.objects.get
        for i in range(1, args.writes + 1):
            pk = pks[i % len(pks)]
            new = f"v{i}"
            old = get(pk)
            assert get(pk) is old and old.title != new  # held in the cache
            proc.stdin.write(f"{pk} {new}\n")
            proc.stdin.flush()
            old_starts: list[float] = []
            while True:  # reads through the cache until one is not served the old instance
                started = time.monotonic()
                found = get(pk)
                if found is not old:
                    break
                old_starts.append(started)
            ack = float(proc.stdout.readline())
            assert found.title == new, (found.title, new)
            windows.append(started - ack)  # when the first read that no longer had the old value began
            last_old.append((old_starts[-1] if old_starts else float("nan")) - ack)
            stale += sum(1 for t in old_starts if t > ack)
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()
        stats = cached.objects.cacheStats()
        redis_version = server.client().info("server")["redis_version"]
    finally:
        IndexedRedis.clearRedisPools()
        server.stop()
    us = sorted(w * 1e6 for w in windows)

    def pct(p: float) -> float:
        return us[min(len(us) - 1, int(p / 100 * len(us)))]

    latest_old = max(w for w in last_old if w == w) * 1e6
    figures = {"latest_old_read_us": latest_old, "writes": len(us), "min_us": us[0], "p50_us": pct(50),
               "p90_us": pct(90), "p99_us": pct(99),
               "max_us": us[-1], "mean_us": statistics.fmean(us),
               "after_ack": sum(1 for w in us if w > 0), "stale_reads_after_ack": stale, "cache": stats}
    m = report.machine()
    meta = {"date": report.now(), "machine": m, "git": report.git_state(ROOT), "redis_server": redis_version,
            "load": {"start": load_start, "end": report.load_average()},
            "command": report.command(ROOT, "bench.cache_staleness", sys.argv[1:] if argv is None else argv)}
    text = "\n".join([
        f"# Client-side cache: staleness window, {meta['date']}", "",
        f"- {m.get('cores')} cores, {m.get('cpu', '?')}; {m['os']}; {m['python']}; redis-server {redis_version} "
        f"(private, loopback); code {meta['git']}; load {meta['load']['start']} -> {meta['load']['end']}",
        f"- `{meta['command']}`: {len(us):,} writes by another process, while this one reads the object "
        "through its cache in a tight loop; the window is the time from the writer's save returning (its "
        "ack) to the start of the first read here that was no longer served the old value (negative: the "
        "invalidation was in before the writer had its reply)", "",
        "| writes | min | p50 | p90 | p99 | max | latest start of a read served the old value | "
        "reads begun after the ack and served the old value |",
        "|---|---|---|---|---|---|---|---|",
        f"| {len(us):,} | {us[0]:.0f} µs | {pct(50):.0f} µs | {pct(90):.0f} µs | {pct(99):.0f} µs | "
        f"{us[-1]:.0f} µs | {latest_old:+.0f} µs | {stale:,} |", "",
        "The invalidation reached this process between the start of the last read served the old value and "
        "the start of the first read that was not: so the window is at most the latter, and a read that "
        "began after the ack was served the old value only if the last column is not 0.", ""])
    paths = report.write_side(args.out, "cache_staleness", text, {"meta": meta, "figures": figures,
                                                                    "windows_us": us})
    print(text)
    print("written: " + ", ".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
