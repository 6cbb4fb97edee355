"""The server-side Lua scripts, each in a .lua file of its own, loaded once.

Every script starts with ``lib.lua``; those that keep or read text dictionaries and
index layouts also with ``textindex.lua``, and query.lua with its helpers,
``query_lib.lua`` (``libs``).  A ``Script`` runs by EVALSHA and falls back to
EVAL (which also caches it on the server) when the server does not know it yet, so a
restarted or new server needs no set-up.

A read-only script (one that never writes: ``readonly=True`` below) has a second form
for Redis 7.0 and later: its source behind the ``#!lua flags=no-writes`` shebang, run
by EVALSHA_RO / EVAL_RO, which replicas, read-only ACL users and a cluster's
READONLY replica connections accept.  Redis 6.2 has neither (the shebang is a syntax
error there), so the drivers send the plain form to a server that refused the
read-only one (see ``drivers/scriptforms.py``).

Redis 7.0 and later also run each script as a Redis function (``FUNCTION LOAD`` once,
then ``FCALL`` / ``FCALL_RO``): ``library_source`` wraps the same source in a library of
its own, ``ir_<16 hex digits>`` named after the library's text (so two versions of the
package never share a name), whose one function ``ir_<hex>_<script>`` is the script's
body.  Its libraries are defined once, when the library loads, not on every call.
``KEYS`` and ``ARGV`` are the library's upvalues, set by the function on entry, and
the libraries' per-call state (``reset_lib_state`` in lib.lua,
``reset_textindex_state`` in textindex.lua) is reset before the body runs, so a call
sees what an EVAL sees.  Each script's function flags (``flags`` below) are chosen
with the OOM rules in mind: a function without ``allow-oom`` is refused as a whole by
a server at maxmemory, where an EVAL script without a shebang is refused only at its
first write that may grow memory.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from importlib.resources import files
from typing import Any

__all__ = ["Script", "SAVE", "UPDATE", "DELETE", "QUERY", "RESET_BEGIN", "RESET_LOAD", "DICT_PACK", "RESET_SWITCH",
           "RESET_ABANDON", "RESET_SWEEP", "FREE_DONE", "RESERVE_PKS", "REFRESH_LEASE", "REFRESH_RECORD",
           "CHECK_STATE", "TEXT_WALK", "CHECK_RECORDS", "CHECK_MEMBERS", "REPAIR", "FREE_KEYS", "MEMORY_USAGE",
           "CACHE_FLAG", "NO_WRITES_SHEBANG", "READ_ONLY_SCRIPTS", "DROP_BOOKKEEPING", "EXPIRED", "EXPIRY_ORPHANS",
           "TEXT_UNION", "QUERY_ON_MASTER", "ALL_SCRIPTS", "LIBRARY_PREFIX", "is_library_name"]

_here = files(__name__)
_LIB = _here.joinpath("lib.lua").read_text(encoding="utf-8")
#: The first line of a read-only script's Redis 7 form.
NO_WRITES_SHEBANG = "#!lua flags=no-writes\n"
#: Every IndexedRedis function library is named ``ir_`` and 16 hex digits.
LIBRARY_PREFIX = "ir_"
_LIBRARY_NAME = re.compile(r"ir_[0-9a-f]{16}")
#: Where a library's name goes in its template, before it is named after its text.
_UNNAMED = "ir_0000000000000000"


def is_library_name(name: str) -> bool:
    """Whether a function library of that name is IndexedRedis's (of some version)."""
    return _LIBRARY_NAME.fullmatch(name) is not None


def _library(name: str, script: str, flags: Sequence[str], libs: Sequence[str], parts: Sequence[str],
             body: str) -> str:
    """A script as a function library: the libraries, then one function whose body is
    the script's (its top-level ``return`` returns from the callback)."""
    resets = " ".join(f"reset_{lib}_state()" for lib in ("lib", *libs))
    listed = ", ".join(f"'{flag}'" for flag in flags)
    return "\n".join((
        f"#!lua name={name}",
        "local KEYS, ARGV",
        *parts,
        f"redis.register_function{{function_name = '{name}_{script}', flags = {{{listed}}},",
        "callback = function(keys, args)",
        f"KEYS, ARGV = keys, args {resets}",
        body,
        "end}",
        ""))


