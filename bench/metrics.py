"""Benchmark metrics, implemented independently of the engine (numpy / scipy / pyloudnorm).

All functions take float arrays shaped (frames, channels) at ``sample_rate_hz``.

How outputs are compared (see docs/BENCHMARKS.md):
- distances to a truth (MR-STFT, mel) are computed after aligning the output to the truth in time
  (cross-correlation, +-50 ms) and in level (one gain so both have the same integrated loudness). The
  level each tool chose is judged separately by the LUFS error against the loudness it was asked to hit,
  so a global gain is neither hidden nor allowed to dominate the spectral distances.
- long-term spectra (1/3 octave) are level-normalised (mean band level removed) before differencing.
"""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm
from scipy import fft as sp_fft
from scipy import signal

EPS = 1e-8


def as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[:, None] if x.ndim == 1 else x


def match_channels(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """If one is mono and the other stereo, downmix the stereo one (mean of L and R)."""
    x, y = as_2d(x), as_2d(y)
    if x.shape[1] != y.shape[1]:
        if x.shape[1] == 2:
            x = x.mean(axis=1, keepdims=True)
        if y.shape[1] == 2:
            y = y.mean(axis=1, keepdims=True)
    return x, y


# --- loudness and peaks ----------------------------------------------------------------------------


def integrated_lufs(x: np.ndarray, sample_rate_hz: int) -> float:
    """BS.1770-4 integrated loudness (pyloudnorm), LUFS; -inf for silence."""
    x = as_2d(x)
    return float(pyloudnorm.Meter(sample_rate_hz).integrated_loudness(x if x.shape[1] > 1 else x[:, 0]))


def true_peak_dbtp(x: np.ndarray) -> float:
    """True peak, dBTP: max |x| after 4x polyphase oversampling (scipy resample_poly, Kaiser FIR)."""
    x = as_2d(x)
    up = signal.resample_poly(x, 4, 1, axis=0)
    peak = max(float(np.max(np.abs(up))), float(np.max(np.abs(x))))
    return 20.0 * math.log10(max(peak, 1e-12))


# --- alignment ------------------------------------------------------------------------------------


def estimate_lag_frames(x: np.ndarray, ref: np.ndarray, max_lag_frames: int) -> int:
    """Lag L (frames) such that x[n + L] best matches ref[n], searched in +-max_lag_frames."""
    a = as_2d(x).mean(axis=1)
    b = as_2d(ref).mean(axis=1)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    corr = signal.correlate(a, b, mode="full", method="fft")
    mid = n - 1
    lo, hi = max(0, mid - max_lag_frames), min(len(corr), mid + max_lag_frames + 1)
    return int(np.argmax(corr[lo:hi]) + lo - mid)


def align_to(x: np.ndarray, truth: np.ndarray, sample_rate_hz: int, *, max_lag_ms: float = 50.0
             ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Align ``x`` to ``truth``: same channel layout, time shift by cross-correlation, same length,
    then one gain so both have the same integrated loudness. Returns (x', truth', info)."""
    x, truth = match_channels(x, truth)
    lag = estimate_lag_frames(x, truth, int(max_lag_ms * 1e-3 * sample_rate_hz))
    if lag > 0:
        x = x[lag:]
    elif lag < 0:
        truth = truth[-lag:]
    n = min(len(x), len(truth))
    x, truth = x[:n], truth[:n]
    lx, lt = integrated_lufs(x, sample_rate_hz), integrated_lufs(truth, sample_rate_hz)
    gain_db = (lt - lx) if math.isfinite(lx) and math.isfinite(lt) else 0.0
    return x * 10.0 ** (gain_db / 20.0), truth, {"lag_frames": lag, "align_gain_db": gain_db}


# --- spectral distances -----------------------------------------------------------------------------


def _stft_mag(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT| per channel, Hann window; returns (channels, frames, bins)."""
    x = as_2d(x)
    win = signal.get_window("hann", n_fft)
    pad = np.pad(x, ((n_fft // 2, n_fft // 2), (0, 0)), mode="reflect")
    n_frames = 1 + (pad.shape[0] - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(pad, n_fft, axis=0)[::hop][:n_frames]
    # frames: (n_frames, channels, n_fft)
    spec = sp_fft.rfft(frames * win, axis=-1)
    return np.abs(spec).transpose(1, 0, 2)


def mrstft_distance(x: np.ndarray, y: np.ndarray, *, fft_sizes: tuple[int, ...] = (512, 1024, 2048)) -> float:
    """Multi-resolution STFT distance (lower is better): mean over FFT sizes (hop = n/4, Hann) of
    spectral convergence ||Y-X||_F / ||Y||_F plus log-magnitude L1 mean |log Y - log X|; channels
    averaged. ``y`` is the truth."""
    x, y = match_channels(x, y)
    n = min(len(x), len(y))
    total = 0.0
    for n_fft in fft_sizes:
        X = _stft_mag(x[:n], n_fft, n_fft // 4)
        Y = _stft_mag(y[:n], n_fft, n_fft // 4)
        sc = np.linalg.norm(Y - X, axis=(1, 2)) / (np.linalg.norm(Y, axis=(1, 2)) + EPS)
        logmag = np.mean(np.abs(np.log(Y + 1e-5) - np.log(X + 1e-5)), axis=(1, 2))
        total += float(np.mean(sc + logmag))
    return total / len(fft_sizes)


def mel_filterbank(sample_rate_hz: int, n_fft: int, n_mels: int = 128, fmin_hz: float = 20.0,
                   fmax_hz: float | None = None) -> np.ndarray:
    """Triangular filters on the HTK mel scale, (n_mels, n_fft//2+1), each with unit area in Hz
    (Slaney-style normalisation)."""
    fmax_hz = fmax_hz or sample_rate_hz / 2.0

    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(hz_to_mel(fmin_hz), hz_to_mel(fmax_hz), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate_hz)
    lower = (freqs[None, :] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    upper = (edges[2:, None] - freqs[None, :]) / (edges[2:, None] - edges[1:-1, None])
    fb = np.maximum(0.0, np.minimum(lower, upper))
    fb *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return fb


def mel_distance_db(x: np.ndarray, y: np.ndarray, sample_rate_hz: int, *, n_fft: int = 2048, hop: int = 512,
                    n_mels: int = 128, range_db: float = 80.0) -> float:
    """Mean absolute difference (dB) of 128-band mel power spectrograms (Hann 2048 / hop 512), each
    floored at (truth's max - range_db) so near-silent cells do not dominate; channels averaged.
    ``y`` is the truth."""
    x, y = match_channels(x, y)
    n = min(len(x), len(y))
    fb = mel_filterbank(sample_rate_hz, n_fft, n_mels)
    X = (_stft_mag(x[:n], n_fft, hop) ** 2) @ fb.T
    Y = (_stft_mag(y[:n], n_fft, hop) ** 2) @ fb.T
    Xdb, Ydb = 10.0 * np.log10(X + 1e-20), 10.0 * np.log10(Y + 1e-20)
    floor = Ydb.max() - range_db
    return float(np.mean(np.abs(np.maximum(Xdb, floor) - np.maximum(Ydb, floor))))


# --- long-term statistics -------------------------------------------------------------------------

#: nominal 1/3-octave centres 31.5 Hz .. 16 kHz (IEC 61260), 28 bands
THIRD_OCTAVE_CENTRES_HZ = np.array([31.5, 40, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800,
                                    1000, 1250, 1600, 2000, 2500, 3150, 4000, 5000, 6300, 8000, 10000,
                                    12500, 16000], dtype=np.float64)


def third_octave_spectrum_db(x: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Long-term power per 1/3-octave band (dB) of the channel-summed power (Welch, 16384-point Hann),
    bands 31.5 Hz..16 kHz (exact base-2 edges around the nominal centres)."""
    x = as_2d(x)
    nper = min(16384, len(x))
    f, p = signal.welch(x, fs=sample_rate_hz, nperseg=nper, axis=0)
    p = p.sum(axis=1)
    exact = 1000.0 * 2.0 ** (np.round(3 * np.log2(THIRD_OCTAVE_CENTRES_HZ / 1000.0)) / 3.0)
    lo, hi = exact * 2 ** (-1 / 6), exact * 2 ** (1 / 6)
    df = f[1] - f[0]
    out = np.empty(len(exact))
    for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
        sel = (f >= a) & (f < b)
        power = p[sel].sum() * df if sel.any() else np.interp((a + b) / 2, f, p) * (b - a)
        out[i] = 10.0 * np.log10(power + 1e-30)
    return out


def third_octave_difference_db(x: np.ndarray, y: np.ndarray, sample_rate_hz: int, *, floor_db: float = 60.0
                               ) -> float:
    """Mean |difference| (dB) of level-normalised 1/3-octave long-term spectra (31.5 Hz..16 kHz).

    Each spectrum is normalised by its total power over the bands, and bands more than ``floor_db``
    below the loudest band are raised to that floor (a band with nothing in it, such as 16 kHz in
    22 kHz-sampled speech, would otherwise count for hundreds of dB)."""
    out = []
    for z in (x, y):
        s = third_octave_spectrum_db(z, sample_rate_hz)
        s = np.maximum(s, s.max() - floor_db)
        out.append(s - 10.0 * np.log10(np.sum(10.0 ** (s / 10.0))))
    return float(np.mean(np.abs(out[0] - out[1])))


def side_to_mid_db(x: np.ndarray) -> float | None:
    """Stereo width as side/mid energy ratio (dB, floored at -60); None for mono. Each channel's mean is
    removed first: a DC offset (the decoded Singularity tracks carry up to -17 dBFS of it) is no stereo
    image, and its mid energy would otherwise outweigh the music's."""
    x = as_2d(x)
    if x.shape[1] != 2:
        return None
    x = x - x.mean(axis=0, dtype=np.float64)
    mid = 0.5 * (x[:, 0] + x[:, 1])
    side = 0.5 * (x[:, 0] - x[:, 1])
    return max(-60.0, 10.0 * math.log10((np.sum(side**2) + 1e-20) / (np.sum(mid**2) + 1e-20)))


def width_difference_db(x: np.ndarray, y: np.ndarray) -> float | None:
    """|side/mid(x) - side/mid(y)| in dB; None if either is mono."""
    a, b = side_to_mid_db(x), side_to_mid_db(y)
    if a is None or b is None:
        return None
    return abs(a - b)
