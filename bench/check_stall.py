"""Check stall: how long another client's PING waits while ``check`` (or ``repair``)
walks a big model.  A second process PINGs every millisecond during the check and
reports latency percentiles; a little drift is injected first, so the check also
finds (and with --repair fixes) something.

    python -m bench.check_stall [--n 1000000] [--repair] [--url redis://...] [--renice 10]
                                [--baseline 30] [--intrinsic 10] [--redis-server PATH]

Without --url it starts a private redis-server (never touching a shared one).  On a
machine shared with other work, a PING also waits for the CPU: ``--renice N`` raises
the private server's and the pinger's scheduling priority by N (as a dedicated Redis
host would have it; needs root), so that what is measured is the server's own stalls.

A PING's maximum alone cannot show a 10 ms bound on a machine that pauses processes
for longer than that now and then, so three figures are printed side by side:

* the server's own view: the slow log, with every command of at least
  ``--slowlog-us`` microseconds (100 by default: every check step, no PING) logged
  with its duration, gives the longest single command the check ran and each
  script's median / p99 / max step;
* the machine's own pauses, measured in the same run before the check, as
  ``redis-cli --intrinsic-latency`` does: a process that only reads the clock for
  ``--intrinsic`` seconds, and the longest gap it saw between two reads;
* the PING latencies, during the check and (``--baseline``) against the idle server.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time
from typing import Any

import redis

from .stall import percentile
from .workload import rows, song_model


def _pinger(params: dict[str, Any], ready: Any, stop: Any, out: Any, renice: int) -> None:
    if renice:
        os.setpriority(os.PRIO_PROCESS, 0, -renice)
    client = redis.Redis(**params)
    client.ping()
    latencies: list[float] = []
    ready.set()
    while not stop.is_set():
        start = time.perf_counter()
        client.ping()
        latencies.append(time.perf_counter() - start)
        time.sleep(0.001)
    out.put(latencies)


def _inject_drift(client: redis.Redis, model: Any) -> int:
    """A few missing and stale index entries and a garbage key; returns how many."""
    keys = model._meta.keys
    gk = keys.generation(int(client.get(keys.gen) or 0))
    client.srem(gk.index("artist", b"artist-1"), 2)              # object 2 (row 1) has artist-1
    client.sadd(gk.index("artist", b"artist-2"), 4, 10**9)      # 4 has artist-3; 10**9 has no record
    client.zadd(gk.ids, {str(10**9 + 1): 10**9 + 1})             # an id with no record
    client.sadd(keys.generation(999).index("artist", b"x"), 1)    # a key of no live generation
    return 5


def _name(entry: dict[str, Any]) -> str:
    """A slow log entry's command, scripts by name (EVALSHA_RO: their read-only form)."""
    from IndexedRedis import scripts

    command = entry["command"]
    words = (command.decode("utf-8", "replace") if isinstance(command, bytes) else str(command)).split()
    if len(words) > 1 and words[0].upper() in ("EVALSHA", "EVALSHA_RO"):
        for name in dir(scripts):
            script = getattr(scripts, name)
            if isinstance(script, scripts.Script) and words[1] in (script.sha, script.readonly and script.ro_sha):
                return script.name
    return words[0].upper() if words else "?"


def _clock_reader(seconds: float, out: Any, renice: int) -> None:
    if renice:
        os.setpriority(os.PRIO_PROCESS, 0, -renice)
    worst = 0.0
    clock = time.perf_counter
    end = clock() + seconds
    last = clock()
    while last < end:
        now = clock()
        if now - last > worst:
            worst = now - last
        last = now
    out.put(worst)


