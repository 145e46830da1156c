"""Learned estimators run through onnxruntime (torch is needed only to train them).

``estimate_reverb(audio, sample_rate_hz)`` gives a blind RT60 / DRR of reverberant program material
from the shipped model ``engine/models/reverb_blind.onnx`` (trained by
``python -m engine.estimators.train_reverb``; data and held-out errors in ``reverb_blind.json``). The
ONNX session is created lazily on first use and reused.
"""

from __future__ import annotations

import json
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

MODEL_DIR = Path(__file__).resolve().parent.parent / "models"
MODEL_NAME = "reverb_blind"
_lock = threading.Lock()


@lru_cache(maxsize=1)
def _session() -> Any:
    import onnxruntime as ort

    path = MODEL_DIR / f"{MODEL_NAME}.onnx"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def model_card() -> dict:
    """The model card (training data, held-out errors) of the shipped reverb model."""
    return json.loads((MODEL_DIR / f"{MODEL_NAME}.json").read_text())


def estimate_reverb(audio: np.ndarray, sample_rate_hz: int) -> dict:
    """Blind ``{rt60_s, drr_db, dsp_rt60_s, model, reason}`` of ``(frames, channels)`` audio.

    Uses at most the middle 30 s. ``rt60_s`` / ``drr_db`` are None (with ``reason``) when the audio
    is shorter than 1.5 s, silent, or has no distinct events (stationary noise or tone).
    """
    from engine.estimators.reverb_features import (
        ANALYSIS_RATE_HZ,
        dsp_rt60_s,
        prepare,
        reverb_features,
        unusable_reason,
    )

    x16 = prepare(audio, sample_rate_hz)
    reason = unusable_reason(x16)
    feats = None if reason else reverb_features(x16, ANALYSIS_RATE_HZ)
    if feats is None:
        return {
            "rt60_s": None,
            "drr_db": None,
            "dsp_rt60_s": None,
            "model": MODEL_NAME,
            "reason": f"no reverb estimate: {reason}",
        }
    with _lock:
        y = _session().run(["y"], {"features": feats[None, :]})[0][0]
    return {
        "rt60_s": round(float(np.clip(np.exp(y[0]), 0.1, 10.0)), 3),
        "drr_db": round(float(np.clip(y[1] * 10.0, -20.0, 40.0)), 2),
        "dsp_rt60_s": dsp_rt60_s(x16, ANALYSIS_RATE_HZ),
        "model": MODEL_NAME,
        "reason": None,
    }
