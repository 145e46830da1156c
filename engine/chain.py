"""Build the processing chain from style_params and run it block by block with JSON state.

Order (docs/ARCHITECTURE.md): [pitch] -> EQ -> [compressor] -> [reverb] -> stereo width -> gain ->
true-peak limiter. A missing block of style_params means that processor is off. Mode-B processors
are imported lazily so mode A needs none of their modules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.errors import ParamsError
from engine.processors.base import Processor, State
from engine.processors.eq import ParametricEQ
from engine.processors.gain import Gain
from engine.processors.limiter import TruePeakLimiter
from engine.processors.stereo import StereoWidth

#: processor names in chain order; ``gain`` and ``limiter`` form the "post" part that the loudness
#: resolution varies.
CHAIN_ORDER = ("pitch", "eq", "compressor", "reverb", "stereo", "gain", "limiter")
POST_STAGES = ("gain", "limiter")


def _make(name: str) -> Processor:
    if name == "eq":
        return ParametricEQ()
    if name == "stereo":
        return StereoWidth()
    if name == "gain":
        return Gain()
    if name == "limiter":
        return TruePeakLimiter()
    if name == "compressor":
        from engine.processors.compressor import Compressor
        return Compressor()
    if name == "reverb":
        from engine.processors.reverb import ConvolutionReverb
        return ConvolutionReverb()
    if name == "pitch":
        from engine.processors.pitch import PitchShifter
        return PitchShifter()
    raise ParamsError(f"unknown processor {name!r}", where=name)


def _params_for(name: str, style_params: dict[str, Any]) -> Any:
    if name == "gain":
        lufs = style_params.get("lufs")
        return {"gain_db": float(lufs.get("gain_db", 0.0) or 0.0)} if lufs else None
    return style_params.get(name)


def build_chain(style_params: dict[str, Any], sample_rate_hz: int, channels: int, *,
                stages: tuple[str, ...] = CHAIN_ORDER) -> list[Processor]:
    """Processors for the blocks present in ``style_params`` (in chain order, each already ``reset``),
    limited to ``stages``. Each processor gets a ``name`` attribute."""
    chain: list[Processor] = []
    for name in CHAIN_ORDER:
        if name not in stages:
            continue
        params = _params_for(name, style_params)
        if params is None or (name == "eq" and not params):
            continue
        proc = _make(name)
        try:
            proc.reset(int(sample_rate_hz), int(channels), params)
        except ParamsError as exc:
            if exc.where and not str(exc.where).startswith(name):
                exc.where = exc.where if exc.where.startswith("eq[") else f"{name}.{exc.where}"
            raise
        proc.name = name  # type: ignore[attr-defined]
        chain.append(proc)
    return chain


class ChainRunner:
    """Runs a list of processors over consecutive blocks, compensating their latency: the output is
    aligned with the input, and :meth:`finish` flushes latency plus tails (reverb) so the total output
    is ``input frames + tail_frames``. The state (:meth:`state`) is JSON-serialisable."""

    def __init__(self, processors: list[Processor], channels: int, state: dict[str, Any] | None = None):
        self.processors = processors
        self.channels = int(channels)
        self.latency_frames = int(sum(int(getattr(p, "latency_frames", 0)) for p in processors))
        self.tail_frames = int(sum(int(getattr(p, "tail_frames", 0) or 0) for p in processors))
        state = state or {}
        self._states: list[State | None] = list(state.get("processors") or [None] * len(processors))
        self._to_drop = int(state.get("to_drop", self.latency_frames))
        self.frames_in = int(state.get("frames_in", 0))
        self.gain_reduction_db: np.ndarray | None = None
        # the limiter's part alone (what artifacts_rate counts: "the limiter bit hard"); None when
        # the chain has no dynamics stage, zeros when it has a compressor but no limiter
        self.limiter_gain_reduction_db: np.ndarray | None = None
        self._has_limiter = any(getattr(p, "name", "") == "limiter" for p in processors)

    def state(self) -> dict[str, Any]:
        return {"processors": list(self._states), "to_drop": self._to_drop, "frames_in": self.frames_in}

    def _run(self, block: np.ndarray) -> np.ndarray:
        y = block
        self.gain_reduction_db = None
        self.limiter_gain_reduction_db = None
        for i, p in enumerate(self.processors):
            y, self._states[i] = p.process(y, self._states[i])
            if getattr(p, "name", "") in ("compressor", "limiter"):
                # total gain reduction = compressor's + limiter's (dB add); the compressor's curve is
                # not delayed by the later stages' latency (a few ms, below the report's 100 ms hop)
                gr = p.last_gain_reduction_db  # type: ignore[attr-defined]
                cur = self.gain_reduction_db
                if cur is None or cur.shape[0] != gr.shape[0]:
                    self.gain_reduction_db = gr
                else:
                    self.gain_reduction_db = cur + gr
                if p.name == "limiter":
                    self.limiter_gain_reduction_db = gr
        if self.gain_reduction_db is not None and not self._has_limiter:
            self.limiter_gain_reduction_db = np.zeros_like(self.gain_reduction_db)
        return y

    def process(self, block: np.ndarray) -> np.ndarray:
        """Process one block; returns the aligned output available so far (may be shorter)."""
        block = np.asarray(block, dtype=np.float32)
        self.frames_in += block.shape[0]
        y = self._run(block)
        if self._to_drop:
            d = min(self._to_drop, y.shape[0])
            self._to_drop -= d
            y = y[d:]
            if self.gain_reduction_db is not None:
                self.gain_reduction_db = self.gain_reduction_db[d:]
            if self.limiter_gain_reduction_db is not None:
                self.limiter_gain_reduction_db = self.limiter_gain_reduction_db[d:]
        return y

    def finish(self, block_frames: int = 65536) -> list[np.ndarray]:
        """Flush: feed silence until latency and tails are out; returns the remaining output blocks."""
        remaining = self.latency_frames + self.tail_frames
        outs = []
        grs, limiter_grs = [], []
        while remaining > 0:
            n = min(block_frames, remaining)
            before = self.frames_in
            y = self.process(np.zeros((n, self.channels), np.float32))
            self.frames_in = before
            remaining -= n
            outs.append(y)
            if self.gain_reduction_db is not None:
                grs.append(self.gain_reduction_db)
            if self.limiter_gain_reduction_db is not None:
                limiter_grs.append(self.limiter_gain_reduction_db)
        self.gain_reduction_db = np.concatenate(grs) if grs else None
        self.limiter_gain_reduction_db = np.concatenate(limiter_grs) if limiter_grs else None
        return outs
