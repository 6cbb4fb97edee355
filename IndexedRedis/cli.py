"""The ``indexedredis`` command (also ``python -m IndexedRedis``)."""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from collections.abc import Sequence
from importlib.resources import as_file, files

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .connection import (
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="indexedredis", description="IndexedRedis command line tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run_demo = commands.add_parser(
        "demo", help="run the Song example end to end and print its results",
        description="Run the Song example from the IndexedRedis README. Uses --url, else "
                    "REDIS_URL, else 127.0.0.1:6379, else (or with --embedded) a private "
                    "redis-server that is stopped on exit.")
    where = run_demo.add_mutually_exclusive_group()
    where.add_argument("--url", help="Redis URL, e.g. redis://host:6379/0 or unix:///path/redis.sock")
    where.add_argument("--embedded", action="store_true", help="start a private redis-server for the demo")
    run_demo.add_argument("--keep-data", action="store_true", help="query the songs a previous run left")
    run_demo.set_defaults(handler=demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
