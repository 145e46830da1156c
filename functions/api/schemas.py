"""Request and response bodies of the API (pydantic; the OpenAPI document is built from these)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    code: Literal[
        "INVALID_INPUT", "NOT_FOUND", "RATE_LIMITED", "UNAUTHORIZED", "FORBIDDEN", "CONFLICT", "INTERNAL"
    ]
    message: str
    detail: Any | None = None


class LoginRequest(Strict):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class RefreshRequest(Strict):
    refresh_token: str = Field(min_length=1, max_length=4096)


class AccessToken(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class SignRequest(Strict):
    content_type: str = Field(max_length=200)
    ext: str = Field(max_length=16)
    size_bytes: int | None = Field(
        default=None,
        description="file size; above the multipart threshold "
        "the answer lists part URLs instead of one put_url",
    )


class PartUrl(BaseModel):
    part_number: int
    put_url: str


class SignResponse(BaseModel):
    key: str
    expires: int = Field(description="seconds the URLs stay valid")
    content_type: str
    multipart: bool
    put_url: str | None = None
    upload_id: str | None = None
    part_size_bytes: int | None = None
    parts: list[PartUrl] | None = None


class CompletedPart(Strict):
    part_number: int = Field(ge=1, le=10000)
    etag: str = Field(max_length=200)


class CompleteRequest(Strict):
    key: str = Field(max_length=1024)
    upload_id: str = Field(max_length=1024)
    parts: list[CompletedPart] = Field(min_length=1, max_length=10000)


class CompleteResponse(BaseModel):
    key: str
    size_bytes: int


class JobCreate(Strict):
    mode: Literal["A", "B"]
    tgt_key: str = Field(max_length=1024)
    ref_key: str | None = Field(default=None, max_length=1024)
    preset_id: str | None = Field(
        default=None, max_length=64, description="apply this saved preset instead of matching a reference"
    )
    opts: dict[str, Any] | None = None


class JobCreated(BaseModel):
    job_id: str
    status: str
    created: bool = Field(description="false when an identical job was already queued or running")


class JobStatus(BaseModel):
    model_config = ConfigDict(extra="allow")
    job_id: str
    status: str
    progress: int
    download_url: str | None = None
    viz_urls: dict[str, str | None] | None = None
    metrics: dict[str, Any] | None = None
    warnings: list[str] = Field(default_factory=list,
                                description="what `tonematch match` would warn about the job (a clipped "
                                            "input, clipping or heavy limiting in the result, a "
                                            "loudness target not reached, EQ bands left out)")
    error: str | None = None


class JobList(BaseModel):
    jobs: list[dict[str, Any]]


class RetryResponse(BaseModel):
    job_id: str
    status: str


class PresetCreate(Strict):
    name: str = Field(min_length=1, max_length=120)
    style_params: dict[str, Any] | None = None
    job_id: str | None = Field(default=None, max_length=64, description="save the parameters of this job")


class PresetPatch(Strict):
    name: str = Field(min_length=1, max_length=120)


class PresetSummary(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    created_at: str


class PresetList(BaseModel):
    presets: list[PresetSummary]


class PresetDoc(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    style_params: dict[str, Any]


class Health(BaseModel):
    ok: bool
