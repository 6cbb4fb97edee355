"""``indexedredis refresh``: runs a job once, on an interval, and shows its status."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from _refresh_models import Stock

from IndexedRedis.cli import main

HERE = os.path.dirname(__file__)


def test_refresh_once_then_status(capsys, monkeypatch):
    monkeypatch.chdir(HERE)
    assert main(["refresh", "_refresh_models:quick_jobs", "--once"]) == 0
    assert Stock.objects.count() == 25
    assert "quick-stock: swapped, 25 rows" in capsys.readouterr().err
    assert main(["refresh", "_refresh_models:quick_jobs"]) == 0
    assert "quick-stock: unchanged, 25 rows" in capsys.readouterr().err
    assert main(["refresh", "_refresh_models:quick_jobs", "--status"]) == 0
    shown = capsys.readouterr().err
    assert "refresh job quick-stock" in shown and "runs / failures" in shown and "2 / 0" in shown


def test_refresh_every_runs_until_interrupted(redis_url):
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": HERE}
    child = subprocess.Popen([sys.executable, "-m", "IndexedRedis", "refresh", "_refresh_models:quick_jobs",
                              "--every", "0.2"], cwd=HERE, env=env, stderr=subprocess.PIPE, text=True)
    try:
        import time

        deadline = time.monotonic() + 30
        while Stock.objects.count() != 25:
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.1)
        time.sleep(1.0)
    finally:
        child.send_signal(2)
        _, err = child.communicate(timeout=30)
    assert "every 0.2s" in err and err.count("quick-stock: unchanged") >= 2


def test_bad_job_names_are_clear_errors(monkeypatch):
    monkeypatch.chdir(HERE)
    with pytest.raises(SystemExit, match="expected module:job"):
        main(["refresh", "nojob"])
    with pytest.raises(SystemExit, match="is not a RefreshJob"):
        main(["refresh", "_refresh_models:Stock"])
