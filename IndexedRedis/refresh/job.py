"""Refresh jobs: fetch or compute a model's dataset from a source (SQL, usually) and
swap it into Redis, safely, on an interval.

A run (``RefreshJob.run``, or ``await RefreshJob.arun()``: the same plan, see
``refresh.steps``):

1. takes the model's lease in Redis (one runner per model across processes and hosts;
   another runner skips, or waits, and logs who holds it); with a ``fingerprint``,
   asks the source for it and ends there if it is the last run's;
2. full mode: streams the source's rows into a new generation with
   ``reset_stream_flow`` (one batch held at a time) while digesting them, and switches
   it in only if the digest differs from the live dataset's (otherwise the new
   generation is dropped and nothing visible changes); the switch script checks that
   the lease is still this runner's (a runner that stalled past it can never switch
   an older dataset in over the one who took over);
   incremental mode (``natural_key=``): compares the rows with the stored objects by
   natural key and saves or deletes only what was added, changed or removed;
3. records its metrics beside the model (``refresh_status``), releases the lease.

A failure (the query fails, a connection drops) leaves the live dataset as it was; the
run is logged, recorded, and retried with exponential backoff.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..flows.refresh import lease_flow, record_run_flow, stored_digest_flow, stored_fingerprint_flow
from ..flows.requests import Flow
from ..flows.reset_stream import SwitchRefused, reset_stream_flow
from .digest import DatasetDigest
from .sources import Mapping_, Source, make_fingerprint, make_source
from .steps import Blocking, Plan, Redis, Sleep, Step, Stream, adrive, drive

__all__ = ["RefreshJob", "RefreshResult", "RefreshError", "LeaseLostError"]

log = logging.getLogger("IndexedRedis.refresh")

Progress = Callable[[int], None]


class RefreshError(Exception):
    """A refresh job failed on every attempt; the live dataset is as it was."""


class LeaseLostError(RefreshError):
    """The runner lost its lease part way (it stalled longer than the lease lasts, and
    another runner took it): nothing of this run was switched in.  ``run`` does not
    retry it (the other runner's run stands): it logs it and returns status 'lost'."""

    def __init__(self, message: str, holder: str = "") -> None:
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class RefreshResult:
    """How a run ended.  ``status``: 'swapped' (a new dataset is live), 'unchanged'
    (the source gave the live dataset again: nothing switched), 'updated' (incremental:
    ``changed`` objects written), 'busy' (another runner held the lease), 'lost' (this
    runner's lease lapsed and another took it: nothing of this run was switched in;
    ``holder`` says who holds it now)."""

    job: str
    status: str
    rows: int = 0
    changed: int = 0
    duration: float = 0.0
    attempts: int = 1
    holder: str = ""


@dataclass
class _Lease:
    job: RefreshJob
    token: str
    ttl_ms: int
    renewed: float = field(default_factory=time.monotonic)

    def renew_flow(self, ctx: Any, force: bool = False) -> Flow[None]:
        if not force and time.monotonic() - self.renewed < self.ttl_ms / 3000:
            return
        reply = yield from lease_flow(ctx, "renew", self.token, self.ttl_ms)
        if not reply.held:
            raise LeaseLostError(f"refresh job {self.job.name}: lost the lease on {self.job.model.__name__} "
                                 f"to {reply.holder or 'nobody'}; nothing was switched in", reply.holder)
        self.renewed = time.monotonic()


class RefreshJob:
    """A model, a source of its rows, and how to swap them in.

    ``source``: an SQLAlchemy ``select()`` (Core or ORM; give ``engine=``, an Engine or
    a URL) whose columns are named like the model's fields, or with ``mapping=``
    ({field: column}, or a callable row dict -> field dict); or a callable returning an
    iterable of dicts or model objects.  ``natural_key``: field names that identify an
    object across runs, for the incremental mode (see ``run``).  ``fingerprint``: an
    SQLAlchemy statement (run on the source's engine) or a callable whose result
    changes whenever the rows do (``max(updated_at), count(*)``): a run whose
    fingerprint equals the last run's ends 'unchanged' before reading a row.
    """

    def __init__(self, model: Any, source: Any, *, engine: Any = None, mapping: Mapping_ = None,
                 natural_key: str | tuple[str, ...] | None = None, name: str | None = None,
                 batch_size: int = 500, yield_per: int = 2000, lease_seconds: float = 120.0,
                 wait_for_lease: float = 0.0, retries: int = 3, backoff: float = 1.0,
                 max_backoff: float = 60.0, fingerprint: Any = None) -> None:
        from ..model import isIndexedRedisModel

        if not isIndexedRedisModel(model):
            raise TypeError(f"RefreshJob expects an IndexedRedisModel class, got {model!r}")
        self.model: Any = model
        self.name = name or f"{model.__name__}"
        field_names = tuple(model._meta.field_names)
        self.source: Source = make_source(source, engine, self.name, field_names, mapping, yield_per)
        if isinstance(natural_key, str):
            natural_key = (natural_key,)
        if natural_key is not None:
            unknown = [n for n in natural_key if n not in field_names]
            if unknown or not natural_key:
                raise ValueError(f"refresh job {self.name}: natural_key {natural_key!r} must name fields of "
                                 f"{model.__name__} (its fields: {list(field_names)})")
        self.natural_key = natural_key
        self.fingerprint: Callable[[], Any] | None = make_fingerprint(fingerprint, self.source, self.name)
        self.batch_size = batch_size
        self.lease_ms = int(lease_seconds * 1000)
        self.wait_for_lease = wait_for_lease
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff

    def __repr__(self) -> str:
        mode = f"incremental by {self.natural_key}" if self.natural_key else "full"
        return f"<RefreshJob {self.name}: {self.model.__name__} from {self.source.description}, {mode}>"

    # ---- the rows -----------------------------------------------------------------

    def objects(self) -> Iterator[Any]:
        """The source's rows as new model objects."""
        model: Any = self.model
        for position, row in enumerate(self.source.rows()):
            if isinstance(row, model):
                yield row.copy(copyPrimaryKey=False, copyValues=True) if row._id is not None else row
            elif isinstance(row, dict):
                yield model(**row)
            else:
                raise TypeError(f"refresh job {self.name}: row #{position} of the source is a {type(row).__name__}; "
                                f"expected a dict of {model.__name__} fields or a {model.__name__} object")

    # ---- running ------------------------------------------------------------------

    def run(self, progress: Progress | None = None, force: bool = False) -> RefreshResult:
        """One run, retried with exponential backoff on failure (``retries`` times).

        Full mode writes the whole dataset into a new generation and switches it in
        atomically (readers see all of the old one or all of the new one), unless it
        equals the live one (``force`` switches anyway).  Incremental mode writes only
        the objects that changed: its writes are atomic per object, not per dataset,
        so a reader may see some changes of a run before others.  With a
        ``fingerprint``, a run whose fingerprint equals the last run's skips before
        reading any row.
        """
        return drive(self.model, self._plan(progress, force, False))  # type: ignore[no-any-return]

    async def arun(self, progress: Progress | None = None, force: bool = False) -> RefreshResult:
        """``run``, awaitable: the same plan, its Redis steps on the event loop's async
        client; what may block (the source's rows, its fingerprint, an incremental
        run's steps) runs in one worker thread of the run's own, so the loop never
        waits on the SQL database (see ``refresh.steps``)."""
        return await adrive(self.model, self._plan(progress, force, True))  # type: ignore[no-any-return]

    def run_every(self, seconds: float, progress: Progress | None = None,
                  stop: Callable[[], bool] = lambda: False) -> None:
        """Run now and then every ``seconds`` (measured start to start) until ``stop()``;
        a run that fails on every attempt is logged and the schedule goes on."""
        while not stop():
            started = time.monotonic()
            try:
                self.run(progress)
            except RefreshError as exc:
                log.error("%s", exc)
            pause = seconds - (time.monotonic() - started)
            while pause > 0 and not stop():
                time.sleep(min(pause, 1.0))
                pause = seconds - (time.monotonic() - started)

    def _token(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"

    def _plan(self, progress: Progress | None, force: bool, threaded: bool) -> Plan:
        """The whole run (see ``refresh.steps``), with its retries."""
        attempt, delay = 0, self.backoff
        token = self._token()  # one per run: a retry takes over a lease its failed attempt left
        while True:
            attempt += 1
            try:
                result = yield from self._attempt(token, progress, force, threaded)
            except LeaseLostError as exc:  # another runner took the model over: its run stands
                log.warning("%s", exc)
                return RefreshResult(self.name, "lost", holder=exc.holder, attempts=attempt)
            except Exception as exc:
                yield from self._record_failure(exc)
                if attempt > self.retries:
                    raise RefreshError(f"refresh job {self.name}: failed {attempt} time(s), last with "
                                       f"{type(exc).__name__}: {exc}; the live {self.model.__name__} dataset "
                                       f"is as it was") from exc
                log.warning("refresh job %s: attempt %d failed (%s: %s); the live dataset is untouched; "
                            "retrying in %.1fs", self.name, attempt, type(exc).__name__, exc, delay)
                yield Sleep(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            if attempt > 1:
                result = RefreshResult(result.job, result.status, result.rows, result.changed, result.duration,
                                       attempt, result.holder)
            return result

    def _acquire(self, token: str) -> Generator[Step, Any, tuple[_Lease | None, str]]:
        deadline = time.monotonic() + self.wait_for_lease
        while True:
            reply = yield Redis(lambda ctx: lease_flow(ctx, "acquire", token, self.lease_ms))
            if reply.held:
                return _Lease(self, token, self.lease_ms), ""
            if time.monotonic() >= deadline:
                log.info("refresh job %s: skipped, %s is being refreshed by %s (lease ends in %.1fs)", self.name,
                         self.model.__name__, reply.holder, reply.remaining_ms / 1000)
                return None, reply.holder
            log.info("refresh job %s: waiting, %s holds the lease on %s", self.name, reply.holder,
                     self.model.__name__)
            yield Sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def _attempt(self, token: str, progress: Progress | None, force: bool,
                 threaded: bool) -> Generator[Step, Any, RefreshResult]:
        started, wall = time.monotonic(), time.time()
        lease, holder = yield from self._acquire(token)
        if lease is None:
            return RefreshResult(self.name, "busy", holder=holder)
        try:
            fingerprint = ""
            if self.fingerprint is not None:
                fingerprint = "fp:" + str((yield Blocking(self.fingerprint)))
                stored = None if force else (yield Redis(stored_fingerprint_flow))
                if stored is not None and stored[0] == fingerprint:
                    log.info("refresh job %s: unchanged, the source's fingerprint is the last run's (%s); "
                             "no row read", self.name, fingerprint[3:][:80])
                    duration = time.monotonic() - started
                    skipped = {"job": self.name, "status": "unchanged", "last_success": f"{wall:.3f}",
                               "duration": f"{duration:.3f}", "rows_read": 0, "rows_changed": 0}
                    yield Redis(lambda ctx: record_run_flow(ctx, True, skipped, stored[2], stored[1]))
                    return RefreshResult(self.name, "unchanged", 0, 0, duration)
            if self.natural_key is None:
                status, rows, changed, gen, digest = yield from self._full(lease, progress, force)
            else:
                from .incremental import run_incremental

                if threaded:  # its steps are the sync API's: all of it in the worker thread
                    status, rows, changed, gen, digest = yield Blocking(
                        lambda: run_incremental(self, lease, progress))
                else:
                    status, rows, changed, gen, digest = run_incremental(self, lease, progress)
            duration = time.monotonic() - started
            fields = {"job": self.name, "status": status, "last_success": f"{wall:.3f}",
                      "duration": f"{duration:.3f}", "rows": rows, "rows_read": rows, "rows_changed": changed,
                      "source": self.source.description, "fingerprint": fingerprint}
            yield Redis(lambda ctx: record_run_flow(ctx, True, fields, gen, digest))
        finally:
            yield Redis(lambda ctx: lease_flow(ctx, "release", lease.token))
        log.info("refresh job %s: %s, %d rows, %d changed, %.2fs", self.name, status, rows, changed, duration)
        return RefreshResult(self.name, status, rows, changed, duration)

    def _full(self, lease: _Lease, progress: Progress | None,
              force: bool) -> Generator[Step, Any, tuple[str, int, int, int | None, str]]:
        digest = DatasetDigest()
        live_gen: list[int] = []

        def tick(done: int, _total: int | None) -> None:
            if progress is not None:
                progress(done)

        def flow(ctx: Any, objects: Iterator[Any], fetch: Callable[[], Flow[None]]) -> Flow[Any]:
            def before_switch(count: int) -> Flow[bool]:
                yield from lease.renew_flow(ctx, force=True)
                if force:
                    return True
                live = yield from stored_digest_flow(ctx)
                return live != digest.hexdigest()

            def between_batches(count: int) -> Flow[None]:
                yield from lease.renew_flow(ctx)
                yield from fetch()

            try:
                outcome = yield from reset_stream_flow(ctx, objects, self.batch_size, tick, digest.add_record,
                                                       before_switch, between_batches,
                                                       switch_lease=(ctx.meta.keys.refresh_lease, lease.token))
            except SwitchRefused as exc:
                raise LeaseLostError(
                    f"refresh job {self.name}: the switch was refused: the lease on {self.model.__name__} lapsed "
                    f"and is held by {exc.holder or 'nobody'} now; this run's dataset was dropped, the live one "
                    f"(the other runner's) stays", exc.holder) from exc
            live_gen.append(ctx.gen)
            return outcome

        outcome = yield Stream(self.objects, flow, self.batch_size)
        status = "swapped" if outcome.switched else "unchanged"
        changed = outcome.count if outcome.switched else 0
        return status, outcome.count, changed, live_gen[0], digest.hexdigest()

    def _record_failure(self, exc: BaseException) -> Generator[Step, Any, None]:
        fields = {"job": self.name, "status": "failed", "last_error": f"{type(exc).__name__}: {exc}"[:2000],
                  "last_error_at": f"{time.time():.3f}"}
        try:
            yield Redis(lambda ctx: record_run_flow(ctx, False, fields))
        except Exception as record_exc:  # Redis itself may be what failed
            log.warning("refresh job %s: could not record the failure in Redis (%s: %s)", self.name,
                        type(record_exc).__name__, record_exc)
