"""Filter lookups: ``field=value`` and ``field__<lookup>=value``.

Each lookup is a small class registered under its ``lookup_name``; adding an operator
is adding one class.  A lookup turns a filter value into a condition, a plain tuple
the compiler understands (see ``compiler.py``):

* ``("S", field, index value)``: the value's set (an index value of None: the irNull set)
* ``("U", field, (index values...))``: any of the values' sets
* ``("Z", field, min, max)``: a range over a numeric field's sorted set (score syntax)
* ``("L", field, min, max, raw min, raw max)``: a range over a text field's lexicographic
  index (lex syntax over its members, and the same bounds over plain text)
* ``("N", field, index value)``: excludes the value's set
* ``("D", field, mode, a, b)``: any of the sets of the values a text field's dictionary
  holds that meet a text condition (see ``textindex.py``): mode ``r`` a range (``a``,
  ``b`` lex bounds over the values), ``i`` a case-insensitive prefix (``b`` = ``p``) or
  equality (``e``) with the case-folded text ``a``, ``c`` a substring ``a`` (``b`` =
  ``i``: of the case-folded value)

Every lookup says which index kinds can serve it; asking another kind raises an
``InvalidQueryError`` that explains why and what would work.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from .exceptions import InvalidQueryError
from .fields import irNull
from .keys import lex_text
from .names import nearest
from .textindex import after_prefix, folded

if TYPE_CHECKING:
    from .fields import IRField
    from .options import IndexSpec, ModelOptions

__all__ = ["Lookup", "register_lookup", "resolve_filter", "LOOKUPS", "Condition"]

LOOKUPS: dict[str, type[Lookup]] = {}

Condition = tuple[Any, ...]

_OPEN = object()  # an open end of a range

_RANGE_HELP = ("ranges and ordering need a number field (IRField with valueType int, float, bool "
               "or datetime, or IRFixedPointField) or a text field (a plain IRField or a name in FIELDS, "
               "without hashIndex)")


def register_lookup(cls: type[Lookup]) -> type[Lookup]:
    LOOKUPS[cls.lookup_name] = cls
    return cls


class Lookup:
    """One operator.  ``condition(value)`` returns the condition for a filter value."""

    lookup_name: ClassVar[str]

    def __init__(self, meta: ModelOptions, spec: IndexSpec) -> None:
        self.meta = meta
        self.spec = spec
        self.field: IRField = spec.field

    def python_value(self, value: Any) -> Any:
        return self.meta.to_python(self.field, value)

    def index_value(self, value: Any) -> bytes | None:
        """The index bytes of a filter value; None for irNull (the null set)."""
        value = self.python_value(value)
        return None if value is irNull else self.field.toIndex(value)

    def condition(self, value: Any) -> Condition:
        raise NotImplementedError

    def refuse(self, why: str) -> InvalidQueryError:
        return InvalidQueryError(
            f"{self.meta.name}.{self.field.name}__{self.lookup_name}: {why}")


@register_lookup
class Equal(Lookup):
    """``field=value`` (or ``field__eq=value``): the value equals ``value``."""

    lookup_name = "eq"

    def condition(self, value: Any) -> Condition:
        return ("S", self.field.name, self.index_value(value))


@register_lookup
class NotEqual(Lookup):
    """``field__ne=value``: the value differs from ``value`` (irNull values included)."""

    lookup_name = "ne"

    def condition(self, value: Any) -> Condition:
        return ("N", self.field.name, self.index_value(value))


@register_lookup
class In(Lookup):
    """``field__in=[a, b, ...]``: the value is one of these (an empty list matches nothing)."""

    lookup_name = "in"

    def condition(self, value: Any) -> Condition:
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise self.refuse(f"expects a list of values, got {type(value).__name__} {value!r}")
        values = tuple(dict.fromkeys(self.index_value(item) for item in value))
        return ("U", self.field.name, values)


@register_lookup
class IsNull(Lookup):
    """``field__isnull=True``: the value is irNull; ``False``: it is not."""

    lookup_name = "isnull"

    def condition(self, value: Any) -> Condition:
        if not isinstance(value, bool):
            raise self.refuse(f"expects True or False, got {value!r}")
        return ("S" if value else "N", self.field.name, None)


class _Range(Lookup):
    """Comparisons: by number on number fields, by text (byte order of UTF-8, which is
    code point order) on LEX_INDEXED_FIELDS text fields.

    A number bound is a score (``'(5.0'`` excludes 5).  A text bound is a pair: one in
    the lex index's syntax over its members (escaped text, NUL NUL, padded pk) and one
    over the plain text, for checking stored values when another condition drives.
    """

    def _check(self) -> None:
        if not (self.spec.numeric or self.spec.lex or self.spec.text):
            what = ("its index is hashed (only equality can be looked up)" if self.field.hashIndex
                    else "its index holds one set per value, which only serves equality")
            raise self.refuse(f"{self.field.name!r} cannot be compared by order: {what}; {_RANGE_HELP}")

    def _value(self, value: Any) -> Any:
        self._check()
        value = self.python_value(value)
        if value is irNull:
            raise self.refuse("cannot compare with irNull; use __isnull")
        return value

    def condition_between(self, low: Any = _OPEN, high: Any = _OPEN, low_inclusive: bool = True,
                          high_inclusive: bool = True) -> Condition:
        """The condition low <(=) value <(=) high; either end may be open."""
        if self.spec.numeric:
            bounds = []
            ends = ((low, low_inclusive, b"-inf"), (high, high_inclusive, b"+inf"))
            for value, inclusive, open_end in ends:
                if value is _OPEN:
                    bounds.append(open_end)
                    continue
                self._value(value)  # validates, with an error naming model and field
                score = self.field.boundScore(value)
                if score is None:
                    return ("U", self.field.name, ())  # nan: no value compares with it
                text = repr(float(score)).encode("ascii")
                bounds.append(text if inclusive else b"(" + text)
            return ("Z", self.field.name, bounds[0], bounds[1])
        if not self.spec.lex:  # the text dictionary: bounds over the values themselves
            text_ends = [b"-", b"+"]
            for position, value, inclusive in ((0, low, low_inclusive), (1, high, high_inclusive)):
                if value is not _OPEN:
                    text_ends[position] = (b"[" if inclusive else b"(") + self.field.toIndex(self._value(value))
            return ("D", self.field.name, b"r", text_ends[0], text_ends[1])
        lex_low, raw_low, lex_high, raw_high = b"-", b"-", b"+", b"+"
        if low is not _OPEN:
            text = self.field.toIndex(self._value(low))
            # Members of exactly `text` are lex_text(text) + padded pk (digits < 0xff).
            lex_low = b"[" + lex_text(text) + (b"" if low_inclusive else b"\xff")
            raw_low = (b"[" if low_inclusive else b"(") + text
        if high is not _OPEN:
            text = self.field.toIndex(self._value(high))
            lex_high = (b"[" + lex_text(text) + b"\xff") if high_inclusive else (b"(" + lex_text(text))
            raw_high = (b"[" if high_inclusive else b"(") + text
        return ("L", self.field.name, lex_low, lex_high, raw_low, raw_high)


@register_lookup
class GreaterThan(_Range):
    """``field__gt=v``"""

    lookup_name = "gt"

    def condition(self, value: Any) -> Condition:
        return self.condition_between(low=value, low_inclusive=False)


@register_lookup
class GreaterThanOrEqual(_Range):
    """``field__gte=v``"""

    lookup_name = "gte"

    def condition(self, value: Any) -> Condition:
        return self.condition_between(low=value)


@register_lookup
class LessThan(_Range):
    """``field__lt=v``"""

    lookup_name = "lt"

    def condition(self, value: Any) -> Condition:
        return self.condition_between(high=value, high_inclusive=False)


@register_lookup
class LessThanOrEqual(_Range):
    """``field__lte=v``"""

    lookup_name = "lte"

    def condition(self, value: Any) -> Condition:
        return self.condition_between(high=value)


@register_lookup
class Range(_Range):
    """``field__range=(low, high)``: low <= value <= high."""

    lookup_name = "range"

    def condition(self, value: Any) -> Condition:
        pair = list(value) if isinstance(value, Iterable) and not isinstance(value, (str, bytes)) else None
        if pair is None or len(pair) != 2:
            raise self.refuse(f"expects a (low, high) pair, got {value!r}")
        return self.condition_between(low=pair[0], high=pair[1])


class TextLookup(Lookup):
    """A lookup on text, served by the field's dictionary of distinct values."""

    how: ClassVar[str] = "as text"

    def text(self, value: Any) -> bytes:
        if not self.spec.text:
            why = ("its index is hashed, so the text is not kept" if self.field.hashIndex else
                   f"only text fields can be matched {self.how}")
            raise self.refuse(f"{self.field.name!r} cannot be matched {self.how}: {why}; text lookups need "
                              f"a text field (a plain IRField or a name in FIELDS, without hashIndex)")
        text = self.python_value(value)
        if text is irNull:
            raise self.refuse("expects text, not irNull; use __isnull")
        return self.field.toIndex(text)


