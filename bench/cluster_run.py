"""The standard workload on a real local Redis Cluster (3 masters): IndexedRedis (ours,
``"cluster": True``) against hand-written ``redis.cluster.RedisCluster`` code, in
interleaved rounds; wall time, server CPU per operation and memory.
Results: bench/results/cluster_latest.{md,json}.

    bench/.venv/bin/python -m bench.cluster_run [--n 20000] [--rounds 3] [--out DIR]
    bench/.venv/bin/python -m bench.cluster_run --profile filter_ne   # cProfile ours on one op

The cluster is private (``tests/clusters.py``'s ``LocalCluster``: redis-server and
redis-cli from PATH, free loopback ports, no persistence), started for the run and
stopped at its end, also on errors.  Nothing touches 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import redis
import redis.cluster
from redis.crc import key_slot

from . import ops, report
from .adapters import Ours, _version
from .async_run import code_digest, server_cpu
from .ops import OPERATIONS, TIMED, Adapter, Dataset, Plan, run_round
from .run import brief
from .workload import ARTISTS, INDEXED, song_model

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
MASTERS = 3

#: ours / baseline ratios our issue asks for (the standalone benchmark's targets)
TARGETS = {"insert_one": 0.9, "insert_bulk": 0.8, "filter_eq": 0.5, "filter_ne": 0.5, "get_pk": 1.2,
           "memory": 1.05}
#: the name report.summarize takes the ratios against
BASELINE = report.BASELINE
OURS = "IndexedRedis (ours)"
#: every baseline key carries this hash tag: one slot, so each MULTI and each pipeline stays on one node
KEY = "{bl}:"


def log(msg: str) -> None:
    print(msg, flush=True)


def local_cluster_class() -> Any:
    """``LocalCluster`` from the test suite: tests/ is not a package (its modules import
    each other as top-level modules), so its directory goes on sys.path for the import."""
    tests = os.path.join(ROOT, "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from clusters import LocalCluster

    return LocalCluster


# --- the two implementations -------------------------------------------------------------------
class ClusterStore:
    """What both adapters share: the masters' admin clients (plain ``redis.Redis``, one per
    master), to empty the cluster and to sum ``used_memory`` and CPU over the masters."""

    def __init__(self, masters: list[redis.Redis]) -> None:
        self.masters = masters

    def clear(self) -> None:
        for admin in self.masters:
            admin.flushall()

    def used_memory(self) -> int:
        return sum(int(admin.info("memory")["used_memory"]) for admin in self.masters)

    def server_cpu(self) -> float:
        return cluster_cpu(self.masters)

    def close(self) -> None:
        self.clear()


def cluster_cpu(masters: list[redis.Redis]) -> float:
    """CPU seconds of all the masters so far (``async_run.server_cpu`` of each, summed)."""
    return sum(server_cpu(admin)[0] for admin in masters)


def queue_save(pipe: Any, pk: int, row: dict[str, str]) -> None:
    """``adapters.queue_baseline_save``'s commands, with the ``{bl}`` hash tag on every key."""
    pipe.hset(f"{KEY}{pk}", mapping=row)
    pipe.sadd(f"{KEY}ids", pk)
    for name in INDEXED:
        pipe.sadd(f"{KEY}idx:{name}:{row[name]}", pk)


