"""``indexedredis webdemo``: generate the shop's data into SQLite, start an embedded
Redis, run the refresh jobs, and serve the app."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

__all__ = ["add_webdemo_command", "prepare"]


def prepare(db_url: str, rows: int, console: Any = None) -> tuple[Any, Any]:
    """Generate the data (unless ``rows`` is 0) and run the refresh jobs; returns
    (engine, shop)."""
    from .app import make_engine
    from .jobs import make_jobs
    from .schema import Shop, generate

    engine, shop = make_engine(db_url), Shop.define()
    if rows:
        started = time.monotonic()
        last = [0.0]

        def progress(done: int, total: int) -> None:
            if console is not None and (time.monotonic() - last[0] > 1 or done == total):
                last[0] = time.monotonic()
                console.print(f"  {done:,} / {total:,} orders")

        generate(engine, shop, rows, progress=progress)
        if console is not None:
            console.print(f"generated {rows:,} orders in {time.monotonic() - started:.1f}s")
    for job in make_jobs(engine, shop):
        result = job.run()
        if console is not None:
            console.print(f"refresh {job.name}: {result.status}, {result.rows} rows in {result.duration:.2f}s")
    return engine, shop


def webdemo(args: argparse.Namespace) -> int:
    try:
        import uvicorn
        from rich.console import Console
    except ImportError:
        raise SystemExit("indexedredis webdemo needs the web app's packages: pip install 'indexedredis[webapp]'") \
            from None
    from ...connection import useEmbeddedRedis
    from .app import create_app

    console = Console(stderr=True)
    server = useEmbeddedRedis()
    console.print(f"embedded redis-server at {server.url}")
    path = args.db or os.path.join(tempfile.mkdtemp(prefix="ir-webdemo-"), "shop.db")
    exists = os.path.exists(path) and args.db is not None and args.keep_data
    engine, shop = prepare(f"sqlite:///{path}", 0 if exists else args.rows, console)
    console.print(f"SQLite database: {path}")
    console.print(f"[bold green]open http://{args.host}:{args.port}/[/]  (Ctrl-C stops)")
    uvicorn.run(create_app(engine, shop), host=args.host, port=args.port, log_level="warning")
    return 0


def add_webdemo_command(commands: Any) -> None:
    parser = commands.add_parser(
        "webdemo", help="generate a shop's data, start an embedded Redis and serve the example web app",
        description="Serve the same pages from SQLite and from IndexedRedis (fed by refresh jobs) side by "
                    "side; the sales report aggregates every order.")
    parser.add_argument("--rows", type=int, default=1_000_000, help="orders to generate (default 1,000,000)")
    parser.add_argument("--db", help="SQLite file to use (default: a new one in a temporary directory)")
    parser.add_argument("--keep-data", action="store_true", help="with --db: use the data already there")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.set_defaults(handler=webdemo)