@register_lookup
class StartsWith(TextLookup):
    """``field__startswith='abc'``: the text begins with 'abc' (case-sensitive)."""

    lookup_name = "startswith"
    how = "by prefix"

    def condition(self, value: Any) -> Condition:
        if not self.spec.lex:
            raw = self.text(value)
            return ("D", self.field.name, b"r", b"[" + raw, after_prefix(raw) if raw else b"+")
        prefix = self.python_value(value)
        if prefix is irNull:
            raise self.refuse("expects text, not irNull")
        raw = self.field.toIndex(prefix)
        if not raw:
            return ("L", self.field.name, b"-", b"+", b"-", b"+")
        escaped = raw.replace(b"\x00", b"\x00\x01")
        return ("L", self.field.name, b"[" + escaped, after_prefix(escaped), b"[" + raw, after_prefix(raw))


@register_lookup
class IStartsWith(TextLookup):
    """``field__istartswith='abc'``: the text begins with 'abc', compared case-folded
    (``str.casefold``)."""

    lookup_name = "istartswith"
    how = "by prefix"

    def condition(self, value: Any) -> Condition:
        return ("D", self.field.name, b"i", folded(self.text(value)), b"p")


@register_lookup
class IExact(TextLookup):
    """``field__iexact='abc'``: the text equals 'abc', compared case-folded."""

    lookup_name = "iexact"

    def condition(self, value: Any) -> Condition:
        return ("D", self.field.name, b"i", folded(self.text(value)), b"e")


