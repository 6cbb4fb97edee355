"""Foreign links on the model: reading a link attribute fetches the linked object(s).

The link fields and values (``IRForeignLinkField``, ``ForeignLink``, ...) are fields
like the others and live in ``IndexedRedis.fields.links``; they are importable from
here too, where they were defined before.  An instance keeps a link field's value (a
``ForeignLink`` / ``ForeignLinks``) in its ``__dict__``; the model's
``__getattribute__`` hands reads of it to ``resolve``.  ``obj.<field>__id`` gives the
pk without fetching.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .exceptions import LinkNotFetchedError
from .fields import irNull
from .fields.links import (
    ForeignLink,
    ForeignLinks,
    IRForeignLinkField,
    IRForeignLinkFieldBase,
    IRForeignMultiLinkField,
)

__all__ = ["IRForeignLinkField", "IRForeignMultiLinkField", "ForeignLink", "ForeignLinks",
           "IRForeignLinkFieldBase"]

# Pickles name a class by ``__module__``: the link classes keep naming this module, where
# they were defined before, so pickles of fields and linked objects stay what they were.
for _pickled_by_name in (ForeignLink, ForeignLinks, IRForeignLinkFieldBase, IRForeignLinkField,
                         IRForeignMultiLinkField):
    _pickled_by_name.__module__ = __name__
del _pickled_by_name


def resolve(field: IRForeignLinkFieldBase, value: ForeignLink | ForeignLinks, owner: Any = None) -> Any:
    """The linked object(s), fetching those not yet known (irNull / left out if deleted)."""
    model: Any = field.foreignModel
    if isinstance(value, ForeignLink):
        if value.obj is None and value.pk is not None:
            _refuse_in_event_loop(field, owner)
            value.obj = model.objects.get(value.pk)
        return value.obj if value.obj is not None else irNull
    missing = [link for link in value.links if link.obj is None and link.pk is not None]
    if missing:
        _refuse_in_event_loop(field, owner)
        fetched = model.objects.getMultiple([link.pk for link in missing])
        for link, obj in zip(missing, fetched, strict=True):
            link.obj = obj
    return [link.obj for link in value.links if link.obj is not None]


def _refuse_in_event_loop(field: IRForeignLinkFieldBase, owner: Any) -> None:
    """A lazy fetch would block a running event loop: say what to do instead."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop runs in this thread: a blocking fetch is fine
    where = f"{type(owner).__name__}.{field.name}" if owner is not None else field.name
    raise LinkNotFetchedError(
        f"{where} links an object that was not fetched yet, and fetching it here would block the "
        f"running event loop; first `await obj.afetchLink({field.name!r})`, or fetch the object with "
        f"cascadeFetch=True (for example `await Model.objects.aget(pk, cascadeFetch=True)`)")
