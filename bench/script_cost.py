"""What one save costs the server, phase by phase, and what it would cost as a Redis
function (a lead for issue #13, not a benchmark of the package's behaviour).

On a private redis-server, a real ``save.lua`` call of the standard workload (an insert
of a Song, captured from ``obj.save()``) is replayed ``--n`` times per variant, and
``INFO commandstats`` gives the server µs per call (the minimum of 3 repeats):

* ``return 1``, and the script cut short after each phase (the libraries' function
  definitions, the request's unpack, the generation and schema checks, the beliefs,
  the unique check and the layout, the dictionaries' upkeep), then whole;
* the script as the package runs it on Redis 7.0+: its own function library
  (``Script.library_source``: ``FUNCTION LOAD``, then ``FCALL``), where ``lib.lua`` and
  ``textindex.lua`` are defined once when the library loads, not on every call as
  EVALSHA runs them; the libraries' per-call state is reset on entry.

The replayed insert repeats one title, so from the second call on the title's set is
not new and the text dictionary is not written: the whole-script figure is a little
below a real insert's.

    bench/.venv/bin/python -m bench.script_cost [--n 3000]
"""

from __future__ import annotations

import argparse
from typing import Any

import redis

CUTS = [("the libraries' definitions", "local request = cmsgpack.unpack"),
        ("+ the request's unpack", "local models, objects"),
        ("+ generation, schema and cache flag", "-- Check every belief"),
        ("+ the beliefs", "local clash, field = unique_clash"),
        ("+ unique check, schema, layout, write count", "local upkeeps = {}"),
        ("+ the dictionaries' upkeep set up", "local pks = {1}")]


def _capture_save(params: dict[str, Any]) -> Any:
    """The ScriptCall of the last of 200 inserts of the standard workload."""
    from IndexedRedis import scripts, setDefaultRedisConnectionParams
    from IndexedRedis.drivers import runner, sync

    from .workload import rows, song_model

    setDefaultRedisConnectionParams(params)
    captured: list[Any] = []
    original = sync.execute

    def spy(client: Any, request: Any) -> Any:
        if getattr(request, "script", None) is scripts.SAVE:
            captured.append(request)
        return original(client, request)

    sync.execute = spy  # type: ignore[assignment]
    runner._sync_executors.clear()
    try:
        song = song_model("ScriptCostSongs")
        for row in rows(200):
            song(**row).save()
    finally:
        sync.execute = original  # type: ignore[assignment]
        runner._sync_executors.clear()
    return captured[-1]


def _per_call(admin: redis.Redis, command: str, send: Any, n: int) -> float:
    best = float("inf")
    for _ in range(3):
        admin.config_resetstat()
        for _ in range(n):
            send()
        best = min(best, float(admin.info("commandstats")[f"cmdstat_{command}"]["usec_per_call"]))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="calls per variant and repeat")
    args = parser.parse_args(argv)

    from IndexedRedis import scripts
    from IndexedRedis.embedded import EmbeddedRedis, free_port

    with EmbeddedRedis(port=free_port(), unix_socket=False) as server:
        params = {"host": "127.0.0.1", "port": server.port}
        request = _capture_save(params)
        admin = redis.Redis(**params)
        keys, argv_ = list(request.keys), list(request.args)
        lib = scripts._LIB
        text = scripts._here.joinpath("textindex.lua").read_text(encoding="utf-8")
        body = scripts._here.joinpath("save.lua").read_text(encoding="utf-8")

        def evalsha_cost(source: str) -> float:
            sha = admin.script_load(source)
            return _per_call(admin, "evalsha", lambda: admin.evalsha(sha, len(keys), *keys, *argv_), args.n)

        print(f"save.lua, server µs per call (redis-server {server.version}, {args.n} calls x 3, the minimum):")
        print(f"  {'EVALSHA of return 1':48} {evalsha_cost('return 1'):6.1f}")
        for label, marker in CUTS:
            cut = body.index(marker)
            source = "\n".join((lib, text, body[:cut] + "do return 1 end\n"))
            print(f"  {label:48} {evalsha_cost(source):6.1f}")
        print(f"  {'the whole script (EVALSHA)':48} {evalsha_cost(chr(10).join((lib, text, body))):6.1f}")
        try:
            admin.execute_command("FUNCTION", "LOAD", "REPLACE", scripts.SAVE.library_source)
        except redis.ResponseError as exc:
            print(f"  as a function: cannot load ({exc}); Redis 7.0 or later is needed")
            return 0
        fcall = _per_call(admin, "fcall", lambda: admin.execute_command(
            "FCALL", scripts.SAVE.function_name, len(keys), *keys, *argv_), args.n)
        print(f"  {'the whole script as a function (FCALL)':48} {fcall:6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
