"""A/B of two revisions of IndexedRedis on one private server: each round runs the
old and the new code in turn, each in a fresh process importing its own tree, and
times save, bulk reset, get by pk and filter_eq by client CPU (``process_time``, less
sensitive to a busy machine than wall time).  For telling a regression from noise.

    bench/.venv/bin/python -m bench.ab --old ef91a0e [--new WORKTREE_OR_REV] [--rounds 5] [--n 5000]

``--old`` / ``--new`` take a git revision (checked out into a temporary worktree) or a
directory holding an IndexedRedis tree (default for --new: this checkout).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from IndexedRedis.embedded import EmbeddedRedis, free_port

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)

# Runs in the child with the tree under test first on sys.path; prints one JSON line.
WORKER = r"""
import json, random, sys, time
tree, port, db, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, tree)
import IndexedRedis, redis
assert IndexedRedis.__file__.startswith(tree), IndexedRedis.__file__
from IndexedRedis import IndexedRedisModel, setDefaultRedisConnectionParams
setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": port, "db": db})
class Song(IndexedRedisModel):
    FIELDS = ["artist", "title", "album", "track_number", "duration", "description", "copyright"]
    INDEXED_FIELDS = ["artist", "title", "track_number"]
    KEY_NAME = "AbSongs"
redis.Redis(port=port, db=db).flushdb()
rows = [{"artist": f"artist-{i % 200}", "title": f"title-{i}", "album": f"album-{i % 50}",
         "track_number": str(i % 12 + 1), "duration": "3:00", "description": "d" * 40, "copyright": "c"}
        for i in range(n)]
out = {}
clock = time.process_time
start = clock()
for row in rows:
    Song(**row).save()
out["save"] = (clock() - start) / n * 1e6
redis.Redis(port=port, db=db).flushdb()
start = clock()
Song.reset([Song(**row) for row in rows])
out["bulk"] = (clock() - start) / n * 1e6
rng = random.Random(3)
pks = [rng.randint(1, n) for _ in range(3000)]
start = clock()
for pk in pks:
    Song.objects.get(pk)
out["get"] = (clock() - start) / len(pks) * 1e6
start = clock()
for i in range(200):
    Song.objects.filter(artist=f"artist-{i}").all()
out["filter_eq"] = (clock() - start) / 200 * 1e6
print(json.dumps(out))
"""


def tree_of(spec: str, scratch: str) -> str:
    """A directory holding the IndexedRedis tree of ``spec`` (a directory, or a git rev)."""
    if os.path.isdir(os.path.join(spec, "IndexedRedis")):
        return os.path.abspath(spec)
    target = os.path.join(scratch, spec.replace("/", "_"))
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "-f", target, spec], check=True,
                   capture_output=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="git revision or tree directory")
    parser.add_argument("--new", default=ROOT, help="git revision or tree directory (default: this checkout)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args(argv)
    scratch = tempfile.mkdtemp(prefix="ir-ab-")
    made: list[str] = []
    try:
        trees = {}
        for label, spec in (("old", args.old), ("new", args.new)):
            trees[label] = tree_of(spec, scratch)
            if trees[label].startswith(scratch):
                made.append(trees[label])
        results: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
        with EmbeddedRedis(port=free_port(), unix_socket=False) as server:
            for _ in range(args.rounds):
                for label, tree in trees.items():
                    proc = subprocess.run([sys.executable, "-c", WORKER, tree, str(server.port), "3", str(args.n)],
                                          capture_output=True, text=True, check=False)
                    if proc.returncode:
                        print(proc.stderr, file=sys.stderr)
                        return 1
                    results[label].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"client CPU per operation, medians of {args.rounds} interleaved rounds "
              f"(old {args.old}, new {args.new}):")
        for op in results["old"][0]:
            old = statistics.median(r[op] for r in results["old"])
            new = statistics.median(r[op] for r in results["new"])
            pairs = sorted(n[op] / o[op] for o, n in zip(results["old"], results["new"]))
            print(f"  {op:10s} old {old:8.1f} µs  new {new:8.1f} µs  new/old {new / old:.2f} "
                  f"(rounds {pairs[0]:.2f}–{pairs[-1]:.2f})")
        return 0
    finally:
        for tree in made:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", tree], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
