"""What expiry (TTL) costs: wall time and server CPU of the standard workload's
operations on the same songs stored by

* **plain**: a model without TTL (the baseline: it declares no expiry key);
* **ttl**: the same model with ``TTL = 3600`` (every save sets an expiry), no object
  expired;
* **ttl+expired**: the same, while 10% of the objects have expired and wait for a sweep
  (reads filter them out: the slow path of every query).

Then one **sweep** of those expired objects (``sweepExpired``), timed.  One private
redis-server, one db per configuration, configurations interleaved per round; server CPU
is ``INFO cpu``'s main thread (user + sys) read around each operation.  Results:
bench/results/ttl_cost_latest.{md,json}.

    python -m bench.ttl_cost [--n 5000] [--rounds 3] [--queries 300]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from typing import Any

from . import report
from .workload import ARTISTS, FIELDS, INDEXED, rows

BENCH = os.path.dirname(os.path.abspath(__file__))
CONFIGS = ["plain", "ttl", "ttl+expired"]
OPS = ["insert_one", "filter_eq", "count_eq", "count_all", "get_pk", "page_pk"]


def server_cpu(admin: Any) -> float:
    info = admin.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


def model(name: str, ttl: float | None) -> Any:
    from IndexedRedis import IndexedRedisModel

    return type("Song", (IndexedRedisModel,), {
        "FIELDS": list(FIELDS), "INDEXED_FIELDS": list(INDEXED), "KEY_NAME": name, "TTL": ttl,
        "__module__": __name__})


def one_round(port: int, db: int, config: str, n: int, queries: int, seed: int) -> dict[str, Any]:
    import redis

    import IndexedRedis

    IndexedRedis.clearRedisPools()
    IndexedRedis.setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": port, "db": db})
    admin = redis.Redis(port=port, db=db)
    admin.flushdb()
    Song = model(f"TtlCost{db}", None if config == "plain" else 3600)
    rng = random.Random(seed)
    out: dict[str, Any] = {}

    def timed(op: str, action: Any) -> None:
        cpu, started = server_cpu(admin), time.perf_counter()
        action()
        out[op] = time.perf_counter() - started
        out[op + "_cpu"] = server_cpu(admin) - cpu

    data = list(rows(n))

    def insert() -> None:
        for row in data:
            Song(**row).save()

    timed("insert_one", insert)
    if config == "ttl+expired":
        doomed = Song.objects.getMultiple(rng.sample(range(1, n + 1), n // 10))
        Song.saver.save([obj for obj in doomed if obj is not None], ttl=0.001)
        time.sleep(0.05)  # expired, not swept (reads only: nothing sweeps them)
    artists = [f"artist {rng.randrange(ARTISTS)}" for _ in range(queries)]
    pks = [rng.randrange(1, n + 1) for _ in range(queries)]
    timed("filter_eq", lambda: [Song.objects.filter(artist=a).all() for a in artists])
    timed("count_eq", lambda: [Song.objects.filter(artist=a).count() for a in artists])
    timed("count_all", lambda: [Song.objects.count() for _ in range(queries)])
    timed("get_pk", lambda: [Song.objects.get(pk) for pk in pks])
    timed("page_pk", lambda: [Song.objects[i * 7:i * 7 + 20] for i in range(queries)])
    if config == "ttl+expired":
        timed("sweep", lambda: Song.objects.sweepExpired())
    IndexedRedis.clearRedisPools()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    from IndexedRedis.embedded import EmbeddedRedis, free_port

    server = EmbeddedRedis(port=free_port(), unix_socket=False)
    server.start()
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
    load_start = report.load_average()
    try:
        for number in range(args.rounds):
            for name in CONFIGS[number % 3:] + CONFIGS[:number % 3]:
                results[name].append(one_round(server.port, 1 + CONFIGS.index(name), name, args.n, args.queries,
                                               number))
    finally:
        server.stop()
    medians = {name: {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
               for name, rounds in results.items()}
    lines = [f"# TTL cost (N = {args.n}, {args.queries} queries per read op, median of {args.rounds} rounds)", "",
             f"load average {load_start} -> {report.load_average()}", "",
             "| op | " + " | ".join(f"{c} wall | {c} server CPU" for c in CONFIGS) + " |",
             "|---|" + "---|---|" * len(CONFIGS)]
    for op in OPS:
        cells = []
        for name in CONFIGS:
            m = medians[name]
            cells += [f"{m[op] * 1000:.0f} ms", f"{m[op + '_cpu'] * 1000:.0f} ms"]
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    sweep = medians["ttl+expired"]
    lines += ["", f"sweep of {args.n // 10} expired objects: {sweep['sweep'] * 1000:.0f} ms wall, "
              f"{sweep['sweep_cpu'] * 1000:.0f} ms server CPU"]
    text = "\n".join(lines) + "\n"
    print(text)
    out = os.path.join(BENCH, "results")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "ttl_cost_latest.md"), "w") as fh:
        fh.write(text)
    with open(os.path.join(out, "ttl_cost_latest.json"), "w") as fh:
        json.dump({"n": args.n, "queries": args.queries, "rounds": results, "medians": medians}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
