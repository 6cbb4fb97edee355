"""The asyncio benchmark: a hand-written ``redis.asyncio`` baseline against IndexedRedis's
async API (``asave``, ``aall``, ``aget``), ``--tasks`` concurrent tasks on one event
loop, in interleaved rounds; wall time and the Redis server's CPU per operation.
Results: bench/results/async_latest.{md,json}.

    bench/.venv/bin/python -m bench.async_run [--n 20000] [--rounds 3] [--tasks 64] [--out DIR]
    bench/.venv/bin/python -m bench.async_run --profile filter_eq   # cProfile ours on one op

Every figure comes from a private redis-server started for the run (never a shared one).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import hashlib
import io
import os
import pstats
import statistics
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis
import redis.asyncio

from . import report
from .adapters import _version, queue_baseline_save
from .ops import Dataset, Plan, redis_cpu
from .workload import ARTISTS, song_model

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)

OPS = ["insert_one", "filter_eq", "get_pk"]
#: ours / baseline wall-time ratios our issue asks for
TARGETS = {"insert_one": 0.9, "filter_eq": 0.5, "get_pk": 1.0}
BASELINE = "redis.asyncio baseline"
OURS = "IndexedRedis async (ours)"
DBS = {BASELINE: 1, OURS: 2}


def log(msg: str) -> None:
    print(msg, flush=True)


class AsyncBaseline:
    """The sync ``adapters.Baseline`` written for ``redis.asyncio``: same keys, same
    commands, same round trips (save = INCR + one MULTI/EXEC; filter_eq = SMEMBERS + one
    pipeline of HGETALL; get = HGETALL); hiredis, ``decode_responses=True``."""

    name = BASELINE

    def __init__(self, params: dict[str, Any], pool_size: int) -> None:
        from redis.utils import HIREDIS_AVAILABLE

        assert HIREDIS_AVAILABLE, "the baseline must use the hiredis parser"
        self.r = redis.asyncio.Redis(**params, decode_responses=True, max_connections=pool_size)

    async def insert_one(self, row: dict[str, str]) -> Any:
        pk = await self.r.incr("bl:next")
        pipe = self.r.pipeline(transaction=True)
        queue_baseline_save(pipe, pk, row)
        await pipe.execute()
        return pk

    async def filter_eq(self, artist: str) -> list[Any]:
        ids: set[str] = await self.r.smembers(f"bl:idx:artist:{artist}")  # type: ignore[assignment]
        pipe = self.r.pipeline(transaction=False)
        for pk in ids:
            pipe.hgetall(f"bl:{pk}")
        return await pipe.execute()

    async def get(self, pk: Any) -> Any:
        return await self.r.hgetall(f"bl:{pk}")

    def value(self, obj: Any, name: str) -> str:
        return obj[name]

    async def close(self) -> None:
        await self.r.aclose()


class AsyncOurs:
    """IndexedRedis through its public async API, on the default connection (one
    ``redis.asyncio`` client per loop, a BlockingConnectionPool of ``max_connections``)."""

    name = OURS

    def __init__(self, params: dict[str, Any], pool_size: int) -> None:
        from IndexedRedis import setDefaultRedisConnectionParams

        setDefaultRedisConnectionParams({**params, "max_connections": pool_size})
        self.Song = song_model("BenchSongs")

    async def insert_one(self, row: dict[str, str]) -> Any:
        return await self.Song(**row).asave()

    async def filter_eq(self, artist: str) -> list[Any]:
        return await self.Song.objects.filter(artist=artist).aall()

    async def get(self, pk: Any) -> Any:
        return await self.Song.objects.aget(pk)

    def value(self, obj: Any, name: str) -> str:
        return str(getattr(obj, name))

    async def close(self) -> None:
        from IndexedRedis import getAsyncRedisConnection

        await getAsyncRedisConnection().aclose()


Impl = AsyncBaseline | AsyncOurs


def server_cpu(admin: redis.Redis) -> tuple[float, str]:
    """The server's CPU seconds so far (``ops.redis_cpu``), and which figure that is."""
    info: dict[str, Any] = admin.info("cpu")
    return redis_cpu(info), "main thread" if "used_cpu_user_main_thread" in info else "process"


