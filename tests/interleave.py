"""Running a flow with something else happening between two of its steps."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

__all__ = ["after_first_reply"]


def after_first_reply(flow: Generator[Any, Any, Any], action: Callable[[], Any]) -> Generator[Any, Any, Any]:
    """``flow``, as a driver runs it, with ``action()`` called once its first request has
    its reply: another client's write landing between the flow's first two steps."""
    request = next(flow)
    reply = yield request
    action()
    try:
        while True:
            request = flow.send(reply)
            reply = yield request
    except StopIteration as stop:
        return stop.value
