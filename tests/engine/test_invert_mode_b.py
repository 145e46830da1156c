"""Mode-B inversion decisions: on where the reference has more, off (with a reason) otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from engine.invert_mode_b import f0_visualisation, invert_mode_b, mix_for_drr
from engine.processors.compressor import static_gain_reduction_db

PARAMS_A = {
    "eq": [],
    "lufs": {"target_db": -14.0},
    "limiter": {"tp_db": -1.0, "lookahead_ms": 5, "release_ms": 50},
}


def _hist(centre_cents: float) -> list[float]:
    bins = np.arange(120) * 10.0
    d = np.abs(((bins - centre_cents) + 600) % 1200 - 600)
    return list(np.exp(-0.5 * (d / 15.0) ** 2))


def feats(
    *,
    env=None,
    lra=8.0,
    crest=14.0,
    rt60=0.3,
    drr=15.0,
    blind=None,
    f0=None,
    voiced=0.6,
    hist_c=0.0,
    duration=30.0,
):
    rng = np.random.default_rng(0)
    env = env if env is not None else -20 + 6 * rng.standard_normal(600)
    f = {
        "duration_s": duration,
        "loudness": {"integrated_lufs": -20.0, "loudness_range_lu": lra},
        "dynamics": {"crest_factor_db": crest, "rms_envelope_db": list(env), "rms_hop_s": 0.05},
        "reverb": {"rt60_s": rt60, "drr_db": drr, "edt_s": rt60, "edc_db": [], "edc_hop_s": 0.01},
        "f0": {
            "voiced_ratio": voiced,
            "median_f0_hz": f0,
            "pitch_class_hist": _hist(hist_c) if f0 else [0.0] * 120,
            "f0_hz": [f0] * 50 if f0 else [],
            "voiced": [True] * 50 if f0 else [],
            "series_hop_s": 0.01,
        },
    }
    if blind is not None:
        f["reverb"]["blind"] = blind
    return f


def test_compressor_on_when_reference_is_more_compressed_and_matches_its_spread():
    rng = np.random.default_rng(1)
    env_t = -20 + 6 * rng.standard_normal(800)
    env_r = env_t - static_gain_reduction_db(env_t, -22.0, 4.0, 6.0)  # the reference = compressed target
    p = invert_mode_b(feats(env=env_r, lra=4.0, crest=9.0), feats(env=env_t), PARAMS_A, {})
    c = p["compressor"]
    assert p["notes"]["compressor"].startswith("on:")
    out = env_t - static_gain_reduction_db(env_t, c["threshold_db"], c["ratio"], c["knee_db"])
    spread = lambda e: np.subtract(*np.percentile(e, [95, 10]))  # noqa: E731
    assert spread(out) == pytest.approx(spread(env_r), abs=0.6)
    assert 2.0 <= c["ratio"] <= 8.0
    assert p["eq"] == [] and p["lufs"] == PARAMS_A["lufs"]  # mode-A blocks untouched


def test_compressor_off_when_target_is_the_more_compressed_one():
    rng = np.random.default_rng(2)
    env_r = -20 + 6 * rng.standard_normal(800)
    env_t = env_r - static_gain_reduction_db(env_r, -22.0, 4.0, 6.0)
    p = invert_mode_b(feats(env=env_r), feats(env=env_t, lra=4.0), PARAMS_A, {})
    assert "compressor" not in p
    assert "not more compressed" in p["notes"]["compressor"]


def test_reverb_on_for_wetter_reference_with_the_mix_that_reaches_its_drr():
    p = invert_mode_b(feats(rt60=1.9, drr=2.0), feats(rt60=0.3, drr=18.0), PARAMS_A, {})
    r = p["reverb"]
    assert r["ir_key"] == "ir/hall_2.0s.wav"
    # dry/direct energies: target DRR 18 dB turned into 2 dB
    d_t, m = 10**1.8, r["mix"]
    direct = (1 - m) ** 2 * d_t / (1 + d_t)
    rev = (1 - m) ** 2 / (1 + d_t) + m**2
    assert 10 * np.log10(direct / rev) == pytest.approx(2.0, abs=0.1)
    assert 0 < r["pre_delay_ms"] <= 50


def test_reverb_prefers_the_learned_estimate_when_present():
    blind = {"rt60_s": 0.5, "drr_db": 4.0, "model": "reverb_blind"}
    p = invert_mode_b(feats(rt60=3.5, drr=2.0, blind=blind), feats(rt60=0.3, drr=18.0), PARAMS_A, {})
    assert p["reverb"]["ir_key"].startswith("ir/room_0.5")
    assert "(learned)" in p["notes"]["reverb"]


@pytest.mark.parametrize(
    ("ref", "tgt", "reason"),
    [
        (feats(rt60=0.3, drr=15.0), feats(rt60=1.5, drr=3.0), "not wetter"),
        (feats(rt60=2.0, drr=0.0), feats(rt60=3.5, drr=-2.0), "already very reverberant"),
        (
            feats(rt60=3.0, drr=0.0, duration=2.5),
            feats(rt60=0.3, drr=15.0),
            "shorter than the impulse response",
        ),
        (feats(rt60=None, drr=None), feats(), "could not be measured"),
    ],
)
def test_reverb_off_with_reason(ref, tgt, reason):
    p = invert_mode_b(ref, tgt, PARAMS_A, {})
    assert "reverb" not in p
    assert reason in p["notes"]["reverb"]


def test_pitch_shift_only_for_a_stable_whole_semitone_offset():
    up2 = 220.0 * 2 ** (2 / 12)
    p = invert_mode_b(feats(f0=up2, hist_c=200.0), feats(f0=220.0, hist_c=0.0), PARAMS_A, {})
    assert p["pitch"] == {"semitones": 2}
    # median says +2 but the pitch-class histogram disagrees: not stable, nothing shifted
    p = invert_mode_b(feats(f0=up2, hist_c=700.0), feats(f0=220.0, hist_c=0.0), PARAMS_A, {})
    assert "pitch" not in p and "not stable" in p["notes"]["pitch"]
    # no voiced frames
    p = invert_mode_b(feats(f0=None, voiced=0.0), feats(f0=220.0), PARAMS_A, {})
    assert "pitch" not in p and "F0 unreliable" in p["notes"]["pitch"]
    # beyond +-3 semitones
    p = invert_mode_b(feats(f0=440.0, hist_c=0.0), feats(f0=220.0), PARAMS_A, {})
    assert "pitch" not in p


def test_silence_and_empty_features_never_raise():
    empty = {"duration_s": 1.0, "loudness": {}, "dynamics": {"rms_envelope_db": []}, "reverb": {}, "f0": {}}
    p = invert_mode_b(empty, empty, PARAMS_A, {})
    assert not {"compressor", "reverb", "pitch"} & set(p)
    assert all(v.startswith("off:") for v in p["notes"].values())
    silent = feats(env=[-150.0] * 100, rt60=None, drr=None, f0=None, voiced=0.0)
    assert not {"compressor", "reverb", "pitch"} & set(invert_mode_b(silent, feats(), PARAMS_A, {}))


def test_exclude_and_intensity():
    ref, tgt = (
        feats(rt60=1.9, drr=2.0, f0=220.0 * 2 ** (1 / 12), hist_c=100.0),
        feats(rt60=0.3, drr=18.0, f0=220.0),
    )
    full = invert_mode_b(ref, tgt, PARAMS_A, {})
    half = invert_mode_b(ref, tgt, PARAMS_A, {"intensity": 0.5})
    assert half["reverb"]["mix"] == pytest.approx(full["reverb"]["mix"] * 0.5, abs=1e-3)
    p = invert_mode_b(ref, tgt, PARAMS_A, {"exclude": ["reverb", "pitch"]})
    assert "reverb" not in p and "pitch" not in p and p["notes"]["reverb"] == "off: excluded by the options"


def test_mix_formula_edges_and_f0_visualisation():
    assert mix_for_drr(5.0, 10.0) == 0.0
    assert 0.0 < mix_for_drr(20.0, 0.0) < 1.0
    viz = f0_visualisation(feats(f0=200.0), feats(f0=220.0), None, max_points=10)
    assert len(viz["target_hz"]) <= 10 and viz["target_hz"][0] == 200.0
