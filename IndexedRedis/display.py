"""How ``repr(obj)`` and ``str(obj)`` show a model instance::

    <Song _id=3 artist='Pink Floyd' title='Time' length=413 cover=b'\\x89PNG\\r\\n'...(20480 bytes)>

The model, the pk, then each field's value: text and numbers as ``repr`` gives them
(cut to :data:`VALUE_LIMIT` characters, ending ``...``), bytes shortened to their first
:data:`BYTES_SHOWN` bytes with their length, datetimes in ISO 8601, links as the linked
pk (``->5``; a multi-link ``->[1, 2]``), ``irNull`` as itself.  At most
:data:`FIELDS_SHOWN` fields are shown, then ``...(+N fields)``.  ``str`` adds
``(unsaved changes)`` after the pk of a stored object changed since it was fetched or
saved.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from .fields.links import ForeignLink, ForeignLinks

__all__ = ["describe", "short_value"]

VALUE_LIMIT = 60
BYTES_SHOWN = 16
FIELDS_SHOWN = 12


def short_value(value: Any) -> str:
    """One value as ``repr(obj)`` shows it."""
    if isinstance(value, ForeignLink):
        return f"->{value.current_pk()!r}"
    if isinstance(value, ForeignLinks):
        return f"->{value.pks()!r}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if len(data) <= BYTES_SHOWN:
            return repr(data)
        return f"{data[:BYTES_SHOWN]!r}...({len(data)} bytes)"
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ of a custom value type must not break ours
        text = f"<{type(value).__name__}: repr failed: {type(exc).__name__}>"
    return text if len(text) <= VALUE_LIMIT else text[: VALUE_LIMIT - 3] + "..."


def describe(obj: Any, changes: bool = False) -> str:
    """``<Model _id=pk field=value ...>`` of a model instance; with ``changes``, a stored
    object with unsaved changes says so."""
    meta = type(obj)._meta
    state = obj.__dict__
    pk = state.get("_id")
    head = f"<{type(obj).__name__} _id={pk!r}"
    if changes and pk is not None and obj.hasUnsavedChanges():
        head += " (unsaved changes)"
    if meta is None:
        return head + ">"
    names = meta.field_names
    parts = [f"{name}={short_value(state[name]) if name in state else '?'}" for name in names[:FIELDS_SHOWN]]
    if len(names) > FIELDS_SHOWN:
        parts.append(f"...(+{len(names) - FIELDS_SHOWN} fields)")
    return " ".join([head, *parts]) + ">"
