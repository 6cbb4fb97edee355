"""Garbage collection during big fetches.

Building a big result allocates a few container objects per record (the unpacked
array, the instance, its dict), none of which can be part of a reference cycle yet.
Left alone, those allocations set off CPython's cyclic collector every 700 of them,
and its full collections walk the whole heap: on an 18,000-object result that was a
quarter of the fetch time.  So the collector is paused while a big result is built
(msgpack's README gives the same advice for large unpacks); it runs as usual afterwards.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused_gc"]

_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_resume = False


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block (thread-safe: it resumes when
    the last pausing thread is done, and only if it was enabled before the first)."""
    global _gc_pausers, _gc_resume
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_resume = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_resume:
                gc.enable()


def _resume_gc_in_child() -> None:
    """A child forked while another thread had the collector paused: resume it."""
    global _gc_pausers, _gc_resume, _gc_lock
    _gc_lock = threading.Lock()
    if _gc_pausers and _gc_resume:
        gc.enable()
    _gc_pausers, _gc_resume = 0, False


os.register_at_fork(after_in_child=_resume_gc_in_child)
