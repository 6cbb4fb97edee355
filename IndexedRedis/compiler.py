"""Turns a query (conditions and an order) into the arguments of one ``query.lua``
call.  Pure: it names keys and builds arguments, and talks to no server."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .compat import compat6
from .exceptions import InvalidQueryError
from .fields import irNull
from .lookups import Condition, resolve_filter
from .textindex import OrderPlan, TextPlan, condition_letters, walk_spec

if TYPE_CHECKING:
    from .keys import GenerationKeys
    from .options import ModelOptions

__all__ = ["Order", "PK_ORDER", "Query", "compile_query", "resolve_order", "order_plan_key"]


@dataclass(frozen=True, slots=True)
class Order:
    """Order by a field (``None``: by pk), ascending unless ``descending``."""

    field: str | None
    descending: bool = False

    def reversed(self) -> Order:
        return Order(self.field, not self.descending)


PK_ORDER = Order(None)


@dataclass(frozen=True, slots=True)
class Query:
    """What a query set selects and in which order (see ``lookups.py`` for conditions)."""

    conditions: tuple[Condition, ...] = ()
    order: Order = PK_ORDER
    #: The conditions as a set, so that narrowing a query many times over (thousands
    #: of chained ``__ne`` filters) does not compare each new condition with every one.
    distinct: frozenset[Condition] = field(default=frozenset(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.distinct) != len(self.conditions):
            object.__setattr__(self, "distinct", frozenset(self.conditions))

    def narrowed(self, meta: ModelOptions, filters: dict[str, Any]) -> Query:
        added: list[Condition] = []
        for key, value in filters.items():
            condition = resolve_filter(meta, key, value)
            if condition not in self.distinct and condition not in added:
                added.append(condition)
        if not added:
            return self
        return replace(self, conditions=self.conditions + tuple(added), distinct=self.distinct.union(added))

    @property
    def is_everything(self) -> bool:
        return not self.conditions


def resolve_order(meta: ModelOptions, spec: str) -> Order:
    """``'field'`` or ``'-field'`` (``'_id'`` / ``'pk'`` for the primary key)."""
    if not isinstance(spec, str) or not spec.lstrip("-"):
        raise InvalidQueryError(f"orderBy expects a field name like 'price' or '-price', got {spec!r}")
    descending = spec.startswith("-")
    name = spec.lstrip("-")
    if name in ("_id", "pk"):
        return Order(None, descending)
    index = meta.specs.get(name)
    if index is None or not (index.numeric or index.lex or index.text):
        if name not in meta.fields_by_name:
            why = "it is not a field of the model"
        elif index is None:
            why = "the field is not indexed"
        else:
            why = "its index holds one set per value, which has no order"
        raise InvalidQueryError(
            f"Cannot order {meta.name} by {name!r}: {why}. Ordering is done on the server and "
            f"needs a number field (int, float, bool, datetime, fixed point) or a text field "
            f"(without hashIndex) in INDEXED_FIELDS; or order by '_id'.")
    return Order(name, descending)


#: What a query's text plans are kept under (``textindex``): a condition, or the order.
def order_plan_key(order: Order) -> tuple[str, str | None, bool]:
    return ("order", order.field, order.descending)


def compile_query(meta: ModelOptions, gk: GenerationKeys, gen: int, op: str,
                  conditions: tuple[Condition, ...], order: Order = PK_ORDER, offset: int = 0,
                  limit: int = -1, after: int | None = None, rnd: int = 0,
                  plans: Mapping[Any, Any] | None = None) -> tuple[list[bytes], list[Any]]:
    """The KEYS and ARGV of a query.lua call.  ``plans`` holds the client's beliefs about
    text dictionaries (``TextPlan`` per 'D' condition, ``OrderPlan`` per text order)."""
    keys = [meta.keys.gen, gk.objs, gk.ids, meta.keys.schemas]
    numbers: dict[bytes, int] = {}
    plans = plans or {}

    def number(key: bytes) -> int:
        found = numbers.get(key)
        if found is None:
            keys.append(key)
            found = numbers[key] = len(keys)
        return found

    def value_set(field: str, value: bytes | None) -> int:
        return number(gk.null_index(field) if value is None else gk.index(field, value))

    extra: list[Any] = []  # text pseudo-conditions: the indexes read, the order's values
    count = len(conditions)
    if order.field is None:
        args: list[Any] = [gen, op, b"pk", 0, b"1" if order.descending else b"0", 0, b"", 0]
    else:
        index = meta.specs[order.field]
        if index.numeric:
            kind, ordered_key = b"z", gk.score_index(order.field)
        elif index.lex:
            kind, ordered_key = b"x", gk.lex_index(order.field)
        else:
            kind, ordered_key = b"d", gk.text_dict(order.field)
        unordered = 0
        odd = index.field.unorderedValue() if index.numeric else irNull
        if odd is not irNull:  # nan has no score: it is ordered with the irNull values
            unordered = number(gk.index(order.field, index.field.toIndex(odd)))
        args = [gen, op, kind, number(ordered_key),
                b"1" if order.descending else b"0", number(gk.null_index(order.field)), order.field,
                unordered]
        if kind == b"d":
            plan: OrderPlan | None = plans.get(order_plan_key(order))
            values = plan.values if plan is not None else ()
            extra += (b"O", number(gk.layout), order.field, plan.version if plan else b"?",
                      b"1" if plan is not None and plan.complete else b"0", len(values),
                      *(number(gk.index(order.field, v)) for v in values))
            count += 1
    needs = {(c[1], condition_letters(meta.specs[c[1]], c[0])) for c in conditions}
    if order.field is not None:
        needs.add((order.field, args[2].replace(b"d", b"sd").replace(b"z", b"sz").replace(b"x", b"sx")))
    six = compat6()  # 6.x answered from whatever a mix of layouts left: only text lookups refuse
    for name, letters in sorted(needs):
        if six and b"d" not in letters:
            continue
        if meta.specs[name].field.hashIndex:
            letters = letters.replace(b"s", b"h")
        extra += (b"R", number(gk.layout), name, letters)
        count += 1
    args += [offset, limit, b"" if after is None else after, rnd, count, *extra]
    for condition in conditions:
        kind, field = condition[0], condition[1]
        if kind in ("S", "N"):
            args += (kind, value_set(field, condition[2]))
        elif kind == "U":
            args += (b"U", len(condition[2]), *(value_set(field, v) for v in condition[2]))
        elif kind == "Z":
            args += (b"Z", number(gk.score_index(field)), condition[2], condition[3])
        elif kind == "D":
            text_plan: TextPlan | None = plans.get(condition)
            values = text_plan.values if text_plan is not None else ()
            args += (b"D", number(gk.layout), field, text_plan.version if text_plan else b"?",
                     number(gk.text_dict(field)), number(gk.fold_dict(field)),
                     *walk_spec(condition[2], condition[3], condition[4]), len(values),
                     *(value_set(field, v) for v in values))
        else:
            args += (b"L", number(gk.lex_index(field)), condition[2], condition[3], field,
                     condition[4], condition[5])
    return keys, args
