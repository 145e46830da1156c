"""Mode B inversion: dynamics (compressor), space (reverb) and pitch, on top of the mode-A params.

``invert_mode_b(reference_features, target_features, params_a, opts)`` returns ``params_a`` plus the
``compressor``, ``reverb`` and ``pitch`` blocks that apply, and ``notes``: one line per mode-B
processor saying what was decided and why (an omitted block means "off"). A processor is switched on
only where the reference has more of it than the target; measurements that cannot be trusted (silence,
no voiced frames, a reference shorter than the reverb it seems to have, an already very reverberant
target) switch it off, never raise. ``opts["exclude"]`` may name ``compressor``, ``reverb``, ``pitch``;
``opts["intensity"]`` (0..1) scales ratio - 1, the reverb mix and the semitones.

Compressor (fitted after the reverb is chosen): the target's RMS envelope (features
``dynamics.rms_envelope_db``, or its 50 ms ``rms_excerpt_db`` where a long recording's was
thinned), moved by the EQ's power gain on its spectrum (the compressor follows the EQ), is run
through the processor's own gain-reduction model (static curve, instant-attack /
exponential-release peak hold, attack smoother; run at 5 ms sub-steps of the 50 ms envelope and the
output power averaged per frame, so onsets that pass during the attack count) for a grid of
thresholds (envelope percentiles), ratios and attack times (the release is set by the kind of
material), then through an energy-domain model of the chosen reverb; the pair whose predicted
envelope quantiles (p10..p98 relative to the median, upper ones weighted double) are nearest the
reference's is kept; both envelopes are compared at the coarser of their two hops (the features
thin the envelope of a recording over 100 s, and a coarser one has lower peaks). On only when the
reference's p95 - p50 is at least 1.5 dB below the target's, its p95 - p10 is not wider, its fast
dynamics are tighter too (the upper quantiles p90..p98 of the envelope relative to its own
3-second moving energy mean, 1.5 dB lower on average: a compressor's release is far shorter than
that window, while the level changes between a song's sections, which two excerpts rarely share,
are longer), and the best fit removes at least 20 % of the quantile mismatch. Off, saying so, when
either recording is shorter than that 3-second window, or stationary (noise or a steady tone: its
50 ms envelope's p95 - p10 under 1 dB, or no distinct events for the blind reverb estimate; a flat
envelope is then no sign of compression).
Reverb: RT60 and DRR of both (the learned blind estimate ``reverb.blind`` where the features carry
it, else the DSP ``reverb.rt60_s`` / ``drr_db``). On only when the reference's DRR is 3 dB lower (or
its RT60 clearly longer) AND, where the learned estimate carries it, its steepest free decays are
1.2x slower (``blind.dsp_rt60_s``): two independent indications, since compression and dense mixes
fool the learned DRR. Then the IR of the library nearest the reference RT60, the mix that brings the
target's DRR to the reference's (dry/wet energies add, the IR's power gain on the target's spectrum
counted), pre-delay from the RT60; mode A's EQ is then fitted again with the reverb's colouring of
the long-term spectrum counted (the reference carries it already). Off when the reference's level
range (p95 - p10) is over 3 dB wider than the target's: the target is then the more compressed one,
and compression lowers a blind DRR as reverb does. Off too when the reference's quiet part (envelope
p10, p25 relative to the median) lies deeper than the target's and the target's envelope, through
the chosen reverb in the energy-domain model, moves away from it: a reverb fills the quiet part, so
a wetter reference has the shallower one. Both level readings compare the two envelopes at the
coarser of their two hops, as the compressor's do (a long file's coarser envelope has a narrower
range and a shallower quiet part).
Pitch: median F0 offset in cents, checked against the circular cross-correlation of the two 10-cent
pitch-class histograms and against content: the per-second median F0s of the two recordings must
differ by 3 standard errors of their phrase-to-phrase variation (and agree with the median); shifted
by whole semitones only when all agree.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
from scipy.signal import lfilter

from engine.analysis.noise import NOISE_SPECTRAL_STD_DB, spectral_fluctuation_db
from engine.errors import ParamsError
from engine.estimators.reverb_features import STATIONARY_REASON
from engine.ir_library import choose_ir_key, ir_band_power_gain, parse_ir_key
from engine.processors.compressor import RANGES as COMP_RANGES
from engine.processors.compressor import static_gain_reduction_db

#: thresholds of the decisions, documented in the notes they produce
SPREAD_MARGIN_DB = 1.5
DRR_MARGIN_DB = 3.0
RANGE_MARGIN_DB = 3.0
DSP_DECAY_RATIO = 1.2
RT60_MARGIN = 1.25
TARGET_RT60_MAX_S = 3.0
TARGET_DRR_MIN_DB = -6.0
DRY_DRR_DB = 10.0
MIX_MAX = 0.8
MIN_EVENT_SPREAD_DB = 3.0
VOICED_MIN = 0.2
PITCH_AGREE_CENTS = 30.0
PITCH_BLOCK_S = 1.0
PITCH_BLOCK_VOICED = 0.3
PITCH_MIN_BLOCKS = 4
PITCH_Z = 3.0
MODE_B_PROCESSORS = ("compressor", "reverb", "pitch")


def _get(d: dict | None, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def _fmt_list(v: np.ndarray) -> str:
    return "/".join(f"{x:.1f}" for x in v)


def _raw_envelope(features: dict) -> tuple[np.ndarray, float | None]:
    """The RMS envelope (dB, every frame, silence at -150) and its hop in seconds: the full-hop
    excerpt (``rms_excerpt_db``, the middle 100 s) of a recording whose whole envelope was thinned,
    since fast dynamics cannot be judged from frames of a second or more; else the whole envelope."""
    env = _get(features, "dynamics", "rms_excerpt_db")
    hop = _num(_get(features, "dynamics", "rms_excerpt_hop_s"))
    if not env or not hop:
        env = _get(features, "dynamics", "rms_envelope_db")
        hop = _num(_get(features, "dynamics", "rms_hop_s"))
    if not env:
        return np.zeros(0), None
    e = np.array([v if v is not None else -150.0 for v in env], dtype=np.float64)
    e[~np.isfinite(e)] = -150.0
    return np.maximum(e, -150.0), hop


def _active(e: np.ndarray) -> np.ndarray:
    """Frames within 60 dB of the loudest (and above -90 dBFS): the ones that carry dynamics."""
    return e > max(float(np.max(e)) - 60.0, -90.0) if e.size else np.zeros(0, bool)


def _envelope(features: dict) -> np.ndarray:
    e, _ = _raw_envelope(features)
    return e[_active(e)] if e.size else e


def _spread_db(env: np.ndarray) -> float:
    p10, p95 = np.percentile(env, [10, 95])
    return float(p95 - p10)


def _noise_reason(features: dict) -> str | None:
    """Why ``features`` read as stationary noise (see ``NOISE_SPECTRAL_STD_DB``), or None."""
    fluct = spectral_fluctuation_db(features)
    if fluct is None or fluct >= NOISE_SPECTRAL_STD_DB or _num(features.get("duration_s")) is None:
        return None
    return (f"stationary (noise or a steady tone): its spectrum varies {fluct:.1f} dB from frame to frame, "
            f"as random noise does or less (music and speech vary {NOISE_SPECTRAL_STD_DB:g} dB or more)")


def _upper_spread_db(env: np.ndarray) -> float:
    """p95 - p50 of the envelope: where a compressor acts (reverb mostly fills the quiet part)."""
    p50, p95 = np.percentile(env, [50, 95])
    return float(p95 - p50)


#: window (s) of the moving energy mean that the fast-dynamics reading removes from the envelope:
#: longer than a compressor's release (tens to hundreds of ms), shorter than a song's sections
LOCAL_WINDOW_S = 3.0
#: upper envelope quantiles (percent) of the fast-dynamics reading: where a compressor acts
LOCAL_UPPER_PCTS = (90.0, 95.0, 98.0)
#: a recording is stationary (noise, a steady tone; a flat envelope is then its nature, not
#: compression) when its 50 ms envelope's p95 - p10 (dB) is under this, or when the blind reverb
#: estimate found no distinct events in its finer 20 ms envelope (a compressed game-music reference
#: spans only 2.8 dB at 50 ms, white noise 0.3)
STATIONARY_SPREAD_DB = 1.0


def _local_upper_db(env_db: np.ndarray, hop_s: float, active: np.ndarray) -> np.ndarray:
    """Fast dynamics: the quantiles ``LOCAL_UPPER_PCTS`` minus the median (dB) of the envelope
    ``env_db`` (every frame, hop ``hop_s``) relative to its own moving energy mean over
    ``LOCAL_WINDOW_S``, over the ``active`` frames. Level changes slower than the window (a quiet
    verse, a loud chorus) drop out; the peaks above the local level, which a compressor lowers, stay."""
    # never longer than the envelope ("same" would return the box's length)
    n = min(max(round(LOCAL_WINDOW_S / hop_s), 1), max(env_db.size, 1))
    box = np.ones(n)
    p = 10 ** (env_db / 10)
    mean = np.convolve(p, box, mode="same") / np.convolve(np.ones_like(p), box, mode="same")
    q = np.percentile((env_db - 10 * np.log10(mean + 1e-15))[active], (50.0, *LOCAL_UPPER_PCTS))
    return q[1:] - q[0]


def _regrid_db(env_db: np.ndarray, hop_s: float, new_hop_s: float) -> np.ndarray:
    """The envelope ``env_db`` (dB, hop ``hop_s``) as a meter of the coarser hop ``new_hop_s`` reads
    it: mean power over each new frame (the cumulative energy interpolated at the new frame edges, so
    non-integer hop ratios work); unchanged when the hops are equal or the new one is finer."""
    if new_hop_s <= hop_s * (1 + 1e-6) or env_db.size == 0:
        return env_db
    step = new_hop_s / hop_s
    cum = np.concatenate([[0.0], np.cumsum(10 ** (env_db / 10))])
    n = int(env_db.size / step)
    if n == 0:
        return env_db[:0]
    edges = np.interp(np.arange(n + 1) * step, np.arange(cum.size), cum)
    return np.maximum(10 * np.log10(np.maximum(np.diff(edges) / step, 1e-15)), -150.0)


def _common_hop_envelopes(
    ref: dict, tgt: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float | None, float]:
    """``(env_r, env_t, raw_t, hop_t, hop)``: the reference's and the target's RMS envelopes (dB,
    every frame) read at the coarser of their two hops ``hop`` (s, :func:`_regrid_db`), and the
    target's envelope ``raw_t`` at its own hop ``hop_t`` (s; None where the features give none, 50 ms
    then assumed). Every comparison of the two envelopes goes through here: the features thin the
    envelope of a recording over 100 s (3 minutes: 100 ms frames, 5 minutes: 150 ms), and a coarser
    envelope averages the fast peaks and dips away (lower peaks, a narrower level range, a shallower
    quiet part), so a long file would read as a more compressed or a wetter one."""
    raw_t, hop_t = _raw_envelope(tgt)
    raw_r, hop_r = _raw_envelope(ref)
    hop_t = hop_t if hop_t and hop_t > 0 else None
    own_t = hop_t or 0.05
    hop_r = hop_r if hop_r and hop_r > 0 else own_t
    hop = max(own_t, hop_r)
    return _regrid_db(raw_r, hop_r, hop), _regrid_db(raw_t, own_t, hop), raw_t, hop_t, hop


def _with_reverb(env_db: np.ndarray, hop_s: float, sim: dict | None) -> np.ndarray:
    """Energy-domain prediction of the envelope after the reverb ``sim`` ({rt60_s, mix, wet_gain}):
    the direct part scaled by (1 - mix)^2 plus the wet part, the energy envelope convolved with the
    IR's exponential energy decay, scaled by mix^2 * wet_gain."""
    if not sim:
        return env_db
    p = 10 ** (env_db / 10)
    k = np.arange(max(int(1.5 * sim["rt60_s"] / hop_s), 1) + 1)
    kern = np.exp(-13.8155 * k * hop_s / sim["rt60_s"])
    wet = np.convolve(p, kern / kern.sum())[: p.size]
    m = sim["mix"]
    return 10 * np.log10((1 - m) ** 2 * p + m**2 * sim["wet_gain"] * wet + 1e-15)


