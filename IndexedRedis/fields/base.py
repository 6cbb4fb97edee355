"""``IRField``, the base of every field type, and ``_EncodedField``, the base of those
with an encoding of their own."""

from __future__ import annotations

import codecs
import copy as _copy
import math
from typing import Any

from .converters import _FLOAT, _TEXT, _Converter, _converter_for
from .values import NULL_STORED, _type_name, digest, getDefaultIREncoding, irNull, note_conversion_change, wire_bytes


class IRField(str):
    """A field: ``IRField(name, valueType=str, defaultValue=irNull, hashIndex=False)``.

    It *is* its name, so ``'artist' in FIELDS`` works.  ``valueType`` picks how values
    are converted (see the table in ``IndexedRedis.fields``); an unsupported one raises
    TypeError here.  Assigning ``None`` stores ``irNull``, the value of a field never set.
    ``hashIndex=True`` indexes the md5 digest of the value instead of the value, for
    long values; filtering works the same.

    Subclasses implement the ``_fromInput`` / ``_toStorage`` / ``_fromStorage`` /
    ``_toIndex`` hooks (they never see ``irNull``), and may list their properties for
    ``repr`` in ``_getReprProperties``.
    """

    CAN_INDEX = True
    hashIndex = False
    valueType: Any = str
    defaultValue: Any = irNull
    expected = "a value"
    _conv: _Converter = _TEXT

    def __new__(cls, name: str = "", *args: Any, **kwargs: Any) -> IRField:
        return super().__new__(cls, name)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        note_conversion_change()  # results worked out from the old settings are dropped

    def __init__(self, name: str = "", valueType: Any = str, defaultValue: Any = irNull,
                 hashIndex: bool = False) -> None:
        self.name = str(name)
        if isinstance(valueType, type) and issubclass(valueType, IRField):
            raise TypeError(f"valueType={valueType.__name__} is a field type; put the field itself "
                            f"in FIELDS (or in an IRFieldChain)")
        self._conv = _converter_for(valueType)
        self.valueType = None if valueType is type(None) else valueType
        self.hashIndex = bool(hashIndex)
        self.defaultValue = defaultValue
        if not _class_sets(type(self), "CAN_INDEX"):
            self.CAN_INDEX = self._conv.can_index
        if type(self)._fromInput is IRField._fromInput:  # conversions are the valueType's
            self.defaultValue = self._normalisedDefault(defaultValue)

    # ---- the public protocol (called by the model layer) ---------------------------

    def fromInput(self, value: Any) -> Any:
        """Validate and normalise a value a user assigns; raise TypeError/ValueError
        saying what was expected."""
        if value is None or value is irNull:
            return irNull
        return self._fromInput(value)

    def toStorage(self, value: Any) -> Any:
        """The stored form of a Python value (``NULL_STORED`` for irNull)."""
        if value is irNull:
            return NULL_STORED
        return self._toStorage(value)

    def fromStorage(self, stored: Any) -> Any:
        """The Python value of a stored form."""
        if stored is NULL_STORED:
            return irNull
        return self._fromStorage(stored)

    def toIndex(self, value: Any) -> bytes:
        """The index bytes of a (non-null) Python value, hashed if ``hashIndex``."""
        raw = self._toIndex(value)
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        return digest(raw) if self.hashIndex else raw

    def indexFromStorage(self, stored: Any) -> bytes:
        """The index bytes of a (non-null) stored form."""
        return self.toIndex(self.fromStorage(stored))

    def getDefaultValue(self) -> Any:
        """A fresh default value (mutable defaults are copied)."""
        return _copy.deepcopy(self.defaultValue)

    def canIndex(self) -> bool:
        return bool(self.CAN_INDEX)

    def toScore(self, value: Any) -> float | None:
        """The sorted-set score of a (non-null) value for fields ordered by number
        (int, float, bool, datetime, fixed point); None when the value has no place in
        the order (nan)."""
        to_score = self._conv.to_score
        return None if to_score is None else to_score(value)

    def boundScore(self, value: Any) -> float | None:
        """The score of a comparison bound given by a user (validated as a value)."""
        converted = self.fromInput(value)
        return None if converted is irNull else self.toScore(converted)

    def unorderedValue(self) -> Any:
        """A value that has no place in the number order (nan for floats), or irNull."""
        return math.nan if self._conv is _FLOAT and self.isNumeric() else irNull

    def _converts_by_value_type(self) -> bool:
        return type(self)._fromInput is IRField._fromInput and type(self)._toIndex is IRField._toIndex

    def isNumeric(self) -> bool:
        """Whether values are ordered by number (and get a sorted-set index)."""
        return self._conv.to_score is not None and not self.hashIndex and self._converts_by_value_type()

    def isText(self) -> bool:
        """Whether values are text whose index bytes are the UTF-8 text itself (so a
        lexicographic index can serve prefixes and text order)."""
        return self._conv is _TEXT and not self.hashIndex and self._converts_by_value_type()

    def isIndexHashed(self) -> bool:
        return self.hashIndex

    def validateForModel(self, model_name: str) -> None:
        """Called when a model listing this field is defined; raise
        ``InvalidModelException`` to refuse the model.  Nothing to check by default."""

    def copy(self) -> IRField:
        """An independent copy of this field (for ``copyModel``)."""
        return _copy.deepcopy(self)

    # ---- hooks for field types -----------------------------------------------------

    def _fromInput(self, value: Any) -> Any:
        return self._conv.from_input(value)

    def _toStorage(self, value: Any) -> Any:
        return self._conv.to_storage(value)

    def _fromStorage(self, stored: Any) -> Any:
        return self._conv.from_storage(stored)

    def _toIndex(self, value: Any) -> bytes | str:
        if type(self)._toStorage is IRField._toStorage:
            return self._conv.to_index(value)
        return wire_bytes(self._toStorage(value))  # a subclass's own storage form

    # ---- plumbing ------------------------------------------------------------------

    def _normalisedDefault(self, value: Any) -> Any:
        """``defaultValue`` as ``fromInput`` makes it; an unfit one is refused here."""
        try:
            return self.fromInput(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{type(self).__name__}({self.name!r}): defaultValue {value!r} does not fit the "
                f"field; expected {str(exc) or self.expected}") from None

    def _getReprProperties(self) -> list[str]:
        """``name=value`` strings shown by ``repr`` (besides the name and defaultValue)."""
        return [f"valueType={_type_name(self.valueType)}", f"hashIndex={self.hashIndex!r}"]

    def _reprDefault(self) -> str | None:
        if not self.name and self.defaultValue is irNull:
            return None  # a field inside an IRFieldChain
        return f"defaultValue={self.defaultValue!r}"

    def __repr__(self) -> str:
        parts = [repr(self.name)] if self.name else []
        parts += self._getReprProperties()
        default = self._reprDefault()
        if default is not None:
            parts.append(default)
        return f"{type(self).__name__}({', '.join(parts)})"

    def __getattr__(self, attr: str) -> Any:
        # 6.x-style subclasses may skip IRField.__init__; their name is the str itself.
        if attr == "name":
            return str.__str__(self)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    def __reduce__(self) -> Any:
        return (_rebuild_field, (type(self), str.__str__(self), self.__dict__))

    def __deepcopy__(self, memo: Any) -> IRField:
        clone = type(self).__new__(type(self), str.__str__(self))
        memo[id(self)] = clone
        clone.__dict__.update(_copy.deepcopy(self.__dict__, memo))
        return clone

    # IRField instances are strings; hashing and equality stay those of the name.
    __hash__ = str.__hash__
    __eq__ = str.__eq__


def _class_sets(cls: type, attr: str) -> bool:
    """Whether a class between ``cls`` and IRField (exclusive) defines ``attr``."""
    for klass in cls.__mro__:
        if klass is IRField:
            return False
        if attr in vars(klass):
            return True
    return False


def _rebuild_field(cls: type[IRField], name: str, state: dict[str, Any]) -> IRField:
    """Unpickle a field (``IRField.__reduce__``): a str subclass needs its name in ``__new__``."""
    field = cls.__new__(cls, name)
    field.__dict__.update(state)
    return field


def _checked_encoding(encoding: str | None, owner: str) -> str | None:
    if encoding is None:
        return None
    try:
        codecs.lookup(encoding)
        return encoding
    except (LookupError, TypeError):
        raise ValueError(f"{owner}: unknown encoding {encoding!r}") from None


class _EncodedField(IRField):
    """Fields with an ``encoding`` (None: the default encoding at the time of use)."""

    encoding: str | None = None

    def getEncoding(self) -> str:
        """The encoding in use: the field's own, else the default encoding."""
        return self.encoding or getDefaultIREncoding()

    def _getReprProperties(self) -> list[str]:
        return [f"encoding={self.encoding!r}"]
