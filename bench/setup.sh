#!/usr/bin/env bash
# Creates the benchmark environments (idempotent: re-running only installs what is missing).
#
#   bench/.venv      our package (editable, with hiredis) + the peers: rom, walrus,
#                    SQLAlchemy 2 (with asyncio), psycopg, PyMySQL, asyncmy, matplotlib, and the web
#                    app's Starlette and uvicorn (FastAPI too: bench.webapp_floor compares it)
#   bench/.venv-ir6  IndexedRedis 6.0.3 (its import name clashes with ours), with the
#                    redis-py it runs on
#   wrk              Debian's HTTP load generator (bench.webapp_run), where apt-get exists
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

# --- Debian's wrk: the web app benchmark's load generator (bench.webapp_run) ------------
# Without it, bench.webapp_run falls back to a Python client, which saturates first and
# measures itself.  Installed here, as .ci/run installs redis-server, where apt-get exists.
if ! command -v wrk >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    echo "== installing wrk (Debian)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk) \
        || echo "   wrk could not be installed: bench.webapp_run will use its Python client"
fi

# --- the main bench environment -------------------------------------------------------
make_venv "$BENCH/.venv"
echo "== installing into bench/.venv"
(cd "$ROOT" && "$BENCH/.venv/bin/python" -m pip install -q -e '.[hiredis]')
"$BENCH/.venv/bin/python" -m pip install -q \
    'rom' 'walrus' 'SQLAlchemy>=2' 'psycopg[binary]' 'PyMySQL' 'matplotlib' 'hiredis' \
    'starlette' 'fastapi' 'uvicorn[standard]' 'httpx' 'SQLAlchemy[asyncio]' 'asyncmy'

# --- IndexedRedis 6.0.3, in its own environment ---------------------------------------
# 6.0.3 declares only 'redis' (unpinned) and 'QueryableList' (needed: `import
# IndexedRedis` imports it).  It uses nothing redis-py has removed (hset/sadd/srem/
# pipeline/eval, ConnectionPool(**params)): its save, reset, filter (eq and ne) and get
# were checked on redis-py 3.0.1, 3.5.3, 4.6.0 and 8.1.0.  Pin the same range as our own
# package (pyproject: redis>=5.0,<9), so both sides use the same client library and
# parser and the comparison measures the ORMs.  (If a newer redis-py ever breaks 6.0.3,
# 'redis>=3.5,<4' is the known-good fallback.)
make_venv "$BENCH/.venv-ir6"
echo "== installing into bench/.venv-ir6"
"$BENCH/.venv-ir6/bin/python" -m pip install -q \
    'indexedredis==6.0.3' 'redis>=5.0,<9' 'hiredis' 'QueryableList'

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
