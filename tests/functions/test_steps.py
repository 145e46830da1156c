"""Pipeline steps as plain functions (functions/pipeline/steps.py), without the runner."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from functions.pipeline import steps

PRESET = {
    "eq": [{"type": "low_shelf", "f_hz": 90.0, "q": 0.7, "gain_db": 3.0},
           {"type": "high_shelf", "f_hz": 9000.0, "q": 0.7, "gain_db": -4.0}],
    "lufs": {"target_db": -16.0, "gain_db": 2.5},
    "limiter": {"tp_db": -1.0, "lookahead_ms": 1.5, "release_ms": 100.0},
    "notes": {"eq": "2 bands"},
}


def _ctx() -> SimpleNamespace:
    status = SimpleNamespace(get_preset=lambda preset_id, user_id: {"style_params": PRESET})
    return SimpleNamespace(status=status)


def test_a_preset_applied_to_a_lower_rate_target_leaves_out_the_bands_it_cannot_carry():
    event = {"preset_id": "p1", "user_id": "u1", "mode": "A", "opts": {}}
    params = steps._preset_params(event, _ctx(), 16000)
    assert [b["f_hz"] for b in params["eq"]] == [90.0]  # 9 kHz is above what 16 kHz audio carries
    note = params["notes"]["eq"]
    assert "left out for 16000 Hz audio" in note and "high_shelf 9000 Hz" in note
    assert "gain_db" not in params["lufs"]  # re-resolved for this target
    full = steps._preset_params(event, _ctx(), 44100)
    assert len(full["eq"]) == 2 and full["notes"]["eq"] == "2 bands"


def test_a_preset_applied_to_an_offset_target_gets_the_dc_high_pass():
    event = {"preset_id": "p1", "user_id": "u1", "mode": "A", "opts": {}}
    params = steps._preset_params(event, _ctx(), 44100, {"dc_offset_dbfs": -18.0, "sample_peak_dbfs": -1.0})
    assert params["eq"][0] == {"type": "high_pass", "f_hz": 10.0, "q": 0.71, "gain_db": 0.0}
    assert "DC offset (-18.0 dBFS)" in params["notes"]["eq"]
    clean = {"dc_offset_dbfs": -90.0, "sample_peak_dbfs": -1.0}
    assert steps._preset_params(event, _ctx(), 44100, clean)["eq"][0]["type"] == "low_shelf"
    # a quiet target: its offset is under -50 dBFS but within 40 dB of its peak (the make-up gain
    # lifts it with the audio), as tonematch match and apply judge it
    quiet = {"dc_offset_dbfs": -52.0, "sample_peak_dbfs": -33.0}
    assert steps._preset_params(event, _ctx(), 44100, quiet)["eq"][0]["type"] == "high_pass"


def test_a_fixed_gain_preset_keeps_its_gain():
    """A preset whose lufs holds only gain_db (no target to resolve toward) applies that gain; it
    was dropped, leaving 'lufs: needs target_db or gain_db'."""
    event = {"preset_id": "p1", "user_id": "u1", "mode": "A", "opts": {}}
    fixed = {"lufs": {"gain_db": -6.0}}
    status = SimpleNamespace(get_preset=lambda preset_id, user_id: {"style_params": fixed})
    ctx = SimpleNamespace(status=status)
    assert steps._preset_params(event, ctx, 44100)["lufs"] == {"gain_db": -6.0}


def test_a_preset_job_keeps_the_presets_ceiling_and_honours_its_options():
    """A preset job rendered at the preset's own ceiling only where the user set none (the job's
    opts then carry ``ceiling_dbtp`` None), and ``exclude`` was silently ignored."""
    two = {**PRESET, "limiter": {**PRESET["limiter"], "tp_db": -2.0}}
    ctx = SimpleNamespace(status=SimpleNamespace(get_preset=lambda preset_id, user_id: {"style_params": two,
                                                                                         "name": "two"}))
    event = {"preset_id": "p1", "user_id": "u1", "mode": "A", "opts": {"ceiling_dbtp": None}}
    assert steps._preset_params(event, ctx, 44100)["limiter"]["tp_db"] == -2.0
    event["opts"] = {"ceiling_dbtp": -3.0, "exclude": ["eq"]}
    params = steps._preset_params(event, ctx, 44100)
    assert params["limiter"]["tp_db"] == -3.0 and "eq" not in params
    event["opts"] = {"intensity": 0.5}
    with pytest.raises(steps.StepFailed, match=r"opts\.intensity"):
        steps._preset_params(event, ctx, 44100)


def test_job_warnings_say_what_tonematch_match_would_warn_about():
    clean = {"frames": 1000, "clipped_frames": 0, "artifacts_rate": 0.0}
    assert steps.job_warnings(clean, PRESET) == []
    flattened = {**clean, "artifacts_rate": 0.4}
    assert steps.job_warnings(flattened, PRESET)[0].startswith("the limiter cuts more than 6 dB on 40 %")
    clipped = {**clean, "clipped_frames": 50}
    assert "clipped in the file" in steps.job_warnings(clipped, PRESET)[0]
    notes = {"lufs": "target -6.00 LUFS not reached: at a -1.0 dBTP ceiling no gain gets there",
             "eq": "8 bands; left out for 8000 Hz audio (nothing above 3920 Hz to shape): high_shelf 9000 Hz"}
    said = steps.job_warnings(clean, {**PRESET, "notes": notes})
    assert said == [f"loudness: {notes['lufs']}",
                    "eq: left out for 8000 Hz audio (nothing above 3920 Hz to shape): high_shelf 9000 Hz"]
    # the render appends its note to where the target came from; the warning is worded as
    # tonematch match words it, without that prefix
    prefixed = {"lufs": f"target set by the options; {notes['lufs']}"}
    assert steps.job_warnings(clean, {**PRESET, "notes": prefixed}) == [f"loudness: {notes['lufs']}"]


def test_job_warnings_name_a_clipped_or_over_full_scale_input():
    clean = {"frames": 1000, "clipped_frames": 0, "artifacts_rate": 0.0}
    said = steps.job_warnings(clean, PRESET, {"sample_peak_dbfs": 0.0}, {"sample_peak_dbfs": 6.02})
    assert said == ["reference goes 6.0 dB over full scale (floating-point samples, not clipped); it is "
                    "measured as it is",
                    "target reaches 0 dBFS (probably clipped); clipping cannot be undone"]
    assert steps.job_warnings(clean, PRESET, {"sample_peak_dbfs": -0.3}, None) == []  # a preset job
    short = {**PRESET, "notes": {"reference": "only 1.5 s long: its spectrum and loudness describe little"}}
    assert steps.job_warnings(clean, short, {"sample_peak_dbfs": -3.0}) == [
        "reference is only 1.5 s long: its spectrum and loudness describe little"]


def test_an_input_error_names_the_object_key_not_the_servers_file_path(ctx, tmp_path):
    """A NaN sample is found only when the target is analysed; the job's error says which object,
    as the other input errors do, and never where the server keeps it."""
    from engine.errors import AudioInputError

    audio = np.random.default_rng(0).standard_normal((44100 * 2, 2)) * 0.1
    audio[100] = np.nan
    sf.write(tmp_path / "nan.wav", audio, 44100, subtype="FLOAT")
    user_id = str(uuid.uuid4())
    key = f"{user_id}/audio/raw/{uuid.uuid4()}.wav"
    ctx.objects.put_file(key, tmp_path / "nan.wav")
    event = {"job_id": str(uuid.uuid4()), "user_id": user_id, "mode": "A", "tgt_key": key, "opts": {}}
    with pytest.raises(AudioInputError) as caught:
        steps.analyze_target(event, ctx)
    said = str(caught.value)
    assert said.startswith(f"target {key}: contains NaN/Inf samples"), said
    assert caught.value.where == f"target {key}"
    assert str(ctx.objects.local_path(key)) not in said and str(tmp_path) not in said


def test_a_preset_job_does_not_warn_about_the_reference_the_preset_was_made_with():
    """A preset saved from a job with a 4 s reference carries that note; a job applying it has no
    reference, and tonematch apply says nothing of it either."""
    event = {"preset_id": "p1", "user_id": "u1", "mode": "A", "opts": {"target_lufs": -12.0}}
    saved = {**PRESET, "lufs": {"gain_db": -6.0},
             "notes": {"eq": "2 bands", "reference": "only 4.0 s long: its spectrum ...",
                       "lufs": "target -9.00 LUFS not reached: ..."}}
    status = SimpleNamespace(get_preset=lambda preset_id, user_id: {"style_params": saved})
    params = steps._preset_params(event, SimpleNamespace(status=status), 44100)
    assert params["notes"] == {"eq": "2 bands"}
    assert params["lufs"] == {"target_db": -12.0}  # the job's target replaces the fixed gain
    report = {"frames": 1000, "clipped_frames": 0, "artifacts_rate": 0.0}
    assert steps.job_warnings(report, params) == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=False)
def test_the_gain_is_solved_on_the_jobs_own_format_as_tonematch_match_solves_it(ctx, tmp_path):
    """Without the limiter a loud target clips in an integer file, and tonematch match measures (and
    corrects its gain by) the clipped file. The service probed in float32, which never clips: its gain
    came out 0.6 dB off the command's and the result 0.5 LU quieter."""
    from engine.examples import synth_music
    from engine.render import render_file
    from tests.functions.conftest import add_user

    user = add_user(ctx)
    src = tmp_path / "t.wav"
    sf.write(src, synth_music(8.0, 44100, seed=4), 44100, subtype="FLOAT")
    key = f"{user['id']}/audio/raw/t.wav"
    ctx.objects.put_file(key, src)
    params = {"lufs": {"target_db": -6.0}}  # no limiter: about a tenth of the frames clip at this level
    opts = {"target_lufs": -6.0, "exclude": ["limiter"], "output_format": "wav24"}
    event = {"job_id": str(uuid.uuid4()), "user_id": user["id"], "tgt_key": key, "opts": opts}
    solved = steps._resolve_gain_like_match(ctx, event, params, 44100)
    cli = render_file(src, tmp_path / "cli.wav", params, fmt="wav24")
    assert cli["clipped_frames"] > 0
    assert solved["lufs"]["gain_db"] == pytest.approx(cli["gain_db"], abs=1e-6)