async def spread(fn: Callable[[Any], Awaitable[Any]], items: Sequence[Any], tasks: int) -> list[Any]:
    """``fn`` over ``items`` by ``tasks`` concurrent tasks pulling the next index from one
    shared iterator (a work queue without a Queue's overhead); results in item order."""
    results: list[Any] = [None] * len(items)
    indices = iter(range(len(items)))

    async def worker() -> None:
        for i in indices:
            results[i] = await fn(items[i])

    workers = [asyncio.ensure_future(worker()) for _ in range(min(tasks, len(items)))]
    try:
        await asyncio.gather(*workers)
    except BaseException:  # a wrong answer or a lost connection: stop the other workers too
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    return results


async def timed(admin: redis.Redis, fn: Callable[[Any], Awaitable[Any]], items: Sequence[Any], tasks: int,
                profiler: cProfile.Profile | None = None) -> tuple[dict[str, float], list[Any]]:
    """One operation timed as a whole: wall seconds, and server CPU µs per item."""
    gc.collect()
    cpu0, _ = server_cpu(admin)
    if profiler:
        profiler.enable()
    started = time.perf_counter()
    try:
        results = await spread(fn, items, tasks)
    finally:
        wall = time.perf_counter() - started
        if profiler:
            profiler.disable()
    cpu1, _ = server_cpu(admin)
    return {"s": wall, "cpu_us": (cpu1 - cpu0) * 1e6 / len(items)}, results


def check(cond: bool, message: str) -> None:
    if not cond:
        raise AssertionError(message)


async def run_round(impl: Impl, data: Dataset, tasks: int, admin: redis.Redis,
                    profile: tuple[str, cProfile.Profile] | None = None) -> dict[str, dict[str, float]]:
    """Every operation once against ``impl``, each answer checked as bench/ops.py does
    (counts, then fields); with ``profile`` (op, profiler), that op runs under the profiler."""
    plan, name = data.plan, impl.name
    out: dict[str, dict[str, float]] = {}
    profile_op, profiler = profile or (None, None)

    async def op(key: str, fn: Callable[[Any], Awaitable[Any]], items: Sequence[Any]) -> list[Any]:
        out[key], results = await timed(admin, fn, items, tasks, profiler if key == profile_op else None)
        return results

    admin.flushdb()
    pks = await op("insert_one", impl.insert_one, data.rows)
    check(len(set(pks)) == plan.n and None not in pks, f"{name} insert_one: {len(set(pks))} distinct pks")
    probe = data.rows[0]["artist"]
    found = await impl.filter_eq(probe)
    check(len(found) == data.per_artist[probe],
          f"{name} insert_one: {len(found)} objects of {probe}, expected {data.per_artist[probe]}")

    artists = plan.artists()
    results = await op("filter_eq", impl.filter_eq, artists)
    sizes, expected = [len(r) for r in results], [data.per_artist[a] for a in artists]
    check(sizes == expected, f"{name} filter_eq: sizes {sizes[:5]}... expected {expected[:5]}...")
    titles: dict[str, set[str]] = {}
    for row in data.rows:
        titles.setdefault(row["artist"], set()).add(row["title"])
    for artist, objs in zip(artists, results):
        check(all(impl.value(o, "artist") == artist for o in objs)
              and {impl.value(o, "title") for o in objs} == titles[artist], f"{name} filter_eq: wrong objects")
    del results

    indices = plan.get_indices()
    got = await op("get_pk", impl.get, [pks[i] for i in indices])
    for i, obj in zip(indices, got):
        row = data.rows[i]
        check(obj is not None and all(impl.value(obj, f) == v for f, v in row.items()),
              f"{name} get_pk: pk {pks[i]} gave {obj!r}, expected row {i} (title-{i})")
    admin.flushdb()
    return out


def summarize(rounds: dict[str, list[dict[str, dict[str, float]]]]) -> dict[str, dict[str, Any]]:
    """Per implementation and op: median wall time and server CPU, their samples, and
    both ratios to the baseline's medians."""
    summary: dict[str, dict[str, Any]] = {}
    for name, results in rounds.items():
        summary[name] = {}
        for op in OPS:
            s = [r[op]["s"] for r in results if op in r]
            cpu = [r[op]["cpu_us"] for r in results if op in r]
            summary[name][op] = {"median_s": statistics.median(s) if s else None, "samples_s": s,
                                 "cpu_us": statistics.median(cpu) if cpu else None, "samples_cpu_us": cpu}
    base = summary.get(BASELINE, {})
    for cells in summary.values():
        for op, cell in cells.items():
            b = base.get(op, {})
            cell["ratio"] = cell["median_s"] / b["median_s"] if cell["median_s"] and b.get("median_s") else None
            cell["cpu_ratio"] = cell["cpu_us"] / b["cpu_us"] if cell["cpu_us"] and b.get("cpu_us") else None
    return summary


