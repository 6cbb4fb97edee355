"""Foreign link fields: their value refers to objects of another model.

The stored value is the linked primary key (or, for a multi-link, the list of them);
on instances the value is a ``ForeignLink`` holding the pk and, once fetched or
assigned, the object.  Fetching on read is the model layer's (``IndexedRedis.foreign``).
"""

from __future__ import annotations

from typing import Any, TypeAlias

from ..exceptions import LinkNotFetchedError
from .base import IRField
from .values import NULL_STORED, irNull

__all__ = ["ForeignLink", "ForeignLinks", "IRForeignLinkFieldBase", "IRForeignLinkField",
           "IRForeignMultiLinkField"]

#: A model instance.  Typed loosely: the model layer is built on the fields, not below them.
_Model: TypeAlias = Any


def _is_model_class(klass: type) -> bool:
    """``issubclass(klass, IndexedRedisModel)``, told by name, as ``IndexedRedis.model``
    imports this module."""
    return any(k.__module__ == "IndexedRedis.model" and k.__qualname__ == "IndexedRedisModel"
               for k in klass.__mro__)


class ForeignLink:
    """A link to one object: its pk, and the object itself once known."""

    __slots__ = ("pk", "obj")

    def __init__(self, pk: int | None, obj: _Model | None = None) -> None:
        self.pk = pk
        self.obj = obj

    def current_pk(self) -> int | None:
        """The pk to store: an assigned object's own pk wins (it may have been saved since)."""
        return self.obj._id if self.obj is not None else self.pk

    def objects(self) -> list[_Model]:
        return [self.obj] if self.obj is not None else []

    def pks(self) -> list[int]:
        pk = self.current_pk()
        return [] if pk is None else [pk]

    # 6.x's names (its ForeignLinkData), for code that reads the link itself:
    # ``object.__getattribute__(obj, field)`` and the (old, new) pairs of reload().

    def isFetched(self) -> bool:
        """Whether the linked object is in memory (reading the field needs no fetch)."""
        return self.obj is not None or self.pk is None

    def getObj(self) -> _Model:
        """The linked object; raises LinkNotFetchedError if it is not in memory (fetch it
        by reading the model's attribute, or with ``obj.fetchLink(name)``)."""
        if not self.isFetched():
            raise LinkNotFetchedError(f"{self!r}: the linked object is not fetched; read the model's "
                                      f"attribute, or call fetchLink(fieldName) on the model object")
        return self.obj

    def getObjs(self) -> list[_Model]:
        return [self.getObj()]

    def getPk(self) -> int | None:
        return self.current_pk()

    def getPks(self) -> list[int]:
        return self.pks()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ForeignLink):
            return self.current_pk() == other.current_pk() and (
                self.current_pk() is not None or self.obj is other.obj)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("ForeignLink", self.current_pk()))

    def __repr__(self) -> str:
        return f"ForeignLink(pk={self.current_pk()!r}{', fetched' if self.obj is not None else ''})"

    def __deepcopy__(self, memo: Any) -> ForeignLink:
        # A link is a reference: a copy points at the same stored object.
        return ForeignLink(self.current_pk(), self.obj)

    def __getstate__(self) -> tuple[int | None, Any]:
        return (self.current_pk(), self.obj)

    def __setstate__(self, state: tuple[int | None, Any]) -> None:
        self.pk, self.obj = state


