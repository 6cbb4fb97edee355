"""The stored record codec.

A record is stored as a msgpack array: the values in FIELDS order, then a schema tag.
The model's schemas hash maps each tag to its field list, so records written by an
earlier (or later) version of the model stay readable.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import msgpack

from .exceptions import CorruptRecordError

__all__ = ["RecordCodec", "UnknownSchemas", "schema_tag"]

_packer = msgpack.Packer(use_bin_type=False)  # Redis's Lua cmsgpack knows no bin type


def schema_tag(names: Iterable[str]) -> int:
    """The tag that stored records carry for a list of field names (CRC-32 of the
    names): records are positional, and the tag says whose positions they follow."""
    return zlib.crc32("\0".join(names).encode("utf-8"))


class UnknownSchemas(Exception):
    """Records carry schema tags this process has not learned yet (records written by
    another version of the model); fetch them from the model's schemas hash."""

    def __init__(self, tags: set[int]) -> None:
        super().__init__(tags)
        self.tags = tags


def _unpack_all(blobs: bytes | Iterable[bytes]) -> list[Any]:
    """Many msgpack values at once, given concatenated or as a list: one streaming unpack
    (much cheaper per value than separate calls)."""
    if type(blobs) in (tuple, list) and len(blobs) == 1:  # type: ignore[arg-type]  # one record: no streaming
        return [msgpack.unpackb(blobs[0], raw=False, unicode_errors="surrogateescape",  # type: ignore[index]
                                use_list=False)]
    unpacker = msgpack.Unpacker(raw=False, unicode_errors="surrogateescape", max_buffer_size=0,
                                use_list=False)
    unpacker.feed(blobs if isinstance(blobs, bytes) else b"".join(blobs))
    return list(unpacker)


class RecordCodec:
    """One model's records: packing them, unpacking them, and the field lists of the
    schema tags learned so far (``schemas``: tag -> field names, the model's own first)."""

    def __init__(self, model_name: str, field_names: tuple[str, ...], schemas_key: bytes) -> None:
        self.model_name = model_name
        self.field_names = field_names
        self.schemas_key = schemas_key  # the model's schemas hash, for error messages
        self.schema_tag = schema_tag(field_names)
        self.schema_blob: bytes = _packer.pack(list(field_names))
        self.schemas: dict[int, tuple[str, ...]] = {self.schema_tag: field_names}

    def pack(self, record: Mapping[str, Any]) -> bytes:
        """A record (field name -> stored value, every field present) as stored."""
        values = [record[name] for name in self.field_names]
        values.append(self.schema_tag)
        return _packer.pack(values)

    def arrays(self, blobs: bytes | Iterable[bytes], count: int | None = None) -> list[tuple[Any, ...]]:
        """Unpacked records (``count`` of them, if given); raises UnknownSchemas when
        some were written with a field list this process has not seen (``learn_schemas``
        it from the schemas hash, then call again), CorruptRecordError for data that is
        not a record of ours."""
        try:
            arrays = _unpack_all(blobs)
            if count is not None and len(arrays) != count:
                raise ValueError(f"{len(arrays)} records where {count} were stored")
            unknown = {values[-1] for values in arrays} - self.schemas.keys() if arrays else None
        except (ValueError, TypeError, IndexError, KeyError, msgpack.UnpackException) as exc:  # not our data
            raise CorruptRecordError(
                f"Model {self.model_name}: a stored record is not IndexedRedis data (msgpack said: "
                f"{type(exc).__name__}: {exc}); something else wrote it, or it was damaged") from None
        if unknown:
            if not all(type(tag) is int for tag in unknown):
                raise CorruptRecordError(f"Model {self.model_name}: a stored record is not IndexedRedis data "
                                         f"(it does not end with a schema tag)")
            raise UnknownSchemas(unknown)
        return arrays

    def dicts(self, arrays: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        """Unpacked records (see ``arrays``) as dicts of field name -> stored value."""
        tag, names, schemas = self.schema_tag, self.field_names, self.schemas
        return [dict(zip(names if values[-1] == tag else schemas[values[-1]], values))
                for values in arrays]

    def records(self, blobs: bytes | Iterable[bytes]) -> list[dict[str, Any]]:
        """Stored records (a list of them, or their concatenation) as dicts of field
        name -> stored value.  Raises UnknownSchemas (see ``arrays``)."""
        return self.dicts(self.arrays(blobs))

    def stored_tag(self, blob: bytes) -> Any:
        """The schema tag a stored record carries."""
        return msgpack.unpackb(blob, raw=False, unicode_errors="surrogateescape")[-1]

    def learn_schemas(self, tags: Iterable[int], blobs: Iterable[bytes | None]) -> None:
        """Remember the field lists of ``tags``, as read from the schemas hash."""
        for tag, blob in zip(tags, blobs, strict=True):
            if blob is None:
                raise CorruptRecordError(
                    f"Model {self.model_name}: stored records carry schema tag {tag}, which the model's schemas "
                    f"hash ({self.schemas_key!r}) does not hold: they are not IndexedRedis data, or the schemas "
                    f"hash was deleted")
            self.schemas[tag] = tuple(msgpack.unpackb(blob, raw=False))
