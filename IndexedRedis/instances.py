"""Building a model's instances from its stored records (the fetch hot path)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .fields import NULL_STORED, IRClassicField, IRField, IRNullType, irNull
from .gcpause import paused_gc
from .records import RecordCodec

if TYPE_CHECKING:
    from .model import IndexedRedisModel

__all__ = ["InstanceBuilder", "immutable"]

_PAUSE_GC_FROM = 1000  # records: a result this big is built with the collector paused (gcpause.py)
_MISSING = object()
_new = object.__new__
_FALSE_BYTE = b"\xc2"  # msgpack false, how NULL_STORED is packed


def immutable(value: Any) -> bool:
    """Whether a value is of a type that cannot change in place (text, numbers...)."""
    return value is None or isinstance(value, _IMMUTABLE)


_IMMUTABLE = (str, bytes, int, float, bool, IRNullType, frozenset, _dt.datetime, Decimal)


class InstanceBuilder:
    """Makes one model's instances from stored records (through the model's codec).

    ``state.py`` is the one writer of an instance's ``_id`` and ``_orig``, except here:
    on the fetch hot path a new instance's state, its ``_id`` and ``_orig`` included, is
    written straight into its ``__dict__``.
    """

    def __init__(self, model: type[IndexedRedisModel], fields: Sequence[IRField], codec: RecordCodec,
                 custom_init: bool) -> None:
        self.model = model
        self.fields = tuple(fields)
        self.codec = codec
        self.field_names: tuple[str, ...] = tuple(f.name for f in self.fields)
        #: A model with its own __init__ gets it called for fetched objects too, as in 6.x.
        self.custom_init = custom_init
        # Fields whose stored form is the Python value itself skip fromStorage on fetch;
        # immutable defaults are shared instead of copied per object.
        self.decoders = tuple(
            (f.name, None if type(f) is IRClassicField else f.fromStorage,
             f.getDefaultValue() if immutable(f.defaultValue) else f.getDefaultValue)
            for f in self.fields)
        self._field_set = set(self.field_names)
        # Every field is plain text stored as itself and no __init__ needs calling: a
        # record of the model's own schema is the instance's state as it is.
        self._raw = all(type(f) is IRClassicField for f in self.fields) and not custom_init

    def instances(self, pks: Sequence[int], blobs: bytes | Sequence[bytes]) -> list[IndexedRedisModel]:
        """Instances from stored records and their pks: the fetch hot path, doing for
        each record in one step what ``codec.records`` and ``instance_from_record`` do.
        Raises UnknownSchemas (see ``RecordCodec.arrays``)."""
        if len(pks) < _PAUSE_GC_FROM:
            return self._instances(pks, blobs)
        with paused_gc():
            return self._instances(pks, blobs)

    def _instances(self, pks: Sequence[int], blobs: bytes | Sequence[bytes]) -> list[IndexedRedisModel]:
        codec = self.codec
        arrays = codec.arrays(blobs, len(pks))
        if not self._raw:
            return [self.instance_from_record(pk, record)
                    for pk, record in zip(pks, codec.dicts(arrays), strict=True)]
        tag, names, schemas = codec.schema_tag, self.field_names, codec.schemas
        model, new, build = self.model, _new, self.instance_from_record
        # A plain field assigned irNull is stored as msgpack false (byte 0xc2).  Records
        # are only searched for it when that byte occurs at all (memchr-fast; text with
        # characters U+0080..U+00BF, or a schema tag with that byte, has it too).
        maybe_null = _FALSE_BYTE in blobs if isinstance(blobs, bytes) else any(_FALSE_BYTE in b for b in blobs)
        out = []
        for pk, values in zip(pks, arrays, strict=True):
            if values[-1] == tag and not (maybe_null and NULL_STORED in values):
                # Every field is plain text stored as itself (none is irNull), and the
                # record has exactly the model's fields: its values are the state, and
                # the record stays in its raw form (see ``_StoredRecord`` in model.py).
                # (A schema tag of 0 equals NULL_STORED too: such records take the
                # general way below, which is as right, only slower.)
                obj = new(model)
                state = obj.__dict__
                state.update(zip(names, values))
                state["_id"] = pk
                state["_orig"] = values
                out.append(obj)
            else:
                out.append(build(pk, dict(zip(schemas[values[-1]], values))))
        return out

    def instance_from_record(self, pk: bytes | str | int, record: dict[str, Any]) -> IndexedRedisModel:
        """Build an instance from a stored record (field name -> stored value)."""
        model = self.model
        if self._raw and record.keys() == self._field_set and NULL_STORED not in record.values():
            # Every field is plain text stored as itself, and the record has exactly the
            # model's fields (as records of this schema do): it becomes the state whole.
            obj = _new(model)
            state = obj.__dict__
            state.update(record)
        else:
            values = self._decode(record)
            if self.custom_init:
                obj = model(**values)
                state = obj.__dict__
            else:
                obj = _new(model)
                state = obj.__dict__
                state.update(values)
        state["_id"] = int(pk)
        state["_orig"] = record
        return obj

    def _decode(self, record: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, decode, default in self.decoders:
            stored = record.get(name, _MISSING)
            if stored is _MISSING:
                values[name] = default() if callable(default) else default
            elif decode is None:
                values[name] = irNull if stored is NULL_STORED else stored
            else:
                values[name] = decode(stored)
        return values

    def partial_instance(self, pk: Any, record: dict[str, Any], fields: Iterable[str]) -> IndexedRedisModel:
        """An instance with only ``fields`` loaded from the record.

        The other fields hold their defaults, and the object believes those defaults
        are stored, so ``save()`` writes them only if they are changed.
        """
        wanted = set(fields)
        partial = {name: stored for name, stored in record.items() if name in wanted}
        obj = self.instance_from_record(pk, partial)
        orig = obj.__dict__["_orig"] = dict(partial)
        for field in self.fields:
            if field.name not in wanted:
                orig[field.name] = field.toStorage(obj.__dict__[field.name])
        return obj
