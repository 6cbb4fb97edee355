"""``module:attribute`` specs, as the command line takes them (``myapp.models:Song``)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from .names import nearest

__all__ = ["resolve"]


def resolve(spec: str, command: str, kind: str, example: str) -> Any:
    """What ``module:attribute`` names, importing the module from the working directory
    too; a malformed spec, a module that does not import or a missing attribute ends
    the command with a one-line SystemExit (naming the likely attribute)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"{command}: expected module:{kind} (like {example}), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"{command}: cannot import {module_name!r}: {exc}") from None
    if not hasattr(module, attribute):
        names = [name for name in dir(module) if not name.startswith("_")]
        raise SystemExit(f"{command}: module {module_name!r} has no attribute {attribute!r}."
                         f"{nearest(attribute, names)}")
    return getattr(module, attribute)
