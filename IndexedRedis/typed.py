"""Typed model declarations: ``name: type = Field(...)`` beside the ``FIELDS`` style.

::

    class Song(IndexedRedisModel):
        KEY_NAME = 'Songs'
        artist: str = Field(index=True)
        track: int = Field(index=True, default=0)
        price: float | None = Field()
        tags: bytes = Field(IRCompressedField(), default=b'')

The model's metaclass calls :func:`read_declaration` when a class statement runs.  It
turns each annotated attribute into the IRField its annotation names (see
:data:`SUPPORTED`), or into the field given to ``Field``; the model then works exactly
as if those fields had been listed in ``FIELDS`` (with ``INDEXED_FIELDS`` and
``UNIQUE_FIELDS`` from ``index=`` / ``unique=``).  Besides, a typed model keeps its
annotations' promises at run time (:class:`TypedRules`): a field without ``default=``
must be given to the constructor, and a field whose annotation does not admit ``None``
refuses ``None`` (and ``irNull`` when assigned).

``IndexedRedisModel`` is marked with PEP 681's ``dataclass_transform`` (:data:`dataclass_transform`
below), so type checkers and IDEs know a typed model's attributes, their types and its
constructor's keyword arguments, with ``Field`` as its field specifier.
"""

from __future__ import annotations

import copy as _copy
import datetime as _dt
import inspect
import os
import sys
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

from .exceptions import FieldValueError, InvalidModelException
from .fields import IRClassicField, IRField, IRForeignLinkField, IRForeignMultiLinkField, IRNullType, irNull
from .names import nearest

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
elif TYPE_CHECKING:  # type checkers know typing_extensions (typeshed ships its stubs)
    from typing_extensions import dataclass_transform
else:  # Python 3.10 at run time: the marker only informs type checkers
    def dataclass_transform(**_kwargs: Any) -> Callable[[Any], Any]:
        return lambda decorated: decorated

__all__ = ["Field", "FieldSpec", "TypedRules", "Declaration", "read_declaration", "dataclass_transform",
           "SUPPORTED"]

_T = TypeVar("_T")


class _Missing:
    def __repr__(self) -> str:
        return "<no default>"


MISSING: Any = _Missing()

#: The annotations a typed field may have without naming its field, and the field each
#: means (``X | None`` / ``Optional[X]`` makes any of them nullable).
SUPPORTED: dict[type, str] = {
    str: "text (IRClassicField; IRField(str) when nullable or with another default)",
    int: "IRField(valueType=int): a number index",
    float: "IRField(valueType=float): a number index",
    bool: "IRField(valueType=bool)",
    _dt.datetime: "IRField(valueType=datetime.datetime): ISO 8601, a number index",
    bytes: "IRField(valueType=bytes): binary, indexable",
    dict: "IRField(valueType=dict): JSON, not indexable",
    list: "IRField(valueType=list): JSON, not indexable",
}
#: Besides, a model class (``Artist``) means ``IRForeignLinkField``, ``list[Artist]``
#: ``IRForeignMultiLinkField``.


class FieldSpec:
    """What ``Field(...)`` returns: a typed field's options, read by the model's metaclass."""

    __slots__ = ("field", "index", "unique", "hashIndex", "default")

    def __init__(self, field: Any = None, index: bool = False, unique: bool = False, hashIndex: bool = False,
                 default: Any = MISSING) -> None:
        self.field = field
        self.index = bool(index)
        self.unique = bool(unique)
        self.hashIndex = bool(hashIndex)
        self.default = default

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING

    def __repr__(self) -> str:
        parts = [repr(self.field)] if self.field is not None else []
        parts += [f"{name}=True" for name in ("index", "unique", "hashIndex") if getattr(self, name)]
        if self.has_default:
            parts.append(f"default={self.default!r}")
        return f"Field({', '.join(parts)})"