# -- compressor --------------------------------------------------------------------------------
#: envelope quantiles (percent) compared between the reference and the predicted target, and their
#: weights: the upper part is where a compressor acts, the lower part is shared with pauses and noise
SHAPE_PCTS = (10.0, 25.0, 75.0, 90.0, 95.0, 98.0)
SHAPE_WEIGHTS = (0.5, 0.5, 1.0, 1.0, 1.0, 1.0)
#: attack times (ms) the fit tries (octave steps over the usual range); the release is not fitted
#: (the quantiles barely tell it apart) and is set by the kind of material
ATTACK_GRID_MS = (5.0, 10.0, 20.0, 40.0)
RELEASE_MS = {"voice": 120.0, "music": 150.0}


def _shape_db(env: np.ndarray) -> np.ndarray:
    """Envelope quantiles ``SHAPE_PCTS`` relative to the median (dB): the level distribution's shape,
    independent of the overall level (the gain stage sets that)."""
    q = np.percentile(env, (50.0, *SHAPE_PCTS))
    return q[1:] - q[0]


def _shape_cost(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.average(np.abs(a - b), weights=SHAPE_WEIGHTS))


def dynamic_gain_reduction_db(
    level_db: np.ndarray,
    hop_s: float,
    threshold_db: float,
    ratio: float,
    attack_ms: float,
    release_ms: float,
    knee_db: float = 6.0,
) -> np.ndarray:
    """Gain reduction (dB) the compressor processor applies, modelled on an envelope of hop ``hop_s``:
    its static curve, then its instant-attack / exponential-release peak hold (a log-domain
    cumulative max, as in the processor) and its one-pole attack smoother, at the envelope's rate."""
    gr = static_gain_reduction_db(level_db, threshold_db, ratio, knee_db)
    if gr.size == 0:
        return gr
    log_a_rel = -hop_s * 1000.0 / max(release_ms, 1e-3)
    ramp = np.arange(gr.size, dtype=np.float64) * log_a_rel
    with np.errstate(divide="ignore"):
        peak = np.exp(np.maximum.accumulate(np.log(gr) - ramp) + ramp)
    b = math.exp(-hop_s * 1000.0 / max(attack_ms, 1e-3))
    return lfilter([1.0 - b], [1.0, -b], peak)


