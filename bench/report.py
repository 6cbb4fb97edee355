"""The report of a run: the machine, the markdown tables, the JSON and the chart."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

from .ops import OPERATIONS, TIMED

BASELINE = "redis-py baseline"

HEADINGS = {
    "insert_one": "insert_one",
    "insert_bulk": "insert_bulk",
    "filter_eq": "filter_eq",
    "filter_ne": "filter_ne",
    "get_pk": "get_pk",
    "memory": "memory",
}


def machine() -> dict[str, str]:
    info: dict[str, str] = {"cores": str(os.cpu_count())}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    info["ram"] = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                    break
    except OSError:
        pass
    os_name = platform.system()
    try:
        with open("/etc/os-release") as fh:
            for line in fh:
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    info["os"] = f"{os_name}, kernel {platform.release()}"
    info["python"] = f"{platform.python_implementation()} {platform.python_version()}"
    return info


def git_state(root: str) -> str:
    """The commit of the code under test, and whether the library has uncommitted changes."""
    import subprocess

    try:
        head = subprocess.run(["git", "-C", root, "log", "-1", "--format=%h %s"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "IndexedRedis"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return head + (" (+ uncommitted changes in IndexedRedis/)" if dirty else "")


def load_average() -> str:
    try:
        with open("/proc/loadavg") as fh:
            return " / ".join(fh.read().split()[:3])
    except OSError:
        return "?"


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.01:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds * 1000:.2f} ms"


def fmt_value(op: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if op == "memory":
        return f"{value / 1024 / 1024:.2f} MB"
    return fmt_time(value)


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return ""
    return f" ({ratio:.2f}×)" if ratio < 10 else f" ({ratio:.1f}×)" if ratio < 100 else f" ({ratio:.0f}×)"


def summarize(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per implementation and operation: the median over rounds, the samples, the ratio
    to the baseline's median, and the spread of the per-round ratios (round i against
    the baseline's round i: the rounds are interleaved); the same for the server CPU
    per unit of work where a round reports it (``cpu_us``: Redis implementations)."""
    summary: dict[str, dict[str, Any]] = {}
    for name, results in rounds.items():
        ops: dict[str, Any] = {}
        for op in OPERATIONS:
            samples = [r[op] for r in results if r.get(op) is not None]
            cpu = [r["cpu_us"][op] for r in results if op in (r.get("cpu_us") or {})]
            ops[op] = {"median": statistics.median(samples) if samples else None, "samples": samples,
                       "cpu_us": statistics.median(cpu) if cpu else None, "cpu_samples_us": cpu}
        scaled: dict[str, Any] = {}
        for r in results:
            scaled.update(r.get("scaled") or {})
        summary[name] = {"ops": ops, "scaled": scaled, "rounds": len(results)}
    base = summary.get(BASELINE)
    for s in summary.values():
        for op, cell in s["ops"].items():
            b = base["ops"][op] if base else {}
            cell["ratio"] = cell["median"] / b["median"] if cell["median"] is not None and b.get("median") else None
            cell["cpu_ratio"] = cell["cpu_us"] / b["cpu_us"] if cell["cpu_us"] and b.get("cpu_us") else None
            cell["ratio_range"] = _spread(cell["samples"], b.get("samples"))
            cell["cpu_ratio_range"] = _spread(cell["cpu_samples_us"], b.get("cpu_samples_us"))
    return summary


def _spread(samples: list[float], base: list[float] | None) -> list[float] | None:
    """Lowest and highest per-round ratio, or None with fewer than two rounds."""
    pairs = [a / b for a, b in zip(samples, base or []) if b]
    return [min(pairs), max(pairs)] if len(pairs) > 1 else None


def fmt_spread(spread: list[float] | None) -> str:
    return "" if not spread else f" {spread[0]:.2f}–{spread[1]:.2f}"