@overload
def Field(field: Any = None, *, index: bool = False, unique: bool = False, hashIndex: bool = False,
          default: _T) -> _T: ...


@overload
def Field(field: Any = None, *, index: bool = False, unique: bool = False, hashIndex: bool = False) -> Any: ...


def Field(field: Any = None, *, index: bool = False, unique: bool = False, hashIndex: bool = False,
          default: Any = MISSING) -> Any:
    """A typed model field: ``artist: str = Field(index=True)``.

    ``index``: the field gets an index (filters, ordering for numbers); ``unique``: no two
    objects may share a value (indexed too); ``hashIndex``: index the md5 of the value
    (long text).  ``default``: the value of an object not given one; a field without it
    must be given to the constructor.  ``field``: the IRField to use instead of the one
    the annotation names, a field class (``IRCompressedField``) or an instance
    (``IRCompressedField(compressMode='bz2')``, its name may be left out).
    """
    return FieldSpec(field, index, unique, hashIndex, default)


@dataclass(frozen=True)
class TypedRules:
    """A typed model's run-time promises: the fields its constructor needs, and those
    that refuse ``None`` (with their annotations, for messages).  The model's
    ``__init__`` calls ``check_init``; its ``__setattr__`` refuses ``None`` and ``irNull``
    for ``not_null`` fields."""

    model: str
    required: tuple[str, ...]
    not_null: frozenset[str]
    annotations: dict[str, str]

    def restricted_to(self, names: Iterable[str]) -> TypedRules:
        """The rules for a model derived from this one (``copyModel``...) with these fields."""
        have = set(names)
        return TypedRules(self.model, tuple(n for n in self.required if n in have), self.not_null & have,
                          {n: a for n, a in self.annotations.items() if n in have})

    def check_init(self, model: str, given: dict[str, Any]) -> None:
        """Raise FieldValueError unless ``given`` (constructor keywords) has every required field."""
        missing = [name for name in self.required if name not in given]
        if missing:
            listed = ", ".join(f"{name} ({self.annotations.get(name, '?')})" for name in missing)
            raise FieldValueError(
                f"{model}() missing required field{'s' if len(missing) > 1 else ''} {listed}: a typed field "
                f"without Field(default=...) must be given")
        # None is refused; irNull passes: it is how a fetched record without a value (one
        # stored before the field was added) reaches a model's own __init__.
        for name in self.not_null:
            if name in given and given[name] is None:
                raise self.null_error(model, name, None)

    def null_error(self, model: str, name: str, value: Any) -> FieldValueError:
        return FieldValueError(
            f"{model}.{name}: expected {self.annotations.get(name, 'a value')}; got {value!r} (the annotation "
            f"does not admit None: declare it '{self.annotations.get(name, 'X')} | None' to allow no value)")


@dataclass
class Declaration:
    """A typed model's fields as the FIELDS style would give them."""

    fields: list[IRField]
    indexed: list[str]
    unique: list[str]
    rules: TypedRules
    abstract: bool


#: A class's own typed fields, name -> (annotation, its text, FieldSpec), in its __dict__.
OWN = "__ir_typed__"


