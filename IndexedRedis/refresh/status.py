"""A refresh job's metrics, as kept in Redis beside its model (for ``indexedredis
refresh --status`` and ``indexedredis stats``)."""

from __future__ import annotations

import time
from typing import Any

from ..dispatch import run_sync
from ..flows.refresh import state_flow

__all__ = ["refresh_status", "format_status"]

_NUMBERS = {"last_success": float, "last_error_at": float, "duration": float, "rows": int, "rows_read": int,
            "rows_changed": int,
            "runs": int, "failures": int}


def refresh_status(model: Any) -> dict[str, Any]:
    """The metrics of the refresh runs of ``model``: last_success and last_error_at
    (Unix times), duration (s), rows, rows_changed, status, last_error, runs, failures,
    job, source, and ``lease_holder`` / ``lease_ms_left`` while a runner holds the lease.
    Empty (apart from the lease fields) if no refresh job has run."""
    state, holder, remaining = run_sync(model, state_flow)
    status: dict[str, Any] = {"model": model.__name__}
    for name, raw in state.items():
        if name in ("digest", "digest_gen", "fingerprint"):
            continue
        kind = _NUMBERS.get(name)
        status[name] = kind(raw) if kind is not None and raw != "" else (raw or None)
    status["lease_holder"] = holder
    status["lease_ms_left"] = remaining if holder is not None else None
    return status


def _ago(stamp: float | None, now: float) -> str:
    if not stamp:
        return "never"
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(stamp))} ({now - stamp:.0f}s ago)"


def format_status(status: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) rows for a human, in a fixed order."""
    now = time.time()
    rows = [("model", status["model"]), ("job", status.get("job") or "-"),
            ("last success", _ago(status.get("last_success"), now)),
            ("last status", status.get("status") or "-"),
            ("duration", f"{status['duration']:.2f}s" if status.get("duration") is not None else "-"),
            ("rows", str(status.get("rows", "-"))), ("rows changed", str(status.get("rows_changed", "-"))),
            ("runs / failures", f"{status.get('runs', 0)} / {status.get('failures', 0)}"),
            ("last error", f"{status['last_error']} at {_ago(status.get('last_error_at'), now)}"
             if status.get("last_error") else "-"),
            ("running now", f"{status['lease_holder']} (lease ends in {status['lease_ms_left'] / 1000:.0f}s)"
             if status.get("lease_holder") else "no")]
    return rows
