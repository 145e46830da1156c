"""Estimate readable style_params that make the target sound like the reference (mode A), from the
two feature documents of :func:`engine.features.analyze_features`.

EQ (at most 8 bands a person can read): the difference of the long-term mid spectra (reference minus
target, per 1/12 octave, smoothed over 1/3 octave) is level-normalised (its energy-weighted mean over
the fit range is removed: loudness is the gain stage's job) and fitted over 30 Hz .. 16 kHz,
weighted by where the target has energy. Where the target holds no content (digital silence, or a
steady noise floor far under its music: :func:`target_floor_mask`) the difference asks for no boost
(it is held at or under 0 dB there: a boost would raise only hiss, or nothing; a cut stays):

1. greedy placement: a low shelf and a high shelf for the ends, then peaking bands at the largest
   remaining deviations (Q from the width of the bump), until the residual is small or 8 bands;
2. joint refinement of all frequencies, Qs and gains with ``scipy.optimize.least_squares`` in the
   log-frequency domain, bounded to Q 0.3..4 and |gain| <= 12 dB, with a light penalty on gains so
   bands do not fight each other;
3. tidy-up: bands within 1/3 octave of each other are merged, bands under 0.3 dB dropped, values
   rounded (1 Hz / 0.01 Q / 0.1 dB) and sorted by frequency.

Width: sets the output's side-to-mid energy ratio over 20 Hz..16 kHz to the reference's. The EQ acts on
mid and side alike but moves energy between frequencies whose ratios differ, so the target's ratio is
taken after the fitted EQ: ``width = 10^((ratio_reference_db - ratio_target_after_eq_db) / 20)``,
limited to 0.5..1.5; a mono reference (or one stored as two equal channels) leaves it at 1.
Loudness: ``lufs.target_db`` = the reference's integrated loudness unless ``opts.target_lufs``.
Limiter: ``tp_db = opts.ceiling_dbtp`` (-1 dBTP).
``opts.intensity`` (0..1) scales EQ gains and ``width - 1`` toward neutral. Mode "B" adds the
mode-B blocks through :func:`engine.invert_mode_b.invert_mode_b`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from engine.analysis.noise import NOISE_SPECTRAL_STD_DB, spectral_fluctuation_db, stft_statistics
from engine.errors import ParamsError
from engine.options import validate_options
from engine.params import LIMITER_DEFAULTS, RANGES, validate_style_params, with_note
from engine.processors.eq import eq_sos

FIT_LO_HZ = 30.0
FIT_HI_HZ = 16000.0
MAX_BANDS = 8
#: a target whose channel mean is above this (0.3 % of full scale) gets a 10 Hz high-pass: a DC offset
#: is inaudible but counts in every sample peak, so the limiter would spend the headroom on it.
DC_OFFSET_LIMIT_DBFS = -50.0
DC_OFFSET_BELOW_PEAK_DB = 40.0  # an offset 1 % of the peak: about 0.1 dB of the limiter's headroom
#: a reference shorter than this (seconds) is matched, with a note that it is a thin description
SHORT_REFERENCE_S = 10.0
DC_HIGH_PASS = {"type": "high_pass", "f_hz": 10.0, "q": 0.71, "gain_db": 0.0}
MAX_GAIN_DB = 12.0
Q_RANGE = (0.3, 4.0)
MIN_GAIN_DB = 0.3
MERGE_OCTAVES = 1.0 / 3.0
SMOOTH_OCTAVES = 1.0 / 3.0
STOP_RESIDUAL_DB = 0.4
LOW_SHELF_HZ = 120.0
HIGH_SHELF_HZ = 7000.0
WIDTH_BAND_HZ = (20.0, 16000.0)
_FLOOR_DB = -140.0
#: a target's STFT point (features ``stft``) reads as its noise floor, not content, when its level varies
#: from frame to frame by less than this (std, dB: random noise reads 2.8-3.0 dB, music 5-11; the
#: stationarity threshold of engine.analysis.noise) and lies at least NOISE_FLOOR_BELOW_PEAK_DB under the
#: target's loudest point
NOISE_FLOOR_STD_DB = NOISE_SPECTRAL_STD_DB
NOISE_FLOOR_BELOW_PEAK_DB = 50.0
_FIT_RATE_HZ = 48000.0  # responses are fitted as at 48 kHz (the shape below 16 kHz barely depends on it)


def _spectrum(features: dict[str, Any], which: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        spec = features["spectrum"]
        f = np.asarray(spec["freqs_hz"], dtype=np.float64)
        mid = np.asarray(spec["mid_db"], dtype=np.float64)
        side = np.asarray(spec.get("side_db") or [-150.0] * f.size, dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise ParamsError(f"features have no usable spectrum ({exc})", where=f"{which}.spectrum") from None
    if f.size < 8 or mid.shape != f.shape or side.shape != f.shape or not np.all(np.isfinite(mid)):
        raise ParamsError("spectrum arrays are malformed", where=f"{which}.spectrum")
    return f, mid, side


def _on_grid(f_src: np.ndarray, values: np.ndarray, f_dst: np.ndarray) -> np.ndarray:
    return np.interp(np.log(f_dst), np.log(f_src), values)


def _smooth(values: np.ndarray, f: np.ndarray, octaves: float) -> np.ndarray:
    """Moving average over ``octaves`` on a log-frequency grid (edge values held)."""
    logf = np.log2(f)
    step = float(np.median(np.diff(logf))) if f.size > 1 else 1.0
    half = max(0, round(octaves / step / 2))
    if half == 0:
        return values.copy()
    padded = np.concatenate([np.full(half, values[0]), values, np.full(half, values[-1])])
    kernel = np.ones(2 * half + 1) / (2 * half + 1)
    return np.convolve(padded, kernel, mode="valid")


_GRID_CACHE: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}


def _band_response(bands: list[dict[str, Any]], f: np.ndarray) -> np.ndarray:
    """Summed dB response of ``bands`` at ``f`` (vectorised over bands; the fit calls it thousands of
    times). Same values as :func:`engine.processors.eq.eq_response_db` at the fit rate."""
    if not bands:
        return np.zeros_like(f)
    key = f.tobytes()
    grid = _GRID_CACHE.get(key)
    if grid is None:
        w = 2.0 * np.pi * f / _FIT_RATE_HZ
        grid = _GRID_CACHE[key] = (np.cos(w), np.sin(w), np.cos(2 * w), np.sin(2 * w))
        if len(_GRID_CACHE) > 16:
            _GRID_CACHE.pop(next(iter(_GRID_CACHE)))
    cw, sw, c2w, s2w = grid
    sos = eq_sos(bands, _FIT_RATE_HZ)
    b0, b1, b2, a0, a1, a2 = (sos[:, i:i + 1] for i in range(6))
    # |b0 + b1 e^-jw + b2 e^-2jw|^2 over |a0 + a1 e^-jw + a2 e^-2jw|^2, per band
    num = (b0 + b1 * cw + b2 * c2w) ** 2 + (b1 * sw + b2 * s2w) ** 2
    den = (a0 + a1 * cw + a2 * c2w) ** 2 + (a1 * sw + a2 * s2w) ** 2
    return 10.0 * np.log10(np.maximum(num, 1e-300) / den).sum(axis=0)


def _q_from_width(f: np.ndarray, resid: np.ndarray, i: int) -> float:
    """Q of a peaking band matching the half-height width of the bump of ``resid`` at index ``i``."""
    peak = resid[i]
    half = 0.5 * peak
    lo = i
    while lo > 0 and abs(resid[lo - 1]) > abs(half) and np.sign(resid[lo - 1]) == np.sign(peak):
        lo -= 1
    hi = i
    while hi < f.size - 1 and abs(resid[hi + 1]) > abs(half) and np.sign(resid[hi + 1]) == np.sign(peak):
        hi += 1
    bw_oct = max(1.0 / 6.0, math.log2(f[hi] / f[lo]) if hi > lo else 1.0 / 6.0)
    q = math.sqrt(2.0 ** bw_oct) / (2.0 ** bw_oct - 1.0)
    return float(np.clip(q, *Q_RANGE))


def _pack(bands: list[dict[str, Any]]) -> np.ndarray:
    out = []
    for b in bands:
        out += [math.log(b["f_hz"]), math.log(b["q"]), b["gain_db"]]
    return np.array(out)


def _unpack(theta: np.ndarray, kinds: list[str]) -> list[dict[str, Any]]:
    return [{"type": k, "f_hz": float(math.exp(theta[3 * i])), "q": float(math.exp(theta[3 * i + 1])),
             "gain_db": float(theta[3 * i + 2])} for i, k in enumerate(kinds)]


_KIND_CODE = {"peaking": 0, "low_shelf": 1, "high_shelf": 2, "high_pass": 3, "low_pass": 4}


def _batch_response(theta: np.ndarray, codes: np.ndarray, grid: tuple[np.ndarray, ...]) -> np.ndarray:
    """dB response for a batch of parameter vectors ``theta`` ``(P, 3 n)`` (log f, log q, gain per
    band) -> ``(P, F)``: the RBJ formulas of :mod:`engine.processors.eq`, vectorised over the batch."""
    cw_f, sw_f, c2w_f, s2w_f = grid
    lf, lq, g = theta[:, 0::3], theta[:, 1::3], theta[:, 2::3]
    w0 = 2.0 * np.pi * np.exp(lf) / _FIT_RATE_HZ
    c, sn = np.cos(w0), np.sin(w0)
    alpha = sn / (2.0 * np.exp(lq))
    A = 10.0 ** (g / 40.0)
    sa = 2.0 * np.sqrt(A) * alpha

    def kind_coeffs(code: int, sel: np.ndarray) -> tuple[np.ndarray, ...]:
        """(b0, b1, b2, a0, a1, a2) of the bands ``sel``, all of kind ``code``."""
        cs, al, a_, s_a = c[:, sel], alpha[:, sel], A[:, sel], sa[:, sel]
        if code == 0:
            return (1 + al * a_, -2 * cs, 1 - al * a_, 1 + al / a_, -2 * cs, 1 - al / a_)
        if code == 1:
            return (a_ * ((a_ + 1) - (a_ - 1) * cs + s_a), 2 * a_ * ((a_ - 1) - (a_ + 1) * cs),
                    a_ * ((a_ + 1) - (a_ - 1) * cs - s_a), (a_ + 1) + (a_ - 1) * cs + s_a,
                    -2 * ((a_ - 1) + (a_ + 1) * cs), (a_ + 1) + (a_ - 1) * cs - s_a)
        if code == 2:
            return (a_ * ((a_ + 1) + (a_ - 1) * cs + s_a), -2 * a_ * ((a_ - 1) + (a_ + 1) * cs),
                    a_ * ((a_ + 1) + (a_ - 1) * cs - s_a), (a_ + 1) - (a_ - 1) * cs + s_a,
                    2 * ((a_ - 1) - (a_ + 1) * cs), (a_ + 1) - (a_ - 1) * cs - s_a)
        if code == 3:
            return ((1 + cs) / 2, -(1 + cs), (1 + cs) / 2, 1 + al, -2 * cs, 1 - al)
        return ((1 - cs) / 2, 1 - cs, (1 - cs) / 2, 1 + al, -2 * cs, 1 - al)

    parts = [np.empty_like(c) for _ in range(6)]
    for code in np.unique(codes):  # only the kinds present (all five formulas cost 5x the work)
        sel = codes == code
        for v, vals in zip(parts, kind_coeffs(int(code), sel), strict=True):
            v[:, sel] = vals
    parts = [v[:, :, None] for v in parts]
    b0, b1, b2, a0, a1, a2 = parts
    num = (b0 + b1 * cw_f + b2 * c2w_f) ** 2 + (b1 * sw_f + b2 * s2w_f) ** 2
    den = (a0 + a1 * cw_f + a2 * c2w_f) ** 2 + (a1 * sw_f + a2 * s2w_f) ** 2
    return 10.0 * np.log10(np.maximum(num, 1e-300) / den).sum(axis=1)


def _refine(bands: list[dict[str, Any]], f: np.ndarray, target: np.ndarray,
            w: np.ndarray, max_nfev: int = 40) -> list[dict[str, Any]]:
    """Joint least-squares refinement of every band's log f, log Q and gain (bounded), with a
    finite-difference Jacobian computed as one vectorised batch."""
    if not bands:
        return bands
    kinds = [b["type"] for b in bands]
    codes = np.array([_KIND_CODE[k] for k in kinds])
    lo, hi = [], []
    for k in kinds:
        f_lo, f_hi = FIT_LO_HZ, FIT_HI_HZ
        if k == "low_shelf":
            f_hi = 1000.0
        elif k == "high_shelf":
            f_lo = 1000.0
        lo += [math.log(f_lo), math.log(Q_RANGE[0]), -MAX_GAIN_DB]
        hi += [math.log(f_hi), math.log(1.0 if "shelf" in k else Q_RANGE[1]), MAX_GAIN_DB]
    theta0 = np.clip(_pack(bands), np.array(lo) + 1e-9, np.array(hi) - 1e-9)
    sw = np.sqrt(w)
    lam = 0.08
    wgrid = 2.0 * np.pi * f / _FIT_RATE_HZ
    grid = (np.cos(wgrid), np.sin(wgrid), np.cos(2 * wgrid), np.sin(2 * wgrid))
    n = theta0.size
    step = 1e-6

    def resid(theta: np.ndarray) -> np.ndarray:
        r = sw * (_batch_response(theta[None, :], codes, grid)[0] - target)
        return np.concatenate([r, lam * theta[2::3]])

    def jac(theta: np.ndarray) -> np.ndarray:
        batch = np.repeat(theta[None, :], n + 1, axis=0)
        batch[1:] += step * np.eye(n)
        resp = _batch_response(batch, codes, grid)
        j = np.zeros((f.size + n // 3, n))
        j[: f.size] = (sw[:, None] * (resp[1:] - resp[0]).T) / step
        j[f.size + np.arange(n // 3), 2 + 3 * np.arange(n // 3)] = lam
        return j

    sol = least_squares(resid, theta0, jac=jac, bounds=(lo, hi), method="trf", x_scale="jac",
                        max_nfev=max_nfev, ftol=1e-6, xtol=1e-6, gtol=1e-6)
    return _unpack(sol.x, kinds)


def _merge(bands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Peaking bands closer than 1/3 octave become one (gain-weighted centre, summed gain): two
    close bands, let alone two fighting ones, are hard to read and the refit absorbs the rest."""
    peaks = sorted((b for b in bands if b["type"] == "peaking"), key=lambda b: b["f_hz"])
    merged: list[dict[str, Any]] = []
    for b in peaks:
        if merged and abs(math.log2(b["f_hz"] / merged[-1]["f_hz"])) < MERGE_OCTAVES:
            a = merged[-1]
            ga, gb = abs(a["gain_db"]), abs(b["gain_db"])
            f_hz = math.exp((math.log(a["f_hz"]) * ga + math.log(b["f_hz"]) * gb) / max(1e-9, ga + gb))
            merged[-1] = {"type": "peaking", "f_hz": f_hz, "q": min(a["q"], b["q"]),
                          "gain_db": float(np.clip(a["gain_db"] + b["gain_db"], -MAX_GAIN_DB, MAX_GAIN_DB))}
        else:
            merged.append(dict(b))
    return [b for b in bands if b["type"] != "peaking"] + merged


