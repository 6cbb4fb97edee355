"""``IRFieldChain``: several field types applied in turn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import IRField
from .values import irNull


class IRFieldChain(IRField):
    """Several field types applied in turn:
    ``IRFieldChain(name, [IRUnicodeField(encoding='utf-16'), IRCompressedField()])``.

    The value on the object is the first (leftmost) field's value.  On store, each
    field's stored form becomes the next field's input value, left to right; on fetch
    each field's value is handed to the field on its left as its stored form, right to
    left.  So every field but the first should have a str or bytes value.  Chained
    fields are nameless (their defaultValue is ignored).

    Indexable iff every chained field is.  The index is the first field's index of the
    value (so, e.g., compressing later in the chain does not change it), hashed when
    ``hashIndex=True`` or when any chained field hashes its index.
    """

    CAN_INDEX = True

    def __init__(self, name: str, chainedFields: Sequence[Any] = (), defaultValue: Any = irNull,
                 hashIndex: bool = False) -> None:
        super().__init__(name, defaultValue=irNull)
        if not self.name:
            raise ValueError("IRFieldChain needs a name")
        if isinstance(chainedFields, (str, bytes)) or not isinstance(chainedFields, Sequence):
            raise ValueError(f"IRFieldChain({name!r}): chainedFields must be a list of fields")
        fields: list[IRField] = []
        for item in chainedFields:
            if isinstance(item, type) and issubclass(item, IRField):
                item = item()
            if not isinstance(item, IRField):
                raise ValueError(f"IRFieldChain({name!r}): chainedFields must hold IRField objects; "
                                 f"got {item!r}")
            if item.name:
                raise ValueError(f"IRFieldChain({name!r}): chained field {item!r} has a name; only "
                                 f"the IRFieldChain itself is named")
            fields.append(item)
        if not fields:
            raise ValueError(f"IRFieldChain({name!r}): chainedFields is empty")
        self.chainedFields = fields
        self.valueType = getattr(fields[0], "valueType", None)
        self.CAN_INDEX = all(f.canIndex() for f in fields)
        self.hashIndex = bool(hashIndex) or any(f.isIndexHashed() for f in fields)
        self.defaultValue = self._normalisedDefault(defaultValue)

    @property
    def expected(self) -> str:  # type: ignore[override]
        return self.chainedFields[0].expected

    def validateForModel(self, model_name: str) -> None:
        for field in self.chainedFields:
            field.validateForModel(model_name)

    def _fromInput(self, value: Any) -> Any:
        return self.chainedFields[0]._fromInput(value)

    def _toStorage(self, value: Any) -> Any:
        first, *rest = self.chainedFields
        stored = first._toStorage(value)
        for field in rest:
            stored = field._toStorage(field._fromInput(stored))
        return stored

    def _fromStorage(self, stored: Any) -> Any:
        first, *rest = self.chainedFields
        for field in reversed(rest):
            stored = field._fromStorage(stored)
        return first._fromStorage(stored)

    def _toIndex(self, value: Any) -> bytes | str:
        return self.chainedFields[0]._toIndex(value)

    def _getReprProperties(self) -> list[str]:
        return [f"chainedFields=[{', '.join(repr(f) for f in self.chainedFields)}]",
                f"hashIndex={self.hashIndex!r}"]