#: sub-steps per envelope frame at which the gain-reduction model runs (5 ms for a 50 ms envelope:
#: the processor's detector time constant)
MODEL_SUBSTEPS = 10


def frame_gain_reduction_db(
    level_db: np.ndarray,
    hop_s: float,
    threshold_db: float,
    ratio: float,
    attack_ms: float,
    release_ms: float,
    knee_db: float = 6.0,
    substeps: int | None = None,
) -> np.ndarray:
    """Energy-weighted gain reduction (dB) per envelope frame, as a frame-level meter reads it.

    The frame levels are held over ``substeps`` (default :data:`MODEL_SUBSTEPS`) sub-steps and
    :func:`dynamic_gain_reduction_db` runs at that finer rate; the output power is averaged per
    frame. At an onset the attack lets the start of the frame through while the gain reduction
    builds up, and that part carries most of the frame's energy: a model at the frame rate (gain
    reduction settled at once) over-predicts the compression of the loud frames, and a fit with it
    under-estimates the ratio."""
    lv = np.asarray(level_db, dtype=np.float64)
    substeps = MODEL_SUBSTEPS if substeps is None else int(substeps)
    if lv.size == 0 or substeps <= 1:
        return dynamic_gain_reduction_db(lv, hop_s, threshold_db, ratio, attack_ms, release_ms, knee_db)
    fine = np.repeat(lv, substeps)
    gr = dynamic_gain_reduction_db(
        fine, hop_s / substeps, threshold_db, ratio, attack_ms, release_ms, knee_db
    )
    mean_gain = np.mean(10 ** (-gr / 10).reshape(lv.size, substeps), axis=1)
    return -10 * np.log10(np.maximum(mean_gain, 1e-15))


def eq_level_gain_db(features: dict, bands: list | None) -> float:
    """Power gain (dB) of the EQ ``bands`` on the long-term spectrum of ``features``: how much the
    level at the compressor (which follows the EQ) differs from the measured one (0 when unknown)."""
    if not bands:
        return 0.0
    f = np.asarray(_get(features, "spectrum", "freqs_hz") or [], dtype=np.float64)
    db = np.asarray(_get(features, "spectrum", "mid_db") or [], dtype=np.float64)
    if f.size == 0 or f.size != db.size:
        return 0.0
    from engine.processors.eq import eq_response_db

    fs = float(_num(features.get("sample_rate_hz")) or 48000.0)
    ok = f < 0.49 * fs
    weight = 10 ** (db[ok] / 10) * f[ok]
    if not np.isfinite(weight).all() or weight.sum() <= 0:
        return 0.0
    resp = 10 ** (eq_response_db(bands, f[ok], fs) / 10)
    return float(10 * math.log10(np.sum(weight * resp) / np.sum(weight)))


