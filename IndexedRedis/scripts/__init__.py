"""The server-side Lua scripts, each in a .lua file of its own, loaded once.

Every script starts with ``lib.lua``; those that keep or read text dictionaries and
index layouts also with ``textindex.lua`` (``libs``).  A ``Script`` runs by EVALSHA and falls back to
EVAL (which also caches it on the server) when the server does not know it yet, so a
restarted or new server needs no set-up.

A read-only script (one that never writes: ``readonly=True`` below) has a second form
for Redis 7.0 and later: its source behind the ``#!lua flags=no-writes`` shebang, run
by EVALSHA_RO / EVAL_RO, which replicas, read-only ACL users and a cluster's
READONLY replica connections accept.  Redis 6.2 has neither (the shebang is a syntax
error there), so the drivers send the plain form to a server that refused the
read-only one (see ``drivers/scriptforms.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib.resources import files
from typing import Any

__all__ = ["Script", "SAVE", "UPDATE", "DELETE", "QUERY", "RESET_BEGIN", "RESET_LOAD", "DICT_PACK", "RESET_SWITCH",
           "RESET_ABANDON", "RESET_SWEEP", "FREE_DONE", "RESERVE_PKS", "REFRESH_LEASE", "REFRESH_RECORD",
           "CHECK_STATE", "TEXT_WALK", "CHECK_RECORDS", "CHECK_MEMBERS", "REPAIR", "FREE_KEYS", "MEMORY_USAGE",
           "CACHE_FLAG", "NO_WRITES_SHEBANG", "READ_ONLY_SCRIPTS", "DROP_BOOKKEEPING", "EXPIRED", "EXPIRY_ORPHANS",
           "TEXT_UNION", "QUERY_ON_MASTER"]

_here = files(__name__)
_LIB = _here.joinpath("lib.lua").read_text(encoding="utf-8")
#: The first line of a read-only script's Redis 7 form.
NO_WRITES_SHEBANG = "#!lua flags=no-writes\n"


class Script:
    """One Lua script, identified by the SHA1 of its full source."""

    def __init__(self, name: str, readonly: bool = False, libs: Sequence[str] = ()) -> None:
        self.name = name
        self.readonly = readonly  # changes nothing: a driver may send it again after a failure
        parts = [_LIB, *(_here.joinpath(f"{lib}.lua").read_text(encoding="utf-8") for lib in libs)]
        self.source = "\n".join((*parts, _here.joinpath(f"{name}.lua").read_text(encoding="utf-8")))
        self.sha = hashlib.sha1(self.source.encode("utf-8")).hexdigest()

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

    def __repr__(self) -> str:
        return f"<Script {self.name} {self.sha[:8]}>"


SAVE = Script("save", libs=("textindex",))
UPDATE = Script("update", libs=("textindex",))
DELETE = Script("delete", libs=("textindex",))
QUERY = Script("query", readonly=True, libs=("textindex",))
TEXT_WALK = Script("text_walk", readonly=True, libs=("textindex",))
TEXT_UNION = Script("text_union")
#: query.lua sent as a plain script, to the master: a query that reads scratch sets
#: ``TEXT_UNION`` just wrote (a replica may not have them yet).
QUERY_ON_MASTER = Script("query", libs=("textindex",))
RESET_BEGIN = Script("reset_begin")
RESET_LOAD = Script("reset_load")
DICT_PACK = Script("dict_pack", libs=("textindex",))
RESET_SWITCH = Script("reset_switch")
RESET_ABANDON = Script("reset_abandon")
RESET_SWEEP = Script("reset_sweep")
RESERVE_PKS = Script("reserve_pks")
FREE_DONE = Script("free_done")
REFRESH_LEASE = Script("refresh_lease")
REFRESH_RECORD = Script("refresh_record")
CACHE_FLAG = Script("cache_flag")
CHECK_STATE = Script("check_state", readonly=True)
CHECK_RECORDS = Script("check_records", readonly=True)
CHECK_MEMBERS = Script("check_members", readonly=True)
REPAIR = Script("repair", libs=("textindex",))
FREE_KEYS = Script("free_keys")
MEMORY_USAGE = Script("memory_usage", readonly=True)
DROP_BOOKKEEPING = Script("drop_bookkeeping")
EXPIRED = Script("expired", readonly=True)
EXPIRY_ORPHANS = Script("expiry_orphans", readonly=True)


#: The scripts that never write: sent as EVALSHA_RO where the server has it.
READ_ONLY_SCRIPTS = tuple(script for script in (QUERY, TEXT_WALK, CHECK_STATE, CHECK_RECORDS, CHECK_MEMBERS,
                                                MEMORY_USAGE) if script.readonly)
