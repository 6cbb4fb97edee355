"""Number fields with a fixed form: ``IRFixedPointField``."""

from __future__ import annotations

import math
from typing import Any

from .base import IRField
from .values import _as_float, irNull


class IRFixedPointField(IRField):
    """A float rounded to ``decimalPlaces`` (default 5) and stored as fixed-point text
    (``'3.14000'``), so equal values always store and index alike.  Indexable.

    Values must be finite; ``-0.0`` becomes ``0.0``.  The rounded float round-trips
    exactly.
    """

    CAN_INDEX = True
    expected = "a finite number (float, int, Decimal, or a number's text)"

    def __init__(self, name: str = "", decimalPlaces: int = 5, defaultValue: Any = irNull) -> None:
        super().__init__(name, defaultValue=irNull)
        if isinstance(decimalPlaces, bool) or not isinstance(decimalPlaces, int) or decimalPlaces < 0:
            raise ValueError(f"IRFixedPointField({name!r}): decimalPlaces must be an int >= 0; "
                             f"got {decimalPlaces!r}")
        self.decimalPlaces = decimalPlaces
        self.valueType = float
        self.defaultValue = self._normalisedDefault(defaultValue)

    def _fromInput(self, value: Any) -> float:
        number = _as_float(value, self.expected)
        if not math.isfinite(number):
            raise ValueError(f"{self.expected} ({number!r} is not finite)")
        return round(number, self.decimalPlaces) + 0.0

    def _toStorage(self, value: float) -> str:
        return f"{value:.{self.decimalPlaces}f}"

    def _fromStorage(self, stored: Any) -> float:
        # Rounded again in case decimalPlaces changed since the value was stored.
        return round(float(stored), self.decimalPlaces) + 0.0

    def _getReprProperties(self) -> list[str]:
        return [f"decimalPlaces={self.decimalPlaces!r}"]

    def toScore(self, value: float) -> float:
        return value

    def boundScore(self, value: Any) -> float | None:
        # A comparison bound keeps all its digits: cost__gte=1.224 must not match 1.22.
        number = _as_float(value, self.expected)
        return None if math.isnan(number) else number

    def isNumeric(self) -> bool:
        return True

    def isText(self) -> bool:
        return False
