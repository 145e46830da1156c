"""Quality metrics of a match.

Signal distances (aligned signals, for the bench and tests):

* :func:`mrstft_distance`: multi-resolution STFT distance as in auraloss / DeepAFx-ST, averaged over
  FFT sizes 512, 1024 and 2048 (Hann, hop = size / 4) of spectral convergence
  ``||Y| - |X||_F / ||Y|_F`` plus the mean absolute difference of natural-log magnitudes
  (``eps = 1e-7``); channels are treated as separate signals.
* :func:`mel_distance_db`: mean absolute difference (dB) of 128-band log-mel power spectrograms
  (2048 / 512, 20 Hz .. min(20 kHz, fs / 2), floor -100 dB).

Statistics distances (:func:`result_metrics`): the result and the reference hold different music,
so their frames cannot be compared; the distances compare long-term statistics from the features
documents instead:

* ``stft_dist``: the MR-STFT formula applied to the long-term mean magnitude spectra
  (``stft.mag_db_mean``, 20 Hz .. 16 kHz, reference interpolated onto the result's frequencies):
  spectral convergence + mean |ln magnitude difference|;
* ``mel_dist``: mean |difference| (dB) of the long-term mel spectra (``mel.mean_db``);
* both floor the two spectra at the reference's maximum - :data:`STATS_RANGE_DB` (80 dB);
* ``lufs_err``: |result integrated loudness - target| (LU), the target being ``target_lufs`` when
  given, else the render's ``style_params.lufs.target_db``, else the reference's loudness;
* ``tp_db``: the result's true peak (dBTP; the render report's measurement when present), with
  ``tp_over_db`` = how far it exceeds ``ceiling_dbtp`` (0 when at or below);
* ``artifacts_rate``: share of frames where the limiter bit hard or the output clipped (render report).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.fft

from engine.analysis import spectrum
from engine.errors import TonematchError
from engine.viz import nested as _get

MRSTFT_SIZES = (512, 1024, 2048)
_EPS = 1e-7
#: the statistics distances floor both spectra this far (dB) below the reference's loudest point, so
#: bands with no content (the empty top octaves of a band-limited recording: -150 dB in a float file,
#: -100 dB of quantisation noise in a 16-bit one) count as equal instead of dominating the mean
STATS_RANGE_DB = 80.0


def _as_channels(x: np.ndarray) -> np.ndarray:
    """``(channels, frames)`` float32 view of a 1-D or ``(frames, channels)`` array."""
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 1:
        return a[None, :]
    if a.ndim != 2:
        raise TonematchError(f"audio shaped {a.shape}, expected (frames, channels)", where="audio")
    return np.ascontiguousarray(a.T)


def _aligned(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_channels(x), _as_channels(y)
    if a.shape[0] != b.shape[0]:
        raise TonematchError(f"channel counts differ ({a.shape[0]} vs {b.shape[0]})", where="audio")
    n = min(a.shape[1], b.shape[1])
    if n == 0:
        raise TonematchError("empty audio", where="audio")
    return a[:, :n], b[:, :n]


def _stft_mag(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT| (channels, frames, bins) with a periodic Hann window; the signal is zero-padded so
    every sample lies in a full frame."""
    pad = np.pad(x, ((0, 0), (n_fft // 2, n_fft // 2 + (-x.shape[1]) % hop)))
    frames = np.lib.stride_tricks.sliding_window_view(pad, n_fft, axis=1)[:, ::hop]
    win = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    return np.abs(scipy.fft.rfft(frames * win, axis=2))


def mrstft_distance(x: np.ndarray, y: np.ndarray, sample_rate_hz: float | None = None) -> float:
    """Multi-resolution STFT distance of ``x`` (estimate) to ``y`` (reference), see module doc.
    0 for identical signals; ``sample_rate_hz`` is accepted for symmetry and not needed."""
    a, b = _aligned(x, y)
    total = 0.0
    for n_fft in MRSTFT_SIZES:
        mx, my = _stft_mag(a, n_fft, n_fft // 4), _stft_mag(b, n_fft, n_fft // 4)
        num = float(np.linalg.norm((my - mx).ravel()))
        den = float(np.linalg.norm(my.ravel()))
        sc = num / den if den > 0 else (0.0 if num == 0 else 1.0)
        logmag = float(np.mean(np.abs(np.log(my + _EPS) - np.log(mx + _EPS))))
        total += sc + logmag
    return total / len(MRSTFT_SIZES)


def mel_distance_db(x: np.ndarray, y: np.ndarray, sample_rate_hz: float) -> float:
    """Mean absolute difference (dB) of the log-mel spectrograms of ``x`` and ``y``."""
    a, b = _aligned(x, y)
    n_fft, hop = 2048, 512
    mel_w, _ = spectrum.mel_matrix(128, 20.0, min(20000.0, sample_rate_hz / 2.0), n_fft // 2 + 1,
                                   sample_rate_hz / n_fft)
    w = mel_w.T.astype(np.float32)
    px, py = _stft_mag(a, n_fft, hop) ** 2, _stft_mag(b, n_fft, hop) ** 2
    dx = spectrum.power_db(px @ w, -100.0)
    dy = spectrum.power_db(py @ w, -100.0)
    return float(np.mean(np.abs(dx - dy)))


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(float(v)) else None


def _series(doc: dict, section: str, freq_key: str, value_key: str) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(_get(doc, section, freq_key) or [], dtype=np.float64)
    v = np.asarray(_get(doc, section, value_key) or [], dtype=np.float64)
    if f.size == 0 or f.size != v.size:
        raise TonematchError(f"features document lacks {section}.{value_key}", where=f"{section}.{value_key}")
    return f, v


def long_term_stft_distance(result_features: dict, reference_features: dict,
                            fmin_hz: float = 20.0, fmax_hz: float = 16000.0) -> float:
    """``stft_dist`` of :func:`result_metrics` (spectral convergence + mean |ln ratio| of the
    long-term mean magnitude spectra)."""
    fr, vr = _series(result_features, "stft", "freqs_hz", "mag_db_mean")
    fo, vo = _series(reference_features, "stft", "freqs_hz", "mag_db_mean")
    top = min(fmax_hz, fr[-1], fo[-1])
    sel = (fr >= fmin_hz) & (fr <= top)
    if not sel.any():
        raise TonematchError("no common frequency range between the documents", where="stft.freqs_hz")
    ref_db = np.interp(np.log(fr[sel]), np.log(fo), vo)
    floor_db = float(np.max(ref_db)) - STATS_RANGE_DB
    res_db, ref_db = np.maximum(vr[sel], floor_db), np.maximum(ref_db, floor_db)
    mr, mo = 10.0 ** (res_db / 20.0), 10.0 ** (ref_db / 20.0)
    sc = float(np.linalg.norm(mo - mr) / max(np.linalg.norm(mo), 1e-30))
    logmag = float(np.mean(np.abs(np.log(mo + _EPS) - np.log(mr + _EPS))))
    return sc + logmag


def long_term_mel_distance_db(result_features: dict, reference_features: dict) -> float:
    """``mel_dist`` of :func:`result_metrics`: mean |difference| (dB) of the long-term mel spectra,
    the reference interpolated onto the result's band centres when the ranges differ, both floored
    :data:`STATS_RANGE_DB` below the reference's maximum."""
    def centres(doc: dict) -> np.ndarray:
        n = int(_get(doc, "mel", "n_mels") or 0)
        lo, hi = _num(_get(doc, "mel", "fmin_hz")), _num(_get(doc, "mel", "fmax_hz"))
        if not n or lo is None or hi is None:
            raise TonematchError("features document lacks mel.n_mels/fmin_hz/fmax_hz", where="mel")
        return spectrum.mel_to_hz(np.linspace(spectrum.hz_to_mel(lo), spectrum.hz_to_mel(hi), n + 2)[1:-1])

    cr, co = centres(result_features), centres(reference_features)
    vr = np.asarray(_get(result_features, "mel", "mean_db"), dtype=np.float64)
    vo = np.asarray(_get(reference_features, "mel", "mean_db"), dtype=np.float64)
    if vr.size != cr.size or vo.size != co.size:
        raise TonematchError("mel.mean_db does not match mel.n_mels", where="mel.mean_db")
    sel = cr <= co[-1] * 1.0001
    ref_db = np.interp(np.log(cr[sel]), np.log(co), vo)
    floor_db = float(np.max(ref_db)) - STATS_RANGE_DB
    return float(np.mean(np.abs(np.maximum(vr[sel], floor_db) - np.maximum(ref_db, floor_db))))


def result_metrics(result_features: dict, reference_features: dict, *, ceiling_dbtp: float,
                   render_report: dict | None, target_lufs: float | None = None) -> dict[str, Any]:
    """``{stft_dist, mel_dist, lufs_err, tp_db, tp_over_db, artifacts_rate, result_lufs, target_lufs}``
    of a rendered result (definitions in the module docstring; None where not measurable)."""
    report = render_report or {}
    result_lufs = _num(_get(result_features, "loudness", "integrated_lufs"))
    target = _num(target_lufs)
    if target is None:
        target = _num(_get(report, "style_params", "lufs", "target_db"))
    if target is None:
        target = _num(_get(reference_features, "loudness", "integrated_lufs"))
    tp = _num(report.get("true_peak_dbtp"))
    if tp is None:
        tp = _num(result_features.get("true_peak_dbtp"))
    artifacts = _num(report.get("artifacts_rate"))
    return {
        "stft_dist": round(long_term_stft_distance(result_features, reference_features), 5),
        "mel_dist": round(long_term_mel_distance_db(result_features, reference_features), 4),
        "lufs_err": None if result_lufs is None or target is None else round(abs(result_lufs - target), 4),
        "tp_db": None if tp is None else round(tp, 3),
        "tp_over_db": None if tp is None else round(max(0.0, tp - float(ceiling_dbtp)), 3),
        "artifacts_rate": None if artifacts is None else round(artifacts, 6),
        "result_lufs": None if result_lufs is None else round(result_lufs, 3),
        "target_lufs": None if target is None else round(target, 3),
    }
