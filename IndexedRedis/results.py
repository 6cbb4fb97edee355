"""Query results: lists that can be filtered further on the client.

``QueryableList`` is a plain ``list`` of objects (attribute access) or dicts (item
access) with the client-side filtering API IndexedRedis 6.x users know from the
QueryableList package: ``filter(age__gt=13)``, ``filterOr(...)``, ``customFilter``,
``sort_by`` and the list algebra ``+ - & | ^``.  ``IRQueryableList`` is what
``Model.objects...all()`` returns: the same, plus a few methods that act on the
objects in Redis (``save``, ``delete``, ``reload``, ``refetch``).

Operators are entries in :data:`OPERATORS`; adding one is one decorated function::

    @register("startswith")
    def _startswith(value: Any, prefix: Any) -> bool:
        return value.startswith(prefix)

(``prepare=`` checks/normalises the argument once per call; ``register_negation``
adds the complement of an existing operator in one line.)

A value the operator cannot handle (``None < 5``, ``5 in None``, ``irNull.lower()``)
makes the object *not match* instead of raising: a client-side filter runs over
whatever the objects hold, and one odd value should not break the whole query.
Negated operators (``ne``, ``notin``, ``notcontains``...) are the exact complement
of their positive twin, so an object lacking the field matches ``notcontains``.
"""

from __future__ import annotations

import difflib
import pprint as _pprint
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, SupportsIndex, TypeVar, cast, overload

from .dispatch import run_async, run_sync
from .exceptions import InvalidQueryError
from .fields import IRNullType
from .fields.links import _is_model_class
from .flows import reload

if TYPE_CHECKING:
    from .model import IndexedRedisModel

__all__ = [
    "QueryableList",
    "QueryableListObjs",
    "QueryableListDicts",
    "QueryableListMixed",
    "IRQueryableList",
    "OPERATORS",
    "Operator",
    "register",
    "register_negation",
]

T = TypeVar("T")
QL = TypeVar("QL", bound="QueryableList[Any]")

#: How a filter key names its operator: ``field__op``; a bare ``field`` means ``eq``.
OPERATOR_SEPARATOR = "__"


# ---- operators ------------------------------------------------------------------------


@dataclass(frozen=True)
class Operator:
    """One filter operator.

    ``test(value, argument)`` says whether a field value matches.  ``prepare`` runs once
    per filter call to check and normalise the argument (so a bad argument fails loudly
    instead of silently matching nothing).  ``tolerant`` operators treat a ``TypeError``
    or ``AttributeError`` from the test as "not matched"; ``customMatch`` is not
    tolerant, so bugs in user callables surface.
    """

    name: str
    test: Callable[[Any, Any], bool]
    prepare: Callable[[str, Any], Any] | None = None
    tolerant: bool = True

    def matches(self, value: Any, argument: Any) -> bool:
        """Whether ``value`` passes this operator with an already prepared argument."""
        if not self.tolerant:
            return bool(self.test(value, argument))
        try:
            return bool(self.test(value, argument))
        except (TypeError, AttributeError):  # e.g. None < 5, 5 in None, None.startswith
            return False


#: Every filter operator by name.
OPERATORS: dict[str, Operator] = {}

TestFunc = Callable[[Any, Any], bool]


def register(name: str, *, prepare: Callable[[str, Any], Any] | None = None,
             tolerant: bool = True) -> Callable[[TestFunc], TestFunc]:
    """Decorator: register ``func(value, argument) -> bool`` as operator ``name``."""

    def decorate(func: TestFunc) -> TestFunc:
        OPERATORS[name] = Operator(name, func, prepare, tolerant)
        return func

    return decorate


def register_negation(name: str, of: str) -> Operator:
    """Register ``name`` as the exact complement of the already registered ``of``."""
    positive = OPERATORS[of]

    def negated(value: Any, argument: Any) -> bool:
        return not positive.matches(value, argument)

    # Not tolerant itself: the positive twin already turned errors into False.
    operator = Operator(name, negated, positive.prepare, tolerant=False)
    OPERATORS[name] = operator
    return operator


def is_null(value: Any) -> bool:
    """None (or a missing field) and irNull (a field never set) are both "null"."""
    return value is None or isinstance(value, IRNullType)