def estimate_compressor(
    ref: dict, tgt: dict, intensity: float = 1.0, reverb_sim: dict | None = None, eq_bands: list | None = None
) -> tuple[dict | None, str]:
    """``(compressor params or None, note)`` from the two feature documents.

    ``reverb_sim`` ({rt60_s, mix, wet_gain}) is the reverb mode B adds after the compressor: the
    target's envelope is predicted through it, so the reverb's own smoothing is not mistaken for
    compression. ``eq_bands`` (the EQ before the compressor) moves the level the compressor sees.
    The fit: thresholds (target-envelope percentiles) x ratios, each through the processor's own
    gain-reduction dynamics (:func:`dynamic_gain_reduction_db`) and the reverb; the pair whose
    predicted envelope quantiles (relative to the median) are nearest the reference's is kept.
    """
    # both read at the coarser of the two hops (the features thin the envelope of a long recording):
    # a coarser envelope averages the fast peaks away and would read as a more compressed one
    raw_r, common_t, raw_t, hop_t, hop = _common_hop_envelopes(ref, tgt)
    if hop_t is None:
        reverb_sim = None
        hop_t = 0.05
    act_r = _active(raw_r)
    env_r = raw_r[act_r]
    act_t = _active(raw_t)
    act = _active(common_t)
    if act_t.sum() < 20 or act.sum() < 20 or env_r.size < 20:
        return (
            None,
            "off: too few non-silent RMS-envelope frames in the reference or target to judge dynamics",
        )
    span_r, span_t = raw_r.size * hop, raw_t.size * hop_t
    if min(span_r, span_t) < LOCAL_WINDOW_S:
        which = "reference" if span_r <= span_t else "target"
        return None, (
            f"off: the {which} is only {min(span_r, span_t):.1f} s long; judging dynamics needs at least "
            f"{LOCAL_WINDOW_S:.0f} s (peaks against their local level)"
        )
    for which, doc, e in (("reference", ref, env_r), ("target", tgt, raw_t[act_t])):
        noise = _noise_reason(doc)
        if noise:
            return None, f"off: the {which} is {noise}, so there are no dynamics to match"
        blind_reason = str(_get(doc, "reverb", "blind", "reason") or "")
        if _spread_db(e) < STATIONARY_SPREAD_DB or STATIONARY_REASON in blind_reason:
            return None, (
                f"off: the {which} has no distinct events (envelope p95-p10 {_spread_db(e):.1f} dB: "
                "stationary noise or a steady tone), so there are no dynamics to match"
            )
    voice = (_num(_get(tgt, "f0", "voiced_ratio")) or 0.0) >= 0.3
    kind = "voice" if voice else "music"
    release_ms = RELEASE_MS[kind]
    level_t = raw_t + eq_level_gain_db(tgt, eq_bands)

    def predicted_all(gr_db: np.ndarray | float) -> np.ndarray:
        """The target's envelope after the compressor's gain reduction ``gr_db`` (modelled at the
        target's own hop) and the reverb, read at the common hop."""
        return _regrid_db(_with_reverb(raw_t - gr_db, hop_t, reverb_sim), hop_t, hop)

    def predicted(gr_db: np.ndarray | float) -> np.ndarray:
        return predicted_all(gr_db)[act]

    base = predicted(0.0)
    up_t, up_r = _upper_spread_db(base), _upper_spread_db(env_r)
    lo_t, lo_r = _spread_db(base), _spread_db(env_r)
    crest_t, crest_r = (
        _num(_get(tgt, "dynamics", "crest_factor_db")),
        _num(_get(ref, "dynamics", "crest_factor_db")),
    )
    facts = (
        f"envelope p95-p50 ref {up_r:.1f} dB vs target {up_t:.1f} dB"
        f"{' (after the reverb added)' if reverb_sim else ''}, p95-p10 ref {lo_r:.1f} vs {lo_t:.1f} dB, "
        f"crest ref {_fmt(crest_r)} vs target {_fmt(crest_t)} dB"
    )
    if not up_r < up_t - SPREAD_MARGIN_DB:
        return None, f"off: the reference is not more compressed than the target ({facts})"
    _, drr_r, src_r = _reverb_measures(ref)
    _, drr_t, src_t = _reverb_measures(tgt)
    if (
        src_r == src_t == "learned"
        and drr_r is not None
        and drr_t is not None
        and drr_r > drr_t + DRR_MARGIN_DB
    ):
        return None, (
            f"off: the target is the wetter one (DRR {drr_t:.1f} dB vs reference {drr_r:.1f} dB): its "
            f"envelope is shaped by its reverb, so the dynamics are not comparable ({facts})"
        )
    if lo_r > lo_t:
        return None, f"off: the upper envelope is tighter but the full range is not; not trusted ({facts})"
    # the same reading on the fast dynamics of the two recordings as they are: two excerpts of one
    # song differ most in their slow level changes (sections), which widen or narrow the whole-file
    # quantiles whatever the processing (the reverb mode B adds is left to the fit, as above)
    fast_r = _local_upper_db(raw_r, hop, act_r)
    fast_t = _local_upper_db(common_t, hop, act)
    fast_gap = float(np.mean(fast_t - fast_r))
    if fast_gap < SPREAD_MARGIN_DB:
        return None, (
            f"off: the fast dynamics are not clearly tighter (envelope p90/p95/p98 over its "
            f"{LOCAL_WINDOW_S:g}-s moving level, ref {_fmt_list(fast_r)} vs target {_fmt_list(fast_t)} dB, "
            f"{fast_gap:+.1f} dB on average, needs {SPREAD_MARGIN_DB:g}): the whole-file difference comes "
            f"from slower level changes, which differ between excerpts of one song, or is too small ({facts})"
        )
    shape_r = _shape_db(env_r)
    cost0 = _shape_cost(_shape_db(base), shape_r)
    best: tuple[float, float, float, float] | None = None
    # the attack is fitted too: at 5 ms sub-steps it sets how much of each onset passes, which is
    # what separates a strong, slow compressor from a gentle, fast one in the frame-level quantiles
    for att in ATTACK_GRID_MS:
        for pct in (30, 40, 50, 60, 70, 80, 90):
            thr = float(np.percentile(level_t[act_t], pct))
            for ratio in (1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0):
                gr = frame_gain_reduction_db(level_t, hop_t, thr, ratio, att, release_ms)
                cost = _shape_cost(_shape_db(predicted(gr)), shape_r) + 0.01 * ratio
                if best is None or cost < best[0]:
                    best = (cost, thr, ratio, att)
    assert best is not None
    cost, thr, ratio, attack_ms = best
    if cost > 0.8 * cost0:
        return None, (
            f"off: no compressor setting brings the target's level distribution clearly nearer the "
            f"reference's (quantile mismatch {cost0:.2f} dB, best {cost:.2f} dB; {facts})"
        )
    full_ratio = ratio
    ratio = 1.0 + (ratio - 1.0) * intensity
    if ratio < 1.05:
        return None, f"off: intensity {intensity:g} scales the {full_ratio:g}:1 ratio to about 1:1 ({facts})"
    thr = float(np.clip(thr, *COMP_RANGES["threshold_db"]))
    gr = frame_gain_reduction_db(level_t, hop_t, thr, ratio, attack_ms, release_ms)
    makeup = float(np.clip(np.median(gr[act_t]), *COMP_RANGES["makeup_db"]))
    params = {
        "threshold_db": round(thr, 2),
        "ratio": round(ratio, 2),
        "attack_ms": attack_ms,
        "release_ms": release_ms,
        "makeup_db": round(makeup, 2),
        "knee_db": 6.0,
    }
    after = _upper_spread_db(predicted(gr))
    return params, (
        f"on: reference more compressed ({facts}); envelope-quantile mismatch {cost0:.2f} dB -> "
        f"{cost:.2f} dB, predicted target p95-p50 after {after:.1f} dB"
    )


