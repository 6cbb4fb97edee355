"""An incremental RESP3 reader for the tracking connection: it parses what has arrived
so far and says when a message is still incomplete, so the socket is polled without
ever blocking (redis-py's parsers block until a whole reply is there, and their push
handling differs between versions)."""

from __future__ import annotations

from typing import Any

from redis.exceptions import ResponseError

__all__ = ["Push", "RespReader"]


class Push(list):  # type: ignore[type-arg]
    """A message the server pushed (``>``), such as ``invalidate``."""


class _Incomplete(Exception):
    pass


_INCOMPLETE = _Incomplete()


class RespReader:
    """Bytes in (``feed``), whole messages out (``next``)."""

    __slots__ = ("buffer", "pos")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.pos = 0

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def next(self) -> tuple[bool, Any]:
        """(True, message) for the next whole message, or (False, None) until it has arrived."""
        try:
            value, pos = self._parse(self.pos)
        except _Incomplete:
            return False, None
        if pos >= len(self.buffer):
            self.buffer.clear()
            self.pos = 0
        else:
            self.pos = pos
        return True, value

    def _line(self, pos: int) -> tuple[bytes, int]:
        end = self.buffer.find(b"\r\n", pos)
        if end < 0:
            raise _INCOMPLETE
        return bytes(self.buffer[pos:end]), end + 2

    def _parse(self, pos: int) -> tuple[Any, int]:
        if pos >= len(self.buffer):
            raise _INCOMPLETE
        kind = self.buffer[pos:pos + 1]
        line, pos = self._line(pos + 1)
        if kind in (b"+", b"("):
            return line, pos
        if kind == b"-":
            return ResponseError(line.decode("utf-8", "replace")), pos
        if kind == b":":
            return int(line), pos
        if kind == b",":
            return float(line), pos
        if kind == b"#":
            return line == b"t", pos
        if kind == b"_":
            return None, pos
        if kind in (b"$", b"!", b"="):
            size = int(line)
            if size < 0:
                return None, pos
            if len(self.buffer) < pos + size + 2:
                raise _INCOMPLETE
            data = bytes(self.buffer[pos:pos + size])
            if kind == b"!":
                return ResponseError(data.decode("utf-8", "replace")), pos + size + 2
            return (data[4:] if kind == b"=" else data), pos + size + 2
        if kind in (b"*", b"~", b">", b"%", b"|"):
            count = int(line)
            if count < 0:
                return None, pos
            items: list[Any] = []
            for _ in range(count * 2 if kind in (b"%", b"|") else count):
                item, pos = self._parse(pos)
                items.append(item)
            if kind == b"|":  # attributes come before the value they describe
                return self._parse(pos)
            if kind == b"%":
                return dict(zip(items[::2], items[1::2])), pos
            return (Push(items) if kind == b">" else items), pos
        raise ResponseError(f"unexpected RESP type byte {kind!r} on the tracking connection")
