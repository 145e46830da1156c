"""Blind reverberation features of program material (input of the learned RT60 / DRR estimator).

Computed at 16 kHz on the mono mix, per band (octaves at 250..4000 Hz plus broadband), from the
frame-energy envelope in dB (20 ms frames, 10 ms hop):

- the median decay after strong local peaks at 8 lags (20 ms .. 1 s), in dB relative to the peak:
  an energy-decay curve seen through the music (reverb makes it slower and shallower);
- the 5th / 10th / 25th percentiles of the local decay rate (dB/s, least-squares slope over 150 ms):
  the steepest decays are bounded by the room's decay;
- the spread of the envelope (p95 - p5, p95 - p50, dB): reverb fills the gaps between events.

``dsp_rt60_s`` is the classic DSP estimate from the same envelope (60 dB over the steepest broadband
decay rate); the learned model is compared against it.
"""

from __future__ import annotations

import numpy as np
import soxr
from scipy import signal

FEATURE_VERSION = 1
ANALYSIS_RATE_HZ = 16000
HOP = 160  # 10 ms
FRAME = 320  # 20 ms
BAND_CENTRES_HZ = (250.0, 500.0, 1000.0, 2000.0, 4000.0)
LAGS_FRAMES = (2, 5, 10, 20, 30, 50, 70, 100)
SLOPE_FRAMES = 15
PER_BAND = len(LAGS_FRAMES) + 3 + 2
N_FEATURES = PER_BAND * (len(BAND_CENTRES_HZ) + 1)
MAX_EXCERPT_S = 30.0
MIN_DURATION_S = 1.5

_SOS = [
    signal.butter(
        3,
        [c / np.sqrt(2), min(c * np.sqrt(2), 0.45 * ANALYSIS_RATE_HZ)],
        "bandpass",
        fs=ANALYSIS_RATE_HZ,
        output="sos",
    )
    for c in BAND_CENTRES_HZ
]


def prepare(audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Mono float64 at 16 kHz of at most the middle ``MAX_EXCERPT_S`` seconds, less its DC offset (see
    :func:`_resting_level`): an offset is a floor under every gap of the broadband envelope, which
    reads as reverb."""
    x = np.asarray(audio)
    # the mono mix taken in float64 straight from the samples (no float64 copy of every channel)
    x = x.mean(axis=1, dtype=np.float64) if x.ndim == 2 else x.astype(np.float64)
    n_max = int(MAX_EXCERPT_S * sample_rate_hz)
    if len(x) > n_max:
        start = (len(x) - n_max) // 2
        x = x[start : start + n_max]
    if sample_rate_hz != ANALYSIS_RATE_HZ:
        x = soxr.resample(x, sample_rate_hz, ANALYSIS_RATE_HZ, quality="HQ")
    return x - _resting_level(x)


def _resting_level(x: np.ndarray) -> float:
    """The value the signal rests on: the median sample of its quietest tenth of 20 ms frames. Zero for
    audio whose pauses are digital silence, even when its waveform is asymmetric (subtracting the
    plain mean would then lift every pause off zero); the offset itself where pauses sit on one."""
    n = len(x) // FRAME
    if n < 10:
        return 0.0
    frames = x[: n * FRAME].reshape(n, FRAME)
    energy = np.mean(frames**2, axis=1)
    quiet = frames[energy <= np.percentile(energy, 10)]
    return float(np.median(quiet))


def _envelope_db(x: np.ndarray) -> np.ndarray:
    n = 1 + max(len(x) - FRAME, 0) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, (0, FRAME)), FRAME)[::HOP][:n]
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def _slopes_db_per_s(e: np.ndarray) -> np.ndarray:
    i = np.arange(SLOPE_FRAMES) - (SLOPE_FRAMES - 1) / 2
    kernel = i[::-1] / np.sum(i**2)
    return np.convolve(e, kernel, mode="valid") * (ANALYSIS_RATE_HZ / HOP)


def _band_features(e: np.ndarray) -> np.ndarray:
    floor = np.percentile(e, 5)
    p50, p95 = np.percentile(e, [50, 95])
    # strong local peaks: max within +-50 ms and in the top 30 % of levels
    win = np.lib.stride_tricks.sliding_window_view(np.pad(e, 5, constant_values=-np.inf), 11)
    strong = (e >= win.max(axis=1)) & (e >= np.percentile(e, 70))
    peaks = np.flatnonzero(strong[: len(e) - LAGS_FRAMES[-1]])
    if peaks.size:
        lags = np.asarray(LAGS_FRAMES)
        dec = e[peaks[:, None] + lags[None, :]] - e[peaks][:, None]
        dec = np.maximum(dec, (floor - e[peaks])[:, None])
        decay = np.median(dec, axis=0)
    else:
        decay = np.full(len(LAGS_FRAMES), -30.0)
    s = _slopes_db_per_s(e)
    centre = e[SLOPE_FRAMES // 2 : SLOPE_FRAMES // 2 + len(s)]
    neg = s[(s < 0) & (centre > p50)]
    rates = np.percentile(neg, [5, 10, 25]) if neg.size >= 5 else np.full(3, -60.0)
    rates = np.log(np.clip(-rates, 1.0, 2000.0))
    return np.concatenate([decay / 30.0, rates, [(p95 - floor) / 30.0, (p95 - p50) / 30.0]])


MIN_SPREAD_DB = 4.0
#: how :func:`unusable_reason` starts when the envelope is flat (mode B's compressor reads it too)
STATIONARY_REASON = "no distinct sound events"


def unusable_reason(x16: np.ndarray) -> str | None:
    """Why 16 kHz mono ``x16`` carries no reverberation information, or None when it does."""
    if len(x16) < MIN_DURATION_S * ANALYSIS_RATE_HZ:
        return f"audio shorter than {MIN_DURATION_S:g} s"
    if not np.any(np.abs(x16) > 1e-6):
        return "digital silence"
    e = _envelope_db(x16)
    p5, p95 = np.percentile(e, [5, 95])
    if p95 - p5 < MIN_SPREAD_DB:
        return f"{STATIONARY_REASON} (envelope spread {p95 - p5:.1f} dB: stationary noise or tone)"
    return None


def reverb_features(audio: np.ndarray, sample_rate_hz: int) -> np.ndarray | None:
    """Feature vector (``N_FEATURES`` float32), or None when ``unusable_reason`` finds one."""
    x = prepare(audio, sample_rate_hz)
    if unusable_reason(x) is not None:
        return None
    # one band signal alive at a time: each is reduced to its envelope's features at once
    feats = [_band_features(_envelope_db(signal.sosfilt(sos, x))) for sos in _SOS]
    feats.append(_band_features(_envelope_db(x)))
    return np.concatenate(feats).astype(np.float32)


def dsp_rt60_s(audio: np.ndarray, sample_rate_hz: int) -> float | None:
    """DSP blind RT60: 60 dB over the 5th-percentile (steepest) broadband decay rate, 0.1..10 s."""
    x = prepare(audio, sample_rate_hz)
    if len(x) < MIN_DURATION_S * ANALYSIS_RATE_HZ or not np.any(np.abs(x) > 1e-6):
        return None
    e = _envelope_db(x)
    s = _slopes_db_per_s(e)
    centre = e[SLOPE_FRAMES // 2 : SLOPE_FRAMES // 2 + len(s)]
    neg = s[(s < 0) & (centre > np.percentile(e, 50))]
    if neg.size < 5:
        return None
    return float(np.clip(60.0 / -np.percentile(neg, 5), 0.1, 10.0))
