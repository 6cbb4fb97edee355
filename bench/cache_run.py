"""The client-side cache benchmark: repeated filter_eq and get_pk over a hot set,
IndexedRedis with its cache (``CLIENT_CACHE = True``) against IndexedRedis without it
(the same data, the same server, the same run) and against SQLAlchemy 2 on SQLite;
interleaved rounds, medians, ratios within the run.  Results:
bench/results/cache_latest.{md,json}.

    python -m bench.cache_run [--n 20000] [--rounds 3] [--queries 2000] [--gets 5000] [--skip-sql]

Every Redis figure comes from a private redis-server started for the run.  Each
implementation reads the hot set once before it is timed (the cache fills; SQLite's
page cache warms), and every answer is checked.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from . import report
from .adapters import Sql, _version
from .workload import ARTISTS, FIELDS, INDEXED, rows

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
OPS = ["filter_eq", "get_pk"]
UNCACHED, CACHED, SQLITE = "IndexedRedis, uncached", "IndexedRedis, cached", "SQLAlchemy + SQLite"
TARGETS = {"vs uncached": 20.0, "vs SQLite": 50.0}  # how many times faster the cached reads must be


def log(msg: str) -> None:
    print(msg, flush=True)


def models(key_name: str) -> tuple[Any, Any]:
    """The workload's model twice on one data set: without and with the cache."""
    from IndexedRedis import IndexedRedisModel, SharedKeysWarning

    def make(cache: bool) -> Any:
        return type("CacheBenchSong" if cache else "PlainBenchSong", (IndexedRedisModel,), {
            "FIELDS": list(FIELDS), "INDEXED_FIELDS": list(INDEXED), "KEY_NAME": key_name,
            "CLIENT_CACHE": cache, "__module__": __name__})

    with warnings.catch_warnings():  # one data set read both ways: meant
        warnings.simplefilter("ignore", SharedKeysWarning)
        return make(False), make(True)


class Hot:
    """The hot set: ``artists`` queried round-robin, ``pks`` got round-robin."""

    def __init__(self, n: int, queries: int, gets: int, hot_artists: int, hot_rows: int, seed: int = 7) -> None:
        rng = random.Random(seed)
        artists = rng.sample(range(min(ARTISTS, n)), hot_artists)
        self.artists = [f"artist-{artists[i % hot_artists]}" for i in range(queries)]
        indices = rng.sample(range(n), hot_rows)
        self.indices = [indices[i % hot_rows] for i in range(gets)]
        self.per_artist = n // min(ARTISTS, n)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def check(cond: bool, message: str) -> None:
    if not cond:
        raise AssertionError(message)