def _lower(value: Any) -> Any:
    """``value.lower()``; a TypeError (so "not matched") for values without one."""
    lower = getattr(value, "lower", None)
    if not callable(lower) or isinstance(value, IRNullType):
        raise TypeError(f"{type(value).__name__} has no lower()")
    return lower()


def _split(value: Any, sep: str | None) -> list[str]:
    """Split a field holding a delimited list; only text can be split."""
    if not isinstance(value, str):
        raise TypeError(f"cannot split {type(value).__name__}")
    return value.split(sep)


# ---- argument checks (run once per filter call) ---------------------------------------


def _text_argument(key: str, argument: Any) -> Any:
    """Case-insensitive operators compare lower-cased text; lower the argument once."""
    if isinstance(argument, IRNullType) or not callable(getattr(argument, "lower", None)):
        raise InvalidQueryError(f"{key}: expected a string, got {argument!r}")
    return argument.lower()


def _collection_argument(key: str, argument: Any) -> Any:
    """``in``/``notin`` take any container; a one-shot iterable is snapshotted first."""
    if isinstance(argument, Container):
        return argument
    if isinstance(argument, Iterable):
        return tuple(argument)
    raise InvalidQueryError(f"{key}: expected a list, tuple or set, got {argument!r}")


def _many_argument(key: str, argument: Any) -> tuple[Any, ...]:
    """``...Any`` operators take a list of candidates; a lone string is almost surely a bug."""
    if isinstance(argument, (str, bytes)) or not isinstance(argument, Iterable):
        raise InvalidQueryError(
            f"{key}: expected a list of values, got {argument!r} (for a single value use contains)")
    return tuple(argument)


def _split_argument(key: str, argument: Any) -> tuple[str | None, Any]:
    """``split...`` operators take ``(separator, what)``."""
    if (isinstance(argument, (str, bytes)) or not isinstance(argument, (tuple, list))
            or len(argument) != 2 or not (argument[0] is None or isinstance(argument[0], str))):
        raise InvalidQueryError(f"{key}: expected a (separator, value) pair, got {argument!r}")
    return argument[0], argument[1]


def _split_many_argument(key: str, argument: Any) -> tuple[str | None, tuple[Any, ...]]:
    """``split...Any`` operators take ``(separator, [candidates])``."""
    sep, candidates = _split_argument(key, argument)
    return sep, _many_argument(key, candidates)


def _bool_argument(key: str, argument: Any) -> bool:
    """``isnull`` takes True or False."""
    if not isinstance(argument, (bool, int)):
        raise InvalidQueryError(f"{key}: expected True or False, got {argument!r}")
    return bool(argument)


def _callable_argument(key: str, argument: Any) -> Any:
    """``customMatch`` takes a function of the field value."""
    if not callable(argument):
        raise InvalidQueryError(f"{key}: expected a function, got {argument!r}")
    return argument


# ---- the operators QueryableList documents --------------------------------------------


@register("eq")
def _eq(value: Any, argument: Any) -> bool:
    return bool(value == argument)


register_negation("ne", of="eq")


@register("ieq", prepare=_text_argument)
def _ieq(value: Any, argument: Any) -> bool:
    return bool(_lower(value) == argument)


register_negation("ine", of="ieq")


@register("lt")
def _lt(value: Any, argument: Any) -> bool:
    return bool(value < argument)


@register("lte")
def _lte(value: Any, argument: Any) -> bool:
    return bool(value <= argument)


@register("gt")
def _gt(value: Any, argument: Any) -> bool:
    return bool(value > argument)


@register("gte")
def _gte(value: Any, argument: Any) -> bool:
    return bool(value >= argument)


@register("isnull", prepare=_bool_argument)
def _isnull(value: Any, argument: bool) -> bool:
    return is_null(value) == argument


@register("is")
def _is(value: Any, argument: Any) -> bool:
    return value is argument


register_negation("isnot", of="is")


@register("in", prepare=_collection_argument)
def _in(value: Any, argument: Any) -> bool:
    return value in argument


register_negation("notin", of="in")


