"""style_params and options validation: ranges refused with the field named, nothing clamped."""

from __future__ import annotations

import pytest

from engine.errors import ParamsError
from engine.options import DEFAULT_OPTIONS, validate_options
from engine.params import validate_style_params

GOOD = {
    "eq": [{"type": "peaking", "f_hz": 1000, "q": 1.0, "gain_db": -3},
           {"type": "high_pass", "f_hz": 30, "q": 0.707}],
    "stereo": {"width": 1.2},
    "lufs": {"target_db": -14},
    "limiter": {"tp_db": -1.0},
}


def test_valid_params_are_normalised() -> None:
    out = validate_style_params(GOOD, mode="A")
    assert out["eq"][0] == {"type": "peaking", "f_hz": 1000.0, "q": 1.0, "gain_db": -3.0}
    assert out["eq"][1]["gain_db"] == 0.0
    assert out["limiter"] == {"tp_db": -1.0, "lookahead_ms": 1.5, "release_ms": 100.0}
    assert GOOD["limiter"] == {"tp_db": -1.0}  # the input is not modified


@pytest.mark.parametrize("patch,where", [
    ({"eq": [{"type": "peaking", "f_hz": 5, "q": 1, "gain_db": 1}]}, "eq[0].f_hz"),
    ({"eq": [GOOD["eq"][0], {"type": "peaking", "f_hz": 100, "q": 1, "gain_db": 30}]}, "eq[1].gain_db"),
    ({"eq": [{"type": "bell", "f_hz": 100, "q": 1, "gain_db": 1}]}, "eq[0].type"),
    ({"eq": [{"type": "peaking", "f_hz": 100, "gain_db": 1}]}, "eq[0].q"),
    ({"eq": [{"type": "peaking", "f_hz": "100", "q": 1, "gain_db": 1}]}, "eq[0].f_hz"),
    ({"eq": [{"type": "peaking", "f_hz": 100, "q": 1, "gain_db": float("nan")}]}, "eq[0].gain_db"),
    ({"eq": [GOOD["eq"][0]] * 9}, "eq"),
    ({"stereo": {"width": 1.6}}, "stereo.width"),
    ({"stereo": {"width": 1.0, "depth": 2}}, "stereo.depth"),
    ({"lufs": {"target_db": 3}}, "lufs.target_db"),
    ({"limiter": {"tp_db": 0.5}}, "limiter.tp_db"),
    ({"limiter": {"tp_db": -1, "release_ms": 1}}, "limiter.release_ms"),
    ({"reverb": {"ir_key": "hall", "mix": 0.2}}, "reverb"),
])
def test_out_of_range_is_refused_with_the_field(patch: dict, where: str) -> None:
    with pytest.raises(ParamsError) as e:
        validate_style_params({**GOOD, **patch}, mode="A")
    assert e.value.where == where


def test_mode_b_blocks() -> None:
    b = {**GOOD, "reverb": {"ir_key": "ir/room_0.5s.wav", "mix": 0.3, "pre_delay_ms": 10},
         "pitch": {"semitones": -2}}
    out = validate_style_params(b, mode="B")
    assert out["pitch"] == {"semitones": -2} and out["reverb"]["mix"] == 0.3
    with pytest.raises(ParamsError) as e:
        validate_style_params({**b, "pitch": {"semitones": 1.5}}, mode="B")
    assert e.value.where == "pitch.semitones"
    with pytest.raises(ParamsError) as e:
        validate_style_params({**b, "reverb": {"ir_key": "ir/room_0.5s.wav", "mix": 2}}, mode="B")
    assert e.value.where == "reverb.mix"


@pytest.mark.parametrize("key", ["room-small", "../../etc/passwd", "ir/room_0.5s.wav\n", "ir/hall_9.0s.wav"])
def test_an_impulse_response_outside_the_library_is_refused_with_the_params(key: str) -> None:
    """A preset naming an IR the library cannot make is refused when it is read (saved, or a job
    created), not when its render starts; a trailing newline is no library key either."""
    reverb = {"ir_key": key, "mix": 0.3, "pre_delay_ms": 10}
    with pytest.raises(ParamsError) as e:
        validate_style_params({**GOOD, "reverb": reverb}, mode="B")
    assert e.value.where == "reverb.ir_key"


@pytest.mark.parametrize("field, value", [("threshold_db", "-20"), ("ratio", True), ("knee", 6.0),
                                          ("makeup_db", 10**400)])
def test_the_compressor_block_is_checked_like_the_others(field: str, value: object) -> None:
    """Numbers as strings or booleans, unknown fields and integers past float range are refused,
    naming the field, as in every other block."""
    comp = {"threshold_db": -20.0, "ratio": 3.0, "attack_ms": 10.0, "release_ms": 100.0, "makeup_db": 2.0}
    with pytest.raises(ParamsError) as e:
        validate_style_params({**GOOD, "compressor": {**comp, field: value}}, mode="B")
    assert e.value.where == f"compressor.{field}"


@pytest.mark.parametrize("where, params", [
    ("lufs.target_db", {"lufs": {"target_db": -(10**400)}}),
    ("eq[0].f_hz", {"eq": [{"type": "peaking", "f_hz": 10**400, "q": 1, "gain_db": 1}]}),
    ("pitch.semitones", {"pitch": {"semitones": 10**400}}),
])
def test_integers_past_float_range_are_refused_naming_the_field(where: str, params: dict) -> None:
    with pytest.raises(ParamsError) as e:
        validate_style_params(params, mode="B")
    assert e.value.where == where and "bits" in str(e.value)


def test_options_defaults_and_ranges() -> None:
    o = validate_options(None)
    assert o == {**DEFAULT_OPTIONS, "exclude": []}
    assert validate_options({"target_lufs": -9, "exclude": ["stereo"]})["target_lufs"] == -9.0
    for bad, where in [({"target_lufs": -3}, "opts.target_lufs"), ({"ceiling_dbtp": 1}, "opts.ceiling_dbtp"),
                       ({"intensity": 1.5}, "opts.intensity"),
                       ({"output_format": "mp3"}, "opts.output_format"),
                       ({"exclude": ["chorus"]}, "opts.exclude"), ({"segment_s": 5}, "opts.segment_s"),
                       ({"colour": "red"}, "opts.colour"), ({"intensity": True}, "opts.intensity")]:
        with pytest.raises(ParamsError) as e:
            validate_options(bad)
        assert e.value.where == where


def test_an_option_past_float_range_is_refused_naming_it() -> None:
    """JSON carries integers of any length; one past float range is a bad option, not a crash."""
    with pytest.raises(ParamsError) as e:
        validate_options({"segment_s": 10**400})
    assert e.value.where == "opts.segment_s"


def test_a_preset_with_a_5000_digit_number_is_a_bad_preset(tmp_path) -> None:
    from engine.preset import load_preset

    p = tmp_path / "p.json"
    p.write_text('{"format": "tonematch-preset", "version": 1, "style_params": {"lufs": {"target_db": -'
                 + "1" * 5000 + "}}}")
    with pytest.raises(ParamsError) as e:
        load_preset(p)
    assert e.value.where == str(p) and "4300" in str(e.value)


def test_an_unknown_option_with_control_characters_is_named_printably() -> None:
    """`where` ends up in logs, audit rows and JSON error bodies; a NUL in it broke PostgreSQL."""
    with pytest.raises(ParamsError) as e:
        validate_options({"a\x00b": 1})
    assert e.value.where == "opts.'a\\x00b'" and e.value.where.isprintable()
