"""tonematch engine: analyse → invert → render, pure numpy/scipy. See docs/ARCHITECTURE.md.

Facade: :func:`match_files` runs the whole job on files; ``analyze_features``, ``invert_params``,
``render``, ``render_file``, ``export_preset`` and ``load_preset`` are re-exported (imported lazily,
so ``import engine`` stays cheap).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["analyze_features", "export_preset", "invert_params", "load_preset", "match_files", "render",
           "render_file"]

_LAZY = {
    "analyze_features": "engine.features",
    "invert_params": "engine.invert",
    "render": "engine.render",
    "render_file": "engine.render",
    "export_preset": "engine.preset",
    "load_preset": "engine.preset",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


def check_measurable(features: dict[str, Any], where: str) -> None:
    """AudioInputError naming ``where`` when ``features`` hold no measurable loudness (digital
    silence, sound under -70 LUFS, or nothing but a DC offset, which BS.1770 gives no loudness)."""
    from engine.errors import AudioInputError
    if (features.get("loudness") or {}).get("integrated_lufs") is not None:
        return
    dc = features.get("dc_offset_dbfs")
    if isinstance(dc, int | float) and dc > -60.0:
        raise AudioInputError(f"holds no sound, only a constant DC offset ({dc:.1f} dBFS); there is nothing "
                              "to match", where=where)
    raise AudioInputError("is silent or too quiet to measure (no 400 ms block above -70 LUFS); "
                          "there is nothing to match", where=where)


def _analyze_pair(ref: str, tgt: str, analysis: dict[str, bool],
                  progress: Callable[[float], None] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Features of the reference and the target; on two or more cores in two threads (decoding,
    filtering and FFTs release the GIL). Errors are raised for the reference first, as in order.
    ``progress`` gets the mean fraction done of the two."""
    from engine.features import analyze_features
    from engine.threads import usable_cores

    done = [0.0, 0.0]

    def tracker(i: int) -> Callable[[float], None] | None:
        if progress is None:
            return None

        def report(f: float) -> None:
            done[i] = f
            progress(0.5 * (done[0] + done[1]))
        return report

    if usable_cores() < 2:
        ref_features = analyze_features(ref, **analysis, progress=tracker(0))
        check_measurable(ref_features, ref)
        tgt_features = analyze_features(tgt, **analysis, progress=tracker(1))
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="analyse") as pool:
            ref_job = pool.submit(analyze_features, ref, **analysis, progress=tracker(0))
            tgt_job = pool.submit(analyze_features, tgt, **analysis, progress=tracker(1))
            ref_features = ref_job.result()
            check_measurable(ref_features, ref)
            tgt_features = tgt_job.result()
    check_measurable(tgt_features, tgt)
    return ref_features, tgt_features


_OVER_FULL_SCALE_DB = 0.1  # a sample peak above this is no clipped file


def input_warnings(reference_features: dict | None, target_features: dict, *, reference_name: str = "",
                   target_name: str = "") -> list[str]:
    """What to say about the inputs' levels (from their features): a recording at 0 dBFS is probably
    clipped, which cannot be undone; one over full scale (a floating-point file) lost nothing. Shared
    by ``tonematch match`` and the service's job warnings."""
    said = []
    for label, feats, name in (("reference", reference_features, reference_name),
                               ("target", target_features, target_name)):
        peak = (feats or {}).get("sample_peak_dbfs")
        who = f"{label} {name}" if name else label
        if peak is not None and peak > _OVER_FULL_SCALE_DB:  # only a floating-point file holds this
            said.append(f"{who} goes {peak:.1f} dB over full scale (floating-point samples, not clipped); "
                        "it is measured as it is")
        elif peak is not None and peak >= -0.01:
            said.append(f"{who} reaches 0 dBFS (probably clipped); clipping cannot be undone")
    return said


