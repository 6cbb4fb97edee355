"""Another process for the client-side cache tests: it writes what its stdin asks,
through IndexedRedis (a model without a cache of its own), and answers each line with
one JSON line once the write was acknowledged.

    python cache_writer.py REDIS_URL       then lines of JSON:
    {"op": "save", "pk": 3, "values": {"title": "x"}}   -> {"pk": 3, "t": <monotonic time of the ack>}
    {"op": "insert", "values": {...}}                   -> {"pk": <new pk>, "t": ...}
    {"op": "delete", "pk": 3}                           -> {"deleted": 1, "t": ...}
    {"op": "reset", "rows": [{...}, ...]}               -> {"pks": [...], "t": ...}
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _cache_models import WriterSong  # noqa: E402

import IndexedRedis  # noqa: E402


def main() -> None:
    IndexedRedis.setDefaultRedisConnectionParams(IndexedRedis.connection.params_from_url(sys.argv[1]))
    for line in sys.stdin:
        ask = json.loads(line)
        op = ask["op"]
        if op == "save":
            obj = WriterSong.objects.get(ask["pk"])
            for name, value in ask["values"].items():
                setattr(obj, name, value)
            out = {"pk": int(obj.save())}
        elif op == "insert":
            out = {"pk": int(WriterSong(**ask["values"]).save())}
        elif op == "delete":
            out = {"deleted": WriterSong.deleter.deleteByPk(ask["pk"])}
        elif op == "reset":
            out = {"pks": WriterSong.reset([WriterSong(**row) for row in ask["rows"]])}
        else:
            raise ValueError(op)
        out["t"] = time.monotonic()
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