def markdown(meta: dict[str, Any], summary: dict[str, dict[str, Any]], notes: dict[str, dict[str, str]],
             errors: dict[str, str], stall: list[dict[str, Any]] | None,
             scale: list[dict[str, Any]] | None, skipped: list[str]) -> str:
    plan = meta["plan"]
    m = meta["machine"]
    lines = [
        f"# IndexedRedis benchmark, {meta['date']}",
        "",
        f"- **Machine**: {m.get('cores')} cores, {m.get('ram', '?')} RAM, {m.get('cpu', '?')}; {m['os']}",
        f"- **Python** {m['python']}; **redis-server** {meta['redis_server']} (a private server started for "
        "the run: no persistence, loopback TCP; every Redis implementation in its own db, FLUSHDB'd "
        "between phases)",
        f"- **Code under test**: {meta.get('git', '?')}",
        "- **Libraries**: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- **Workload**: N = {plan['n']:,} songs (../shared/bench/WORKLOAD.md); insert_one = N saves one at "
        f"a time; insert_bulk = N through the bulk path; filter_eq = {plan['eq_queries']} queries "
        f"`artist == x`; filter_ne = {plan['ne_queries']} queries `track_number != k`; get_pk = "
        f"{plan['gets']} gets by pk; memory = Redis used_memory after insert_bulk minus before",
        f"- **Rounds**: {meta['rounds']}, interleaved (each round runs every implementation in turn); "
        "every figure is the median over rounds, with its ratio to the redis-py baseline's median from "
        "the same run in parentheses (below 1× = faster / smaller than the baseline), then in small type "
        "the lowest and highest per-round ratio (round i against the baseline's round i): the spread "
        "that tells a lead from noise",
        f"- Total run time: {meta.get('elapsed_s', 0) / 60:.1f} min, {meta.get('mode', '')} mode: "
        f"`{meta.get('command', '')}`",
    ]
    if meta.get("load"):
        lines.append(f"- **Load average** (1 / 5 / 15 min; {m.get('cores')} cores, shared with other users): "
                     f"{meta['load']['start']} at the start, {meta['load']['end']} at the end")
    for reason in skipped:
        lines.append(f"- Skipped: {reason}")
    lines += ["", "## Standard workload", ""]
    header = "| implementation | " + " | ".join(HEADINGS[op] for op in OPERATIONS) + " |"
    lines += [header, "|---" * (len(OPERATIONS) + 1) + "|"]
    marks: list[str] = []
    for name, s in summary.items():
        cells = []
        for op in OPERATIONS:
            cell = s["ops"][op]
            text = fmt_value(op, cell["median"]) + fmt_ratio(cell["ratio"])
            if name != BASELINE and cell.get("ratio_range"):
                text += f" <sub>{fmt_spread(cell['ratio_range']).strip()}</sub>"
            note = notes.get(name, {}).get(op)
            if op in s["scaled"]:
                cap, total = s["scaled"][op]
                unit = "rows" if op.startswith("insert") else "queries"
                note = (note + "; " if note else "") + (f"timed over {cap:,} of the {total:,} {unit}, "
                                                         f"scaled ×{total / cap:.3g}")
            if note:
                marks.append(f"{name}, {op}: {note}")
                text += f" [{len(marks)}]"
            cells.append(text)
        if name in errors:
            cells[-1] += f" — FAILED: {errors[name]}"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, err in errors.items():
        if name not in summary:
            lines.append(f"| {name} | FAILED: {err} |" + " |" * (len(OPERATIONS) - 1))
    if marks:
        lines.append("")
        lines += [f"[{i}] {text}  " for i, text in enumerate(marks, 1)]
    cpu_rows = [(name, s) for name, s in summary.items() if any(s["ops"][op].get("cpu_us") for op in TIMED)]
    if cpu_rows:
        lines += ["", "## Server CPU per operation", "",
                  "The Redis server's main-thread CPU (`INFO cpu`, user + sys, read before and after each "
                  "operation) per save, object, query or get; the ratio to the baseline's median in "
                  "parentheses, then the lowest and highest per-round ratio:", "",
                  "| implementation | " + " | ".join(HEADINGS[op] for op in TIMED) + " |",
                  "|---" * (len(TIMED) + 1) + "|"]
        for name, s in cpu_rows:
            cells = []
            for op in TIMED:
                cell = s["ops"][op]
                if not cell.get("cpu_us"):
                    cells.append("n/a")
                    continue
                text = f"{cell['cpu_us']:,.1f} µs" + fmt_ratio(cell.get("cpu_ratio"))
                if name != BASELINE and cell.get("cpu_ratio_range"):
                    text += f" <sub>{fmt_spread(cell['cpu_ratio_range']).strip()}</sub>"
                cells.append(text)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    general = notes.get("*", {})
    if general:
        lines += [""] + [f"- {v}" for v in general.values()]
    if stall:
        lines += ["", "## Reset stall", "",
                  "Another process PINGs every 1 ms while `reset` replaces a dataset of that many objects "
                  "with a new one (bench/stall.py); PING latency percentiles:", "",
                  "| implementation | objects | reset | pings | p50 | p99 | max |",
                  "|---|---|---|---|---|---|---|"]
        for r in stall:
            if "error" in r:
                lines.append(f"| {r['name']} | {r.get('n', '')} | FAILED: {r['error']} | | | | |")
                continue
            lines.append(f"| {r['name']} | {r['n']:,} | {r['reset_s']:.2f} s | {r['pings']:,} | "
                         f"{r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['max_ms']:.2f} ms |")
    if scale:
        lines += ["", "## Scale curve (IndexedRedis, ours)", "",
                  "Median latency of one query as the model grows, 100 objects per artist at every size "
                  "(bench/scale.py; track_number is an int field here):", "",
                  "| objects | reset | filter(artist=x) | rows "
                  "| filter(artist=x, track_number__gte=6) | rows |",
                  "|---|---|---|---|---|---|"]
        for r in scale:
            if "error" in r:
                lines.append(f"| {r['n']:,} | FAILED: {r['error']} | | | | |")
                continue
            lines.append(f"| {r['n']:,} | {r['reset_s']:.1f} s | {r['eq_ms']:.3f} ms | {r['eq_rows']:.0f} | "
                         f"{r['eq_gte_ms']:.3f} ms | {r['eq_gte_rows']:.0f} |")
    return "\n".join(lines) + "\n"


