"""Which form of a script call a driver sends: EVALSHA_RO for a read-only script where
the server takes it, else EVALSHA (each falling back to EVAL_RO / EVAL for a script
the server does not know yet).

Redis 7.0 and later run a read-only script's shebang form (``#!lua flags=no-writes``)
by EVALSHA_RO, which a replica, a read-only ACL user (``+evalsha_ro``) and a cluster
replica's READONLY connection accept.  Redis 6.2 has no such command: it answers
"unknown command", and a 7.0 user granted ``+evalsha`` but not ``+evalsha_ro`` (the
6.2 ACL recipes) answers NOPERM before running anything.  The drivers start with the
read-only form and, on such a refusal, send the plain form instead and remember, per
connection pool (or cluster node), to send the plain form from then on.  So what the
server allows is learnt without a round trip of its own: none at all on 7.0, one
refused command per pool on 6.2, and nothing more in the steady state.  A server
that gains the command later (an upgrade behind the same address) keeps getting the
plain form, which it still runs; one that loses it (a downgrade) refuses again and
the plain form follows.

I/O-free: the drivers ask ``first_args`` what to send and ``follow_up`` what to send
after a failed reply.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from ..flows.requests import ScriptCall
from ..scripts import Script

__all__ = ["read_only_form", "mark_plain", "first_args", "follow_up", "refused_read_only", "plain_nodes", "attempts"]

_MARK = "_indexedredis_plain_scripts"
#: Cluster nodes (``host:port``) of asyncio clusters that refused the read-only form
#: (redis.asyncio's ClusterNode has ``__slots__``, so it cannot carry the mark itself).
plain_nodes: set[str] = set()


def read_only_form(holder: Any) -> bool:
    """Whether read-only scripts go as EVALSHA_RO to the server behind ``holder`` (a
    connection pool, or a cluster node's client)."""
    return not getattr(holder, _MARK, False)


def mark_plain(holder: Any) -> None:
    """The server behind ``holder`` refused the read-only form: the plain one from now on."""
    try:
        setattr(holder, _MARK, True)
    except AttributeError:  # a holder with __slots__: its name stands for it
        plain_nodes.add(str(getattr(holder, "name", holder)))


def refused_read_only(reply: Any) -> bool:
    """Whether ``reply`` refuses EVALSHA_RO / EVAL_RO themselves (before running the
    script): Redis 6.2's "unknown command", or an ACL user without them."""
    if not isinstance(reply, ResponseError) or isinstance(reply, NoScriptError):
        return False
    text = str(reply).lower()
    if "evalsha_ro" not in text and "eval_ro" not in text:
        return False
    return "unknown command" in text or "permission" in text


def _is_script(script: Any) -> bool:
    return isinstance(script, Script)


def first_args(request: ScriptCall, read_only: bool) -> tuple[Any, ...]:
    """The command a script call is sent as first (``read_only``: the server takes the
    read-only form, as far as the driver knows)."""
    script = request.script
    if read_only and script.readonly and _is_script(script):
        return script.ro_args(request.keys, request.args)
    return script.evalsha_args(request.keys, request.args)


def sent_read_only(request: ScriptCall, read_only: bool) -> bool:
    """Whether ``first_args`` sends the read-only form."""
    return read_only and request.script.readonly and _is_script(request.script)


def follow_up(request: ScriptCall, read_only: bool, reply: Any) -> tuple[tuple[Any, ...] | None, bool]:
    """After ``reply`` to the form sent (``read_only``: the read-only one): what to send
    next (None: ``reply`` is the answer) and whether that is the read-only form.

    NOSCRIPT: the same form, whole.  The read-only form refused: the plain EVALSHA
    (whose NOSCRIPT then brings the plain EVAL); the caller marks the server plain.
    At most three sends in all."""
    script = request.script
    if isinstance(reply, NoScriptError):
        if read_only:
            return script.ro_args(request.keys, request.args, whole=True), True
        return script.eval_args(request.keys, request.args), False
    if read_only and refused_read_only(reply):
        return script.evalsha_args(request.keys, request.args), False
    return None, read_only


def whole_args(request: ScriptCall, read_only: bool) -> tuple[Any, ...]:
    """A script call sent whole: EVAL_RO of the read-only form, or EVAL."""
    if read_only:
        return request.script.ro_args(request.keys, request.args, whole=True)
    return request.script.eval_args(request.keys, request.args)


def attempts(request: ScriptCall, holder: Any) -> Generator[tuple[Any, ...], ResponseError, None]:
    """The commands to send a script call as, one after the other: yields the next
    command and receives the error reply to the last one (``follow_up``); raises
    that error when nothing follows.  ``holder``: the connection pool marked when the
    server refuses the read-only form."""
    read_only = sent_read_only(request, read_only_form(holder))
    sent = first_args(request, read_only)
    while True:
        error = yield sent
        was = read_only
        retry, read_only = follow_up(request, read_only, error)
        if retry is None:
            raise error
        if was and not read_only:
            mark_plain(holder)
        sent = retry
