"""Lost updates on one counter (issue 12): W workers (threads, or processes with
``--processes``) each do R increments of one counter, free-running (no barrier), with

* **naive**: read, +1, ``save()``: increments are lost;
* **ifUnchanged**: read, +1, ``save(ifUnchanged=True)``, again on ``ConflictError``;
* **update(F)**: ``Model.objects.filter(name=...).update(n=F('n') + 1)``.

For each: the final counter (W x R is right), wall time, increments per second, the
conflicts seen (ifUnchanged) and the server's CPU per increment (``INFO cpu``, main
thread).  One private redis-server, started here.

    python -m bench.counter_run [--workers 8] [--rounds 100] [--processes] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import IndexedRedis
from IndexedRedis import ConflictError, F, IndexedRedisModel, IRField
from IndexedRedis.embedded import EmbeddedRedis, free_port


class BenchCounter(IndexedRedisModel):
    FIELDS = ["name", IRField("n", valueType=int)]
    INDEXED_FIELDS = ["name", "n"]
    KEY_NAME = "Bench:Counter"


def naive(pk: int, rounds: int) -> int:
    for _ in range(rounds):
        counter = BenchCounter.objects.get(pk)
        counter.n += 1
        counter.save()
    return 0


def optimistic(pk: int, rounds: int) -> int:
    conflicts = 0
    for _ in range(rounds):
        while True:
            counter = BenchCounter.objects.get(pk)
            counter.n += 1
            try:
                counter.save(ifUnchanged=True)
                break
            except ConflictError:
                conflicts += 1
    return conflicts


def by_update(pk: int, rounds: int) -> int:
    for _ in range(rounds):
        BenchCounter.objects.filter(name="c").update(n=F("n") + 1)
    return 0


LOOPS = {"naive": naive, "ifUnchanged": optimistic, "update(F)": by_update}


def _child(port: int, loop: str, pk: int, rounds: int, start: Any, queue: Any) -> None:
    IndexedRedis.setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": port})
    start.wait()
    queue.put(LOOPS[loop](pk, rounds))


def run(port: int, loop: str, workers: int, rounds: int, processes: bool) -> dict[str, Any]:
    import redis

    admin = redis.Redis(port=port)
    admin.flushdb()
    pk = int(BenchCounter(name="c", n=0).save())
    cpu = _server_cpu(admin)
    if processes:
        ctx = multiprocessing.get_context("spawn")
        start, queue = ctx.Barrier(workers + 1), ctx.Queue()
        procs = [ctx.Process(target=_child, args=(port, loop, pk, rounds, start, queue)) for _ in range(workers)]
        for proc in procs:
            proc.start()
        start.wait()  # timed from when every child is ready
        began = time.perf_counter()
        conflicts = [queue.get(timeout=600) for _ in procs]
        wall = time.perf_counter() - began
        for proc in procs:
            proc.join()
    else:
        began = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            conflicts = list(pool.map(lambda _: LOOPS[loop](pk, rounds), range(workers)))
        wall = time.perf_counter() - began
    cpu = _server_cpu(admin) - cpu
    final = BenchCounter.objects.get(pk).n
    assert BenchCounter.objects.check().ok
    admin.close()
    total = workers * rounds
    return {"loop": loop, "final": final, "expected": total, "wall_s": round(wall, 3),
            "increments_per_s": round(final / wall, 1), "conflicts": sum(conflicts),
            "server_cpu_us_per_increment": round(cpu / max(final, 1) * 1e6, 1)}


def _server_cpu(admin: Any) -> float:
    info = admin.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--processes", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    server = EmbeddedRedis(port=free_port(), unix_socket=False)
    server.start()
    version = server.version
    try:
        IndexedRedis.setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": server.port})
        results = [run(server.port, loop, args.workers, args.rounds, args.processes) for loop in LOOPS]
    finally:
        IndexedRedis.clearRedisPools()
        server.stop()
    kind = "processes" if args.processes else "threads"
    print(f"{args.workers} {kind} x {args.rounds} increments, redis {version}")
    print("| loop | final | wall | increments/s | conflicts | server CPU / increment |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['loop']} | {r['final']} of {r['expected']} | {r['wall_s']} s | {r['increments_per_s']} | "
              f"{r['conflicts']} | {r['server_cpu_us_per_increment']} µs |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"workers": args.workers, "rounds": args.rounds, "kind": kind, "results": results}, out,
                      indent=2)


if __name__ == "__main__":
    main()
