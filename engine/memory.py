"""Handing freed heap memory back to the operating system during long streaming passes."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable

#: blocks between two trims in the streaming loops (about 24 s of audio at 44.1 kHz and 6-s blocks).
TRIM_EVERY_BLOCKS = 4


def _load_malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim  # glibc only; musl and others have no such symbol
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _load_malloc_trim()


def release_freed_memory() -> None:
    """Return the C heap's free pages to the OS (glibc ``malloc_trim(0)``; a no-op elsewhere).

    The streaming passes allocate and free the same few MB per block, in two threads. glibc keeps
    freed chunks in its heaps (and raises its mmap threshold after the first large free), so the
    resident size crept up with the file's length although the live numpy memory did not: a match
    of a 60-minute file peaked 21 MB above a 3-minute one (161 vs 140 MB). Trimming every few
    blocks keeps the peak at the live memory (146 vs 136 MB) and costs no measurable time."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class PeriodicTrim:
    """Call :meth:`tick` once per block; every ``every`` blocks it releases freed memory."""

    def __init__(self, every: int = TRIM_EVERY_BLOCKS) -> None:
        self.every = max(1, int(every))
        self._count = 0

    def tick(self) -> None:
        self._count += 1
        if self._count % self.every == 0:
            release_freed_memory()
