"""`indexedredis reindex module:Model` rebuilds a model's indexes, with progress."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import redis
from consistency import assert_indexes_consistent, assert_no_garbage

from IndexedRedis import IndexedRedisModel, IRField


class Before(IndexedRedisModel):
    FIELDS = ["name", IRField("size", valueType=int)]
    INDEXED_FIELDS = ["name"]
    KEY_NAME = "CliReindexed"


MODULE = textwrap.dedent('''
    from IndexedRedis import IndexedRedisModel, IRField

    class After(IndexedRedisModel):
        FIELDS = ["name", IRField("size", valueType=int)]
        INDEXED_FIELDS = ["name", "size"]
        KEY_NAME = "CliReindexed"
''')


def run_cli(args: list[str], cwd: Path, redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    return subprocess.run([sys.executable, "-m", "IndexedRedis", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_reindex_adds_a_new_index_and_reports_progress(tmp_path: Path, redis_url: str,
                                                       redis_client: redis.Redis) -> None:
    Before.reset([Before(name=f"n{i}", size=i % 7) for i in range(450)])
    (tmp_path / "cli_models.py").write_text(MODULE)

    done = run_cli(["reindex", "cli_models:After", "--url", redis_url], tmp_path, redis_url)

    assert done.returncode == 0, done.stderr
    assert "450/450" in done.stderr and "Reindexed 450 After object(s)." in done.stderr
    port, db = redis_url.rsplit(":", 1)[1].split("/")
    assert f"reindex After on 127.0.0.1:{port}/{db}" in " ".join(done.stderr.split())  # says where it works
    sys.path.insert(0, str(tmp_path))
    try:
        from cli_models import After  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    assert After.objects.filter(size=3).count() == len([i for i in range(450) if i % 7 == 3])
    assert sorted(o.name for o in After.objects.filter(size__gte=6)) == sorted(
        f"n{i}" for i in range(450) if i % 7 == 6)
    assert_indexes_consistent(redis_client, After)
    assert_no_garbage(redis_client, After)


def test_reindex_names_a_bad_model_clearly(tmp_path: Path, redis_url: str) -> None:
    done = run_cli(["reindex", "nosuchmodule:Thing", "--url", redis_url], tmp_path, redis_url)
    assert done.returncode != 0 and "cannot import 'nosuchmodule'" in done.stderr
    done = run_cli(["reindex", "no_colon_here", "--url", redis_url], tmp_path, redis_url)
    assert done.returncode != 0 and "expected module:Model" in done.stderr


def test_reindex_names_a_misspelt_model_and_a_bad_url_without_a_traceback(tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "cli_models.py").write_text(MODULE)
    done = run_cli(["reindex", "cli_models:Aftr", "--url", redis_url], tmp_path, redis_url)
    assert done.returncode != 0 and "module 'cli_models' has no attribute 'Aftr'. Did you mean 'After'?" in done.stderr
    done = run_cli(["reindex", "cli_models:IRField", "--url", redis_url], tmp_path, redis_url)
    assert done.returncode != 0 and "cli_models.IRField is a type, not an IndexedRedisModel class" in done.stderr
    done = run_cli(["reindex", "cli_models:After", "--url", "localhost:6379"], tmp_path, redis_url)
    assert done.returncode == 2 and "Redis URL must specify" in done.stderr and "Traceback" not in done.stderr
    done = run_cli(["--version"], tmp_path, redis_url)
    assert done.returncode == 0 and done.stdout.startswith("indexedredis ")
