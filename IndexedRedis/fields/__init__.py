"""Field types: each owns the conversion of its values.

A field converts between three forms of a value:

* the Python value seen on model instances (``fromInput`` validates and normalises
  what a user assigns);
* the stored value kept in the object's record (``toStorage`` / ``fromStorage``);
* the index value, the bytes naming the index set an object belongs to (``toIndex``).

The public methods handle ``irNull`` and then call the ``_fromInput``, ``_toStorage``,
``_fromStorage`` and ``_toIndex`` hooks that each field type implements; these are the
names IndexedRedis 6.x used, so custom field types written for it keep working.

Stored values travel inside a msgpack map: ``str`` for text, ``bytes`` for binary
data, and ``False`` for ``irNull``.  Stored values read back arrive as ``str`` (bytes
that are not UTF-8 come decoded with ``surrogateescape``; ``wire_bytes`` restores
them exactly).

The field types:

==========================  ===============================  ==========  ============
field                       value on the object              stored as   indexable
==========================  ===============================  ==========  ============
``IRClassicField``          str (default ``''``)             text        yes
``IRField`` (str)           str                              text        yes
``IRField`` (int)           int                              text        yes
``IRField`` (float)         float (exact round trip)         text        yes
``IRField`` (bool)          bool                             text        yes
``IRField`` (bytes)         bytes                            bytes       yes
``IRField`` (datetime)      ``datetime.datetime``            ISO 8601    yes
``IRField`` (dict/list)     dict / list (JSON values)        JSON        no
``IRField`` (None)          str or bytes as given            as given    no
``IRField`` (SomeType)      ``SomeType(value)``              ``str()``   if the type
                                                                         says so
``IRRawField``              bytes                            bytes       no
``IRUnicodeField``          str                              encoded     yes (hashed)
``IRBytesField``            bytes                            bytes       yes (hashed)
``IRBase64Field``           bytes                            base64      yes (hashed)
``IRCompressedField``       bytes                            compressed  yes (hashed)
``IRFixedPointField``       float, rounded                   fixed text  yes
``IRPickleField``           any picklable object (opt-in)    pickle      no
``IRFieldChain``            the first chained field's value  the last's  if all are
==========================  ===============================  ==========  ============

The field types live in modules by kind, each built only on those before it:
``values`` (irNull, stored forms, the default encoding), ``converters`` (an IRField's
conversions by ``valueType``), ``base`` (``IRField``), then ``text``, ``binary``,
``numeric``, ``pickled``, ``chain`` and ``links`` (the foreign link fields).  Import
them from here.
"""

from __future__ import annotations

import sys
import types

from . import pickled
from .base import IRField, _EncodedField, _rebuild_field
from .binary import (
    COMPRESS_MODE_BZ2,
    COMPRESS_MODE_LZMA,
    COMPRESS_MODE_ZLIB,
    IRBase64Field,
    IRBytesField,
    IRCompressedField,
    IRRawField,
)
from .chain import IRFieldChain
from .converters import (
    IRDatetimeValue,
    IRJsonValue,
    _AnyJsonConverter,
    _BoolConverter,
    _BytesConverter,
    _Converter,
    _CustomConverter,
    _DatetimeConverter,
    _FloatConverter,
    _IntConverter,
    _JsonConverter,
    _PassConverter,
    _TextConverter,
)
from .links import IRForeignLinkField, IRForeignLinkFieldBase, IRForeignMultiLinkField
from .numeric import IRFixedPointField
from .pickled import PICKLE_ENV_VAR as PICKLE_ENV_VAR
from .pickled import PICKLE_PROTOCOL as PICKLE_PROTOCOL
from .pickled import IRPickleField, allowPickleFields, pickleFieldsAllowed
from .text import IRClassicField, IRUnicodeField
from .values import (
    NULL_STORED,
    IRNullType,
    getDefaultIREncoding,
    irNull,
    setDefaultIREncoding,
    wire_bytes,
)
from .values import digest as digest

__all__ = [
    "irNull", "IRNullType", "NULL_STORED", "wire_bytes",
    "setDefaultIREncoding", "getDefaultIREncoding",
    "allowPickleFields", "pickleFieldsAllowed",
    "IRField", "IRClassicField", "IRRawField", "IRUnicodeField", "IRBytesField",
    "IRBase64Field", "IRCompressedField", "IRFixedPointField", "IRPickleField",
    "IRFieldChain",
    "COMPRESS_MODE_ZLIB", "COMPRESS_MODE_BZ2", "COMPRESS_MODE_LZMA",
    "IRForeignLinkField", "IRForeignMultiLinkField", "IRForeignLinkFieldBase", "IRDatetimeValue",
    "IRJsonValue",
]

# Pickles name classes and functions by ``__module__`` and ``__qualname__``; a pickled
# field holds its class, its converter's class and ``_rebuild_field``.  Those defined here
# before the split into modules keep naming this package (the link fields keep
# ``IndexedRedis.foreign``), so pickles stay byte for byte what they were: older and newer
# versions read each other's.
for _pickled_by_name in (
        IRNullType, _rebuild_field, IRField, _EncodedField, IRClassicField, IRRawField,
        IRUnicodeField, IRBytesField, IRBase64Field, IRCompressedField, IRFixedPointField,
        IRPickleField, IRFieldChain, IRJsonValue, _Converter, _TextConverter, _BytesConverter,
        _IntConverter, _FloatConverter, _BoolConverter, _JsonConverter, _DatetimeConverter,
        _PassConverter, _CustomConverter, _AnyJsonConverter):
    _pickled_by_name.__module__ = __name__
del _pickled_by_name


class _FieldsModule(types.ModuleType):
    """This package, where ``_pickle_allowed`` (the pickle switch's state, kept in
    ``pickled``) can still be read and set, as it could before the split: tests save,
    set and restore it here."""

    @property
    def _pickle_allowed(self) -> bool | None:
        return pickled._pickle_allowed

    @_pickle_allowed.setter
    def _pickle_allowed(self, allowed: bool | None) -> None:
        pickled._pickle_allowed = allowed


sys.modules[__name__].__class__ = _FieldsModule
