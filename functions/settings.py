"""Service settings: one frozen dataclass, filled from arguments (``tonematch serve``) or the
environment (Lambda handlers, :func:`Settings.from_env`).

Environment variables read by :meth:`Settings.from_env` (all optional):

* ``TONEMATCH_DATA_DIR``: local data directory (default ``./data``); holds the SQLite database and the
  local object store when no database URL / bucket is given.
* ``TONEMATCH_DATABASE_URL``: ``postgresql://...`` or ``sqlite:///path``; default SQLite in the data dir.
* ``TONEMATCH_DATABASE_SECRET_ARN``: Secrets Manager secret with ``{username, password, host, port,
  dbname}`` (RDS); used when ``TONEMATCH_DATABASE_URL`` is not set.
* ``TONEMATCH_DATABASE_SCHEMA``: PostgreSQL schema (search_path) to use; default ``public``.
* ``TONEMATCH_BUCKET``: S3 bucket; when set the object store is S3, else the local directory.
* ``TONEMATCH_S3_ENDPOINT_URL``: S3-compatible endpoint (MinIO, moto); default AWS.
* ``TONEMATCH_SCRATCH_DIR``: where steps download and render (default ``$TMPDIR/tonematch-scratch``).
* ``TONEMATCH_DLQ_URL``: SQS queue URL for dead-letter records; default the ``dead_letters`` table.
* ``TONEMATCH_STATE_MACHINE_ARN``: when set, new jobs start a Step Functions execution.
* ``TONEMATCH_JWT_SECRET``: HMAC secret for tokens and local signed URLs (default: generated once and
  kept in ``{data_dir}/jwt_secret``). On AWS set it, or ``TONEMATCH_JWT_SECRET_ARN`` (a Secrets
  Manager secret string), so every Lambda instance signs with the same key.
* ``TONEMATCH_PUBLIC_URL``: base URL the local object store signs URLs for (default
  ``http://127.0.0.1:8000``).
* ``TONEMATCH_RATE_LIMIT_PER_S`` / ``TONEMATCH_RATE_BURST``: per-user API rate limit.
* ``TONEMATCH_WORKERS``: render processes of the local runner (default: one per core).
* ``TONEMATCH_RENDER_NICE``: niceness added to the render processes (default 10: renders are batch
  work, so under CPU contention the API in the parent process answers first; on an idle machine the
  renders still get every free cycle). 0 turns it off.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

MIB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    database_url: str | None = None
    database_schema: str | None = None
    bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    scratch_dir: Path | None = None
    dlq_url: str | None = None
    state_machine_arn: str | None = None
    jwt_secret: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    access_ttl_s: int = 15 * 60
    refresh_ttl_s: int = 30 * 24 * 3600
    sign_ttl_s: int = 15 * 60
    rate_limit_per_s: float = 20.0
    rate_burst: int = 100
    max_json_bytes: int = 1 * MIB
    max_upload_bytes: int = 2048 * MIB
    multipart_threshold_bytes: int = 64 * MIB
    multipart_part_bytes: int = 32 * MIB
    workers: int | None = None
    job_threads: int = 2
    render_nice: int = 10
    run_local_runner: bool = True
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> Settings:
        """Settings from ``TONEMATCH_*`` environment variables (see the module docstring)."""
        e = os.environ if env is None else env
        kw: dict = {}
        if e.get("TONEMATCH_DATA_DIR"):
            kw["data_dir"] = Path(e["TONEMATCH_DATA_DIR"])
        url = e.get("TONEMATCH_DATABASE_URL")
        if not url and e.get("TONEMATCH_DATABASE_SECRET_ARN"):
            url = _url_from_secret(e["TONEMATCH_DATABASE_SECRET_ARN"])
        for name, env_name in (
            ("database_schema", "TONEMATCH_DATABASE_SCHEMA"),
            ("bucket", "TONEMATCH_BUCKET"),
            ("s3_endpoint_url", "TONEMATCH_S3_ENDPOINT_URL"),
            ("dlq_url", "TONEMATCH_DLQ_URL"),
            ("state_machine_arn", "TONEMATCH_STATE_MACHINE_ARN"),
            ("jwt_secret", "TONEMATCH_JWT_SECRET"),
            ("public_url", "TONEMATCH_PUBLIC_URL"),
        ):
            if e.get(env_name):
                kw[name] = e[env_name]
        if e.get("AWS_REGION") or e.get("AWS_DEFAULT_REGION"):
            kw["s3_region"] = e.get("AWS_REGION") or e["AWS_DEFAULT_REGION"]
        if e.get("TONEMATCH_SCRATCH_DIR"):
            kw["scratch_dir"] = Path(e["TONEMATCH_SCRATCH_DIR"])
        if e.get("TONEMATCH_RATE_LIMIT_PER_S"):
            kw["rate_limit_per_s"] = float(e["TONEMATCH_RATE_LIMIT_PER_S"])
        if e.get("TONEMATCH_RATE_BURST"):
            kw["rate_burst"] = int(e["TONEMATCH_RATE_BURST"])
        if e.get("TONEMATCH_RENDER_NICE"):
            kw["render_nice"] = int(e["TONEMATCH_RENDER_NICE"])
        if e.get("TONEMATCH_WORKERS"):
            kw["workers"] = int(e["TONEMATCH_WORKERS"])
        if url:
            kw["database_url"] = url
        if not e.get("TONEMATCH_JWT_SECRET") and e.get("TONEMATCH_JWT_SECRET_ARN"):
            import boto3

            kw["jwt_secret"] = boto3.client("secretsmanager").get_secret_value(
                SecretId=e["TONEMATCH_JWT_SECRET_ARN"]
            )["SecretString"]
        kw.update(overrides)
        return cls(**kw)

    def resolved(self) -> Settings:
        """A copy with defaults that depend on the data dir filled in (database URL, scratch dir,
        JWT secret, kept in ``{data_dir}/jwt_secret`` so tokens survive a restart)."""
        data_dir = Path(self.data_dir).resolve()
        kw: dict = {"data_dir": data_dir}
        if not self.database_url:
            kw["database_url"] = f"sqlite:///{data_dir / 'tonematch.sqlite3'}"
        if self.scratch_dir is None:
            kw["scratch_dir"] = Path(tempfile.gettempdir()) / "tonematch-scratch"
        if not self.jwt_secret:
            data_dir.mkdir(parents=True, exist_ok=True)
            secret_file = data_dir / "jwt_secret"
            if not secret_file.exists():
                tmp = secret_file.with_suffix(".tmp")
                tmp.write_text(secrets.token_urlsafe(48))
                os.chmod(tmp, 0o600)
                os.replace(tmp, secret_file)
            kw["jwt_secret"] = secret_file.read_text().strip()
        return replace(self, **kw)

    def render_workers(self) -> int:
        """Processes for segment renders: ``workers`` or one per core."""
        return max(1, self.workers or os.cpu_count() or 1)


def _url_from_secret(arn: str) -> str:
    import json
    from urllib.parse import quote

    import boto3

    secret = json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])
    user = quote(secret["username"], safe="")
    password = quote(secret["password"], safe="")
    return (
        f"postgresql://{user}:{password}@{secret['host']}:{secret.get('port', 5432)}"
        f"/{secret.get('dbname', 'postgres')}"
    )
