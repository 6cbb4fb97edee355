"""mypy on typed model code (tests/typing_cases/): the typed declaration style, through
``dataclass_transform`` on IndexedRedisModel, tells mypy each model's attributes, their
types and its constructor's keywords, and query results are typed by the model.

``typed_ok.py`` must pass with no error (its ``assert_type`` lines compare what mypy
infers with what they state); ``typed_errors.py`` must fail on exactly the lines marked
``# E: [code] text``, with that code and text.  One mypy run per case file, with the
project's mypy settings (python_version 3.10) and a cache in a temporary directory.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).resolve().parent / "typing_cases"
_REPORTED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: (?P<message>.*?)\s+\[(?P<code>[\w-]+)\]$")
_EXPECTED = re.compile(r"#\s*E:\s*\[(?P<code>[\w-]+)\]\s*(?P<text>.*)$")


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy_cache")


def run_mypy(case: str, cache: Path) -> tuple[int, list[tuple[int, str, str]], str]:
    """mypy's exit status, its errors in the case file as (line, code, message), and its output."""
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache),
         "--follow-imports=silent", "--show-error-codes", "--no-pretty", "--no-color-output",
         str(CASES / case)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    errors = []
    for line in done.stdout.splitlines():
        match = _REPORTED.match(line.strip())
        if match and Path(match["file"]).name == case:
            errors.append((int(match["line"]), match["code"], match["message"]))
    return done.returncode, errors, output


def expected_errors(case: str) -> dict[int, tuple[str, str]]:
    found = {}
    for number, line in enumerate((CASES / case).read_text(encoding="utf-8").splitlines(), start=1):
        match = _EXPECTED.search(line)
        if match:
            found[number] = (match["code"], match["text"].strip())
    return found


def test_typed_model_code_passes_mypy(mypy_cache: Path) -> None:
    status, errors, output = run_mypy("typed_ok.py", mypy_cache)
    assert errors == [], output
    assert status == 0, output
    assert "Success: no issues found" in output


def test_mypy_catches_misspelt_attributes_wrong_keywords_and_wrong_types(mypy_cache: Path) -> None:
    expected = expected_errors("typed_errors.py")
    assert len(expected) >= 8  # the case file itself is intact
    status, errors, output = run_mypy("typed_errors.py", mypy_cache)
    assert status == 1, output
    reported = {line: (code, message) for line, code, message in errors}
    assert len(reported) == len(errors), output  # one error per marked line
    assert sorted(reported) == sorted(expected), output
    for line, (code, text) in expected.items():
        got_code, message = reported[line]
        assert got_code == code, f"line {line}: {got_code} {message}"
        assert text in message, f"line {line}: expected {text!r} in {message!r}"
    messages = [message for _, _, message in errors]
    assert '"Person" has no attribute "nmae"' in messages
    assert any(m.startswith('Unexpected keyword argument "agee"') for m in messages)
