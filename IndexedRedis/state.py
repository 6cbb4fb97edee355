"""An instance's storage state, written here only: ``_id`` (its primary key, None until
saved) and ``_orig`` (the stored record as last read or written, from which ``save()``
works out what changed).  Instances built from fetched records get theirs in
``instances.py``, on the fetch hot path."""

from __future__ import annotations

from typing import Any

from .exceptions import ReadOnlyObjectError

__all__ = ["mark_stored", "mark_unsaved", "assign_pk", "forget_stored_record", "mark_shared", "is_shared",
           "read_only_error", "SHARED"]

#: The ``__dict__`` entry of an instance read from a model with a client-side cache: one
#: instance is shared by every reader of the process, so it is read-only.
SHARED = "_ir_shared"


def mark_stored(obj: Any, pk: int | None, record: Any) -> None:
    """The object is stored under ``pk`` with ``record`` (a dict, or the raw tuple)."""
    state = obj.__dict__
    state["_id"] = pk
    state["_orig"] = record


def mark_unsaved(obj: Any) -> None:
    """The object is not stored (deleted, or never saved): it keeps its values.  A
    shared instance (see ``mark_shared``) is left as it is: other readers hold it."""
    state = obj.__dict__
    if SHARED in state:
        return
    state["_id"] = None
    state["_orig"] = {}


def assign_pk(obj: Any, pk: int | None) -> None:
    """A pk reserved for (or taken back from) an object about to be written."""
    obj.__dict__["_id"] = pk


def forget_stored_record(obj: Any) -> None:
    """Believe nothing is stored, so the next save writes the whole record (reindex)."""
    obj.__dict__["_orig"] = {}


def mark_shared(objs: Any) -> None:
    """These instances are (or may become) entries of the client-side cache: read-only."""
    for obj in objs:
        obj.__dict__[SHARED] = True


def is_shared(obj: Any) -> bool:
    return SHARED in obj.__dict__


def read_only_error(obj: Any, name: str) -> Exception:
    """What changing a shared instance raises."""
    model = type(obj).__name__
    return ReadOnlyObjectError(
        f"{model} pk {obj.__dict__.get('_id')} came from the client cache (CLIENT_CACHE): one instance is "
        f"shared by every reader of this process, so it is read-only and {name!r} cannot be changed. Change "
        f"a copy: obj = obj.copy(copyPrimaryKey=True, copyValues=True); obj.{name} = ...; obj.save()")