# -- reverb ------------------------------------------------------------------------------------
def _reverb_measures(features: dict) -> tuple[float | None, float | None, str]:
    """(RT60 s, DRR dB, source): the learned blind estimate where present, else the DSP one; where
    the learned estimator refused the audio (noise, silence), its reason is the source."""
    noise = _noise_reason(features)
    if noise:
        return None, None, noise
    blind = _get(features, "reverb", "blind")
    if isinstance(blind, dict):
        if _num(blind.get("rt60_s")) is not None and _num(blind.get("drr_db")) is not None:
            return _num(blind["rt60_s"]), _num(blind["drr_db"]), "learned"
        if blind.get("reason"):
            return None, None, str(blind["reason"])
    env = _envelope(features)
    if env.size >= 20 and _spread_db(env) < MIN_EVENT_SPREAD_DB:
        return None, None, f"no distinct sound events (RMS envelope spread {_spread_db(env):.1f} dB)"
    return _num(_get(features, "reverb", "rt60_s")), _num(_get(features, "reverb", "drr_db")), "dsp"


def mix_for_drr(target_drr_db: float, reference_drr_db: float, wet_gain: float = 1.0) -> float:
    """Wet share ``mix`` that turns a target of DRR ``target_drr_db`` into ``reference_drr_db``.

    With output ``(1 - m) x + m (x * IR)``, the direct energy scales by ``(1 - m)^2`` and the
    reverberant one by ``(1 - m)^2`` plus ``m^2 * wet_gain`` of the whole, ``wet_gain`` being the
    IR's power gain on the target's spectrum (1 for white noise and an energy-normalised IR).
    """
    d_t, d_r = 10 ** (target_drr_db / 10), 10 ** (reference_drr_db / 10)
    if d_t <= d_r:
        return 0.0
    u = math.sqrt((d_t - d_r) / ((1 + d_t) * d_r * max(wet_gain, 1e-3)))
    return u / (1 + u)


def wet_gain_on(features: dict, key: str) -> float:
    """Power gain of the IR ``key`` on the long-term spectrum of ``features`` (1.0 when the spectrum
    is missing): the band powers (1/12-octave densities times bandwidth) weight the IR's band gains."""
    f = np.asarray(_get(features, "spectrum", "freqs_hz") or [], dtype=np.float64)
    db = np.asarray(_get(features, "spectrum", "mid_db") or [], dtype=np.float64)
    if f.size == 0 or f.size != db.size:
        return 1.0
    weight = 10 ** (db / 10) * f
    if not np.isfinite(weight).all() or weight.sum() <= 0:
        return 1.0
    return float(np.sum(weight * ir_band_power_gain(key, f)) / np.sum(weight))


