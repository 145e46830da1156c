"""Presets: versioned JSON that validates against the schema file, re-loads, and exports EQ text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import ParamsError
from engine.preset import eq_to_equalizer_apo, export_preset, load_preset, preset_schema

PARAMS = {
    "eq": [{"type": "low_shelf", "f_hz": 110.0, "q": 0.7, "gain_db": 2.5},
           {"type": "peaking", "f_hz": 850.0, "q": 1.4, "gain_db": -3.0},
           {"type": "high_pass", "f_hz": 30.0, "q": 0.71, "gain_db": 0.0}],
    "stereo": {"width": 1.1},
    "lufs": {"target_db": -12.0, "gain_db": 5.3},
    "limiter": {"tp_db": -1.0, "lookahead_ms": 1.5, "release_ms": 100.0},
}


def test_export_then_load_round_trip(tmp_path: Path) -> None:
    doc = export_preset(PARAMS, name="my master", source={"reference": "ref.wav"})
    assert doc["format"] == "tonematch-preset" and doc["version"] == 1 and doc["mode"] == "A"
    assert "gain_db" not in doc["style_params"]["lufs"]  # re-resolved for each new target
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    loaded = load_preset(path)
    expected = {**PARAMS, "lufs": {"target_db": -12.0}}
    assert loaded == expected
    assert load_preset(doc) == expected
    assert load_preset(json.dumps(doc)) == expected


def test_exported_preset_matches_the_schema_file() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = preset_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(export_preset(PARAMS), schema)
    bad = export_preset(PARAMS)
    bad["style_params"]["stereo"]["width"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


@pytest.mark.parametrize("mutate,where", [
    (lambda d: d.update(format="other"), "format"),
    (lambda d: d.update(version=2), "version"),
    (lambda d: d.pop("style_params"), "style_params"),
    (lambda d: d["style_params"]["eq"][1].update(q=50), "style_params.eq[1].q"),
    (lambda d: d["style_params"]["limiter"].update(tp_db=2), "style_params.limiter.tp_db"),
    (lambda d: d["style_params"].update(chorus={}), "style_params.chorus"),
])
def test_malformed_presets_name_the_field(mutate, where: str) -> None:
    doc = export_preset(PARAMS)
    mutate(doc)
    with pytest.raises(ParamsError) as e:
        load_preset(doc)
    assert e.value.where == where


def test_unreadable_preset_files(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="not found"):
        load_preset(tmp_path / "none.json")
    (tmp_path / "broken.json").write_text('{"format": "tonematch-preset", ')
    with pytest.raises(ParamsError, match="not valid JSON") as e:
        load_preset(tmp_path / "broken.json")
    assert e.value.where == str(tmp_path / "broken.json")


def test_equalizer_apo_text() -> None:
    text = eq_to_equalizer_apo(PARAMS)
    lines = text.strip().splitlines()
    assert lines[1].startswith("Preamp: -") and lines[1].endswith(" dB")
    assert "Filter 1: ON LSC Fc 110 Hz Gain 2.5 dB Q 0.70" in lines
    assert "Filter 2: ON PK Fc 850 Hz Gain -3.0 dB Q 1.40" in lines
    assert "Filter 3: ON HPQ Fc 30 Hz Q 0.71" in lines
    assert eq_to_equalizer_apo({}).strip().endswith("Preamp: 0.0 dB")


def test_a_preset_for_a_new_target_forgets_what_described_its_old_one() -> None:
    """Re-applied, a preset's notes about its own match (a 4 s reference, the loudness it stopped
    at, EQ bands left out for its rate, its target's DC offset) would be warned about again as if
    true of the new job; the EQ's own description stays, and the gain is re-solved."""
    from engine.preset import params_for_new_target

    params = {
        "eq": [{"type": "peaking", "f_hz": 1000.0, "q": 1.0, "gain_db": 3.0}],
        "lufs": {"target_db": -14.0, "gain_db": 3.2},
        "notes": {"reference": "only 4.0 s long: ...", "lufs": "target -9.00 LUFS not reached: ...",
                  "eq": "1 bands; weighted RMS residual 0.40 dB; a 10 Hz high-pass removes the target's DC "
                        "offset (-18.0 dBFS), which would otherwise take the limiter's headroom; left out "
                        "for 16000 Hz audio (nothing above 7200 Hz to shape): high_shelf 9000 Hz",
                  "stereo": "width 1.10"}}
    out = params_for_new_target(params)
    assert out["lufs"] == {"target_db": -14.0}
    assert out["notes"] == {"eq": "1 bands; weighted RMS residual 0.40 dB", "stereo": "width 1.10"}
    assert params["notes"]["reference"] and params["lufs"]["gain_db"] == 3.2  # the preset is not changed
    assert params_for_new_target({"lufs": {"gain_db": -6.0}})["lufs"] == {"gain_db": -6.0}  # a fixed gain


