"""The benchmark suite: the standard workload (../shared/bench/WORKLOAD.md) against the
redis-py baseline, IndexedRedis (ours), IndexedRedis 6.0.3, rom, walrus and SQLAlchemy 2
on SQLite / PostgreSQL / MariaDB, in interleaved rounds; then the reset stall and the
scale curve.  Results: bench/results/latest.{md,json,png}.

    bench/.venv/bin/python -m bench.run [--quick] [--n N] [--rounds R] [--only name,...]
                                        [--skip-sql] [--skip-stall] [--skip-scale] [--out DIR]

Set the environments up first with ``bash bench/setup.sh``.  Every Redis figure comes
from a private redis-server started for the run (never a shared one).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from typing import Any

from . import report
from .ops import OPERATIONS, Dataset, Plan, run_round

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
IR6_PYTHON = os.path.join(BENCH, ".venv-ir6", "bin", "python")
IR6_DRIVER = os.path.join(BENCH, "ir6_driver.py")

# implementation key -> (display name, Redis db of the private server or None)
IMPLEMENTATIONS = {
    "baseline": ("redis-py baseline", 1),
    "ours": ("IndexedRedis (ours)", 2),
    "ir6": ("IndexedRedis 6.0.3", 3),
    "rom": ("rom", 4),
    "walrus": ("walrus", 5),
    "sqlite": ("SQLAlchemy + SQLite", None),
    "postgresql": ("SQLAlchemy + PostgreSQL", None),
    "mariadb": ("SQLAlchemy + MariaDB", None),
}
SQL_KEYS = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mariadb": "MariaDB"}
STALL_DBS = {"ours": 10, "ir6": 11}
SCALE_DB = 12


def log(msg: str) -> None:
    print(msg, flush=True)


class InProcess:
    """An adapter of bench/adapters.py, run in this process."""

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter
        self.name = adapter.name
        self.notes = dict(adapter.notes)

    def versions(self) -> dict[str, str]:
        return self.adapter.versions()

    def run(self, data: Dataset) -> dict[str, Any]:
        return run_round(self.adapter, data)

    def close(self) -> None:
        self.adapter.close()


class IR6Subprocess:
    """IndexedRedis 6.0.3: one subprocess (bench/.venv-ir6's Python) per round."""

    name = "IndexedRedis 6.0.3"
    notes: dict[str, str] = {}

    def __init__(self, params: dict[str, Any], db: int) -> None:
        if not os.path.exists(IR6_PYTHON):
            raise RuntimeError(f"{IR6_PYTHON} is missing: run bash bench/setup.sh")
        self.args = ["--host", params["host"], "--port", str(params["port"]), "--db", str(db)]
        self._versions = self._call(["versions"], timeout=60)["versions"]

    def _call(self, args: list[str], timeout: float) -> dict[str, Any]:
        proc = subprocess.run([IR6_PYTHON, "-I", IR6_DRIVER, *args, *self.args], capture_output=True,
                              text=True, timeout=timeout, cwd=BENCH)
        if proc.returncode != 0:
            raise RuntimeError(f"ir6_driver {args[0]} failed ({proc.returncode}): "
                               f"{proc.stderr.strip()[-2000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def versions(self) -> dict[str, str]:
        return self._versions

    def run(self, data: Dataset) -> dict[str, Any]:
        return self._call(["round", "--plan", json.dumps(data.plan.to_json())], timeout=1800)["result"]

    def stall(self, n: int) -> dict[str, Any]:
        return self._call(["stall", "--n", str(n)], timeout=1800)["result"]

    def close(self) -> None:
        pass


def build(keys: list[str], params: dict[str, Any], skipped: list[str]) -> list[Any]:
    from . import adapters

    runners: list[Any] = []
    urls = adapters.sql_urls()
    for key in keys:
        name, db_or_none = IMPLEMENTATIONS[key]
        db = db_or_none or 0
        try:
            if key == "baseline":
                runners.append(InProcess(adapters.Baseline(params, db)))
            elif key == "ours":
                runners.append(InProcess(adapters.Ours(params, db)))
            elif key == "ir6":
                runners.append(IR6Subprocess(params, db))
            elif key == "rom":
                runners.append(InProcess(adapters.Rom(params, db)))
            elif key == "walrus":
                runners.append(InProcess(adapters.Walrus(params, db)))
            else:
                kind = SQL_KEYS[key]
                runners.append(InProcess(adapters.Sql(kind, urls[kind])))
        except Exception as exc:  # an absent database, a missing venv
            first_line = (str(exc).strip().splitlines() or [""])[0]
            reason = f"{name}: {type(exc).__name__}: {first_line}"
            log(f"NOTICE: skipping {reason}")
            skipped.append(reason)
    return runners


def brief(result: dict[str, Any]) -> str:
    parts = []
    for op in OPERATIONS:
        v = result.get(op)
        parts.append(f"{op} {report.fmt_value(op, v)}")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="N=2,000, 100/10/100 queries, 2 rounds, stall on 20,000, scale at 10k and 100k")
    parser.add_argument("--n", type=int,
                        help="objects in the standard workload (default 20,000; quick 2,000)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 2)")
    parser.add_argument("--only", help="implementations, comma-separated, of: " + ",".join(IMPLEMENTATIONS)
                        + " (the baseline always runs: every figure is a ratio to it)")
    parser.add_argument("--skip-sql", action="store_true", help="leave out the SQLAlchemy peers")
    parser.add_argument("--skip-stall", action="store_true", help="leave out the reset stall")
    parser.add_argument("--skip-scale", action="store_true", help="leave out the scale curve")
    parser.add_argument("--stall-n", type=int,
                        help="objects for the reset stall (default 100,000; quick 20,000)")
    parser.add_argument("--scale-sizes", type=int, nargs="+",
                        help="sizes of the scale curve (default 10k 100k 1M; quick 10k 100k)")
    parser.add_argument("--out", default=os.path.join(BENCH, "results"),
                        help="output directory (default bench/results)")
    args = parser.parse_args(argv)

    if args.quick:
        plan = Plan(n=args.n or 2_000, eq_queries=100, ne_queries=10, gets=100)
        rounds = args.rounds or 2
        stall_n = args.stall_n or 20_000
        sizes = args.scale_sizes or [10_000, 100_000]
        scale_queries = 100
    else:
        plan = Plan(n=args.n or 20_000)
        rounds = args.rounds or 3
        stall_n = args.stall_n or 100_000
        sizes = args.scale_sizes or [10_000, 100_000, 1_000_000]
        scale_queries = 300

    keys = list(IMPLEMENTATIONS)
    if args.only:
        wanted = [k.strip().lower() for k in args.only.split(",") if k.strip()]
        unknown = [k for k in wanted if k not in IMPLEMENTATIONS]
        if unknown:
            parser.error(f"unknown implementation(s) {unknown}; choose from {', '.join(IMPLEMENTATIONS)}")
        keys = [k for k in IMPLEMENTATIONS if k in wanted or k == "baseline"]
    skipped: list[str] = []
    if args.skip_sql:
        keys = [k for k in keys if k not in SQL_KEYS]
        skipped.append("the SQL peers (--skip-sql)")

    from IndexedRedis.embedded import EmbeddedRedis, free_port

    started = time.perf_counter()
    load_start = report.load_average()
    git = report.git_state(ROOT)  # at the start: the editable package is imported from the tree now
    with EmbeddedRedis(port=free_port(), unix_socket=False) as server:
        params = {"host": "127.0.0.1", "port": server.port}
        log(f"private redis-server {server.version} on 127.0.0.1:{server.port}; "
            f"N={plan.n:,}, {rounds} rounds")
        data = Dataset(plan)
        runners = build(keys, params, skipped)
        versions: dict[str, str] = {}
        notes: dict[str, dict[str, str]] = {}
        for r in runners:
            versions.update(r.versions())
            if r.notes:
                notes[r.name] = r.notes
        results: dict[str, list[dict[str, Any]]] = {r.name: [] for r in runners}
        errors: dict[str, str] = {}

        for rnd in range(1, rounds + 1):
            for runner in runners:
                if runner.name in errors:
                    continue
                t0 = time.perf_counter()
                try:
                    result = runner.run(data)
                except Exception as exc:
                    traceback.print_exc()
                    errors[runner.name] = f"{type(exc).__name__}: {exc}"[:300]
                    log(f"[round {rnd}/{rounds}] {runner.name}: FAILED {errors[runner.name]}")
                    continue
                results[runner.name].append(result)
                took = time.perf_counter() - t0
                log(f"[round {rnd}/{rounds}] {runner.name} ({took:.0f} s): {brief(result)}")
        for runner in runners:
            try:
                runner.close()
            except Exception as exc:
                log(f"warning: closing {runner.name}: {exc}")

        stall: list[dict[str, Any]] | None = None
        if not args.skip_stall:
            stall = []
            stall_targets = [k for k in ("ours", "ir6") if k in keys]
            for key in stall_targets:
                name = IMPLEMENTATIONS[key][0]
                log(f"reset stall: {name}, {stall_n:,} objects ...")
                try:
                    if key == "ours":
                        from . import stall as stall_mod

                        row = stall_mod.measure({**params, "db": STALL_DBS[key]}, stall_n)
                    else:
                        ir6 = next((r for r in runners if isinstance(r, IR6Subprocess)), None)
                        if ir6 is None:
                            raise RuntimeError("IndexedRedis 6.0.3 is not available")
                        ir6.args[-1] = str(STALL_DBS[key])
                        row = ir6.stall(stall_n)
                    stall.append({"name": name, **row})
                    log(f"  reset {row['reset_s']:.2f} s, p50 {row['p50_ms']:.2f} ms, "
                        f"p99 {row['p99_ms']:.2f} ms, max {row['max_ms']:.2f} ms")
                except Exception as exc:
                    traceback.print_exc()
                    stall.append({"name": name, "n": stall_n, "error": f"{type(exc).__name__}: {exc}"[:300]})

        scale: list[dict[str, Any]] | None = None
        if not args.skip_scale and "ours" in keys:
            from IndexedRedis import setDefaultRedisConnectionParams

            from . import scale as scale_mod

            setDefaultRedisConnectionParams({**params, "db": SCALE_DB})
            scale = []
            for n in sizes:
                log(f"scale curve: {n:,} objects ...")
                try:
                    row = scale_mod.measure(n, scale_queries, max(1, n // 100))
                    scale.append(row)
                    log(f"  reset {row['reset_s']:.1f} s, filter(artist=x) {row['eq_ms']:.3f} ms, "
                        f"with track_number__gte {row['eq_gte_ms']:.3f} ms")
                except Exception as exc:
                    traceback.print_exc()
                    scale.append({"n": n, "error": f"{type(exc).__name__}: {exc}"[:300]})
        redis_version = server.version

    summary = report.summarize({k: v for k, v in results.items() if v})
    if report.BASELINE not in summary:
        log("WARNING: the baseline produced no result; ratios are missing")
    meta = {
        "date": report.now(),
        "mode": "quick" if args.quick else "full",
        "machine": report.machine(),
        "git": git,
        "redis_server": redis_version,
        "versions": versions,
        "plan": plan.to_json(),
        "rounds": rounds,
        "elapsed_s": time.perf_counter() - started,
        "load": {"start": load_start, "end": report.load_average()},
        "command": report.command(ROOT, "bench.run", argv if argv is not None else sys.argv[1:]),
    }
    md_text = report.markdown(meta, summary, notes, errors, stall, scale, skipped)
    paths = report.write(args.out, meta, summary, md_text,
                         {"rounds_raw": results, "errors": errors, "stall": stall, "scale": scale,
                          "notes": notes, "skipped": skipped})
    print()
    print(md_text)
    log("written: " + ", ".join(paths.values()))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
