"""6.x's module of special value types, kept so that imports written for it work."""

from .converters import IRDatetimeValue, IRJsonValue

__all__ = ["IRDatetimeValue", "IRJsonValue"]
