"""Models and child-process entry points shared by the multi-process tests.

Children are started with the ``spawn`` start method, so everything they run must be
importable: the models and the worker functions live here.  Each worker is given the
fixture server's URL and points IndexedRedis at it through ``REDIS_URL``; each sends
its result (or the traceback of its failure) back through a queue.
"""

from __future__ import annotations

import os
import random
import time
import traceback
from typing import Any

from IndexedRedis import IndexedRedisModel, IRField, UniqueConstraintError

# ---- models ---------------------------------------------------------------------------


class ConcItem(IndexedRedisModel):
    """Target of the concurrent save / update / delete storm."""

    FIELDS = ["color", "size", "shape", "note"]
    INDEXED_FIELDS = ["color", "size", "shape"]
    KEY_NAME = "Conc:Item {test}"  # needs escaping: exercises the key layout too


CONC_VALUES = {
    "color": ["red", "green", "blue", ""],
    "size": ["1", "2", "3"],
    "shape": ["circle", "square", "tri angle", "h\u00e9xagon"],
}


class RaceItem(IndexedRedisModel):
    """One object whose fields are written by several processes at once."""

    FIELDS = ["f0", "f1", "f2", "f3", "shared", "untouched", "note"]
    INDEXED_FIELDS = ["f0", "f1", "f2", "f3", "shared", "untouched"]
    KEY_NAME = "RaceItem"


class ResetItem(IndexedRedisModel):
    """Datasets swapped wholesale by ``reset``."""

    FIELDS = ["batch", "n", "parity", "label"]
    INDEXED_FIELDS = ["batch", "parity"]
    KEY_NAME = "ResetItem"


class UniqueUser(IndexedRedisModel):
    """UNIQUE_FIELDS claimed by several processes at the same moment."""

    FIELDS = [IRField("email", valueType=str), IRField("badge", valueType=int), "name"]
    INDEXED_FIELDS = ["name"]
    UNIQUE_FIELDS = ["email", "badge"]
    KEY_NAME = "UniqueUser"


def make_dataset(batch: str, size: int) -> list[ResetItem]:
    return [ResetItem(batch=batch, n=i, parity=i % 2, label=f"{batch}-{i}") for i in range(size)]


# ---- helpers --------------------------------------------------------------------------


def _use_url(url: str) -> None:
    os.environ["REDIS_URL"] = url


def _report(queue: Any, body: Any, *args: Any) -> None:
    try:
        queue.put(("ok", body(*args)))
    except BaseException:  # noqa: BLE001 - the parent shows the child's traceback
        queue.put(("error", traceback.format_exc()))


# ---- concurrent save / update / delete --------------------------------------------------


def conc_worker(url: str, seed: int, pks: list[int], n_ops: int, barrier: Any, queue: Any) -> None:
    _report(queue, _conc_body, url, seed, pks, n_ops, barrier)


def _random_values(rng: random.Random, fields: list[str]) -> dict[str, str]:
    return {name: rng.choice(CONC_VALUES[name]) for name in fields}


def _conc_body(url: str, seed: int, pks: list[int], n_ops: int, barrier: Any) -> dict[str, Any]:
    _use_url(url)
    rng = random.Random(seed)
    stale: dict[int, ConcItem] = {}   # copies fetched earlier, saved / deleted much later
    done: dict[str, int] = {}
    violations: list[str] = []
    indexed = list(CONC_VALUES)
    barrier.wait(timeout=60)
    started = time.monotonic()
    for _ in range(n_ops):
        op = rng.choices(
            ["fetch", "update_fresh", "update_stale", "delete_fresh", "delete_stale",
             "overwrite_with_pk", "query"],
            weights=[12, 20, 25, 8, 6, 8, 10])[0]
        pk = rng.choice(pks)
        if op == "fetch":
            obj = ConcItem.objects.get(pk)
            if obj is not None:
                stale[pk] = obj
        elif op == "update_fresh":
            obj = ConcItem.objects.get(pk)
            if obj is None:
                op = "update_fresh_missing"
            else:
                for name, value in _random_values(rng, rng.sample(indexed, rng.randint(1, 3))).items():
                    setattr(obj, name, value)
                if rng.random() < 0.3:
                    obj.note = f"w{seed}-{rng.random()}"
                assert obj.save() == pk
                if rng.random() < 0.5:
                    stale[pk] = obj  # a copy that goes stale after this save
        elif op == "update_stale":
            if not stale:
                continue
            pk = rng.choice(sorted(stale))
            obj = stale[pk]
            for name, value in _random_values(rng, rng.sample(indexed, rng.randint(1, 3))).items():
                setattr(obj, name, value)
            assert obj.save() == pk  # may re-create an object deleted meanwhile
        elif op == "delete_fresh":
            obj = ConcItem.objects.get(pk)
            if obj is not None:
                obj.delete()
        elif op == "delete_stale":
            if not stale:
                continue
            pk = rng.choice(sorted(stale))
            stale.pop(pk).delete()  # its idea of the indexed values may be outdated
        elif op == "overwrite_with_pk":
            obj = ConcItem(_id=pk, note=f"overwrite-{seed}", **_random_values(rng, indexed))
            assert obj.save() == pk
        elif op == "query":
            name = rng.choice(indexed)
            value = rng.choice(CONC_VALUES[name])
            if rng.random() < 0.5:
                found = ConcItem.objects.filter(**{name: value}).all()
                bad = [o for o in found if getattr(o, name) != value]
            else:
                other = rng.choice([n for n in indexed if n != name])
                other_value = rng.choice(CONC_VALUES[other])
                found = ConcItem.objects.filter(**{name: value, f"{other}__ne": other_value}).all()
                bad = [o for o in found
                       if getattr(o, name) != value or getattr(o, other) == other_value]
            for o in bad:
                violations.append(f"query {name}={value!r} returned {o!r}")
            for o in found:
                if o._id not in pks:
                    violations.append(f"query returned an object outside the pool: {o!r}")
        done[op] = done.get(op, 0) + 1
    return {"done": done, "violations": violations, "seconds": time.monotonic() - started}


