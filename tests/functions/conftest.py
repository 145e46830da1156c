"""Fixtures for the service tests: status stores on BOTH databases (a real PostgreSQL from
TONEMATCH_TEST_PG_URL, one schema per test under a session-unique prefix, dropped afterwards; and
SQLite), a StepContext over them, small real WAV files, and users."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from functions.api.auth import configure_hasher, hash_password
from functions.pipeline.context import StepContext, context_from_settings
from functions.settings import Settings

PG_URL = os.environ.get("TONEMATCH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SESSION_PREFIX = f"tm_{os.getpid()}_{uuid.uuid4().hex[:6]}"
_counter = iter(range(1_000_000))
configure_hasher(time_cost=1, memory_cost_kib=1024, parallelism=1)  # cheap hashes: tests log in a lot


def _pg_reachable() -> str | None:
    import psycopg

    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as c:
            c.execute("SELECT 1")
    except Exception as exc:
        return str(exc)
    return None


@pytest.fixture(scope="session")
def pg_url() -> str:
    err = _pg_reachable()
    if err:
        pytest.fail(
            f"PostgreSQL at TONEMATCH_TEST_PG_URL={PG_URL} is not reachable ({err}); "
            "scripts/test.sh starts one, or point the variable at a server"
        )
    yield PG_URL
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as c:  # sweep anything a crashed test left behind
        for (schema,) in c.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (SESSION_PREFIX + "%",)
        ).fetchall():
            c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def make_settings(backend: str, tmp_path: Path, request, **kw) -> Settings:
    if backend == "postgres":
        url = request.getfixturevalue("pg_url")
        schema = f"{SESSION_PREFIX}_{next(_counter)}"
        kw = {"database_url": url, "database_schema": schema, **kw}
    return Settings(
        data_dir=tmp_path / "data",
        scratch_dir=tmp_path / "scratch",
        run_local_runner=False,
        jwt_secret="test-secret-" + uuid.uuid4().hex,
        workers=2,
        **kw,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request) -> str:
    return request.param


@pytest.fixture
def ctx(backend, tmp_path, request) -> StepContext:
    c = context_from_settings(make_settings(backend, tmp_path, request))
    yield c
    c.status.drop_schema()
    c.status.close()


def add_user(ctx: StepContext, password: str = "correct horse battery") -> dict:
    return ctx.status.create_user(f"u{uuid.uuid4().hex[:10]}@example.com", hash_password(password))


def write_wav(
    path: Path,
    seconds: float = 3.0,
    sample_rate_hz: int = 44100,
    channels: int = 2,
    freq_hz: float = 440.0,
    level_db: float = -12.0,
    seed: int = 0,
    subtype: str = "PCM_24",
) -> Path:
    """A deterministic tone + noise test signal."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate_hz)) / sample_rate_hz
    amp = 10 ** (level_db / 20)
    mono = amp * (0.7 * np.sin(2 * np.pi * freq_hz * t) + 0.3 * rng.standard_normal(t.size) * 0.3)
    audio = np.stack([mono * (1.0 - 0.1 * c) for c in range(channels)], axis=1).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sample_rate_hz, subtype=subtype)
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadedServer:
    """uvicorn serving ``app`` on a loopback ``port`` in a thread."""

    def __init__(self, app, port: int) -> None:
        import threading
        import time

        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)
        assert self.server.started

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def moto_endpoint():
    """moto's S3 in server mode on a loopback port: the S3 store is tested over real HTTP."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def make_bucket(endpoint: str) -> str:
    import boto3

    bucket = f"tm-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return bucket