def chart(summary: dict[str, dict[str, Any]], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in summary if n != BASELINE]
    ops = [op for op in OPERATIONS if any(summary[n]["ops"][op]["ratio"] for n in names)]
    if not names or not ops:
        return
    fig, ax = plt.subplots(figsize=(max(9, 1.6 * len(ops) + 3), 5.5))
    width = 0.8 / len(names)
    cmap = plt.get_cmap("tab10")
    for i, name in enumerate(names):
        xs, ys = [], []
        for j, op in enumerate(ops):
            ratio = summary[name]["ops"][op]["ratio"]
            if ratio:
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(ratio)
        bars = ax.bar(xs, ys, width, label=name, color=cmap(i % 10), edgecolor="black", linewidth=0.4)
        if "(ours)" in name:  # label our bars with their ratio
            for bar, y in zip(bars, ys):
                ax.annotate(f"{y:.2f}×", (bar.get_x() + bar.get_width() / 2, y), xytext=(0, 2),
                            textcoords="offset points", ha="center", va="bottom", fontsize=7)
    ax.axhline(1.0, color="black", linewidth=1.2, linestyle="--", label="redis-py baseline = 1")
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}×"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: ""))
    ax.set_xticks(range(len(ops)))
    ax.set_xticklabels(ops)
    ax.set_ylabel("ratio to the redis-py baseline (log; lower is better)")
    ax.set_title(title)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(5, len(names) + 1), loc="upper center", bbox_to_anchor=(0.5, -0.07),
              frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(out_dir: str, meta: dict[str, Any], summary: dict[str, dict[str, Any]], md_text: str,
          raw: dict[str, Any]) -> dict[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: os.path.join(out_dir, f"latest.{k}") for k in ("md", "json", "png")}
    with open(paths["md"], "w") as fh:
        fh.write(md_text)
    with open(paths["json"], "w") as fh:
        json.dump({"meta": meta, "summary": summary, **raw}, fh, indent=2, default=str)
    chart(summary, paths["png"], f"IndexedRedis benchmark, N = {meta['plan']['n']:,}, {meta['date']}")
    return paths


def write_side(out_dir: str, stem: str, md_text: str, data: dict[str, Any]) -> list[str]:
    """``<stem>_latest.md`` and ``.json`` of a side benchmark (async, cluster) in
    ``out_dir``; their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, f"{stem}_latest.{ext}") for ext in ("md", "json")]
    with open(paths[0], "w") as fh:
        fh.write(md_text)
    with open(paths[1], "w") as fh:
        json.dump(data, fh, indent=2, default=str)
    return paths


def side_parser(doc: str, stem: str, ops: list[str], out_default: str) -> argparse.ArgumentParser:
    """The options every side benchmark takes: --n, --rounds, --out, --profile."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="objects in the workload (default 20,000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--out", default=out_default, help="output directory (default bench/results)")
    parser.add_argument("--profile", choices=ops,
                        help="run ours only, one round, with this op under cProfile: print the top 10 "
                             f"functions and write {stem}_<op>.prof into --out")
    return parser


def side_meta(*, git: str, digest: str, redis_server: str, versions: dict[str, str], plan: Any, rounds: int,
              cpu_source: str, targets: dict[str, float], started: float, load_start: str, command: str,
              **extra: Any) -> dict[str, Any]:
    """The meta block of a side benchmark's results (``extra``: its own settings)."""
    return {
        "date": now(),
        "machine": machine(),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "git": git,
        "code_digest": digest,
        "redis_server": redis_server,
        "versions": versions,
        "plan": plan.to_json(),
        "rounds": rounds,
        "cpu_source": cpu_source,
        "targets": targets,
        "elapsed_s": time.perf_counter() - started,
        "load": {"start": load_start, "end": load_average()},
        "command": command,
        **extra,
    }


def command(root: str, module: str, argv: list[str]) -> str:
    """The command line that reproduces a run, its interpreter relative to ``root``."""
    python = os.path.relpath(sys.executable, root) if sys.executable.startswith(root) else sys.executable
    return " ".join([python, "-m", module, *argv])


def now() -> str:
    return datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


__all__ = ["BASELINE", "TIMED", "machine", "summarize", "markdown", "chart", "write", "write_side", "command", "now"]
