"""match_files: per-mode analysis options, mode B's learned reverb estimate, compressor gain reduction."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.errors import TonematchError
from engine.examples import write_example_pair
from engine.features import analysis_options
from engine.render import render


def test_analysis_options_per_mode() -> None:
    assert analysis_options("A") == {"pitch": False, "blind_reverb": False}
    assert analysis_options("b") == {"pitch": True, "blind_reverb": True}
    with pytest.raises(TonematchError):
        analysis_options("C")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return write_example_pair(tmp_path_factory.mktemp("pair"), duration_s=6.0)


def test_mode_a_skips_f0_and_mode_b_gets_learned_reverb(pair: dict[str, str], tmp_path) -> None:
    a = engine.match_files(pair["reference"], pair["target"], tmp_path / "a.wav", mode="A",
                           measure_result=False)
    assert a["target_features"]["f0"]["measured"] is False
    assert "blind" not in a["reference_features"]["reverb"]
    b = engine.match_files(pair["reference"], pair["target"], tmp_path / "b.wav", mode="B",
                           measure_result=False)
    for key in ("reference_features", "target_features"):
        assert b[key]["f0"]["measured"] is True
        assert "blind" in b[key]["reverb"]


def test_report_gain_reduction_includes_the_compressor() -> None:
    fs = 44100
    t = np.arange(3 * fs) / fs
    x = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[:, None].repeat(2, axis=1)
    params = {"compressor": {"threshold_db": -30.0, "ratio": 4.0, "attack_ms": 5.0, "release_ms": 50.0,
                             "makeup_db": 0.0, "knee_db": 0.0}}
    _, rep = render(x, params, sample_rate_hz=fs)
    assert rep["gain_reduction_max_db"] > 10.0  # ~ -9 dBFS sine, 21 dB over, ratio 4: ~16 dB
    # with a loudness target the compressor runs in the "pre" pass: its reduction still shows
    _, rep2 = render(x, {**params, "lufs": {"target_db": -30.0}, "limiter": {"tp_db": -1.0}},
                     sample_rate_hz=fs)
    assert rep2["gain_reduction_max_db"] > 10.0
