#!/usr/bin/env python3
"""Run IndexedRedis 6.0.3's own unit tests, unchanged, against this package.

The job downloads the 6.0.3 sdist from PyPI (``pip download``), unpacks only its
``tests/UnitTests`` into a temporary directory, installs the suite's runner (GoodTests,
from PyPI) beside it, starts a private ``redis-server`` on a free loopback port, and runs
every test file with ``INDEXEDREDIS_COMPAT=6`` and ``INDEXEDREDIS_ALLOW_PICKLE=1`` (pass
``--strict`` to run without them).  Nothing of 6.x is kept afterwards.

How the tests reach the private server: their ``TestProperties.py`` hard-codes
127.0.0.1:6379; ``tests/compat6/TestProperties.py`` is put first on ``PYTHONPATH`` and
stands in for it (it is the suite's settings file, which its README asks users to edit).
When ``unshare`` can make a network namespace, the whole run also happens inside a new
one with only its own loopback, so not even a stray connection could reach a shared
Redis on this machine.

The job fails (exit 1) if the download or install is impossible, if any test fails,
errors, or does not run (the expected tests are read from the test files themselves:
GoodTests silently skips a test class it cannot instantiate and exits 0 on failures).
It ends with the plain line ``compat6: N passed, N failed``.
"""

from __future__ import annotations

import argparse
import ast
import fcntl
import glob
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
SDIST = "indexedredis==6.0.3"
RUNNER = "GoodTests==3.0.5"
SWITCHES = {"INDEXEDREDIS_COMPAT": "6", "INDEXEDREDIS_ALLOW_PICKLE": "1"}
_RESULT_LINE = re.compile(r"^(test_\w+)\.py - (\w+)\.(\w+) (PASS|FAIL)\b")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class JobError(RuntimeError):
    """The job could not run the suite (download, install, server)."""


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise JobError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def fetch(workdir: str) -> str:
    """Download the sdist and the runner; return the unpacked UnitTests directory."""
    downloads = os.path.join(workdir, "downloads")
    _pip("download", "--no-deps", "--no-binary", ":all:", "-d", downloads, SDIST)
    archives = glob.glob(os.path.join(downloads, "*.tar.gz"))
    if len(archives) != 1:
        raise JobError(f"expected one sdist in {downloads}, found {archives}")
    tests_dir = os.path.join(workdir, "UnitTests")
    os.makedirs(tests_dir)
    with tarfile.open(archives[0]) as archive:
        for member in archive.getmembers():
            parts = member.name.split("/")
            # <name>-6.0.3/tests/UnitTests/<file>: the unit tests and nothing else.
            if len(parts) == 4 and parts[1:3] == ["tests", "UnitTests"] and member.isfile():
                source = archive.extractfile(member)
                assert source is not None
                with open(os.path.join(tests_dir, parts[3]), "wb") as target:
                    target.write(source.read())
    os.remove(os.path.join(tests_dir, "TestProperties.py"))  # replaced, see the module docstring
    if not glob.glob(os.path.join(tests_dir, "test_*.py")):
        raise JobError(f"no tests/UnitTests/test_*.py in {archives[0]}")
    _pip("install", "--no-deps", "--target", os.path.join(workdir, "runner"), RUNNER)
    return tests_dir


def expected_tests(path: str) -> set[str]:
    """``Class.method`` of every test GoodTests should run in one file."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and (node.name.startswith("Test") or node.name.endswith("Test")):
            prefix = "test_" if node.name.startswith("Test") else "test"
            found |= {
                f"{node.name}.{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef) and item.name.startswith(prefix)
            }
    return found


def _bring_up_loopback() -> None:
    """A new network namespace starts with its loopback interface down."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH22x", b"lo", flags | iff_up))


def _package_dir() -> str:
    import IndexedRedis

    return os.path.dirname(os.path.realpath(IndexedRedis.__file__))