def estimate_reverb(ref: dict, tgt: dict, intensity: float = 1.0) -> tuple[dict | None, str]:
    """``(reverb params or None, note)`` from the two feature documents."""
    rt_r, drr_r, src_r = _reverb_measures(ref)
    rt_t, drr_t, src_t = _reverb_measures(tgt)
    if rt_r is None or drr_r is None:
        why = src_r if src_r not in ("dsp", "learned") else "silent, too short or no decays"
        return None, f"off: the reference's reverberation could not be measured ({why})"
    if rt_t is None or drr_t is None:
        why = src_t if src_t not in ("dsp", "learned") else "silent, too short or no decays"
        return None, f"off: the target's reverberation could not be measured ({why})"
    facts = (
        f"RT60 ref {rt_r:.2f} s vs target {rt_t:.2f} s, DRR ref {drr_r:.1f} dB vs target {drr_t:.1f} dB "
        f"({src_r})"
    )
    # a dry target's RT60 is not observable (the learned estimate is then arbitrary): judge it by DRR
    if (rt_t >= TARGET_RT60_MAX_S and drr_t < DRY_DRR_DB) or drr_t <= TARGET_DRR_MIN_DB:
        return None, f"off: the target is already very reverberant; reverb is not added or removed ({facts})"
    ref_dur = _num(ref.get("duration_s"))
    ir_s = 1.5 * min(max(rt_r, 0.2), 4.0)
    if ref_dur is not None and ref_dur < ir_s:
        return None, (
            f"off: the reference ({ref_dur:.1f} s) is shorter than the impulse response its reverb "
            f"implies ({ir_s:.1f} s), so its RT60 cannot be trusted ({facts})"
        )
    # compression narrows a recording's level range and lowers a learned DRR, reverb fills the gaps
    # and narrows the range too: a reference whose range is clearly WIDER than the target's is not
    # the wetter one, whatever the DRR says (the target is the more compressed one)
    # (both read at the coarser of their two hops: a long file's coarser envelope has a narrower range)
    env_r, env_t, _, _, hop = _common_hop_envelopes(ref, tgt)
    env_r, env_t = env_r[_active(env_r)], env_t[_active(env_t)]
    if env_r.size >= 20 and env_t.size >= 20 and _spread_db(env_r) > _spread_db(env_t) + RANGE_MARGIN_DB:
        return None, (
            f"off: the reference's level range is wider than the target's (envelope p95-p10 "
            f"{_spread_db(env_r):.1f} vs {_spread_db(env_t):.1f} dB at {1000 * hop:.0f}-ms frames): the "
            f"target is the more compressed one and its DRR reading is not comparable ({facts})"
        )
    wetter = drr_r < drr_t - DRR_MARGIN_DB or (
        rt_r > RT60_MARGIN * rt_t + 0.1 and drr_r <= drr_t + DRR_MARGIN_DB
    )
    if not wetter:
        return None, f"off: the reference is not wetter than the target ({facts})"
    # second, independent indication: a wetter reference decays more slowly at its steepest
    # (compression and dense mixes can fool the learned DRR, they rarely slow the free decays too)
    dsp_r, dsp_t = (
        _num(_get(ref, "reverb", "blind", "dsp_rt60_s")),
        _num(_get(tgt, "reverb", "blind", "dsp_rt60_s")),
    )
    if dsp_r and dsp_t and dsp_r < DSP_DECAY_RATIO * dsp_t:
        return None, (
            f"off: the DRR says wetter but the steepest decays do not (DSP RT60 ref {dsp_r:.2f} s vs "
            f"target {dsp_t:.2f} s, needs x{DSP_DECAY_RATIO:g}); not trusted ({facts})"
        )
    key = choose_ir_key(rt_r)
    wet_gain = wet_gain_on(tgt, key)
    mix = mix_for_drr(drr_t, drr_r, wet_gain)
    if mix <= 0.0:
        # longer decay at the same DRR: a little of the longer room
        mix = 0.15
    full_mix = float(min(mix, MIX_MAX))
    mix = full_mix * intensity
    if mix < 0.01:
        if full_mix >= 0.01:
            return None, f"off: intensity {intensity:g} scales the {full_mix:.2f} mix to under 1 % ({facts})"
        return None, f"off: the mix needed is below 1 % ({facts})"
    _, rt_ir = parse_ir_key(key)
    # analysis by synthesis: a reverb fills the quiet part of the level distribution, so the target's
    # envelope through this reverb must come nearer the reference's lower quantiles, not move away
    # (a reference whose quiet part is deeper than the target's is not the wetter one: the target is
    # then the compressed one, and compression also lowers a blind DRR)
    lower = _lower_shape_mismatch_db(ref, tgt, {"rt60_s": rt_ir, "mix": mix, "wet_gain": wet_gain})
    if lower is not None and lower[2] < 0.0 and lower[1] > lower[0]:
        return None, (
            f"off: the reference's quiet part lies deeper below its median than the target's "
            f"({lower[2]:+.1f} dB), and the target through {key} at mix {mix:.2f} moves away from it "
            f"(p10/p25 - p50 mismatch {lower[0]:.2f} -> {lower[1]:.2f} dB): the reference is not the "
            f"wetter one ({facts})"
        )
    pre_delay_ms = float(np.clip(5.0 + 10.0 * rt_ir, 0.0, 50.0))
    params = {"ir_key": key, "mix": round(mix, 3), "pre_delay_ms": round(pre_delay_ms, 1)}
    lower_note = "" if lower is None else f"; quiet-part mismatch {lower[0]:.2f} -> {lower[1]:.2f} dB"
    return params, (
        f"on: reference wetter ({facts}); {key} (power gain {10 * math.log10(wet_gain):+.1f} dB on the "
        f"target's spectrum) at mix {mix:.2f}{lower_note}"
    )


def _lower_shape_mismatch_db(ref: dict, tgt: dict, sim: dict) -> tuple[float, float, float] | None:
    """``(before, after, depth)``: mean |difference| (dB) of the envelope quantiles p10 and p25
    relative to the median between the reference and the target, without and with the reverb ``sim``
    ({rt60_s, mix, wet_gain}) in the energy-domain model, and the mean signed difference reference -
    target of those quantiles (negative: the reference's quiet part is the deeper one); None when an
    envelope is missing or too short. Both are read at the coarser of their two hops (a coarser
    envelope has a shallower quiet part); the reverb is modelled at the target's own hop."""
    all_r, all_t, raw_t, hop_t, hop = _common_hop_envelopes(ref, tgt)
    if raw_t.size == 0 or hop_t is None:
        return None
    act_r, act = _active(all_r), _active(all_t)
    if act.sum() < 20 or act_r.sum() < 20:
        return None
    n_lower = sum(1 for q in SHAPE_PCTS if q < 50.0)
    shape_r = _shape_db(all_r[act_r])[:n_lower]
    shape_t = _shape_db(all_t[act])[:n_lower]
    before = float(np.mean(np.abs(shape_t - shape_r)))
    wet_t = _regrid_db(_with_reverb(raw_t, hop_t, sim), hop_t, hop)[act]
    after = float(np.mean(np.abs(_shape_db(wet_t)[:n_lower] - shape_r)))
    return before, after, float(np.mean(shape_r - shape_t))


