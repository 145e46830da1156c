"""The service's operations as plain functions over a :class:`StepContext`: the FastAPI app, the
Lambda handlers and the drop folder all call these, so the rules live in one place.

Rules: every key, job and preset belongs to one user and is invisible to others (404, never 403, so
ids cannot be probed); bad input is refused before any work starts with a :class:`ServiceError`
naming the field; every mutating action writes an audit row; a second create with the same
idempotency key while that job is queued or running returns the same job and starts nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from functions.pipeline.context import StepContext
from functions.stores.objects import ObjectNotFoundError, check_key
from functions.stores.status import ConflictError, is_uuid

#: upload extensions and the content types accepted for each
AUDIO_TYPES: dict[str, tuple[str, ...]] = {
    "wav": ("audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"),
    "flac": ("audio/flac", "audio/x-flac"),
    "aiff": ("audio/aiff", "audio/x-aiff"),
    "aif": ("audio/aiff", "audio/x-aiff"),
    "ogg": ("audio/ogg", "audio/vorbis"),
    "opus": ("audio/opus", "audio/ogg"),  # Ogg Opus: libsndfile decodes it (at 48 kHz)
    "mp3": ("audio/mpeg", "audio/mp3"),
}
MODES = ("A", "B")
PROBE_MAX_BYTES = 256 * 1024 * 1024  # remote inputs larger than this are checked by the analysis step


@dataclass
class ServiceError(Exception):
    """An error for the client: ``code`` is one of SPEC section 6; ``detail`` says what and where."""

    code: str
    message: str
    detail: Any = None
    headers: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def body(self) -> dict:
        out = {"code": self.code, "message": self.message}
        if self.detail is not None:
            out["detail"] = self.detail
        return out


def is_user_id(value: str) -> bool:
    return is_uuid(value)


def invalid(field_name: str, reason: str) -> ServiceError:
    return ServiceError("INVALID_INPUT", f"{field_name}: {reason}", {"field": field_name, "reason": reason})


def not_found(what: str, ident: str) -> ServiceError:
    return ServiceError("NOT_FOUND", f"{what} {ident!r} not found", {"field": what, "id": ident})


# ---- options and idempotency ------------------------------------------------------------------
def canonical_opts(opts: dict | None) -> dict:
    """Options validated and normalised by the engine (defaults filled), or INVALID_INPUT."""
    from engine.errors import TonematchError
    from engine.options import validate_options

    if opts is not None and not isinstance(opts, dict):
        raise invalid("opts", "must be a JSON object")
    _refuse_nul(opts, "opts")  # else a NUL in an option's name reaches the audit row of the refusal
    try:
        return validate_options(dict(opts or {}))
    except TonematchError as exc:
        where = exc.where or "opts"
        raise invalid(where if where.startswith("opts") else f"opts.{where}", exc.message) from exc


def idempotency_key(
    mode: str, ref_key: str | None, tgt_key: str, opts: dict, preset_id: str | None = None
) -> str:
    """SHA-256 of (mode, ref_key, tgt_key, canonical opts[, preset_id]) as canonical JSON."""
    doc = {"mode": mode, "ref_key": ref_key, "tgt_key": tgt_key, "opts": opts}
    if preset_id:
        doc["preset_id"] = preset_id
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# ---- keys and uploads -------------------------------------------------------------------------
def owned_key(ctx: StepContext, user_id: str, key: Any, field_name: str, *, must_exist: bool = True) -> str:
    """``key`` if it is a valid key under the user's prefix (``{user_id}/`` or the drop folder
    ``drop/{user_id}/``) and exists; someone else's key is reported exactly like a missing one."""
    if not isinstance(key, str) or not key:
        raise invalid(field_name, "must be an object key string (from POST /uploads/sign)")
    try:
        check_key(key)
    except ValueError as exc:
        raise invalid(field_name, str(exc)) from exc
    owned = key.startswith((f"{user_id}/", f"drop/{user_id}/"))
    if not owned or (must_exist and not ctx.objects.exists(key)):
        raise ServiceError(
            "NOT_FOUND",
            f"{field_name}: object {key!r} not found (upload it first)",
            {"field": field_name, "key": key},
        )
    return key