@register("contains")
def _contains(value: Any, argument: Any) -> bool:
    return argument in value


register_negation("notcontains", of="contains")


@register("icontains", prepare=_text_argument)
def _icontains(value: Any, argument: Any) -> bool:
    if isinstance(value, (str, bytes)):
        return argument in _lower(value)
    # A list field: case-insensitive membership of one of its (text) elements.
    return any(_lower(element) == argument for element in value
               if callable(getattr(element, "lower", None)))


register_negation("noticontains", of="icontains")
register_negation("inotcontains", of="icontains")  # same thing, the spelling people guess


@register("containsAny", prepare=_many_argument)
def _contains_any(value: Any, argument: tuple[Any, ...]) -> bool:
    return any(candidate in value for candidate in argument)


register_negation("notcontainsAny", of="containsAny")


@register("splitcontains", prepare=_split_argument)
def _splitcontains(value: Any, argument: tuple[str | None, Any]) -> bool:
    sep, wanted = argument
    return wanted in _split(value, sep)


register_negation("splitnotcontains", of="splitcontains")


@register("splitcontainsAny", prepare=_split_many_argument)
def _splitcontains_any(value: Any, argument: tuple[str | None, tuple[Any, ...]]) -> bool:
    sep, candidates = argument
    parts = _split(value, sep)
    return any(candidate in parts for candidate in candidates)


register_negation("splitnotcontainsAny", of="splitcontainsAny")


@register("customMatch", prepare=_callable_argument, tolerant=False)
def _custom_match(value: Any, argument: Callable[[Any], Any]) -> bool:
    return bool(argument(value))


# ---- compiling filter keywords --------------------------------------------------------


def _unknown_operator(key: str, name: str) -> InvalidQueryError:
    """An error naming the valid operators and the nearest one to what was typed."""
    valid = sorted(OPERATORS, key=str.lower)
    by_lower = {op.lower(): op for op in valid}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    hint = f" Did you mean {by_lower[close[0]]!r}?" if close else ""
    return InvalidQueryError(
        f"Unknown filter operator {name!r} in {key!r}.{hint} Valid operators: {', '.join(valid)}")


Condition = tuple[str, Operator, Any]


def compile_filters(filters: Mapping[str, Any]) -> list[Condition]:
    """Turn ``field__op=value`` keywords into ``(field, operator, prepared argument)``.

    The field is everything before the last ``__``; a key with no ``__`` (or nothing on
    one side of it) is a whole field name compared with ``eq``.
    """
    conditions: list[Condition] = []
    for key, argument in filters.items():
        field, sep, name = key.rpartition(OPERATOR_SEPARATOR)
        if not sep or not field or not name:
            field, name = key, "eq"
        operator = OPERATORS.get(name)
        if operator is None:
            raise _unknown_operator(key, name)
        if operator.prepare is not None:
            argument = operator.prepare(key, argument)
        conditions.append((field, operator, argument))
    return conditions


# ---- membership for the list algebra --------------------------------------------------


class _Members:
    """``item in other`` for the list algebra: a set for hashable items, a scan for the rest.

    Equality is the list's own (``==``, identity first), just faster than ``list.__contains__``
    when the items are hashable.
    """

    def __init__(self, items: Iterable[Any]) -> None:
        self._hashed: set[Any] = set()
        self._unhashable: list[Any] = []
        for item in items:
            self.add(item)

    def add(self, item: Any) -> None:
        try:
            self._hashed.add(item)
        except TypeError:
            self._unhashable.append(item)

    def __contains__(self, item: Any) -> bool:
        try:
            if item in self._hashed:
                return True
        except TypeError:  # unhashable: it may still equal a hashable one (set vs frozenset)
            if any(item == other for other in self._hashed):
                return True
        return any(item is other or item == other for other in self._unhashable)


# ---- sorting ---------------------------------------------------------------------------


class _SortKey:
    """Orders field values for ``sort_by`` without raising on None or mixed types.

    Nulls (None, irNull, a missing field) come first; values that cannot be compared
    with each other are grouped by type name.
    """

    __slots__ = ("value", "null")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.null = is_null(value)

    def __lt__(self, other: _SortKey) -> bool:
        if self.null or other.null:
            return self.null and not other.null
        try:
            return bool(self.value < other.value)
        except TypeError:
            return type(self.value).__name__ < type(other.value).__name__


