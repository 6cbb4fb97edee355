"""The seed's figures, measured on the example web app: the same pages served from SQL
(SQLite, PostgreSQL, MariaDB) and from IndexedRedis fed by refresh jobs, under a
bounded async HTTP load loop; and a refresh job of many rows from PostgreSQL (rows/s,
peak client memory as the rows grow).

    bench/.venv/bin/python -m bench.webapp_run                 # 1M orders, all three databases
    bench/.venv/bin/python -m bench.webapp_run --rows 100000 --dbs sqlite --seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from .report import command, git_state, load_average, machine, now

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
PREFIX = "irbench_web_"
PAGES = ("category", "product", "report")
TARGETS = {"category": 6.0, "product": 6.0, "report": 100.0}
TARGET_EVERYWHERE = {"report"}
# --sql-access async: the SQL pages on SQLAlchemy's AsyncEngine (SQLite has no async driver installed here)
ASYNC_DRIVERS = {"mysql+pymysql": "mysql+asyncmy", "postgresql+psycopg": "postgresql+psycopg"}
SQL_ACCESS = {"thread": "on a sync Engine in the thread pool",
              "async": "on an AsyncEngine (asyncmy, psycopg async; SQLite sync)"}


# ---- the server (a subprocess: the load loop must not share its CPU time slice) ------

def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from IndexedRedis.connection import params_from_url, setDefaultRedisConnectionParams
    from IndexedRedis.examples.webapp.app import create_app, make_async_engine, make_engine
    from IndexedRedis.examples.webapp.schema import Shop

    setDefaultRedisConnectionParams(params_from_url(args.redis))
    engine = make_async_engine(ASYNC_DRIVERS[args.sql.split("://")[0]] + "://" + args.sql.split("://", 1)[1]) \
        if args.sql_access == "async" else make_engine(args.sql)
    uvicorn.run(create_app(engine, Shop.define(args.prefix)), host="127.0.0.1", port=args.port,
                log_level="warning", access_log=False)


def server_description() -> str:
    """uvicorn picks uvloop and httptools when they are installed (``uvicorn[standard]``)."""
    import importlib.util
    from importlib.metadata import version

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"uvicorn {version('uvicorn')} ({loop}, {http})"


# ---- the load loop --------------------------------------------------------------------

def _paths(page: str, backend: str, n: int) -> list[str]:
    from IndexedRedis.examples.webapp.schema import CATEGORIES

    if page == "category":
        return [f"/{backend}/category/{CATEGORIES[i % len(CATEGORIES)]}" for i in range(n)]
    if page == "product":
        return [f"/{backend}/product/{(i * 7919) % 2000 + 1}" for i in range(n)]
    return [f"/{backend}/report"] * n


async def _load(base: str, paths: list[str], concurrency: int, seconds: float) -> dict[str, float]:
    import httpx

    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    cursor = iter(range(len(paths)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=600) as client:
        async def worker() -> None:
            for index in cursor:
                if time.perf_counter() > deadline and latencies:
                    return
                started = time.perf_counter()
                reply = await client.get(paths[index])
                reply.raise_for_status()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return {"requests": len(latencies), "rps": len(latencies) / elapsed, "p50_ms": pct(0.50) * 1000,
            "p99_ms": pct(0.99) * 1000}


def _wrk_time(text: str) -> float:
    value, unit = float(text[:-2] if text.endswith(("us", "ms")) else text[:-1]), text.lstrip("0123456789.")
    return value * {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _wrk(base: str, paths: list[str], concurrency: int, seconds: float) -> dict[str, float]:
    """Debian's wrk (C, one thread): it costs the server far less CPU than a Python client."""
    import re

    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write("paths = {" + ",".join(json.dumps(p) for p in paths[:5000]) + "}\n"
                 "i = 0\nrequest = function()\n  i = i + 1\n"
                 "  return wrk.format('GET', paths[(i % #paths) + 1])\nend\n")
    try:
        out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency",
                              "--timeout", "120s", "-s", fh.name, base], check=True, capture_output=True,
                             text=True).stdout
    finally:
        os.unlink(fh.name)
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw failed requests:\n{out}")
    latency = dict(re.findall(r"^\s*(50|99)(?:\.0+)?%\s+(\S+)\s*$", out, re.M))
    if "50" not in latency or "99" not in latency:
        raise RuntimeError(f"cannot read wrk's latency distribution:\n{out}")
    total = re.search(r"(\d+) requests in", out)
    return {"requests": int(total[1]) if total else 0, "rps": float(re.search(r"Requests/sec:\s+(\S+)", out)[1]),
            "p50_ms": _wrk_time(latency["50"]), "p99_ms": _wrk_time(latency["99"])}