def test_a_very_long_target_is_cut_into_a_bounded_number_of_segments():
    """A 3-hour target at segment_s 10 was planned as 1080 segments: the plan and the Map's results
    (~300 bytes each) passed Step Functions' 256 KB state limit after every render had run."""
    import json

    stored: dict[str, bytes] = {"u1/work/j1/params.json": json.dumps(PRESET).encode()}
    rows: list[int] = []
    ctx = SimpleNamespace(
        status=SimpleNamespace(advance_job=lambda *a, **k: None, init_segments=lambda job, n: rows.append(n)),
        objects=SimpleNamespace(get_bytes=stored.__getitem__,
                                put_bytes=lambda key, data, ctype: stored.__setitem__(key, data)),
    )

    def plan(duration_s: float) -> dict:
        event = {"job_id": "j1", "user_id": "u1", "opts": {"segment_s": 10.0},
                 "target": {"duration_s": duration_s}, "params": {"params_key": "u1/work/j1/params.json"}}
        return steps.plan_segments(event, ctx)

    out = plan(3 * 3600.0)
    assert out["count"] <= steps.MAX_SEGMENTS and rows[-1] == out["count"]
    assert len(json.dumps(out)) < 100_000
    segs = out["segments"]
    assert segs[0]["start_s"] == 0.0 and segs[-1]["stop_s"] == pytest.approx(3 * 3600.0)
    assert plan(600.0)["count"] == 60  # the asked-for length wherever it fits
