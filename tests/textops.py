"""Random writes of one text field, for the text dictionary tests: saves, updates,
deletes and resets, applied in order to the stored objects (``objs``: pk -> object)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def apply_text_ops(model: Any, objs: dict[int, Any], ops: list[Any],
                   make: Callable[[Any, int | None], Any]) -> dict[int, Any]:
    """``ops``: ('save', text) | ('update', index, text) | ('delete', index) |
    ('reset', [text, ...]); an index picks among the stored pks, in order.
    ``make(text, n)`` builds an unsaved ``model`` object (``n``: its position in a
    reset's list, None for a save).  Returns the stored objects."""
    for op in ops:
        if op[0] == "save":
            obj = make(op[1], None)
            obj.save()
            objs[obj._id] = obj
        elif op[0] == "update" and objs:
            obj = objs[sorted(objs)[op[1] % len(objs)]]
            obj.text = op[2]
            obj.save()
        elif op[0] == "delete" and objs:
            objs.pop(sorted(objs)[op[1] % len(objs)]).delete()
        elif op[0] == "reset":
            fresh = [make(text, i) for i, text in enumerate(op[1])]
            model.reset(fresh)
            objs = {obj._id: obj for obj in fresh}
    return objs
