"""style_params: the schema, ranges and validation (SPEC section 3). Out-of-range values are refused
with a :class:`ParamsError` naming the field (``eq[2].f_hz``); nothing is clamped.

```
eq:         [{type: peaking|low_shelf|high_shelf|high_pass|low_pass, f_hz, q, gain_db}]  (<= 8 bands)
stereo:     {width}                                   0.5..1.5
lufs:       {target_db, gain_db?}                     target -60..0 LUFS; gain_db = resolved make-up gain
limiter:    {tp_db, lookahead_ms, release_ms}         -9..0 dBTP, 0.5..20 ms, 10..2000 ms
compressor: {threshold_db, ratio, attack_ms, release_ms, makeup_db, knee_db?}   (mode B)
reverb:     {ir_key, mix, pre_delay_ms}               mix 0..1, pre-delay 0..200 ms (mode B)
pitch:      {semitones}                               whole number -3..+3 (mode B)
notes:      {processor: text}                         why a processor is on/off (informative)
```
A missing block means that processor is off.
"""

from __future__ import annotations

from typing import Any

from engine.errors import ParamsError
from engine.options import checked_float
from engine.processors.eq import BAND_TYPES, MAX_NYQUIST_FRACTION

MAX_EQ_BANDS = 8
RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "eq": {"f_hz": (10.0, 24000.0), "q": (0.1, 18.0), "gain_db": (-24.0, 24.0)},
    "stereo": {"width": (0.5, 1.5)},
    "lufs": {"target_db": (-60.0, 0.0), "gain_db": (-240.0, 240.0)},  # 8 bands of +-24 dB, and more
    "limiter": {"tp_db": (-9.0, 0.0), "lookahead_ms": (0.5, 20.0), "release_ms": (10.0, 2000.0)},
    "reverb": {"mix": (0.0, 1.0), "pre_delay_ms": (0.0, 200.0)},
}
LIMITER_DEFAULTS = {"lookahead_ms": 1.5, "release_ms": 100.0}
MODE_A_BLOCKS = ("eq", "stereo", "lufs", "limiter")
MODE_B_BLOCKS = ("compressor", "reverb", "pitch")
MODES = ("A", "B")


def _number(value: Any, where: str, lo: float, hi: float) -> float:
    v = checked_float(value, where)
    if not lo <= v <= hi:
        raise ParamsError(f"{v:g} is outside {lo:g}..{hi:g}", where=where)
    return v


