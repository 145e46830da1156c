"""Presets: versioned JSON (schema: ``engine/schema/preset.schema.json``) that re-applies a match to
any target, plus the EQ as Equalizer APO / REW filter text.

The exported ``style_params`` keep ``lufs.target_db`` but drop the resolved ``lufs.gain_db``: the gain
depends on the target, and :func:`engine.render.render_file` resolves it again for each new target.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ParamsError
from engine.params import MODE_B_BLOCKS, validate_style_params
from engine.processors.eq import eq_response_db

PRESET_FORMAT = "tonematch-preset"
PRESET_VERSION = 1
CREATED_BY = "tonematch 0.1.0"
_APO_TYPES = {"peaking": "PK", "low_shelf": "LSC", "high_shelf": "HSC", "high_pass": "HPQ", "low_pass": "LPQ"}


def preset_schema() -> dict[str, Any]:
    """The JSON schema of a preset document."""
    text = resources.files("engine").joinpath("schema/preset.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def _mode_of(style_params: dict[str, Any]) -> str:
    return "B" if any(k in style_params for k in MODE_B_BLOCKS) else "A"


def export_preset(style_params: dict[str, Any], *, name: str | None = None,
                  source: dict[str, Any] | None = None) -> dict[str, Any]:
    """A preset document (JSON-serialisable) for ``style_params`` (validated first)."""
    mode = _mode_of(style_params)
    params = validate_style_params(style_params, mode=mode)
    if (params.get("lufs") or {}).get("target_db") is not None:
        # the gain solved for one target is re-solved for each; a gain alone is a fixed gain and stays
        params["lufs"] = {k: v for k, v in params["lufs"].items() if k != "gain_db"}
    return {
        "format": PRESET_FORMAT,
        "version": PRESET_VERSION,
        "name": name,
        "mode": mode,
        "created_by": CREATED_BY,
        "created_at": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source": source,
        "style_params": params,
        "equalizer_apo": eq_to_equalizer_apo(params),
    }


def load_preset(obj_or_path: dict[str, Any] | str | os.PathLike) -> dict[str, Any]:
    """Validated style_params of a preset given as a dict, a JSON text or a path to a ``.json`` file.
    Malformed → ParamsError naming the field (``style_params.eq[1].q``)."""
    where = "preset"
    obj: Any = obj_or_path
    if isinstance(obj_or_path, str | os.PathLike) and not (isinstance(obj_or_path, str)
                                                           and obj_or_path.lstrip().startswith("{")):
        path = Path(obj_or_path)
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ParamsError("preset file not found", where=where) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ParamsError(f"cannot read preset ({exc})", where=where) from None
        obj = text
    if isinstance(obj, str):
        try:
            obj = json.loads(obj)
        except json.JSONDecodeError as exc:
            raise ParamsError(f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                              where=where) from None
        except ValueError as exc:  # an integer past Python's 4300-digit conversion limit
            raise ParamsError(f"not a usable JSON document ({exc})", where=where) from None
    if not isinstance(obj, dict):
        raise ParamsError("a preset must be a JSON object", where=where)
    if obj.get("format") != PRESET_FORMAT:
        raise ParamsError(f"not a tonematch preset (format is {obj.get('format')!r}, expected "
                          f"{PRESET_FORMAT!r})", where="format")
    if obj.get("version") != PRESET_VERSION:
        raise ParamsError(f"unsupported preset version {obj.get('version')!r} (this build reads "
                          f"{PRESET_VERSION})", where="version")
    params = obj.get("style_params")
    if not isinstance(params, dict):
        raise ParamsError("missing or not an object", where="style_params")
    mode = obj.get("mode") or _mode_of(params)
    if mode not in ("A", "B"):
        raise ParamsError(f"unknown mode {mode!r}", where="mode")
    try:
        return validate_style_params(params, mode=mode)
    except ParamsError as exc:
        exc.where = f"style_params.{exc.where}" if exc.where else "style_params"
        exc.args = (f"{exc.where}: {exc.message}",)
        raise


#: parts of ``notes.eq`` that describe the audio a preset was made on, not the preset's EQ
_TARGET_EQ_NOTES = ("left out for", " stays:", "removes the target's DC offset")


def params_for_new_target(style_params: dict[str, Any]) -> dict[str, Any]:
    """A preset's style_params ready to apply to another target (a copy): the make-up gain goes
    where there is a loudness target to solve it toward again (a gain alone is a fixed gain and
    stays), and so do the notes about the match the preset came from: its reference
    (``notes.reference``), the loudness it reached (``notes.lufs``) and, from ``notes.eq``, bands
    left out for its rate and its DC offset. Applying the preset writes this target's own notes."""
    params = json.loads(json.dumps(style_params))
    lufs = params.get("lufs") or {}
    if lufs.get("target_db") is not None:
        lufs.pop("gain_db", None)
    notes = params.get("notes")
    if isinstance(notes, dict):
        notes.pop("reference", None)
        notes.pop("lufs", None)
        if isinstance(notes.get("eq"), str):
            kept = [p.strip() for p in notes["eq"].split(";")
                    if p.strip() and not any(t in p for t in _TARGET_EQ_NOTES)]
            if kept:
                notes["eq"] = "; ".join(kept)
            else:
                notes.pop("eq")
    return params


