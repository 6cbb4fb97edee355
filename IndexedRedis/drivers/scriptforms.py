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

Redis functions (7.0 and later): a script call on its own goes first as FCALL (FCALL_RO
for a read-only script) of the script's function (see ``scripts``).  "Function not
found" (a server that never loaded it, a restart without persistence, FUNCTION FLUSH)
brings one ``FUNCTION LOAD`` of its library ("already exists": another client loaded
it meanwhile, as good), then the FCALL again.  Where functions cannot be used -- FCALL
or FUNCTION LOAD refused by an ACL rule (NOPERM), unknown (6.2), LOAD refused by a
read-only replica, or any other refusal of the LOAD -- the pool is marked
(``mark_no_functions``) and the call goes, in the same request, the EVALSHA way above;
from then on the pool sends EVALSHA at once.  A LOAD refused at maxmemory (OOM) does
not mark the pool: that call alone goes by EVALSHA.  A pool of a server older than 7.0
is marked at first use (``firstuse``), and ``setScriptFunctions(False)`` (or
``INDEXEDREDIS_FUNCTIONS=0`` in the environment) sends EVALSHA everywhere.  Pipelined
lists (a script with ``WAIT`` after it is one) and Redis Cluster stay on EVALSHA.
Errors the script raises itself read the same by FCALL as by EVALSHA ("... script:
<function name>, on @user_function:<line>." for "... script: <sha>, on
@user_script:<line>.") and pass to the caller as they are.

I/O-free: the drivers ask ``attempts`` what to send, one command after the other, and
hand it back the replies it asks for (``first_args`` and ``follow_up`` for the
pipelined lists).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

from redis.exceptions import NoScriptError, OutOfMemoryError, ResponseError

from ..flows.requests import ScriptCall
from ..scripts import Script

__all__ = ["read_only_form", "mark_plain", "first_args", "follow_up", "refused_read_only", "plain_nodes", "attempts",
           "functions_form", "mark_no_functions", "refused_functions", "function_missing", "setScriptFunctions",
           "getScriptFunctions", "FUNCTIONS_ENV_VAR", "Step"]

#: One command of a plan and whether the plan wants its reply whatever it is (True) or
#: only if it is an error (False: any other reply is the call's answer).
Step = tuple[tuple[Any, ...], bool]
#: ``0`` / ``off`` / ``no`` / ``false``: never run scripts as Redis functions.
FUNCTIONS_ENV_VAR = "INDEXEDREDIS_FUNCTIONS"
_functions_chosen: bool | None = None  # None: the environment variable decides (read once)
_NO_FUNCTIONS = "_indexedredis_no_functions"
#: Holders (by name) with ``__slots__`` that refused functions.
no_function_holders: set[str] = set()

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


def setScriptFunctions(on: bool | None) -> None:
    """Whether scripts run as Redis functions (FCALL) where the server has them (Redis
    7.0+; the default), or always by EVALSHA (False: for a Redis user that may not be
    granted ``+fcall`` / ``+function|load``).  None: as ``INDEXEDREDIS_FUNCTIONS`` says."""
    global _functions_chosen
    _functions_chosen = on if on is None else bool(on)
    if on is None:
        _environment.clear()


_environment: list[bool] = []


def getScriptFunctions() -> bool:
    if _functions_chosen is not None:
        return _functions_chosen
    if not _environment:
        raw = os.environ.get(FUNCTIONS_ENV_VAR, "").strip().lower()
        if raw not in ("", "1", "on", "yes", "true", "0", "off", "no", "false"):
            raise ValueError(f"{FUNCTIONS_ENV_VAR}={raw!r}: set it to 0 (scripts by EVALSHA) or 1, or leave it unset")
        _environment.append(raw not in ("0", "off", "no", "false"))
    return _environment[0]


def functions_form(holder: Any) -> bool:
    """Whether script calls go as FCALL to the server behind ``holder`` (a connection pool)."""
    return getScriptFunctions() and not getattr(holder, _NO_FUNCTIONS, False) \
        and (not no_function_holders or str(getattr(holder, "name", holder)) not in no_function_holders)


def mark_no_functions(holder: Any) -> None:
    """The server behind ``holder`` refused functions: EVALSHA from now on."""
    try:
        setattr(holder, _NO_FUNCTIONS, True)
    except AttributeError:
        no_function_holders.add(str(getattr(holder, "name", holder)))


def _head(reply: Any) -> str:
    """An error reply's text before the script's name (a script's own error names it)."""
    return str(reply).split(" script: ")[0].lower()


def function_missing(reply: Any) -> bool:
    """Whether ``reply`` is FCALL's "Function not found" (the library is not loaded)."""
    return isinstance(reply, ResponseError) and " script: " not in str(reply) \
        and "function not found" in str(reply).lower()


def refused_functions(reply: Any) -> bool:
    """Whether ``reply`` refuses FCALL / FCALL_RO themselves, before running anything:
    Redis 6.2's "unknown command", or an ACL user without them (NOPERM)."""
    if not isinstance(reply, ResponseError) or " script: " in str(reply):
        return False
    text = _head(reply)
    return "fcall" in text and ("unknown command" in text or "permission" in text)


def _loaded(reply: Any) -> bool:
    """Whether FUNCTION LOAD's ``reply`` leaves the library loaded."""
    return not isinstance(reply, Exception) or "already exists" in str(reply).lower()


def _out_of_memory(reply: Any) -> bool:
    return isinstance(reply, OutOfMemoryError) or str(reply).startswith("OOM ")


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


def attempts(request: ScriptCall, holder: Any) -> Generator[Step, Any, None]:
    """The commands to send a script call as, one after the other: yields the next
    command and whether it wants the reply whatever it is (a FUNCTION LOAD), and
    receives that reply, or the error reply of a call (a call's other reply is the
    answer); raises the script's error when nothing follows.  ``holder``: the
    connection pool marked when the server refuses functions or the read-only form."""
    if _is_script(request.script) and functions_form(holder):
        return function_attempts(request, holder)
    return script_attempts(request, holder)


def function_attempts(request: ScriptCall, holder: Any) -> Generator[Step, Any, None]:
    """FCALL of the script's function; "Function not found": FUNCTION LOAD, then FCALL
    again (once); functions refused: ``script_attempts`` (the pool marked, but for a
    LOAD refused at maxmemory)."""
    script = request.script
    call = script.fcall_args(request.keys, request.args)
    loaded = False
    while True:
        reply = yield call, False
        if function_missing(reply) and not loaded:
            loaded = True
            reply = yield script.load_args(), True
            if _loaded(reply):
                continue
            if not _out_of_memory(reply):
                mark_no_functions(holder)
            break
        if refused_functions(reply):
            mark_no_functions(holder)
            break
        if function_missing(reply):  # flushed again right after the LOAD: by EVALSHA this time
            break
        raise reply
    yield from script_attempts(request, holder)


def script_attempts(request: ScriptCall, holder: Any) -> Generator[Step, Any, None]:
    """The EVALSHA way: EVALSHA_RO / EVALSHA, NOSCRIPT answered by the source (``follow_up``)."""
    read_only = sent_read_only(request, read_only_form(holder))
    sent = first_args(request, read_only)
    while True:
        error = yield sent, False
        was = read_only
        retry, read_only = follow_up(request, read_only, error)
        if retry is None:
            raise error
        if was and not read_only:
            mark_plain(holder)
        sent = retry
