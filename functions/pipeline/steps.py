"""Step handlers of :data:`functions.pipeline.definition.PIPELINE`.

Each is ``handler(event: dict, ctx: StepContext) -> dict``: the event is the job's small JSON state
(``job_id, user_id, mode, ref_key, tgt_key, opts, preset_id?`` plus earlier steps' results), the return
value is small JSON too. Features, parameters, segment audio and reports live in the object store under
``{user_id}/work/{job_id}/``; results under ``audio/processed/``, ``viz/`` and ``preset/``.

Every handler is idempotent (a retry, a resumed job or a re-delivered Batch job redoes or skips its
work without duplicating rows), moves the job's status/progress as the definition says, and raises
:class:`TransientError` for faults worth retrying (object store and database hiccups);
engine errors (bad audio, bad parameters) are permanent and end the job FAILED.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from functions.pipeline.context import StepContext
from functions.pipeline.definition import PIPELINE
from functions.pipeline.errors import StepFailed
from functions.stores.objects import ObjectNotFoundError
from functions.stores.status import ConflictError

FORMAT_EXT = {"wav16": "wav", "wav24": "wav", "flac": "flac"}
CONTENT_TYPES = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
}


# ---- helpers ----------------------------------------------------------------------------------
def work_prefix(event: dict) -> str:
    return f"{event['user_id']}/work/{event['job_id']}"


def segment_key(event: dict, idx: int) -> str:
    return f"{work_prefix(event)}/seg/{int(idx):05d}.wav"


def _running_status(status: str) -> str:
    # Finalize's status in the definition is the one it ends with; while it writes the results the
    # job must not look COMPLETED yet (a client would fetch half-written outputs)
    return "RENDERING" if status == "COMPLETED" else status


def _enter(ctx: StepContext, event: dict, task_name: str) -> None:
    t = PIPELINE.task(task_name)
    ctx.status.advance_job(event["job_id"], _running_status(t.status), t.progress_start, task_name)


def _leave(ctx: StepContext, event: dict, task_name: str) -> None:
    t = PIPELINE.task(task_name)
    ctx.status.advance_job(event["job_id"], _running_status(t.status), t.progress_end)


def _job_scratch(ctx: StepContext, event: dict) -> Path:
    d = Path(ctx.scratch_dir) / str(event["job_id"])
    d.mkdir(parents=True, exist_ok=True)
    return d


def fetch(ctx: StepContext, key: str, what: str = "input") -> Path:
    """A local path holding object ``key``: the file itself for the local store, else a download
    cached in the scratch dir (shared by the steps of one machine)."""
    local = ctx.objects.local_path(key)
    if local is not None:
        return local
    suffix = Path(key).suffix
    path = Path(ctx.scratch_dir) / "cache" / (hashlib.sha256(key.encode()).hexdigest()[:32] + suffix)
    if not path.exists():
        try:
            ctx.objects.get_file(key, path)
        except ObjectNotFoundError as exc:
            raise StepFailed(f"{what} {key!r} no longer exists in the object store") from exc
    return path


@contextmanager
def naming_key(path: str | Path, label: str) -> Iterator[None]:
    """Errors raised inside that mention the local file ``path`` name ``label`` (``"target
    {key}"``) there instead: a job's error is shown to its user, who knows the object key and must
    not learn the server's file paths."""
    try:
        yield
    except Exception as exc:
        local = str(path)
        if local not in str(exc):
            raise
        exc.args = tuple(a.replace(local, label) if isinstance(a, str) else a for a in exc.args)
        for attr in ("where", "message"):  # TonematchError keeps both besides args
            if isinstance(getattr(exc, attr, None), str):
                setattr(exc, attr, getattr(exc, attr).replace(local, label))
        raise


def put_json(ctx: StepContext, key: str, obj: Any) -> str:
    ctx.objects.put_bytes(
        key, json.dumps(obj, separators=(",", ":"), allow_nan=False).encode(), CONTENT_TYPES["json"]
    )
    return key


def get_json(ctx: StepContext, key: str) -> Any:
    try:
        return json.loads(ctx.objects.get_bytes(key))
    except ObjectNotFoundError as exc:
        raise StepFailed(f"intermediate result {key!r} is missing") from exc


def output_format(opts: dict | None) -> str:
    return str((opts or {}).get("output_format") or "wav24")


def _summary(feats: dict) -> dict:
    return {
        "duration_s": feats.get("duration_s"),
        "sample_rate_hz": feats.get("sample_rate_hz"),
        "channels": feats.get("channels"),
        "integrated_lufs": (feats.get("loudness") or {}).get("integrated_lufs"),
    }


def _analyze(event: dict, ctx: StepContext, which: str, key_field: str, task: str) -> dict:
    from engine import check_measurable
    from engine.features import analysis_options, analyze_features

    _enter(ctx, event, task)
    out_key = f"{work_prefix(event)}/{which}.features.json"
    if ctx.objects.exists(out_key):
        feats = get_json(ctx, out_key)
    else:
        path = fetch(ctx, event[key_field], which)
        # the same per-mode choice as tonematch match: mode B needs F0 and the learned reverb estimate
        with naming_key(path, f"{which} {event[key_field]}"):
            feats = analyze_features(str(path), **analysis_options(event["mode"]))
        check_measurable(feats, f"{which} {event[key_field]}")
        put_json(ctx, out_key, feats)
    _leave(ctx, event, task)
    return {"features_key": out_key, **_summary(feats)}


# ---- steps ------------------------------------------------------------------------------------
def analyze_reference(event: dict, ctx: StepContext) -> dict:
    """Features of the reference (skipped when the job applies a saved preset)."""
    if event.get("preset_id"):
        _leave(ctx, event, "AnalyzeReference")
        return {"skipped": True, "features_key": None}
    return _analyze(event, ctx, "reference", "ref_key", "AnalyzeReference")


def analyze_target(event: dict, ctx: StepContext) -> dict:
    """Features of the target."""
    return _analyze(event, ctx, "target", "tgt_key", "AnalyzeTarget")


def _preset_params(event: dict, ctx: StepContext, sample_rate_hz: int, target_features: dict | None = None
                   ) -> dict:
    from engine.errors import TonematchError
    from engine.preset import preset_params_for_target

    preset = ctx.status.get_preset(event["preset_id"], event["user_id"])
    if preset is None:
        raise StepFailed(f"preset {event['preset_id']} does not exist (deleted?)")
    opts = event.get("opts") or {}
    tf = target_features or {}
    # the rule `tonematch apply` follows: the gain re-solved, the job's options, EQ bands this rate
    # cannot carry left out and the DC high-pass an offset target needs (both said in notes.eq)
    try:
        return preset_params_for_target(
            preset["style_params"], sample_rate_hz=sample_rate_hz, dc_offset_dbfs=tf.get("dc_offset_dbfs"),
            sample_peak_dbfs=tf.get("sample_peak_dbfs"), target_lufs=opts.get("target_lufs"),
            ceiling_dbtp=opts.get("ceiling_dbtp"), exclude=opts.get("exclude") or (),
            intensity=opts.get("intensity"), mode=event["mode"])[0]
    except TonematchError as exc:
        raise StepFailed(f"preset {preset['name']!r}: {exc.where}: {exc.message}") from exc


def invert(event: dict, ctx: StepContext) -> dict:
    """Style parameters from the two feature sets (or the preset), with the make-up gain resolved
    on the target so every segment applies the same gain."""
    from engine.invert import invert_params
    from engine.params import fit_eq_to_rate

    _enter(ctx, event, "Invert")
    opts = event.get("opts") or {}
    tgt = event["target"]
    sample_rate_hz = int(opts.get("output_sample_rate_hz") or tgt["sample_rate_hz"])
    params_key = f"{work_prefix(event)}/params.json"
    if ctx.objects.exists(params_key):
        params = get_json(ctx, params_key)
    else:
        tgt_feats = get_json(ctx, tgt["features_key"])
        if event.get("preset_id"):
            params = _preset_params(event, ctx, sample_rate_hz, tgt_feats)
        else:
            ref_feats = get_json(ctx, event["reference"]["features_key"])
            # an output rate below the target's cannot carry its top EQ bands (said in notes.eq)
            params, _ = fit_eq_to_rate(invert_params(ref_feats, tgt_feats, mode=event["mode"], opts=opts),
                                       sample_rate_hz)
        params = _resolve_gain_like_match(ctx, event, params, sample_rate_hz)
        put_json(ctx, params_key, params)
    ctx.status.update_job(event["job_id"], params=params)
    _leave(ctx, event, "Invert")
    return {"params_key": params_key, "sample_rate_hz": sample_rate_hz}


def _resolve_gain_like_match(ctx: StepContext, event: dict, params: dict, sample_rate_hz: int) -> dict:
    """``params`` with ``lufs.gain_db`` resolved by the very code path ``tonematch match`` uses (a
    whole-file render that solves the gain on the loudness model and corrects it once if the output
    misses by more than the engine's tolerance), so the segmented result equals the CLI's sample for
    sample. The probe render goes to scratch and is deleted.

    Not ``engine.render.resolve_gain(verify=True)``: its verify pass decodes and runs the whole
    chain again, single-threaded, where render_file replays only gain + limiter on the spilled "pre"
    output with decoding, writing and measuring on their own threads (240 s bench pair, quiet
    2-core machine: 1.44 s against 0.85 s wall), and it gives the same gain to within float
    rounding, where this is the CLI's very code path."""
    from engine.render import MAX_HARD_LIMIT_SHARE, render_file

    if (params.get("lufs") or {}).get("target_db") is None or (params.get("lufs") or {}).get(
        "gain_db"
    ) is not None:
        return params
    # in the job's own format: an integer file clips what goes over full scale (no limiter) before
    # the loudness is measured and corrected, as tonematch match's render does; float32 did not, and
    # the gain came out 0.6 dB apart
    fmt = output_format(event.get("opts"))
    out = _job_scratch(ctx, event) / f"gain-probe.{FORMAT_EXT.get(fmt, 'wav')}"
    src = fetch(ctx, event["tgt_key"], "target")
    try:
        with naming_key(src, f"target {event['tgt_key']}"):
            report = render_file(
                str(src),
                str(out),
                params,
                fmt=fmt,
                sample_rate_hz=sample_rate_hz,
                # as tonematch match: the reference's loudness only while the limiter stays clean (a
                # target from the options or from a saved preset is reached whatever it costs)
                max_hard_limit_share=None
                if event.get("preset_id") or (event.get("opts") or {}).get("target_lufs") is not None
                else MAX_HARD_LIMIT_SHARE,
            )
    finally:
        out.unlink(missing_ok=True)
    resolved = report.get("style_params") or params
    if (resolved.get("lufs") or {}).get("gain_db") is None:
        resolved = {**resolved, "lufs": {**resolved["lufs"], "gain_db": report["gain_db"]}}
    return resolved


#: most segments one job is cut into: the plan and the Map's results travel in the Step Functions
#: execution state (256 KB at most; ~300 bytes a segment) and each Batch item adds ~15 history
#: events (25,000 at most), so a 3-hour target asked for 10 s segments gets 45 s ones instead
MAX_SEGMENTS = 240


def plan_segments(event: dict, ctx: StepContext) -> dict:
    """Split the target into segments (``opts.segment_s``, default 60 s, longer where the target
    would need more than ``MAX_SEGMENTS``) with pre-roll and crossfades; creates the job_segments
    rows."""
    from engine.segments import plan_segments as engine_plan

    _enter(ctx, event, "PlanSegments")
    opts = event.get("opts") or {}
    duration_s = float(event["target"]["duration_s"])
    params = get_json(ctx, event["params"]["params_key"])  # mode-B tails and pitch shape the plan
    segment_s = max(float(opts.get("segment_s") or 60.0), duration_s / MAX_SEGMENTS)
    segments = engine_plan(duration_s, segment_s=segment_s, style_params=params)
    segments = [{k: (round(v, 9) if isinstance(v, float) else v) for k, v in s.items()} for s in segments]
    ctx.status.init_segments(event["job_id"], len(segments))
    plan_key = put_json(ctx, f"{work_prefix(event)}/plan.json", segments)
    _leave(ctx, event, "PlanSegments")
    return {"segments": segments, "count": len(segments), "plan_key": plan_key}


def render_segment(event: dict, ctx: StepContext) -> dict:
    """Render one planned segment (``event["item"]``) of the target to a float32 WAV in the store."""
    from engine.segments import render_segment as engine_render_segment

    item = event["item"]
    idx = int(item["idx"])
    job_id = event["job_id"]
    key = segment_key(event, idx)
    report_key = f"{work_prefix(event)}/seg/{idx:05d}.report.json"
    done = {s["idx"]: s for s in ctx.status.segments(job_id)}
    if done.get(idx, {}).get("status") == "DONE" and ctx.objects.exists(key):
        return {"idx": idx, "key": key, "report_key": report_key}
    ctx.status.advance_job(
        job_id, "RENDERING", PIPELINE.task("RenderSegment").progress_start, "RenderSegment"
    )
    ctx.status.start_segment(job_id, idx)
    params = get_json(ctx, event["params"]["params_key"])
    src = fetch(ctx, event["tgt_key"], "target")
    out = _job_scratch(ctx, event) / f"seg-{idx:05d}.wav"
    try:
        with naming_key(src, f"target {event['tgt_key']}"):
            report = engine_render_segment(
                str(src), str(out), params, item, sample_rate_hz=int(event["params"]["sample_rate_hz"])
            )
        ctx.objects.put_file(key, out, CONTENT_TYPES["wav"])
    finally:
        out.unlink(missing_ok=True)
    put_json(ctx, report_key, report)
    small = {
        k: v
        for k, v in (report or {}).items()
        if (isinstance(v, int | float | str | bool) or v is None) and k != "out_path"
    }
    ctx.status.finish_segment(job_id, idx, small)
    done_n, total = ctx.status.segment_counts(job_id)
    t = PIPELINE.task("RenderSegment")
    if total:
        progress = t.progress_start + (t.progress_end - t.progress_start) * done_n // total
        ctx.status.advance_job(job_id, "RENDERING", int(progress))
    return {"idx": idx, "key": key, "report_key": report_key}


def result_features_key(event: dict) -> str:
    return f"{work_prefix(event)}/result.features.json"


def _result_analysis(mode: str) -> dict:
    """How the result is analysed: as ``tonematch match`` does (the mode's F0 choice, no blind
    reverb estimate), so the service's metrics and visualisation equal the CLI's."""
    from engine.features import analysis_options

    return {"pitch": analysis_options(mode)["pitch"], "blind_reverb": False}


def merge(event: dict, ctx: StepContext) -> dict:
    """Join the rendered segments (crossfades, tail protection, final true-peak check) and analyse
    the result on the way (its features go next to the merge report, so Finalize reads JSON only)."""
    from engine.segments import merge_segments

    _enter(ctx, event, "Merge")
    opts = event.get("opts") or {}
    fmt = output_format(opts)
    ext = FORMAT_EXT.get(fmt, "wav")
    merged_key = f"{work_prefix(event)}/merged.{ext}"
    report_key = f"{work_prefix(event)}/merged.report.json"
    features_key = result_features_key(event)
    if not all(ctx.objects.exists(k) for k in (merged_key, report_key, features_key)):
        segs = sorted(event["segments"], key=lambda s: s["idx"])
        paths = [str(fetch(ctx, s["key"], f"segment {s['idx']}")) for s in segs]
        out = _job_scratch(ctx, event) / f"merged.{ext}"
        try:
            report = merge_segments(
                paths,
                event["plan"]["segments"],
                str(out),
                fmt=fmt,
                sample_rate_hz=int(event["params"]["sample_rate_hz"]),
                analysis=_result_analysis(event["mode"]),
                # the limiter's gain reduction and hard-limited share, as in tonematch match's report
                segment_reports=[get_json(ctx, s["report_key"]) for s in segs],
            )
            ctx.objects.put_file(merged_key, out, CONTENT_TYPES[ext])
        finally:
            out.unlink(missing_ok=True)
        put_json(ctx, features_key, report.pop("features"))
        put_json(ctx, report_key, report)
    _leave(ctx, event, "Merge")
    return {"key": merged_key, "report_key": report_key, "features_key": features_key, "format": fmt}


def job_warnings(report: dict, params: dict, target_features: dict | None = None,
                 reference_features: dict | None = None) -> list[str]:
    """What ``tonematch match`` would warn about this job: a clipped (or over-full-scale) input, a
    reference too short to describe, clipping or heavy limiting in the merged output, a loudness
    target not reached, EQ bands left out or an offset kept (from ``notes``)."""
    from engine import input_warnings
    from engine.render import render_warnings

    notes = params.get("notes") or {}
    said = input_warnings(reference_features, target_features) if target_features is not None else []
    if notes.get("reference"):
        said.append(f"reference is {notes['reference']}")
    said += render_warnings(report)
    lufs_note = str(notes.get("lufs", ""))
    if "not reached" in lufs_note:
        # as tonematch match words it: without the note on where the target came from
        where_from, _, rest = lufs_note.partition("; ")
        said.append(f"loudness: {rest if rest and 'not reached' not in where_from else lufs_note}")
    said += [f"eq: {part.strip()}" for part in str(notes.get("eq", "")).split(";")
             if "left out for" in part or " stays:" in part]
    return said


def finalize(event: dict, ctx: StepContext) -> dict:
    """Write the result (processed audio, metrics row, visualisation JSON, preset + EQ text, preset
    row, billing row) and mark the job COMPLETED."""
    from engine.metrics import result_metrics
    from engine.preset import eq_to_equalizer_apo, export_preset
    from engine.viz import visualisation

    job_id, user_id = event["job_id"], event["user_id"]
    done = ctx.status.get_job(job_id)
    if done is not None and done["status"] == "COMPLETED":  # re-delivered after it finished
        out = done.get("outputs") or {}
        return {
            "result_key": out.get("result_key"),
            "viz_key": out.get("viz_key"),
            "preset_id": out.get("preset_id"),
        }
    _enter(ctx, event, "Finalize")
    opts = event.get("opts") or {}
    merged = event["merged"]
    ext = FORMAT_EXT.get(merged.get("format", "wav24"), "wav")
    result_key = f"{user_id}/audio/processed/{job_id}.{ext}"
    viz_key = f"{user_id}/viz/{job_id}.json"
    preset_key = f"{user_id}/preset/{job_id}.json"
    eq_key = f"{user_id}/preset/{job_id}.apo.txt"

    ctx.objects.copy(merged["key"], result_key)
    report = get_json(ctx, merged["report_key"])
    params = get_json(ctx, event["params"]["params_key"])
    tgt_feats = get_json(ctx, event["target"]["features_key"])
    ref_key = (event.get("reference") or {}).get("features_key")
    ref_feats = get_json(ctx, ref_key) if ref_key else None
    res_feats = _result_features(event, ctx, result_key)

    ceiling = opts.get("ceiling_dbtp")
    ceiling = (
        float(ceiling) if ceiling is not None else float((params.get("limiter") or {}).get("tp_db", -1.0))
    )
    # the loudness asked for: a match whose target was capped keeps the loudness reached in its params
    asked = opts.get("target_lufs")
    if asked is None and not event.get("preset_id"):
        asked = (event.get("reference") or {}).get("integrated_lufs")
    asked = round(float(asked), 2) if asked is not None else (params.get("lufs") or {}).get("target_db")
    metrics = result_metrics(
        res_feats,
        ref_feats if ref_feats is not None else res_feats,
        ceiling_dbtp=ceiling,
        render_report=report,
        target_lufs=asked,
    )
    if ref_feats is None:  # preset applied: no reference to compare the result with
        metrics = {**metrics, "stft_dist": None, "mel_dist": None}
    viz = visualisation(tgt_feats, ref_feats if ref_feats is not None else res_feats, res_feats, report)
    put_json(ctx, viz_key, viz)
    preset = export_preset(params, name=f"job {job_id}", source={"job_id": job_id, "mode": event["mode"]})
    put_json(ctx, preset_key, preset)
    ctx.objects.put_bytes(eq_key, eq_to_equalizer_apo(params).encode(), CONTENT_TYPES["txt"])

    preset_id = _ensure_job_preset(ctx, user_id, job_id, params)
    if not ctx.status.metrics_for(job_id):
        ctx.status.add_metrics(job_id, metrics)
    duration_s = float(event["target"]["duration_s"])
    loudness = {
        "reference_lufs": (event.get("reference") or {}).get("integrated_lufs"),
        "target_lufs": event["target"].get("integrated_lufs"),
        "result_lufs": (res_feats.get("loudness") or {}).get("integrated_lufs"),
    }
    outputs = {
        "result_key": result_key,
        "viz_key": viz_key,
        "preset_key": preset_key,
        "eq_text_key": eq_key,
        "preset_id": preset_id,
        "format": merged.get("format"),
        "duration_s": duration_s,
        "warnings": job_warnings(report, params, tgt_feats, ref_feats),
    }
    # billed exactly when completed: a Finalize that fails after billing would leave a failed job billed
    with ctx.status.transaction():
        ctx.status.bill(user_id, job_id, duration_s)
        ctx.status.update_job(
            job_id,
            status="COMPLETED",
            progress=100,
            metrics=_json_safe(metrics),
            loudness=_json_safe(loudness),
            outputs=outputs,
            error=None,
            last_step="Finalize",
        )
        ctx.status.audit(user_id, "job.completed", job_id, {"audio_s": duration_s})
    _cleanup(ctx, event)
    return {"result_key": result_key, "viz_key": viz_key, "preset_id": preset_id}


def _result_features(event: dict, ctx: StepContext, result_key: str) -> dict:
    """The result's features: written by Merge; a job whose Merge ran before Merge analysed (resumed
    across an upgrade) gets them from the result file instead."""
    key = (event.get("merged") or {}).get("features_key") or result_features_key(event)
    if ctx.objects.exists(key):
        return get_json(ctx, key)
    from engine.features import analyze_features

    feats = analyze_features(str(fetch(ctx, result_key, "result")), **_result_analysis(event["mode"]))
    put_json(ctx, key, feats)
    return feats


def _ensure_job_preset(ctx: StepContext, user_id: str, job_id: str, params: dict) -> str:
    name = f"job {job_id[:8]}"
    existing = [p for p in ctx.status.list_presets(user_id) if p.get("source_job_id") == job_id]
    if existing:
        return existing[0]["id"]
    try:
        return ctx.status.create_preset(user_id, name, params, source_job_id=job_id)["id"]
    except ConflictError:
        return ctx.status.create_preset(user_id, f"job {job_id}", params, source_job_id=job_id)["id"]


def _cleanup(ctx: StepContext, event: dict) -> None:
    """Drop the bulky intermediates (segment audio, merged copy); features and params stay."""
    for key in ctx.objects.list(f"{work_prefix(event)}/seg/"):
        if key.endswith(".wav"):
            ctx.objects.delete(key)
    merged = (event.get("merged") or {}).get("key")
    if merged:
        ctx.objects.delete(merged)
    shutil.rmtree(Path(ctx.scratch_dir) / str(event["job_id"]), ignore_errors=True)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def mark_failed(event: dict, ctx: StepContext) -> dict:
    """The failure path: job FAILED with ``error`` and ``last_step``, a dead-letter record, an
    audit row. ``event["error"]`` is ``{"Error": name, "Cause": message}`` (on AWS the cause is the
    Lambda's JSON error document)."""
    err = event.get("error") or {}
    name = str(err.get("Error") or "Error")
    cause = err.get("Cause") or ""
    try:
        doc = json.loads(cause)
        if isinstance(doc, dict) and doc.get("errorMessage"):
            cause = doc["errorMessage"]
    except (TypeError, ValueError):
        pass
    step = event.get("failed_step")
    message = f"{name}: {cause}" if cause else name
    job_id = event["job_id"]
    job = ctx.status.get_job(job_id)
    if job is not None and job["status"] == "COMPLETED":
        # a late failure (e.g. of clean-up after the results were written) never un-completes a job
        ctx.status.audit(
            event.get("user_id"), "job.late_failure", job_id, {"step": step, "error": message[:500]}
        )
        return {"status": "COMPLETED", "error": message, "last_step": step}
    ctx.status.update_job(job_id, status="FAILED", error=message[:4000], last_step=step)
    record = {
        "job_id": job_id,
        "user_id": event.get("user_id"),
        "step": step,
        "error": message[:4000],
        "state_keys": sorted(k for k in event if k not in ("error",)),
    }
    ctx.dead_letters.send(record)
    ctx.status.audit(event.get("user_id"), "job.failed", job_id, {"step": step, "error": message[:500]})
    return {"status": "FAILED", "error": message, "last_step": step}