def check_preset_intensity(intensity: Any) -> None:
    """ParamsError (``opts.intensity``) unless ``intensity`` is None or 1: a preset is applied as
    saved, and a lighter correction is a new match at that intensity."""
    if intensity is not None and float(intensity) != 1.0:
        raise ParamsError(f"{float(intensity):g} is for matching: a preset is applied as saved; for a "
                          "lighter correction match the reference again with this intensity",
                          where="opts.intensity")


def preset_params_for_target(style_params: dict[str, Any], *, sample_rate_hz: float,
                              dc_offset_dbfs: float | None = None, sample_peak_dbfs: float | None = None,
                              target_lufs: float | None = None, ceiling_dbtp: float | None = None,
                              exclude: Any = (), intensity: float | None = None,
                              mode: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """A preset's ``style_params`` as they apply to one target (``tonematch apply`` and a service job
    with ``preset_id`` use this one rule). The options are the user's, ``None`` where not given:

    - ``target_lufs`` (LUFS): the loudness target to solve the gain toward, a fixed-gain preset or not;
    - ``ceiling_dbtp`` (dBTP): the limiter's ceiling, a limiter added if the preset had none; without
      it the preset's own ceiling stays;
    - ``exclude``: processors left out (their notes say so); with ``eq`` left out, no DC high-pass;
    - ``intensity``: only 1 (a preset is applied as saved; a lighter correction is a new match).

    Then, for this target at ``sample_rate_hz``: EQ bands the rate cannot carry are left out and a
    DC offset that matters (``dc_offset_dbfs`` / ``sample_peak_dbfs``, see
    :func:`engine.invert.dc_offset_matters`) gets the 10 Hz high-pass. ``mode`` (default: the
    preset's) is what the params are validated for. Returns the params and the warnings to show the
    user (bands left out, an offset that stays). Raises ParamsError naming ``opts.<name>``."""
    from engine.invert import with_dc_high_pass
    from engine.options import validate_options
    from engine.params import fit_eq_to_rate

    check_preset_intensity(intensity)
    checked = validate_options({"target_lufs": target_lufs, "ceiling_dbtp": ceiling_dbtp,
                                "exclude": list(exclude or ())})
    params = params_for_new_target(style_params)
    left_out = set(checked["exclude"])
    if checked["target_lufs"] is not None:
        params["lufs"] = {"target_db": checked["target_lufs"]}
    if ceiling_dbtp is not None and "limiter" not in left_out:
        params["limiter"] = {**(params.get("limiter") or {}), "tp_db": checked["ceiling_dbtp"]}
    for name in checked["exclude"]:
        if params.pop(name, None) is not None:
            notes = params.get("notes") if isinstance(params.get("notes"), dict) else {}
            notes[name] = _EXCLUDED_NOTES.get(name, "off: excluded by the options")
            params["notes"] = notes
    params = validate_style_params(params, mode=mode or _mode_of(params))
    warnings: list[str] = []
    params, rate_note = fit_eq_to_rate(params, sample_rate_hz)
    if rate_note:
        warnings.append(f"eq bands {rate_note}")
    if "eq" not in left_out:
        params, dc_note = with_dc_high_pass(params, dc_offset_dbfs, sample_peak_dbfs)
        if dc_note and "stays" in dc_note:
            warnings.append(dc_note)
    return params, warnings


_EXCLUDED_NOTES = {"limiter": "off: excluded by the options (true peaks are not controlled)"}


def eq_to_equalizer_apo(style_params: dict[str, Any]) -> str:
    """The EQ as Equalizer APO configuration text (REW imports the same lines). A negative preamp
    equal to the EQ's largest boost keeps the EQ from clipping."""
    bands = style_params.get("eq") or []
    lines = ["# tonematch EQ (Equalizer APO / REW filter settings)"]
    f = np.geomspace(20.0, 20000.0, 400)
    boost = float(np.max(eq_response_db(bands, f, 48000.0))) if bands else 0.0
    preamp = -round(max(0.0, boost), 1)
    lines.append(f"Preamp: {preamp if preamp else 0.0:.1f} dB")
    for i, b in enumerate(bands, start=1):
        kind = _APO_TYPES[b["type"]]
        if b["type"] in ("high_pass", "low_pass"):
            lines.append(f"Filter {i}: ON {kind} Fc {b['f_hz']:g} Hz Q {b['q']:.2f}")
        else:
            lines.append(f"Filter {i}: ON {kind} Fc {b['f_hz']:g} Hz Gain {b['gain_db']:.1f} dB "
                         f"Q {b['q']:.2f}")
    return "\n".join(lines) + "\n"
