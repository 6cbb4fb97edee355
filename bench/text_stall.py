"""Text lookup stall: another client's PING latency while ``__contains`` /
``__icontains`` / ``__startswith`` / text order run on a field with 1M distinct values.

The dictionaries are walked in bounded read-only steps (``flows/text.py``
``WALK_BUDGET`` members a step), so no single script runs long.  A second process PINGs
every millisecond while the lookups run; the report gives PING p50 / p99 / max, and the
longest commands the server logged (SLOWLOG, threshold 1 ms, every entry kept) and the
mean per call of the scripts (commandstats) -- this VM itself pauses now and then, which
the SLOWLOG tells apart from a long script.

    python -m bench.text_stall [--n 1000000] [--queries 5]

It starts a private redis-server (never touching a shared one).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from .stall import percentile, start_pinger


def measure(params: dict[str, Any], n: int, queries: int) -> dict[str, Any]:
    import redis

    from IndexedRedis import IndexedRedisModel, IRField, setDefaultRedisConnectionParams

    setDefaultRedisConnectionParams(params)
    Word = type("Word", (IndexedRedisModel,), {
        "FIELDS": [IRField("text", valueType=str), "n"], "INDEXED_FIELDS": ["text"],
        "KEY_NAME": "StallWords", "__module__": __name__})
    loaded = time.perf_counter()
    Word.reset((Word(text=f"Word-{i:07d}-{i * 7919 % 1000003:07d}", n=str(i)) for i in range(n)), batchSize=1000)
    loaded = time.perf_counter() - loaded
    client = redis.Redis(**params)
    client.config_set("slowlog-log-slower-than", 1000)
    client.config_set("slowlog-max-len", 1_000_000)  # the default 128 would drop the early, long ones
    client.slowlog_reset()
    client.config_resetstat()
    stop_pinging = start_pinger(params)
    started = time.perf_counter()
    found = {}
    for q in range(queries):
        needle = f"{q}{q + 1}{q + 2}"  # a fresh plan every query: the walk runs every time
        found[f"contains {needle}"] = Word.objects.filter(text__contains=needle).count()
        found[f"icontains {needle}"] = Word.objects.filter(text__icontains=f"WORD-{needle}").count()
        found[f"startswith {q}"] = Word.objects.filter(text__startswith=f"Word-00{q}1").count()
        found[f"order page {q}"] = len(Word.objects.orderBy("-text")[q * 1000:q * 1000 + 10])
    elapsed = time.perf_counter() - started
    latencies = stop_pinging()
    slow = client.slowlog_get(1_000_000)
    commandstats = client.info("commandstats")  # read-only scripts run as EVALSHA_RO on Redis 7
    stats = commandstats.get("cmdstat_evalsha_ro") or commandstats.get("cmdstat_evalsha", {})
    Word.reset([])
    client.close()
    ms = [v * 1000 for v in latencies]
    longest = sorted(slow, key=lambda e: -e["duration"])[:3]
    return {"n": n, "load_s": round(loaded, 1), "lookups_s": round(elapsed, 2), "pings": len(ms),
            "ping_p50_ms": round(percentile(ms, 0.5), 3), "ping_p99_ms": round(percentile(ms, 0.99), 3),
            "ping_max_ms": round(max(ms), 3),
            "slowlog_max_ms": round(max((e["duration"] for e in slow), default=0) / 1000, 3),
            "slowlog": [(round(e["duration"] / 1000, 2), _name(e["command"])) for e in longest],
            "evalsha_calls": stats.get("calls"), "evalsha_usec_per_call": stats.get("usec_per_call"),
            "found": found}


def _name(command: Any) -> str:
    """The script and its arguments after the keys (what the step did), shortened."""
    text = command.decode("utf-8", "replace") if isinstance(command, bytes) else str(command)
    words = text.split(" ")
    if len(words) > 3 and words[0].upper().startswith("EVAL") and words[2].isdigit():
        rest = words[3 + int(words[2]):]
        return " ".join([words[0], words[1][:8], f"{words[2]} keys", *rest])[:100]
    return text[:60]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=5)
    args = parser.parse_args()
    from IndexedRedis.embedded import EmbeddedRedis, free_port

    with EmbeddedRedis(port=free_port(), unix_socket=False) as server:
        result = measure(dict(server.connection_params), args.n, args.queries)
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
