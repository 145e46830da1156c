"""Is a recording noise? Its features document's STFT statistics (``stft``: per-point mean and
standard deviation in dB over the frames, mid channel) tell: noise of any colour varies from frame to
frame as a dB-scaled chi-square does, music and speech far more. Mode B keeps its compressor and
reverb off for such a recording; mode A's EQ does not boost a target's noise floor. numpy only (the
mode-A path imports this)."""

from __future__ import annotations

from typing import Any

import numpy as np

#: a recording is noise when its spectrum fluctuates from frame to frame no more than a stationary
#: random signal's: the median over ``NOISE_BAND_HZ`` of the features' per-point standard deviation
#: (dB) of the STFT statistics reads 2.9 dB for white, pink, brown or band-limited noise alike (the
#: spread of a dB-scaled chi-square does not depend on the colour) and 6.7-25 dB for music, with
#: notes coming and going however compressed; a noise's level envelope, on the other hand, spans
#: 0.3 dB (white) to 13 dB (brown), so the envelope alone cannot tell
NOISE_SPECTRAL_STD_DB = 3.5
NOISE_BAND_HZ = (100.0, 10000.0)
#: STFT statistics points whose mean (dB) is at or under this hold no sound (the floor is -150)
NOISE_LIVE_MIN_DB = -130.0


def stft_statistics(features: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(freqs_hz, mag_db_mean, mag_db_std)`` of a features document's ``stft`` block (equal-length
    float64 arrays, at least two points), or None when it is missing or malformed."""
    stft = features.get("stft") if isinstance(features, dict) else None
    try:
        f, mean, sd = (np.asarray(stft[k] or [], dtype=np.float64)
                       for k in ("freqs_hz", "mag_db_mean", "mag_db_std"))
    except (KeyError, TypeError, ValueError):
        return None
    if f.size < 2 or not f.size == sd.size == mean.size:
        return None
    return f, mean, sd


def spectral_fluctuation_db(features: Any) -> float | None:
    """Median (over ``NOISE_BAND_HZ``) of the standard deviation in dB of each STFT statistics point
    across the frames (``stft.mag_db_std``), or None when the features lack it."""
    stats = stft_statistics(features)
    if stats is None:
        return None
    f, mean, sd = stats
    band = (f >= NOISE_BAND_HZ[0]) & (f <= NOISE_BAND_HZ[1])
    # the statistics are of the mid channel: points at its floor (nothing there, as in an anti-phase
    # L = -R recording) say nothing about how the sound varies
    live = band & np.isfinite(sd) & (mean > NOISE_LIVE_MIN_DB)
    return float(np.median(sd[live])) if live.sum() >= 0.5 * band.sum() > 0 else None