def conc_resetter(url: str, seed: int, pks: list[int], rounds: int, barrier: Any, queue: Any) -> None:
    _report(queue, _resetter_body, url, seed, pks, rounds, barrier)


def _resetter_body(url: str, seed: int, pks: list[int], rounds: int, barrier: Any) -> dict[str, Any]:
    """Replace the whole ConcItem dataset again and again while others write to it."""
    _use_url(url)
    rng = random.Random(seed)
    barrier.wait(timeout=60)
    sizes = []
    started = time.monotonic()
    for r in range(rounds):
        time.sleep(rng.uniform(0, 0.04))  # spread the resets over the writers' run
        chosen = sorted(rng.sample(pks, rng.randint(len(pks) // 2, len(pks))))
        objs = [ConcItem(_id=pk, note=f"reset{r}", **_random_values(rng, list(CONC_VALUES)))
                for pk in chosen]
        assert ConcItem.reset(objs) == chosen
        sizes.append(len(chosen))
    return {"done": {"reset": rounds}, "violations": [], "sizes": sizes,
            "seconds": time.monotonic() - started}


# ---- several writers, several fields of one object --------------------------------------


def race_worker(url: str, index: int, pk: int, rounds: int, barrier: Any, queue: Any) -> None:
    _report(queue, _race_body, url, index, pk, rounds, barrier)


def _race_body(url: str, index: int, pk: int, rounds: int, barrier: Any) -> dict[str, Any]:
    _use_url(url)
    own = f"f{index}"
    barrier.wait(timeout=60)
    obj = RaceItem.objects.get(pk)  # fetched once: stale for every save but the first
    assert obj is not None
    own_written: list[str] = []
    shared_written: list[str] = []
    for k in range(rounds):
        value = f"p{index}-r{k}"
        setattr(obj, own, value)
        own_written.append(value)
        if k % 3 == index % 3:
            obj.shared = f"p{index}-s{k}"
            shared_written.append(obj.shared)
        assert obj.save() == pk
    return {"index": index, "own": own_written, "shared": shared_written}


# ---- reset visibility and concurrent resets --------------------------------------------


def reset_reader(url: str, old_size: int, new_size: int, ready: Any, stop: Any,
                 counter: Any, queue: Any) -> None:
    _report(queue, _reader_body, url, old_size, new_size, ready, stop, counter)


def _classify(objs: list[ResetItem], sizes: dict[str, int]) -> str:
    batches = {o.batch for o in objs}
    if len(batches) != 1:
        return f"BAD mixed batches {sorted(batches)} ({len(objs)} objects)"
    batch = next(iter(batches))
    numbers = [int(o.n) for o in objs]
    if numbers != list(range(sizes[batch])):
        return f"BAD {batch}: {len(numbers)} objects, not the complete set"
    if any(o.label != f"{batch}-{o.n}" or o.parity != str(int(o.n) % 2) for o in objs):
        return f"BAD {batch}: wrong content"
    return batch


def _reader_body(url: str, old_size: int, new_size: int, ready: Any, stop: Any,
                 counter: Any) -> list[tuple[str, str]]:
    _use_url(url)
    sizes = {"old": old_size, "new": new_size}
    by_count = {old_size: "old", new_size: "new"}
    by_half = {old_size // 2: "old", new_size // 2: "new"}
    observations: list[tuple[str, str]] = []
    kinds = ["count", "parity_count", "all", "count", "parity_all", "len"]
    i = 0
    while not stop.is_set():
        kind = kinds[i % len(kinds)]
        i += 1
        if kind == "count":
            n = ResetItem.objects.count()
            state = by_count.get(n, f"BAD count {n}")
        elif kind == "len":
            n = len(ResetItem.objects.filter(parity__ne="9"))
            state = by_count.get(n, f"BAD count {n}")
        elif kind == "parity_count":
            n = ResetItem.objects.filter(parity="1").count()
            state = by_half.get(n, f"BAD parity count {n}")
        elif kind == "all":
            objs = ResetItem.objects.all()
            state = _classify(objs, sizes) if objs else "BAD empty"
        else:
            objs = ResetItem.objects.filter(parity="0").all()
            if not objs:
                state = "BAD empty"
            else:
                batches = {o.batch for o in objs}
                batch = next(iter(batches))
                if len(batches) != 1:
                    state = f"BAD mixed batches {sorted(batches)}"
                elif [int(o.n) for o in objs] != list(range(0, sizes[batch], 2)):
                    state = f"BAD {batch}: {len(objs)} even objects, not the complete set"
                else:
                    state = batch
        observations.append((kind, state))
        with counter.get_lock():
            counter.value += 1
        ready.set()
    return observations


def reset_writer(url: str, batch: str, size: int, barrier: Any, queue: Any) -> None:
    _report(queue, _writer_body, url, batch, size, barrier)


def _writer_body(url: str, batch: str, size: int, barrier: Any) -> dict[str, Any]:
    _use_url(url)
    objs = make_dataset(batch, size)
    barrier.wait(timeout=60)
    pks = ResetItem.reset(objs)
    return {"batch": batch, "pks": pks}


def doomed_resetter(url: str, batch: str, size: int, lease_ms: int, pause: float) -> None:
    """A reset under a lease of ``lease_ms`` that pauses ``pause`` s after each batch:
    the parent kills it part way (SIGKILL), so it never returns."""
    _use_url(url)
    from IndexedRedis.dispatch import run_sync
    from IndexedRedis.flows import reset

    reset.RESET_LEASE_MS = lease_ms
    objs = make_dataset(batch, size)
    run_sync(ResetItem, lambda ctx: reset.reset_flow(ctx, objs, progress=lambda done, total: time.sleep(pause)))


# ---- several processes claiming the same unique value ----------------------------------


def unique_worker(url: str, index: int, values: list[str], own_pk: int | None, barrier: Any,
                  queue: Any) -> None:
    _report(queue, _unique_body, url, index, values, own_pk, barrier)


def _unique_body(url: str, index: int, values: list[str], own_pk: int | None,
                 barrier: Any) -> list[tuple[str, str, Any]]:
    """For each value, at the barrier: save a new UniqueUser with that email (or, with
    ``own_pk``, change this process's own object to it).  Returns per value
    ('won', value, pk) or ('lost', value, (field, value) of the error)."""
    _use_url(url)
    outcomes: list[tuple[str, str, Any]] = []
    own = UniqueUser.objects.get(own_pk) if own_pk is not None else None
    for value in values:
        obj = own if own is not None else UniqueUser(name=f"p{index}")
        obj.email = value
        barrier.wait(timeout=60)
        try:
            pk = obj.save()
        except UniqueConstraintError as exc:
            outcomes.append(("lost", value, (exc.field, exc.value)))
            if own is not None:   # forget the refused change: reload the stored values
                own.reload()
        else:
            outcomes.append(("won", value, int(pk)))
    return outcomes


# ---- running children -----------------------------------------------------------------


def run_children(ctx: Any, target: Any, arg_tuples: list[tuple[Any, ...]], queue: Any,
                 timeout: float = 120) -> list[Any]:
    """Start one ``target(*args, queue)`` process per tuple, collect their results.

    Fails with the child's traceback when a child raised, and never leaves a child
    running: on any failure the remaining children are terminated.
    """
    procs = [ctx.Process(target=target, args=(*args, queue), daemon=True) for args in arg_tuples]
    for proc in procs:
        proc.start()
    results = []
    try:
        for _ in procs:
            status, body = queue.get(timeout=timeout)
            if status != "ok":
                raise AssertionError(f"a child process failed:\n{body}")
            results.append(body)
        for proc in procs:
            proc.join(timeout=timeout)
            assert proc.exitcode == 0, f"child exited with {proc.exitcode}"
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
    return results
