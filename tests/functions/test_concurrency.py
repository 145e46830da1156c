"""Concurrent requests against a real server (uvicorn on a loopback port, requests from threads
released together): identical job creations, preset names and retries race as two clicks, two
tabs or a retrying client make them race, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from functions.api.app import create_app
from functions.pipeline.context import context_from_settings
from tests.functions.conftest import ThreadedServer, add_user, free_port, make_settings, write_wav

PASSWORD = "correct horse battery"


@pytest.fixture
def live(backend, tmp_path, request):
    """``(client, ctx, headers, launched)``: a logged-in user on a live server whose launches are
    recorded instead of run."""
    port = free_port()
    settings = make_settings(
        backend,
        tmp_path,
        request,
        public_url=f"http://127.0.0.1:{port}",
        rate_limit_per_s=1000,
        rate_burst=1000,
    )
    ctx = context_from_settings(settings)
    launched: list[dict] = []
    ctx.launch = launched.append
    server = ThreadedServer(create_app(ctx=ctx), port)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    user = add_user(ctx, PASSWORD)
    r = client.post("/auth/login", json={"email": user["email"], "password": PASSWORD})
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    yield client, ctx, headers, launched
    client.close()
    server.stop()
    ctx.status.drop_schema()
    ctx.status.close()


def _upload(client: httpx.Client, headers: dict, path: Path) -> str:
    doc = client.post(
        "/uploads/sign", json={"content_type": "audio/wav", "ext": "wav"}, headers=headers
    ).json()
    put = client.put(doc["put_url"], content=path.read_bytes(), headers={"Content-Type": "audio/wav"})
    assert put.status_code == 200, put.text
    return doc["key"]


def _together(n: int, call: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """``n`` calls from ``n`` threads, released at the same moment."""
    barrier = threading.Barrier(n)

    def go(_: int) -> httpx.Response:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(n) as ex:
        return list(ex.map(go, range(n)))


def test_identical_jobs_created_at_once_make_one_job(live, tmp_path):
    client, _, h, launched = live
    ref = _upload(client, h, write_wav(tmp_path / "r.wav"))
    tgt = _upload(client, h, write_wav(tmp_path / "t.wav", seed=1))
    body = {"mode": "A", "ref_key": ref, "tgt_key": tgt}
    rs = _together(8, lambda: client.post("/jobs", json=body, headers=h))
    assert sorted(r.status_code for r in rs) == [200] * 7 + [201], [r.text for r in rs]
    assert len({r.json()["job_id"] for r in rs}) == 1 and len(launched) == 1


def test_one_preset_name_created_at_once_is_one_201_and_409s(live):
    client, _, h, _ = live
    body = {"name": "Warm master", "style_params": {"eq": [], "lufs": {"target_db": -14}}}
    rs = _together(8, lambda: client.post("/presets", json=body, headers=h))
    assert sorted(r.status_code for r in rs) == [201] + [409] * 7, [r.text for r in rs]


def test_concurrent_retries_of_a_failed_job_queue_it_once(live, tmp_path):
    """Of simultaneous POST /jobs/{id}/retry exactly one is accepted and launches the job; the rest
    are 409. On PostgreSQL several used to be accepted (each read FAILED before any wrote PENDING)
    and each launched the job."""
    client, ctx, h, launched = live
    ref = _upload(client, h, write_wav(tmp_path / "r.wav"))
    tgt = _upload(client, h, write_wav(tmp_path / "t.wav", seed=1))
    job_id = client.post("/jobs", json={"mode": "A", "ref_key": ref, "tgt_key": tgt}, headers=h).json()[
        "job_id"
    ]
    for attempt in range(1, 11):
        ctx.status.update_job(job_id, status="FAILED", error="TransientError: x", last_step="AnalyzeTarget")
        before = len(launched)
        rs = _together(8, lambda: client.post(f"/jobs/{job_id}/retry", headers=h))
        assert sorted(r.status_code for r in rs) == [200] + [409] * 7, [r.text for r in rs]
        assert all(r.json()["code"] == "CONFLICT" for r in rs if r.status_code == 409)
        assert len(launched) == before + 1
        assert ctx.status.get_job(job_id)["attempts"] == attempt
