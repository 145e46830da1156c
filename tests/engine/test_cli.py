"""The tonematch command as a user runs it: outputs, presets, and one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.cli import main
from engine.examples import write_example_pair
from engine.loudness import integrated_loudness_lufs
from engine.true_peak import true_peak_dbtp


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return write_example_pair(tmp_path_factory.mktemp("audio"), duration_s=6.0)


def _one_line_error(capsys: pytest.CaptureFixture, rc: int, where: str) -> str:
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"tonematch: error: {where}: "), err
    assert "Traceback" not in err
    return err


@pytest.mark.slow
def test_match_writes_audio_preset_and_eq_text(tmp_path: Path, pair: dict[str, str]) -> None:
    out = tmp_path / "m.flac"
    r = _run("match", pair["reference"], pair["target"], "-o", str(out), "--target-lufs", "-12",
             "--ceiling-dbtp", "-1.5", "--preset-out", str(tmp_path / "p.json"),
             "--eq-apo-out", str(tmp_path / "eq.txt"))
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and "eq" in r.stdout
    y, fs = sf.read(out, dtype="float32")
    assert sf.info(out).format == "FLAC" and y.shape[1] == 2
    assert abs(integrated_loudness_lufs(y, fs) + 12.0) <= 0.2
    assert true_peak_dbtp(y, fs) <= -1.5 + 0.01
    preset = json.loads((tmp_path / "p.json").read_text())
    assert preset["format"] == "tonematch-preset" and preset["style_params"]["limiter"]["tp_db"] == -1.5
    assert (tmp_path / "eq.txt").read_text().startswith("# tonematch EQ")
    # the preset re-applies to another file
    r2 = _run("apply", str(tmp_path / "p.json"), pair["reference"], "-o", str(tmp_path / "a.wav"), "--quiet")
    assert r2.returncode == 0, r2.stderr
    y2, fs2 = sf.read(tmp_path / "a.wav", dtype="float32")
    assert abs(integrated_loudness_lufs(y2, fs2) + 12.0) <= 0.2


@pytest.mark.slow
def test_match_report(tmp_path: Path, pair: dict[str, str]) -> None:
    r = _run("match", pair["reference"], pair["target"], "-o", str(tmp_path / "m.wav"), "--format", "wav16",
             "--report", str(tmp_path / "r.json"), "--intensity", "0.5")
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    assert {"style_params", "metrics", "report", "viz"} <= set(rep)
    assert rep["report"]["true_peak_dbtp"] <= -1.0 + 1e-3
    assert sf.info(tmp_path / "m.wav").subtype == "PCM_16"
    # a 6 s reference is matched, and the user is told it is a thin description of a mix
    assert "only 6.0 s long" in r.stderr and "warning" in r.stderr
    assert any("only 6.0 s long" in w for w in rep["warnings"])


def test_analyze_prints_features_json(pair: dict[str, str], capsys: pytest.CaptureFixture) -> None:
    assert main(["analyze", pair["target"]]) == 0
    feats = json.loads(capsys.readouterr().out)
    assert feats["channels"] == 2 and feats["loudness"]["integrated_lufs"] < -10


def test_example_audio(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["example-audio", str(tmp_path / "ex"), "--duration", "2"]) == 0
    for name in ("reference.wav", "target.wav"):
        info = sf.info(tmp_path / "ex" / name)
        assert info.channels == 2 and abs(info.duration - 2.0) < 0.01


def test_missing_input_is_one_line_and_leaves_no_output(tmp_path: Path, pair: dict[str, str],
                                                       capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "o.wav"
    rc = main(["match", str(tmp_path / "nope.wav"), pair["target"], "-o", str(out)])
    err = _one_line_error(capsys, rc, str(tmp_path / "nope.wav"))
    assert "file not found" in err
    assert not out.exists() and os.listdir(tmp_path) == []


@pytest.mark.parametrize("bad", ["six_channels", "silence", "dc_only", "short", "text"])
def test_bad_inputs_name_the_file(tmp_path: Path, pair: dict[str, str], capsys: pytest.CaptureFixture,
                                  bad: str) -> None:
    src = tmp_path / f"{bad}.wav"
    if bad == "six_channels":
        sf.write(src, np.zeros((44100 * 2, 6), np.float32), 44100)
    elif bad == "silence":
        sf.write(src, np.zeros((44100 * 2, 2), np.float32), 44100)
    elif bad == "dc_only":
        # a dead input with an offset: the meter's start-up step read as -33 LUFS of sound, and the
        # "match" wrote a thump
        hiss = 1e-6 * np.random.default_rng(0).standard_normal((44100 * 2, 2))
        sf.write(src, (0.3 + hiss).astype(np.float32), 44100, subtype="FLOAT")
    elif bad == "short":
        sf.write(src, np.full((4410, 2), 0.1, np.float32), 44100)
    else:
        src.write_text("hello")
    out = tmp_path / "o.wav"
    rc = main(["match", pair["reference"], str(src), "-o", str(out)])
    err = _one_line_error(capsys, rc, str(src))
    assert not out.exists()
    if bad == "dc_only":
        assert "only a constant DC offset (-10.5 dBFS)" in err


@pytest.mark.parametrize("args,where", [
    (["--intensity", "2"], "opts.intensity"),
    (["--target-lufs", "0"], "opts.target_lufs"),
    (["--ceiling-dbtp", "3"], "opts.ceiling_dbtp"),
    (["--mode", "C"], "usage"),
])
def test_bad_options(tmp_path: Path, pair: dict[str, str], capsys: pytest.CaptureFixture, args: list[str],
                     where: str) -> None:
    rc = main(["match", pair["reference"], pair["target"], "-o", str(tmp_path / "o.wav"), *args])
    _one_line_error(capsys, rc, where)
    assert not (tmp_path / "o.wav").exists()


def test_output_must_not_overwrite_the_target(pair: dict[str, str], capsys: pytest.CaptureFixture) -> None:
    before = Path(pair["target"]).read_bytes()
    rc = main(["match", pair["reference"], pair["target"], "-o", pair["target"]])
    _one_line_error(capsys, rc, pair["target"])
    assert Path(pair["target"]).read_bytes() == before


def test_missing_output_folder(tmp_path: Path, pair: dict[str, str], capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "no" / "o.wav"
    rc = main(["match", pair["reference"], pair["target"], "-o", str(out)])
    err = _one_line_error(capsys, rc, str(out))
    assert "does not exist" in err


def test_unknown_output_extension(tmp_path: Path, pair: dict[str, str],
                                  capsys: pytest.CaptureFixture) -> None:
    rc = main(["match", pair["reference"], pair["target"], "-o", str(tmp_path / "o.mp3")])
    _one_line_error(capsys, rc, str(tmp_path / "o.mp3"))


def test_malformed_preset(tmp_path: Path, pair: dict[str, str], capsys: pytest.CaptureFixture) -> None:
    p = tmp_path / "p.json"
    band = {"type": "peaking", "f_hz": 1000, "q": 99, "gain_db": 1}
    p.write_text(json.dumps({"format": "tonematch-preset", "version": 1, "style_params": {"eq": [band]}}))
    rc = main(["apply", str(p), pair["target"], "-o", str(tmp_path / "o.wav")])
    _one_line_error(capsys, rc, "style_params.eq[0].q")
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.slow
def test_other_rate_reference_mono_clipped_target(tmp_path: Path, pair: dict[str, str]) -> None:
    """A 48 kHz reference, a mono clipped 44.1 kHz target: handled as documented (mono stays mono,
    output at the target's rate unless asked, a warning about clipping)."""
    import soxr

    ref, fs = sf.read(pair["reference"], dtype="float32")
    sf.write(tmp_path / "ref48.wav", soxr.resample(ref, fs, 48000), 48000, subtype="PCM_24")
    tgt, _ = sf.read(pair["target"], dtype="float32")
    mono = np.clip(tgt[:, :1] * 8.0, -1.0, 1.0)
    sf.write(tmp_path / "mono.wav", mono, fs, subtype="PCM_16")
    r = _run("match", str(tmp_path / "ref48.wav"), str(tmp_path / "mono.wav"), "-o", str(tmp_path / "o.wav"))
    assert r.returncode == 0, r.stderr
    assert "clipped" in r.stderr and "warning" in r.stderr
    info = sf.info(tmp_path / "o.wav")
    assert info.channels == 1 and info.samplerate == fs
    r = _run("match", str(tmp_path / "ref48.wav"), str(tmp_path / "mono.wav"), "-o", str(tmp_path / "o2.wav"),
             "--sample-rate", "48000")
    assert r.returncode == 0, r.stderr
    assert sf.info(tmp_path / "o2.wav").samplerate == 48000


def test_summary_says_what_mode_b_did_and_why_a_processor_stayed_off(capsys: pytest.CaptureFixture) -> None:
    from engine.cli import _print_summary

    params = {
        "eq": [], "lufs": {"target_db": -16.0, "gain_db": 1.0},
        "limiter": {"tp_db": -1.0, "lookahead_ms": 1.5, "release_ms": 100.0},
        "compressor": {"threshold_db": -29.6, "ratio": 1.5, "attack_ms": 10.0, "release_ms": 120.0,
                       "makeup_db": 2.0, "knee_db": 6.0},
        "reverb": {"ir_key": "ir/room_0.8s.wav", "mix": 0.26, "pre_delay_ms": 13.0},
        "notes": {"compressor": "on: reference more compressed", "reverb": "on: reference wetter",
                  "pitch": "off: median F0 offset +35 cents is under half a semitone"},
    }
    report = {"gain_reduction_max_db": 5.1, "lufs_integrated": -16.0, "true_peak_dbtp": -3.0,
              "duration_s": 10.0}
    _print_summary("o.wav", params, report, None)
    out = capsys.readouterr().out
    assert "compressor threshold -29.6 dB, ratio 1.5:1, attack 10 ms, release 120 ms, makeup +2.0 dB" in out
    assert "reverb  ir/room_0.8s.wav, mix 0.26, pre-delay 13 ms" in out
    assert "pitch   off: median F0 offset +35 cents" in out
    # the report's gain-reduction maximum sums both stages: the line says so
    assert "max gain reduction 5.1 dB (compressor and limiter)" in out
    # mode A: no mode-B lines
    _print_summary("o.wav", {k: params[k] for k in ("eq", "lufs", "limiter")}, report, None)
    out = capsys.readouterr().out
    assert "compressor" not in out and "reverb" not in out and "pitch" not in out
    assert "(limiter)" in out


def test_apply_leaves_out_eq_bands_a_lower_rate_target_cannot_carry(tmp_path: Path) -> None:
    preset = tmp_path / "p.json"
    preset.write_text(json.dumps({
        "format": "tonematch-preset", "version": 1, "mode": "A",
        "style_params": {"eq": [{"type": "peaking", "f_hz": 1000.0, "q": 1.0, "gain_db": 3.0},
                                {"type": "high_shelf", "f_hz": 7200.0, "q": 0.7, "gain_db": -6.0}],
                         "lufs": {"target_db": -20.0},
                         "limiter": {"tp_db": -1.0, "lookahead_ms": 1.5, "release_ms": 100.0}}}))
    t = np.arange(8000 * 4) / 8000
    voice_like = 0.2 * np.sin(2 * np.pi * 300 * t) * (1 + np.sin(2 * np.pi * 2 * t))
    sf.write(tmp_path / "phone.wav", voice_like, 8000)
    r = _run("apply", str(preset), str(tmp_path / "phone.wav"), "-o", str(tmp_path / "o.wav"))
    assert r.returncode == 0, r.stderr
    assert "left out for 8000 Hz audio" in r.stderr and "high_shelf 7200 Hz" in r.stderr
    assert "peaking" in r.stdout and "high_shelf" not in r.stdout
    y, fs = sf.read(tmp_path / "o.wav")
    assert fs == 8000 and abs(integrated_loudness_lufs(y, fs) + 20.0) <= 0.2
    # an impossible output rate is refused, not ignored
    r = _run("apply", str(preset), str(tmp_path / "phone.wav"), "-o", str(tmp_path / "o2.wav"),
             "--sample-rate", "0")
    assert r.returncode == 2 and "output_sample_rate_hz" in r.stderr and not (tmp_path / "o2.wav").exists()


def _boost_1k_preset(folder: Path) -> Path:
    """A mode-A preset file: +3 dB at 1 kHz, -16 LUFS, -1 dBTP limiter."""
    preset = folder / "p.json"
    preset.write_text(json.dumps({
        "format": "tonematch-preset", "version": 1, "mode": "A",
        "style_params": {"eq": [{"type": "peaking", "f_hz": 1000.0, "q": 1.0, "gain_db": 3.0}],
                         "lufs": {"target_db": -16.0},
                         "limiter": {"tp_db": -1.0, "lookahead_ms": 1.5, "release_ms": 100.0}}}))
    return preset


def test_apply_to_an_offset_target_removes_the_offset_and_warns_on_heavy_limiting(tmp_path: Path) -> None:
    preset = _boost_1k_preset(tmp_path)
    rng = np.random.default_rng(6)
    t = np.arange(44100 * 6) / 44100
    music = 0.1 * rng.standard_normal(t.size) * (1 + np.sin(2 * np.pi * 1.5 * t))
    sf.write(tmp_path / "dc.wav", np.stack([music + 0.15, music + 0.15], axis=1), 44100, subtype="FLOAT")
    r = _run("apply", str(preset), str(tmp_path / "dc.wav"), "-o", str(tmp_path / "o.wav"),
             "--report", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    eq = rep["style_params"]["eq"]
    assert eq[0]["type"] == "high_pass" and "DC offset" in rep["style_params"]["notes"]["eq"]
    assert rep["artifacts_rate"] < 0.05 and abs(rep["lufs_integrated"] + 16.0) <= 0.2
    y, _ = sf.read(tmp_path / "o.wav")
    assert abs(float(np.mean(y))) < 0.01  # the offset is gone
    # a target reached only by flattening is reached, with a warning that says so
    r = _run("apply", str(preset), str(tmp_path / "dc.wav"), "-o", str(tmp_path / "o2.wav"),
             "--target-lufs", "-7")
    assert r.returncode == 0, r.stderr
    assert "the limiter cuts more than 6 dB on" in r.stderr


@pytest.mark.parametrize("flag", ["--report", "--preset-out", "--eq-apo-out"])
def test_a_side_output_in_a_missing_folder_is_refused_before_any_work(tmp_path: Path, pair: dict[str, str],
                                                                      capsys: pytest.CaptureFixture,
                                                                      flag: str) -> None:
    side = str(tmp_path / "nowhere" / "side.json")
    rc = main(["match", pair["reference"], pair["target"], "-o", str(tmp_path / "m.wav"), flag, side])
    assert "folder does not exist" in _one_line_error(capsys, rc, side)
    assert not (tmp_path / "m.wav").exists()  # refused up front, not after rendering the audio


def test_apply_to_a_clipped_target_says_so(tmp_path: Path) -> None:
    preset = _boost_1k_preset(tmp_path)
    t = np.arange(44100 * 4) / 44100
    tone = np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    sf.write(tmp_path / "clipped.wav", np.clip(2.0 * tone, -1.0, 1.0), 44100, subtype="PCM_16")
    sf.write(tmp_path / "clean.wav", 0.5 * tone, 44100, subtype="PCM_16")
    r = _run("apply", str(preset), str(tmp_path / "clipped.wav"), "-o", str(tmp_path / "o.wav"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "clipped.wav reaches 0 dBFS (probably clipped)" in r.stderr
    r = _run("apply", str(preset), str(tmp_path / "clean.wav"), "-o", str(tmp_path / "o2.wav"), "--quiet")
    assert r.returncode == 0 and "clipped" not in r.stderr, r.stderr


def test_apply_keeps_a_fixed_gain_preset_and_checks_options_as_match_does(
        tmp_path: Path, pair: dict[str, str], capsys: pytest.CaptureFixture) -> None:
    """A preset whose lufs holds only gain_db (schema-valid: a fixed gain, no target) was refused with
    'lufs: needs target_db or gain_db' after apply dropped that gain; and apply took --target-lufs
    -60..0 and named a bad --ceiling-dbtp 'limiter.tp_db' where match says opts.*, -40..-5."""
    import soundfile as sf

    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps({"format": "tonematch-preset", "version": 1,
                                 "style_params": {"lufs": {"gain_db": -6.0}}}))
    out = tmp_path / "o.wav"
    assert main(["apply", str(fixed), pair["target"], "-o", str(out), "--quiet",
                 "--format", "wav24"]) == 0
    x, _ = sf.read(pair["target"], dtype="float64")
    y, _ = sf.read(out, dtype="float64")
    assert 20 * np.log10(np.abs(y).max() / np.abs(x).max()) == pytest.approx(-6.0, abs=0.01)
    capsys.readouterr()
    rc = main(["apply", str(fixed), pair["target"], "-o", str(tmp_path / "o2.wav"), "--target-lufs", "-50"])
    _one_line_error(capsys, rc, "opts.target_lufs")
    rc = main(["apply", str(fixed), pair["target"], "-o", str(tmp_path / "o3.wav"), "--ceiling-dbtp", "-10"])
    _one_line_error(capsys, rc, "opts.ceiling_dbtp")


def test_one_path_for_two_side_outputs_is_refused_before_any_work(
        tmp_path: Path, pair: dict[str, str], capsys: pytest.CaptureFixture) -> None:
    same = str(tmp_path / "r.json")
    rc = main(["match", pair["reference"], pair["target"], "-o", str(tmp_path / "o.wav"),
               "--report", same, "--preset-out", same])
    _one_line_error(capsys, rc, same)
    assert not (tmp_path / "o.wav").exists()


def test_apply_leaves_out_what_exclude_names(tmp_path: Path, pair: dict[str, str],
                                             capsys: pytest.CaptureFixture) -> None:
    """`tonematch apply --exclude` (as in a match, and as a service job's opts.exclude)."""
    preset = tmp_path / "p.json"
    preset.write_text(json.dumps({"format": "tonematch-preset", "version": 1, "style_params": {
        "eq": [{"type": "peaking", "f_hz": 1000.0, "q": 1.0, "gain_db": 6.0}],
        "lufs": {"target_db": -14.0}, "limiter": {"tp_db": -1.0}}}))
    report = tmp_path / "r.json"
    assert main(["apply", str(preset), pair["target"], "-o", str(tmp_path / "o.wav"), "--quiet",
                 "--exclude", "eq,limiter", "--report", str(report)]) == 0
    params = json.loads(report.read_text())["style_params"]
    assert "eq" not in params and "limiter" not in params
    assert params["notes"]["limiter"].startswith("off: excluded by the options")
    capsys.readouterr()
    rc = main(["apply", str(preset), pair["target"], "-o", str(tmp_path / "o2.wav"), "--exclude", "loudness"])
    _one_line_error(capsys, rc, "opts.exclude")
    assert not (tmp_path / "o2.wav").exists()


def test_an_output_without_extension_is_refused_with_what_works(
        tmp_path: Path, pair: dict[str, str], capsys: pytest.CaptureFixture) -> None:
    """'-o out' said '(or give --format)', and with --format it then failed on the missing extension."""
    for extra in ([], ["--format", "wav16"]):
        rc = main(["match", pair["reference"], pair["target"], "-o", str(tmp_path / "out"), *extra])
        err = _one_line_error(capsys, rc, str(tmp_path / "out"))
        assert "must end in .wav or .flac" in err and "or give --format" not in err
    assert os.listdir(tmp_path) == []


def test_apply_summary_of_a_fixed_gain_preset(tmp_path: Path, pair: dict[str, str],
                                              capsys: pytest.CaptureFixture) -> None:
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps({"format": "tonematch-preset", "version": 1,
                                 "style_params": {"lufs": {"gain_db": -6.0}}}))
    assert main(["apply", str(fixed), pair["target"], "-o", str(tmp_path / "o.wav")]) == 0
    out = capsys.readouterr().out
    assert "loudness target none (a fixed gain), gain -6.00 dB" in out and "None" not in out
