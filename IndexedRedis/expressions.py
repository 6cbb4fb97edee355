"""``F('field')``: a stored field's value in arithmetic, for ``QuerySet.update``.

``F('n') + 1``, ``F('price') * 1.1``, ``F('a') - F('b')``, ``-F('n')``: ``+ - * / //``
with numbers (int, float, Decimal) or other expressions, on number fields (``IRField``
of valueType int or float, ``IRFixedPointField``).  An expression is worked out with
Python's arithmetic for each object from the value stored when the update read it;
irNull in an operand makes the result irNull (as NULL in SQL).  The result is then
validated by the target field, as an assigned value is: an int field refuses a
fractional result (use ``//``).  Pure: no I/O.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .exceptions import FieldValueError
from .fields import IRField, IRFixedPointField, irNull
from .names import nearest

if TYPE_CHECKING:
    from .options import ModelOptions

__all__ = ["Expression", "F", "number_field", "check_expression"]

_NUMBERS = (int, float, Decimal)
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "//": operator.floordiv}


def _operators(op: str) -> tuple[Callable[[Expression, Any], Expression], Callable[[Expression, Any], Expression]]:
    """The method of an operator, and of its reflected form (``1 + F('n')``)."""

    def forward(self: Expression, other: Any) -> Expression:
        return self._combine(op, other)

    def reflected(self: Expression, other: Any) -> Expression:
        return self._combine(op, other, True)

    return forward, reflected


class Expression:
    """Arithmetic over stored field values (see the module's docstring)."""

    __slots__ = ()

    def fields(self) -> frozenset[str]:
        """The names of the fields the expression reads."""
        raise NotImplementedError

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        """The expression's value, given each read field's value (irNull spreads)."""
        raise NotImplementedError

    def _combine(self, op: str, other: Any, swapped: bool = False) -> Expression:
        operand = _operand(other, op)
        if op in ("/", "//") and not swapped and isinstance(operand, _Number) and operand.value == 0:
            raise ZeroDivisionError(f"{self!r} {op} {operand!r} divides by zero")
        return _Op(op, operand, self) if swapped else _Op(op, self, operand)

    __add__, __radd__ = _operators("+")
    __sub__, __rsub__ = _operators("-")
    __mul__, __rmul__ = _operators("*")
    __truediv__, __rtruediv__ = _operators("/")
    __floordiv__, __rfloordiv__ = _operators("//")

    def __neg__(self) -> Expression:
        return _Op("*", _Number(-1), self)

    def __pos__(self) -> Expression:
        return self

    def __bool__(self) -> bool:
        raise TypeError(f"{self!r} has no truth value: it is worked out per object by QuerySet.update")


class F(Expression):
    """The stored value of a field: ``Model.objects.filter(...).update(n=F('n') + 1)``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"F() takes a field name, got {name!r}")
        self.name = name

    def fields(self) -> frozenset[str]:
        return frozenset((self.name,))

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        return values[self.name]

    def __repr__(self) -> str:
        return f"F({self.name!r})"


class _Number(Expression):
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def fields(self) -> frozenset[str]:
        return frozenset()

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        return self.value

    def __repr__(self) -> str:
        return repr(self.value)


class _Op(Expression):
    __slots__ = ("op", "left", "right")

    def __init__(self, op: str, left: Expression, right: Expression) -> None:
        self.op, self.left, self.right = op, left, right

    def fields(self) -> frozenset[str]:
        return self.left.fields() | self.right.fields()

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        left, right = self.left.evaluate(values), self.right.evaluate(values)
        if left is irNull or right is irNull:
            return irNull
        if isinstance(left, Decimal) != isinstance(right, Decimal):  # Decimal and float do not mix
            left, right = float(left), float(right)
        return _OPERATORS[self.op](left, right)

    def __repr__(self) -> str:
        return f"({self.left!r} {self.op} {self.right!r})"


def _operand(value: Any, op: str) -> Expression:
    if isinstance(value, Expression):
        return value
    if isinstance(value, _NUMBERS) and not isinstance(value, bool):
        return _Number(value)
    raise TypeError(f"F expressions take numbers (int, float, Decimal) or other F expressions; "
                    f"got {type(value).__name__} {value!r} after {op!r}")


def number_field(field: Any) -> bool:
    """Whether F expressions may read or write a field: an int or float IRField, or an
    IRFixedPointField."""
    if isinstance(field, IRFixedPointField):
        return True
    return type(field) is IRField and field.valueType in (int, float)


def check_expression(meta: ModelOptions, target: str, expr: Expression) -> None:
    """Refuse an expression for ``meta``'s field ``target`` that reads an unknown field,
    or that reads or writes a field that does not hold numbers."""
    for name in sorted(expr.fields() | {target}):
        field = meta.fields_by_name.get(name)
        if field is None:
            raise FieldValueError(
                f"{meta.name}.{target} = {expr!r}: {meta.name} has no field {name!r}; its fields are "
                f"{', '.join(meta.field_names)}.{nearest(name, meta.field_names)}")
        if not number_field(field):
            role = "is assigned" if name == target else "is read by"
            raise FieldValueError(
                f"{meta.name}.{target} = {expr!r}: {meta.name}.{name} ({type(field).__name__}"
                f"{_value_type(field)}) {role} an F expression, which needs a number field: an IRField with "
                f"valueType int or float, or an IRFixedPointField")


def _value_type(field: Any) -> str:
    value_type = getattr(field, "valueType", None)
    return f" of {value_type.__name__}" if isinstance(value_type, type) else ""