# -- pitch -------------------------------------------------------------------------------------
def _voiced_block_medians_cents(features: dict) -> np.ndarray:
    """Median F0 (cents re 1 Hz) of each ``PITCH_BLOCK_S`` block of the F0 series that holds at
    least ``PITCH_BLOCK_VOICED`` of voiced frames: one value per phrase-sized stretch of content."""
    f0 = _get(features, "f0", "f0_hz") or []
    voiced = _get(features, "f0", "voiced") or []
    hop = _num(_get(features, "f0", "series_hop_s"))
    if not f0 or not hop or len(voiced) != len(f0):
        return np.zeros(0)
    f = np.array([v if v is not None else 0.0 for v in f0], dtype=np.float64)
    ok = np.asarray(voiced, dtype=bool) & (f > 0)
    step = max(1, round(PITCH_BLOCK_S / hop))
    n = f.size // step
    if n == 0:
        return np.zeros(0)
    cents = np.where(ok, 1200.0 * np.log2(np.maximum(f, 1e-9)), np.nan)[: n * step].reshape(n, step)
    keep = np.sum(ok[: n * step].reshape(n, step), axis=1) >= PITCH_BLOCK_VOICED * step
    if not keep.any():
        return np.zeros(0)
    return np.nanmedian(cents[keep], axis=1)


def _offset_is_stable(ref: dict, tgt: dict, offset_cents: float) -> tuple[bool, str]:
    """Whether the F0 offset is larger than what different content explains: the block medians
    of each recording vary from phrase to phrase (intonation, melody); their mean difference must
    be ``PITCH_Z`` standard errors from zero and agree with ``offset_cents``. Series with too few
    blocks (short or sparse voicing) pass unchecked, with the median and histogram checks only."""
    b_r, b_t = _voiced_block_medians_cents(ref), _voiced_block_medians_cents(tgt)
    if b_r.size < PITCH_MIN_BLOCKS or b_t.size < PITCH_MIN_BLOCKS:
        return True, ""
    diff = float(np.mean(b_r) - np.mean(b_t))
    se = math.sqrt(float(np.var(b_r, ddof=1)) / b_r.size + float(np.var(b_t, ddof=1)) / b_t.size)
    if abs(diff) < PITCH_Z * max(se, 1.0) or abs(diff - offset_cents) > 50.0:
        return False, (
            f"phrase-level F0 differs by {diff:+.0f} +- {se:.0f} cents over {b_r.size} / {b_t.size} "
            f"voiced blocks, within what different content explains"
        )
    return True, ""


def estimate_pitch(ref: dict, tgt: dict, intensity: float = 1.0) -> tuple[dict | None, str]:
    """``({"semitones": n} or None, note)``: a whole-semitone shift where the F0 offset is stable."""
    vr_r, vr_t = _num(_get(ref, "f0", "voiced_ratio")), _num(_get(tgt, "f0", "voiced_ratio"))
    f_r, f_t = _num(_get(ref, "f0", "median_f0_hz")), _num(_get(tgt, "f0", "median_f0_hz"))
    if vr_r is None or vr_t is None or vr_r < VOICED_MIN or vr_t < VOICED_MIN or not f_r or not f_t:
        return None, (
            f"off: F0 unreliable (voiced ratio ref {vr_r if vr_r is not None else 'n/a'}, "
            f"target {vr_t if vr_t is not None else 'n/a'}; needs >= {VOICED_MIN})"
        )
    offset = 1200.0 * math.log2(f_r / f_t)
    semis = round(offset / 100.0)
    if semis == 0:
        return None, f"off: median F0 offset {offset:+.0f} cents is under half a semitone"
    if abs(semis) > 3:
        return None, f"off: median F0 offset {offset:+.0f} cents is beyond the +-3 semitones allowed"
    if abs(offset - 100.0 * semis) > PITCH_AGREE_CENTS:
        return None, f"off: median F0 offset {offset:+.0f} cents is not close to a whole semitone"
    h_r = np.asarray(_get(ref, "f0", "pitch_class_hist") or [], dtype=np.float64)
    h_t = np.asarray(_get(tgt, "f0", "pitch_class_hist") or [], dtype=np.float64)
    if h_r.size != 120 or h_t.size != 120 or h_r.sum() <= 0 or h_t.sum() <= 0:
        return None, "off: pitch-class histograms missing, the offset cannot be confirmed"
    xc = np.real(np.fft.ifft(np.fft.fft(h_r) * np.conj(np.fft.fft(h_t))))  # xc[k]: ref ~ tgt shifted k
    best_bins = int(np.argmax(xc))
    hist_cents = ((best_bins * 10 + 600) % 1200) - 600
    want = ((offset + 600) % 1200) - 600
    if abs(((hist_cents - want + 600) % 1200) - 600) > PITCH_AGREE_CENTS:
        return None, (
            f"off: F0 offset not stable (median {offset:+.0f} cents, pitch-class histogram "
            f"{hist_cents:+.0f} cents)"
        )
    stable, why = _offset_is_stable(ref, tgt, offset)
    if not stable:
        return None, f"off: F0 offset {offset:+.0f} cents not stable: {why}"
    semis_i = round(semis * intensity)
    if semis_i == 0:
        return None, f"off: intensity {intensity} rounds the {semis:+d} semitone shift to 0"
    return {"semitones": semis_i}, f"on: stable F0 offset {offset:+.0f} cents (histogram {hist_cents:+.0f})"


def _reverb_sim(block: dict | None, tgt: dict) -> dict | None:
    if not block:
        return None
    _, rt60_s = parse_ir_key(block["ir_key"])
    return {"rt60_s": rt60_s, "mix": float(block["mix"]), "wet_gain": wet_gain_on(tgt, block["ir_key"])}