def _object(value: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParamsError(f"must be an object, got {type(value).__name__}", where=where)
    for key in value:
        if key not in allowed:
            raise ParamsError(f"unknown field {key!r} (allowed: {', '.join(allowed)})",
                              where=f"{where}.{key}")
    return value


def validate_band(band: Any, where: str) -> dict[str, Any]:
    """Normalised copy of one EQ band."""
    band = _object(band, where, ("type", "f_hz", "q", "gain_db"))
    kind = band.get("type")
    if kind not in BAND_TYPES:
        raise ParamsError(f"unknown band type {kind!r}; use one of {', '.join(BAND_TYPES)}",
                          where=f"{where}.type")
    out: dict[str, Any] = {"type": kind}
    for field in ("f_hz", "q"):
        if field not in band:
            raise ParamsError("missing", where=f"{where}.{field}")
        out[field] = _number(band[field], f"{where}.{field}", *RANGES["eq"][field])
    if kind in ("high_pass", "low_pass"):  # gain is meaningless for pass filters: kept at 0
        out["gain_db"] = 0.0
    else:
        if "gain_db" not in band:
            raise ParamsError("missing", where=f"{where}.gain_db")
        out["gain_db"] = _number(band["gain_db"], f"{where}.gain_db", *RANGES["eq"]["gain_db"])
    return out


def validate_style_params(params: Any, *, mode: str = "A") -> dict[str, Any]:
    """Check ``params`` against the schema and ranges for ``mode`` ("A" or "B"); returns a normalised
    copy (limiter defaults filled in). Raises ParamsError(where=field path) on the first problem."""
    if mode not in MODES:
        raise ParamsError(f"unknown mode {mode!r}; use A or B", where="mode")
    if not isinstance(params, dict):
        raise ParamsError(f"style_params must be an object, got {type(params).__name__}",
                          where="style_params")
    allowed = MODE_A_BLOCKS + (MODE_B_BLOCKS if mode == "B" else ()) + ("notes",)
    for key in params:
        if key not in allowed:
            hint = " (a mode-B processor; use mode B)" if key in MODE_B_BLOCKS else ""
            raise ParamsError(f"unknown block {key!r}{hint}", where=key)
    out: dict[str, Any] = {}
    if params.get("eq") is not None:
        eq = params["eq"]
        if not isinstance(eq, list):
            raise ParamsError("must be a list of bands", where="eq")
        if len(eq) > MAX_EQ_BANDS:
            raise ParamsError(f"{len(eq)} bands; at most {MAX_EQ_BANDS}", where="eq")
        out["eq"] = [validate_band(b, f"eq[{i}]") for i, b in enumerate(eq)]
    if params.get("stereo") is not None:
        st = _object(params["stereo"], "stereo", ("width",))
        if "width" not in st:
            raise ParamsError("missing", where="stereo.width")
        out["stereo"] = {"width": _number(st["width"], "stereo.width", *RANGES["stereo"]["width"])}
    if params.get("lufs") is not None:
        lu = _object(params["lufs"], "lufs", ("target_db", "gain_db"))
        block: dict[str, Any] = {}
        if lu.get("target_db") is not None:
            block["target_db"] = _number(lu["target_db"], "lufs.target_db", *RANGES["lufs"]["target_db"])
        if lu.get("gain_db") is not None:
            block["gain_db"] = _number(lu["gain_db"], "lufs.gain_db", *RANGES["lufs"]["gain_db"])
        if not block:
            raise ParamsError("needs target_db or gain_db", where="lufs")
        out["lufs"] = block
    if params.get("limiter") is not None:
        li = _object(params["limiter"], "limiter", ("tp_db", "lookahead_ms", "release_ms"))
        if "tp_db" not in li:
            raise ParamsError("missing", where="limiter.tp_db")
        block = {}
        for field in ("tp_db", "lookahead_ms", "release_ms"):
            value = li.get(field, LIMITER_DEFAULTS.get(field))
            block[field] = _number(value, f"limiter.{field}", *RANGES["limiter"][field])
        out["limiter"] = block
    if mode == "B":
        if params.get("compressor") is not None:
            from engine.processors.compressor import validate_compressor_params
            out["compressor"] = validate_compressor_params(params["compressor"])
        if params.get("reverb") is not None:
            rv = _object(params["reverb"], "reverb", ("ir_key", "mix", "pre_delay_ms"))
            key = rv.get("ir_key")
            if not isinstance(key, str) or not key.strip():
                raise ParamsError("must be a non-empty string", where="reverb.ir_key")
            from engine.ir_library import parse_ir_key

            parse_ir_key(key)  # a key of the generated library, refused here rather than at render
            out["reverb"] = {"ir_key": key,
                             "mix": _number(rv.get("mix"), "reverb.mix", *RANGES["reverb"]["mix"]),
                             "pre_delay_ms": _number(rv.get("pre_delay_ms", 0.0), "reverb.pre_delay_ms",
                                                     *RANGES["reverb"]["pre_delay_ms"])}
        if params.get("pitch") is not None:
            pi = _object(params["pitch"], "pitch", ("semitones",))
            v = checked_float(pi.get("semitones"), "pitch.semitones")
            if v != int(v):
                raise ParamsError(f"must be a whole number, got {v!r}", where="pitch.semitones")
            if abs(int(v)) > 3:
                raise ParamsError(f"{int(v)} is outside -3..3", where="pitch.semitones")
            out["pitch"] = {"semitones": int(v)}
    if params.get("notes") is not None:
        notes = params["notes"]
        if not isinstance(notes, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in notes.items()):
            raise ParamsError("must be an object of text notes", where="notes")
        out["notes"] = dict(notes)
    return out


def with_note(style_params: dict[str, Any], key: str, note: str) -> dict[str, Any]:
    """A copy of ``style_params`` with ``note`` appended to ``notes[key]`` (``"; "``-separated)."""
    notes = dict(style_params.get("notes") or {})
    notes[key] = f"{notes[key]}; {note}" if notes.get(key) else note
    return {**style_params, "notes": notes}


def fit_eq_to_rate(style_params: dict[str, Any], sample_rate_hz: float) -> tuple[dict[str, Any], str | None]:
    """``style_params`` for audio at ``sample_rate_hz``: a preset made on 44.1 kHz audio, re-applied
    to a 16 kHz file, may hold EQ bands at or above what that rate carries (``MAX_NYQUIST_FRACTION``
    of it); there is no content up there for them to shape, so they are left out. Returns the
    (copied) params and a note naming the bands left out, or None when every band fits; the note is
    also appended to ``notes.eq``."""
    bands = list(style_params.get("eq") or [])
    limit_hz = MAX_NYQUIST_FRACTION * float(sample_rate_hz)
    kept = [b for b in bands if float(b["f_hz"]) < limit_hz]
    if len(kept) == len(bands):
        return style_params, None
    gone = ", ".join(f"{b['type']} {float(b['f_hz']):.0f} Hz" for b in bands if float(b["f_hz"]) >= limit_hz)
    note = (f"left out for {float(sample_rate_hz):g} Hz audio (nothing above {limit_hz:.0f} Hz to shape): "
            f"{gone}")
    return with_note({**style_params, "eq": kept}, "eq", note), note