class ClusterBaseline(ClusterStore, Adapter):
    """The sync ``adapters.Baseline`` made cluster-correct: the same design (a hash per
    object, a set of all ids, a set per (field, value); INCR then one MULTI/EXEC pipeline
    per save; INCRBY N then one plain pipeline for the bulk path; SMEMBERS / SDIFF then
    one pipeline of HGETALL; a get is one HGETALL), every key under the ``{bl}`` hash tag
    so that each pipeline goes to one node.  ``redis.cluster.RedisCluster``, hiredis,
    ``decode_responses=True``."""

    name = BASELINE

    def __init__(self, masters: list[redis.Redis], port: int) -> None:
        super().__init__(masters)
        from redis.utils import HIREDIS_AVAILABLE

        assert HIREDIS_AVAILABLE, "the baseline must use the hiredis parser"
        self.r = redis.cluster.RedisCluster(host="127.0.0.1", port=port, decode_responses=True)
        try:  # redis-py >= 6 runs MULTI/EXEC in a ClusterPipeline whose keys share a slot
            self.r.pipeline(transaction=True)
            self.transaction = True
        except Exception:  # older redis-py: "transaction is deprecated in cluster mode"
            self.transaction = False
        self.notes = {
            "insert_one": "INCR, then one MULTI/EXEC ClusterPipeline per object (2 round trips)"
            if self.transaction else
            f"INCR, then one NON-transactional ClusterPipeline per object (redis-py {_version('redis')} "
            "has no transaction=True in cluster mode)",
            "insert_bulk": "INCRBY N, then one plain ClusterPipeline",
        }

    def versions(self) -> dict[str, str]:
        return {"redis-py": _version("redis"), "hiredis": _version("hiredis")}

    def insert_one(self, rows: list[dict[str, str]]) -> list[Any]:
        r, transaction, pks = self.r, self.transaction, []
        for row in rows:
            pk = r.incr(f"{KEY}next")
            pipe = r.pipeline(transaction=transaction)
            queue_save(pipe, pk, row)
            pipe.execute()
            pks.append(pk)
        return pks

    def insert_bulk(self, rows: list[dict[str, str]]) -> list[Any]:
        first = self.r.incrby(f"{KEY}next", len(rows)) - len(rows) + 1
        pks = list(range(first, first + len(rows)))
        pipe = self.r.pipeline(transaction=False)
        for pk, row in zip(pks, rows):
            queue_save(pipe, pk, row)
        pipe.execute()
        return pks

    def _fetch(self, ids: Any) -> list[dict[str, str]]:
        pipe = self.r.pipeline(transaction=False)
        for pk in ids:
            pipe.hgetall(f"{KEY}{pk}")
        return pipe.execute()

    def filter_eq(self, artist: str) -> list[Any]:
        return self._fetch(self.r.smembers(f"{KEY}idx:artist:{artist}"))

    def filter_ne(self, track: str) -> list[Any]:
        return self._fetch(self.r.sdiff([f"{KEY}ids", f"{KEY}idx:track_number:{track}"]))

    def get(self, pk: Any) -> Any:
        return self.r.hgetall(f"{KEY}{pk}")

    def value(self, obj: Any, name: str) -> str:
        return obj[name]

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.r.close()


class ClusterOurs(ClusterStore, Ours):
    """``adapters.Ours`` (its Song model and public API calls) on the default connection
    ``{"host": "127.0.0.1", "port": <a master>, "cluster": True}``."""

    name = OURS

    def __init__(self, masters: list[redis.Redis], port: int) -> None:  # not Ours.__init__: no db on a cluster
        ClusterStore.__init__(self, masters)
        from IndexedRedis import setDefaultRedisConnectionParams

        setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": port, "cluster": True})
        self.Song = song_model("BenchSongs")
        self.notes = {}

    def close(self) -> None:
        from IndexedRedis import clearRedisPools

        try:
            super().close()
        finally:
            clearRedisPools()


# --- rounds ------------------------------------------------------------------------------------
@contextlib.contextmanager
def profiled(op: str, profiler: cProfile.Profile) -> Iterator[None]:
    """While active, the operation ``op`` that ``ops.run_round`` times (through
    ``ops._timed``) runs under ``profiler``; the rounds, the timing, the server CPU and
    the answer checks stay bench/ops.py's own."""
    original = ops._timed

    def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
        name = fn.__name__  # the adapter's method (insert_*) or run_round's closure (filter_*, get_pk)
        if name not in TIMED:
            raise RuntimeError(f"ops.run_round timed {name!r}, not one of {TIMED}: update bench/cluster_run.py")
        if name != op:
            return original(fn, *args)
        return original(lambda *a: profiler.runcall(fn, *a), *args)

    ops._timed = timed
    try:
        yield
    finally:
        ops._timed = original


def one_round(adapter: Any, data: Dataset, profile: tuple[str, cProfile.Profile] | None = None) -> dict[str, Any]:
    """``ops.run_round`` (server CPU per op summed over the masters: ``ClusterStore.server_cpu``)."""
    with profiled(*profile) if profile else contextlib.nullcontext():
        result = run_round(adapter, data)
    missing = [op for op in TIMED if op not in result.get("cpu_us", {})]
    if missing:
        raise RuntimeError(f"no server CPU for {missing}")
    return result