def refit_eq_for_reverb(ref: dict, tgt: dict, reverb: dict, intensity: float = 1.0) -> tuple[list, str]:
    """Mode A's EQ fitted again for a chain that adds ``reverb`` after it: the reverb colours the
    long-term spectrum by ``(1 - mix)^2 + mix^2 g(f)`` (``g``: the IR's band power gain), and the
    reference already carries that colour, so the EQ must not add it a second time. Fitted as mode A
    fits it (:func:`engine.invert.fit_eq_bands`: intensity, the DC high-pass). Returns
    ``(bands, note)``; raises what :func:`engine.invert.spectral_difference` raises."""
    from engine.invert import fit_eq_bands

    f = np.asarray(_get(tgt, "spectrum", "freqs_hz") or [], dtype=np.float64)
    db = np.asarray(_get(tgt, "spectrum", "mid_db") or [], dtype=np.float64)
    if f.size == 0 or f.size != db.size:
        raise ValueError("the target has no long-term spectrum")
    m = float(reverb["mix"])
    colour_db = 10 * np.log10((1 - m) ** 2 + m**2 * np.maximum(ir_band_power_gain(reverb["ir_key"], f), 1e-6))
    tgt2 = dict(tgt, spectrum=dict(tgt["spectrum"], mid_db=list(db + colour_db)))
    bands, _ = fit_eq_bands(ref, tgt2, intensity)
    sel = (f >= 100) & (f <= 8000)
    span = float(np.ptp(colour_db[sel])) if sel.any() else 0.0
    return bands, f"{len(bands)} bands, fitted with the reverb's colouring counted (it spans {span:.1f} dB)"


def invert_mode_b(
    reference_features: dict, target_features: dict, params_a: dict, opts: dict | None = None
) -> dict:
    """Mode-A params + the mode-B blocks that apply + ``notes`` (see the module docstring)."""
    opts = opts or {}
    intensity = float(opts.get("intensity", 1.0))
    exclude = set(opts.get("exclude") or ())
    params = copy.deepcopy(params_a)
    notes = dict(params.get("notes") or {})
    # reverb first: the compressor fit predicts the target's envelope through the reverb added after it
    for name in ("reverb", "compressor", "pitch"):
        params.pop(name, None)
        if name in exclude:
            notes[name] = "off: excluded by the options"
            continue
        try:
            if name == "reverb":
                block, note = estimate_reverb(reference_features, target_features, intensity)
            elif name == "compressor":
                # fitted with the full-intensity reverb, then scaled: intensity scales the whole
                # correction (fitted beside a half-mix reverb, 0.5 gave 5.5:1 where 1 gave 1.5:1)
                full_reverb = params.get("reverb")
                if intensity < 1.0 and "reverb" not in exclude:
                    full_reverb = estimate_reverb(reference_features, target_features, 1.0)[0]
                block, note = estimate_compressor(
                    reference_features,
                    target_features,
                    intensity,
                    _reverb_sim(full_reverb, target_features),
                    params.get("eq"),
                )
            else:
                block, note = estimate_pitch(reference_features, target_features, intensity)
        except (ValueError, TypeError, KeyError, ZeroDivisionError, FloatingPointError) as exc:
            block, note = None, f"off: features could not be used ({type(exc).__name__}: {exc})"
        if block is not None:
            params[name] = block
        notes[name] = note
        if name == "reverb" and block is not None and "eq" in params and "eq" not in exclude:
            try:
                params["eq"], eq_note = refit_eq_for_reverb(
                    reference_features, target_features, block, intensity
                )
                notes["eq"] = f"{notes.get('eq', '')}; mode B: {eq_note}".lstrip("; ")
            except (ValueError, TypeError, KeyError, ParamsError) as exc:
                notes["eq"] = f"{notes.get('eq', '')}; mode B kept mode A's EQ ({type(exc).__name__}: {exc})"
    params["notes"] = notes
    return params


def f0_visualisation(
    target_features: dict,
    reference_features: dict,
    result_features: dict | None = None,
    max_points: int = 2000,
) -> dict:
    """F0 curves for the report: ``{hop_s, target_hz[], reference_hz[], result_hz[]}`` (None where
    unvoiced), each at most ``max_points`` long."""

    def series(f: dict | None) -> tuple[list, float | None]:
        f0 = _get(f, "f0", "f0_hz") or []
        voiced = _get(f, "f0", "voiced") or [True] * len(f0)
        hop = _num(_get(f, "f0", "series_hop_s"))
        vals = [float(v) if (v is not None and ok) else None for v, ok in zip(f0, voiced, strict=False)]
        step = max(1, -(-len(vals) // max_points))
        return vals[::step], (hop * step if hop else None)

    t, hop = series(target_features)
    r, _ = series(reference_features)
    o, _ = series(result_features) if result_features else ([], None)
    return {"hop_s": hop, "target_hz": t, "reference_hz": r, "result_hz": o}


#: release time constants after which a gain-reduction difference (a segment started cold against
#: the whole-file state) has decayed below -60 dB: a 30 dB difference needs ln(0.115 * 30 / 1e-3),
#: about 8.1; five left -47 dB after a 3 s-release compressor's 40 dB of gain reduction
SETTLE_TIME_CONSTANTS = 9.0


def mode_b_preroll_s(style_params: dict) -> float:
    """Seconds of pre-roll a segment needs so the mode-B processors' state (reverb tail, compressor
    release, pitch-shifter frames) has settled at its start: the IR length plus pre-delay,
    :data:`SETTLE_TIME_CONSTANTS` release time constants, 0.2 s for the pitch shifter; 0 without
    mode-B blocks."""
    need = 0.0
    rv = style_params.get("reverb")
    if rv:
        _, rt60_s = parse_ir_key(rv["ir_key"])
        need = max(need, 1.5 * rt60_s + float(rv.get("pre_delay_ms", 0.0)) / 1000.0)
    comp = style_params.get("compressor")
    if comp:
        need = max(need, SETTLE_TIME_CONSTANTS * float(comp["release_ms"]) / 1000.0)
    if (style_params.get("pitch") or {}).get("semitones"):
        need = max(need, 0.2)
    return need
