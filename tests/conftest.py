"""Shared pytest fixtures.

Tests only ever talk to Redis servers that these fixtures started themselves
(a private ``redis-server`` on a free loopback port, see
:mod:`IndexedRedis.embedded`).  That is what makes FLUSHDB between tests safe:
no developer or CI Redis -- in particular nothing on 127.0.0.1:6379 -- is ever
contacted, let alone flushed.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType

import pytest
import redis
from monitor import CommandLog

from IndexedRedis.embedded import EmbeddedRedis, EmbeddedRedisError, free_port

pytest_plugins = ["cluster_fixtures"]  # real local Redis Clusters (tests/clusters.py)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """One private redis-server for the whole session (start-up is not free)."""
    server: EmbeddedRedis | None = None
    last_error: EmbeddedRedisError | None = None
    # free_port() can race with other processes; retry with a fresh port.
    for _ in range(3):
        candidate = EmbeddedRedis(port=free_port(), unix_socket=False)
        try:
            candidate.start()
        except EmbeddedRedisError as exc:
            last_error = exc
            continue
        server = candidate
        break
    if server is None:
        assert last_error is not None
        raise last_error
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_db() -> int:
    """Database number used by a test; override in a module to use another."""
    return 0


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis, redis_db: int) -> Iterator[str]:
    """URL of an empty database on the fixture-owned server."""
    # Flush only the server this session started -- never anything else.
    client = redis_server.client(db=redis_db)
    try:
        client.flushdb()
    finally:
        client.close()
    yield f"redis://127.0.0.1:{redis_server.port}/{redis_db}"


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A raw redis-py client on the test database, for direct assertions."""
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


def _connection_module() -> ModuleType | None:
    """``IndexedRedis.connection`` if it exists yet, else None."""
    try:
        return importlib.import_module("IndexedRedis.connection")
    except ImportError:
        return None


def _reset_connection_state() -> None:
    """Drop cached pools and default params so tests cannot leak into each other."""
    module = _connection_module()
    if module is None:
        return
    clear = getattr(module, "clearRedisPools", None)
    if callable(clear):
        clear()
    reset = getattr(module, "_reset_default_for_tests", None)
    if callable(reset):
        reset()


@pytest.fixture(autouse=True)
def ir_default_connection(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Point IndexedRedis' default connection (REDIS_URL) at the test server."""
    _reset_connection_state()
    monkeypatch.setenv("REDIS_URL", redis_url)
    yield redis_url
    _reset_connection_state()


@pytest.fixture
def log(redis_url: str) -> Iterator[CommandLog]:
    """The commands an action sends, as the server saw them (see monitor.py)."""
    recorder = CommandLog(redis_url)
    try:
        yield recorder
    finally:
        recorder.close()


@pytest.fixture(autouse=True)
def strict_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts in the strict default: no 6.x switch from the environment, and
    whatever a test sets with ``setCompatibility`` is undone after it."""
    from IndexedRedis import compat

    monkeypatch.delenv(compat.COMPAT_ENV_VAR, raising=False)
    monkeypatch.setattr(compat, "_chosen", compat._UNSET)
    yield


@pytest.fixture(autouse=True)
def script_functions_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts with scripts as Redis functions where the server has them (the
    default), whatever the environment says; a test's ``setScriptFunctions`` is undone."""
    from IndexedRedis.drivers import scriptforms

    monkeypatch.delenv(scriptforms.FUNCTIONS_ENV_VAR, raising=False)
    scriptforms.setScriptFunctions(None)
    yield
    scriptforms.setScriptFunctions(None)


@pytest.fixture
def evalsha_only(script_functions_default: None) -> Iterator[None]:
    """Scripts by EVALSHA only, as with ``setScriptFunctions(False)``: for the tests that
    count the EVALSHA path's round trips (tests/test_functions.py counts FCALL's)."""
    from IndexedRedis.drivers import scriptforms

    scriptforms.setScriptFunctions(False)
    yield
