"""What IndexedRedis reads from a server once per client, on the client's first use:
one ``INFO`` (its default sections), for the eviction policy (see ``eviction``) and the
server's version (whether read-only scripts may go as EVALSHA_RO: Redis 7.0 and later;
see ``drivers/scriptforms``), and whether scripts may run as Redis functions (FCALL:
7.0 and later too).

A server below 7.0 has its client's connection pool marked for the plain form (and for
EVALSHA rather than FCALL) at once, so a 6.2 server never sees a refused EVALSHA_RO or
FCALL; where INFO is not allowed (an ACL
rule), the drivers learn the same from the first refusal instead.
"""

from __future__ import annotations

import re
from typing import Any

from redis.exceptions import ResponseError

from . import eviction
from .drivers import scriptforms
from .flows.requests import Command, Flow

__all__ = ["info_flow", "version_of", "apply"]


def info_flow() -> Flow[dict[str, Any] | None]:
    """The server's INFO, parsed (None where INFO is not allowed)."""
    try:
        info = yield Command(("INFO",))
    except ResponseError:
        return None
    return info if isinstance(info, dict) else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def version_of(info: dict[str, Any] | None) -> tuple[int, int] | None:
    """(major, minor) of ``redis_version`` in an INFO reply (None: not known)."""
    found = re.match(r"(\d+)\.(\d+)", _text((info or {}).get("redis_version")) or "")
    return (int(found[1]), int(found[2])) if found else None


def apply(client: Any, info: dict[str, Any] | None, server: str) -> None:
    """Act on a client's first INFO: mark a pre-7.0 server's pool for the plain form of
    read-only scripts, then warn about (or refuse) its eviction policy."""
    version = version_of(info)
    if version is not None and version < (7, 0):
        nodes_manager = getattr(client, "nodes_manager", None)
        if nodes_manager is not None:  # a cluster: INFO came from one node, taken for all it knows now
            scriptforms.plain_nodes.update(node.name for node in list(nodes_manager.nodes_cache.values()))
        else:
            scriptforms.mark_plain(getattr(client, "connection_pool", client))
            scriptforms.mark_no_functions(getattr(client, "connection_pool", client))
    if eviction.getEvictionPolicyCheck() != "off":
        eviction.judge(_text((info or {}).get("maxmemory_policy")), server)
