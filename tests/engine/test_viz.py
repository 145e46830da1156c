"""Visualisation document: shape of the contract, series on common grids, <= 2000 points."""

from __future__ import annotations

import json

import numpy as np

from engine.features import analyze_features
from engine.viz import MAX_POINTS, visualisation

FS = 22050


def tone_and_noise(seconds: float, seed: int, gain: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS)) / FS
    tone = 0.2 * np.sin(2 * np.pi * 196.0 * t) * (np.sin(2 * np.pi * 0.25 * t) > 0)
    x = tone[:, None] + 0.02 * rng.standard_normal((t.size, 2))
    return (gain * x).astype(np.float32)


def test_visualisation_shape_and_alignment() -> None:
    tgt = analyze_features(tone_and_noise(12.0, 1, 0.5), sample_rate_hz=FS)
    ref = analyze_features(tone_and_noise(9.0, 2), sample_rate_hz=FS)
    res = analyze_features(tone_and_noise(12.0, 1), sample_rate_hz=FS)
    report = {"gain_reduction_db": list(np.linspace(0, 3, 5000)), "gain_reduction_hop_s": 0.0024}
    viz = visualisation(tgt, ref, res, report)
    assert json.loads(json.dumps(viz, allow_nan=False)) == viz
    assert set(viz) == {"lufs_trajectory", "gain_reduction", "f0", "mid_side", "spectrum"}
    lt = viz["lufs_trajectory"]
    assert len(lt["target"]) == len(lt["result"]) > 0 and lt["hop_s"] == 0.1
    # the result is the target 6 dB louder
    diff = np.subtract(lt["result"], lt["target"])
    np.testing.assert_allclose(diff, 6.02, atol=0.05)
    gr = viz["gain_reduction"]
    assert len(gr["db"]) <= MAX_POINTS and max(gr["db"]) == 3.0
    assert gr["hop_s"] * len(gr["db"]) >= 0.0024 * 5000 * 0.99
    f0 = viz["f0"]
    assert len(f0["target_hz"]) == len(f0["result_hz"]) == len(f0["reference_hz"])
    voiced = np.array(f0["target_hz"]) > 0
    assert 0.3 < voiced.mean() < 0.7  # the tone is gated on and off
    np.testing.assert_allclose(np.array(f0["target_hz"])[voiced], 196.0, rtol=0.01)
    ms = viz["mid_side"]
    assert len(ms["band_edges_hz"]) == len(ms["target_mid_db"]) + 1 == len(ms["reference_side_db"]) + 1
    sp = viz["spectrum"]
    assert len(sp["freqs_hz"]) == len(sp["target_db"]) == len(sp["reference_db"]) == len(sp["result_db"])
    np.testing.assert_allclose(np.subtract(sp["result_db"], sp["target_db"]), 6.02, atol=0.05)


def test_long_series_are_capped() -> None:
    doc = analyze_features(tone_and_noise(4.0, 3), sample_rate_hz=FS)
    long_doc = json.loads(json.dumps(doc))
    long_doc["loudness"]["short_term_lufs"] = [-20.0] * 36000  # an hour at 10 Hz
    long_doc["f0"]["f0_hz"] = [110.0] * 9000
    long_doc["f0"]["voiced"] = [True] * 9000
    viz = visualisation(long_doc, doc, long_doc, {"gain_reduction_db": [1.0] * 50000,
                                                 "gain_reduction_hop_s": 0.1})
    for key, sub in (("lufs_trajectory", "target"), ("lufs_trajectory", "result"), ("gain_reduction", "db"),
                     ("f0", "target_hz"), ("f0", "result_hz")):
        assert 0 < len(viz[key][sub]) <= MAX_POINTS, (key, sub)
    assert viz["lufs_trajectory"]["hop_s"] * len(viz["lufs_trajectory"]["target"]) >= 3600 * 0.99


def test_missing_report_and_documents() -> None:
    doc = analyze_features(tone_and_noise(4.0, 4), sample_rate_hz=FS)
    viz = visualisation(doc, {}, doc, None)
    assert viz["gain_reduction"]["db"] == []
    assert set(viz["spectrum"]["reference_db"]) == {None}
    assert json.loads(json.dumps(viz, allow_nan=False)) == viz