def match_files(reference_path: str | os.PathLike, target_path: str | os.PathLike,
                out_path: str | os.PathLike, *, mode: str = "A", opts: dict[str, Any] | None = None,
                progress: Callable[[float], None] | None = None,
                measure_result: bool = True) -> dict[str, Any]:
    """Match ``target_path`` to ``reference_path`` and write the result to ``out_path`` (atomically).

    Returns ``{style_params, metrics, report, viz, warnings}``: ``report`` is the render report
    (loudness, true peak, gain reduction...), ``metrics`` / ``viz`` compare the result's features with
    the reference's (skipped, ``None``, when ``measure_result`` is false). Bad input raises
    :class:`engine.errors.AudioInputError` / :class:`engine.errors.ParamsError`."""
    from engine.audio_io import FORMAT_EXTENSION, probe
    from engine.errors import ParamsError
    from engine.features import analysis_options, analyze_features
    from engine.invert import invert_params
    from engine.options import validate_options
    from engine.params import fit_eq_to_rate
    from engine.render import MAX_HARD_LIMIT_SHARE, _check_out_folder, render_file, render_warnings

    o = validate_options(opts)
    analysis = analysis_options(mode)
    ref, tgt, out = str(reference_path), str(target_path), str(out_path)
    _check_out_folder(out)
    probe(ref)
    tgt_info = probe(tgt)
    for p in (ref, tgt):
        if Path(p).resolve() == Path(out).resolve():
            raise ParamsError("the output would overwrite an input file", where=out)
    if not Path(out).suffix:
        raise ParamsError(f"output needs an extension (.{FORMAT_EXTENSION[o['output_format']]})", where=out)

    def stage(lo: float, hi: float) -> Callable[[float], None] | None:
        return None if progress is None else (lambda f: progress(lo + (hi - lo) * f))

    if progress:
        progress(0.0)
    ref_features, tgt_features = _analyze_pair(ref, tgt, analysis, stage(0.0, 0.3))
    warnings = input_warnings(ref_features, tgt_features, reference_name=ref, target_name=tgt)
    params = invert_params(ref_features, tgt_features, mode=mode, opts=o)
    if (params.get("notes") or {}).get("reference"):
        warnings.append(f"reference {ref} is {params['notes']['reference']}")
    rate = int(o["output_sample_rate_hz"] or tgt_info.sample_rate_hz)
    params, left_out = fit_eq_to_rate(params, rate)  # an output rate below the target's
    if left_out:
        warnings.append(f"eq bands {left_out}")
    # the reference's loudness is reached only while the limiter stays clean; an explicit target always
    report = render_file(tgt, out, params, fmt=o["output_format"], sample_rate_hz=rate,
                         progress=stage(0.3, 1.0),
                         output_features={"pitch": analysis["pitch"]} if measure_result else None,
                         max_hard_limit_share=MAX_HARD_LIMIT_SHARE if o.get("target_lufs") is None else None)
    # the loudness asked for (a capped render's params carry the loudness reached instead)
    target_db = (params.get("lufs") or {}).get("target_db")
    params = report.pop("style_params", params)
    warnings.extend(render_warnings(report))
    if report.get("loudness_note"):
        warnings.append(f"loudness: {report['loudness_note']}")
    elif target_db is not None and report.get("lufs_integrated") is not None and \
            abs(report["lufs_integrated"] - target_db) > 0.5:
        warnings.append(f"output loudness {report['lufs_integrated']:.1f} LUFS misses the target "
                        f"{target_db:.1f} LUFS: the limiter cannot go louder at this ceiling")
    metrics = viz = None
    if measure_result:
        from engine.metrics import result_metrics
        from engine.viz import visualisation
        result_features = report.pop("features", None) or analyze_features(out, pitch=analysis["pitch"])
        metrics = result_metrics(result_features, ref_features, ceiling_dbtp=o["ceiling_dbtp"],
                                 render_report=report, target_lufs=target_db)
        viz = visualisation(tgt_features, ref_features, result_features, report)
    if progress:
        progress(1.0)
    return {"style_params": params, "metrics": metrics, "report": report, "viz": viz, "warnings": warnings,
            "reference_features": ref_features, "target_features": tgt_features}