def check_audio(ctx: StepContext, key: str, field_name: str) -> dict | None:
    """Probe an uploaded audio object; INVALID_INPUT naming the field when it is not usable audio.
    Returns the probe summary, or None when the object is too large to fetch here."""
    from engine.audio_io import probe
    from engine.errors import TonematchError

    path = ctx.objects.local_path(key)
    tmp: Path | None = None
    if path is None:
        size = ctx.objects.size(key)
        if size > PROBE_MAX_BYTES:
            return None
        tmp = Path(ctx.scratch_dir) / "probe" / f"{uuid.uuid4().hex}{Path(key).suffix}"
        path = ctx.objects.get_file(key, tmp)
    try:
        info = probe(str(path))
    except TonematchError as exc:
        raise ServiceError(
            "INVALID_INPUT",
            f"{field_name}: {exc.message}",
            {"field": field_name, "key": key, "reason": exc.message},
        ) from exc
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return {"duration_s": info.duration_s, "sample_rate_hz": info.sample_rate_hz, "channels": info.channels}


def _check_type(content_type: Any, ext: Any) -> tuple[str, str]:
    if not isinstance(ext, str) or ext.lower().lstrip(".") not in AUDIO_TYPES:
        raise invalid("ext", f"unsupported extension {ext!r}; use one of {sorted(AUDIO_TYPES)}")
    ext = ext.lower().lstrip(".")
    ct = str(content_type or "").split(";")[0].strip().lower()
    if ct not in AUDIO_TYPES[ext]:
        raise invalid(
            "content_type", f"{content_type!r} does not match .{ext}; use one of {list(AUDIO_TYPES[ext])}"
        )
    return ct, ext