class ForeignLinks:
    """Links to several objects, in order."""

    __slots__ = ("links",)

    def __init__(self, links: list[ForeignLink]) -> None:
        self.links = links

    def objects(self) -> list[_Model]:
        return [link.obj for link in self.links if link.obj is not None]

    def pks(self) -> list[int]:
        return [pk for pk in (link.current_pk() for link in self.links) if pk is not None]

    # 6.x's names (its ForeignLinkMultiData), see ForeignLink.

    @property
    def obj(self) -> list[_Model | None]:
        """The linked objects in order, None for each one not in memory."""
        return [link.obj for link in self.links]

    @property
    def pk(self) -> list[int | None]:
        return [link.current_pk() for link in self.links]

    def isFetched(self) -> bool:
        return all(link.isFetched() for link in self.links)

    def getObj(self) -> list[_Model]:
        """The linked objects; raises LinkNotFetchedError unless all are in memory."""
        return [link.getObj() for link in self.links]

    getObjs = getObj

    def getPk(self) -> list[int]:
        return self.pks()

    getPks = getPk

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ForeignLinks):
            return self.links == other.links
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self.links))

    def __repr__(self) -> str:
        return f"ForeignLinks({self.pks()!r})"

    def __deepcopy__(self, memo: Any) -> ForeignLinks:
        return ForeignLinks([ForeignLink(link.current_pk(), link.obj) for link in self.links])

    def __getstate__(self) -> list[ForeignLink]:
        return self.links

    def __setstate__(self, state: list[ForeignLink]) -> None:
        self.links = state


class IRForeignLinkFieldBase(IRField):
    """Common ground of single and multi links."""

    CAN_INDEX = True
    isMulti = False

    def __init__(self, name: str = "", foreignModel: Any = None, defaultValue: Any = None) -> None:
        super().__init__(name, defaultValue=irNull)
        if not isinstance(foreignModel, type) or not _is_model_class(foreignModel):
            raise ValueError(f"{type(self).__name__}({name!r}) needs foreignModel, an IndexedRedisModel "
                             f"class; got {foreignModel!r}")
        self.foreignModel: Any = foreignModel

    def _link(self, value: Any) -> ForeignLink:
        model = self.foreignModel
        if isinstance(value, ForeignLink):
            return value
        if isinstance(value, model):
            linked: Any = value
            return ForeignLink(linked._id, linked)
        if _is_model_class(type(value)):
            raise TypeError(f"a {model.__name__} object or pk, not a {type(value).__name__} object")
        if isinstance(value, bool):
            raise TypeError(f"a {model.__name__} object or its pk (an int)")
        try:
            pk = int(value)
        except (TypeError, ValueError):
            raise TypeError(f"a {model.__name__} object or its pk (an int)") from None
        if pk < 0 or (isinstance(value, float) and value != pk):
            raise ValueError(f"a {model.__name__} pk (a non-negative int)")
        return ForeignLink(pk)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, foreignModel={self.foreignModel.__name__})"


class IRForeignLinkField(IRForeignLinkFieldBase):
    """A link to one object of ``foreignModel`` (like a foreign key): assign the object
    or its pk; reading the attribute fetches the object (or gives irNull)."""

    expected = "a linked object or its pk"

    def _fromInput(self, value: Any) -> ForeignLink:
        return self._link(value)

    def _toStorage(self, value: ForeignLink) -> Any:
        pk = value.current_pk()
        return NULL_STORED if pk is None else str(pk)  # an unsaved object links nothing

    def _fromStorage(self, stored: Any) -> ForeignLink:
        return ForeignLink(int(stored))

    def _toIndex(self, value: ForeignLink) -> bytes:
        return str(value.current_pk()).encode("ascii")


class IRForeignMultiLinkField(IRForeignLinkFieldBase):
    """Links to several objects of ``foreignModel``: assign a list of objects and/or pks;
    reading the attribute fetches the objects (deleted ones are left out).  A filter
    must name the whole list."""

    isMulti = True
    expected = "a list of linked objects and/or their pks"

    def _fromInput(self, value: Any) -> Any:
        if isinstance(value, ForeignLinks):
            return value
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise TypeError(self.expected)
        links = [self._link(item) for item in value]
        return ForeignLinks(links) if links else irNull

    def _toStorage(self, value: ForeignLinks) -> Any:
        pks = value.pks()
        return ",".join(str(pk) for pk in pks) if pks else NULL_STORED

    def _fromStorage(self, stored: Any) -> ForeignLinks:
        text = stored.decode("ascii") if isinstance(stored, bytes) else stored
        return ForeignLinks([ForeignLink(int(pk)) for pk in text.split(",") if pk])

    def _toIndex(self, value: ForeignLinks) -> bytes:
        return ",".join(str(pk) for pk in value.pks()).encode("ascii")
