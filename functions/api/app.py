"""The FastAPI app: SPEC section 6 plus what the web console needs. ``create_app(settings)``.

Every error, ours or the framework's (404 route, 405 method, 422 validation, malformed JSON, oversize
body), answers with one body ``{code, message, detail?}``. Jobs, presets and keys of another user
answer 404 exactly like unknown ones. With the local object store, the app itself serves the signed
upload/download URLs (``PUT/GET /objects/{token}``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from functions import service
from functions.api import schemas as S  # noqa: N812
from functions.api.auth import RateLimiter, decode_token, issue_token, verify_password
from functions.pipeline.context import StepContext, context_from_settings
from functions.service import ServiceError
from functions.settings import Settings
from functions.stores.objects import LocalObjectStore, ObjectNotFoundError, SignatureError

log = logging.getLogger("tonematch.api")
CONSOLE_DIR = Path(__file__).with_name("console")
STATUS_OF = {
    "INVALID_INPUT": 400,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "CONFLICT": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "RATE_LIMITED": 429,
    "INTERNAL": 500,
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    s: {"model": S.ErrorBody} for s in (400, 401, 404, 409, 429, 500)
}


def error_response(err: ServiceError, status: int | None = None) -> JSONResponse:
    return JSONResponse(err.body(), status_code=status or STATUS_OF.get(err.code, 400), headers=err.headers)


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` (declared or streamed), except the
    signed object uploads, which carry their own limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/objects/"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = ServiceError(
            "INVALID_INPUT",
            f"request body over the limit of {self.max_bytes} bytes",
            {"field": "body", "limit_bytes": self.max_bytes},
        )
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(too_big, 413)(scope, receive, send)
            return
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return msg

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await error_response(too_big, 413)(scope, receive, send)


class _TooLarge(StarletteHTTPException):
    def __init__(self) -> None:
        super().__init__(413, "request body over the size limit")


def _field(loc: tuple | list) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] if parts[0] == "body" else parts
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def _unparsable_body_reason(cause: BaseException) -> str:
    """What was wrong with a JSON body that Python's json module refused other than as malformed
    JSON (that one is a validation error with a position)."""
    text = str(cause)
    if isinstance(cause, ValueError) and "digits" in text:
        return f"malformed JSON: a number has more than {sys.get_int_max_str_digits()} digits"
    if isinstance(cause, RecursionError):
        return "malformed JSON: arrays or objects nested too deeply"
    if isinstance(cause, UnicodeDecodeError):
        return "malformed JSON: the body is not UTF-8 text"
    return "the body could not be parsed as JSON"


async def current_user(request: Request) -> dict:
    """The user of the request's bearer access token (rate-limited per user). Async: the lookups
    are sub-millisecond, cheaper than a hop to the thread pool."""
    ctx: StepContext = request.app.state.ctx
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ServiceError(
            "UNAUTHORIZED",
            "missing bearer token (Authorization: Bearer <access_token>)",
            {"field": "Authorization"},
        )
    user_id = decode_token(ctx.settings.jwt_secret, token.strip(), "access")
    request.app.state.limiter.check(user_id)
    user = ctx.status.get_user(user_id)
    if user is None:
        raise ServiceError("UNAUTHORIZED", "the token's user no longer exists", {"field": "token"})
    return user


User = Annotated[dict, Depends(current_user)]


def create_app(
    settings: Settings | None = None, *, ctx: StepContext | None = None, runner: Any = None
) -> FastAPI:
    """The app over ``ctx`` (built from ``settings`` when not given). With
    ``settings.run_local_runner`` and no launcher in the context, a :class:`LocalRunner` runs the
    jobs in this process (started and stopped with the app)."""
    if ctx is None:
        ctx = context_from_settings(settings or Settings())
    settings = ctx.settings
    own_runner = None
    if runner is None and ctx.launch is None and settings.run_local_runner:
        from functions.pipeline.runner import LocalRunner

        own_runner = runner = LocalRunner(ctx)
    if runner is not None and ctx.launch is None:
        ctx.launch = runner.submit
    limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_burst)
    login_limiter = RateLimiter(max(settings.rate_limit_per_s / 4, 1.0), 10)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if own_runner is not None:
            own_runner.start(resume=True)
        yield
        if own_runner is not None:
            own_runner.stop(abandon=True, timeout_s=5)

    app = FastAPI(
        title="tonematch",
        version="1.0.0",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        description="Audio reference style matching: upload a reference and a target, create a "
        "job, poll it, download the processed audio, keep the preset.",
    )
    app.state.ctx = ctx
    app.state.runner = runner
    app.state.limiter = limiter
    app.add_middleware(BodyLimit, max_bytes=settings.max_json_bytes)

    # ---- errors: one body everywhere ------------------------------------------------------
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            if e.get("type") == "json_invalid":
                pos = (e.get("ctx") or {}).get("error", "")
                errors.append({"field": "body", "reason": f"malformed JSON: {pos}".strip()})
            elif e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",):
                errors.append({"field": "body", "reason": "a JSON body is required"})
            else:
                errors.append({"field": _field(e.get("loc", ())), "reason": e.get("msg", "invalid")})
        first = errors[0] if errors else {"field": "body", "reason": "invalid"}
        return error_response(
            ServiceError(
                "INVALID_INPUT",
                f"{first['field']}: {first['reason']}",
                {"field": first["field"], "reason": first["reason"], "errors": errors},
            )
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            err = ServiceError(
                "NOT_FOUND",
                f"no such endpoint: {request.method} {request.url.path}",
                {"field": "path", "path": request.url.path},
            )
        elif exc.status_code == 405:
            err = ServiceError(
                "INVALID_INPUT",
                f"method {request.method} is not allowed on {request.url.path}",
                {"field": "method", "method": request.method},
            )
            return error_response(err, 405)
        elif exc.status_code == 401:
            err = ServiceError("UNAUTHORIZED", str(exc.detail))
        elif exc.status_code == 400 and exc.__cause__ is not None:  # FastAPI could not parse the body
            reason = _unparsable_body_reason(exc.__cause__)
            return error_response(
                ServiceError("INVALID_INPUT", f"body: {reason}", {"field": "body", "reason": reason}), 400
            )
        else:
            err = ServiceError("INVALID_INPUT", str(exc.detail))
            return error_response(err, exc.status_code)
        return error_response(err)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        ref = uuid.uuid4().hex[:12]
        log.exception("internal error %s on %s %s", ref, request.method, request.url.path)
        return error_response(ServiceError("INTERNAL", f"internal error (reference {ref})", {"ref": ref}))

    # ---- auth -------------------------------------------------------------------------------
    @app.post("/auth/login", response_model=S.TokenPair, tags=["auth"])
    def login(body: S.LoginRequest) -> dict:
        if any(ord(ch) < 0x20 or ch == "\x7f" for ch in body.email):
            raise service.invalid("email", "contains a control character (NUL, newline, ...)")
        login_limiter.check(body.email.lower())
        user = ctx.status.get_user_by_email(body.email)
        if user is None or not verify_password(user["password_hash"], body.password):
            raise ServiceError("UNAUTHORIZED", "wrong email or password", {"field": "password"})
        ctx.status.audit(user["id"], "auth.login", user["id"], {})
        return {
            "access_token": issue_token(settings.jwt_secret, user["id"], "access", settings.access_ttl_s),
            "refresh_token": issue_token(settings.jwt_secret, user["id"], "refresh", settings.refresh_ttl_s),
            "expires_in": settings.access_ttl_s,
        }

    @app.post("/auth/refresh", response_model=S.AccessToken, tags=["auth"])
    def refresh(body: S.RefreshRequest) -> dict:
        user_id = decode_token(settings.jwt_secret, body.refresh_token, "refresh")
        limiter.check(user_id)
        if ctx.status.get_user(user_id) is None:
            raise ServiceError(
                "UNAUTHORIZED", "the token's user no longer exists", {"field": "refresh_token"}
            )
        ctx.status.audit(user_id, "auth.refresh", user_id, {})
        return {
            "access_token": issue_token(settings.jwt_secret, user_id, "access", settings.access_ttl_s),
            "expires_in": settings.access_ttl_s,
        }

    # ---- uploads ----------------------------------------------------------------------------
    @app.post(
        "/uploads/sign", response_model=S.SignResponse, response_model_exclude_none=True, tags=["uploads"]
    )
    def sign_upload(body: S.SignRequest, user: User) -> dict:
        return service.sign_upload(ctx, user["id"], body.content_type, body.ext, body.size_bytes)

    @app.post("/uploads/complete", response_model=S.CompleteResponse, tags=["uploads"])
    def complete_upload(body: S.CompleteRequest, user: User) -> dict:
        return service.complete_upload(
            ctx, user["id"], body.key, body.upload_id, [p.model_dump() for p in body.parts]
        )

    # ---- jobs -------------------------------------------------------------------------------
    @app.post("/jobs", response_model=S.JobCreated, tags=["jobs"])
    def create_job(body: S.JobCreate, user: User, response: Response) -> dict:
        job, created = service.create_job(
            ctx,
            user["id"],
            mode=body.mode,
            ref_key=body.ref_key,
            tgt_key=body.tgt_key,
            opts=body.opts,
            preset_id=body.preset_id,
        )
        response.status_code = 201 if created else 200
        return {"job_id": job["id"], "status": job["status"], "created": created}

    @app.get("/jobs", response_model=S.JobList, tags=["jobs"])
    def list_jobs(
        user: User,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        before: Annotated[str | None, Query(max_length=64)] = None,
        before_id: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict:
        """Newest first. The next page: ``before`` = the last job's ``created_at`` and ``before_id`` =
        its ``job_id`` (jobs created in the same instant are then split by id, none lost)."""
        return {"jobs": service.list_jobs(ctx, user["id"], limit, before, before_id)}

    @app.get("/jobs/{job_id}", response_model=S.JobStatus, tags=["jobs"])
    async def get_job(job_id: str, user: User) -> Response:
        # the hot polling path: async (no thread hop) and pre-serialised (no response re-validation)
        view = service.job_view(ctx, service.get_job(ctx, user["id"], job_id))
        return Response(json.dumps(view, separators=(",", ":")), media_type="application/json")

    @app.post("/jobs/{job_id}/retry", response_model=S.RetryResponse, tags=["jobs"])
    def retry_job(job_id: str, user: User) -> dict:
        job = service.retry_job(ctx, user["id"], job_id)
        return {"job_id": job["id"], "status": job["status"]}

    # ---- presets ----------------------------------------------------------------------------
    @app.get("/presets", response_model=S.PresetList, tags=["presets"])
    def list_presets(user: User) -> dict:
        return {"presets": ctx.status.list_presets(user["id"])}

    @app.post("/presets", response_model=S.PresetDoc, status_code=201, tags=["presets"])
    def create_preset(body: S.PresetCreate, user: User) -> dict:
        preset = service.create_preset(
            ctx, user["id"], name=body.name, style_params=body.style_params, job_id=body.job_id
        )
        return service.preset_view(ctx, preset)

    @app.get("/presets/{preset_id}", response_model=S.PresetDoc, tags=["presets"])
    def get_preset(preset_id: str, user: User) -> dict:
        return service.preset_view(ctx, service.get_preset(ctx, user["id"], preset_id))

    @app.patch("/presets/{preset_id}", response_model=S.PresetDoc, tags=["presets"])
    def rename_preset(preset_id: str, body: S.PresetPatch, user: User) -> dict:
        return service.preset_view(ctx, service.rename_preset(ctx, user["id"], preset_id, body.name))

    @app.delete("/presets/{preset_id}", status_code=204, tags=["presets"])
    def delete_preset(preset_id: str, user: User) -> Response:
        service.delete_preset(ctx, user["id"], preset_id)
        return Response(status_code=204)

    # ---- misc -------------------------------------------------------------------------------
    @app.get("/options", tags=["jobs"])
    def options() -> dict:
        return service.options_doc()

    @app.get("/usage", tags=["auth"])
    def usage(user: User) -> dict:
        return {"audio_s": ctx.status.billed_seconds(user["id"])}

    @app.get("/health", response_model=S.Health, tags=["health"])
    def health() -> dict:
        return {"ok": True}

    # ---- signed object URLs of the local store ----------------------------------------------
    def _grant(token: str, method: str) -> dict:
        if not isinstance(ctx.objects, LocalObjectStore):
            raise ServiceError("NOT_FOUND", "this deployment serves objects from S3", {"field": "token"})
        try:
            return ctx.objects.signer.verify(token, method)
        except SignatureError as exc:
            raise ServiceError(
                "FORBIDDEN",
                f"signed URL refused: {exc}",
                {"field": "token", "reason": "expired" if exc.expired else "invalid"},
            ) from exc

    @app.put("/objects/{token}", tags=["objects"], include_in_schema=True)
    async def put_object(token: str, request: Request) -> Response:
        grant = _grant(token, "PUT")
        store: LocalObjectStore = ctx.objects  # type: ignore[assignment]
        key = grant["key"]
        max_bytes = grant.get("max_bytes") or settings.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit():
            if int(declared) == 0:
                raise service.invalid("body", "the upload is empty")
            if int(declared) > max_bytes:
                raise ServiceError(
                    "INVALID_INPUT",
                    f"upload of {declared} bytes is over the signed limit of {max_bytes} bytes",
                    {"field": "body", "limit_bytes": max_bytes},
                )
        part = grant.get("part")
        if part is None:
            want = grant.get("content_type")
            got = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
            if want and got != want:
                raise service.invalid("Content-Type", f"{got or 'none'} does not match the signed {want}")
            if store.exists(key):
                raise ServiceError(
                    "CONFLICT",
                    f"object {key!r} already exists and is never overwritten",
                    {"field": "key", "key": key},
                )
            dst = store.root / key
        else:
            try:
                dst = store._part_path(key, grant["upload_id"], int(part))
            except (ValueError, ObjectNotFoundError) as exc:
                raise ServiceError("NOT_FOUND", f"multipart upload: {exc}", {"field": "upload_id"}) from exc
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.part")
        import hashlib

        md5 = hashlib.md5()
        size = 0
        try:
            with open(tmp, "wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > max_bytes:
                        raise ServiceError(
                            "INVALID_INPUT",
                            f"upload over the signed limit of {max_bytes} bytes",
                            {"field": "body", "limit_bytes": max_bytes},
                        )
                    md5.update(chunk)
                    f.write(chunk)
            if size == 0:
                raise service.invalid("body", "the upload is empty")
            if part is None and store.exists(key):
                raise ServiceError("CONFLICT", f"object {key!r} already exists", {"field": "key", "key": key})
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
        user_id = key.split("/", 1)[0]
        ctx.status.audit(
            user_id if service.is_user_id(user_id) else None,
            "object.put",
            key,
            {"size_bytes": size, "part": part},
        )
        return Response(status_code=200, headers={"ETag": f'"{md5.hexdigest()}"'})

    @app.get("/objects/{token}", tags=["objects"])
    def get_object(token: str) -> FileResponse:
        grant = _grant(token, "GET")
        path = ctx.objects.local_path(grant["key"])
        if path is None:
            raise ServiceError("NOT_FOUND", f"object {grant['key']!r} not found", {"field": "key"})
        media = {
            ".wav": "audio/wav",
            ".flac": "audio/flac",
            ".json": "application/json",
            ".txt": "text/plain; charset=utf-8",
        }.get(path.suffix, "application/octet-stream")
        return FileResponse(
            path,
            media_type=media,
            filename=grant.get("filename"),
            content_disposition_type="attachment" if grant.get("filename") else "inline",
        )

    # ---- web console (static files written by the console engineer) -------------------------
    def _console_file(rel: str) -> FileResponse:
        root = CONSOLE_DIR.resolve()
        path = (root / rel).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise ServiceError("NOT_FOUND", f"console file {rel!r} not found", {"field": "path", "path": rel})
        return FileResponse(path)

    @app.get("/", include_in_schema=False)
    def console_index() -> FileResponse:
        return _console_file("index.html")

    @app.get("/console/{rel:path}", include_in_schema=False)
    def console_static(rel: str) -> FileResponse:
        return _console_file(rel or "index.html")

    return app


def openapi_json(app: FastAPI) -> str:
    return json.dumps(app.openapi(), indent=2)
