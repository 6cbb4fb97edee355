"""Filter lookups: ``field=value`` and ``field__<lookup>=value``.

Each lookup is a small class registered by its ``lookup_name``; adding an operator
means adding one class.  A lookup turns a filter value into a condition the query
compiler understands: ``("equal", field name, index value)`` or
``("excluded", field name, index value)``; an index value of None stands for irNull.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from .exceptions import InvalidQueryError
from .fields import irNull
from .options import nearest

if TYPE_CHECKING:
    from .fields import IRField
    from .options import ModelOptions

__all__ = ["Lookup", "register_lookup", "resolve_filter", "LOOKUPS"]

LOOKUPS: dict[str, type[Lookup]] = {}

Condition = tuple[str, str, "bytes | None"]


def register_lookup(cls: type[Lookup]) -> type[Lookup]:
    LOOKUPS[cls.lookup_name] = cls
    return cls


class Lookup:
    lookup_name: ClassVar[str]

    def __init__(self, meta: ModelOptions, field: IRField) -> None:
        self.meta = meta
        self.field = field

    def index_value(self, value: Any) -> bytes | None:
        """The index bytes of a filter value; None for irNull (the null set)."""
        value = self.meta.to_python(self.field, value)
        return None if value is irNull else self.field.toIndex(value)

    def condition(self, value: Any) -> Condition:
        raise NotImplementedError


@register_lookup
class Equal(Lookup):
    """``field=value`` (or ``field__eq=value``): the field's value equals ``value``."""

    lookup_name = "eq"

    def condition(self, value: Any) -> Condition:
        return ("equal", self.field.name, self.index_value(value))


@register_lookup
class NotEqual(Lookup):
    """``field__ne=value``: the field's value differs from ``value``."""

    lookup_name = "ne"

    def condition(self, value: Any) -> Condition:
        return ("excluded", self.field.name, self.index_value(value))


def resolve_filter(meta: ModelOptions, key: str, value: Any) -> Condition:
    """Turn one ``filter()`` keyword into a condition, or explain why it cannot be one."""
    name, _, lookup_name = key.partition("__")
    lookup_name = lookup_name or "eq"
    field = meta.fields_by_name.get(name)
    if field is None:
        raise InvalidQueryError(
            f"Cannot filter {meta.name} on {name!r}: it is not a field of the model. "
            f"Indexed fields that can be filtered: {_listing(meta.indexed_names)}."
            f"{nearest(name, meta.field_names)}")
    if field not in meta.indexed:
        raise InvalidQueryError(
            f"Cannot filter {meta.name} on {name!r}: the field is not in INDEXED_FIELDS, and "
            f"only indexed fields can be filtered on the server. Indexed fields: "
            f"{_listing(meta.indexed_names)}.")
    lookup_cls = LOOKUPS.get(lookup_name)
    if lookup_cls is None:
        raise InvalidQueryError(
            f"Unknown lookup {lookup_name!r} in {key!r} for {meta.name}; valid lookups: "
            f"{_listing(sorted(LOOKUPS))}.{nearest(lookup_name, LOOKUPS)}")
    return lookup_cls(meta, field).condition(value)


def _listing(names: Any) -> str:
    names = list(names)
    return ", ".join(names) if names else "(none)"
