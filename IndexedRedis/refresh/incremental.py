"""The incremental mode of a refresh job: match the source's rows with the stored
objects by a natural key, and write only what was added, changed or removed.

Redis writes follow the number of changes, not the size of the dataset; the stored
objects are read once (in batches) to learn each one's natural key and record digest,
which the run holds in memory (one small entry per object).  Each save or delete is
atomic for its object, not for the dataset: a reader may see part of a run's changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..dispatch import run_sync
from ..flows.requests import Command
from .digest import DatasetDigest, record_digest

if TYPE_CHECKING:
    from .job import Progress, RefreshJob, _Lease

__all__ = ["run_incremental"]


def _natural_key(job: RefreshJob, record: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(record[name] for name in job.natural_key or ())


def _stored(job: RefreshJob) -> dict[tuple[Any, ...], tuple[int, int]]:
    """natural key -> (pk, record digest) of every stored object."""
    meta = job.model._meta
    stored: dict[tuple[Any, ...], tuple[int, int]] = {}
    for obj in job.model.objects.iterate(batchSize=2000):
        record = meta.storage_of(obj)
        key = _natural_key(job, record)
        if key in stored:
            raise ValueError(f"refresh job {job.name}: two stored {meta.name} objects (pks {stored[key][0]} and "
                             f"{obj._id}) have the natural key {key!r}; run it once in full mode to repair")
        stored[key] = (obj._id, record_digest(meta.codec.pack(record)))
    return stored


def run_incremental(job: RefreshJob, lease: _Lease,
                    progress: Progress | None) -> tuple[str, int, int, int | None, str]:
    model: Any = job.model
    meta = model._meta
    stored = _stored(job)
    digest = DatasetDigest()
    seen: set[tuple[Any, ...]] = set()
    added: list[Any] = []
    changed: list[tuple[int, Any]] = []
    rows = writes = 0

    def flush() -> None:
        nonlocal writes
        run_sync(model, lambda ctx: lease.renew_flow(ctx))
        if added:
            model.saver.saveMultiple(added, cascadeSave=False)
            writes += len(added)
            added.clear()
        if changed:
            current = model.objects.getMultiple([pk for pk, _ in changed])
            updates = []
            for (_, new), obj in zip(changed, current):
                if obj is None:  # deleted meanwhile: store it anew
                    updates.append(new)
                    continue
                for name in meta.field_names:
                    setattr(obj, name, getattr(new, name))
                updates.append(obj)
            model.saver.saveMultiple(updates, cascadeSave=False)
            writes += len(updates)
            changed.clear()

    for obj in job.objects():
        record = meta.storage_of(obj)
        key = _natural_key(job, record)
        if key in seen:
            raise ValueError(f"refresh job {job.name}: the source gives the natural key {key!r} twice "
                             f"(natural_key={job.natural_key!r} must identify a row)")
        seen.add(key)
        value = record_digest(meta.codec.pack(record))
        digest.add(value)
        rows += 1
        found = stored.pop(key, None)
        if found is None:
            added.append(obj)
        elif found[1] != value:
            changed.append((found[0], obj))
        if len(added) + len(changed) >= job.batch_size:
            flush()
        if progress is not None and rows % job.batch_size == 0:
            progress(rows)
    flush()
    removed = [pk for pk, _ in stored.values()]
    for start in range(0, len(removed), 1000):
        model.deleter.deleteMultipleByPks(removed[start:start + 1000])
    writes += len(removed)
    if progress is not None:
        progress(rows)
    gen = run_sync(model, lambda ctx: (yield Command(("GET", meta.keys.gen))))
    return "updated" if writes else "unchanged", rows, writes, int(gen or 0), digest.hexdigest()
