"""IndexedRedis 6.0.3 under the standard workload.  Runs with bench/.venv-ir6's Python
(6.0.3 has the same import name as ours), started by bench/run.py:

    bench/.venv-ir6/bin/python -I bench/ir6_driver.py round --host H --port P --db D --plan '{"n": ...}'
    bench/.venv-ir6/bin/python -I bench/ir6_driver.py stall --host H --port P --db D --n 100000

and prints one line of JSON.  ``-I`` keeps the repository root (with our IndexedRedis)
off ``sys.path``; the root is appended at the *end* so ``bench.*`` imports while
``IndexedRedis`` still resolves to the installed 6.0.3.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.append(ROOT)


def _load_ir6() -> Any:
    import IndexedRedis

    if os.path.dirname(os.path.abspath(IndexedRedis.__file__)) == os.path.join(ROOT, "IndexedRedis"):
        raise SystemExit(f"ir6_driver: imported our IndexedRedis ({IndexedRedis.__file__}), not 6.0.3")
    IndexedRedis.toggleDeprecatedMessages(False)
    return IndexedRedis


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    return {"indexedredis 6.0.3": md.version("indexedredis"),
            "redis-py (for 6.0.3)": md.version("redis"), "QueryableList": md.version("QueryableList")}


def make_adapter(params: dict[str, Any]) -> Any:
    import redis

    from bench.ops import Adapter, redis_cpu
    from bench.workload import song_model

    IndexedRedis = _load_ir6()

    class IR6(Adapter):
        """IndexedRedis 6.0.3, through the same public API as ours."""

        name = "IndexedRedis 6.0.3"

        def __init__(self) -> None:
            IndexedRedis.setDefaultRedisConnectionParams(dict(params))
            self.admin = redis.Redis(**params)
            self.Song = song_model("BenchSongs")

        def clear(self) -> None:
            self.admin.flushdb()

        def used_memory(self) -> int:
            return int(self.admin.info("memory")["used_memory"])

        def server_cpu(self) -> float:
            return redis_cpu(self.admin.info("cpu"))

        def insert_one(self, rows: list[dict[str, str]]) -> list[Any]:
            Song, pks = self.Song, []
            for row in rows:
                obj = Song(**row)
                obj.save()
                pks.append(obj._id)
            return pks

        def insert_bulk(self, rows: list[dict[str, str]]) -> list[Any]:
            Song = self.Song
            return list(Song.reset([Song(**row) for row in rows]))

        def filter_eq(self, artist: str) -> list[Any]:
            return self.Song.objects.filter(artist=artist).all()

        def filter_ne(self, track: str) -> list[Any]:
            return self.Song.objects.filter(track_number__ne=track).all()

        def get(self, pk: Any) -> Any:
            return self.Song.objects.get(pk)

    return IR6()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["round", "stall", "versions"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6379)
    parser.add_argument("--db", type=int, default=0)
    parser.add_argument("--plan", default="{}", help="JSON of bench.ops.Plan's fields (round)")
    parser.add_argument("--n", type=int, default=100_000, help="objects (stall)")
    args = parser.parse_args()
    params = {"host": args.host, "port": args.port, "db": args.db}

    if args.mode == "versions":
        _load_ir6()
        print(json.dumps({"versions": _versions()}))
    elif args.mode == "round":
        from bench.ops import Dataset, Plan, run_round

        data = Dataset(Plan(**json.loads(args.plan)))
        adapter = make_adapter(params)
        try:
            result = run_round(adapter, data)
        finally:
            adapter.clear()
        print(json.dumps({"result": result, "versions": _versions()}))
    else:
        _load_ir6()
        from bench.stall import measure

        print(json.dumps({"result": measure(params, args.n), "versions": _versions()}))


if __name__ == "__main__":
    main()