def fit_eq(freqs_hz: np.ndarray, target_db: np.ndarray, weights: np.ndarray,
           max_bands: int = MAX_BANDS) -> list[dict[str, Any]]:
    """At most ``max_bands`` RBJ bands (shelves + peaking) whose response fits ``target_db`` (weighted
    least squares over ``freqs_hz``)."""
    f, d, w = np.asarray(freqs_hz, float), np.asarray(target_db, float), np.asarray(weights, float)
    bands: list[dict[str, Any]] = []
    low = f < LOW_SHELF_HZ
    high = f > HIGH_SHELF_HZ
    for kind, sel, f0 in (("low_shelf", low, LOW_SHELF_HZ), ("high_shelf", high, HIGH_SHELF_HZ)):
        if sel.any():
            g = float(np.average(d[sel], weights=w[sel]))
            if abs(g) > MIN_GAIN_DB:
                bands.append({"type": kind, "f_hz": f0, "q": 0.707,
                              "gain_db": float(np.clip(g, -MAX_GAIN_DB, MAX_GAIN_DB))})
    bands = _refine(bands, f, d, w)
    while len(bands) < max_bands:
        resid = d - _band_response(bands, f)
        score = np.abs(resid) * np.sqrt(w / w.max())
        for b in bands:
            if b["type"] == "peaking":
                score[np.abs(np.log2(f / b["f_hz"])) < MERGE_OCTAVES] = 0.0
        i = int(np.argmax(score))
        if score[i] < STOP_RESIDUAL_DB:
            break
        bands.append({"type": "peaking", "f_hz": float(f[i]), "q": _q_from_width(f, resid, i),
                      "gain_db": float(np.clip(resid[i], -MAX_GAIN_DB, MAX_GAIN_DB))})
        bands = _refine(bands, f, d, w)
    bands = _refine(_merge(bands), f, d, w, max_nfev=200)
    # the final refinement may pull two peaking bands together again (8337 and 8340 Hz, both +12 dB,
    # on a harmonic tone): merge and refit until no two are closer than MERGE_OCTAVES
    for _ in range(2):
        merged = _merge(bands)
        if len(merged) == len(bands):
            break
        bands = _refine(merged, f, d, w, max_nfev=200)
    bands = [b for b in _merge(bands) if abs(b["gain_db"]) >= MIN_GAIN_DB]  # (a no-op but in rare cases)
    out = []
    for b in sorted(bands, key=lambda b: b["f_hz"]):
        out.append({"type": b["type"], "f_hz": float(round(b["f_hz"])), "q": round(b["q"], 2),
                    "gain_db": round(b["gain_db"], 1)})
    return out