def _ms(cell: dict[str, Any]) -> str:
    return "n/a" if cell.get("median_s") is None else f"{cell['median_s'] * 1000:,.1f} ms"


def _us(cell: dict[str, Any]) -> str:
    return "n/a" if cell.get("cpu_us") is None else f"{cell['cpu_us']:.1f} µs"


def _x(ratio: float | None) -> str:
    return "" if ratio is None else f" ({ratio:.2f}×)"


def markdown(meta: dict[str, Any], summary: dict[str, dict[str, Any]], errors: dict[str, str]) -> str:
    m, plan = meta["machine"], meta["plan"]
    counts = {"insert_one": f"{plan['n']:,} saves", "filter_eq": f"{plan['eq_queries']} queries",
              "get_pk": f"{plan['gets']} gets"}
    lines = [
        f"# IndexedRedis asyncio benchmark, {meta['date']}",
        "",
        f"- **Machine**: nproc {meta['nproc']} ({m.get('cores')} CPUs), {m.get('ram', '?')} RAM, "
        f"{m.get('cpu', '?')}; {m['os']}",
        f"- **Python** {m['python']}; **redis-server** {meta['redis_server']} (private, started for the run: "
        "no persistence, loopback TCP; each implementation in its own db, FLUSHDB'd between rounds)",
        "- **Libraries**: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- **Code under test**: {meta.get('git', '?')}; IndexedRedis/ digest {meta.get('code_digest', '?')}",
        f"- **Workload**: N = {plan['n']:,} songs (../shared/bench/WORKLOAD.md), {meta['tasks']} concurrent "
        f"tasks on one event loop sharing each operation's work (pool of {meta['pool_size']} connections "
        f"each); insert_one = N saves; filter_eq = {plan['eq_queries']} queries `artist == x` (about "
        f"{plan['n'] // ARTISTS} objects each); get_pk = {plan['gets']} gets by pk; each operation timed as a whole",
        f"- **Rounds**: {meta['rounds']}, interleaved (baseline, then ours, each round); medians; ratios are "
        "ours / baseline from this run (below 1× = faster / less server CPU than the baseline)",
        f"- **Server CPU**: `INFO cpu` ({meta['cpu_source']}) before and after each operation, per "
        "save / query / get",
        f"- **Load average** (1 / 5 / 15 min): {meta['load']['start']} at the start, "
        f"{meta['load']['end']} at the end; run took {meta['elapsed_s']:.0f} s: `{meta['command']}`",
        "",
        "| op | count | baseline | ours (ratio) | target | server CPU / op: baseline | ours (ratio) |",
        "|---|---|---|---|---|---|---|",
    ]
    base, ours = summary.get(BASELINE, {}), summary.get(OURS, {})
    for op in OPS:
        b, o = base.get(op, {}), ours.get(op, {})
        ratio = o.get("ratio")
        verdict = "" if ratio is None else (" met" if ratio <= TARGETS[op] else " **missed**")
        lines.append(f"| {op} | {counts[op]} | {_ms(b)} | {_ms(o)}{_x(ratio)} | ≤ {TARGETS[op]}×{verdict} | "
                     f"{_us(b)} | {_us(o)}{_x(o.get('cpu_ratio'))} |")
    lines += ["", "Targets (from our issue): filter_eq ≤ 0.5×, get_pk ≤ 1.0×, insert_one ≤ 0.9× the async "
              "baseline's wall time."]
    for name, err in errors.items():
        lines.append(f"- **FAILED** {name}: {err}")
    return "\n".join(lines) + "\n"


def print_profile(profiler: cProfile.Profile, path: str) -> None:
    """The top by cumulative time (the call chain down from our entry point; the first
    rows are the event loop's) and by own time.  Under cProfile a coroutine counts one
    call per resumption, and its time is CPU spent while it runs, not time suspended."""
    profiler.dump_stats(path)
    for key, top in (("cumulative", 30), ("tottime", 15)):
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).strip_dirs().sort_stats(key).print_stats(top)
        log(f"--- top {top} by {key} ---\n" + buf.getvalue().split("\n\n", 2)[-1].rstrip())
    log(f"profile written: {path}")


