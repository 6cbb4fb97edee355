"""What the client-side cache's stamps cost the server: server CPU per insert_one
and per update_one (a save of one changed, unindexed field of a stored object), for

* **before**: the code before the cache (a snapshot of another checkout's package,
  ``--before PATH``, e.g. the main branch: ``git archive main IndexedRedis | tar -x -C DIR``);
* **no cache**: this code, no process caching the model (its writes check the cache
  flag, one EXISTS, and stamp nothing);
* **cached**: this code while another process caches the model (the flag is set, a
  BCAST tracking connection listens): each update also SETs and DELs its stamp, and
  the server sends the invalidations.

Each configuration runs in a process of its own, the configurations interleaved per
round, on one private redis-server; server CPU is ``INFO cpu``'s main thread (user +
sys) read around each timed operation.  Results: bench/results/stamp_cpu_latest.{md,json}.

    python -m bench.stamp_cpu --before DIR [--n 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from . import report
from .workload import rows, song_model

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
CONFIGS = ["before", "no cache", "cached"]


def server_cpu(admin: Any) -> float:
    info = admin.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


def child(port: int, db: int, n: int) -> dict[str, Any]:
    """One configuration's round (in its own process): insert n songs one by one, then
    update each once; server CPU and wall time of each."""
    import redis

    import IndexedRedis

    IndexedRedis.setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": port, "db": db})
    admin = redis.Redis(port=port, db=db)
    admin.flushdb()
    Song = song_model("StampSongs")
    data = list(rows(n))
    out: dict[str, Any] = {"package": os.path.dirname(IndexedRedis.__file__)}
    cpu, started = server_cpu(admin), time.perf_counter()
    objs = []
    for row in data:
        obj = Song(**row)
        obj.save()
        objs.append(obj)
    out["insert_one_wall_s"] = time.perf_counter() - started
    out["insert_one_cpu_us"] = (server_cpu(admin) - cpu) * 1e6 / n
    cpu, started = server_cpu(admin), time.perf_counter()
    for obj in objs:
        obj.description = "changed"
        obj.save()
    out["update_one_wall_s"] = time.perf_counter() - started
    out["update_one_cpu_us"] = (server_cpu(admin) - cpu) * 1e6 / n
    return out


def cacher(port: int, db: int) -> None:
    """Another process caching the model while the 'cached' configuration writes: it
    reads through its cache every 0.2 s (keeping its flag and draining the invalidations)
    until its stdin closes."""
    import select

    import IndexedRedis
    from IndexedRedis import IndexedRedisModel

    from .workload import FIELDS, INDEXED

    IndexedRedis.setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": port, "db": db})
    Cached: Any = type("CachedStampSong", (IndexedRedisModel,), {
        "FIELDS": list(FIELDS), "INDEXED_FIELDS": list(INDEXED), "KEY_NAME": "StampSongs", "CLIENT_CACHE": True,
        "__module__": __name__})
    Cached.objects.get(1)
    print("ready", flush=True)
    while not select.select([sys.stdin], [], [], 0.2)[0]:
        Cached.objects.get(1)
    print(json.dumps(Cached.objects.cacheStats()), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=False, help="a directory holding the package of the code before")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(BENCH, "results"))
    parser.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)  # port db n
    parser.add_argument("--cacher", nargs=2, type=int, help=argparse.SUPPRESS)  # port db
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    if args.cacher:
        cacher(*args.cacher)
        return 0
    from IndexedRedis.embedded import EmbeddedRedis, free_port

    configs = CONFIGS if args.before else CONFIGS[1:]
    load_start = report.load_average()
    server = EmbeddedRedis(port=free_port(), unix_socket=False)
    server.start()
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    try:
        for number in range(args.rounds):
            for name in configs[number % len(configs):] + configs[:number % len(configs)]:
                db = 1 + configs.index(name)
                # The package comes from the working directory (first on sys.path): the
                # snapshot's for "before"; bench/ from PYTHONPATH.
                env = {**os.environ, "PYTHONPATH": ROOT}
                cwd = os.path.abspath(args.before) if name == "before" else ROOT
                side = None
                if name == "cached":
                    side = subprocess.Popen([sys.executable, "-m", "bench.stamp_cpu", "--cacher",
                                             str(server.port), str(db)], cwd=ROOT, env=env, text=True,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                    assert side.stdout is not None and side.stdout.readline().strip() == "ready"
                proc = subprocess.run([sys.executable, "-m", "bench.stamp_cpu", "--child", str(server.port),
                                       str(db), str(args.n)], cwd=cwd, env=env, capture_output=True, text=True,
                                      timeout=1800)
                if side is not None:
                    assert side.stdin is not None and side.stdout is not None
                    side.stdin.close()
                    cache_stats = json.loads(side.stdout.readline())
                    side.wait(timeout=30)
                    side.stdout.close()
                    print(f"  the caching process: {cache_stats}", flush=True)
                if proc.returncode != 0:
                    raise RuntimeError(f"{name}: {proc.stderr[-2000:]}")
                results[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
                print(f"round {number + 1} {name}: {results[name][-1]}", flush=True)
        redis_version = server.client().info("server")["redis_version"]
    finally:
        server.stop()
    keys = ["insert_one_cpu_us", "update_one_cpu_us", "insert_one_wall_s", "update_one_wall_s"]
    summary = {name: {key: statistics.median(r[key] for r in rounds) for key in keys}
               | {key + "_spread": (min(r[key] for r in rounds), max(r[key] for r in rounds)) for key in keys}
               for name, rounds in results.items()}
    m = report.machine()
    before_commit = ""
    if args.before:
        before_commit = open(os.path.join(args.before, "COMMIT")).read().strip() \
            if os.path.exists(os.path.join(args.before, "COMMIT")) else args.before
    meta = {"date": report.now(), "machine": m, "git": report.git_state(ROOT), "redis_server": redis_version,
            "n": args.n, "rounds": args.rounds, "before": before_commit,
            "load": {"start": load_start, "end": report.load_average()},
            "command": report.command(ROOT, "bench.stamp_cpu", sys.argv[1:] if argv is None else argv)}
    lines = [f"# Server CPU of the client-side cache's stamps, {meta['date']}", "",
             f"- {m.get('cores')} cores, {m.get('cpu', '?')}; {m['os']}; {m['python']}; redis-server "
             f"{redis_version} (private, loopback); code {meta['git']}; before = {before_commit or 'n/a'}",
             f"- {args.n:,} saves of new songs (insert_one), then {args.n:,} saves of one changed, unindexed field "
             f"(update_one); {args.rounds} interleaved rounds, medians (min-max); load {meta['load']['start']} -> "
             f"{meta['load']['end']}; `{meta['command']}`", "",
             "| configuration | insert_one: server CPU per save | update_one: server CPU per save |",
             "|---|---|---|"]
    base = summary.get("before") or summary["no cache"]
    for name, s in summary.items():
        cells = []
        for op in ("insert_one", "update_one"):
            value, (low, high) = s[f"{op}_cpu_us"], s[f"{op}_cpu_us_spread"]
            cells.append(f"{value:.1f} µs ({low:.1f}-{high:.1f}), {value / base[f'{op}_cpu_us']:.2f}×")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    paths = report.write_side(args.out, "stamp_cpu", text, {"meta": meta, "summary": summary, "rounds": results})
    print(text)
    print("written: " + ", ".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
