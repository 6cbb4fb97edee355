"""JSON-safe values: what ``obj.asDict(forJSON=True)`` gives.

Every field value becomes what ``json.dumps`` writes, and ``json.loads`` reads back:

=====================================  =========================================
value                                  in the JSON-safe dict
=====================================  =========================================
``irNull``, ``None``                   ``None`` (``null``)
``str``, ``int``, ``bool``             itself
finite ``float``                       itself; nan and +-inf become ``None``
                                       (JSON has no such numbers)
``datetime`` / ``date`` / ``time``     ISO 8601 text (``value.isoformat()``)
``bytes`` (and bytearray, memoryview)  standard base64 text (``base64.b64encode``,
                                       as ASCII ``str``)
``Decimal``                            its exact text (``str(value)``);
                                       ``IRFixedPointField`` values are floats
                                       and stay numbers
``dict``                               a dict of ``str(key)`` to converted values
``list`` / ``tuple`` / ``set``         a list of converted values
a link field                           the linked pk (``None`` for no link), a
                                       list of pks for a multi-link, as
                                       ``asDict()`` gives them
any other object                       ``str(value)``
=====================================  =========================================

The rules go by the value's type, whatever the field: a pickle field holding a list of
bytes gives a list of base64 texts.
"""

from __future__ import annotations

import base64
import datetime as _dt
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .fields import IRNullType
from .fields.links import ForeignLink, ForeignLinks

__all__ = ["json_value"]


def json_value(value: Any) -> Any:
    """The JSON-safe form of one value (see the module docstring)."""
    if value is None or isinstance(value, IRNullType):
        return None
    kind = type(value)
    if kind is str or kind is int or kind is bool:
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return str.__str__(value)  # a str subclass (an enum member...) as plain text
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, ForeignLink):
        return value.current_pk()
    if isinstance(value, ForeignLinks):
        return value.pks()
    if isinstance(value, Mapping):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_value(item) for item in value]
    return str(value)
