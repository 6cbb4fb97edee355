"""What a client sent, as the server saw it: MONITOR, fenced by ECHO markers.

A MONITOR connection sees every command the server executes.  Each measured action is
fenced by two ECHO markers sent from a separate client; the commands seen between the
markers that did not come from inside a Lua script are exactly the requests the action
sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import redis

__all__ = ["CommandLog"]


class CommandLog:
    """Records the top-level commands the server executes while a callable runs."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)
        self._marker = redis.Redis.from_url(url)
        self._monitor = self._client.monitor()
        self._monitor.__enter__()

    def close(self) -> None:
        self._monitor.__exit__(None, None, None)
        self._client.close()
        self._marker.close()

    def words(self, action: Callable[[], Any]) -> list[list[str]]:
        """Each command ``action`` sent, split into words, in order."""
        tag = uuid.uuid4().hex
        begin, end = f"begin-{tag}", f"end-{tag}"
        self._marker.echo(begin)
        action()
        self._marker.echo(end)
        seen: list[list[str]] = []
        started = False
        while True:
            entry = self._monitor.next_command()
            words = entry["command"].split(" ")
            if words[0].upper() == "ECHO" and len(words) > 1:
                if words[1] == begin:
                    started = True
                    continue
                if words[1] == end:
                    return seen
            if started and entry["client_type"] != "lua":
                seen.append(words)

    def commands(self, action: Callable[[], Any]) -> list[str]:
        """Names of the commands ``action`` sent, in order (script internals excluded).

        A read-only script's call counts under its plain name: EVALSHA_RO / EVAL_RO
        (which Redis 7 has and 6.2 lacks) as EVALSHA / EVAL, the same request, so that
        a count reads the same on either server.
        """
        return [_PLAIN.get(name, name) for name in (words[0].upper() for words in self.words(action))]


_PLAIN = {"EVALSHA_RO": "EVALSHA", "EVAL_RO": "EVAL"}
