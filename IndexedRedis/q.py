"""``Q`` objects: conditions combined with ``|`` (or), ``&`` (and) and ``~`` (not),
and the condition trees they resolve to.

A tree node is a plain tuple (hashable, so query sets can be cached and compared):

* a leaf: a condition of ``lookups.py`` (``("S", field, value)``, ``("Z", ...)``...);
* ``(AND, (node, ...))``: every child holds (``(AND, ())`` holds for everything);
* ``(OR, (node, ...))``: some child holds (``(OR, ())`` holds for nothing);
* ``(NOT, node)``: the child does not hold.

Trees are kept normalised: nested ANDs (ORs) are flattened, negations are pushed
down to the leaves (De Morgan), and a negated equality becomes ``__ne`` (and back),
so that ``exclude(a__ne=1, b__ne=2)`` is ``a=1 OR b=2``, which the server can drive
from the union of two index sets.  ``compiler.py`` encodes trees for ``query.lua``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .lookups import Condition, resolve_filter

if TYPE_CHECKING:
    from .options import ModelOptions

__all__ = ["Q", "AND", "OR", "NOT", "Node", "TRUE", "FALSE", "is_leaf", "resolve_node", "negate",
           "conjoin", "split_and", "tree_leaves"]

AND, OR, NOT = "AND", "OR", "NOT"
Node = tuple[Any, ...]
TRUE: Node = (AND, ())
FALSE: Node = (OR, ())

# A leaf kind and its negation, where there is one as cheap (an index set vs its complement).
_FLIPPED = {"S": "N", "N": "S"}


def is_leaf(node: Node) -> bool:
    return node[0] not in (AND, OR, NOT)


class Q:
    """Filters to combine: ``Q(a=1) | Q(b__gt=2)``, ``Q(a=1) & ~Q(b=2)``.

    The keywords of one ``Q`` must all hold (like ``filter()``'s); positional
    arguments are more ``Q`` objects, and'ed in.  Give them to ``filter()`` and
    ``exclude()``, alone or with keywords.
    """

    __slots__ = ("children", "connector", "negated")

    def __init__(self, *args: Q, **filters: Any) -> None:
        for arg in args:
            if not isinstance(arg, Q):
                raise TypeError(f"Q() takes Q objects and field=value keywords; got {type(arg).__name__} {arg!r}")
        self.children: tuple[Any, ...] = (*args, *filters.items())
        self.connector = AND
        self.negated = False

    def _combine(self, other: Any, connector: str) -> Q:
        if not isinstance(other, Q):
            return NotImplemented
        combined = Q()
        combined.children = (self, other)
        combined.connector = connector
        return combined

    def __or__(self, other: Any) -> Q:
        return self._combine(other, OR)

    def __and__(self, other: Any) -> Q:
        return self._combine(other, AND)

    def __invert__(self) -> Q:
        inverted = Q()
        inverted.children = (self,)
        inverted.negated = True
        return inverted

    def __repr__(self) -> str:
        parts = [repr(c) if isinstance(c, Q) else f"{c[0]}={c[1]!r}" for c in self.children]
        text = f" {self.connector} ".join(parts) if len(parts) != 1 else parts[0]
        return f"~({text})" if self.negated else f"Q({text})"

    def resolve(self, meta: ModelOptions) -> Node:
        """The normalised tree of this Q for a model (errors name the field and model)."""
        kids = [child.resolve(meta) if isinstance(child, Q) else resolve_filter(meta, child[0], child[1])
                for child in self.children]
        node = conjoin(kids) if self.connector == AND else disjoin(kids)
        return negate(node) if self.negated else node


def resolve_node(meta: ModelOptions, qs: tuple[Any, ...], filters: dict[str, Any]) -> Node:
    """The tree of ``filter()`` / ``exclude()`` arguments: all of them hold."""
    kids: list[Node] = []
    for q in qs:
        if not isinstance(q, Q):
            raise TypeError(f"{meta.name}: filter() and exclude() take Q objects and field=value keywords; "
                            f"got {type(q).__name__} {q!r}")
        kids.append(q.resolve(meta))
    kids += [resolve_filter(meta, key, value) for key, value in filters.items()]
    return conjoin(kids)


def _join(op: str, kids: list[Node]) -> Node:
    absorbing, neutral = (FALSE, TRUE) if op == AND else (TRUE, FALSE)
    flat: dict[Node, None] = {}  # ordered, without repeats
    for kid in kids:
        parts = kid[1] if kid[0] == op else (kid,)
        for part in parts:
            if part == absorbing:
                return absorbing
            if part != neutral:
                flat[part] = None
    if len(flat) == 1:
        return next(iter(flat))
    return (op, tuple(flat))


def conjoin(kids: list[Node]) -> Node:
    return _join(AND, kids)


def disjoin(kids: list[Node]) -> Node:
    return _join(OR, kids)


def negate(node: Node) -> Node:
    """NOT node, with the negation pushed down to the leaves."""
    op = node[0]
    if op == NOT:
        return node[1]  # type: ignore[no-any-return]
    if op == AND:
        return disjoin([negate(kid) for kid in node[1]])
    if op == OR:
        return conjoin([negate(kid) for kid in node[1]])
    flipped = _FLIPPED.get(op)
    if flipped is not None:
        return (flipped, *node[1:])
    return (NOT, node)


def tree_leaves(node: Node) -> list[Condition]:
    """The leaves of a tree, in order."""
    if is_leaf(node):
        return [node]
    kids = (node[1],) if node[0] == NOT else node[1]
    return [leaf for kid in kids for leaf in tree_leaves(kid)]


def split_and(node: Node) -> tuple[list[Condition], list[Node]]:
    """A tree as plain leaves that must all hold (the fast path of a plain AND) and
    the other nodes that must hold too."""
    parts = node[1] if node[0] == AND else (node,)
    leaves = [part for part in parts if is_leaf(part)]
    others = [part for part in parts if not is_leaf(part)]
    return leaves, others