def summarize(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """``report.summarize``: medians, samples, wall / memory / server CPU ratios to the baseline."""
    return report.summarize(rounds)


# --- the report --------------------------------------------------------------------------------
def _cell(op: str, cell: dict[str, Any] | None, ratio: bool) -> str:
    if not cell or cell.get("median") is None:
        return "n/a"
    return report.fmt_value(op, cell["median"]) + (report.fmt_ratio(cell.get("ratio")) if ratio else "")


def _cpu(cell: dict[str, Any] | None, ratio: bool) -> str:
    if not cell or cell.get("cpu_us") is None:
        return "n/a"
    return f"{cell['cpu_us']:,.1f} µs" + (report.fmt_ratio(cell.get("cpu_ratio")) if ratio else "")


def markdown(meta: dict[str, Any], summary: dict[str, dict[str, Any]], notes: dict[str, str],
             errors: dict[str, str]) -> str:
    m, plan, cl = meta["machine"], meta["plan"], meta["cluster"]
    what = {"insert_one": f"{plan['n']:,} saves", "insert_bulk": f"{plan['n']:,} objects, one call",
            "filter_eq": f"{plan['eq_queries']} queries", "filter_ne": f"{plan['ne_queries']} queries",
            "get_pk": f"{plan['gets']} gets", "memory": "after insert_bulk − before"}
    per = {"insert_one": "save", "insert_bulk": "object", "filter_eq": "query", "filter_ne": "query",
           "get_pk": "get"}
    lines = [
        f"# IndexedRedis Redis Cluster benchmark, {meta['date']}",
        "",
        f"- **Machine**: nproc {meta['nproc']} ({m.get('cores')} CPUs), {m.get('ram', '?')} RAM, "
        f"{m.get('cpu', '?')}; {m['os']}",
        f"- **Python** {m['python']}; **Redis Cluster**: redis-server {meta['redis_server']}, {cl['masters']} "
        f"masters, no replicas (private, started for the run: loopback TCP, no persistence; ports "
        f"{', '.join(map(str, cl['ports']))}); the baseline's slot ({cl['baseline_slot']}, tag `{{bl}}`) on "
        f":{cl['baseline_master']}, ours ({cl['ours_slot']}, tag `{{{cl['ours_tag']}}}`) on :{cl['ours_master']}; "
        "FLUSHALL on every master between phases",
        "- **Libraries**: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- **Code under test**: {meta.get('git', '?')}; IndexedRedis/ digest {meta.get('code_digest', '?')}",
        f"- **Workload**: N = {plan['n']:,} songs (../shared/bench/WORKLOAD.md), filter_eq about "
        f"{plan['n'] // ARTISTS} objects per query, filter_ne about {plan['n'] * 11 // 12:,}; each operation "
        "timed as a whole, every answer checked (bench/ops.py)",
        f"- **Baseline**: `redis.cluster.RedisCluster`, hiredis, `decode_responses=True`; "
        f"{notes.get('insert_one', '')}; {notes.get('insert_bulk', '')}",
        "- **Ours**: `setDefaultRedisConnectionParams({\"host\": \"127.0.0.1\", \"port\": <a master>, "
        "\"cluster\": True})`, the public API (`save`, `reset`, `filter(...).all()`, `objects.get`)",
        f"- **Rounds**: {meta['rounds']}, interleaved (baseline, then ours, each round); medians; ratios are "
        "ours / baseline from this run (below 1× = faster / smaller / less server CPU)",
        f"- **Server CPU**: `INFO cpu` ({meta['cpu_source']}) of every master, summed, before and after each "
        "operation, per save / object / query / get",
        f"- **Load average** (1 / 5 / 15 min): {meta['load']['start']} at the start, "
        f"{meta['load']['end']} at the end; run took {meta['elapsed_s']:.0f} s: `{meta['command']}`",
        "",
        "| op | count | RedisCluster baseline | ours (ratio) | target | server CPU: baseline | ours (ratio) |",
        "|---|---|---|---|---|---|---|",
    ]
    base, ours = summary.get(BASELINE, {}).get("ops", {}), summary.get(OURS, {}).get("ops", {})
    for op in OPERATIONS:
        b, o = base.get(op), ours.get(op)
        ratio = (o or {}).get("ratio")
        verdict = "" if ratio is None else (" met" if ratio <= TARGETS[op] else " **missed**")
        cpu_b = f"{_cpu(b, False)} / {per[op]}" if op in per else "—"
        cpu_o = f"{_cpu(o, True)}" if op in per else "—"
        lines.append(f"| {op} | {what[op]} | {_cell(op, b, False)} | {_cell(op, o, True)} | "
                     f"≤ {TARGETS[op]}×{verdict} | {cpu_b} | {cpu_o} |")
    lines += ["", "Targets (the standalone benchmark's, from our issue): " + ", ".join(
        f"{op} ≤ {t}×" for op, t in TARGETS.items()) + " the baseline."]
    for name, err in errors.items():
        lines.append(f"- **FAILED** {name}: {err}")
    return "\n".join(lines) + "\n"


def print_profile(profiler: cProfile.Profile, path: str, top: int = 10) -> None:
    profiler.dump_stats(path)
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).strip_dirs().sort_stats(key).print_stats(top)
        log(f"--- top {top} by {key} ---\n" + buf.getvalue().split("\n\n", 2)[-1].rstrip())
    log(f"profile written: {path}")


