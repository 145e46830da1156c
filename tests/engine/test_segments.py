"""Segmented rendering joins to the whole-file render."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.errors import ParamsError
from engine.examples import synth_music
from engine.render import render_file, resolve_gain
from engine.segments import merge_segments, plan_segments, render_segment

FS = 44100
PARAMS = {
    "eq": [{"type": "peaking", "f_hz": 60.0, "q": 2.0, "gain_db": 4.0},
           {"type": "high_shelf", "f_hz": 6000.0, "q": 0.7, "gain_db": 3.0}],
    "stereo": {"width": 1.2},
    "lufs": {"target_db": -10.0},
    "limiter": {"tp_db": -1.0, "lookahead_ms": 1.5, "release_ms": 100.0},
}


def test_plan_covers_the_whole_duration() -> None:
    plan = plan_segments(185.0, 60.0)
    assert [s["idx"] for s in plan] == [0, 1, 2]
    assert plan[0]["start_s"] == 0.0 and plan[-1]["stop_s"] == 185.0
    assert all(a["stop_s"] == b["start_s"] for a, b in itertools.pairwise(plan))
    assert plan[0]["preroll_s"] == 0.0 and plan[1]["preroll_s"] > 0
    assert plan[-1]["crossfade_s"] == 0.0
    assert len(plan_segments(30.0, 60.0)) == 1
    with pytest.raises(ParamsError):
        plan_segments(0.0)


def test_plan_keeps_a_pitch_shift_in_one_segment_and_covers_reverb_tails() -> None:
    pitched = {**PARAMS, "pitch": {"semitones": 2}}
    assert len(plan_segments(600.0, 60.0, style_params=pitched)) == 1
    assert len(plan_segments(600.0, 60.0, style_params={**pitched, "pitch": {"semitones": 0}})) == 10
    wet = {**PARAMS, "reverb": {"ir_key": "ir/hall_3.0s.wav", "mix": 0.3, "pre_delay_ms": 20.0}}
    plan = plan_segments(600.0, 60.0, style_params=wet)
    assert all(s["preroll_s"] >= 4.5 for s in plan[1:])


# mode B: a compressor's release and a 3 s reverb tail cross every segment boundary
PARAMS_B = {**PARAMS, "lufs": {"target_db": -12.0},
            "compressor": {"threshold_db": -28.0, "ratio": 4.0, "attack_ms": 10.0, "release_ms": 150.0,
                           "makeup_db": 3.0, "knee_db": 6.0},
            "reverb": {"ir_key": "ir/hall_2.0s.wav", "mix": 0.3, "pre_delay_ms": 20.0}}


@pytest.mark.parametrize(("rate", "style"), [(None, "A"), (48000, "A"), (None, "B"), (48000, "B")])
def test_segmented_render_equals_whole_render(tmp_path: Path, rate: int | None, style: str) -> None:
    x = synth_music(16.0, FS, seed=5)
    src = tmp_path / "in.wav"
    sf.write(src, x, FS, subtype="FLOAT")
    params = resolve_gain(src, PARAMS if style == "A" else PARAMS_B, sample_rate_hz=rate)
    render_file(src, tmp_path / "whole.wav", params, fmt="float32", sample_rate_hz=rate)
    plan = plan_segments(16.0, 5.0, style_params=params)
    paths = []
    for seg in plan:
        p = tmp_path / f"seg{seg['idx']}.wav"
        render_segment(src, p, params, seg, sample_rate_hz=rate or FS)
        paths.append(p)
    rep = merge_segments(paths, plan, tmp_path / "merged.wav", fmt="float32", sample_rate_hz=rate or FS)
    a, _ = sf.read(tmp_path / "whole.wav")
    b, _ = sf.read(tmp_path / "merged.wav")
    assert a.shape == b.shape
    rel = 10 * np.log10(np.sum((a - b) ** 2) / np.sum(a ** 2) + 1e-300)
    assert rel < -100
    assert rep["true_peak_dbtp"] <= -1.0 + 1e-3
    assert abs(rep["lufs_integrated"] - params["lufs"]["target_db"]) <= 0.2


def test_segment_render_refuses_unresolved_gain(tmp_path: Path) -> None:
    x = synth_music(4.0, FS, seed=1)
    sf.write(tmp_path / "in.wav", x, FS)
    with pytest.raises(ParamsError) as e:
        render_segment(tmp_path / "in.wav", tmp_path / "s.wav", PARAMS, plan_segments(4.0, 2.0)[1])
    assert e.value.where == "lufs.gain_db"


def test_merge_analyses_the_result_as_analyze_features_would(tmp_path: Path) -> None:
    from engine.features import analyze_features

    x = synth_music(12.0, FS, seed=3)
    src = tmp_path / "in.wav"
    sf.write(src, x, FS, subtype="FLOAT")
    params = resolve_gain(src, PARAMS)
    plan = plan_segments(12.0, 5.0)
    paths = []
    for seg in plan:
        p = tmp_path / f"seg{seg['idx']}.wav"
        render_segment(src, p, params, seg)
        paths.append(p)
    out = tmp_path / "merged.wav"
    rep = merge_segments(paths, plan, out, fmt="float32", analysis={"pitch": True})
    got = rep["features"]
    want = analyze_features(out)  # the written float32 file holds exactly the analysed blocks
    assert got["duration_s"] == want["duration_s"] and got["channels"] == want["channels"]
    assert got["loudness"]["integrated_lufs"] == pytest.approx(want["loudness"]["integrated_lufs"], abs=1e-3)
    assert got["true_peak_dbtp"] == pytest.approx(want["true_peak_dbtp"], abs=1e-3)
    for block, field in (("spectrum", "mid_db"), ("spectrum", "side_db"), ("mel", "mean_db"),
                         ("stft", "mag_db_mean")):
        np.testing.assert_allclose(got[block][field], want[block][field], atol=1e-2)
    assert got["f0"]["median_f0_hz"] == pytest.approx(want["f0"]["median_f0_hz"], rel=1e-3)
    plain = merge_segments(paths, plan, tmp_path / "m2.wav", fmt="float32")
    assert "features" not in plain
    # the report's loudness and true peak (then taken from the analyser's meters) are unchanged
    for k in ("lufs_integrated", "true_peak_dbtp", "sample_peak_dbfs", "frames", "artifacts_rate",
              "gain_reduction_db", "clipped_frames"):
        assert rep[k] == plain[k], k
    assert rep["lufs_integrated"] == got["loudness"]["integrated_lufs"]
    assert rep["true_peak_dbtp"] == got["true_peak_dbtp"]


def test_merge_analysis_error_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.errors import AudioInputError
    from engine.features import FeatureAnalyzer

    def broken(self, block):
        raise AudioInputError("analysis broke", where="audio")

    monkeypatch.setattr(FeatureAnalyzer, "feed", broken)
    x = synth_music(4.0, FS, seed=4)
    src = tmp_path / "in.wav"
    sf.write(src, x, FS, subtype="FLOAT")
    params = resolve_gain(src, PARAMS)
    plan = plan_segments(4.0, 4.0)
    render_segment(src, tmp_path / "s.wav", params, plan[0])
    with pytest.raises(AudioInputError, match="analysis broke"):
        merge_segments([tmp_path / "s.wav"], plan, tmp_path / "m.wav", analysis={"pitch": False})
    assert not list(tmp_path.glob("m*"))  # no output, no temp file left behind


def test_merge_report_carries_the_segments_gain_reduction_like_a_whole_render(tmp_path: Path) -> None:
    x = synth_music(20.0, FS, seed=6)
    src = tmp_path / "in.wav"
    sf.write(src, x, FS, subtype="FLOAT")
    params = resolve_gain(src, {**PARAMS, "lufs": {"target_db": -10.0}})  # loud: the limiter works hard
    whole = render_file(src, tmp_path / "whole.wav", params, fmt="float32")
    plan = plan_segments(20.0, 6.0)
    paths, reports = [], []
    for seg in plan:
        p = tmp_path / f"seg{seg['idx']}.wav"
        reports.append(render_segment(src, p, params, seg))
        paths.append(p)
    rep = merge_segments(paths, plan, tmp_path / "merged.wav", fmt="float32", segment_reports=reports)
    want = np.asarray(whole["gain_reduction_db"])
    got = np.asarray(rep["gain_reduction_db"])
    assert whole["gain_reduction_max_db"] > 1.0
    assert rep["gain_reduction_hop_s"] == whole["gain_reduction_hop_s"]
    assert got.shape == want.shape
    assert rep["gain_reduction_max_db"] == pytest.approx(whole["gain_reduction_max_db"], abs=0.02)
    # equal bin for bin except where a segment bin straddles two merged bins (then >= the whole's)
    assert np.all(got >= want - 0.011) and np.mean(np.abs(got - want) <= 0.011) > 0.9
    assert whole["artifacts_rate"] > 0.01
    # exact but for the crossfades (counted by both neighbours; the merge corrects that on average)
    bound = (len(plan) - 1) * round(0.05 * FS) / whole["frames"]
    assert rep["artifacts_rate"] == pytest.approx(whole["artifacts_rate"], abs=bound)
    plain = merge_segments(paths, plan, tmp_path / "m2.wav", fmt="float32")
    assert plain["gain_reduction_max_db"] == 0.0  # without the segments' reports the merge sees no limiter


def test_resolve_gain_gives_render_files_gain_when_the_corrective_pass_runs(tmp_path: Path) -> None:
    x = synth_music(12.0, FS, seed=2)
    src = tmp_path / "in.wav"
    sf.write(src, x, FS, subtype="PCM_24")
    params = {**PARAMS, "lufs": {"target_db": -9.0}}  # limited hard enough for the model to miss
    report = render_file(src, tmp_path / "whole.wav", params, fmt="float32")
    assert report["post_passes"] == 2
    assert resolve_gain(src, params, verify=True)["lufs"]["gain_db"] == report["gain_db"]


def test_a_slow_limiter_release_is_settled_before_each_join(tmp_path: Path) -> None:
    """A preset may hold a 2 s limiter release (the range allows it). A burst 3 s before a join left
    the whole-file limiter still releasing there, while the segment's 3 s pre-roll had let its own
    limiter recover: -21 dBFS of difference after the join. The pre-roll now covers the release."""
    x = 0.02 * synth_music(30.0, FS, seed=3)
    burst = slice(int(16.95 * FS), int(17.0 * FS))
    x[burst] = 0.9 * np.sign(np.sin(np.arange(burst.stop - burst.start) * 0.05))[:, None]
    src = tmp_path / "in.wav"
    sf.write(src, x, FS, subtype="FLOAT")
    limiter = {"tp_db": -1.0, "lookahead_ms": 1.5, "release_ms": 2000.0}
    params = {"lufs": {"gain_db": 20.0}, "limiter": limiter}
    render_file(src, tmp_path / "whole.wav", params, fmt="float32")
    plan = plan_segments(30.0, 10.0, style_params=params)
    assert plan[2]["start_s"] == 20.0 and plan[2]["preroll_s"] == 9 * 2.0
    paths = []
    for seg in plan:
        p = tmp_path / f"seg{seg['idx']}.wav"
        render_segment(src, p, params, seg, sample_rate_hz=FS)
        paths.append(p)
    merge_segments(paths, plan, tmp_path / "merged.wav", fmt="float32", sample_rate_hz=FS)
    a, _ = sf.read(tmp_path / "whole.wav")
    b, _ = sf.read(tmp_path / "merged.wav")
    assert a.shape == b.shape and 20 * np.log10(np.max(np.abs(a - b)) + 1e-300) < -60.0