def spectral_difference(reference_features: dict[str, Any], target_features: dict[str, Any]
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(freqs_hz, difference_db, weights)`` over the fit range: smoothed, level-normalised
    reference-minus-target mid spectrum and the energy weights used to fit it."""
    f_t, mid_t, _ = _spectrum(target_features, "target")
    f_r, mid_r, _ = _spectrum(reference_features, "reference")
    hi = min(FIT_HI_HZ, float(f_t[-1]), float(f_r[-1]))
    f = f_t[(f_t >= FIT_LO_HZ) & (f_t <= hi)]
    if f.size < 8:
        raise ParamsError("too few spectrum points in 30 Hz..16 kHz", where="target.spectrum")
    t = _on_grid(f_t, mid_t, f)
    r = _on_grid(f_r, mid_r, f)
    ts, rs = _smooth(t, f, SMOOTH_OCTAVES), _smooth(r, f, SMOOTH_OCTAVES)
    # energy weight: where the target (and reference) have content; 60 dB below the peak counts little
    rel_t = np.clip((ts - ts.max() + 60.0) / 60.0, 0.0, 1.0)
    rel_r = np.clip((rs - rs.max() + 60.0) / 60.0, 0.0, 1.0)
    w = 0.1 + 0.9 * np.minimum(rel_t, rel_r)
    w[(t <= _FLOOR_DB) | (r <= _FLOOR_DB)] = 1e-3
    empty = (t <= _FLOOR_DB) | target_floor_mask(target_features, f)
    d = rs - ts
    # the level is set where the target has content; where it has none, no boost (a cut stays)
    d = d - float(np.average(d, weights=np.where(empty, 0.0, w) if not empty.all() else w))
    d[empty] = np.minimum(d[empty], 0.0)
    return f, d, w


def target_floor_mask(target_features: dict[str, Any], freqs_hz: np.ndarray) -> np.ndarray:
    """Which of ``freqs_hz`` (Hz) hold only the target's noise floor: where its STFT points (features
    ``stft``, mid channel) vary from frame to frame by less than :data:`NOISE_FLOOR_STD_DB` (as random
    noise does) and lie :data:`NOISE_FLOOR_BELOW_PEAK_DB` (dB) or more under its loudest point, in a
    target that is not itself stationary (``spectral_fluctuation_db`` at or above that
    threshold: noise is the content when it is all there is). A cassette's hiss above its roll-off
    reads so. All False without STFT statistics."""
    f = np.asarray(freqs_hz, dtype=np.float64)
    none = np.zeros(f.shape, dtype=bool)
    stats = stft_statistics(target_features)
    fluct = spectral_fluctuation_db(target_features)
    if stats is None or fluct is None or fluct < NOISE_FLOOR_STD_DB:
        return none
    st_f, mean, std = stats
    floor = (std < NOISE_FLOOR_STD_DB) & (mean <= float(np.max(mean)) - NOISE_FLOOR_BELOW_PEAK_DB)
    # onto the fit grid: a grid point is floor where the STFT points around it are
    return np.interp(f, st_f, floor.astype(np.float64)) >= 0.5


def _width(reference_features: dict[str, Any], target_features: dict[str, Any],
           eq_bands: list[dict[str, Any]] | None = None) -> tuple[float, str]:
    if int(target_features.get("channels", 2)) < 2:
        return 1.0, "target is mono: width does not apply"
    if int(reference_features.get("channels", 2)) < 2:
        return 1.0, "reference is mono: width left unchanged"
    f_t, mid_t, side_t = _spectrum(target_features, "target")
    f_r, mid_r, side_r = _spectrum(reference_features, "reference")
    sel = (f_t >= WIDTH_BAND_HZ[0]) & (f_t <= min(WIDTH_BAND_HZ[1], f_r[-1]))
    f = f_t[sel]
    if f.size < 4:
        return 1.0, "no usable band for width"
    mt, st = mid_t[sel], side_t[sel]
    mr, sr = _on_grid(f_r, mid_r, f), _on_grid(f_r, side_r, f)
    if float(np.max(st - mt)) < -40.0:
        return 1.0, "target has (almost) no side signal: width cannot create one"
    if float(np.max(sr - mr)) < -40.0:  # a mono recording stored as two equal channels: as a mono file
        return 1.0, "reference has (almost) no side signal (mono in effect): width left unchanged"
    # energies per grid band (the spectra are mean power per bin; a 1/12-octave band spans ~f)
    bw_db = 10.0 * np.log10(f)
    eq_db = _band_response(eq_bands, f) if eq_bands else 0.0

    def energy(db: np.ndarray) -> float:
        return float(np.sum(10.0 ** ((np.maximum(db, _FLOOR_DB) + bw_db - 100.0) / 10.0)))

    # the EQ moves the target's energy between frequencies whose side/mid ratios differ, so the
    # ratio to correct is the one the output will have after the EQ
    ratio_t = 10 * math.log10(max(energy(st + eq_db), 1e-300) / max(energy(mt + eq_db), 1e-300))
    ratio_r = 10 * math.log10(max(energy(sr), 1e-300) / max(energy(mr), 1e-300))
    width = 10.0 ** ((ratio_r - ratio_t) / 20.0)
    note = f"side/mid {ratio_t:.1f} dB -> {ratio_r:.1f} dB"
    if not 0.5 <= width <= 1.5:
        note += f" (wanted width {width:.2f}; limited to 0.5..1.5)"
    return float(np.clip(width, 0.5, 1.5)), note


def dc_offset_matters(dc_offset_dbfs: float | None, sample_peak_dbfs: float | None = None) -> bool:
    """Whether a target's DC offset is worth a 10 Hz high-pass: above :data:`DC_OFFSET_LIMIT_DBFS`,
    or within :data:`DC_OFFSET_BELOW_PEAK_DB` of the target's sample peak. The second rule is for
    quiet targets: the make-up gain lifts the offset with the audio (music 32 dB down with its
    offset at -52 dBFS came out with the offset at -4 dBFS, eating the limiter's headroom)."""
    if dc_offset_dbfs is None:
        return False
    # at the features document's precision, so a file's raw levels (tonematch apply) and its
    # features (a service job) decide alike at -49.996 dBFS
    dc = round(float(dc_offset_dbfs), 2)
    if dc > DC_OFFSET_LIMIT_DBFS:
        return True
    return sample_peak_dbfs is not None and dc > round(float(sample_peak_dbfs), 2) - DC_OFFSET_BELOW_PEAK_DB


def with_dc_high_pass(style_params: dict[str, Any], dc_offset_dbfs: float | None,
                      sample_peak_dbfs: float | None = None) -> tuple[dict[str, Any], str | None]:
    """``style_params`` for a target carrying a DC offset of ``dc_offset_dbfs`` (features'
    ``dc_offset_dbfs``, and its ``sample_peak_dbfs``; see :func:`dc_offset_matters`): a preset
    re-applied to it gets mode A's 10 Hz high-pass first, unless its EQ already cuts below 20 Hz; with
    8 bands already there it cannot, and the note says so. Returns the (copied) params and a note
    (also appended to ``notes.eq``), or None when there is nothing to do."""
    if not dc_offset_matters(dc_offset_dbfs, sample_peak_dbfs):
        return style_params, None
    bands = list(style_params.get("eq") or [])
    if any(b["type"] == "high_pass" and float(b["f_hz"]) <= 20.0 for b in bands):
        return style_params, None
    if len(bands) >= MAX_BANDS:
        note = (f"the target's DC offset ({float(dc_offset_dbfs):.1f} dBFS) stays: the preset's EQ has "
                f"{MAX_BANDS} bands and no room for the 10 Hz high-pass that removes it (it takes the "
                "limiter's headroom)")
        kept = bands
    else:
        note = _dc_high_pass_note(float(dc_offset_dbfs))
        kept = [dict(DC_HIGH_PASS), *bands]
    return with_note({**style_params, "eq": kept}, "eq", note), note


def _dc_high_pass_note(dc_offset_dbfs: float) -> str:
    return (f"a 10 Hz high-pass removes the target's DC offset ({dc_offset_dbfs:.1f} dBFS), "
            "which would otherwise take the limiter's headroom")


def fit_eq_bands(reference_features: dict[str, Any], target_features: dict[str, Any],
                 intensity: float = 1.0) -> tuple[list[dict[str, Any]], str]:
    """The ``eq`` block and its note: at most :data:`MAX_BANDS` bands fitted to the spectral difference,
    gains scaled by ``intensity`` (0..1), and a 10 Hz high-pass first when the target carries a DC
    offset that matters (:func:`dc_offset_matters`; one of the bands). Mode B calls it again with the
    target's spectrum as its own processors will colour it."""
    f, d, w = spectral_difference(reference_features, target_features)
    dc = target_features.get("dc_offset_dbfs")  # absent in feature documents before it existed
    dc_dbfs = -150.0 if dc is None else float(dc)
    remove_dc = dc_offset_matters(dc, target_features.get("sample_peak_dbfs")) and intensity > 0
    bands = fit_eq(f, d, w, max_bands=MAX_BANDS - 1 if remove_dc else MAX_BANDS)
    for b in bands:
        b["gain_db"] = round(b["gain_db"] * intensity, 1)
    bands = [b for b in bands if b["type"] in ("high_pass", "low_pass") or abs(b["gain_db"]) >= 0.1]
    resid = d - _band_response([dict(b, gain_db=b["gain_db"] / intensity) for b in bands], f) \
        if intensity > 0 else d
    note = (f"{len(bands)} bands; weighted RMS residual "
            f"{math.sqrt(float(np.average(resid ** 2, weights=w))):.2f} dB")
    if remove_dc:
        bands = [dict(DC_HIGH_PASS), *bands]
        note += f"; {_dc_high_pass_note(dc_dbfs)}"
    return bands, note


def invert_params(reference_features: dict[str, Any], target_features: dict[str, Any], mode: str = "A",
                  opts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Valid style_params (validated) matching the target to the reference; see the module doc."""
    if mode not in ("A", "B"):
        raise ParamsError(f"unknown mode {mode!r}; use A or B", where="mode")
    o = validate_options(opts)
    exclude = set(o["exclude"])
    intensity = float(o["intensity"])
    params: dict[str, Any] = {}
    notes: dict[str, str] = {}
    if "eq" not in exclude:
        bands, notes["eq"] = fit_eq_bands(reference_features, target_features, intensity)
        params["eq"] = bands
    else:
        notes["eq"] = "off: excluded by the options"
    if "stereo" not in exclude:
        width, note = _width(reference_features, target_features, params.get("eq"))
        width = 1.0 + (width - 1.0) * intensity
        if int(target_features.get("channels", 2)) == 2:
            params["stereo"] = {"width": round(width, 3)}
        notes["stereo"] = note
    target_lufs = o["target_lufs"]
    if target_lufs is None:
        target_lufs = ((reference_features.get("loudness") or {}).get("integrated_lufs"))
        if target_lufs is None:
            raise ParamsError("the reference has no measurable loudness (digital silence?)",
                              where="reference.loudness.integrated_lufs")
        notes["lufs"] = "target = the reference's integrated loudness"
        lo, hi = RANGES["lufs"]["target_db"]
        if not lo <= float(target_lufs) <= hi:
            # a full-scale square wave reads +1.6 LUFS; a whisper of a reference, -66
            reach = min(max(float(target_lufs), lo), hi)
            notes["reference"] = (f"{float(target_lufs):+.1f} LUFS loud, outside the {lo:g}..{hi:g} LUFS "
                                  f"a loudness target can be: the target is {reach:g} LUFS")
            notes["lufs"] += f", held at {reach:g} LUFS"
            target_lufs = reach
    else:
        notes["lufs"] = "target set by the options"
    params["lufs"] = {"target_db": round(float(target_lufs), 2)}
    if "limiter" not in exclude:
        params["limiter"] = {"tp_db": float(o["ceiling_dbtp"]), **LIMITER_DEFAULTS}
    else:
        notes["limiter"] = "off: excluded by the options (true peaks are not controlled)"
    ref_s = reference_features.get("duration_s")
    if ref_s is not None and float(ref_s) < SHORT_REFERENCE_S:
        short = (f"only {float(ref_s):.1f} s long: its spectrum and loudness describe that moment more "
                 f"than a mix; {SHORT_REFERENCE_S:.0f} s or more describes it better")
        notes["reference"] = f"{notes['reference']}; {short}" if notes.get("reference") else short
    params["notes"] = notes
    if mode == "B":
        from engine.invert_mode_b import invert_mode_b
        params = invert_mode_b(reference_features, target_features, params, o)
    return validate_style_params(params, mode=mode)
