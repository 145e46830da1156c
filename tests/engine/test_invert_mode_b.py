"""Mode-B inversion decisions: on where the reference has more, off (with a reason) otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from engine.analysis.dynamics import energy_mean_db, reduce_factor
from engine.invert_mode_b import (
    _with_reverb,
    dynamic_gain_reduction_db,
    eq_level_gain_db,
    f0_visualisation,
    frame_gain_reduction_db,
    invert_mode_b,
    mix_for_drr,
    refit_eq_for_reverb,
)
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
    # the reference = the target through a real compressor (static curve + attack/release) at 4:1,
    # as a frame-level meter reads it
    env_r = env_t - frame_gain_reduction_db(env_t, 0.05, -22.0, 4.0, 10.0, 150.0)
    p = invert_mode_b(feats(env=env_r, lra=4.0, crest=9.0), feats(env=env_t), PARAMS_A, {})
    c = p["compressor"]
    assert p["notes"]["compressor"].startswith("on:")
    out = env_t - frame_gain_reduction_db(
        env_t, 0.05, c["threshold_db"], c["ratio"], c["attack_ms"], c["release_ms"]
    )
    spread = lambda e: np.subtract(*np.percentile(e, [95, 10]))  # noqa: E731
    assert spread(out) == pytest.approx(spread(env_r), abs=0.6)
    assert 2.5 <= c["ratio"] <= 8.0
    assert p["eq"] == [] and p["lufs"] == PARAMS_A["lufs"]  # mode-A blocks untouched


def test_compressor_off_and_says_why_for_a_reference_shorter_than_the_local_window():
    # a 1.2 s reference (24 frames of 50 ms) holds too few events against their local level (3 s
    # window) to tell compression from content; it used to fail inside numpy ("features could not be
    # used: ValueError ...")
    rng = np.random.default_rng(1)
    env_t = -20 + 6 * rng.standard_normal(800)
    env_r = (env_t - frame_gain_reduction_db(env_t, 0.05, -22.0, 4.0, 10.0, 150.0))[:24]
    p = invert_mode_b(feats(env=env_r, lra=4.0, crest=9.0, duration=1.2), feats(env=env_t), PARAMS_A, {})
    assert "compressor" not in p
    assert p["notes"]["compressor"].startswith("off: the reference is only 1.2 s long"), p["notes"]
    # from 3 s on it is judged (the same compressed reference, 4 s of it)
    env_r = (env_t - frame_gain_reduction_db(env_t, 0.05, -22.0, 4.0, 10.0, 150.0))[:80]
    p = invert_mode_b(feats(env=env_r, lra=4.0, crest=9.0, duration=4.0), feats(env=env_t), PARAMS_A, {})
    assert "only" not in p["notes"]["compressor"] and "could not be used" not in p["notes"]["compressor"]


def test_compressor_off_for_a_stationary_reference():
    # pure noise or a steady tone has a flat envelope by nature: not a compressed version of the target
    rng = np.random.default_rng(1)
    env_t = -20 + 6 * rng.standard_normal(800)
    for env_r in (np.full(800, -18.0), -18.0 + 0.2 * rng.standard_normal(800)):
        p = invert_mode_b(feats(env=env_r, lra=0.1, crest=3.0), feats(env=env_t), PARAMS_A, {})
        assert "compressor" not in p
        assert p["notes"]["compressor"].startswith("off: the reference has no distinct events"), p["notes"]
    # coloured noise spans more at 50 ms; the blind estimate's finer envelope still calls it stationary
    env_r = -18.0 + 0.8 * rng.standard_normal(800)
    blind = {"rt60_s": None, "drr_db": None, "dsp_rt60_s": None, "model": "reverb_blind",
             "reason": "no reverb estimate: no distinct sound events (envelope spread 2.1 dB: ...)"}
    p = invert_mode_b(feats(env=env_r, lra=0.1, crest=3.0, blind=blind), feats(env=env_t), PARAMS_A, {})
    assert p["notes"]["compressor"].startswith("off: the reference has no distinct events"), p["notes"]
    # a heavily compressed reference with events is not stationary, however flat (2.8 dB at 50 ms)
    env_r = env_t - frame_gain_reduction_db(env_t, 0.05, -38.0, 20.0, 1.0, 60.0)
    assert 1.0 < np.subtract(*np.percentile(env_r, [95, 10])) < 4.0
    p = invert_mode_b(feats(env=env_r, lra=1.0, crest=6.0), feats(env=env_t), PARAMS_A, {})
    assert p["notes"]["compressor"].startswith("on:"), p["notes"]["compressor"]


def test_compressor_judged_on_the_full_hop_excerpt_of_a_long_target():
    # a 30-minute podcast: its whole envelope is thinned to 0.9 s frames, which hold no fast peaks (a
    # 15 s reference read at that hop has 16 frames: "too few to judge"); its 50 ms excerpt is used
    rng = np.random.default_rng(1)
    env_t = -20 + 6 * rng.standard_normal(2000)
    env_r = (env_t - frame_gain_reduction_db(env_t, 0.05, -22.0, 4.0, 10.0, 150.0))[:300]
    thinned = 10 * np.log10(np.mean(10 ** (np.tile(env_t, 18)[:36000].reshape(2000, 18) / 10), axis=1))
    tgt = feats(env=thinned, duration=1800.0)
    tgt["dynamics"].update(rms_hop_s=0.9, rms_excerpt_db=list(env_t), rms_excerpt_hop_s=0.05,
                           rms_excerpt_start_s=850.0)
    p = invert_mode_b(feats(env=env_r, lra=4.0, crest=9.0, duration=15.0), tgt, PARAMS_A, {})
    assert p["notes"]["compressor"].startswith("on:"), p["notes"]["compressor"]
    assert 2.5 <= p["compressor"]["ratio"] <= 8.0


def test_compressor_threshold_follows_the_eq_level_before_it():
    rng = np.random.default_rng(1)
    env_t = -20 + 6 * rng.standard_normal(800)
    env_r = env_t - dynamic_gain_reduction_db(env_t, 0.05, -22.0, 4.0, 10.0, 150.0)
    f = np.geomspace(30, 16000, 100)
    tgt = feats(env=env_t)
    tgt["spectrum"] = {"freqs_hz": list(f), "mid_db": [-30.0] * f.size}
    tgt["sample_rate_hz"] = 48000
    plain = invert_mode_b(feats(env=env_r), tgt, PARAMS_A, {})["compressor"]
    boost = [{"type": "peaking", "f_hz": 1000.0, "q": 0.3, "gain_db": 6.0}]
    gain_db = eq_level_gain_db(tgt, boost)
    assert 1.0 < gain_db < 6.0
    louder = invert_mode_b(feats(env=env_r), tgt, dict(PARAMS_A, eq=boost), {})["compressor"]
    assert louder["threshold_db"] - plain["threshold_db"] == pytest.approx(gain_db, abs=0.3)


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


def test_intensity_scales_the_whole_mode_b_correction():
    # a reference both wetter and more compressed: at 0 nothing is added and the notes say it is the
    # intensity; in between, the mix and ratio - 1 are the full solution's, scaled (the compressor is
    # fitted beside the full reverb, not beside the scaled one)
    rng = np.random.default_rng(1)
    env_t = -20 + 6 * rng.standard_normal(800)
    compressed = env_t - frame_gain_reduction_db(env_t, 0.05, -22.0, 4.0, 10.0, 150.0)
    env_r = _with_reverb(compressed, 0.05, {"rt60_s": 1.9, "mix": 0.3, "wet_gain": 1.0})

    def run(intensity: float) -> dict:
        ref = feats(env=env_r, lra=4.0, crest=9.0, rt60=1.9, drr=2.0)
        return invert_mode_b(ref, feats(env=env_t, rt60=0.3, drr=18.0), PARAMS_A, {"intensity": intensity})

    full, half, none = run(1.0), run(0.5), run(0.0)
    assert "reverb" in full and "compressor" in full, full["notes"]
    assert half["reverb"]["mix"] == pytest.approx(0.5 * full["reverb"]["mix"], abs=0.01)
    assert half["compressor"]["ratio"] - 1 == pytest.approx(0.5 * (full["compressor"]["ratio"] - 1), abs=0.01)
    assert "reverb" not in none and "compressor" not in none
    assert none["notes"]["reverb"].startswith("off: intensity 0 scales")
    assert none["notes"]["compressor"].startswith("off: intensity 0 scales")


def test_a_dry_target_with_an_arbitrary_rt60_still_gets_reverb():
    p = invert_mode_b(feats(rt60=1.5, drr=0.0), feats(rt60=3.6, drr=25.0), PARAMS_A, {})
    assert p["reverb"]["ir_key"] == "ir/hall_1.5s.wav"


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
        (
            feats(rt60=2.0, drr=0.0, env=-30 + 0.3 * np.random.default_rng(5).standard_normal(500)),
            feats(),
            "no distinct",
        ),
        (
            feats(blind={"rt60_s": None, "drr_db": None, "reason": "no reverb estimate: digital silence"}),
            feats(),
            "silence",
        ),
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


# -- end to end: analyse -> invert (A and B) -> render, against the known style ------------------
FS_E2E = 48000


def _dry(seed: int, seconds: float = 14.0) -> np.ndarray:
    import soxr

    from engine.estimators.train_reverb import FS as SRC_FS
    from engine.estimators.train_reverb import music_source

    x = soxr.resample(music_source(np.random.default_rng(seed), seconds), SRC_FS, FS_E2E)
    x = 0.25 * x / np.max(np.abs(x))
    # a little stereo: delayed, filtered copy on the right
    right = np.concatenate([np.zeros(24), x[:-24]])
    return np.stack([x, 0.8 * x + 0.2 * right], axis=1).astype(np.float32)


def _apply_style(x: np.ndarray, style: dict) -> np.ndarray:
    from engine.chain import ChainRunner, build_chain

    chain = ChainRunner(build_chain(style, FS_E2E, x.shape[1]), x.shape[1])
    return np.concatenate([chain.process(x), *chain.finish()])[: len(x)]


def _features(x: np.ndarray) -> dict:
    from engine.features import analyze_features

    f = analyze_features(x, sample_rate_hz=FS_E2E, blind_reverb=True)
    assert f["reverb"]["blind"]["model"] == "reverb_blind"
    return f


def _logmel(x: np.ndarray) -> np.ndarray:
    from scipy import signal as sps

    _, _, Z = sps.stft(x.mean(axis=1), fs=FS_E2E, nperseg=2048, noverlap=1536)
    f = np.linspace(0, FS_E2E / 2, Z.shape[0])
    mel = 2595 * np.log10(1 + f / 700)
    edges = np.linspace(mel[1], 2595 * np.log10(1 + 16000 / 700), 66)
    fb = np.maximum(0, 1 - np.abs(mel[None, :] - edges[1:-1, None]) / (edges[1] - edges[0]))
    return 10 * np.log10(fb @ np.abs(Z) ** 2 + 1e-10)


def _distances(y: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(log-mel L1 dB, multi-resolution log-STFT L1) after matching RMS."""
    from scipy import signal as sps

    y = y * np.sqrt(np.mean(truth**2) / np.mean(y**2))
    mel = float(np.mean(np.abs(_logmel(y) - _logmel(truth))))
    mr = []
    for n in (512, 1024, 2048):
        a = np.abs(sps.stft(y.mean(axis=1), nperseg=n, noverlap=3 * n // 4)[2])
        b = np.abs(sps.stft(truth.mean(axis=1), nperseg=n, noverlap=3 * n // 4)[2])
        mr.append(
            np.linalg.norm(b - a) / np.linalg.norm(b) + np.mean(np.abs(np.log(a + 1e-7) - np.log(b + 1e-7)))
        )
    return mel, float(np.mean(mr))


STYLE = {
    "compressor": {
        "threshold_db": -30.0,
        "ratio": 4.0,
        "attack_ms": 5.0,
        "release_ms": 120.0,
        "makeup_db": 0.0,
    },
    "reverb": {"ir_key": "ir/hall_1.5s.wav", "mix": 0.35, "pre_delay_ms": 20.0},
}


@pytest.mark.slow
def test_mode_b_beats_mode_a_when_the_reference_is_compressed_and_wetter(tmp_path, monkeypatch):
    pytest.importorskip("engine.features")
    from engine.invert import invert_params
    from engine.render import render

    monkeypatch.setenv("TONEMATCH_IR_DIR", str(tmp_path))
    target = _dry(101)
    reference = _apply_style(_dry(202), STYLE)  # other music, same style
    truth = _apply_style(target, STYLE)
    fr, ft = _features(reference), _features(target)
    out = {}
    for mode in ("A", "B"):
        params = invert_params(fr, ft, mode=mode)
        y, _ = render(target, params, sample_rate_hz=FS_E2E)
        out[mode] = (params, _distances(y[: len(target)], truth))
    params_b, (mel_b, mr_b) = out["B"]
    _, (mel_a, mr_a) = out["A"]
    print(f"mode A mel {mel_a:.2f} dB mrstft {mr_a:.3f}; mode B mel {mel_b:.2f} dB mrstft {mr_b:.3f}")
    print(params_b["notes"])
    assert "reverb" in params_b
    assert mel_b < 0.8 * mel_a and mr_b < 0.8 * mr_a


@pytest.mark.slow
def test_mode_b_no_worse_when_the_target_is_the_wetter_one(tmp_path, monkeypatch):
    pytest.importorskip("engine.features")
    from engine.invert import invert_params
    from engine.render import render

    monkeypatch.setenv("TONEMATCH_IR_DIR", str(tmp_path))
    wet = {"reverb": {"ir_key": "ir/hall_2.5s.wav", "mix": 0.5, "pre_delay_ms": 20.0}}
    target = _apply_style(_dry(303), wet)
    reference = _dry(404)
    truth = target  # nothing to add: the reference is drier (removing reverb is not asked)
    fr, ft = _features(reference), _features(target)
    dist = {}
    for mode in ("A", "B"):
        params = invert_params(fr, ft, mode=mode)
        y, _ = render(target, params, sample_rate_hz=FS_E2E)
        dist[mode] = _distances(y[: len(target)], truth)
        if mode == "B":
            assert "reverb" not in params and params["notes"]["reverb"].startswith("off:")
            assert np.max(np.abs(y)) <= 1.0
    assert dist["B"][0] <= dist["A"][0] * 1.05 + 0.05
    assert dist["B"][1] <= dist["A"][1] * 1.05 + 0.005


def test_preroll_covers_the_reverb_tail_and_compressor_release():
    from engine.invert_mode_b import mode_b_preroll_s

    assert mode_b_preroll_s(PARAMS_A) == 0.0
    p = dict(PARAMS_A, reverb={"ir_key": "ir/hall_2.0s.wav", "mix": 0.3, "pre_delay_ms": 20.0})
    assert mode_b_preroll_s(p) == pytest.approx(3.02)
    p["compressor"] = {"threshold_db": -20, "ratio": 3, "attack_ms": 5, "release_ms": 800, "makeup_db": 0}
    assert mode_b_preroll_s(p) == pytest.approx(9 * 0.8)  # nine release time constants


def test_reverb_needs_slower_free_decays_too():
    tgt_blind = {"rt60_s": 0.4, "drr_db": 12.0, "dsp_rt60_s": 0.5, "model": "reverb_blind"}
    ref = feats(blind={"rt60_s": 1.5, "drr_db": 2.0, "dsp_rt60_s": 0.52, "model": "reverb_blind"})
    p = invert_mode_b(ref, feats(blind=tgt_blind), PARAMS_A, {})
    assert "reverb" not in p and "steepest decays do not" in p["notes"]["reverb"]
    ref["reverb"]["blind"]["dsp_rt60_s"] = 0.9
    assert invert_mode_b(ref, feats(blind=tgt_blind), PARAMS_A, {})["reverb"]["ir_key"] == "ir/hall_1.5s.wav"


def test_compressor_off_when_only_the_upper_envelope_is_tighter():
    rng = np.random.default_rng(3)
    env_t = -20 + 4 * rng.standard_normal(800)
    env_r = np.where(
        env_t > -20, -20 + 0.4 * (env_t + 20), -20 + 2.5 * (env_t + 20)
    )  # top squeezed, bottom stretched
    p = invert_mode_b(feats(env=env_r), feats(env=env_t), PARAMS_A, {})
    assert "compressor" not in p and "full range is not" in p["notes"]["compressor"]


def test_compressor_off_when_the_target_is_the_wetter_one():
    rng = np.random.default_rng(1)
    env_t = -20 + 6 * rng.standard_normal(800)
    env_r = env_t - static_gain_reduction_db(env_t, -22.0, 4.0, 6.0)
    dry = {"rt60_s": 0.3, "drr_db": 25.0, "dsp_rt60_s": 0.2, "model": "reverb_blind"}
    wet = {"rt60_s": 1.2, "drr_db": 2.0, "dsp_rt60_s": 0.9, "model": "reverb_blind"}
    p = invert_mode_b(feats(env=env_r, blind=dry), feats(env=env_t, blind=wet), PARAMS_A, {})
    assert "compressor" not in p and "target is the wetter one" in p["notes"]["compressor"]


def test_reverb_off_when_the_target_is_the_more_compressed_one():
    # a compressed target (narrow level range) beside a dynamic reference: the learned DRR says the
    # reference is wetter, but the ranges say the target was compressed; no reverb is added
    rng = np.random.default_rng(4)
    env_r = -20 + 6 * rng.standard_normal(800)
    env_t = env_r - dynamic_gain_reduction_db(env_r, 0.05, -26.0, 8.0, 10.0, 150.0)
    ref = feats(env=env_r, blind={"rt60_s": 1.2, "drr_db": -5.0, "dsp_rt60_s": 0.9, "model": "reverb_blind"})
    tgt = feats(env=env_t, blind={"rt60_s": 1.0, "drr_db": 1.0, "dsp_rt60_s": 0.5, "model": "reverb_blind"})
    p = invert_mode_b(ref, tgt, PARAMS_A, {})
    assert "reverb" not in p and "more compressed" in p["notes"]["reverb"]


def _f0_feats(centre_hz: float, seed: int, phrase_sd_cents: float = 150.0) -> dict:
    """F0 series of 20 s of speech-like intonation: a per-phrase (1 s) level around ``centre_hz``."""
    rng = np.random.default_rng(seed)
    phrase = rng.normal(0.0, phrase_sd_cents, 20)
    cents = np.repeat(phrase, 100) + rng.normal(0.0, 30.0, 2000)
    cents -= np.median(cents)  # the median F0 is exactly centre_hz
    f0 = centre_hz * 2 ** (cents / 1200)
    f = feats(f0=float(np.median(f0)))
    f["f0"].update(f0_hz=list(f0), voiced=[True] * f0.size, series_hop_s=0.01)
    f["f0"]["pitch_class_hist"] = [1.0] * 120  # flat: no key to contradict the median
    return f


def test_pitch_off_when_different_content_explains_the_offset():
    # two sentences of one voice whose median F0s happen to differ by about a semitone
    ref, tgt = _f0_feats(220.0 * 2 ** (1 / 12), 1), _f0_feats(220.0, 2)
    h = _hist(0.0)
    ref["f0"]["pitch_class_hist"], tgt["f0"]["pitch_class_hist"] = list(np.roll(h, 10)), h
    p = invert_mode_b(ref, tgt, PARAMS_A, {})
    assert "pitch" not in p and "different content" in p["notes"]["pitch"]
    # a steady voice shifted by 3 semitones stands out of the phrase-to-phrase variation
    ref, tgt = _f0_feats(220.0 * 2 ** (3 / 12), 1, 40.0), _f0_feats(220.0, 2, 40.0)
    h = _hist(0.0)
    ref["f0"]["pitch_class_hist"], tgt["f0"]["pitch_class_hist"] = list(np.roll(h, 30)), h
    assert invert_mode_b(ref, tgt, PARAMS_A, {})["pitch"] == {"semitones": 3}


def test_eq_refitted_for_the_reverb_colour_when_reverb_is_added():
    from engine.ir_library import ir_band_power_gain

    f = np.geomspace(30, 16000, 150)
    key, mix = "ir/hall_2.0s.wav", 0.5
    tgt_db = -30.0 - 3.0 * np.log2(f / 1000.0)
    colour = 10 * np.log10((1 - mix) ** 2 + mix**2 * ir_band_power_gain(key, f))
    ref = feats(rt60=2.0, drr=2.0)
    tgt = feats(rt60=0.3, drr=20.0)
    ref["spectrum"] = {"freqs_hz": list(f), "mid_db": list(tgt_db + colour)}  # the target, reverberated
    tgt["spectrum"] = {"freqs_hz": list(f), "mid_db": list(tgt_db)}
    bands, note = refit_eq_for_reverb(ref, tgt, {"ir_key": key, "mix": mix, "pre_delay_ms": 20.0})
    assert all(abs(b["gain_db"]) <= 1.0 for b in bands), bands  # the reverb explains the difference
    assert "reverb's colouring" in note
    # a target on a DC offset keeps mode A's 10 Hz high-pass through the refit (else the offset takes
    # the limiter's headroom again), within the 8 bands
    tgt["dc_offset_dbfs"] = -20.0
    ref["spectrum"]["mid_db"] = list(tgt_db + colour + 6.0 * np.exp(-0.5 * np.log2(f / 3000.0) ** 2))
    bands, _ = refit_eq_for_reverb(ref, tgt, {"ir_key": key, "mix": mix, "pre_delay_ms": 20.0})
    assert bands[0] == {"type": "high_pass", "f_hz": 10.0, "q": 0.71, "gain_db": 0.0}
    assert len(bands) <= 8 and any(b["type"] == "peaking" and b["gain_db"] > 3.0 for b in bands[1:]), bands
    bands, _ = refit_eq_for_reverb(ref, tgt, {"ir_key": key, "mix": mix, "pre_delay_ms": 20.0}, intensity=0.5)
    assert bands[0]["type"] == "high_pass" and max(b["gain_db"] for b in bands) < 4.0


def test_frame_gain_reduction_counts_the_attack_at_onsets():
    level = np.r_[np.full(20, -80.0), np.full(40, -10.0)]
    fine = frame_gain_reduction_db(level, 0.05, -30.0, 4.0, 20.0, 150.0, knee_db=0.0)
    settled = 20.0 * (1.0 - 1.0 / 4.0)
    # steady state: the static curve; the onset frame keeps its uncompressed start, so it is louder
    assert fine[-1] == pytest.approx(settled, abs=0.05)
    assert 0.3 * settled < fine[20] < 0.9 * settled
    # one sub-step per frame is the frame-rate model
    coarse = frame_gain_reduction_db(level, 0.05, -30.0, 4.0, 20.0, 150.0, knee_db=0.0, substeps=1)
    assert np.allclose(coarse, dynamic_gain_reduction_db(level, 0.05, -30.0, 4.0, 20.0, 150.0, knee_db=0.0))


def test_reverb_off_when_the_reference_quiet_part_is_the_deeper_one():
    # the learned DRR and the decays say "reference wetter", the level ranges are within 3 dB, but the
    # target's quiet part is the filled one (its lowest frames held up): a reverb would fill it more
    rng = np.random.default_rng(5)
    env_r = -20 + 6 * rng.standard_normal(800)
    env_t = np.maximum(env_r, np.percentile(env_r, 20))
    ref = feats(env=env_r, blind={"rt60_s": 1.2, "drr_db": -5.0, "dsp_rt60_s": 0.9, "model": "reverb_blind"})
    tgt = feats(env=env_t, blind={"rt60_s": 1.0, "drr_db": 1.0, "dsp_rt60_s": 0.5, "model": "reverb_blind"})
    p = invert_mode_b(ref, tgt, PARAMS_A, {})
    assert "reverb" not in p and "quiet part" in p["notes"]["reverb"]
    # the same pair the other way round (the reference is the filled one) gets the reverb
    ref2 = feats(env=env_t, blind=ref["reverb"]["blind"])
    p = invert_mode_b(ref2, feats(env=env_r, blind=tgt["reverb"]["blind"]), PARAMS_A, {})
    assert "reverb" in p, p["notes"]["reverb"]


def _sections(rng: np.random.Generator, levels_db: list[float], frames: int = 100) -> np.ndarray:
    """An envelope (dB, 50 ms frames) of sections ``frames`` long at ``levels_db``, each with the same
    fast dynamics (frame-to-frame fluctuation of 2.5 dB): excerpts of one song."""
    return np.concatenate([lv + 2.5 * rng.standard_normal(frames) for lv in levels_db])


def test_compressor_off_when_only_the_slow_level_changes_differ():
    # issue #5: a reference with reverb only (one steady section) beside a target excerpt that breaks
    # into a loud chorus; the whole-file upper quantiles of the target are far wider, its fast
    # dynamics are not
    rng = np.random.default_rng(4)
    env_t = _sections(rng, [-28.0, -28.0, -28.0, -28.0, -28.0, -16.0, -16.0, -16.0])
    dry_r = _sections(rng, [-20.0] * 8)
    env_r = _with_reverb(dry_r, 0.05, {"rt60_s": 1.5, "mix": 0.4, "wet_gain": 1.0})
    p = invert_mode_b(feats(env=env_r), feats(env=env_t), PARAMS_A, {})
    assert "compressor" not in p
    assert "fast dynamics are not clearly tighter" in p["notes"]["compressor"]


def test_compressor_on_for_a_compressed_reference_whatever_its_sections():
    # the same target, and a reference that is another excerpt through a 4:1 compressor whose
    # threshold lies below both sections: its peaks above the local level are lower too, so the
    # compressor stays
    rng = np.random.default_rng(4)
    env_t = _sections(rng, [-28.0, -28.0, -28.0, -28.0, -28.0, -16.0, -16.0, -16.0])
    dry_r = _sections(rng, [-28.0, -28.0, -16.0, -16.0, -16.0, -28.0, -28.0, -28.0])
    env_r = dry_r - frame_gain_reduction_db(dry_r, 0.05, -34.0, 4.0, 5.0, 150.0)
    p = invert_mode_b(feats(env=env_r), feats(env=env_t), PARAMS_A, {})
    assert p["notes"]["compressor"].startswith("on:")
    assert p["compressor"]["ratio"] >= 2.0


def test_a_longer_reference_read_at_a_coarser_hop_is_not_taken_for_a_compressed_one():
    # the features thin the envelope of a long recording (a 5-minute reference: 150 ms frames); read
    # at 150 ms, the same music has lower peaks than a 40-s target read at 50 ms
    rng = np.random.default_rng(5)
    fine_r = -20 + 6 * rng.standard_normal(2400)
    env_t = -20 + 6 * rng.standard_normal(800)

    def long_ref(env_50ms: np.ndarray) -> dict:
        f = feats(env=10 * np.log10(np.mean(10 ** (env_50ms.reshape(-1, 3) / 10), axis=1)))
        f["dynamics"]["rms_hop_s"] = 0.15
        return f

    p = invert_mode_b(long_ref(fine_r), feats(env=env_t), PARAMS_A, {})
    assert "compressor" not in p and "not more compressed" in p["notes"]["compressor"]
    # the same reference through a 4:1 compressor still gets one
    squeezed = fine_r - frame_gain_reduction_db(fine_r, 0.05, -22.0, 4.0, 10.0, 150.0)
    p = invert_mode_b(long_ref(squeezed), feats(env=env_t), PARAMS_A, {})
    assert p["notes"]["compressor"].startswith("on:") and p["compressor"]["ratio"] >= 2.0


def _as_file(env_50ms: np.ndarray, duration_s: float, blind: dict) -> dict:
    """Features of a recording whose 50-ms envelope is ``env_50ms``, looped to ``duration_s``: the
    envelope thinned as the features thin it (over 100 s: 3 minutes at 100 ms, 5 minutes at 150 ms)."""
    n = round(duration_s / 0.05)
    rf = reduce_factor(n)
    f = feats(env=energy_mean_db(np.resize(env_50ms, n), rf), blind=blind, duration=duration_s)
    f["dynamics"]["rms_hop_s"] = 0.05 * rf
    return f


def test_reverb_decision_does_not_change_when_one_file_is_long():
    # the same recordings as 30-s excerpts and as long files (their envelopes at 100 ms / 150 ms): a
    # coarser envelope has a narrower range and a shallower quiet part, so before the two envelopes
    # were read at a common hop a long target read as the compressed / filled one, a long reference
    # as the wetter one, and the reverb switched on or off for that reason alone
    rng = np.random.default_rng(5)
    dry = -20 + 6 * rng.standard_normal(600)
    filled = np.maximum(dry, np.percentile(dry, 20))  # a wetter recording's quiet part: filled
    squeezed = dry - dynamic_gain_reduction_db(dry, 0.05, -26.0, 8.0, 10.0, 150.0)
    wet = {"rt60_s": 1.2, "drr_db": -5.0, "dsp_rt60_s": 0.9, "model": "reverb_blind"}
    drier = {"rt60_s": 1.0, "drr_db": 1.0, "dsp_rt60_s": 0.5, "model": "reverb_blind"}

    def reverb_note(ref_env, ref_s, tgt_env, tgt_s) -> str:
        p = invert_mode_b(_as_file(ref_env, ref_s, wet), _as_file(tgt_env, tgt_s, drier), PARAMS_A, {})
        assert ("reverb" in p) == p["notes"]["reverb"].startswith("on:")
        return p["notes"]["reverb"]

    # a wetter reference (filled quiet part) beside a 3-minute target: on, as beside its excerpt
    assert reverb_note(filled, 30, dry, 30).startswith("on:")
    assert reverb_note(filled, 30, dry, 180).startswith("on:")
    # a 3-minute dynamic reference beside a filled target: off, as its excerpt is
    assert reverb_note(dry, 30, filled, 30).startswith("off:")
    assert reverb_note(dry, 180, filled, 30).startswith("off:")
    # a 5-minute dynamic reference beside a compressed target: off for the level range, as its excerpt
    short, long = reverb_note(dry, 30, squeezed, 30), reverb_note(dry, 300, squeezed, 30)
    assert "level range is wider" in short and "level range is wider" in long


@pytest.mark.parametrize("colour", ["white", "pink", "brown"])
def test_a_noise_reference_of_any_colour_turns_the_compressor_and_reverb_off(colour: str) -> None:
    """Issue #5's "pure noise": white noise's flat envelope read as stationary, but pink noise's 50 ms
    envelope spans 1.6 dB (over the 1 dB rule) and brown noise's 13 dB, so a pink-noise reference got
    a 5:1 compressor and brown noise an RT60 of 10 s. The spectrum's frame-to-frame variation is
    the same for noise of any colour (2.9 dB) and far larger for music (6.7-25 dB)."""
    from engine.invert_mode_b import NOISE_SPECTRAL_STD_DB, spectral_fluctuation_db

    rng = np.random.default_rng(3)
    n = 12 * FS_E2E
    tilt = {"white": 0.0, "pink": 0.5, "brown": 1.0}[colour]
    f = np.fft.rfftfreq(n, 1 / FS_E2E)
    f[0] = f[1]
    noise = np.fft.irfft(np.fft.rfft(rng.standard_normal((n, 2)), axis=0) / f[:, None] ** tilt, n=n, axis=0)
    noise = (0.3 * noise / np.max(np.abs(noise))).astype(np.float32)
    ref = _features(noise)
    tgt = _features(_dry(5, 12.0))
    assert spectral_fluctuation_db(ref) < NOISE_SPECTRAL_STD_DB < spectral_fluctuation_db(tgt)
    p = invert_mode_b(ref, tgt, PARAMS_A, {})
    assert "compressor" not in p and "reverb" not in p
    note = p["notes"]["compressor"]
    assert note.startswith("off: the reference is stationary (noise or a steady tone)"), p["notes"]
    assert "stationary (noise or a steady tone)" in p["notes"]["reverb"], p["notes"]


def test_an_anti_phase_reference_is_not_taken_for_noise() -> None:
    """The STFT statistics are of the mid channel: an L = -R recording's mid is empty, its points sit
    at the floor with no variation at all, which is not the sound's (it is all in the side)."""
    from engine.invert_mode_b import spectral_fluctuation_db

    x = _dry(5, 8.0)
    anti = np.stack([x[:, 0], -x[:, 0]], axis=1)
    assert spectral_fluctuation_db(_features(anti)) is None
    assert spectral_fluctuation_db(_features(x)) > 6.0
