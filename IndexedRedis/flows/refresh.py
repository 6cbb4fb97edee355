"""What a refresh job asks of Redis, as I/O-free flows: its lease (one runner per
model at a time), the digest of the live dataset, and its metrics.

All of it lives beside the model's dataset, under the model's hash tag (see
``keys.ModelKeys.refresh_lease`` and ``refresh_state``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import scripts
from .common import OK
from .context import Context
from .requests import Flow, ScriptCall, Transaction

__all__ = ["LeaseReply", "lease_flow", "stored_digest_flow", "stored_fingerprint_flow", "record_run_flow",
           "state_flow"]


@dataclass(frozen=True)
class LeaseReply:
    """Whether the runner holds the lease; if not, who does and for how much longer."""

    held: bool
    holder: str = ""
    remaining_ms: int = 0


def lease_flow(ctx: Context, op: str, token: str, ttl_ms: int = 0) -> Flow[LeaseReply]:
    """``op`` is 'acquire', 'renew' or 'release'."""
    reply = yield ScriptCall(scripts.REFRESH_LEASE, (ctx.meta.keys.refresh_lease,), (op, token, ttl_ms))
    if reply[0] == OK:
        return LeaseReply(True)
    holder = reply[1].decode("utf-8", "replace") if isinstance(reply[1], bytes) else str(reply[1])
    return LeaseReply(False, holder, int(reply[2]))


def stored_digest_flow(ctx: Context) -> Flow[str | None]:
    """The digest of the live dataset, if the last refresh left one that still
    describes the live generation."""
    keys = ctx.meta.keys
    digest, digest_gen, live = yield Transaction(
        (("HGET", keys.refresh_state, "digest"), ("HGET", keys.refresh_state, "digest_gen"), ("GET", keys.gen)))
    if digest is None or digest_gen is None or digest_gen != (live or b"0"):
        return None
    return bytes(digest).decode("ascii")


def stored_fingerprint_flow(ctx: Context) -> Flow[tuple[str, str, int] | None]:
    """(source fingerprint, digest, generation) that the last refresh recorded, if its
    digest still describes the live generation and it recorded a fingerprint."""
    keys = ctx.meta.keys
    fingerprint, digest, digest_gen, live = yield Transaction(
        (("HGET", keys.refresh_state, "fingerprint"), ("HGET", keys.refresh_state, "digest"),
         ("HGET", keys.refresh_state, "digest_gen"), ("GET", keys.gen)))
    if not fingerprint or digest is None or digest_gen is None or digest_gen != (live or b"0"):
        return None
    return (bytes(fingerprint).decode("utf-8", "replace"), bytes(digest).decode("ascii"), int(digest_gen))


def record_run_flow(ctx: Context, ok: bool, fields: Mapping[str, Any], gen: int | None = None,
                    digest: str = "") -> Flow[bool]:
    """Store a run's metrics (and, for a run that succeeded, the digest of generation
    ``gen``); returns whether the digest was stored."""
    keys = ctx.meta.keys
    args: list[Any] = ["" if gen is None else gen, digest, "ok" if ok else "error"]
    for name, value in fields.items():
        args += (name, "" if value is None else str(value))
    reply = yield ScriptCall(scripts.REFRESH_RECORD, (keys.refresh_state, keys.gen), args)
    return bool(int(reply[1]))


def state_flow(ctx: Context) -> Flow[tuple[dict[str, str], str | None, int]]:
    """The refresh state hash, the lease holder (or None) and its remaining ms."""
    keys = ctx.meta.keys
    state, holder, remaining = yield Transaction(
        (("HGETALL", keys.refresh_state), ("GET", keys.refresh_lease), ("PTTL", keys.refresh_lease)))
    if isinstance(state, list):  # RESP2 without a response callback
        state = dict(zip(state[::2], state[1::2]))
    decoded = {bytes(k).decode(): bytes(v).decode("utf-8", "replace") for k, v in state.items()}
    return decoded, None if holder is None else bytes(holder).decode("utf-8", "replace"), int(remaining)
