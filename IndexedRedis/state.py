"""An instance's storage state, written here only: ``_id`` (its primary key, None until
saved) and ``_orig`` (the stored record as last read or written, from which ``save()``
works out what changed).  Instances built from fetched records get theirs in
``instances.py``, on the fetch hot path."""

from __future__ import annotations

from typing import Any

__all__ = ["mark_stored", "mark_unsaved", "assign_pk", "forget_stored_record"]


def mark_stored(obj: Any, pk: int | None, record: Any) -> None:
    """The object is stored under ``pk`` with ``record`` (a dict, or the raw tuple)."""
    state = obj.__dict__
    state["_id"] = pk
    state["_orig"] = record


def mark_unsaved(obj: Any) -> None:
    """The object is not stored (deleted, or never saved): it keeps its values."""
    state = obj.__dict__
    state["_id"] = None
    state["_orig"] = {}


def assign_pk(obj: Any, pk: int | None) -> None:
    """A pk reserved for (or taken back from) an object about to be written."""
    obj.__dict__["_id"] = pk


def forget_stored_record(obj: Any) -> None:
    """Believe nothing is stored, so the next save writes the whole record (reindex)."""
    obj.__dict__["_orig"] = {}
