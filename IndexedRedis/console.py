"""``indexedredis check`` and ``indexedredis stats``: their handlers, and the rich tables
of their reports."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

from .reports import GROUPS, KINDS, CheckReport, StatsReport

__all__ = ["add_check_commands", "print_check", "print_stats", "human_bytes"]


def add_check_commands(commands: Any) -> None:
    """The check and stats subcommands, on the ``indexedredis`` parser's subparsers."""
    run_check = commands.add_parser(
        "check", help="check a model's records against its indexes, its bookkeeping and its garbage",
        description="Compare every index entry with the records and every record with the indexes, check "
                    "generation pointers, counters, reset leases and schema tags, and look for garbage "
                    "(generations of dead or killed resets, keys of former index layouts), in bounded "
                    "steps that never stall the server. Exit status: 0 nothing found, 1 drift or garbage "
                    "(with --repair: some left), 2 a usage or connection error.")
    run_check.add_argument("model", help="the model class, as module:Class (e.g. myapp.models:Song)")
    run_check.add_argument("--url", help="Redis URL (default: REDIS_URL, else the model's params, else "
                                         "127.0.0.1:6379)")
    run_check.add_argument("--repair", action="store_true",
                           help="fix what can be fixed in place, in atomic batches (needs --url or REDIS_URL, "
                                "unless the model names its server)")
    run_check.add_argument("--json", action="store_true", help="print the report as JSON")
    run_check.set_defaults(handler=check_command)
    run_stats = commands.add_parser(
        "stats", help="a model's objects, memory by kind of key, indexes, generations, schemas, last reset",
        description="Measure a model: objects, memory by kind of key (MEMORY USAGE of a sample of each kind), "
                    "index cardinalities, generations, schemas and the last reset, in bounded steps.")
    run_stats.add_argument("model", help="the model class, as module:Class (e.g. myapp.models:Song)")
    run_stats.add_argument("--url", help="Redis URL (default: REDIS_URL, else the model's params, else "
                                         "127.0.0.1:6379)")
    run_stats.add_argument("--json", action="store_true", help="print the report as JSON")
    run_stats.set_defaults(handler=stats_command)


def _open(args: argparse.Namespace) -> tuple[Any, str]:
    """The model and the server it uses, or SystemExit(2) with a one-line message."""
    from .connection import params_from_url, server_label, setDefaultRedisConnectionParams
    from .model import isIndexedRedisModel
    from .specs import resolve

    try:
        if args.url:
            setDefaultRedisConnectionParams(params_from_url(args.url))
        model = resolve(args.model, f"indexedredis {args.command}", "Model", "myapp.models:Song")
    except (SystemExit, ValueError) as exc:
        print(exc if isinstance(exc, ValueError) else exc.code, file=sys.stderr)
        raise SystemExit(2) from None
    if not isinstance(model, type) or not isIndexedRedisModel(model):
        print(f"indexedredis {args.command}: {args.model} is a {type(model).__name__}, not an IndexedRedisModel "
              f"class", file=sys.stderr)
        raise SystemExit(2)
    return model, server_label(model._get_client())  # type: ignore[attr-defined]


def _named_server(model: Any, url: str | None) -> bool:
    """Whether the server was named (not guessed): --url, REDIS_URL, the default set in
    code, or the model's own connection."""
    from .connection import default_is_named

    return bool(url or default_is_named() or model._meta.connection_params or model._connection is not None)


