"""The processor protocol every effect implements (SPEC section 3).

A processor is configured once with :meth:`Processor.reset` and then fed consecutive blocks of
``float32`` audio shaped ``(frames, channels)``. ``process`` returns the processed block and the state
to pass with the next block. The state is JSON-serialisable (plain dicts, lists, floats, base64 strings)
so a render can stop after any block and resume on another machine with the same output, sample for
sample. ``state=None`` means "start from silence".
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

State = dict[str, Any]


class Processor(Protocol):
    #: fixed delay in frames this processor adds (the limiter's lookahead, for example);
    #: the renderer compensates so output aligns with input.
    latency_frames: int

    def reset(self, sample_rate_hz: int, channels: int, params: dict[str, Any]) -> None:
        """Configure for a stream; validates ``params`` (raises ParamsError)."""

    def process(self, block: np.ndarray, state: State | None) -> tuple[np.ndarray, State]:
        """Process one ``(frames, channels)`` block; returns ``(block, new_state)``."""