def run_suite(workdir: str, files: Sequence[str], strict: bool) -> int:
    """Start the private server, run GoodTests, judge its output; the exit status."""
    from IndexedRedis.embedded import EmbeddedRedis

    tests_dir = os.path.join(workdir, "UnitTests")
    runner = os.path.join(workdir, "runner")
    goodtests = os.path.join(runner, "bin", "GoodTests.py")
    paths = sorted(glob.glob(os.path.join(tests_dir, "test_*.py")))
    if files:
        paths = [p for p in paths if os.path.basename(p) in files or os.path.basename(p)[:-3] in files]
        if not paths:
            raise JobError(f"none of {list(files)} is a 6.0.3 unit test file")
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES and k != "REDIS_URL"}
    if not strict:
        env.update(SWITCHES)
    with EmbeddedRedis(unix_socket=False) as server:
        env["IR_COMPAT6_REDIS_PORT"] = str(server.port)
        env["IR_COMPAT6_PACKAGE_DIR"] = _package_dir()
        env["PYTHONPATH"] = os.pathsep.join([HERE, runner])
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        print(f"compat6: redis-server {server.version} on 127.0.0.1:{server.port}; "
              f"switches: {'none (--strict)' if strict else ' '.join(f'{k}={v}' for k, v in SWITCHES.items())}",
              flush=True)
        done = subprocess.run(
            [sys.executable, goodtests, "-n", "1", "--no-colour", *paths],
            cwd=tests_dir, env=env, capture_output=True, text=True, timeout=900,
        )
    output = _ANSI.sub("", done.stdout + done.stderr)
    return judge(output, {os.path.basename(p)[:-3]: expected_tests(p) for p in paths}, done.returncode)


def judge(output: str, expected: dict[str, set[str]], returncode: int) -> int:
    """Per file: every expected test reported PASS and nothing reported FAIL."""
    status: dict[tuple[str, str], str] = {}
    for line in output.splitlines():
        match = _RESULT_LINE.match(line.strip())
        if match:
            key = (match[1], f"{match[2]}.{match[3]}")
            if status.get(key) != "FAIL":  # a failing teardown follows its test's PASS
                status[key] = match[4]
    passed = failed = 0
    lines = []
    for module, tests in sorted(expected.items()):
        names = tests | {name for (mod, name), _ in status.items() if mod == module}
        good = sorted(n for n in names if status.get((module, n)) == "PASS")
        bad = sorted(n for n in names if status.get((module, n)) != "PASS")
        passed += len(good)
        failed += len(bad)
        detail = "" if not bad else "   not passed: " + ", ".join(
            f"{n}{'' if (module, n) in status else ' (did not run)'}" for n in bad)
        lines.append(f"  {module:32} {len(good):3} passed {len(bad):3} failed{detail}")
    if failed or returncode != 0 or not passed:
        print(output)
        if returncode != 0:
            print(f"compat6: GoodTests exited {returncode}")
    print("compat6: IndexedRedis 6.0.3 unit tests against this package, per file:")
    print("\n".join(lines))
    print(f"compat6: {passed} passed, {failed} failed", flush=True)
    return 0 if (not failed and passed and returncode == 0) else 1


def _unshare_available() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", help="only these test files (e.g. test_IRField)")
    parser.add_argument("--strict", action="store_true", help="run without INDEXEDREDIS_COMPAT / _ALLOW_PICKLE")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temp dir, removed)")
    parser.add_argument("--no-netns", action="store_true", help="do not run inside a private network namespace")
    parser.add_argument("--_inside", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._inside:  # re-executed inside the network namespace, the sources fetched
        _bring_up_loopback()
        return run_suite(args._inside, args.files, args.strict)

    workdir = args.keep or tempfile.mkdtemp(prefix="indexedredis-compat6-")
    if args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
        os.makedirs(workdir)
    try:
        try:
            fetch(workdir)
        except JobError as exc:
            print(f"compat6: FAILED, cannot fetch the 6.0.3 unit tests: {exc}", file=sys.stderr)
            print("compat6: 0 passed, 1 failed", flush=True)
            return 1
        if not args.no_netns and _unshare_available():
            print("compat6: running inside a private network namespace (unshare -rn)", flush=True)
            command = ["unshare", "-rn", sys.executable, os.path.abspath(__file__), "--_inside", workdir,
                       *(["--strict"] if args.strict else []), *args.files]
            return subprocess.run(command).returncode
        print("compat6: unshare unavailable: running on the host's loopback (private port)", flush=True)
        return run_suite(workdir, args.files, args.strict)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
