"""End to end over real HTTP: log in, sign uploads, PUT both files, create a job, poll it to
COMPLETED, download, and get the same audio as ``tonematch match`` (engine.match_files). Also the
failure path with retry, transient faults retried with back-off, presets applied to new targets, and
a server killed mid-job whose job completes after a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from functions.pipeline.context import context_from_settings
from functions.pipeline.errors import TransientError
from functions.pipeline.runner import LocalRunner
from tests.functions.conftest import ThreadedServer, add_user, free_port, make_bucket, make_settings

pytestmark = pytest.mark.slow
PASSWORD = "correct horse battery"
OPTS = {"segment_s": 10}


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, str]:
    from engine.examples import write_example_pair

    return write_example_pair(tmp_path_factory.mktemp("pair"), duration_s=24.0)


@pytest.fixture(scope="module")
def cli_result(pair, tmp_path_factory) -> np.ndarray:
    """What `tonematch match` gives on the pair (the engine facade the CLI calls)."""
    from engine import match_files

    out = tmp_path_factory.mktemp("cli") / "matched.wav"
    match_files(pair["reference"], pair["target"], str(out), mode="A", opts=OPTS)
    return sf.read(out, dtype="float64")[0]


@pytest.fixture
def service(backend, tmp_path, request):
    port = free_port()
    extra = {}
    if backend == "postgres":  # the other deployment shape: PostgreSQL + S3 (moto over HTTP)
        endpoint = request.getfixturevalue("moto_endpoint")
        extra = {"bucket": make_bucket(endpoint), "s3_endpoint_url": endpoint}
    settings = make_settings(backend, tmp_path, request, public_url=f"http://127.0.0.1:{port}", **extra)
    ctx = context_from_settings(settings)
    waits: list[float] = []
    runner = LocalRunner(ctx, workers=2, sleep=waits.append, **getattr(request, "param", {}))
    from functions.api.app import create_app

    server = ThreadedServer(create_app(ctx=ctx, runner=runner), port)
    runner.start()
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    yield {"client": client, "ctx": ctx, "runner": runner, "waits": waits}
    client.close()
    server.stop()
    runner.stop()
    ctx.status.drop_schema()
    ctx.status.close()


def login(svc) -> tuple[dict, dict]:
    user = add_user(svc["ctx"], PASSWORD)
    r = svc["client"].post("/auth/login", json={"email": user["email"], "password": PASSWORD})
    r.raise_for_status()
    return user, {"Authorization": f"Bearer {r.json()['access_token']}"}


def upload(client, h, path: str) -> str:
    doc = client.post("/uploads/sign", json={"content_type": "audio/wav", "ext": "wav"}, headers=h).json()
    with open(path, "rb") as f:
        httpx.put(doc["put_url"], content=f.read(), headers={"Content-Type": "audio/wav"}).raise_for_status()
    return doc["key"]


def wait_done(client, h, job_id: str, timeout_s: float = 300) -> tuple[dict, list[int]]:
    seen = []
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        view = client.get(f"/jobs/{job_id}", headers=h).json()
        seen.append(view["progress"])
        if view["status"] == "COMPLETED":
            assert view["progress"] == 100 and view["download_url"], view  # never complete before results
        if view["status"] in ("COMPLETED", "FAILED"):
            return view, seen
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {view}")


def level_db(diff: np.ndarray) -> float:
    return 20 * np.log10(max(float(np.max(np.abs(diff))), 1e-12))


def test_api_job_gives_the_same_audio_as_tonematch_match(service, pair, cli_result):
    client, ctx = service["client"], service["ctx"]
    user, h = login(service)
    ref, tgt = upload(client, h, pair["reference"]), upload(client, h, pair["target"])
    r = client.post("/jobs", json={"mode": "A", "ref_key": ref, "tgt_key": tgt, "opts": OPTS}, headers=h)
    assert r.status_code == 201, r.text
    job_id = r.json()["job_id"]
    again = client.post("/jobs", json={"mode": "A", "ref_key": ref, "tgt_key": tgt, "opts": OPTS}, headers=h)
    # idempotent while queued/running: the same job, nothing created (its status may have moved on:
    # the warm render processes pick a job up within milliseconds)
    assert again.json()["job_id"] == job_id and again.json()["created"] is False
    view, seen = wait_done(client, h, job_id)
    assert view["status"] == "COMPLETED", view
    assert seen == sorted(seen) and seen[-1] == 100, str(seen)  # progress only rises
    assert len(ctx.status.segments(job_id)) == 2  # 24 s in 10 s segments (the last absorbs 4 s), in parallel

    got = sf.read(__import__("io").BytesIO(httpx.get(view["download_url"]).content), dtype="float64")[0]
    assert got.shape == cli_result.shape
    assert level_db(got - cli_result) < -90.0

    assert set(view["metrics"]) >= {"stft_dist", "mel_dist", "lufs_err", "tp_db", "artifacts_rate"}
    assert isinstance(view["warnings"], list)  # what tonematch match would warn about (job_warnings)
    assert view["loudness"]["result_lufs"] is not None and view["loudness"]["target_lufs"] is not None
    viz = httpx.get(view["viz_urls"]["viz"]).json()
    assert {"lufs_trajectory", "gain_reduction", "spectrum"} <= set(viz)
    assert httpx.get(view["preset_url"]).json()["style_params"]["lufs"]["target_db"] is not None
    assert httpx.get(view["eq_text_url"]).status_code == 200
    assert ctx.status.billed_seconds(user["id"]) == pytest.approx(24.0, abs=0.01)
    assert len(ctx.status.metrics_for(job_id)) == 1
    assert ctx.objects.exists(f"{user['id']}/viz/{job_id}.json")
    assert type(ctx.objects).__name__ == (
        "S3ObjectStore" if ctx.status.dialect == "postgres" else "LocalObjectStore"
    )
    assert not [k for k in ctx.objects.list(f"{user['id']}/work/{job_id}/seg/") if k.endswith(".wav")]

    # save the preset under a name and apply it to a new target: no reference analysis, no inversion
    p = client.post("/presets", json={"name": "club", "job_id": job_id}, headers=h)
    assert p.status_code == 201, p.text
    r = client.post("/jobs", json={"mode": "A", "tgt_key": ref, "preset_id": p.json()["id"]}, headers=h)
    view2, _ = wait_done(client, h, r.json()["job_id"])
    assert view2["status"] == "COMPLETED", view2
    assert view2["params"]["eq"] == view["params"]["eq"]
    assert ctx.status.get_job(view2["job_id"])["state"]["reference"] == {
        "skipped": True,
        "features_key": None,
    }
    # a preset keeps its own ceiling (the job once filled in the default -1 dBTP, unlike tonematch apply)
    low = {**view["params"], "limiter": {**view["params"]["limiter"], "tp_db": -3.0}}
    p3 = client.post("/presets", json={"name": "low ceiling", "style_params": low}, headers=h)
    r = client.post("/jobs", json={"mode": "A", "tgt_key": ref, "preset_id": p3.json()["id"]}, headers=h)
    view3, _ = wait_done(client, h, r.json()["job_id"])
    assert view3["status"] == "COMPLETED", view3
    assert view3["params"]["limiter"]["tp_db"] == -3.0 and view3["metrics"]["tp_db"] <= -3.0
    listed = [j["job_id"] for j in client.get("/jobs", headers=h).json()["jobs"]]
    assert listed == [view3["job_id"], view2["job_id"], job_id]


@pytest.mark.parametrize("backend", ["sqlite"])  # database-independent; both databases run the main e2e
@pytest.mark.parametrize("service", [{"use_processes": False}], indirect=True)  # patches in-process
def test_failed_step_reports_error_and_retry_completes(service, pair, monkeypatch):
    import engine.render
    from engine.errors import ParamsError

    client, ctx = service["client"], service["ctx"]
    _, h = login(service)
    ref, tgt = upload(client, h, pair["reference"]), upload(client, h, pair["target"])

    def broken(*a, **k):
        raise ParamsError("limiter needs lookahead_ms > 0", where="limiter.lookahead_ms")

    monkeypatch.setattr(engine.render, "render_file", broken)  # the gain-resolving render of Invert
    job_id = client.post(
        "/jobs", json={"mode": "A", "ref_key": ref, "tgt_key": tgt, "opts": OPTS}, headers=h
    ).json()["job_id"]
    view, _ = wait_done(client, h, job_id)
    assert view["status"] == "FAILED" and view["last_step"] == "Invert"
    assert view["error"] == "ParamsError: limiter.lookahead_ms: limiter needs lookahead_ms > 0"
    assert [d["job_id"] for d in ctx.status.dead_letters()] == [job_id]
    assert service["waits"] == []  # a permanent error is not retried

    monkeypatch.undo()
    r = client.post(f"/jobs/{job_id}/retry", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "PENDING"
    view, _ = wait_done(client, h, job_id)
    assert view["status"] == "COMPLETED" and view["error"] is None
    state = ctx.status.get_job(job_id)["state"]
    assert state["reference"]["features_key"]  # analysis was kept, not redone from scratch


@pytest.mark.parametrize("backend", ["sqlite"])  # database-independent; both databases run the main e2e
@pytest.mark.parametrize("service", [{"use_processes": False}], indirect=True)  # patches in-process
def test_transient_store_faults_are_retried_with_backoff(service, pair):
    client, ctx = service["client"], service["ctx"]
    _, h = login(service)
    ref, tgt = upload(client, h, pair["reference"]), upload(client, h, pair["target"])
    real = ctx.objects.get_bytes
    faults = {"n": 0}

    def flaky(key):
        if key.endswith("merged.report.json") and faults["n"] < 2:  # read once, by Finalize
            faults["n"] += 1
            raise TransientError("S3 503 SlowDown")
        return real(key)

    ctx.objects.get_bytes = flaky
    job_id = client.post(
        "/jobs", json={"mode": "A", "ref_key": ref, "tgt_key": tgt, "opts": OPTS}, headers=h
    ).json()["job_id"]
    view, _ = wait_done(client, h, job_id)
    assert view["status"] == "COMPLETED", view
    assert service["waits"] == [2.0, 4.0]


def test_server_killed_mid_job_resumes_after_restart(tmp_path, pair):
    from engine.examples import write_example_pair

    long_pair = write_example_pair(tmp_path / "long", duration_s=70.0)
    port = free_port()
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cli = [sys.executable, "-m", "functions.cli"]
    subprocess.run(
        [*cli, "users", "add", "a@example.com", "--password", PASSWORD, "--data-dir", str(data)],
        check=True,
        env=env,
        capture_output=True,
    )

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(
            [
                *cli,
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(data),
                "--workers",
                "2",
                "--log-level",
                "warning",
            ],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    return proc
            except httpx.HTTPError:
                time.sleep(0.2)
        proc.kill()
        raise AssertionError("server did not start")

    proc = start()
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        tokens = client.post("/auth/login", json={"email": "a@example.com", "password": PASSWORD}).json()
        h = {"Authorization": f"Bearer {tokens['access_token']}"}
        ref = upload(client, h, long_pair["reference"])
        tgt = upload(client, h, long_pair["target"])
        job_id = client.post(
            "/jobs", json={"mode": "A", "ref_key": ref, "tgt_key": tgt, "opts": OPTS}, headers=h
        ).json()["job_id"]
        deadline = time.time() + 300
        while time.time() < deadline:
            view = client.get(f"/jobs/{job_id}", headers=h).json()
            if view["status"] == "RENDERING" and view["progress"] > 25:
                break
            time.sleep(0.1)
        assert view["status"] == "RENDERING"
        os.killpg(proc.pid, signal.SIGKILL)  # the crash: server, runner and render processes at once
        proc.wait(10)
        proc = start()
        view, _ = wait_done(client, h, job_id, timeout_s=400)
        assert view["status"] == "COMPLETED", view
        out = sf.read(__import__("io").BytesIO(httpx.get(view["download_url"]).content))[0]
        assert out.shape[0] == sf.info(long_pair["target"]).frames
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