# ---- the list ---------------------------------------------------------------------------


class QueryableList(list[T]):
    """A list of objects or dicts that can be filtered, sorted and combined client-side.

    Every filtering, sorting and combining method returns a new list of the same class
    (built by :meth:`_copy_with`, so subclasses keep their extra attributes); the
    in-place operators (``+=``, ``-=``, ``&=``, ``|=``, ``^=``) change this one.
    """

    # ---- hooks for subclasses ---------------------------------------------------------

    @staticmethod
    def _get_item_value(item: Any, field: str) -> Any:
        """The value of ``field`` on ``item``: item access for mappings, else attribute.

        A missing field reads as None, so lists of differently shaped items can be
        filtered.  Override this to filter on computed values.
        """
        if isinstance(item, Mapping):
            return item.get(field)
        return getattr(item, field, None)

    def _copy_with(self: QL, items: Iterable[Any]) -> QL:
        """A new list of this class holding ``items``, with this list's attributes.

        Built without calling ``__init__`` so subclasses with other constructor
        signatures need not override it; instance attributes are copied shallowly.
        """
        new = type(self).__new__(type(self))
        list.__init__(new, items)
        new.__dict__.update(self.__dict__)
        return new

    # ---- filtering ----------------------------------------------------------------------

    def _matching(self: QL, filters: Mapping[str, Any], combine: Callable[[Iterable[bool]], bool]) -> QL:
        conditions = compile_filters(filters)
        get = self._get_item_value
        return self._copy_with(
            item for item in self
            if combine(operator.matches(get(item, field), argument)
                       for field, operator, argument in conditions))

    def filterAnd(self: QL, **filters: Any) -> QL:
        """The items matching *all* of ``field__op=value`` (no filters: every item)."""
        return self._matching(filters, all)

    filter = filterAnd

    def filterOr(self: QL, **filters: Any) -> QL:
        """The items matching *any* of ``field__op=value`` (no filters: no item)."""
        return self._matching(filters, any)

    def customFilter(self: QL, filterFunc: Callable[[Any], Any]) -> QL:
        """The items for which ``filterFunc(item)`` is true."""
        return self._copy_with(item for item in self if filterFunc(item))

    def sort_by(self: QL, fieldName: str, reverse: bool = False) -> QL:
        """A copy sorted (stably) by a field; nulls first, or last when ``reverse``."""
        get = self._get_item_value
        return self._copy_with(
            sorted(self, key=lambda item: _SortKey(get(item, fieldName)), reverse=reverse))

    # ---- ORM parity ----------------------------------------------------------------------

    def all(self: QL) -> QL:
        """A copy of this list, so ``.all()`` works on fetched results as on a query."""
        return self._copy_with(self)

    def count(self, *value: Any) -> int:
        """``count()`` is the number of items (as on a query); ``count(x)`` is list's."""
        if value:
            return list.count(self, *value)
        return len(self)

    def copy(self: QL) -> QL:
        """A shallow copy of the same class."""
        return self._copy_with(self)

    __copy__ = copy

    # ---- list methods that would return a plain list -------------------------------------

    @overload
    def __getitem__(self, index: SupportsIndex) -> T: ...

    @overload
    def __getitem__(self: QL, index: slice) -> QL: ...

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        if isinstance(index, slice):
            return self._copy_with(list.__getitem__(self, index))
        return list.__getitem__(self, index)

    def __mul__(self: QL, times: SupportsIndex) -> QL:
        return self._copy_with(list.__mul__(self, times))

    def __rmul__(self: QL, times: SupportsIndex) -> QL:
        return self._copy_with(list.__mul__(self, times))

    # ---- list algebra -------------------------------------------------------------------

    def __add__(self: QL, other: Iterable[Any]) -> QL:  # type: ignore[override]
        """Every item of ``self``, then every item of ``other``."""
        if not isinstance(other, Iterable):
            return NotImplemented
        return self._copy_with([*self, *other])

    def __iadd__(self: QL, other: Iterable[Any]) -> QL:  # type: ignore[override]
        if not isinstance(other, Iterable):
            return NotImplemented
        self.extend(other)
        return self

    def _minus(self, other: Iterable[Any]) -> list[Any]:
        drop = _Members(other)
        return [item for item in self if item not in drop]

    def __sub__(self: QL, other: Iterable[Any]) -> QL:
        """The items of ``self`` not in ``other`` (every occurrence is removed)."""
        if not isinstance(other, Iterable):
            return NotImplemented
        return self._copy_with(self._minus(other))

    def __isub__(self: QL, other: Iterable[Any]) -> QL:
        if not isinstance(other, Iterable):
            return NotImplemented
        self[:] = self._minus(other)
        return self

    def _intersection(self, other: Iterable[Any]) -> list[Any]:
        keep = _Members(other)
        return [item for item in self if item in keep]

    def __and__(self: QL, other: Iterable[Any]) -> QL:
        """The items of ``self`` that are also in ``other``, in ``self``'s order."""
        if not isinstance(other, Iterable):
            return NotImplemented
        return self._copy_with(self._intersection(other))

    def __iand__(self: QL, other: Iterable[Any]) -> QL:
        if not isinstance(other, Iterable):
            return NotImplemented
        self[:] = self._intersection(other)
        return self

    def _union(self, other: Iterable[Any]) -> list[Any]:
        result = list(self)
        present = _Members(self)
        for item in other:
            if item not in present:
                result.append(item)
                present.add(item)
        return result

    def __or__(self: QL, other: Iterable[Any]) -> QL:
        """``self`` followed by the items of ``other`` not already in it."""
        if not isinstance(other, Iterable):
            return NotImplemented
        return self._copy_with(self._union(other))

    def __ior__(self: QL, other: Iterable[Any]) -> QL:
        if not isinstance(other, Iterable):
            return NotImplemented
        self[:] = self._union(other)
        return self

    def _symmetric_difference(self, other: Iterable[Any]) -> list[Any]:
        others = list(other)
        in_other, in_self = _Members(others), _Members(self)
        return ([item for item in self if item not in in_other]
                + [item for item in others if item not in in_self])

    def __xor__(self: QL, other: Iterable[Any]) -> QL:
        """The items in exactly one of ``self`` and ``other`` (``self``'s first)."""
        if not isinstance(other, Iterable):
            return NotImplemented
        return self._copy_with(self._symmetric_difference(other))

    def __ixor__(self: QL, other: Iterable[Any]) -> QL:
        if not isinstance(other, Iterable):
            return NotImplemented
        self[:] = self._symmetric_difference(other)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list.__repr__(self)})"