def check_command(args: argparse.Namespace) -> int:
    """Exit status: 0 nothing to fix, 1 drift or garbage (left), 2 a usage or connection error."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    model, where = _open(args)
    what = "repair" if args.repair else "check"
    if args.repair and not _named_server(model, args.url):
        print(f"indexedredis check: refusing to repair {model.__name__} on a guessed server ({where}): name it "
              f"with --url or REDIS_URL", file=sys.stderr)
        return 2
    errors = Console(stderr=True)
    errors.print(f"{what} {model.__name__} on {where}")
    try:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=errors, transient=False) as bar:
            tasks: dict[str, Any] = {}

            def progress(phase: str, done: int, total: int | None) -> None:
                if phase not in tasks:
                    tasks[phase] = bar.add_task(f"{model.__name__} {phase}", total=total)
                bar.update(tasks[phase], completed=done, total=total)

            report = (model.objects.repair if args.repair else model.objects.check)(progress=progress)
    except redis.RedisError as exc:
        print(f"indexedredis check: {model.__name__} on {where}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print_check(Console(), report, where)
    return 0 if report.ok else 1


def stats_command(args: argparse.Namespace) -> int:
    model, where = _open(args)
    try:
        report = model.objects.stats()
    except redis.RedisError as exc:
        print(f"indexedredis stats: {model.__name__} on {where}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print_stats(Console(), report, where)
    return 0


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _text(raw: bytes | None) -> str:
    return "" if raw is None else raw.decode("utf-8", "backslashreplace")


def _eviction_note(evicted: int | None, policy: str | None) -> str:
    if evicted is None:
        return "unknown (INFO stats unreadable)"
    note = f"{evicted:,}"
    if evicted:
        note += " [bold red](the server has evicted keys: records or index entries may be missing)[/]"
    if policy and policy != "noeviction" and not policy.startswith("volatile"):
        note += f" [yellow]maxmemory-policy {policy} can evict this model's keys; set noeviction[/]"
    return note


def print_check(console: Console, report: CheckReport, where: str) -> None:
    what = "repair" if report.repair else "check"
    console.print(f"[bold]{what} {report.model}[/] ({_text(report.prefix)}*) on {where}")
    summary = Table.grid(padding=(0, 2))
    summary.add_row("live generation", str(report.generation))
    summary.add_row("records read", f"{report.objects:,}")
    summary.add_row("index keys walked", f"{report.index_keys:,} ({report.entries:,} entries)")
    summary.add_row("keys of the model", f"{report.keys_scanned:,}")
    if report.running_resets:
        running = ", ".join(f"generation {gen} (lease {ms / 1000:.1f}s left)" for gen, ms in
                            sorted(report.running_resets.items()))
        summary.add_row("resets running", running)
    summary.add_row("evicted keys (server)", _eviction_note(report.evicted_keys, report.maxmemory_policy))
    if report.expired_pending or report.expired_swept:
        summary.add_row("expired objects", f"{report.expired_pending} waiting for a sweep (not drift)"
                        + (f", {report.expired_swept} swept" if report.expired_swept else ""))
    if report.restarts:
        summary.add_row("restarts", f"{report.restarts} (a reset replaced the data meanwhile)")
    summary.add_row("time", f"{report.seconds:.2f}s")
    console.print(summary)
    if not report.found:
        console.print("[bold green]No drift, no garbage.[/]")
        return
    table = Table(title="Findings", show_lines=False)
    table.add_column("group")
    table.add_column("kind")
    table.add_column("found", justify="right")
    if report.repair:
        table.add_column("repaired", justify="right")
    table.add_column("meaning / what to do")
    for group in GROUPS:
        for kind, info in KINDS.items():
            if info.group != group or not report.found[kind]:
                continue
            meaning = info.title + (f"; {info.advice}" if info.advice else
                                    "" if report.repair else "; check --repair fixes it")
            row = [group, kind, f"{report.found[kind]:,}"]
            if report.repair:
                row.append(f"{report.repaired[kind]:,}")
            table.add_row(*row, meaning)
    console.print(table)
    details = Table(title="First findings of each kind")
    for column in ("kind", "key", "pk", "detail"):
        details.add_column(column, overflow="fold")
    for finding in report.details:
        details.add_row(finding.kind, _text(finding.key), "" if finding.pk is None else str(finding.pk),
                        finding.detail)
    console.print(details)
    left = sum(report.remaining.values())
    if report.repair:
        style = "green" if not left else "red"
        console.print(f"[bold {style}]Repaired {sum(report.repaired.values()):,} of {report.drift:,} "
                      f"finding(s); {left:,} remain.[/]")
    else:
        console.print(f"[bold red]{report.drift:,} finding(s).[/]")


def print_stats(console: Console, report: StatsReport, where: str) -> None:
    console.print(f"[bold]stats {report.model}[/] ({_text(report.prefix)}*) on {where}")
    summary = Table.grid(padding=(0, 2))
    summary.add_row("objects", f"{report.objects:,}")
    summary.add_row("live generation", f"{report.generation} ({report.generations_handed_out} handed out)")
    summary.add_row("highest pk handed out", f"{report.highest_pk:,}")
    if report.staging:
        summary.add_row("resets running", ", ".join(
            f"generation {gen} (lease {'lapsed' if ms <= 0 else f'{ms / 1000:.1f}s left'})"
            for gen, ms in sorted(report.staging.items())))
    if report.dead:
        summary.add_row("waiting to be freed", ", ".join(f"generation {gen}" for gen in report.dead))
    last = report.last_reset
    if last:
        summary.add_row("last reset", f"generation {last.get('generation')}, {last.get('objects', 0):,} objects, "
                                      f"written in {last.get('duration_ms', 0) / 1000:.2f}s")
    else:
        summary.add_row("last reset", "none recorded")
    summary.add_row("model memory", human_bytes(report.total_bytes))
    if report.used_memory is not None:
        summary.add_row("server memory", human_bytes(report.used_memory))
    summary.add_row("evicted keys (server)", _eviction_note(report.evicted_keys, report.maxmemory_policy))
    console.print(summary)
    memory = Table(title="Memory by kind of key")
    for column, justify in (("kind", "left"), ("keys", "right"), ("memory", "right"), ("measured", "left")):
        memory.add_column(column, justify=justify)  # type: ignore[arg-type]
    for kind, stats in report.memory.items():
        measured = "all" if stats.sampled == stats.keys else f"{stats.sampled:,} sampled"
        memory.add_row(kind, f"{stats.keys:,}", human_bytes(stats.bytes), measured)
    console.print(memory)
    indexes = Table(title="Indexes")
    for column in ("field", "kinds", "values", "entries", "irNull", "sorted entries", "largest values"):
        indexes.add_column(column, overflow="fold")
    for index in report.indexes:
        sorted_entries = ", ".join(f"{kind} {count:,}" for kind, count in (("score", index.scored),
                                                                          ("lex", index.lexed)) if count is not None)
        largest = ", ".join(f"{value!r}: {size:,}" for value, size in index.largest)
        indexes.add_row(index.field, "+".join(index.kinds), f"{index.values:,}", f"{index.entries:,}",
                        f"{index.nulls:,}", sorted_entries, largest)
    console.print(indexes)
    schemas = Table(title="Schemas (field lists stored records follow)")
    schemas.add_column("tag")
    schemas.add_column("fields", overflow="fold")
    for tag, names in sorted(report.schemas.items()):
        mark = " (current)" if tag == report.current_schema else ""
        schemas.add_row(f"{tag}{mark}", ", ".join(names))
    console.print(schemas)