def sign_upload(
    ctx: StepContext, user_id: str, content_type: Any, ext: Any, size_bytes: int | None = None
) -> dict:
    """A fresh raw-audio key under the user and a signed PUT URL for it; multipart (a list of part
    URLs) when ``size_bytes`` is above the multipart threshold."""
    s = ctx.settings
    ct, ext = _check_type(content_type, ext)
    if size_bytes is not None:
        if size_bytes <= 0:
            raise invalid("size_bytes", "the file is empty")
        if size_bytes > s.max_upload_bytes:
            raise invalid("size_bytes", f"{size_bytes} bytes is over the limit of {s.max_upload_bytes} bytes")
    key = f"{user_id}/audio/raw/{uuid.uuid4()}.{ext}"
    out: dict[str, Any] = {"key": key, "expires": s.sign_ttl_s, "content_type": ct}
    if size_bytes is not None and size_bytes > s.multipart_threshold_bytes:
        part_bytes = s.multipart_part_bytes
        n = -(-size_bytes // part_bytes)
        upload_id = ctx.objects.create_multipart(key, ct)
        out.update(
            multipart=True,
            upload_id=upload_id,
            part_size_bytes=part_bytes,
            parts=[
                {
                    "part_number": i,
                    "put_url": ctx.objects.sign_part(key, upload_id, i, s.sign_ttl_s, part_bytes),
                }
                for i in range(1, n + 1)
            ],
        )
    else:
        out.update(
            multipart=False,
            put_url=ctx.objects.sign_put(
                key, ct, s.sign_ttl_s, min(size_bytes or s.max_upload_bytes, s.max_upload_bytes)
            ),
        )
    ctx.status.audit(
        user_id,
        "upload.sign",
        key,
        {"content_type": ct, "size_bytes": size_bytes, "multipart": out["multipart"]},
    )
    return out


def complete_upload(ctx: StepContext, user_id: str, key: Any, upload_id: Any, parts: Any) -> dict:
    """Join a multipart upload's parts (``[{part_number, etag}]``)."""
    key = owned_key(ctx, user_id, key, "key", must_exist=False)
    if not isinstance(upload_id, str) or not upload_id:
        raise invalid("upload_id", "required")
    if not isinstance(parts, list) or not parts:
        raise invalid("parts", "a non-empty list of {part_number, etag}")
    if ctx.objects.exists(key):
        raise ServiceError("CONFLICT", f"key {key!r} is already complete", {"field": "key", "key": key})
    try:
        ctx.objects.complete_multipart(key, upload_id, parts)
    except ObjectNotFoundError as exc:  # unknown, expired, malformed or another key's upload_id
        raise ServiceError(
            "NOT_FOUND",
            f"upload_id: multipart upload {upload_id!r} not found for this key (sign the upload again)",
            {"field": "upload_id", "id": upload_id},
        ) from exc
    except ValueError as exc:
        raise invalid("parts", str(exc)) from exc
    size = ctx.objects.size(key)
    ctx.status.audit(user_id, "upload.complete", key, {"size_bytes": size, "parts": len(parts)})
    return {"key": key, "size_bytes": size}


# ---- jobs -------------------------------------------------------------------------------------
def job_event(job: dict) -> dict:
    """The pipeline's initial state for a job."""
    return {
        "job_id": job["id"],
        "user_id": job["user_id"],
        "mode": job["mode"],
        "ref_key": job["ref_key"],
        "tgt_key": job["tgt_key"],
        "opts": job["opts"] or {},
        "preset_id": job.get("preset_id"),
        "attempt": int(job.get("attempts") or 0),
    }


def create_job(
    ctx: StepContext,
    user_id: str,
    *,
    mode: Any,
    tgt_key: Any,
    ref_key: Any = None,
    opts: Any = None,
    preset_id: Any = None,
    source: str = "api",
) -> tuple[dict, bool]:
    """Validate and queue a job; returns ``(job, created)``. With ``preset_id`` instead of
    ``ref_key`` the saved preset is applied to the target (no reference analysis, no inversion)."""
    if mode not in MODES:
        raise invalid("mode", f"must be one of {list(MODES)}, got {mode!r}")
    if (ref_key is None) == (preset_id is None):
        raise invalid(
            "ref_key", "give exactly one of ref_key (match a reference) or preset_id (apply a preset)"
        )
    tgt_key = owned_key(ctx, user_id, tgt_key, "tgt_key")
    if ref_key is not None:
        ref_key = owned_key(ctx, user_id, ref_key, "ref_key")
    if preset_id is not None:
        preset = ctx.status.get_preset(preset_id, user_id) if isinstance(preset_id, str) else None
        if preset is None:
            raise not_found("preset_id", str(preset_id))
        check_preset_applies(preset, mode)
    clean_opts = canonical_opts(opts)
    if preset_id is not None:
        clean_opts = preset_job_opts(opts, clean_opts)
    key = idempotency_key(mode, ref_key, tgt_key, clean_opts, preset_id)
    existing = ctx.status.find_active_job(key)
    if existing is not None:
        return existing, False
    if ref_key is not None:
        check_audio(ctx, ref_key, "ref_key")
    check_audio(ctx, tgt_key, "tgt_key")
    job, created = ctx.status.create_job(
        user_id=user_id,
        mode=mode,
        ref_key=ref_key,
        tgt_key=tgt_key,
        opts=clean_opts,
        idempotency_key=key,
        preset_id=preset_id,
    )
    if created:
        ctx.status.audit(
            user_id,
            "job.create",
            job["id"],
            {"mode": mode, "ref_key": ref_key, "tgt_key": tgt_key, "preset_id": preset_id, "source": source},
        )
        if ctx.launch is not None:
            ctx.launch(job_event(job))
    return job, created


def preset_job_opts(opts: dict | None, clean_opts: dict) -> dict:
    """A preset job's canonical options: the limiter keeps the preset's ceiling unless ``opts`` set
    one (``ceiling_dbtp`` None), and ``intensity``, a matching option, must stay 1 (INVALID_INPUT)."""
    from engine.errors import TonematchError
    from engine.preset import check_preset_intensity

    try:
        check_preset_intensity(clean_opts.get("intensity"))
    except TonematchError as exc:
        raise invalid(exc.where or "opts.intensity", exc.message) from exc
    if (opts or {}).get("ceiling_dbtp") is None:
        return {**clean_opts, "ceiling_dbtp": None}
    return clean_opts


def check_preset_applies(preset: dict, mode: str) -> None:
    """INVALID_INPUT when a saved preset cannot be applied in ``mode`` (the job would only fail at
    its Invert step): mode-B processors with mode A (naming ``mode``), or parameters the engine no
    longer accepts (naming ``preset_id``)."""
    from engine.errors import TonematchError
    from engine.params import MODE_B_BLOCKS, validate_style_params

    params = preset.get("style_params") or {}
    b_blocks = [k for k in MODE_B_BLOCKS if k in params]
    if mode == "A" and b_blocks:
        err = invalid(
            "mode",
            f"preset {preset['name']!r} uses mode-B processors ({', '.join(b_blocks)}); apply it with "
            "mode B",
        )
    else:
        try:
            validate_style_params(params, mode=mode)
            return
        except TonematchError as exc:
            where = f"style_params.{exc.where}" if exc.where else "style_params"
            err = invalid("preset_id", f"preset {preset['name']!r} cannot be applied: {where}: {exc.message}")
    err.detail["preset_id"] = preset["id"]
    raise err


def get_job(ctx: StepContext, user_id: str, job_id: str) -> dict:
    job = ctx.status.get_job(job_id, user_id)
    if job is None:
        raise not_found("job", job_id)
    return job


def _check_inputs_remain(ctx: StepContext, job: dict) -> None:
    """CONFLICT naming the field when an input the retried job still needs is gone (it would only
    fail again): the reference until its features are saved, the target until the segments are
    rendered, the preset always."""
    from functions.pipeline.steps import work_prefix

    needed = {"tgt_key": job["tgt_key"]} if job["last_step"] not in ("Merge", "Finalize") else {}
    features = f"{work_prefix({'user_id': job['user_id'], 'job_id': job['id']})}/reference.features.json"
    if job["ref_key"] and not ctx.objects.exists(features):
        needed["ref_key"] = job["ref_key"]
    for field_name, key in needed.items():
        if not ctx.objects.exists(key):
            raise ServiceError(
                "CONFLICT",
                f"{field_name}: the job's input {key!r} no longer exists; upload it again and create a "
                "new job",
                {"field": field_name, "key": key},
            )
    if job.get("preset_id") and ctx.status.get_preset(job["preset_id"], job["user_id"]) is None:
        raise ServiceError(
            "CONFLICT",
            f"preset_id: the job's preset {job['preset_id']} has been deleted; create a new job",
            {"field": "preset_id", "id": job["preset_id"]},
        )


def retry_job(ctx: StepContext, user_id: str, job_id: str) -> dict:
    """Queue a FAILED job again (it continues from its failed step); CONFLICT in any other state."""
    job = get_job(ctx, user_id, job_id)
    if job["status"] != "FAILED":
        raise ServiceError(
            "CONFLICT",
            f"job {job_id} is {job['status']}; only a FAILED job can be retried",
            {"field": "status", "status": job["status"]},
        )
    _check_inputs_remain(ctx, job)
    try:
        # one conditional UPDATE: a check and a write in a READ COMMITTED transaction let concurrent
        # retries on PostgreSQL all see FAILED, all succeed and all launch the job
        requeued = ctx.status.requeue_failed_job(job_id)
    except ConflictError as exc:
        raise ServiceError(
            "CONFLICT",
            "the same job (same inputs and options) is already queued or running",
            {"field": "idempotency_key"},
        ) from exc
    if not requeued:
        fresh = ctx.status.get_job(job_id, user_id)
        raise ServiceError(
            "CONFLICT",
            f"job {job_id} is no longer FAILED",
            {"field": "status", "status": fresh and fresh["status"]},
        )
    ctx.status.audit(user_id, "job.retry", job_id, {"last_step": job["last_step"], "error": job["error"]})
    job = ctx.status.get_job(job_id)
    if ctx.launch is not None:
        ctx.launch(job_event(job))
    return job


def _sign(ctx: StepContext, key: str | None, filename: str | None = None) -> str | None:
    if not key:
        return None
    return ctx.objects.sign_get(key, ctx.settings.sign_ttl_s, filename)


def job_view(ctx: StepContext, job: dict) -> dict:
    """The GET /jobs/{id} document (signed URLs for inputs and, once COMPLETED, for the results)."""
    out = job.get("outputs") or {}
    done = job["status"] == "COMPLETED"
    view: dict[str, Any] = {
        "job_id": job["id"],
        "status": job["status"],
        "progress": int(job["progress"] or 0),
        "mode": job["mode"],
        "opts": job["opts"],
        "created_at": job["created_at"],
        "updated_at": job["updated_at"],
        "last_step": job["last_step"],
        "error": job["error"],
        "ref_key": job["ref_key"],
        "tgt_key": job["tgt_key"],
        "inputs": {"reference_url": _sign(ctx, job["ref_key"]), "target_url": _sign(ctx, job["tgt_key"])},
        "loudness": job.get("loudness") or {"reference_lufs": None, "target_lufs": None, "result_lufs": None},
        "metrics": job.get("metrics"),
        "params": job.get("params"),
        "preset_id": out.get("preset_id") or job.get("preset_id"),
        "warnings": out.get("warnings") or [],
        "download_url": None,
        "viz_urls": None,
        "preset_url": None,
        "eq_text_url": None,
    }
    if done:
        ext = Path(out.get("result_key", "x.wav")).suffix
        view["download_url"] = _sign(ctx, out.get("result_key"), f"tonematch-{job['id'][:8]}{ext}")
        view["viz_urls"] = {"viz": _sign(ctx, out.get("viz_key"))}
        view["preset_url"] = _sign(ctx, out.get("preset_key"), f"tonematch-preset-{job['id'][:8]}.json")
        view["eq_text_url"] = _sign(ctx, out.get("eq_text_key"), f"tonematch-eq-{job['id'][:8]}.txt")
    return view


def parse_before(before: str | None) -> str | None:
    """The ``before`` cursor (an ISO-8601 time, such as a job's ``created_at``; UTC when it has no
    offset) as the stores' UTC ISO form, or INVALID_INPUT naming ``before``."""
    if not before:
        return None
    try:
        t = datetime.fromisoformat(before)
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        return t.astimezone(UTC).isoformat(timespec="microseconds")
    except (ValueError, OverflowError) as exc:
        raise invalid(
            "before", f"{before!r} is not an ISO-8601 time (a job's created_at, e.g. 2026-01-31T12:00:00Z)"
        ) from exc


def list_jobs(ctx: StepContext, user_id: str, limit: int = 50, before: str | None = None,
              before_id: str | None = None) -> list[dict]:
    """The user's jobs, newest first, created before ``before`` (see :func:`parse_before`); with
    ``before_id``, the id of the last job a page showed, jobs of that same instant after it too."""
    if before_id is not None:
        if not before:
            raise invalid("before_id", "goes with before (the created_at of the same job)")
        try:
            before_id = str(uuid.UUID(before_id))
        except ValueError as exc:
            raise invalid("before_id", f"{before_id!r} is not a job id") from exc
    return [
        {"job_id": j["id"], **{k: v for k, v in j.items() if k != "id"}}
        for j in ctx.status.list_jobs(user_id, limit=limit, before=parse_before(before), before_id=before_id)
    ]


# ---- presets ----------------------------------------------------------------------------------
PRESET_NAME_RE = re.compile(r"^[^\x00-\x1f]{1,120}$")


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not PRESET_NAME_RE.match(name.strip() or ""):
        raise invalid("name", "1-120 printable characters")
    return name.strip()


def _refuse_nul(value: Any, where: str) -> None:
    """INVALID_INPUT naming the first string (value or object key) under ``where`` holding a NUL
    character: PostgreSQL's jsonb cannot store one, so both stores refuse it."""
    todo = [(where, value)]  # a loop, not recursion: a deeply nested body must not overflow the stack
    while todo:
        path, v = todo.pop()
        if isinstance(v, str):
            if "\x00" in v:
                raise invalid(path, "contains a NUL character (\\u0000)")
        elif isinstance(v, dict):
            for k in v:
                if "\x00" in str(k):
                    raise invalid(path, f"key {k!r} contains a NUL character (\\u0000)")
            todo.extend((f"{path}.{k}", x) for k, x in reversed(v.items()))
        elif isinstance(v, list):
            todo.extend((f"{path}[{i}]", x) for i, x in reversed(list(enumerate(v))))


def validate_params(style_params: Any, field_name: str = "style_params") -> dict:
    """Validated style_params (mode B when B blocks are present); INVALID_INPUT naming the field."""
    from engine.errors import TonematchError
    from engine.params import validate_style_params

    if not isinstance(style_params, dict):
        raise invalid(field_name, "must be a JSON object")
    _refuse_nul(style_params, field_name)
    mode = "B" if any(k in style_params for k in ("compressor", "reverb", "pitch")) else "A"
    try:
        return validate_style_params(style_params, mode=mode)
    except TonematchError as exc:
        where = f"{field_name}.{exc.where}" if exc.where else field_name
        raise invalid(where, exc.message) from exc


def create_preset(
    ctx: StepContext, user_id: str, *, name: Any, style_params: Any = None, job_id: Any = None
) -> dict:
    """Save a preset from ``style_params`` or from a COMPLETED job's parameters."""
    name = _check_name(name)
    if (style_params is None) == (job_id is None):
        raise invalid("style_params", "give exactly one of style_params or job_id")
    if job_id is not None:
        job = get_job(ctx, user_id, str(job_id))
        if job["status"] != "COMPLETED" or not job.get("params"):
            raise ServiceError(
                "CONFLICT",
                f"job {job_id} is {job['status']}; presets come from COMPLETED jobs",
                {"field": "job_id", "status": job["status"]},
            )
        params = dict(job["params"])
        if isinstance(params.get("lufs"), dict):
            params["lufs"] = {k: v for k, v in params["lufs"].items() if k != "gain_db"}
        params = validate_params(params)
    else:
        params = validate_params(style_params)
    try:
        preset = ctx.status.create_preset(user_id, name, params, source_job_id=job_id)
    except ConflictError as exc:
        raise ServiceError(
            "CONFLICT", f"you already have a preset named {name!r}", {"field": "name"}
        ) from exc
    ctx.status.audit(user_id, "preset.create", preset["id"], {"name": name, "job_id": job_id})
    return preset


def get_preset(ctx: StepContext, user_id: str, preset_id: str) -> dict:
    p = ctx.status.get_preset(preset_id, user_id)
    if p is None:
        raise not_found("preset", preset_id)
    return p


def rename_preset(ctx: StepContext, user_id: str, preset_id: str, name: Any) -> dict:
    get_preset(ctx, user_id, preset_id)
    name = _check_name(name)
    try:
        ctx.status.rename_preset(preset_id, name)
    except ConflictError as exc:
        raise ServiceError(
            "CONFLICT", f"you already have a preset named {name!r}", {"field": "name"}
        ) from exc
    ctx.status.audit(user_id, "preset.rename", preset_id, {"name": name})
    return get_preset(ctx, user_id, preset_id)


def delete_preset(ctx: StepContext, user_id: str, preset_id: str) -> None:
    get_preset(ctx, user_id, preset_id)
    if ctx.status.preset_in_use(preset_id):
        raise ServiceError("CONFLICT", f"preset {preset_id} is used by a running job", {"field": "preset_id"})
    ctx.status.delete_preset(preset_id)
    ctx.status.audit(user_id, "preset.delete", preset_id, {})


def preset_view(ctx: StepContext, preset: dict) -> dict:
    view = {
        "id": preset["id"],
        "preset_id": preset["id"],
        "name": preset["name"],
        "style_params": preset["style_params"],
        "created_at": preset["created_at"],
        "source_job_id": preset.get("source_job_id"),
    }
    try:
        from engine.preset import eq_to_equalizer_apo, export_preset

        view["export"] = export_preset(preset["style_params"], name=preset["name"])
        view["eq_text"] = eq_to_equalizer_apo(preset["style_params"])
    except Exception:  # export is a convenience; the stored parameters are what matters
        view["export"] = None
        view["eq_text"] = None
    return view


OPTION_NOTES = {
    "target_lufs": "integrated loudness of the result; default: the reference's",
    "ceiling_dbtp": "true-peak ceiling of the limiter; with a preset, default: the preset's",
    "intensity": "how much of the matched correction to apply (0 = loudness only, 1 = full match); "
    "not with a preset, which is applied as saved",
    "exclude": "processors to leave out",
    "output_format": "wav16 (TPDF dithered), wav24 or flac",
    "output_sample_rate_hz": "sample rate of the result; default: the target's",
    "segment_s": "segment length of the parallel render",
}
UNIT_SUFFIXES = (("_lufs", "LUFS"), ("_dbtp", "dBTP"), ("_hz", "Hz"), ("_s", "s"), ("_db", "dB"))


def options_doc() -> dict:
    """Every job option with its default, range (or choices), unit and a note (from engine.options)."""
    import engine.options as eo

    ranges = getattr(eo, "RANGES", {})
    choices = {
        "exclude": list(getattr(eo, "EXCLUDABLE", ())),
        "output_format": list(getattr(eo, "FORMATS", ())),
    }
    options = {}
    for name, default in eo.DEFAULT_OPTIONS.items():
        doc: dict[str, Any] = {
            "default": default,
            "unit": next((u for suf, u in UNIT_SUFFIXES if name.endswith(suf)), None),
        }
        if name in ranges:
            doc["min"], doc["max"] = ranges[name]
        if choices.get(name):
            doc["choices"] = choices[name]
        doc["note"] = OPTION_NOTES.get(name, "")
        options[name] = doc
    return {"options": options, "modes": list(MODES)}
