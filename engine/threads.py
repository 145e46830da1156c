"""Overlapping the stages of a streaming pass on a second core.

Decoding (libsndfile), IIR filtering, FFTs and large numpy ufuncs release the GIL, so a pass split
into "produce a block" and "consume a block" (measure, write) runs on two cores with two threads.
Both helpers keep at most ``depth`` blocks in flight, so memory stays flat in the file's length, and
they do nothing special on one core (:func:`usable_cores` is 1 under ``taskset -c 0``).
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_DONE = object()

#: environment variables that size numpy's BLAS thread pool (OpenBLAS, OpenMP builds, MKL).
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def single_blas_thread() -> bool:
    """Ask for one BLAS thread in this process (effective only if numpy is not loaded yet) and in
    every process started from now on (they inherit the environment); a value the user set wins.
    Returns whether this process itself is covered.

    The engine parallelises on its own (stage threads, one render process per core) and its BLAS
    calls are small GEMMs (true-peak interpolation), on which OpenBLAS's extra threads only spin:
    analysing a 240 s file took 0.59 s wall / 1.18 s CPU with two BLAS threads against 0.59 / 0.59
    with one, and two render processes with spinning BLAS threads made a service job 2.4x slower."""
    for var in BLAS_THREAD_VARS:
        os.environ.setdefault(var, "1")
    return "numpy" not in sys.modules


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. under ``taskset``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class BackgroundSink:
    """Calls ``consume(*item)`` for every :meth:`put` item, in order, on one background thread.

    Use as a context manager: leaving the block waits for the queue to drain and re-raises the first
    error of ``consume`` (a later :meth:`put` also raises it, so the producer stops early). With
    ``threaded=False`` :meth:`put` calls ``consume`` directly."""

    def __init__(self, consume: Callable[..., None], *, depth: int = 2, threaded: bool = True) -> None:
        self._consume = consume
        self._threaded = threaded
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> BackgroundSink:
        if self._threaded:
            self._thread = threading.Thread(target=self._run, name="tonematch-sink", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is None:
                try:
                    self._consume(*item)
                except BaseException as exc:  # handed to the producer's thread
                    self._error = exc

    def put(self, *item: Any) -> None:
        """Queue one item (blocks while ``depth`` items wait)."""
        if self._error is not None:
            raise self._error
        if self._thread is None:
            self._consume(*item)
        else:
            self._queue.put(item)

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._thread is not None:
            self._queue.put(_DONE)
            self._thread.join()
            self._thread = None
        if exc_type is None and self._error is not None:
            raise self._error


def prefetch(blocks: Iterable[Any], *, depth: int = 2, threaded: bool = True) -> Iterator[Any]:
    """Iterate ``blocks`` with the next ``depth`` items produced ahead on a background thread (e.g.
    decoding while the caller processes). Errors of the source are raised at the same position.
    Closing the returned generator early stops the reader after the block it is on."""
    if not threaded:
        yield from blocks
        return
    q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def read() -> None:
        try:
            for b in blocks:
                if stop.is_set():
                    break
                q.put((b, None))
        except BaseException as exc:
            q.put((_DONE, exc))
            return
        finally:
            close = getattr(blocks, "close", None)
            if close is not None:
                close()  # a generator releases its file here, not whenever it is collected
        q.put((_DONE, None))

    t = threading.Thread(target=read, name="tonematch-prefetch", daemon=True)
    t.start()
    try:
        while True:
            item, err = q.get()
            if item is _DONE:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock a reader waiting on a full queue
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.05)
        t.join()