def test_an_exported_fixed_gain_preset_keeps_its_gain() -> None:
    """lufs {gain_db} alone is a fixed gain (no target to re-solve toward): exporting dropped it, so a
    saved preset lost the very thing it was for."""
    from engine.preset import export_preset, load_preset

    assert load_preset(export_preset({"lufs": {"gain_db": -6.0}}))["lufs"] == {"gain_db": -6.0}
    assert load_preset(export_preset({"lufs": {"target_db": -14.0, "gain_db": 2.0}}))["lufs"] == {
        "target_db": -14.0}


def test_a_preset_keeps_its_own_ceiling_unless_the_user_sets_one() -> None:
    """The options a preset is applied with: the service filled the default -1 dBTP ceiling into every
    job, so a preset mastered to -2 dBTP was rendered to -1 through the API but to -2 by `tonematch
    apply`. Both now call this one rule."""
    from engine.preset import preset_params_for_target

    preset = {**PARAMS, "limiter": {**PARAMS["limiter"], "tp_db": -2.0}}
    params, warnings = preset_params_for_target(preset, sample_rate_hz=44100)
    assert params["limiter"]["tp_db"] == -2.0 and warnings == []
    assert params["lufs"] == {"target_db": -12.0}  # the gain is re-solved for the new target
    params, _ = preset_params_for_target(preset, sample_rate_hz=44100, ceiling_dbtp=-3.0, target_lufs=-16.0)
    assert params["limiter"]["tp_db"] == -3.0 and params["lufs"] == {"target_db": -16.0}
    # a ceiling asked of a preset without a limiter adds one with the usual lookahead and release
    bare = {k: v for k, v in PARAMS.items() if k != "limiter"}
    params, _ = preset_params_for_target(bare, sample_rate_hz=44100, ceiling_dbtp=-1.5)
    assert params["limiter"] == {"tp_db": -1.5, "lookahead_ms": 1.5, "release_ms": 100.0}
    assert "limiter" not in preset_params_for_target(bare, sample_rate_hz=44100)[0]


def test_a_preset_applied_with_processors_left_out() -> None:
    from engine.preset import preset_params_for_target

    params, _ = preset_params_for_target(PARAMS, sample_rate_hz=44100, exclude=["limiter", "stereo"],
                                         ceiling_dbtp=-2.0)
    assert "limiter" not in params and "stereo" not in params and params["eq"] == PARAMS["eq"]
    assert params["notes"]["limiter"].startswith("off: excluded by the options")
    assert params["notes"]["stereo"] == "off: excluded by the options"
    # no EQ means no DC high-pass either (as in a match with the EQ left out)
    params, _ = preset_params_for_target(PARAMS, sample_rate_hz=44100, exclude=["eq"], dc_offset_dbfs=-15.0,
                                         sample_peak_dbfs=-1.0)
    assert "eq" not in params
    params, _ = preset_params_for_target(PARAMS, sample_rate_hz=44100, dc_offset_dbfs=-15.0,
                                         sample_peak_dbfs=-1.0)
    assert params["eq"][0]["f_hz"] == 10.0


@pytest.mark.parametrize("kwargs, where", [
    ({"intensity": 0.5}, "opts.intensity"),
    ({"exclude": ["reverb", "loudness"]}, "opts.exclude"),
    ({"ceiling_dbtp": 0.5}, "opts.ceiling_dbtp"),
    ({"target_lufs": -80.0}, "opts.target_lufs"),
])
def test_preset_options_a_preset_cannot_take_name_the_option(kwargs: dict, where: str) -> None:
    from engine.preset import preset_params_for_target

    with pytest.raises(ParamsError) as err:
        preset_params_for_target(PARAMS, sample_rate_hz=44100, **kwargs)
    assert err.value.where == where
    assert preset_params_for_target(PARAMS, sample_rate_hz=44100, intensity=1.0)[0]["eq"] == PARAMS["eq"]
