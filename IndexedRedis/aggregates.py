"""Aggregates for ``QuerySet.aggregate``: ``Count``, ``Sum``, ``Min``, ``Max``, ``Avg``
(Django style: ``qs.aggregate(total=Sum('price'), n=Count())``).

They are computed on the server over the matching objects, from the field's sorted
set (so on numeric indexed fields: int, float, bool, fixed point; ``Min`` / ``Max``
also on datetimes).  irNull values, and nan (which has no score), are left out, as
SQL leaves out NULL; ``Count('field')`` counts the matches that have a number there.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any, ClassVar

from .exceptions import InvalidQueryError
from .names import nearest

if TYPE_CHECKING:
    from .options import ModelOptions

__all__ = ["Aggregate", "Count", "Sum", "Min", "Max", "Avg", "check_aggregates"]


class Aggregate:
    """One aggregate of one field."""

    function: ClassVar[str]
    #: Whether the values are added up (then datetimes cannot take part).
    adds: ClassVar[bool] = False

    def __init__(self, field: str) -> None:
        if not isinstance(field, str) or not field:
            raise TypeError(f"{type(self).__name__}() takes a field name; got {field!r}")
        self.field = field

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.field!r})"

    def result(self, meta: ModelOptions, total: int, n: int, sum_text: bytes, lo: Any, hi: Any) -> Any:
        raise NotImplementedError


class Count(Aggregate):
    """How many objects match (``Count()``), or how many of them have a number in
    ``field`` (``Count('price')``: not irNull, not nan)."""

    function = "Count"

    def __init__(self, field: str | None = None) -> None:
        if field is None:
            self.field = None  # type: ignore[assignment]
        else:
            super().__init__(field)

    def result(self, meta: ModelOptions, total: int, n: int, sum_text: bytes, lo: Any, hi: Any) -> Any:
        return total if self.field is None else n


class Sum(Aggregate):
    """The sum of the values (None when no object has one); an int for int and bool
    fields (exact while the sum stays within 2**53: scores are doubles), a float
    otherwise."""

    function = "Sum"
    adds = True

    def result(self, meta: ModelOptions, total: int, n: int, sum_text: bytes, lo: Any, hi: Any) -> Any:
        if n == 0:
            return None
        value = float(sum_text)
        return int(value) if _counts(meta.fields_by_name[self.field]) else value


class Avg(Aggregate):
    """The mean of the values, a float (None when no object has one)."""

    function = "Avg"
    adds = True

    def result(self, meta: ModelOptions, total: int, n: int, sum_text: bytes, lo: Any, hi: Any) -> Any:
        return None if n == 0 else float(sum_text) / n


class Min(Aggregate):
    """The lowest value, as the field gives it (read from the stored object that holds
    it, so exact); None when no object has one."""

    function = "Min"

    def result(self, meta: ModelOptions, total: int, n: int, sum_text: bytes, lo: Any, hi: Any) -> Any:
        return None if n == 0 else _value(meta, self.field, lo)


class Max(Aggregate):
    """The highest value, as the field gives it; None when no object has one."""

    function = "Max"

    def result(self, meta: ModelOptions, total: int, n: int, sum_text: bytes, lo: Any, hi: Any) -> Any:
        return None if n == 0 else _value(meta, self.field, hi)


def _counts(field: Any) -> bool:
    return field.valueType in (int, bool) and not hasattr(field, "decimalPlaces")


def _value(meta: ModelOptions, name: str, stored: Any) -> Any:
    if isinstance(stored, bytes):
        stored = stored.decode("utf-8", "surrogateescape")
    return meta.fields_by_name[name].fromStorage(stored)


def check_aggregates(meta: ModelOptions, named: dict[str, Any]) -> list[str]:
    """Refuse what cannot be aggregated, with an error naming the model, the field and
    what is expected; returns the fields whose scores are read, once each."""
    if not named:
        raise InvalidQueryError(f"{meta.name}: aggregate() takes name=Aggregate(...) keywords, "
                                f"e.g. aggregate(total=Sum('price'))")
    fields: list[str] = []
    for label, agg in named.items():
        if not isinstance(agg, Aggregate):
            raise InvalidQueryError(f"{meta.name}: aggregate({label}=...) expects Count, Sum, Min, Max or "
                                    f"Avg of a field; got {type(agg).__name__} {agg!r}")
        name = agg.field
        if name is None:
            continue
        where = f"{meta.name}.{name}: {agg.function}() needs"
        if name not in meta.fields_by_name:
            raise InvalidQueryError(f"{where} a field of the model; {meta.name} has no field {name!r}."
                                    f"{nearest(name, meta.field_names)}")
        spec = meta.specs.get(name)
        if spec is None or not spec.numeric:
            why = "the field is not indexed" if spec is None else "its index is not ordered by number"
            raise InvalidQueryError(
                f"{where} a number field in INDEXED_FIELDS (int, float, bool, fixed point"
                f"{'' if agg.adds else ', datetime'}); {why}")
        value_type = spec.field.valueType
        if agg.adds and isinstance(value_type, type) and issubclass(value_type, (_dt.date, _dt.time)):
            raise InvalidQueryError(f"{where} numbers to add up; {name!r} holds {value_type.__name__} values "
                                    f"(Min and Max work on them)")
        if name not in fields:
            fields.append(name)
    return fields
