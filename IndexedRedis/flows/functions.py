"""The function libraries IndexedRedis loaded on a server (Redis 7.0+, see
``drivers/scriptforms``): listed, and those of other versions of the package deleted.

Each script's library is named ``ir_`` and 16 hex digits of its text, so every version
of the package (every change to a script) loads libraries of its own, and functions
persist (RDB, AOF) and replicate: a server that saw several versions keeps the
libraries of all.  ``cleanup_flow`` deletes the IndexedRedis libraries that are not
this version's (``FUNCTION LIST LIBRARYNAME ir_*``, then ``FUNCTION DELETE`` of each);
libraries of other names are never touched.  A process of another version still
running finds its functions gone and loads them again on its next call ("Function not
found" brings a ``FUNCTION LOAD``), so deleting is safe at any time; it needs
``+function|list`` and ``+function|delete``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from .. import scripts
from .requests import Command, Flow

__all__ = ["FunctionLibraries", "libraries_flow", "cleanup_flow", "current_libraries"]


@dataclass(frozen=True)
class FunctionLibraries:
    """The IndexedRedis libraries a server holds: this version's and the others'
    (``deleted``: whether ``stale`` were deleted)."""

    current: tuple[str, ...]
    stale: tuple[str, ...]
    deleted: bool = False


def current_libraries() -> frozenset[str]:
    """The names of this version's libraries."""
    return frozenset(script.library_name for script in scripts.ALL_SCRIPTS)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _library_names(reply: Any) -> list[str]:
    """The library names in a FUNCTION LIST reply (RESP2 flat lists or RESP3 maps)."""
    names = []
    for entry in reply or ():
        if isinstance(entry, dict):
            fields = {_text(key): value for key, value in entry.items()}
        else:
            fields = {_text(entry[i]): entry[i + 1] for i in range(0, len(entry) - 1, 2)}
        if "library_name" in fields:
            names.append(_text(fields["library_name"]))
    return names


def libraries_flow() -> Flow[FunctionLibraries]:
    """The server's IndexedRedis libraries, this version's and the others'."""
    reply = yield Command(("FUNCTION", "LIST", "LIBRARYNAME", scripts.LIBRARY_PREFIX + "*"))
    ours = sorted(name for name in _library_names(reply) if scripts.is_library_name(name))
    mine = current_libraries()
    return FunctionLibraries(tuple(name for name in ours if name in mine),
                             tuple(name for name in ours if name not in mine))


def cleanup_flow(delete: bool = True) -> Flow[FunctionLibraries]:
    """List the server's IndexedRedis libraries and (``delete``) delete those of other
    versions.  A library already gone (deleted by another client meanwhile) is fine."""
    found = yield from libraries_flow()
    if not delete:
        return found
    for name in found.stale:
        try:
            yield Command(("FUNCTION", "DELETE", name))
        except ResponseError as exc:
            if "library not found" not in str(exc).lower():
                raise
    return FunctionLibraries(found.current, found.stale, deleted=True)


def describe(found: FunctionLibraries, names: Sequence[str] = ()) -> str:
    """What the ``functions`` command prints."""
    lines = [f"{len(found.current)} function librar{'y' if len(found.current) == 1 else 'ies'} of this version "
             f"(of {len(current_libraries())})"]
    if found.stale:
        verb = "deleted" if found.deleted else "of other versions (delete them with --delete)"
        lines.append(f"{len(found.stale)} {verb}: {', '.join(found.stale)}")
    else:
        lines.append("none of other versions")
    return "\n".join((*names, *lines))
