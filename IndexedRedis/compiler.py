"""Turns a query (conditions and an order) into the arguments of one ``query.lua``
call.  Pure: it names keys and builds arguments, and talks to no server."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .compat import compat6
from .exceptions import InvalidQueryError
from .expiry import expected
from .fields import irNull
from .fields.values import conversion_stamp
from .lookups import Condition, resolve_filter
from .q import AND, NOT, OR, TRUE, Node, is_leaf, negate, resolve_node, split_and, tree_leaves
from .textindex import OrderPlan, TextPlan, UnionPlan, condition_letters, walk_spec

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
    """What a query set selects and in which order: ``conditions`` (leaves, see
    ``lookups.py``) and ``where`` (condition trees, see ``q.py``) must all hold."""

    conditions: tuple[Condition, ...] = ()
    order: Order = PK_ORDER
    #: The conditions as a set, so that narrowing a query many times over (thousands
    #: of chained ``__ne`` filters) does not compare each new condition with every one.
    condition_set: frozenset[Condition] = field(default=frozenset(), repr=False, compare=False)
    #: Trees that must hold too (ORs, negated ranges...): each is tested on the server
    #: against the candidates the conditions (or the trees) give.
    where: tuple[Node, ...] = ()

    def __post_init__(self) -> None:
        if len(self.condition_set) != len(self.conditions):
            object.__setattr__(self, "condition_set", frozenset(self.conditions))

    def narrowed(self, meta: ModelOptions, filters: dict[str, Any], qs: tuple[Any, ...] = (),
                 exclude: bool = False) -> Query:
        """This query and ``filter(*qs, **filters)`` (``exclude``: and not them)."""
        if not qs and not exclude:  # the plain filter() of keywords: leaves only
            if not self.conditions and not self.where:
                return _first_filter(self, meta, filters)
            return _keywords(self, meta, filters)
        node = resolve_node(meta, qs, filters)
        if node == TRUE:  # nothing to hold (no filters, or empty Q()s): a no-op, as in Django
            return self
        return self._with(negate(node) if exclude else node)

    def _with(self, node: Node) -> Query:
        if node == TRUE:
            return self
        leaves, others = split_and(node)
        added: list[Condition] = []
        for condition in leaves:
            if condition not in self.condition_set and condition not in added:
                added.append(condition)
        trees = tuple(tree for tree in dict.fromkeys(others) if tree not in self.where)
        if not added and not trees:
            return self
        # Built directly: dataclasses.replace costs as much again (filter() runs per request).
        return Query(conditions=self.conditions + tuple(added), order=self.order,
                     condition_set=self.condition_set.union(added), where=self.where + trees)

    @property
    def is_everything(self) -> bool:
        return not self.conditions and not self.where

    @property
    def leaves(self) -> tuple[Condition, ...]:
        """Every condition, those inside the trees included."""
        return self.conditions + tuple(leaf for tree in self.where for leaf in tree_leaves(tree))

    @property
    def only_negations(self) -> bool:
        """Whether no condition gives the server candidates (it then walks the ids)."""
        return not self.where and all(c[0] == "N" for c in self.conditions)


#: Filter values whose type makes them safe memo keys: immutable, compared by value.
#: (Not float: ``-0.0 == 0.0``, yet a text field stores them as different text; not
#: bytes: text fields decode them with the default encoding.)
_MEMO_TYPES = frozenset({str, int, bool})
#: Value types whose conversion is IndexedRedis's own, a pure function of the value and
#: of the field's settings (a settings change empties the memo: ``conversion_stamp``).
_PURE_VALUE_TYPES = frozenset({str, int, float, bool, bytes, None})
#: Queries memoised per model (``ModelOptions.filter_memo``); the memo is emptied when full.
FILTER_MEMO_SIZE = 4096


def _memo_safe(meta: ModelOptions, key: str) -> bool:
    """Whether a filter keyword's condition may be memoised: its field is one of the
    package's own types (a user's subclass may convert by rules of its own)."""
    safe = meta.filter_memo_safe.get(key)
    if safe is None:
        field = meta.fields_by_name.get(key.partition("__")[0])
        safe = meta.filter_memo_safe[key] = (
            field is not None and type(field).__module__.startswith("IndexedRedis.")
            and getattr(field, "valueType", None) in _PURE_VALUE_TYPES)
    return safe


def _first_filter(query: Query, meta: ModelOptions, filters: dict[str, Any]) -> Query:
    """``query`` (no conditions yet: the start of a chain) narrowed by keyword filters,
    through a memo: ``Model.objects.filter(field=value)`` runs on every request of a web
    back end, and resolving a filter (the field, the lookup, the value's conversion and
    index bytes) costs more than the rest of a cached read.  Queries are immutable, so
    the memo hands out the same object; a value or a field it cannot key on is resolved
    each time, and any change to a field's settings (or the default encoding) empties it."""
    stamp = conversion_stamp()
    if meta.filter_memo_stamp != stamp:
        meta.filter_memo.clear()
        meta.filter_memo_safe.clear()
        meta.filter_memo_stamp = stamp
    key: tuple[Any, ...] = (query.order,)
    for name, value in filters.items():
        if type(value) not in _MEMO_TYPES or not _memo_safe(meta, name):
            return _keywords(query, meta, filters)
        key += (name, type(value), value)
    memo = meta.filter_memo
    found = memo.get(key)
    if found is None:
        found = _keywords(query, meta, filters)
        if len(memo) >= FILTER_MEMO_SIZE:
            memo.clear()
        memo[key] = found
    return found


