"""Learned blind reverb estimator: shipped small, loaded through onnxruntime, better than the DSP one."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy import signal

from engine.estimators import MODEL_DIR, MODEL_NAME, estimate_reverb, model_card
from engine.estimators.train_reverb import music_source
from engine.ir_library import generate_ir

FS = 16000


def _reverberant(dry: np.ndarray, key: str, drr_db: float) -> np.ndarray:
    ir = generate_ir(key, FS)[:, 0].astype(np.float64)
    wet = signal.fftconvolve(dry, ir)[: len(dry)]
    g = np.sqrt(np.sum(dry**2) / np.sum(wet**2)) * 10 ** (-drr_db / 20)
    y = dry + g * wet
    return (0.3 * y / np.max(np.abs(y)))[:, None]


def test_shipped_model_is_small_and_its_card_reports_heldout_errors():
    onnx_path = MODEL_DIR / f"{MODEL_NAME}.onnx"
    assert onnx_path.stat().st_size < 5 * 1024 * 1024
    card = model_card()
    held = card["heldout"]
    assert held["learned"]["n"] >= 100
    # the reason it ships: on held-out sources and rooms it beats the DSP estimate and a constant DRR
    assert held["learned"]["rt60_median_rel_err"] < held["dsp_rt60"]["rt60_median_rel_err"]
    wet = held["wet_subset_drr_below_6db"]
    assert wet["learned"]["rt60_median_rel_err"] < wet["dsp_rt60"]["rt60_median_rel_err"]
    assert held["learned"]["drr_mae_db"] < held["constant_drr_mae_db"]


def test_estimates_order_dry_and_wet_material_it_never_saw():
    dry = music_source(np.random.default_rng(12345), 12.0)
    small = estimate_reverb(_reverberant(dry, "ir/room_0.33s.wav", 12.0), FS)
    big = estimate_reverb(_reverberant(dry, "ir/hall_2.7s.wav", -2.0), FS)
    assert big["drr_db"] < small["drr_db"] - 5.0
    assert big["rt60_s"] > 2.0 * small["rt60_s"]
    assert big["rt60_s"] == pytest.approx(2.7, rel=0.5)
    assert small["model"] == MODEL_NAME and small["reason"] is None
    json.dumps(big)


def test_a_dc_offset_does_not_read_as_reverb():
    # a constant offset is a floor under every gap of the envelope, which is what reverb looks like
    dry = _reverberant(music_source(np.random.default_rng(12345), 12.0), "ir/room_0.33s.wav", 12.0)
    clean = estimate_reverb(dry, FS)
    offset = estimate_reverb(np.hstack([dry + 0.1, dry + 0.08]), FS)
    assert offset["drr_db"] == pytest.approx(clean["drr_db"], abs=0.5)
    assert offset["rt60_s"] == pytest.approx(clean["rt60_s"], rel=0.05)
    assert offset["dsp_rt60_s"] == pytest.approx(clean["dsp_rt60_s"], rel=0.05)


def test_the_offset_removed_is_the_one_pauses_rest_on():
    from engine.estimators.reverb_features import prepare

    t = np.arange(4 * FS) / FS
    burst = np.sin(2 * np.pi * 220 * t) + 0.4 * np.abs(np.sin(2 * np.pi * 330 * t))  # mean far from 0
    x = np.where((t % 0.5) < 0.2, burst, 0.0)
    pauses = (t % 0.5) > 0.25
    # digital-silence pauses stay silent (subtracting the plain mean would lift them to a floor)
    assert np.max(np.abs(prepare(x[:, None], FS)[pauses])) < 1e-12
    # pauses resting on an offset come back to zero, and the audio with them
    assert np.allclose(prepare((x + 0.1)[:, None], FS), prepare(x[:, None], FS), atol=1e-9)


@pytest.mark.parametrize(
    ("audio", "reason"),
    [
        (np.zeros((FS * 5, 2), np.float32), "digital silence"),
        (np.ones((FS // 2, 1), np.float32), "shorter than 1.5 s"),
        (0.1 * np.random.default_rng(0).standard_normal((FS * 5, 2)).astype(np.float32), "stationary noise"),
    ],
)
def test_silence_noise_and_short_audio_give_no_estimate_and_say_why(audio, reason):
    est = estimate_reverb(audio, FS)
    assert est["rt60_s"] is None and est["drr_db"] is None
    assert reason in est["reason"]


@pytest.mark.slow
def test_training_script_runs_end_to_end_and_exports_a_loadable_model(tmp_path):
    pytest.importorskip("torch")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    import onnxruntime as ort

    from engine.estimators.reverb_features import N_FEATURES
    from engine.estimators.train_reverb import main

    args = ["--out-dir", str(tmp_path), "--speech", "4", "--music", "4", "--per-source", "3", "--epochs", "5"]
    card = main(args)
    sess = ort.InferenceSession(str(tmp_path / f"{MODEL_NAME}.onnx"), providers=["CPUExecutionProvider"])
    y = sess.run(["y"], {"features": np.zeros((3, N_FEATURES), np.float32)})[0]
    assert y.shape == (3, 2) and np.all(np.isfinite(y))
    assert json.loads((tmp_path / f"{MODEL_NAME}.json").read_text())["heldout"] == card["heldout"]
