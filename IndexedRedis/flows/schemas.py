"""Reading stored records, learning on the way the field lists of records written by
other versions of a model (one HMGET of the model's schemas hash)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..records import UnknownSchemas
from .requests import Command, Flow

if TYPE_CHECKING:
    from ..model import IndexedRedisModel
    from ..options import ModelOptions

__all__ = ["learn_schemas_flow", "records_flow", "instances_flow", "partial_instances_flow"]


def learn_schemas_flow(meta: ModelOptions, tags: Iterable[int]) -> Flow[None]:
    """Learn the field lists of records written by other versions of the model."""
    wanted = sorted(tags)
    found = yield Command(("HMGET", meta.keys.schemas, *wanted))
    meta.codec.learn_schemas(wanted, found)


def records_flow(meta: ModelOptions, blobs: bytes | Sequence[bytes]) -> Flow[list[dict[str, Any]]]:
    """Stored records as dicts of field name -> stored value."""
    try:
        return meta.codec.records(blobs)
    except UnknownSchemas as unknown:
        yield from learn_schemas_flow(meta, unknown.tags)
        return meta.codec.records(blobs)


def instances_flow(meta: ModelOptions, pks: Sequence[int],
                   blobs: bytes | Sequence[bytes]) -> Flow[list[IndexedRedisModel]]:
    """Instances of stored records (see ``InstanceBuilder.instances``)."""
    try:
        return meta.builder.instances(pks, blobs)
    except UnknownSchemas as unknown:
        yield from learn_schemas_flow(meta, unknown.tags)
        return meta.builder.instances(pks, blobs)


def partial_instances_flow(meta: ModelOptions, pks: Sequence[int], blobs: bytes | Sequence[bytes],
                           fields: Sequence[str]) -> Flow[list[IndexedRedisModel]]:
    """Instances with only ``fields`` loaded (see ``InstanceBuilder.partial_instance``)."""
    records = yield from records_flow(meta, blobs)
    partial = meta.builder.partial_instance
    return [partial(pk, record, fields) for pk, record in zip(pks, records, strict=True)]
