"""check / repair of a TTL model's expiry zset (``expiry.py``): an entry without a
record is drift (``stale_expiry``); expired objects that wait for a sweep are not
drift, only counted (``CheckReport.expired_pending``), and a repair sweeps them."""

from __future__ import annotations

from ... import scripts
from ..common import STALE_GEN, script
from ..delete import delete_flow
from ..expiry import sweep_expired_flow
from ..requests import Flow, ScriptCall
from .state import CheckPass, Moved

__all__ = ["expiry_flow"]


def expiry_flow(p: CheckPass) -> Flow[None]:
    """Walk the live generation's expiry zset, ``p.budget`` entries per (read-only)
    script call; with repair, drop the stale entries (delete.lua in sweep mode: only
    those still without a record) and sweep the expired objects."""
    if p.meta.ttl_ms is None:
        return
    gk = p.gk
    first, orphans = 0, []
    while True:
        reply = yield from script((p.meta,), ScriptCall(scripts.EXPIRY_ORPHANS, (p.keys.gen, gk.objs, gk.exp),
                                                        (p.gen, first, p.budget)))
        if reply[0] == STALE_GEN:
            raise Moved
        found, walked, expired, size = reply[1], int(reply[2]), int(reply[3]), int(reply[4])
        for raw in found:
            p.report.add("stale_expiry", gk.exp, int(raw), "an expiry entry with no record")
            orphans.append(int(raw))
        p.report.expired_pending = expired
        first += walked
        if not walked or first >= size:
            break
    if p.repair:
        if orphans:
            yield from delete_flow(p.ctx, [(pk, {}) for pk in orphans], sweep=True)
            p.report.repaired["stale_expiry"] += len(orphans)
        p.report.expired_swept = yield from sweep_expired_flow(p.ctx)
