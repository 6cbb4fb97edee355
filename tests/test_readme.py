"""The README's Python examples run, in order, against the test server."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_has_the_examples() -> None:
    assert len(python_blocks()) >= 3


def test_readme_python_examples_run() -> None:
    namespace: dict = {"__name__": "readme_example"}
    for block in python_blocks():
        if "useEmbeddedRedis" in block:
            continue  # would re-point the default connection away from the test server
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
    song_model = namespace["Song"]
    assert song_model._meta.key_name == "TypedSongs"
    assert isinstance(namespace["by_title"], list)
