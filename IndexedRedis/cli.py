"""The ``indexedredis`` command (also ``python -m IndexedRedis``)."""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from collections.abc import Sequence
from importlib.resources import as_file, files
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .connection import (
    default_is_named,
    getDefaultRedisConnectionParams,
    params_from_url,
    setDefaultRedisConnectionParams,
    useEmbeddedRedis,
)

__all__ = ["main"]


def _server_answers(params: dict) -> bool:
    try:
        client = redis.Redis(**{**params, "socket_connect_timeout": 0.5, "socket_timeout": 1.0,
                                 "retry": Retry(NoBackoff(), 0)})
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def choose_server(url: str | None, embedded: bool) -> str:
    """Point the default connection at the server to use; returns a description of it."""
    if url:
        setDefaultRedisConnectionParams(params_from_url(url))
        return url
    if embedded:
        return f"embedded redis-server at {useEmbeddedRedis().url}"
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    if not default_is_named():  # the demo resets its model: never on a server nobody named
        return f"embedded redis-server at {useEmbeddedRedis().url} (no server named: --url or REDIS_URL)"
    params = getDefaultRedisConnectionParams()
    if _server_answers(params):
        return f"redis://{params.get('host')}:{params.get('port')}/{params.get('db', 0)}"
    server = useEmbeddedRedis()
    return f"embedded redis-server at {server.url} (nothing answered at the default address)"


def demo(args: argparse.Namespace) -> int:
    where = choose_server(args.url, args.embedded)
    print(f"# IndexedRedis demo on {where}", file=sys.stderr)
    example = files("IndexedRedis.examples").joinpath("seed.py")
    saved_argv = sys.argv
    sys.argv = ["seed.py"] + (["--keep-data"] if args.keep_data else [])
    try:
        with as_file(example) as path:
            runpy.run_path(str(path), run_name="__main__")
    finally:
        sys.argv = saved_argv
    return 0


def load_model(spec: str) -> Any:
    """``package.module:ModelClass`` -> the model class, or a clear SystemExit."""
    from .model import isIndexedRedisModel
    from .specs import resolve

    model = resolve(spec, "indexedredis", "Model", "myapp.models:Song")
    if not isinstance(model, type) or not isIndexedRedisModel(model):
        raise SystemExit(f"indexedredis: {spec.replace(':', '.')} is a {type(model).__name__}, "
                         f"not an IndexedRedisModel class")
    return model


def reindex(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if args.url:
        setDefaultRedisConnectionParams(params_from_url(args.url))
    model = load_model(args.model)
    console = Console(stderr=True)
    console.print(f"reindex {model.__name__} on {describe(model._get_client())}")
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task(f"reindex {model.__name__}", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        count = model.objects.reindex(progress=progress)
    console.print(f"Reindexed {count} {model.__name__} object(s).")
    return 0


def functions(args: argparse.Namespace) -> int:
    """List the IndexedRedis function libraries on a server; --delete: delete those of
    other versions of the package (see ``flows/functions``)."""
    from .drivers import runner
    from .flows.functions import cleanup_flow
    from .flows.functions import describe as describe_libraries

    params = params_from_url(args.url) if args.url else getDefaultRedisConnectionParams()
    client = redis.Redis(**params)
    try:
        found = runner.run(client, cleanup_flow(delete=args.delete))
        print(describe_libraries(found, [f"# function libraries on {describe(client)}"]))
    finally:
        client.close()
    return 0


def describe(client: Any) -> str:
    """The server and db a client reaches, for the commands to print before they work."""
    from .connection import server_label

    return server_label(client)


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    parser = argparse.ArgumentParser(prog="indexedredis", description="IndexedRedis command line tools.")
    try:
        mine = version("indexedredis")
    except PackageNotFoundError:  # run from a source tree
        mine = "unknown"
    parser.add_argument("--version", action="version", version=f"indexedredis {mine} (redis-py {redis.__version__})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run_demo = commands.add_parser(
        "demo", help="run the Song example end to end and print its results",
        description="Run the Song example from the IndexedRedis README (it replaces the Songs "
                    "model's data). Uses --url, else REDIS_URL, else a private redis-server that is "
                    "stopped on exit: never a server nobody named.")
    where = run_demo.add_mutually_exclusive_group()
    where.add_argument("--url", help="Redis URL, e.g. redis://host:6379/0 or unix:///path/redis.sock")
    where.add_argument("--embedded", action="store_true", help="start a private redis-server for the demo")
    run_demo.add_argument("--keep-data", action="store_true", help="query the songs a previous run left")
    run_demo.set_defaults(handler=demo)
    run_reindex = commands.add_parser(
        "reindex", help="rebuild a model's indexes (after INDEXED_FIELDS or a field type changed)",
        description="Rebuild every index of a model: the data is rewritten into a new generation "
                    "and switched in atomically, with a progress bar.")
    run_reindex.add_argument("model", help="the model class, as module:Class (e.g. myapp.models:Song)")
    run_reindex.add_argument("--url", help="Redis URL (default: REDIS_URL, else 127.0.0.1:6379)")
    run_reindex.set_defaults(handler=reindex)
    run_functions = commands.add_parser(
        "functions", help="list IndexedRedis's Redis function libraries; --delete those of other versions",
        description="IndexedRedis runs its scripts as Redis functions on Redis 7.0+, one library per "
                    "script and version of the package. Functions persist and replicate, so libraries "
                    "of earlier versions stay behind: this lists them, and --delete deletes them "
                    "(libraries of other names are never touched).")
    run_functions.add_argument("--url", help="Redis URL (default: REDIS_URL, else 127.0.0.1:6379)")
    run_functions.add_argument("--delete", action="store_true",
                               help="delete the IndexedRedis libraries that are not this version's")
    run_functions.set_defaults(handler=functions)
    add_extra_commands(commands)
    return parser


def add_extra_commands(commands: Any) -> None:
    """Commands that live in modules of their own (check and stats, refresh jobs, the
    web app demo)."""
    from .console import add_check_commands
    from .examples.webapp.cli import add_webdemo_command
    from .refresh.cli import add_refresh_command

    add_check_commands(commands)
    add_refresh_command(commands)
    add_webdemo_command(commands)


def main(argv: Sequence[str] | None = None) -> int:
    from .exceptions import IndexedRedisError

    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (ValueError, TypeError, IndexedRedisError, redis.ConnectionError, redis.TimeoutError) as exc:
        print(f"indexedredis {args.command}: {exc}", file=sys.stderr)  # a bad URL, a dead server: no traceback
        return 2


if __name__ == "__main__":
    sys.exit(main())