@register_lookup
class Contains(TextLookup):
    """``field__contains='abc'``: the text holds 'abc' (case-sensitive)."""

    lookup_name = "contains"

    def condition(self, value: Any) -> Condition:
        return ("D", self.field.name, b"c", self.text(value), b"")


@register_lookup
class IContains(TextLookup):
    """``field__icontains='abc'``: the text holds 'abc', compared case-folded."""

    lookup_name = "icontains"

    def condition(self, value: Any) -> Condition:
        return ("D", self.field.name, b"c", folded(self.text(value)), b"i")


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
    spec = meta.specs.get(name)
    if spec is None:
        raise InvalidQueryError(
            f"Cannot filter {meta.name} on {name!r}: the field is not in INDEXED_FIELDS, and "
            f"only indexed fields can be filtered on the server. Indexed fields: "
            f"{_listing(meta.indexed_names)}.")
    lookup_cls = LOOKUPS.get(lookup_name)
    if lookup_cls is None:
        raise InvalidQueryError(
            f"Unknown lookup {lookup_name!r} in {key!r} for {meta.name}; valid lookups: "
            f"{_listing(sorted(LOOKUPS))}.{nearest(lookup_name, LOOKUPS)}")
    return lookup_cls(meta, spec).condition(value)


def _listing(names: Any) -> str:
    names = list(names)
    return ", ".join(names) if names else "(none)"