def read_declaration(cls: Any, name: str, base: type) -> Declaration | None:
    """The typed declaration of a model class, or None for a FIELDS-style one (or one
    that declares no fields of its own).  ``base`` is ``IndexedRedisModel``.

    Raises InvalidModelException for a mixed or wrong declaration.
    """
    namespace = cls.__dict__
    own = _own_specs(cls, name, base)
    explicit = [n for n, (_, _, _, implicit) in own.items() if not implicit]
    if "FIELDS" in namespace:
        if explicit:
            raise InvalidModelException(
                f"Model {name} declares fields both in FIELDS and as typed attributes ({', '.join(explicit)}); "
                f"use one style: typed attributes (name: type = Field(...)) or FIELDS")
        return None  # annotations beside FIELDS only inform type checkers
    if not own and not any(OWN in vars(klass) for klass in cls.__mro__[1:]):
        return None  # not typed, and not derived from a typed class
    fields_style = [k for k in cls.__mro__[1:] if k is not base and "FIELDS" in vars(k)
                    and getattr(k, "_typed_rules", None) is None]
    if fields_style:
        if not explicit:
            return None  # annotations in a subclass of a FIELDS-style model: ignored, as before
        raise InvalidModelException(
            f"Model {name}: typed fields ({', '.join(own)}) cannot extend the FIELDS-style model "
            f"{fields_style[0].__name__}; declare all fields in one style")
    if not explicit and getattr(cls, "_typed_rules", None) is None and getattr(cls, "KEY_NAME", None) is None:
        return None  # plain annotations on an abstract base that is not typed: ignored, as before
    for attribute in ("INDEXED_FIELDS", "UNIQUE_FIELDS"):
        if attribute in namespace:
            raise InvalidModelException(
                f"Model {name}: {attribute} with typed fields; say Field(index=True) / Field(unique=True) on "
                f"the field instead")
    type.__setattr__(cls, OWN, {n: v[:3] for n, v in own.items()})
    for field_name in own:
        if field_name in namespace:
            type.__delattr__(cls, field_name)  # the value is the field's; instances hold their own
    merged: dict[str, tuple[Any, str, FieldSpec]] = {}
    declared_on: dict[str, dict[str, tuple[Any, str, FieldSpec]]] = {}
    for klass in reversed(cls.__mro__):
        specs = vars(klass).get(OWN, {})
        merged.update(specs)
        declared_on.update((field_name, specs) for field_name in specs)
    globalns, localns = _scopes(cls)
    fields: list[IRField] = []
    indexed: list[str] = []
    unique: list[str] = []
    required: list[str] = []
    not_null: set[str] = set()
    texts: dict[str, str] = {}
    for field_name, (annotation, text, spec) in merged.items():
        field, nullable, resolved = _field_for(name, field_name, annotation, text, spec, globalns, localns, base)
        if resolved is not None:  # kept for the classes derived later (from elsewhere)
            declared_on[field_name][field_name] = (resolved, text, spec)
        fields.append(field)
        texts[field_name] = text
        if spec.index or spec.unique:
            indexed.append(field_name)
        if spec.unique:
            unique.append(field_name)
        if not spec.has_default:
            required.append(field_name)
        if not nullable:
            not_null.add(field_name)
    rules = TypedRules(name, tuple(required), frozenset(not_null), texts)
    return Declaration(fields, indexed, unique, rules, abstract=getattr(cls, "KEY_NAME", None) is None)


