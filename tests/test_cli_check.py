"""`indexedredis check` and `indexedredis stats`: tables, --json, exit statuses, and
--repair refusing to guess the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis

from IndexedRedis import IndexedRedisModel, IRField
from IndexedRedis.embedded import free_port

MODULE = textwrap.dedent('''
    from IndexedRedis import IndexedRedisModel, IRField

    class Song(IndexedRedisModel):
        FIELDS = ["artist", IRField("track", valueType=int)]
        INDEXED_FIELDS = ["artist", "track"]
        KEY_NAME = "CliChecked"
''')


class Song(IndexedRedisModel):  # the module's model, as the tests write its data
    FIELDS = ["artist", IRField("track", valueType=int)]
    INDEXED_FIELDS = ["artist", "track"]
    KEY_NAME = "CliChecked"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "cli_check_models.py").write_text(MODULE)
    return tmp_path


def run_cli(args: list[str], cwd: Path, env_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    if env_url:
        env["REDIS_URL"] = env_url
    env["COLUMNS"] = "200"
    return subprocess.run([sys.executable, "-m", "IndexedRedis", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _drift(client: redis.Redis) -> None:
    keys = Song._meta.keys
    gk = keys.generation(int(client.get(keys.gen)))
    client.sadd(gk.index("artist", b"a1"), 4242)


def test_check_prints_a_table_and_exits_by_what_it_found(project: Path, redis_url: str,
                                                         redis_client: redis.Redis) -> None:
    Song.reset([Song(artist=f"a{i % 3}", track=i % 4) for i in range(120)])
    clean = run_cli(["check", "cli_check_models:Song", "--url", redis_url], project)
    assert clean.returncode == 0, clean.stderr
    assert "No drift, no garbage." in clean.stdout and "120" in clean.stdout
    where = redis_url.removeprefix("redis://127.0.0.1")  # host:port/db, as the commands name servers
    assert f"check Song on 127.0.0.1{where}" in clean.stderr and "120/120" in clean.stderr  # server, progress

    _drift(redis_client)
    found = run_cli(["check", "cli_check_models:Song", "--url", redis_url], project)
    assert found.returncode == 1, found.stderr
    assert "stale_entry" in found.stdout and "4242" in found.stdout and "check --repair fixes it" in found.stdout

    as_json = run_cli(["check", "cli_check_models:Song", "--url", redis_url, "--json"], project)
    assert as_json.returncode == 1
    data = json.loads(as_json.stdout)
    assert data["found"] == {"stale_entry": 1} and data["objects"] == 120 and data["ok"] is False

    fixed = run_cli(["check", "cli_check_models:Song", "--url", redis_url, "--repair"], project)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "Repaired 1 of 1 finding(s); 0 remain." in fixed.stdout
    assert run_cli(["check", "cli_check_models:Song"], project, env_url=redis_url).returncode == 0


def test_repair_refuses_to_guess_the_server(project: Path) -> None:
    done = run_cli(["check", "cli_check_models:Song", "--repair"], project)
    assert done.returncode == 2 and "refusing to repair Song on a guessed server" in done.stderr
    assert "--url or REDIS_URL" in done.stderr


def test_errors_are_clear_and_exit_2(project: Path, redis_url: str) -> None:
    done = run_cli(["check", "nosuchmodule:Song", "--url", redis_url], project)
    assert done.returncode == 2 and "cannot import 'nosuchmodule'" in done.stderr
    dead = f"redis://127.0.0.1:{free_port()}/0"
    done = run_cli(["check", "cli_check_models:Song", "--url", dead], project)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert dead.removeprefix("redis://") in done.stderr and "Song" in done.stderr
    done = run_cli(["stats", "cli_check_models:Song", "--url", "nope://x"], project)
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_stats_table_and_json(project: Path, redis_url: str) -> None:
    Song.reset([Song(artist=f"a{i % 3}", track=i % 4) for i in range(90)])
    table = run_cli(["stats", "cli_check_models:Song", "--url", redis_url], project)
    assert table.returncode == 0, table.stderr
    for text in ("Memory by kind of key", "value sets", "Indexes", "artist", "last reset", "90 objects",
                 "(current)"):
        assert text in table.stdout, text
    data = json.loads(run_cli(["stats", "cli_check_models:Song", "--url", redis_url, "--json"], project).stdout)
    assert data["objects"] == 90 and data["memory"]["records"]["keys"] == 1
    assert {index["field"]: index["values"] for index in data["indexes"]} == {"artist": 3, "track": 4}
    assert data["last_reset"]["objects"] == 90 and data["last_reset"]["duration_ms"] >= 0