class QueryableListObjs(QueryableList[T]):
    """A QueryableList whose items are read by attribute only (as QueryableList's)."""

    @staticmethod
    def _get_item_value(item: Any, field: str) -> Any:
        return getattr(item, field, None)


class QueryableListDicts(QueryableList[T]):
    """A QueryableList whose items are read by key only (as QueryableList's)."""

    @staticmethod
    def _get_item_value(item: Any, field: str) -> Any:
        try:
            return item[field]
        except (KeyError, IndexError, TypeError):
            return None


#: QueryableList reads both dicts and objects already; the name is kept for ports.
QueryableListMixed = QueryableList


# ---- IndexedRedis results ------------------------------------------------------------


def _check_model(model: Any) -> type[IndexedRedisModel]:
    if not (isinstance(model, type) and _is_model_class(model)):
        raise ValueError(f"{model!r} is not an IndexedRedisModel class")
    return model


class IRQueryableList(QueryableList[T]):
    """The result of a query: objects of one model, filterable client-side, with
    methods that save, delete, reload or refetch them in Redis.

    The model is given by the query or inferred from the first object.  Objects are
    not type-checked on the way in (as in 6.x): keep one model per list.  Slots left
    None (``getMultiple`` for a missing pk) are skipped by the Redis-bound methods.
    """

    def __init__(self, items: Iterable[T] | None = (), model: type[IndexedRedisModel] | None = None,
                 *, mdl: type[IndexedRedisModel] | None = None) -> None:
        """``mdl`` is 6.x's name for ``model``, accepted so old calls keep working."""
        super().__init__(() if items is None else items)
        model = model if model is not None else mdl
        self._model: type[IndexedRedisModel] | None = None if model is None else _check_model(model)
        if model is None:
            self.getModel()  # infer (and check) now if there are objects

    def getModel(self) -> type[IndexedRedisModel] | None:
        """The model of the objects; inferred from the first one if not given (None if empty)."""
        if self._model is None:
            first = next((obj for obj in list.__iter__(self) if obj is not None), None)
            if first is not None:
                self._model = _check_model(type(first))
        return self._model

    @property
    def mdl(self) -> type[IndexedRedisModel] | None:
        """6.x's attribute name for the model."""
        return self.getModel()

    @mdl.setter
    def mdl(self, model: type[IndexedRedisModel] | None) -> None:
        self._model = None if model is None else _check_model(model)

    def _objects(self) -> list[IndexedRedisModel]:
        """The objects of this list, without the None slots."""
        return [obj for obj in cast("list[IndexedRedisModel | None]", self) if obj is not None]

    def delete(self) -> int:
        """Delete every object of this list from Redis; returns how many were deleted."""
        objs, model = self._objects(), self.getModel()
        if not objs or model is None:
            return 0
        return model.deleter.deleteMultiple(objs)

    async def adelete(self) -> int:
        """``delete``, awaitable."""
        objs, model = self._objects(), self.getModel()
        if not objs or model is None:
            return 0
        return await model.deleter.adeleteMultiple(objs)

    def save(self) -> list[int]:
        """Save every object of this list (one atomic step); returns their pks, in order."""
        objs, model = self._objects(), self.getModel()
        if not objs or model is None:
            return []
        return cast("list[int]", model.saver.save(objs))

    async def asave(self) -> list[int]:
        """``save``, awaitable."""
        objs, model = self._objects(), self.getModel()
        if not objs or model is None:
            return []
        return cast("list[int]", await model.saver.asave(objs))

    def reload(self) -> list[Any]:
        """Reload every object in place from Redis (see ``Model.reload``).

        Returns one entry per slot, in order: what its ``reload()`` returned, or the
        ``KeyError`` it raised (never saved, or deleted since), so one missing object
        does not stop the others being reloaded (as in 6.x); None for a None slot.
        """
        model = self.getModel()
        if model is None:
            return []
        slots = list(cast("list[IndexedRedisModel | None]", self))
        return run_sync(model, lambda ctx: reload.reload_each_flow(ctx, slots))

    async def areload(self) -> list[Any]:
        """``reload``, awaitable."""
        model = self.getModel()
        if model is None:
            return []
        slots = list(cast("list[IndexedRedisModel | None]", self))
        return await run_async(model, lambda ctx: reload.reload_each_flow(ctx, slots))

    def refetch(self) -> IRQueryableList[T]:
        """Fresh copies of these objects from Redis, as a new list (in the same order).

        Objects that were never saved or no longer exist are left out.
        """
        model, pks = self.getModel(), self._pks()
        if not pks or model is None:
            return IRQueryableList((), model)
        found = [obj for obj in model.objects.getMultiple(pks) if obj is not None]
        return IRQueryableList(cast("list[T]", found), model)

    async def arefetch(self) -> IRQueryableList[T]:
        """``refetch``, awaitable."""
        model, pks = self.getModel(), self._pks()
        if not pks or model is None:
            return IRQueryableList((), model)
        found = [obj for obj in await model.objects.agetMultiple(pks) if obj is not None]
        return IRQueryableList(cast("list[T]", found), model)

    def _pks(self) -> list[int]:
        return [pk for pk in (obj.getPk() for obj in self._objects()) if pk is not None]

    def pprint(self, stream: IO[str] | None = None) -> None:
        """Pretty-print the objects as dicts (with their pk), as 6.x did."""
        _pprint.pprint([obj.asDict(includeMeta=True, forStorage=False, strKeys=True)
                        for obj in self._objects()], stream=stream)

    def __repr__(self) -> str:
        model = self._model.__name__ if self._model is not None else None
        return f"{type(self).__name__}({list.__repr__(self)}, model={model})"