def _keywords(query: Query, meta: ModelOptions, filters: dict[str, Any]) -> Query:
    """``query`` and the leaves of ``filter(**filters)``, resolved."""
    return query._with((AND, tuple(resolve_filter(meta, key, value) for key, value in filters.items())))


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
                  plans: Mapping[Any, Any] | None = None, where: tuple[Node, ...] = (),
                  extra: tuple[Any, ...] = ()) -> tuple[list[bytes], list[Any]]:
    """The KEYS and ARGV of a query.lua call.  ``plans`` holds the client's beliefs about
    text dictionaries (``TextPlan`` per 'D' condition, ``OrderPlan`` per text order);
    ``where``: condition trees that must hold too; ``extra``: the operation's own
    arguments, after the conditions (a ``("score", field)`` among them stands for the
    number of the field's score zset in KEYS)."""
    keys = [meta.keys.gen, gk.objs, gk.ids, meta.keys.schemas]
    numbers: dict[bytes, int] = {}
    plans = plans or {}

    def number(key: bytes) -> int:
        found = numbers.get(key)
        if found is None:
            keys.append(key)
            found = numbers[key] = len(keys)
        return found

    pseudo: list[Any] = []  # text pseudo-conditions: the indexes read, the order's values
    count = len(conditions) + len(where)
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
            pseudo += (b"O", number(gk.layout), order.field, plan.version if plan else b"?",
                      b"1" if plan is not None and plan.complete else b"0", len(values),
                      *(number(gk.index(order.field, v)) for v in values))
            count += 1
    leaves = conditions + tuple(leaf for tree in where for leaf in tree_leaves(tree))
    needs = {(c[1], condition_letters(meta.specs[c[1]], c[0])) for c in leaves}
    if order.field is not None:
        needs.add((order.field, args[2].replace(b"d", b"sd").replace(b"z", b"sz").replace(b"x", b"sx")))
    six = compat6()  # 6.x answered from whatever a mix of layouts left: only text lookups refuse
    for name, letters in sorted(needs):
        if six and b"d" not in letters:
            continue
        if meta.specs[name].field.hashIndex:
            letters = letters.replace(b"s", b"h")
        pseudo += (b"R", number(gk.layout), name, letters)
        count += 1
    unions = [plan for plan in plans.values() if isinstance(plan, UnionPlan)]
    if unions:  # checked before anything is read: no write since the scratch sets were made
        scratch = [key for plan in unions for key in plan.keys]
        pseudo += (b"W", number(gk.layout), unions[0].writes, len(scratch), *(number(key) for key in scratch))
        count += 1
    args += [offset, limit, b"" if after is None else after, rnd, count, *pseudo]
    for condition in conditions:
        args += leaf_args(gk, number, condition, plans)
    for tree in where:
        args.append(b"T")
        _tree_args(gk, number, tree, args, plans)
    for item in extra:
        args.append(number(gk.score_index(item[1])) if isinstance(item, tuple) else item)
    if meta.ttl_ms is not None:
        args[0] = expected(meta, gk, gen, number)
    return keys, args


def leaf_args(gk: GenerationKeys, number: Callable[[bytes], int], condition: Condition,
              plans: Mapping[Any, Any]) -> list[Any]:
    """The ARGV of one condition (a leaf), its keys given by number: the one place
    where leaves are encoded (see query.lua's LEAF table for their reading)."""
    kind, field = condition[0], condition[1]

    def value_set(value: bytes | None) -> int:
        return number(gk.null_index(field) if value is None else gk.index(field, value))

    if kind in ("S", "N"):
        return [kind, value_set(condition[2])]
    if kind == "U":
        return [b"U", len(condition[2]), *(value_set(v) for v in condition[2])]
    if kind == "Z":
        return [b"Z", number(gk.score_index(field)), condition[2], condition[3]]
    if kind == "D":
        text_plan: TextPlan | UnionPlan | None = plans.get(condition)
        if isinstance(text_plan, UnionPlan):  # its value sets gathered into scratch sets
            sets = [number(key) for key in text_plan.keys]
        else:
            sets = [value_set(v) for v in text_plan.values] if text_plan is not None else []
        return [b"D", number(gk.layout), field, text_plan.version if text_plan else b"?",
                number(gk.text_dict(field)), number(gk.fold_dict(field)),
                *walk_spec(condition[2], condition[3], condition[4]), len(sets), *sets]
    if kind == "L":
        return [b"L", number(gk.lex_index(field)), condition[2], condition[3], field, condition[4], condition[5]]
    raise InvalidQueryError(f"unknown condition kind {kind!r} in {condition!r}")


_TREE_OPS = {AND: b"&", OR: b"|"}


def _tree_args(gk: GenerationKeys, number: Callable[[bytes], int], node: Node, args: list[Any],
               plans: Mapping[Any, Any]) -> None:
    """A condition tree in prefix form: '&' n kids... | '|' n kids... | '!' kid | a leaf."""
    if is_leaf(node):
        args += leaf_args(gk, number, node, plans)
    elif node[0] == NOT:
        args.append(b"!")
        _tree_args(gk, number, node[1], args, plans)
    else:
        args += (_TREE_OPS[node[0]], len(node[1]))
        for kid in node[1]:
            _tree_args(gk, number, kid, args, plans)