def _scopes(cls: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The names a class's annotations may use: those of the code running its class
    statement (a module, or a function defining a model locally, or ``exec``), else of its
    module, then the class's own."""
    globalns: dict[str, Any] = {}
    localns: dict[str, Any] = {}
    frame: types.FrameType | None = sys._getframe(1)
    for _ in range(_FRAMES_SEARCHED):
        if frame is None:
            break
        if frame.f_globals.get("__name__") == cls.__module__ and not frame.f_code.co_filename.startswith(_HERE):
            globalns = frame.f_globals
            if frame.f_locals is not frame.f_globals:
                localns.update(frame.f_locals)
            break
        frame = frame.f_back
    if not globalns:
        module = sys.modules.get(cls.__module__)
        globalns = dict(vars(module)) if module is not None else {}
    localns.update((k, v) for k, v in vars(cls).items() if not isinstance(v, FieldSpec))
    return globalns, localns


_FRAMES_SEARCHED = 12
_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _own_specs(cls: Any, name: str, base: type) -> dict[str, tuple[Any, str, FieldSpec, bool]]:
    """name -> (annotation, its text, spec, implicit) of the fields the class body declares;
    ``implicit``: no ``Field(...)``, a bare annotation or a plain default value."""
    namespace = cls.__dict__
    annotations = inspect.get_annotations(cls)
    settings = {n for klass in base.__mro__ for n in vars(klass)}
    found: dict[str, tuple[Any, str, FieldSpec, bool]] = {}
    for attr, value in namespace.items():
        if isinstance(value, FieldSpec) and attr not in annotations:
            raise InvalidModelException(
                f"Model {name}: {attr} = {value!r} needs an annotation naming its type "
                f"({attr}: str = Field(...))")
    for attr, annotation in annotations.items():
        text = annotation if isinstance(annotation, str) else _annotation_text(annotation)
        if _is_classvar(annotation, text):
            continue
        value = namespace.get(attr, MISSING)
        if attr in settings and not isinstance(value, FieldSpec):
            continue  # a model setting (KEY_NAME: str = ...), not a field
        if isinstance(value, FieldSpec):
            found[attr] = (annotation, text, value, False)
        elif isinstance(value, IRField):
            found[attr] = (annotation, text, FieldSpec(value), False)
        elif value is MISSING:
            found[attr] = (annotation, text, FieldSpec(), True)
        elif callable(value) or isinstance(value, (property, classmethod, staticmethod)):
            continue  # a method or property that happens to be annotated
        else:
            found[attr] = (annotation, text, FieldSpec(default=value), True)
    return found


def _is_classvar(annotation: Any, text: str) -> bool:
    if isinstance(annotation, str):
        head = text.strip().split("[", 1)[0].strip()
        return head in ("ClassVar", "typing.ClassVar", "t.ClassVar")
    return annotation is ClassVar or typing.get_origin(annotation) is ClassVar


def _annotation_text(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__ if annotation.__module__ == "builtins" else \
            f"{annotation.__module__}.{annotation.__qualname__}"
    return repr(annotation).replace("typing.", "")


def _resolve(model: str, field_name: str, annotation: Any, text: str, globalns: dict[str, Any],
             localns: dict[str, Any]) -> Any:
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, globalns, localns)  # noqa: S307 - an annotation of the model's own module
    except Exception as exc:
        raise InvalidModelException(
            f"Model {model}: field {field_name!r}: cannot evaluate its annotation {text!r} "
            f"({type(exc).__name__}: {exc}); annotations are evaluated in the model's module when the class "
            f"statement runs, so define the names they use there") from None


def _unwrap(annotation: Any) -> tuple[list[Any], bool]:
    """The annotation's types without None / IRNullType, and whether it had one of them."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        members: list[Any] = []
        nullable = False
        for arg in typing.get_args(annotation):
            inner, inner_nullable = _unwrap(arg)
            members += inner
            nullable = nullable or inner_nullable
        return members, nullable
    if annotation is None or annotation is type(None) or annotation is IRNullType:
        return [], True
    return [annotation], False


def _field_for(model: str, field_name: str, annotation: Any, text: str, spec: FieldSpec,
               globalns: dict[str, Any], localns: dict[str, Any], base: type) -> tuple[IRField, bool, Any]:
    """The IRField of one typed field, whether it admits None, and the evaluated
    annotation (None if it could not be evaluated: the field was given)."""
    where = f"Model {model}: field {field_name!r}"
    try:
        resolved = _resolve(model, field_name, annotation, text, globalns, localns)
    except InvalidModelException:
        if spec.field is None:
            raise
        # The field is given: only whether None is admitted is read from the text.
        resolved = None
        members: list[Any] = []
        nullable = any(word in text for word in ("None", "Optional", "IRNullType"))
    else:
        members, nullable = _unwrap(resolved)
    if spec.has_default and (spec.default is None or spec.default is irNull) and not nullable:
        raise InvalidModelException(f"{where}: default {spec.default!r}, but its annotation {text!r} does not "
                                    f"admit None; declare it '{text} | None'")
    if spec.field is not None:
        if spec.hashIndex:
            raise InvalidModelException(f"{where}: give hashIndex to the field itself ({spec.field!r}), "
                                        f"not to Field()")
        return _given_field(where, field_name, spec), nullable, resolved
    if len(members) != 1:
        raise InvalidModelException(
            f"{where}: its annotation {text!r} names {'no' if not members else 'more than one'} value type; "
            f"annotate one of {', '.join(_type_names())} (or 'X | None'), or give the field: "
            f"Field(IRField(...))")
    value_type = members[0]
    origin = typing.get_origin(value_type)
    link = _link_field(where, field_name, value_type, origin, spec, base)
    if link is not None:
        return link, nullable, resolved
    if origin in (dict, list):
        value_type = origin
    if value_type not in SUPPORTED:
        shown = getattr(value_type, "__name__", repr(value_type))
        raise InvalidModelException(
            f"{where}: annotation {text!r}: {shown} maps to no field type; annotate one of "
            f"{', '.join(_type_names())} (or 'X | None'), or give the field: Field(IRField(...)), for example "
            f"Field(IRFixedPointField(decimalPlaces=2)).{nearest(shown, _type_names())}")
    default = spec.default if spec.has_default else irNull
    if value_type is str and not nullable and (default is irNull or (type(default) is str and default == "")):
        return IRClassicField(field_name, hashIndex=spec.hashIndex), nullable, resolved
    try:
        field = IRField(field_name, valueType=value_type, defaultValue=default, hashIndex=spec.hashIndex)
        return field, nullable, resolved
    except (TypeError, ValueError) as exc:
        raise InvalidModelException(f"{where}: {exc}") from None


def _link_field(where: str, field_name: str, value_type: Any, origin: Any, spec: FieldSpec,
                base: type) -> IRField | None:
    """A link field for an annotation naming a model (``Artist``) or a list of one
    (``list[Artist]``); None for other annotations."""
    args = typing.get_args(value_type)
    if isinstance(value_type, type) and issubclass(value_type, base):
        kind: type[IRField] = IRForeignLinkField
        target = value_type
    elif origin is list and len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], base):
        kind, target = IRForeignMultiLinkField, args[0]
    else:
        return None
    if spec.has_default and spec.default not in (None, irNull, []):
        raise InvalidModelException(f"{where}: a link's default can only be no link (None)")
    if spec.hashIndex:
        raise InvalidModelException(f"{where}: a link field has no hashIndex")
    return kind(field_name, target)


def _type_names() -> list[str]:
    return [("datetime.datetime" if t is _dt.datetime else t.__name__) for t in SUPPORTED]


def _given_field(where: str, field_name: str, spec: FieldSpec) -> IRField:
    """The field given to ``Field(...)`` (a class or an instance), named ``field_name``."""
    given = spec.field
    if isinstance(given, type) and issubclass(given, IRField):
        try:
            field = given(field_name)
        except TypeError as exc:
            raise InvalidModelException(
                f"{where}: {given.__name__}({field_name!r}) cannot be made ({exc}); give an instance: "
                f"Field({given.__name__}(...))") from None
    elif isinstance(given, IRField):
        if given.name not in ("", field_name):
            raise InvalidModelException(f"{where}: the field given, {given!r}, is named {given.name!r}; "
                                        f"leave its name out, or name it {field_name!r}")
        field = type(given).__new__(type(given), field_name)
        field.__dict__.update(_copy.deepcopy(given.__dict__))
        field.name = field_name
    else:
        raise InvalidModelException(f"{where}: Field({given!r}): expected an IRField class or instance")
    if spec.has_default:
        try:
            field.defaultValue = field._normalisedDefault(spec.default)
        except ValueError as exc:
            raise InvalidModelException(f"{where}: {exc}") from None
        if field.getDefaultValue() != field.defaultValue:
            raise InvalidModelException(f"{where}: {type(field).__name__} cannot take default {spec.default!r}")
    # Without default=, the field is required by the constructor (as type checkers see it);
    # its own defaultValue still stands for records stored without it.
    return field