def run_ops(name: str, filter_eq: Callable[[str], Any], get: Callable[[Any], Any], value: Callable[[Any, str], str],
            hot: Hot, pks: list[Any]) -> dict[str, float]:
    """Warm up on the hot set, then time the queries and the gets; every answer checked."""
    wanted = [pks[i] for i in hot.indices]
    for artist in dict.fromkeys(hot.artists):
        filter_eq(artist)
    for pk in dict.fromkeys(wanted):
        get(pk)
    seconds, results = timed(lambda: [filter_eq(artist) for artist in hot.artists])
    for artist, found in zip(hot.artists, results):
        check(len(found) == hot.per_artist and all(value(o, "artist") == artist for o in found),
              f"{name} filter_eq {artist}: {len(found)} objects")
    out = {"filter_eq": seconds}
    seconds, results = timed(lambda: [get(pk) for pk in wanted])
    for i, obj in zip(hot.indices, results):
        check(obj is not None and value(obj, "title") == f"title-{i}", f"{name} get_pk: row {i} gave {obj!r}")
    out["get_pk"] = seconds
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=2000, help="filter_eq queries per round (default 2000)")
    parser.add_argument("--gets", type=int, default=5000, help="gets by pk per round (default 5000)")
    parser.add_argument("--hot-artists", type=int, default=20)
    parser.add_argument("--hot-rows", type=int, default=200)
    parser.add_argument("--skip-sql", action="store_true")
    parser.add_argument("--out", default=os.path.join(BENCH, "results"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    load_start = report.load_average()

    import IndexedRedis
    from IndexedRedis.embedded import EmbeddedRedis, free_port

    server = EmbeddedRedis(port=free_port(), unix_socket=False)
    server.start()
    try:
        IndexedRedis.setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": server.port})
        data = list(rows(args.n))
        hot = Hot(args.n, args.queries, args.gets, args.hot_artists, args.hot_rows)
        plain, cached = models("CacheBench")
        pks = list(plain.reset([plain(**row) for row in data]))
        sql = None
        if not args.skip_sql:
            sql = Sql("SQLite", "")
            sql.clear()
            sql_pks = sql.insert_bulk(data)
        impls: dict[str, Callable[[], dict[str, float]]] = {
            UNCACHED: lambda: run_ops(UNCACHED, lambda a: plain.objects.filter(artist=a).all(), plain.objects.get,
                                      getattr, hot, pks),
            CACHED: lambda: run_ops(CACHED, lambda a: cached.objects.filter(artist=a).all(), cached.objects.get,
                                    getattr, hot, pks),
        }
        if sql is not None:
            impls[SQLITE] = lambda: run_ops(SQLITE, sql.filter_eq, sql.get, sql.value, hot, sql_pks)
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in impls}
        names = list(impls)
        for number in range(args.rounds):
            for name in names[number % len(names):] + names[:number % len(names)]:
                before = cached.objects.cacheStats()
                samples[name].append(impls[name]())
                after = cached.objects.cacheStats()
                if name == CACHED:
                    misses = after["misses"] - before["misses"]
                    check(misses <= len(set(hot.artists)) + len(set(hot.indices)),
                          f"cached reads missed {misses} times")
                log(f"round {number + 1} {name}: " + ", ".join(f"{op} {samples[name][-1][op] * 1e3:.1f} ms"
                                                                for op in OPS))
        stats = cached.objects.cacheStats()
        versions = {"indexedredis": _version("indexedredis"), "redis-py": _version("redis"),
                    "hiredis": _version("hiredis"), "SQLAlchemy": _version("SQLAlchemy")}
        redis_version = server.client().info("server")["redis_version"]
    finally:
        IndexedRedis.clearRedisPools()
        server.stop()
        if sql is not None:
            sql.close()

    counts = {"filter_eq": args.queries, "get_pk": args.gets}
    summary: dict[str, dict[str, Any]] = {}
    for name, rounds in samples.items():
        summary[name] = {}
        for op in OPS:
            values = [r[op] for r in rounds]
            summary[name][op] = {"median": statistics.median(values), "min": min(values), "max": max(values),
                                 "us_per_op": statistics.median(values) / counts[op] * 1e6, "samples": values}
    ratios: dict[str, dict[str, float]] = {}
    for op in OPS:
        # Each round's ratio (interleaved, so the machine's load is alike within one), then their median.
        per_round = [u[op] / c[op] for u, c in zip(samples[UNCACHED], samples[CACHED])]
        ratios.setdefault("vs uncached", {})[op] = statistics.median(per_round)
        ratios.setdefault("vs uncached spread", {})[op] = (min(per_round), max(per_round))  # type: ignore[assignment]
        if SQLITE in samples:
            per_round = [s[op] / c[op] for s, c in zip(samples[SQLITE], samples[CACHED])]
            ratios.setdefault("vs SQLite", {})[op] = statistics.median(per_round)
            ratios.setdefault("vs SQLite spread", {})[op] = (min(per_round), max(per_round))  # type: ignore[assignment]
    meta = {"date": report.now(), "machine": report.machine(), "git": report.git_state(ROOT),
            "redis_server": redis_version, "versions": versions, "n": args.n, "rounds": args.rounds,
            "queries": args.queries, "gets": args.gets, "hot_artists": args.hot_artists, "hot_rows": args.hot_rows,
            "load": {"start": load_start, "end": report.load_average()}, "elapsed_s": time.perf_counter() - started,
            "command": report.command(ROOT, "bench.cache_run", sys.argv[1:] if argv is None else argv),
            "cache_stats": stats}
    text = markdown(meta, summary, ratios)
    paths = report.write_side(args.out, "cache", text, {"meta": meta, "summary": summary, "ratios": ratios})
    log(text)
    log("written: " + ", ".join(paths))
    return 0


def markdown(meta: dict[str, Any], summary: dict[str, dict[str, Any]], ratios: dict[str, Any]) -> str:
    m = meta["machine"]
    lines = [f"# Client-side cache, {meta['date']}", "",
             f"- {m.get('cores')} cores, {m.get('cpu', '?')}; {m['os']}; {m['python']}; redis-server "
             f"{meta['redis_server']} (private, loopback); code {meta['git']}",
             "- " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
             f"- N = {meta['n']:,} songs; hot set: {meta['hot_artists']} artists ({meta['queries']:,} filter_eq "
             f"queries of 100 objects each, round-robin) and {meta['hot_rows']} rows ({meta['gets']:,} gets by pk); "
             f"each implementation reads the hot set once before it is timed; {meta['rounds']} interleaved rounds, "
             f"medians (min-max over rounds); ratios are per round, then their median",
             f"- load average {meta['load']['start']} at the start, {meta['load']['end']} at the end; "
             f"`{meta['command']}`", "",
             "| op | " + " | ".join(summary) + " | cached vs uncached | cached vs SQLite |",
             "|---" * (len(summary) + 3) + "|"]
    for op in OPS:
        cells = [f"{c['us_per_op']:.1f} µs ({c['min'] * 1e3:.0f}-{c['max'] * 1e3:.0f} ms)"
                 for c in (summary[name][op] for name in summary)]
        spread = ratios["vs uncached spread"][op]
        vs_u = f"{ratios['vs uncached'][op]:.0f}× ({spread[0]:.0f}-{spread[1]:.0f}×)"
        if "vs SQLite" in ratios:
            spread = ratios["vs SQLite spread"][op]
            vs_s = f"{ratios['vs SQLite'][op]:.0f}× ({spread[0]:.0f}-{spread[1]:.0f}×)"
        else:
            vs_s = "n/a"
        lines.append(f"| {op} | " + " | ".join(cells) + f" | {vs_u} | {vs_s} |")
    lines += ["", f"Targets: cached at least {TARGETS['vs uncached']:.0f}× faster than uncached and "
              f"{TARGETS['vs SQLite']:.0f}× faster than SQLite. Cache counters at the end: "
              + json.dumps(meta["cache_stats"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