# --- main --------------------------------------------------------------------------------------
def run(args: argparse.Namespace, argv: list[str]) -> int:
    plan = Plan(n=args.n)
    data = Dataset(plan)
    rounds = 1 if args.profile else args.rounds
    started = time.perf_counter()
    load_start = report.load_average()
    git, digest = report.git_state(ROOT), code_digest()
    LocalCluster = local_cluster_class()
    log(f"starting a private {MASTERS}-master Redis Cluster ...")
    with LocalCluster(masters=MASTERS) as cluster:  # stopped on the way out, whatever happens
        ports = cluster.master_ports()
        masters = [cluster.admin(port) for port in ports]
        redis_version = masters[0].info("server")["redis_version"]
        cpu_source = server_cpu(masters[0])[1]
        log(f"cluster up: redis-server {redis_version}, masters on {', '.join(map(str, ports))}; "
            f"N={plan.n:,}, {rounds} round(s); IndexedRedis/ digest {digest}"
            + (f"; profiling ours on {args.profile}" if args.profile else ""))
        impls: list[Any] = []
        errors: dict[str, str] = {}
        results: dict[str, list[dict[str, Any]]] = {}
        try:
            if not args.profile:
                impls.append(ClusterBaseline(masters, ports[0]))
            impls.append(ClusterOurs(masters, ports[0]))
            ours = impls[-1]
            tag = ours.Song._meta.keys.hash_tag
            slots = {"baseline_slot": key_slot(b"{bl}"), "ours_slot": key_slot(("{" + tag + "}").encode()),
                     "ours_tag": tag}
            placement = {"baseline_master": cluster.owner(slots["baseline_slot"]),
                         "ours_master": cluster.owner(slots["ours_slot"])}
            results = {i.name: [] for i in impls}
            for rnd in range(1, rounds + 1):
                for impl in impls:
                    if impl.name in errors:
                        continue
                    profiler = cProfile.Profile() if args.profile else None
                    t0 = time.perf_counter()
                    try:
                        result = one_round(impl, data, (args.profile, profiler) if profiler else None)
                    except Exception as exc:
                        traceback.print_exc()
                        errors[impl.name] = f"{type(exc).__name__}: {exc}"[:300]
                        log(f"[round {rnd}/{rounds}] {impl.name}: FAILED {errors[impl.name]}")
                        continue
                    results[impl.name].append(result)
                    log(f"[round {rnd}/{rounds}] {impl.name} ({time.perf_counter() - t0:.0f} s): {brief(result)}; "
                        "server CPU " + ", ".join(f"{op} {result['cpu_us'][op]:,.1f} µs" for op in TIMED))
                    if profiler:
                        os.makedirs(args.out, exist_ok=True)
                        print_profile(profiler, os.path.join(args.out, f"cluster_{args.profile}.prof"))
            notes = impls[0].notes
        finally:
            for impl in impls:
                try:
                    impl.close()
                except Exception as exc:
                    log(f"warning: closing {impl.name}: {exc}")
    if args.profile:
        return 1 if errors else 0

    summary = summarize({k: v for k, v in results.items() if v})
    meta = report.side_meta(
        git=git, digest=digest, redis_server=redis_version, plan=plan, rounds=rounds, cpu_source=cpu_source,
        versions={"redis-py": _version("redis"), "hiredis": _version("hiredis"),
                  "indexedredis (ours)": _version("indexedredis")},
        targets=TARGETS, started=started, load_start=load_start,
        command=report.command(ROOT, "bench.cluster_run", argv),
        cluster={"masters": MASTERS, "ports": ports, **slots, **placement},
        baseline_transaction=impls[0].transaction)
    md_text = markdown(meta, summary, notes, errors)
    paths = report.write_side(args.out, "cluster", md_text, {"meta": meta, "summary": summary, "rounds_raw": results,
                                                             "errors": errors, "notes": notes})
    print()
    print(md_text)
    log("written: " + ", ".join(paths))
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = report.side_parser(__doc__, "cluster", TIMED, os.path.join(BENCH, "results"))
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1:
        parser.error("--n and --rounds must be at least 1")
    # a SIGTERM unwinds like Ctrl-C, so the cluster's servers are stopped and their dirs removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return run(args, argv)


if __name__ == "__main__":
    sys.exit(main())