class Script:
    """One Lua script, identified by the SHA1 of its full source."""

    def __init__(self, name: str, readonly: bool = False, libs: Sequence[str] = (), allow_oom: bool = False,
                 no_writes: bool | None = None) -> None:
        self.name = name
        self.readonly = readonly  # changes nothing: a driver may send it again after a failure
        parts = [_LIB, *(_here.joinpath(f"{lib}.lua").read_text(encoding="utf-8") for lib in libs)]
        body = _here.joinpath(f"{name}.lua").read_text(encoding="utf-8")
        self.source = "\n".join((*parts, body))
        self.sha = hashlib.sha1(self.source.encode("utf-8")).hexdigest()
        #: The function's flags: ``no-writes`` for a script that never writes (by
        #: default the read-only ones), ``allow-oom`` for one that must run at maxmemory.
        self.flags = (*(("no-writes",) if (readonly if no_writes is None else no_writes) else ()),
                      *(("allow-oom",) if allow_oom else ()))
        unnamed = _library(_UNNAMED, name, self.flags, libs, parts, body)
        self.library_name = LIBRARY_PREFIX + hashlib.sha1(unnamed.encode("utf-8")).hexdigest()[:16]
        self.function_name = f"{self.library_name}_{name}"
        self.library_source = unnamed.replace(_UNNAMED, self.library_name, 2)

    def evalsha_args(self, keys: Sequence[Any], args: Sequence[Any]) -> tuple[Any, ...]:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    def eval_args(self, keys: Sequence[Any], args: Sequence[Any]) -> tuple[Any, ...]:
        return ("EVAL", self.source, len(keys), *keys, *args)

    @property
    def ro_source(self) -> str:
        """The Redis 7 form of a read-only script: the shebang, then the source."""
        return NO_WRITES_SHEBANG + self.source

    @property
    def ro_sha(self) -> str:
        sha = self.__dict__.get("_ro_sha")
        if sha is None:
            sha = self.__dict__["_ro_sha"] = hashlib.sha1(self.ro_source.encode("utf-8")).hexdigest()
        return sha

    def ro_args(self, keys: Sequence[Any], args: Sequence[Any], whole: bool = False) -> tuple[Any, ...]:
        """EVALSHA_RO of the shebang form (``whole``: EVAL_RO of its source)."""
        if whole:
            return ("EVAL_RO", self.ro_source, len(keys), *keys, *args)
        return ("EVALSHA_RO", self.ro_sha, len(keys), *keys, *args)

    def fcall_args(self, keys: Sequence[Any], args: Sequence[Any]) -> tuple[Any, ...]:
        """The call of the script's function: FCALL_RO for a read-only script."""
        return ("FCALL_RO" if self.readonly else "FCALL", self.function_name, len(keys), *keys, *args)

    def load_args(self) -> tuple[Any, ...]:
        """FUNCTION LOAD of the script's library (never REPLACE: its name is its text's)."""
        return ("FUNCTION", "LOAD", self.library_source)

    def __repr__(self) -> str:
        return f"<Script {self.name} {self.sha[:8]}>"


# Function flags (Redis 7 functions, see the module's header).  Under maxmemory a
# function without ``allow-oom`` is refused as a whole, before it runs; with it, even
# its writes that may grow memory run.  As EVAL scripts without a shebang, every script
# runs until its first such write, so:
# * the read-only scripts get ``no-writes`` (which also lets them run at maxmemory, and
#   on a replica by FCALL_RO);
# * the scripts that only free memory get ``allow-oom``, so that a full server can
#   still delete and free as it can by EVAL: delete.lua (whose only growing writes are
#   a cached model's stamp, SET and DEL at once, and a dictionary entry leaving),
#   free_done, free_keys, drop_bookkeeping, reset_abandon and reset_sweep (which move
#   a generation's number from the staging zset to the dead set);
# * every other script gets no flag: a save, update, reset, pk reservation, repair (which
#   adds index entries: refused whole rather than stopped at its first add), lease or
#   cache flag is refused at maxmemory, as its first write would be by EVAL; they all
#   read before they write, so nothing of them was written either way.
# ``no-cluster``, ``allow-stale`` and ``allow-cross-slot-keys`` are not needed: the
# drivers send functions to plain (non-cluster) servers only, and all keys of a call
# share one hash tag.
SAVE = Script("save", libs=("textindex",))
UPDATE = Script("update", libs=("textindex",))
DELETE = Script("delete", libs=("textindex",), allow_oom=True)
QUERY = Script("query", readonly=True, libs=("textindex", "query_lib"))
TEXT_WALK = Script("text_walk", readonly=True, libs=("textindex",))
TEXT_UNION = Script("text_union")
#: query.lua sent as a plain script, to the master: a query that reads scratch sets
#: ``TEXT_UNION`` just wrote (a replica may not have them yet).  As a function it is
#: QUERY's (a no-writes function, called by FCALL here).
QUERY_ON_MASTER = Script("query", libs=("textindex", "query_lib"), no_writes=True)
RESET_BEGIN = Script("reset_begin")
RESET_LOAD = Script("reset_load")
DICT_PACK = Script("dict_pack", libs=("textindex",))
RESET_SWITCH = Script("reset_switch")
RESET_ABANDON = Script("reset_abandon", allow_oom=True)
RESET_SWEEP = Script("reset_sweep", allow_oom=True)
RESERVE_PKS = Script("reserve_pks")
FREE_DONE = Script("free_done", allow_oom=True)
REFRESH_LEASE = Script("refresh_lease")
REFRESH_RECORD = Script("refresh_record")
CACHE_FLAG = Script("cache_flag")
CHECK_STATE = Script("check_state", readonly=True)
CHECK_RECORDS = Script("check_records", readonly=True)
CHECK_MEMBERS = Script("check_members", readonly=True)
REPAIR = Script("repair", libs=("textindex",))
FREE_KEYS = Script("free_keys", allow_oom=True)
MEMORY_USAGE = Script("memory_usage", readonly=True)
DROP_BOOKKEEPING = Script("drop_bookkeeping", allow_oom=True)
EXPIRED = Script("expired", readonly=True)
EXPIRY_ORPHANS = Script("expiry_orphans", readonly=True)

#: Every script, each once (their function libraries: see ``flows/functions.py``).
ALL_SCRIPTS = (SAVE, UPDATE, DELETE, QUERY, TEXT_WALK, TEXT_UNION, QUERY_ON_MASTER, RESET_BEGIN, RESET_LOAD,
               DICT_PACK, RESET_SWITCH, RESET_ABANDON, RESET_SWEEP, RESERVE_PKS, FREE_DONE, REFRESH_LEASE,
               REFRESH_RECORD, CACHE_FLAG, CHECK_STATE, CHECK_RECORDS, CHECK_MEMBERS, REPAIR, FREE_KEYS,
               MEMORY_USAGE, DROP_BOOKKEEPING, EXPIRED, EXPIRY_ORPHANS)

#: The scripts that never write: sent as EVALSHA_RO where the server has it.
READ_ONLY_SCRIPTS = tuple(script for script in ALL_SCRIPTS if script.readonly)
