"""``indexedredis refresh module:job [--every SECONDS] [--once] [--status]``."""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

__all__ = ["add_refresh_command", "load_jobs"]


def load_jobs(spec: str) -> list[Any]:
    """``package.module:name`` -> the RefreshJob (or list of jobs) it names."""
    from ..specs import resolve
    from .job import RefreshJob

    found = resolve(spec, "indexedredis refresh", "job", "myapp.jobs:products")
    jobs = list(found) if isinstance(found, (list, tuple)) else [found]
    if not jobs or not all(isinstance(job, RefreshJob) for job in jobs):
        raise SystemExit(f"indexedredis refresh: {spec} is not a RefreshJob (or a list of them), "
                         f"it is {type(found).__name__}")
    return jobs


def _show_status(jobs: list[Any], console: Any) -> None:
    from rich.table import Table

    from .status import format_status, refresh_status

    for job in jobs:
        table = Table(title=f"refresh job {job.name}", show_header=False)
        for label, text in format_status(refresh_status(job.model)):
            table.add_row(label, text)
        console.print(table)


def _run_all(jobs: list[Any], console: Any, force: bool) -> bool:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .job import RefreshError

    ok = True
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TextColumn("{task.completed} rows"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        for job in jobs:
            task = bar.add_task(f"refresh {job.name}", total=None)
            try:
                result = job.run(progress=lambda done, task=task: bar.update(task, completed=done), force=force)
            except RefreshError as exc:
                console.print(f"[red]{exc}")
                ok = False
                continue
            finally:
                bar.remove_task(task)
            console.print(f"{job.name}: {result.status}, {result.rows} rows, {result.changed} changed, "
                          f"{result.duration:.2f}s" + (f" ({result.attempts} attempts)" if result.attempts > 1 else "")
                          + (f", held by {result.holder}" if result.holder else ""))
    return ok


def refresh(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.logging import RichHandler

    from ..connection import params_from_url, setDefaultRedisConnectionParams

    console = Console(stderr=True)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)])
    if args.url:
        setDefaultRedisConnectionParams(params_from_url(args.url))
    jobs = load_jobs(args.job)
    if args.status:
        _show_status(jobs, console)
        return 0
    if args.every is None or args.once:
        return 0 if _run_all(jobs, console, args.force) else 1
    console.print(f"running {', '.join(job.name for job in jobs)} every {args.every:g}s (Ctrl-C stops)")
    try:
        while True:
            started = time.monotonic()
            _run_all(jobs, console, args.force)
            time.sleep(max(0.0, args.every - (time.monotonic() - started)))
    except KeyboardInterrupt:
        return 0


def add_refresh_command(commands: Any) -> None:
    """Register ``refresh`` on the ``indexedredis`` command's subparsers."""
    parser = commands.add_parser(
        "refresh", help="run refresh jobs (SQL -> IndexedRedis), once or on an interval",
        description="Run the RefreshJob (or list of jobs) named module:attribute: once, or every SECONDS "
                    "(start to start). A run that fails is retried with backoff and logged; the live "
                    "dataset stays as it was. --status shows the metrics each job keeps in Redis.")
    parser.add_argument("job", help="the job, as module:name (e.g. myapp.jobs:products)")
    parser.add_argument("--every", type=float, metavar="SECONDS", help="run on this interval until interrupted")
    parser.add_argument("--once", action="store_true", help="run once and exit (the default without --every)")
    parser.add_argument("--status", action="store_true", help="show the jobs' last runs and exit")
    parser.add_argument("--force", action="store_true", help="swap the dataset in even if it is unchanged")
    parser.add_argument("--url", help="Redis URL (default: REDIS_URL, else 127.0.0.1:6379)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.set_defaults(handler=refresh)
