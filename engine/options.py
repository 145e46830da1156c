"""Options of a match (``opts``): every option with its default and range. Out of range or unknown →
ParamsError naming the option (``opts.target_lufs``); nothing is clamped.

| option | default | range |
| --- | --- | --- |
| target_lufs | the reference's integrated loudness | -40..-5 LUFS |
| ceiling_dbtp | -1.0 | -9..0 dBTP |
| intensity | 1.0 | 0..1 (0 = leave the target as it is, apart from loudness; 1 = full match) |
| exclude | [] | names of processors to leave out: eq, stereo, limiter, compressor, reverb, pitch |
| output_format | wav24 | wav16 (TPDF dithered), wav24, flac |
| output_sample_rate_hz | the target's | 8000..192000 |
| segment_s | 60 | 10..600 (segment length of the cloud pipeline) |
"""

from __future__ import annotations

import math
from typing import Any

from engine.errors import ParamsError

DEFAULT_OPTIONS: dict[str, Any] = {
    "target_lufs": None,
    "ceiling_dbtp": -1.0,
    "intensity": 1.0,
    "exclude": [],
    "output_format": "wav24",
    "output_sample_rate_hz": None,
    "segment_s": 60.0,
}
RANGES = {
    "target_lufs": (-40.0, -5.0),
    "ceiling_dbtp": (-9.0, 0.0),
    "intensity": (0.0, 1.0),
    "output_sample_rate_hz": (8000, 192000),
    "segment_s": (10.0, 600.0),
}
EXCLUDABLE = ("eq", "stereo", "limiter", "compressor", "reverb", "pitch")
FORMATS = ("wav16", "wav24", "flac")


def checked_float(value: Any, where: str) -> float:
    """``value`` as a finite float, or a ParamsError naming ``where``: not a number (a bool is not
    one), not finite, or an integer too large for a float (JSON allows 400-digit numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParamsError(f"must be a number, got {value!r}", where=where)
    try:
        v = float(value)
    except OverflowError:
        raise ParamsError(f"must be a finite number, got an integer of {value.bit_length()} bits",
                          where=where) from None
    if not math.isfinite(v):
        raise ParamsError(f"must be finite, got {value!r}", where=where)
    return v


def validate_options(opts: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults filled in, values checked; returns a new dict."""
    if opts is None:
        opts = {}
    if not isinstance(opts, dict):
        raise ParamsError(f"options must be an object, got {type(opts).__name__}", where="opts")
    out = dict(DEFAULT_OPTIONS)
    out["exclude"] = []
    for key, value in opts.items():
        if key not in DEFAULT_OPTIONS:
            # repr for a name with control characters: `where` is logged and stored
            name = key if isinstance(key, str) and key.isprintable() else repr(key)
            raise ParamsError(f"unknown option (known: {', '.join(DEFAULT_OPTIONS)})", where=f"opts.{name}")
        if value is None:
            continue
        if key in RANGES:
            v = checked_float(value, f"opts.{key}")
            lo, hi = RANGES[key]
            if not lo <= v <= hi:
                raise ParamsError(f"{v:g} is outside {lo:g}..{hi:g}", where=f"opts.{key}")
            if key == "output_sample_rate_hz" and v != int(v):
                raise ParamsError("must be a whole number of Hz", where=f"opts.{key}")
            out[key] = int(v) if key == "output_sample_rate_hz" else v
        elif key == "exclude":
            if isinstance(value, str) or not isinstance(value, list | tuple):
                raise ParamsError("must be a list of processor names", where="opts.exclude")
            for name in value:
                if name not in EXCLUDABLE:
                    raise ParamsError(f"unknown processor {name!r} (one of {', '.join(EXCLUDABLE)})",
                                      where="opts.exclude")
            out["exclude"] = list(dict.fromkeys(value))
        elif key == "output_format":
            if value not in FORMATS:
                raise ParamsError(f"unknown format {value!r}; use one of {', '.join(FORMATS)}",
                                  where="opts.output_format")
            out[key] = value
    return out
