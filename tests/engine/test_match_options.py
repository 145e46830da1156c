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
    assert analysis_options("A") == {"pitch": False, "blind_reverb": False, "true_peak": False}
    assert analysis_options("b") == {"pitch": True, "blind_reverb": True, "true_peak": False}
    with pytest.raises(TonematchError):
        analysis_options("C")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return write_example_pair(tmp_path_factory.mktemp("pair"), duration_s=6.0)


def test_mode_a_skips_f0_and_mode_b_gets_learned_reverb(pair: dict[str, str], tmp_path) -> None:
    a = engine.match_files(pair["reference"], pair["target"], tmp_path / "a.wav", mode="A",
                           measure_result=False)
    assert a["target_features"]["f0"]["measured"] is False
    # the inputs' true peak is not needed; the result's is measured (the report and its features)
    assert a["target_features"]["true_peak_measured"] is False
    assert a["report"]["true_peak_dbtp"] is not None
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


def _spiky_target(fs: int = 44100, seconds: float = 8.0) -> np.ndarray:
    """Loud 60 Hz bursts (80 ms every 0.5 s) over a quiet pad: its peaks sit far above its loudness."""
    t = np.arange(int(seconds * fs)) / fs
    x = np.where((t % 0.5) < 0.08, 0.9 * np.sin(2 * np.pi * 60.0 * t),
                 0.01 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    return np.stack([x, x], axis=1)


def test_the_reference_loudness_is_not_reached_by_flattening_the_target(tmp_path) -> None:
    """A dense, loud reference and a spiky target: the reference's loudness would need the limiter to
    cut hard most of the time, so the match stops short and says so; an explicit target is reached."""
    from engine.audio_io import write_audio
    from engine.examples import synth_music
    from engine.loudness import integrated_loudness_lufs
    from engine.render import MAX_HARD_LIMIT_SHARE

    fs = 44100
    ref = synth_music(8.0, fs, seed=3)
    ref = (ref / np.abs(ref).max() * 0.89).astype(np.float32)
    write_audio(tmp_path / "ref.wav", ref, fs, "wav24")
    write_audio(tmp_path / "tgt.wav", _spiky_target(fs), fs, "wav24")
    ref_lufs = integrated_loudness_lufs(ref, fs)

    kept = engine.match_files(tmp_path / "ref.wav", tmp_path / "tgt.wav", tmp_path / "a.wav")
    assert kept["report"]["lufs_integrated"] < ref_lufs - 1.0
    assert kept["report"]["artifacts_rate"] <= MAX_HARD_LIMIT_SHARE + 0.03
    assert any("not reached" in w for w in kept["warnings"])
    assert "not reached" in kept["style_params"]["notes"]["lufs"]

    forced = engine.match_files(tmp_path / "ref.wav", tmp_path / "tgt.wav", tmp_path / "b.wav",
                                opts={"target_lufs": round(ref_lufs, 1)})
    assert abs(forced["report"]["lufs_integrated"] - round(ref_lufs, 1)) <= 0.2
    assert forced["report"]["artifacts_rate"] > 2 * MAX_HARD_LIMIT_SHARE  # what reaching it costs
    assert not any("not reached" in w for w in forced["warnings"])


def test_a_preset_from_a_capped_match_reapplies_to_the_same_result(tmp_path) -> None:
    """The preset keeps the loudness the match reached (and names the reference's in its notes), so
    `apply` on the same target gives the match's audio instead of forcing the original target."""
    from engine.audio_io import write_audio
    from engine.examples import synth_music
    from engine.render import render_file

    fs = 44100
    ref = synth_music(8.0, fs, seed=3)
    write_audio(tmp_path / "ref.wav", (ref / np.abs(ref).max() * 0.89).astype(np.float32), fs, "wav24")
    write_audio(tmp_path / "tgt.wav", _spiky_target(fs), fs, "wav24")
    r = engine.match_files(tmp_path / "ref.wav", tmp_path / "tgt.wav", tmp_path / "a.wav",
                           measure_result=True)
    assert r["metrics"]["lufs_err"] > 1.0  # scored against the loudness asked for
    params = r["style_params"]
    assert abs(params["lufs"]["target_db"] - r["report"]["lufs_integrated"]) < 0.01
    reapplied = {**params, "lufs": {"target_db": params["lufs"]["target_db"]}}  # as `apply` does
    again = render_file(tmp_path / "tgt.wav", tmp_path / "b.wav", reapplied)
    assert abs(again["lufs_integrated"] - r["report"]["lufs_integrated"]) <= 0.2
    assert again["artifacts_rate"] <= r["report"]["artifacts_rate"] + 0.05


def test_a_target_with_a_dc_offset_still_reaches_the_reference_loudness(pair: dict[str, str],
                                                                        tmp_path) -> None:
    # the offset is inaudible but sat in every sample peak: the limiter spent its headroom on it and
    # the match stopped 5.8 LU short; the high-pass takes it out before the gain
    import soundfile as sf

    x, fs = sf.read(pair["target"], dtype="float32", always_2d=True)
    sf.write(tmp_path / "plain.wav", 0.3 * x, fs, subtype="PCM_24")
    plain = engine.match_files(pair["reference"], str(tmp_path / "plain.wav"), tmp_path / "p.wav", mode="A")
    src = tmp_path / "dc.wav"
    sf.write(src, np.clip(0.3 * x + 0.4, -1.0, 1.0), fs, subtype="PCM_24")
    res = engine.match_files(pair["reference"], str(src), tmp_path / "o.wav", mode="A")
    assert res["style_params"]["eq"][0]["type"] == "high_pass"
    assert res["metrics"]["lufs_err"] <= 0.2
    # the file starts on the offset: the high-pass passes that step as a pulse decaying over ~30 ms,
    # which the limiter clamps once (0.016 of these 6 s; the unfiltered match was limited on 0.065)
    assert res["metrics"]["artifacts_rate"] <= plain["metrics"]["artifacts_rate"] + 0.03
    y, _ = sf.read(tmp_path / "o.wav", dtype="float32")
    assert np.abs(y.mean(axis=0)).max() < 0.003


def test_an_output_rate_below_the_target_leaves_out_the_top_eq_bands(tmp_path) -> None:
    import soundfile as sf
    from scipy.signal import butter, sosfilt

    fs = 44100
    rng = np.random.default_rng(9)
    target = 0.1 * rng.standard_normal((fs * 12, 2))
    # the reference: the same kind of noise with its top octaves 9 dB up (a high shelf the fit finds)
    other = 0.1 * rng.standard_normal((fs * 12, 2))
    reference = other + 1.8 * sosfilt(butter(4, 6000, "highpass", fs=fs, output="sos"), other, axis=0)
    sf.write(tmp_path / "ref.wav", reference / np.max(np.abs(reference)) * 0.5, fs)
    sf.write(tmp_path / "tgt.wav", target, fs)
    full = engine.match_files(tmp_path / "ref.wav", tmp_path / "tgt.wav", tmp_path / "full.wav",
                              measure_result=False)
    assert any(b["f_hz"] >= 0.49 * 8000 for b in full["style_params"]["eq"])
    low = engine.match_files(tmp_path / "ref.wav", tmp_path / "tgt.wav", tmp_path / "phone.wav",
                             opts={"output_sample_rate_hz": 8000}, measure_result=False)
    assert all(b["f_hz"] < 0.49 * 8000 for b in low["style_params"]["eq"])
    assert any("left out for 8000 Hz audio" in w for w in low["warnings"])
    assert sf.info(tmp_path / "phone.wav").samplerate == 8000


def test_clipped_and_hot_float_targets_get_different_warnings(pair: dict[str, str], tmp_path) -> None:
    import soundfile as sf

    audio, fs = sf.read(pair["target"], dtype="float32")
    scaled = audio / np.max(np.abs(audio))
    clipped = tmp_path / "clipped.wav"
    sf.write(clipped, np.clip(scaled * 2.0, -1.0, 1.0), fs, subtype="PCM_16")
    hot = tmp_path / "hot.wav"
    sf.write(hot, scaled * 4.0, fs, subtype="FLOAT")  # 12 dB over full scale, nothing lost
    res = {name: engine.match_files(pair["reference"], path, tmp_path / f"{name}_out.wav",
                                    measure_result=False)
           for name, path in (("clipped", clipped), ("hot", hot))}
    assert any("probably clipped" in w for w in res["clipped"]["warnings"])
    hot_warnings = [w for w in res["hot"]["warnings"] if "full scale" in w]
    assert hot_warnings and "12.0 dB over full scale" in hot_warnings[0] and "not clipped" in hot_warnings[0]
    assert not any("probably clipped" in w for w in res["hot"]["warnings"])
    assert res["hot"]["report"]["true_peak_dbtp"] <= -1.0