def _wait_http(base: str, child: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError("the app server exited")
        try:
            httpx.get(base + "/", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the app server did not answer")


def bench_db(name: str, url: str, args: argparse.Namespace, redis_url: str) -> dict[str, Any]:
    from IndexedRedis.embedded import free_port
    from IndexedRedis.examples.webapp.app import make_engine
    from IndexedRedis.examples.webapp.jobs import make_jobs
    from IndexedRedis.examples.webapp.schema import Shop, generate

    engine, shop = make_engine(url), Shop.define(PREFIX)
    started = time.perf_counter()
    generate(engine, shop, args.rows)
    generated = time.perf_counter() - started
    jobs = {job.name: job.run(force=True) for job in make_jobs(engine, shop)}
    port = free_port()
    access = "async" if args.sql_access == "async" and name != "sqlite" else "thread"
    child = subprocess.Popen([sys.executable, "-m", "bench.webapp_run", "serve", "--sql", url, "--prefix", PREFIX,
                              "--redis", redis_url, "--port", str(port), "--sql-access", access], cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    results: dict[str, Any] = {"generate_s": generated, "sql_access": access,
                               "refresh": {k: {"rows": v.rows, "seconds": v.duration} for k, v in jobs.items()}}
    try:
        _wait_http(base, child)
        for run in range(args.runs):
            for page in PAGES:
                for backend in ("sql", "redis"):
                    expensive = page == "report" and backend == "sql"
                    seconds = args.seconds * (2 if expensive else 1)
                    concurrency = 2 if expensive else args.concurrency
                    asyncio.run(_load(base, _paths(page, backend, 20), 2, 0.5))  # warm-up
                    if args.client == "wrk" and not expensive:  # seconds per request: a Python loop is as good
                        figures = _wrk(base, _paths(page, backend, 5000), concurrency, seconds)
                    else:
                        figures = asyncio.run(_load(base, _paths(page, backend, 10**6), concurrency, seconds))
                    results.setdefault(f"{page}/{backend}", {"runs": []})["runs"].append(figures)
                    print(f"  {name:10} run {run + 1} {page:8} {backend:5} {figures['rps']:9.1f} req/s  "
                          f"p50 {figures['p50_ms']:8.2f} ms  p99 {figures['p99_ms']:8.2f} ms  "
                          f"({figures['requests']} requests)", flush=True)
        for page in PAGES:
            for backend in ("sql", "redis"):
                entry = results[f"{page}/{backend}"]
                for figure in ("rps", "p50_ms", "p99_ms"):
                    entry[figure] = statistics.median(run[figure] for run in entry["runs"])
            # the ratio of each run (its two loads are minutes apart at most), then their median
            ratios = [red["rps"] / sql["rps"] for sql, red in zip(results[f"{page}/sql"]["runs"],
                                                                   results[f"{page}/redis"]["runs"])]
            results[f"{page}/ratios"] = ratios
    finally:
        child.terminate()
        child.wait(30)
        if name != "sqlite":
            shop.metadata.drop_all(engine)
        engine.dispose()
    return results


# ---- refresh job memory: one child process per size ---------------------------------

def refresh_child(args: argparse.Namespace) -> None:
    from sqlalchemy import create_engine, select

    from IndexedRedis import IndexedRedisModel, IRField
    from IndexedRedis.connection import params_from_url, setDefaultRedisConnectionParams
    from IndexedRedis.examples.webapp.schema import Shop
    from IndexedRedis.refresh import RefreshJob

    class OrderLine(IndexedRedisModel):
        FIELDS = [IRField("id", valueType=int), IRField("product_id", valueType=int),
                  IRField("customer_id", valueType=int), IRField("quantity", valueType=int),
                  IRField("day", valueType=int)]
        INDEXED_FIELDS = ["product_id", "customer_id"]
        KEY_NAME = "BenchOrderLine"

    setDefaultRedisConnectionParams(params_from_url(args.redis))
    engine = create_engine(args.sql)
    orders = Shop.define(args.prefix).orders
    job = RefreshJob(OrderLine, select(orders).order_by(orders.c.id).limit(args.limit), engine=engine,
                     name="orders", yield_per=2000, batch_size=500)
    OrderLine.objects.count()
    with engine.connect():
        pass
    with open("/proc/self/statm") as fh:
        base_rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    result = job.run(force=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"rows": result.rows, "seconds": result.duration, "rows_per_s": result.rows / result.duration,
                      "base_rss_mb": base_rss / 2**20, "peak_rss_mb": peak / 2**20,
                      "growth_mb": (peak - base_rss) / 2**20}))


def bench_refresh(args: argparse.Namespace, redis_url: str) -> list[dict[str, Any]]:
    rows = []
    for limit in args.refresh_sizes:
        out = subprocess.run([sys.executable, "-m", "bench.webapp_run", "refresh-child", "--sql", PG_URL,
                              "--prefix", PREFIX, "--redis", redis_url, "--limit", str(limit)],
                             cwd=ROOT, check=True, capture_output=True, text=True).stdout
        figures = json.loads(out.strip().splitlines()[-1])
        rows.append(figures)
        print(f"  refresh {figures['rows']:>9,} rows from PostgreSQL: {figures['rows_per_s']:9.0f} rows/s, "
              f"peak RSS {figures['peak_rss_mb']:.1f} MiB (+{figures['growth_mb']:.1f} MiB over the start)", flush=True)
    return rows


# ---- the report ---------------------------------------------------------------------

def target_cell(db: str, page: str) -> str:
    """The seed's 6x is against MySQL (MariaDB here); the precomputed page's 100x holds
    against every database."""
    if page in TARGET_EVERYWHERE or db == "mariadb":
        return f"≥{TARGETS[page]:g}×"
    return "—"


def markdown(meta: dict[str, Any], dbs: dict[str, dict[str, Any]], refresh: list[dict[str, Any]]) -> str:
    lines = [f"# Web app: SQL vs IndexedRedis ({meta['date']})", "",
             f"{meta['rows']:,} orders; load from {meta['client']}, {meta['concurrency']} concurrent connections "
             f"(2 for the SQL report), "
             f"{meta['seconds']} s per page, {meta['runs']} runs (medians; throughput × is the median of the "
             f"runs' ratios, their range in brackets); one {meta['server']} worker; "
             f"SQL queries {SQL_ACCESS[meta.get('sql_access', 'thread')]}; commit {meta['git']}; "
             f"load {meta['load']['start']} -> {meta['load']['end']}.", "",
             "| database | page | SQL req/s | SQL p50 / p99 ms | IndexedRedis req/s | IR p50 / p99 ms | "
             "throughput × | p50 × | target |", "|---|---|---|---|---|---|---|---|---|"]
    for name, res in dbs.items():
        for page in PAGES:
            sql, red, ratios = res[f"{page}/sql"], res[f"{page}/redis"], res[f"{page}/ratios"]
            spread = f" ({min(ratios):.1f}-{max(ratios):.1f})" if len(ratios) > 1 else ""
            lines.append(f"| {name} | {page} | {sql['rps']:.1f} | {sql['p50_ms']:.2f} / {sql['p99_ms']:.2f} | "
                         f"{red['rps']:.1f} | {red['p50_ms']:.2f} / {red['p99_ms']:.2f} | "
                         f"{statistics.median(ratios):.1f}×{spread} | {sql['p50_ms'] / red['p50_ms']:.1f}× | "
                         f"{target_cell(name, page)} |")
    lines += ["", "Each run (req/s, SQL → IndexedRedis):", "", "| database | page | " +
              " | ".join(f"run {i + 1}" for i in range(meta["runs"])) + " |", "|---|---|" + "---|" * meta["runs"]]
    for name, res in dbs.items():
        for page in PAGES:
            cells = [f"{sql['rps']:.1f} → {red['rps']:.1f} ({red['rps'] / sql['rps']:.1f}×)"
                     for sql, red in zip(res[f"{page}/sql"]["runs"], res[f"{page}/redis"]["runs"])]
            lines.append(f"| {name} | {page} | " + " | ".join(cells) + " |")
    if "mariadb" in dbs:
        maria = dbs["mariadb"]
        lines += ["", "Against the MariaDB-backed pages (the seed's Flask+MySQL case): "
                  + ", ".join(f"{page} {statistics.median(maria[f'{page}/ratios']):.1f}×" for page in PAGES)
                  + " the throughput (medians of the runs' ratios)."]
    if refresh:
        lines += ["", "Refresh job, orders from PostgreSQL into IndexedRedis (full mode, one process per size):", "",
                  "| rows | seconds | rows/s | peak RSS MiB | growth over start MiB |", "|---|---|---|---|---|"]
        for r in refresh:
            lines.append(f"| {r['rows']:,} | {r['seconds']:.1f} | {r['rows_per_s']:,.0f} | {r['peak_rss_mb']:.1f} | "
                         f"{r['growth_mb']:.1f} |")
    return "\n".join(lines) + "\n"


def chart(dbs: dict[str, dict[str, Any]], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.2))
    names = list(dbs)
    width = 0.25
    for offset, page in enumerate(PAGES):
        ratios = [statistics.median(dbs[n][f"{page}/ratios"]) for n in names]
        bars = ax.bar([i + (offset - 1) * width for i in range(len(names))], ratios, width, label=page)
        ax.bar_label(bars, [f"{r:.0f}×" if r >= 10 else f"{r:.1f}×" for r in ratios], fontsize=8)
    ax.axhline(6, color="grey", linestyle="--", linewidth=0.8)
    ax.axhline(100, color="grey", linestyle=":", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("IndexedRedis throughput ÷ SQL (log)")
    ax.set_title(title, fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "serve", "refresh-child"])
    parser.add_argument("--rows", type=int, default=1_000_000, help="orders to generate (default 1,000,000)")
    parser.add_argument("--dbs", default="sqlite,postgresql,mariadb")
    parser.add_argument("--seconds", type=float, default=5.0, help="per page and back end (SQL report: twice)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3, help="rounds of page loads on the same data (default 3)")
    parser.add_argument("--refresh-sizes", type=lambda s: [int(x) for x in s.split(",")],
                        default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--skip-refresh", action="store_true")
    parser.add_argument("--client", choices=["wrk", "httpx"], default="wrk" if shutil.which("wrk") else "httpx",
                        help="load generator: Debian's wrk (default when installed) or a bounded httpx loop")
    parser.add_argument("--sql-access", choices=["thread", "async"], default="thread",
                        help="SQL pages: a sync Engine in the thread pool (default) or an AsyncEngine (asyncmy, "
                             "psycopg's async mode; SQLite stays sync)")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    parser.add_argument("--sql", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode == "serve":
        serve(args)
        return 0
    if args.mode == "refresh-child":
        refresh_child(args)
        return 0

    from IndexedRedis.embedded import EmbeddedRedis, free_port

    load_start = load_average()
    server = EmbeddedRedis(port=free_port(), unix_socket=False)
    server.start()
    redis_url = f"redis://127.0.0.1:{server.port}/0"
    from IndexedRedis.connection import params_from_url, setDefaultRedisConnectionParams

    setDefaultRedisConnectionParams(params_from_url(redis_url))
    tmp = tempfile.mkdtemp(prefix="ir-bench-web-")
    urls = {"sqlite": f"sqlite:///{tmp}/shop.db", "postgresql": PG_URL, "mariadb": MYSQL_URL}
    dbs: dict[str, dict[str, Any]] = {}
    refresh: list[dict[str, Any]] = []
    try:
        for name in args.dbs.split(","):
            print(f"== {name}", flush=True)
            dbs[name] = bench_db(name, urls[name], args, redis_url)
            if name == "postgresql" and not args.skip_refresh:
                print("== refresh job memory (PostgreSQL)", flush=True)
                from IndexedRedis.examples.webapp.app import make_engine
                from IndexedRedis.examples.webapp.schema import Shop, generate

                engine, shop = make_engine(PG_URL), Shop.define(PREFIX)
                generate(engine, shop, max(args.refresh_sizes))
                try:
                    refresh = bench_refresh(args, redis_url)
                finally:
                    shop.metadata.drop_all(engine)
                    engine.dispose()
    finally:
        server.stop()
    meta = {"date": now(), "machine": machine(), "git": git_state(ROOT), "rows": args.rows,
            "concurrency": args.concurrency, "client": args.client, "seconds": args.seconds, "runs": args.runs,
            "server": server_description(), "sql_access": args.sql_access,
            "load": {"start": load_start, "end": load_average()},
            "command": command(ROOT, "bench.webapp_run", sys.argv[1:] if argv is None else argv)}
    os.makedirs(args.out, exist_ok=True)
    text = markdown(meta, dbs, refresh)
    with open(os.path.join(args.out, "webapp_latest.md"), "w") as fh:
        fh.write(text)
    with open(os.path.join(args.out, "webapp_latest.json"), "w") as fh:
        json.dump({"meta": meta, "dbs": dbs, "refresh": refresh,
                   "medians": {n: {p: statistics.median(r[f"{p}/ratios"]) for p in PAGES} for n, r in dbs.items()}},
                  fh, indent=2, default=str)
    chart(dbs, os.path.join(args.out, "webapp_latest.png"), f"Web app pages, IndexedRedis vs SQL, {args.rows:,} "
          f"orders ({meta['date']})")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
