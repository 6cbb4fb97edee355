"""The server's ``maxmemory-policy``, read once per client on its first use.

An ``allkeys-*`` policy lets Redis evict any key when memory is full: a record, an
index entry or a generation pointer, so that queries then disagree with the stored
objects, and nothing says so.  ``noeviction`` (writes fail with OutOfMemoryError
instead) and the ``volatile-*`` policies (which evict only keys with a TTL; IndexedRedis
sets none) are safe.  What happens on a risky policy is set by
``setEvictionPolicyCheck``: a warning (the default), a refusal, or nothing.
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Any

from redis.exceptions import ResponseError

from .exceptions import EvictionPolicyError, EvictionWarning
from .flows.requests import Command, Flow

__all__ = ["setEvictionPolicyCheck", "getEvictionPolicyCheck", "policy_flow", "judge", "EVICTING_POLICIES",
           "ENV_VAR", "unchecked", "mark_checked"]

EVICTING_POLICIES = frozenset({"allkeys-lru", "allkeys-lfu", "allkeys-random"})
ENV_VAR = "INDEXEDREDIS_EVICTION_CHECK"
_MODES = ("warn", "refuse", "off")
_chosen: str | None = None
_epoch = 1  # a client holds the epoch it was checked in (an attribute of its own: cheap to read)
_MARK = "_indexedredis_eviction_checked"
_warned: set[str] = set()  # servers warned about, once each per process
_lock = threading.Lock()


def setEvictionPolicyCheck(mode: str) -> None:
    """What a server whose ``maxmemory-policy`` may evict IndexedRedis's keys gets:
    ``'warn'`` (an EvictionWarning, once per server; the default), ``'refuse'``
    (EvictionPolicyError on its first use, before anything is read or written) or
    ``'off'``.  The environment variable ``INDEXEDREDIS_EVICTION_CHECK`` sets the same."""
    global _chosen, _epoch
    if mode not in _MODES:
        raise ValueError(f"setEvictionPolicyCheck: mode must be one of {', '.join(map(repr, _MODES))}, got {mode!r}")
    _chosen = mode
    _epoch += 1  # every client is checked again


def getEvictionPolicyCheck() -> str:
    if _chosen is not None:
        return _chosen
    mode = os.environ.get(ENV_VAR, "warn").strip().lower() or "warn"
    if mode not in _MODES:
        raise ValueError(f"{ENV_VAR}={mode!r}: expected one of {', '.join(_MODES)}")
    return mode


def unchecked(client: Any) -> bool:
    """Whether ``client``'s server is still to be checked (cheap: the hot path asks)."""
    return getattr(client, _MARK, 0) != _epoch


def mark_checked(client: Any) -> None:
    setattr(client, _MARK, _epoch)


def policy_flow() -> Flow[str | None]:
    """The server's ``maxmemory-policy`` (None where INFO is not allowed, as for a
    restricted ACL user: the check is then skipped).  A client's first use reads it
    from the one INFO of ``firstuse`` instead."""
    try:
        info = yield Command(("INFO", "memory"))
    except ResponseError:
        return None
    policy = info.get("maxmemory_policy") if isinstance(info, dict) else None
    return None if policy is None else (policy.decode() if isinstance(policy, bytes) else str(policy))


def judge(policy: str | None, server: str) -> None:
    """Warn about, or refuse, a server whose policy may evict our keys."""
    mode = getEvictionPolicyCheck()
    if policy not in EVICTING_POLICIES or mode == "off":
        return
    message = (f"Redis at {server} has maxmemory-policy {policy}: when its memory is full it evicts any key, "
               f"IndexedRedis's records and index entries included, and queries then disagree with the stored "
               f"objects. Set maxmemory-policy to noeviction (a write then fails with OutOfMemoryError) or to a "
               f"volatile-* policy (IndexedRedis keys have no TTL, so those never evict them)")
    if mode == "refuse":
        raise EvictionPolicyError(message + "; setEvictionPolicyCheck('refuse') refuses such a server")
    with _lock:
        if server in _warned:
            return
        _warned.add(server)
    warnings.warn(message + ", or setEvictionPolicyCheck('off') to silence this", EvictionWarning, stacklevel=4)
