"""IndexedRedis 6.0.3's own unit tests, run unchanged against this package.

``tests/compat6/run.py`` downloads the 6.0.3 sdist from PyPI, runs its
``tests/UnitTests`` with their own runner (GoodTests) on a private redis-server, with
``INDEXEDREDIS_COMPAT=6`` and ``INDEXEDREDIS_ALLOW_PICKLE=1``, and throws it all away.
Without network access this test fails, saying why; it never skips.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

JOB = Path(__file__).resolve().parent / "compat6" / "run.py"
UNIT_TESTS_OF_6_0_3 = 74  # the test methods of 6.0.3's tests/UnitTests


def test_the_6_0_3_unit_tests_pass_unchanged() -> None:
    done = subprocess.run([sys.executable, str(JOB)], capture_output=True, text=True, timeout=600)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert re.search(rf"^compat6: {UNIT_TESTS_OF_6_0_3} passed, 0 failed$", done.stdout, re.MULTILINE), report
