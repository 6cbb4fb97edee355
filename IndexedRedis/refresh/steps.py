"""How a refresh run's one plan is carried out, in a thread (``RefreshJob.run``) or on
an event loop (``RefreshJob.arun``).

A run is a *plan*: a generator that yields steps and receives their results (or has
their exceptions thrown in).  The plan holds all of the logic (the lease, retries and
backoff, the digest and fingerprint skips, the metrics); the two drivers here only
carry the steps out:

* ``Redis(make)``: a flow, run on the model's sync client (``run_sync``) or on the
  loop's async client (``run_async``: ``runner.arun``);
* ``Sleep(seconds)``: ``time.sleep`` or ``asyncio.sleep``;
* ``Blocking(function)``: a call that may block (an SQL query: the source's
  fingerprint, an incremental run), made inline, or in the run's one worker thread;
* ``Stream(objects, make)``: the full mode's streamed reset, one flow
  (``reset_stream_flow``) fed by the source's rows.  The sync driver runs it on the
  rows as they come.  The async driver reads the rows in the run's worker thread, one
  batch ahead of the flow, and runs the flow in *segments*: the flow's
  ``between_batches`` hook yields ``NEED_ROWS`` (never sent to Redis), which ends a
  segment; the driver awaits the next batch from the thread, then resumes the same
  flow in a new segment.  The event loop never waits on the SQL database, and the
  Redis side is the same flow, on the async client.

One worker thread per run, so that a database connection (SQLite's, for one) is only
ever used by the thread that opened it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any

from ..dispatch import run_async, run_sync
from ..flows.requests import Flow

__all__ = ["Redis", "Sleep", "Blocking", "Stream", "NEED_ROWS", "Plan", "drive", "adrive"]


@dataclass(frozen=True)
class Redis:
    make: Callable[[Any], Flow[Any]]


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Blocking:
    function: Callable[[], Any]


#: ``make(ctx, objects, fetch)``: the streamed reset's flow over ``objects``; ``fetch()``
#: is the flow its ``between_batches`` hook runs to let the next batch be read.
StreamFlow = Callable[[Any, Iterator[Any], Callable[[], Flow[None]]], Flow[Any]]


@dataclass(frozen=True)
class Stream:
    objects: Callable[[], Iterator[Any]]
    make: StreamFlow
    batch_size: int


class _NeedRows:
    def __repr__(self) -> str:
        return "NEED_ROWS"


#: What a streamed flow yields when it is about to take the next batch (async driver only).
NEED_ROWS = _NeedRows()

Step = Redis | Sleep | Blocking | Stream
Plan = Generator[Step, Any, Any]


def _no_fetch() -> Flow[None]:
    return
    yield  # a generator that yields nothing: the rows are read as the flow takes them


def _ask_rows() -> Flow[None]:
    yield NEED_ROWS  # type: ignore[misc]


def _stream_flow(step: Stream) -> Callable[[Any], Flow[Any]]:
    return lambda ctx: step.make(ctx, step.objects(), _no_fetch)


def _advance(plan: Generator[Any, Any, Any], outcome: tuple[bool, Any]) -> tuple[bool, Any]:
    """Hand a plan (or a flow) the last step's result ((True, value)) or exception
    ((False, exc)); -> (False, the next step) or (True, the generator's result)."""
    ok, value = outcome
    try:
        return False, (plan.send(value) if ok else plan.throw(value))
    except StopIteration as stop:
        return True, stop.value


def _sync_step(model: Any, step: Step) -> Any:
    if isinstance(step, Redis):
        return run_sync(model, step.make)
    if isinstance(step, Sleep):
        return time.sleep(step.seconds)
    if isinstance(step, Blocking):
        return step.function()
    return run_sync(model, _stream_flow(step))


def drive(model: Any, plan: Plan) -> Any:
    """Carry the plan out in this thread, on the model's sync client."""
    done, step = _advance(plan, (True, None))
    while not done:
        try:
            outcome = (True, _sync_step(model, step))
        except BaseException as exc:  # Ctrl-C too: the plan's finally releases the lease
            outcome = (False, exc)
        done, step = _advance(plan, outcome)
    return step


class _Prefetched:
    """The source's objects, read ahead in the worker thread, handed out to the flow."""

    def __init__(self, objects: Iterator[Any]) -> None:
        self.objects = objects
        self.ready: deque[Any] = deque()
        self.ended = False
        self.error: BaseException | None = None

    def fill(self, count: int) -> None:
        """Read up to ``count`` more objects (in the worker thread)."""
        if self.ended or self.error is not None:
            return
        try:
            taken = list(islice(self.objects, count))
        except Exception as exc:  # the flow raises it where it takes the rows: it abandons its generation
            self.error = exc
            return
        self.ready.extend(taken)
        if len(taken) < count:
            self.ended = True

    def __iter__(self) -> _Prefetched:
        return self

    def __next__(self) -> Any:
        if self.ready:
            return self.ready.popleft()
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        if not self.ended:  # only if the flow takes more than a batch at a time
            self.fill(1)
            return next(self)
        raise StopIteration


def _segment(flow: Flow[Any], error: BaseException | None = None) -> Flow[tuple[bool, Any]]:
    """Drive ``flow`` (already started or not; ``error`` thrown into it first) until it
    asks for rows (-> (False, None)) or ends (-> (True, its value)); every other
    request goes to the driver as it is."""
    done, request = _advance(flow, (False, error) if error is not None else (True, None))
    while not done and request is not NEED_ROWS:
        try:
            outcome = (True, (yield request))
        except Exception as exc:
            outcome = (False, exc)
        done, request = _advance(flow, outcome)
    return (True, request) if done else (False, None)


def _throwing(flow: Flow[Any], error: BaseException) -> Callable[[Any], Flow[tuple[bool, Any]]]:
    return lambda ctx: _segment(flow, error)


async def _astream(model: Any, step: Stream, loop: asyncio.AbstractEventLoop, worker: ThreadPoolExecutor) -> Any:
    rows = _Prefetched(iter(()))
    rows.objects = await loop.run_in_executor(worker, step.objects)
    await loop.run_in_executor(worker, rows.fill, step.batch_size)  # the flow takes the first batch at once
    flows: list[Flow[Any]] = []

    def first(ctx: Any) -> Flow[tuple[bool, Any]]:
        flows.append(step.make(ctx, rows, _ask_rows))
        return _segment(flows[0])

    done, value = await run_async(model, first)
    try:
        while not done:
            await loop.run_in_executor(worker, rows.fill, step.batch_size)
            done, value = await run_async(model, lambda ctx: _segment(flows[0]))
    except BaseException as exc:  # cancelled while a batch was read: the flow abandons its generation
        # (an Exception is thrown in: the flow abandons on those, and CancelledError is not one)
        if not done:
            try:
                await run_async(model, _throwing(flows[0], RuntimeError(f"the refresh run was stopped ({exc!r})")))
            except BaseException:
                pass
        raise
    return value


async def _async_step(model: Any, step: Step, loop: asyncio.AbstractEventLoop, worker: ThreadPoolExecutor) -> Any:
    if isinstance(step, Redis):
        return await run_async(model, step.make)
    if isinstance(step, Sleep):
        return await asyncio.sleep(step.seconds)
    if isinstance(step, Blocking):
        return await loop.run_in_executor(worker, step.function)
    return await _astream(model, step, loop, worker)


async def adrive(model: Any, plan: Plan) -> Any:
    """Carry the plan out on the running event loop: Redis on its async client, what
    may block in one worker thread of the run's own."""
    loop = asyncio.get_running_loop()
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ir-refresh")
    try:
        done, step = _advance(plan, (True, None))
        while not done:
            try:
                outcome = (True, await _async_step(model, step, loop, worker))
            except BaseException as exc:  # cancelled too: the plan's finally releases the lease
                outcome = (False, exc)
            done, step = _advance(plan, outcome)
        return step
    finally:  # a cancelled run does not wait for the batch its thread is reading
        worker.shutdown(wait=False, cancel_futures=True)