def code_digest() -> str:
    """A digest of the library's sources at the start, to tell which working-tree state a
    run measured (the tree changes under other engineers' edits between commits)."""
    h = hashlib.sha1()
    lib = os.path.join(ROOT, "IndexedRedis")
    for base, dirs, files in sorted(os.walk(lib)):
        dirs.sort()
        for name in sorted(files):
            if name.endswith((".py", ".lua")):
                path = os.path.join(base, name)
                h.update(os.path.relpath(path, lib).encode())
                with open(path, "rb") as fh:
                    h.update(fh.read())
    return h.hexdigest()[:12]


async def amain(args: argparse.Namespace, argv: list[str]) -> int:
    from IndexedRedis.embedded import EmbeddedRedis, free_port

    plan = Plan(n=args.n)
    data = Dataset(plan)
    pool_size = 2 * args.tasks
    started = time.perf_counter()
    load_start = report.load_average()
    git, digest = report.git_state(ROOT), code_digest()
    with EmbeddedRedis(port=free_port(), unix_socket=False) as server:
        params: dict[str, Any] = {"host": "127.0.0.1", "port": server.port}
        rounds = 1 if args.profile else args.rounds
        log(f"private redis-server {server.version} on 127.0.0.1:{server.port}; N={plan.n:,}, "
            f"{rounds} round(s), {args.tasks} tasks; IndexedRedis/ digest {digest}"
            + (f"; profiling ours on {args.profile}" if args.profile else ""))
        ours = AsyncOurs({**params, "db": DBS[OURS]}, pool_size)
        impls: list[Impl] = [ours]
        if not args.profile:
            impls.insert(0, AsyncBaseline({**params, "db": DBS[BASELINE]}, pool_size))
        admins = {i.name: redis.Redis(**params, db=DBS[i.name]) for i in impls}
        cpu_source = server_cpu(admins[impls[0].name])[1]
        results: dict[str, list[dict[str, Any]]] = {i.name: [] for i in impls}
        errors: dict[str, str] = {}
        for rnd in range(1, rounds + 1):
            for impl in impls:
                if impl.name in errors:
                    continue
                profiler = cProfile.Profile() if args.profile else None
                try:
                    result = await run_round(impl, data, args.tasks, admins[impl.name],
                                             (args.profile, profiler) if profiler else None)
                except Exception as exc:
                    traceback.print_exc()
                    errors[impl.name] = f"{type(exc).__name__}: {exc}"[:300]
                    log(f"[round {rnd}/{rounds}] {impl.name}: FAILED {errors[impl.name]}")
                    continue
                if profiler:
                    os.makedirs(args.out, exist_ok=True)
                    print_profile(profiler, os.path.join(args.out, f"async_{args.profile}.prof"))
                results[impl.name].append(result)
                log(f"[round {rnd}/{rounds}] {impl.name}: " + ", ".join(
                    f"{op} {result[op]['s'] * 1000:,.1f} ms / {result[op]['cpu_us']:.1f} µs cpu" for op in OPS))
        for impl in impls:
            await impl.close()
            admins[impl.name].close()
        redis_version = server.version
    if args.profile:
        return 1 if errors else 0

    summary = summarize({k: v for k, v in results.items() if v})
    meta = report.side_meta(
        git=git, digest=digest, redis_server=redis_version, plan=plan, rounds=rounds, cpu_source=cpu_source,
        versions={"redis-py": _version("redis"), "hiredis": _version("hiredis"),
                  "indexedredis (ours)": _version("indexedredis")},
        targets=TARGETS, started=started, load_start=load_start,
        command=report.command(ROOT, "bench.async_run", argv), tasks=args.tasks, pool_size=pool_size)
    md_text = markdown(meta, summary, errors)
    paths = report.write_side(args.out, "async", md_text, {"meta": meta, "summary": summary, "rounds_raw": results,
                                                             "errors": errors})
    print()
    print(md_text)
    log("written: " + ", ".join(paths))
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = report.side_parser(__doc__, "async", OPS, os.path.join(BENCH, "results"))
    parser.add_argument("--tasks", type=int, default=64, help="concurrent tasks on the loop (default 64)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1 or args.tasks < 1:
        parser.error("--n, --rounds and --tasks must be at least 1")
    return asyncio.run(amain(args, argv))


if __name__ == "__main__":
    sys.exit(main())
