"""``IRPickleField`` and the switch that must allow it: unpickling runs code named by
the stored data."""

from __future__ import annotations

import os
import pickle
from typing import Any

from ..exceptions import InvalidModelException
from .base import IRField
from .values import irNull, wire_bytes

_pickle_allowed: bool | None = None  # None: the environment variable decides
PICKLE_ENV_VAR = "INDEXEDREDIS_ALLOW_PICKLE"
PICKLE_PROTOCOL = 4


def allowPickleFields(allow: bool = True) -> None:
    """Allow (or forbid again) models with ``IRPickleField`` fields.

    Unpickling runs code named by the data, so anyone who can write to the Redis
    server could run code in every process that reads such a field.  Only allow
    pickle fields when everyone who can write to the server is trusted.  Setting the
    environment variable ``INDEXEDREDIS_ALLOW_PICKLE=1`` allows them too, unless this
    function was called with ``False``.
    """
    global _pickle_allowed
    _pickle_allowed = bool(allow)


def pickleFieldsAllowed() -> bool:
    """Whether models may use ``IRPickleField`` (see ``allowPickleFields``)."""
    if _pickle_allowed is not None:
        return _pickle_allowed
    return os.environ.get(PICKLE_ENV_VAR, "").strip().lower() in ("1", "true", "yes", "on")


class IRPickleField(IRField):
    """Any picklable object, stored pickled.  Not indexable.

    Opt-in: unpickling runs code named by the stored data, so anyone able to write to
    the Redis server could run code in every process that reads the field.  A model
    with a pickle field is refused unless ``IndexedRedis.fields.allowPickleFields()``
    was called or ``INDEXEDREDIS_ALLOW_PICKLE=1`` is set.  ``None`` means irNull, so
    None itself cannot be stored.
    """

    CAN_INDEX = False
    expected = "a picklable object"

    def __init__(self, name: str = "", defaultValue: Any = irNull) -> None:
        super().__init__(name, defaultValue=irNull)
        self.valueType = None
        self.defaultValue = self._normalisedDefault(defaultValue)

    def validateForModel(self, model_name: str) -> None:
        if not pickleFieldsAllowed():
            raise InvalidModelException(
                f"Model {model_name}: field {self.name!r} is an IRPickleField, and pickle fields "
                f"are disabled: unpickling data read from Redis runs arbitrary code, so anyone "
                f"who can write to the Redis server could run code in every process reading "
                f"this model.  If only trusted clients can write to it, opt in by calling "
                f"IndexedRedis.fields.allowPickleFields(True) before defining the model, or by "
                f"setting the environment variable {PICKLE_ENV_VAR}=1.  Otherwise use a JSON "
                f"field (IRField(..., valueType=dict) or list).")

    def _fromInput(self, value: Any) -> Any:
        try:
            pickle.dumps(value, protocol=PICKLE_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - PicklingError, TypeError, AttributeError...
            raise TypeError(f"a picklable object ({type(exc).__name__}: {exc})") from None
        return value

    def _toStorage(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=PICKLE_PROTOCOL)

    def _fromStorage(self, stored: Any) -> Any:
        return pickle.loads(wire_bytes(stored))

    def _getReprProperties(self) -> list[str]:
        return []
