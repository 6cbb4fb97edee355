#!/usr/bin/env bash
# Creates the benchmark environments (idempotent: re-running only installs what is missing).
#
#   bench/.venv      our package (editable, with hiredis) + the peers: rom, walrus,
#                    SQLAlchemy 2, psycopg, PyMySQL, matplotlib
#   bench/.venv-ir6  IndexedRedis 6.0.3 (its import name clashes with ours), with the
#                    redis-py it runs on
#
# Usage: bash bench/setup.sh        (from anywhere)
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
PY="${PYTHON:-python3}"

make_venv() {
    local dir="$1"
    if [ ! -x "$dir/bin/python" ]; then
        echo "== creating $dir"
        "$PY" -m venv "$dir"
        "$dir/bin/python" -m pip install -q --upgrade pip
    fi
}

# --- the main bench environment -------------------------------------------------------
make_venv "$BENCH/.venv"
echo "== installing into bench/.venv"
(cd "$ROOT" && "$BENCH/.venv/bin/python" -m pip install -q -e '.[hiredis]')
"$BENCH/.venv/bin/python" -m pip install -q \
    'rom' 'walrus' 'SQLAlchemy>=2' 'psycopg[binary]' 'PyMySQL' 'matplotlib' 'hiredis'

# --- IndexedRedis 6.0.3, in its own environment ---------------------------------------
# 6.0.3 (2017) declares only 'redis' and 'QueryableList'.  It uses nothing that redis-py
# later removed (hset/sadd/srem/pipeline/eval, ConnectionPool(**params)), but it was
# written against redis-py 2.10; redis-py 3.x is the oldest line that still installs and
# runs on current Pythons, and the bench driver checks the results (it asserts every
# query's count), so pin the 3.5 line, the last before the 4.x rewrite.  QueryableList IS
# needed: `import IndexedRedis` imports it (IRQueryableList).
make_venv "$BENCH/.venv-ir6"
echo "== installing into bench/.venv-ir6"
"$BENCH/.venv-ir6/bin/python" -m pip install -q \
    'indexedredis==6.0.3' 'redis>=3.5,<4' 'hiredis' 'QueryableList'

# --- keep the environments out of git ---------------------------------------------------
if ! grep -qxF 'bench/.venv*' "$ROOT/.gitignore" 2>/dev/null; then
    echo 'bench/.venv*' >> "$ROOT/.gitignore"
fi

# --- smoke test ---------------------------------------------------------------------------
(cd / && "$BENCH/.venv/bin/python" - <<'EOF'
import importlib.metadata as md
import IndexedRedis, rom, walrus, sqlalchemy, psycopg, pymysql, matplotlib, hiredis  # noqa: F401
print("bench/.venv ok:", ", ".join(f"{p} {md.version(p)}" for p in
      ["indexedredis", "redis", "hiredis", "rom", "walrus", "SQLAlchemy", "psycopg", "PyMySQL"]))
EOF
)
(cd / && "$BENCH/.venv-ir6/bin/python" -I - <<'EOF'
import importlib.metadata as md
import IndexedRedis, redis, hiredis  # noqa: F401
assert md.version("indexedredis") == "6.0.3"
print("bench/.venv-ir6 ok:", ", ".join(f"{p} {md.version(p)}" for p in
      ["indexedredis", "redis", "hiredis", "QueryableList"]))
EOF
)