def intrinsic_pause_ms(seconds: float, renice: int = 0) -> float:
    """The longest gap (ms) between two clock reads of a process that does nothing else
    for ``seconds``: how long this machine pauses a runnable process by itself (what
    ``redis-cli --intrinsic-latency`` measures)."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_clock_reader, args=(seconds, out, renice))
    proc.start()
    worst = float(out.get(timeout=seconds + 60))
    proc.join(30)
    return worst * 1000


def step_summary(slow: list[dict[str, Any]]) -> dict[str, tuple[int, float, float, float]]:
    """Per command (scripts by name): how many steps, median, p99 and max (ms)."""
    by_name: dict[str, list[float]] = {}
    for entry in slow:
        by_name.setdefault(_name(entry), []).append(entry["duration"] / 1000)
    return {name: (len(values), statistics.median(values), percentile(values, 0.99), max(values))
            for name, values in sorted(by_name.items(), key=lambda item: -len(item[1]))}


def _pings(params: dict[str, Any], renice: int, during: Any) -> list[float]:
    """PING latencies (ms) of another process while ``during()`` runs."""
    ctx = mp.get_context("spawn")
    ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_pinger, args=(params, ready, stop, out, renice))
    proc.start()
    ready.wait(30)
    time.sleep(0.05)
    try:
        during()
    finally:
        time.sleep(0.05)
        stop.set()
    latencies = out.get(timeout=60)
    proc.join(30)
    return [v * 1000 for v in latencies]


def measure(params: dict[str, Any], n: int, repair: bool, renice: int = 0, baseline: float = 0,
            intrinsic: float = 0, slowlog_us: int = 100) -> dict[str, Any]:
    from IndexedRedis import setDefaultRedisConnectionParams

    setDefaultRedisConnectionParams(params)
    Song = song_model("CheckStallSongs")
    client = redis.Redis(**params)
    loaded = time.perf_counter()
    batch = 100_000
    for start in range(0, n, batch):  # saveMultiple keeps client memory lower than one reset of all
        Song.saver.saveMultiple([Song(**row) for row in rows(min(batch, n - start), seed=start + 1)])
    load_s = time.perf_counter() - loaded
    injected = _inject_drift(client, Song)
    # The server's own view: every command of at least ``slowlog_us`` is logged with its
    # duration (a pause of the whole machine lengthens it too, but not the time spent
    # waiting for the CPU before the command began).
    client.config_set("slowlog-log-slower-than", slowlog_us)
    client.config_set("slowlog-max-len", 1_000_000)
    pause_ms = intrinsic_pause_ms(intrinsic, renice) if intrinsic else 0.0
    idle = _pings(params, renice, lambda: time.sleep(baseline)) if baseline else []
    client.slowlog_reset()
    outcome: dict[str, Any] = {}

    def run() -> None:
        started = time.perf_counter()
        outcome["report"] = Song.objects.repair() if repair else Song.objects.check()
        outcome["seconds"] = time.perf_counter() - started

    ms = _pings(params, renice, run)
    report, elapsed = outcome["report"], outcome["seconds"]
    slow = client.slowlog_get(1_000_000)
    steps = step_summary(slow)
    durations = sorted(entry["duration"] / 1000 for entry in slow)
    result = {"n": n, "mode": "repair" if repair else "check", "renice": renice, "load_s": load_s, "check_s": elapsed,
              "found": sum(report.found.values()), "injected": injected,
              "repaired": sum(report.repaired.values()), "pings": len(ms), "p50_ms": statistics.median(ms),
              "p99_ms": percentile(ms, 0.99), "max_ms": max(ms),
              "server_version": client.info("server")["redis_version"], "slowlog_us": slowlog_us,
              "server_steps_logged": len(slow),
              "server_steps_over_2ms": sum(value > 2 for value in durations),
              "server_steps_over_10ms": sum(value > 10 for value in durations),
              "server_step_p99_ms": percentile(durations, 0.99) if durations else 0.0,
              "server_step_p999_ms": percentile(durations, 0.999) if durations else 0.0,
              "server_max_step_ms": durations[-1] if durations else 0.0,
              "intrinsic_s": intrinsic, "intrinsic_max_pause_ms": pause_ms,
              "idle_s": baseline, "idle_pings": len(idle),
              "idle_p99_ms": percentile(idle, 0.99) if idle else 0.0, "idle_max_ms": max(idle, default=0.0),
              "slowest": ", ".join(f"{_name(entry)} {entry['duration'] / 1000:.1f}ms"
                                   for entry in sorted(slow, key=lambda e: -e["duration"])[:5]),
              "steps": steps}
    Song.reset([])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repair", action="store_true", help="run repair() instead of check()")
    parser.add_argument("--url", help="Redis URL (default: a private embedded redis-server)")
    parser.add_argument("--renice", type=int, default=0,
                        help="raise the private server's and the pinger's priority by this much (root)")
    parser.add_argument("--baseline", type=float, default=0,
                        help="first PING the idle server for this many seconds, to show the machine's own pauses")
    parser.add_argument("--intrinsic", type=float, default=10,
                        help="first measure the machine's own pauses for this many seconds (0: skip)")
    parser.add_argument("--slowlog-us", type=int, default=100,
                        help="log every server command of at least this many microseconds")
    parser.add_argument("--redis-server", help="the private server's redis-server binary (default: PATH's)")
    args = parser.parse_args()
    from IndexedRedis.connection import params_from_url
    from IndexedRedis.embedded import EmbeddedRedis, free_port

    if args.url:
        result = measure(params_from_url(args.url), args.n, args.repair, baseline=args.baseline,
                         intrinsic=args.intrinsic, slowlog_us=args.slowlog_us)
    else:
        with EmbeddedRedis(port=free_port(), unix_socket=False, executable=args.redis_server) as server:
            if args.renice:
                os.setpriority(os.PRIO_PROCESS, server.pid, -args.renice)
            result = measure(dict(server.connection_params), args.n, args.repair, args.renice, args.baseline,
                             args.intrinsic, args.slowlog_us)
    steps = result.pop("steps")
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))
    print()
    print(f"{'':34} {'max ms':>9}  {'p99 ms':>8}")
    print(f"{'longest server step (slow log)':34} {result['server_max_step_ms']:9.2f}  "
          f"{result['server_step_p99_ms']:8.2f}")
    print(f"{'machine pause, idle (clock reads)':34} {result['intrinsic_max_pause_ms']:9.2f}  {'':>8}")
    print(f"{'PING during the check':34} {result['max_ms']:9.2f}  {result['p99_ms']:8.2f}")
    if result["idle_pings"]:
        print(f"{'PING, idle server':34} {result['idle_max_ms']:9.2f}  {result['idle_p99_ms']:8.2f}")
    print()
    print(f"{'server steps by command':34} {'steps':>7} {'median ms':>10} {'p99 ms':>8} {'max ms':>8}")
    for name, (count, median, p99, worst) in steps.items():
        print(f"{name[:34]:34} {count:7d} {median:10.3f} {p99:8.3f} {worst:8.2f}")


if __name__ == "__main__":
    main()
