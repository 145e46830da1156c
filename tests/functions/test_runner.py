"""The local runner walks a pipeline definition: parallel branches, a Map on a process pool, retries
with the definition's back-off, the failure path, and resuming a job after a crash."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import pytest

from functions.pipeline.definition import PIPELINE
from functions.pipeline.runner import LocalRunner, _worker_ping
from tests.functions.conftest import add_user, free_port
from tests.functions.pipeline_fakes import FAKE_PIPELINE, calls


def _job(ctx, **opts):
    u = add_user(ctx)
    job, _ = ctx.status.create_job(
        user_id=u["id"],
        mode="A",
        ref_key=f"{u['id']}/r.wav",
        tgt_key=f"{u['id']}/t.wav",
        opts=opts,
        idempotency_key=str(opts) + u["id"],
    )
    return job


def test_runs_branches_map_in_processes_and_completes(ctx):
    job = _job(ctx, n=5)
    runner = LocalRunner(ctx, pipeline=FAKE_PIPELINE, workers=2, sleep=lambda s: None)
    try:
        assert runner.run_job(job["id"]) == "COMPLETED"
    finally:
        runner.stop()
    row = ctx.status.get_job(job["id"])
    assert row["metrics"] == {"total": 0 + 1 + 4 + 9 + 16} and row["progress"] == 100
    state = row["state"]
    assert [s["idx"] for s in state["squares"]] == [0, 1, 2, 3, 4]  # Map results in order
    assert {s["pid"] for s in state["squares"]} - {__import__("os").getpid()}  # rendered in pool processes
    assert state["left"]["value"] == 1 and state["right"]["value"] == 2


def test_transient_errors_retry_with_the_definition_backoff(ctx):
    job = _job(ctx, fail_times=3)
    waits = []
    runner = LocalRunner(ctx, pipeline=FAKE_PIPELINE, use_processes=False, sleep=waits.append)
    assert runner.run_job(job["id"]) == "COMPLETED"
    assert waits == [2.0, 4.0, 8.0]
    assert ctx.status.get_job(job["id"])["state"]["flaky"]["attempts"] == 4


def test_retries_exhausted_ends_failed_with_dead_letter(ctx):
    job = _job(ctx, fail_times=99)
    waits = []
    runner = LocalRunner(ctx, pipeline=FAKE_PIPELINE, use_processes=False, sleep=waits.append)
    assert runner.run_job(job["id"]) == "FAILED"
    assert waits == [2.0, 4.0, 8.0, 16.0, 32.0]  # 2^n s, n = 1..5
    row = ctx.status.get_job(job["id"])
    assert row["last_step"] == "Flaky" and "TransientError" in row["error"] and "503" in row["error"]
    dead = ctx.status.dead_letters()
    assert [d["job_id"] for d in dead] == [job["id"]] and dead[0]["step"] == "Flaky"
    assert calls(ctx.scratch_dir, "plan") == 0  # nothing after the failed step ran


def test_permanent_error_fails_at_once_with_its_message(ctx):
    job = _job(ctx, boom=True)
    waits = []
    runner = LocalRunner(ctx, pipeline=FAKE_PIPELINE, use_processes=False, sleep=waits.append)
    assert runner.run_job(job["id"]) == "FAILED"
    row = ctx.status.get_job(job["id"])
    assert waits == []
    assert row["last_step"] == "Boom" and row["error"] == "StepFailed: target.wav: 3.2 s: NaN sample"
    assert any(a["action"] == "job.failed" for a in ctx.status.audit_rows())


def test_a_job_interrupted_mid_map_is_resumed_by_the_next_runner(ctx):
    job = _job(ctx, n=4, gate=True)
    first = LocalRunner(ctx, pipeline=FAKE_PIPELINE, workers=2, use_processes=False, sleep=lambda s: None)
    first.start(resume=False)
    first.submit(job["id"])
    deadline = time.time() + 20
    while calls(ctx.scratch_dir, "square-0") == 0 and time.time() < deadline:
        time.sleep(0.02)
    first.stop(abandon=True, timeout_s=0.1)  # the "crash": work dropped where it was
    (Path(ctx.scratch_dir) / "gate").touch()
    time.sleep(0.3)
    row = ctx.status.get_job(job["id"])
    assert row["status"] in ("PENDING", "ANALYZING", "INVERTING", "RENDERING")  # left running, not lost
    assert "plan" in row["state"] and "squares" not in row["state"]

    second = LocalRunner(ctx, pipeline=FAKE_PIPELINE, workers=2, use_processes=False, sleep=lambda s: None)
    assert second.start(resume=True) == [job["id"]]
    deadline = time.time() + 30
    while ctx.status.get_job(job["id"])["status"] != "COMPLETED" and time.time() < deadline:
        time.sleep(0.05)
    second.stop()
    assert ctx.status.get_job(job["id"])["status"] == "COMPLETED"
    assert calls(ctx.scratch_dir, "left") == 1 and calls(ctx.scratch_dir, "plan") == 1  # not redone
    assert calls(ctx.scratch_dir, "finish") == 1


def test_submit_twice_runs_once(ctx):
    job = _job(ctx, n=2)
    runner = LocalRunner(
        ctx, pipeline=FAKE_PIPELINE, use_processes=False, sleep=lambda s: None, job_threads=2
    )
    gate = threading.Event()
    runner.start(resume=False)
    runner.submit(job["id"])
    runner.submit({"job_id": job["id"]})
    gate.wait(0.5)
    deadline = time.time() + 20
    while not runner.idle() and time.time() < deadline:
        time.sleep(0.05)
    runner.stop()
    assert calls(ctx.scratch_dir, "finish") == 1


def test_real_pipeline_definition_is_walkable():
    names = [t.name for t in PIPELINE.tasks()]
    assert names[:2] == ["AnalyzeReference", "AnalyzeTarget"] and names[-1] == "MarkFailed"
    from functions.pipeline.runner import resolve_handler

    for t in PIPELINE.tasks():
        assert callable(resolve_handler(t.handler)), t.handler


def test_a_late_failure_never_uncompletes_a_job(ctx):
    from functions.pipeline.steps import mark_failed

    job = _job(ctx)
    ctx.status.update_job(job["id"], status="COMPLETED", progress=100)
    out = mark_failed(
        {
            "job_id": job["id"],
            "user_id": job["user_id"],
            "failed_step": "Finalize",
            "error": {"Error": "TransientError", "Cause": "render process died"},
        },
        ctx,
    )
    assert out["status"] == "COMPLETED"
    assert ctx.status.get_job(job["id"])["status"] == "COMPLETED" and ctx.status.dead_letters() == []


def test_start_warms_every_render_process_before_taking_jobs(ctx, caplog):
    caplog.set_level("INFO", logger="tonematch.runner")
    runner = LocalRunner(ctx, pipeline=FAKE_PIPELINE, workers=2, sleep=lambda s: None)
    try:
        runner.start(resume=False)
        assert runner.warm_up(timeout_s=30) == 2  # both processes up and answering (imports done)
        job = _job(ctx, n=2)
        runner.submit(job["id"])
        deadline = time.time() + 30
        while not runner.idle() and time.time() < deadline:
            time.sleep(0.02)
        assert ctx.status.get_job(job["id"])["status"] == "COMPLETED"
        assert "Square" in {t[0] for t in runner.timings}  # pool tasks are timed...
        line = next(r.getMessage() for r in caplog.records if "runner: job" in r.getMessage())
        assert job["id"] in line and "COMPLETED" in line and "Square" in line  # ...and logged per job
    finally:
        runner.stop()


def test_an_abandoning_stop_ends_every_render_process(ctx):
    """`tonematch serve` stopped (SIGTERM) abandons its jobs for the next start to resume; its render
    processes, busy or idle, must not keep running (200 MB each) after the server has gone."""
    runner = LocalRunner(ctx, pipeline=FAKE_PIPELINE, workers=2, sleep=lambda s: None)
    runner.start(resume=False)  # warms both render processes
    pids = set(runner._get_pool()._processes)
    runner._get_pool().submit(_worker_ping, 30.0)  # one of them busy with a long task
    time.sleep(0.3)
    runner.stop(abandon=True, timeout_s=5)
    assert len(pids) == 2 and [pid for pid in pids if _process_alive(pid)] == []


def _process_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (ended, not yet reaped) counts as gone
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(")")[-1].split()[0] != "Z"


def test_render_processes_run_with_one_blas_thread(ctx, monkeypatch):
    """Two render processes with OpenBLAS's spinning helper threads oversubscribe the cores (a 4-minute
    job took 2.4x `tonematch match`); the runner starts its processes with one BLAS thread."""
    import os

    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    runner = LocalRunner(ctx, pipeline=FAKE_PIPELINE, workers=1, sleep=lambda s: None)
    try:
        pool = runner._get_pool()
        assert pool.submit(os.getenv, "OPENBLAS_NUM_THREADS").result(timeout=60) == "1"
    finally:
        runner.stop()


def test_a_job_retried_the_moment_it_fails_runs_again(ctx):
    """A client that retries as soon as it reads FAILED reaches the runner while the job's thread is
    still finishing the failure path (the dead letter is sent after FAILED is written): the retry
    must run the job again, not leave it PENDING until the next restart."""
    from functions import service

    class SlowDeadLetters:
        def __init__(self) -> None:
            self.records: list[dict] = []

        def send(self, record: dict) -> None:
            time.sleep(0.5)  # an SQS round trip, a busy database
            self.records.append(record)

    ctx.dead_letters = SlowDeadLetters()
    job = _job(ctx, boom=True)
    for key in (job["ref_key"], job["tgt_key"]):
        ctx.objects.put_bytes(key, b"audio")
    runner = LocalRunner(ctx, pipeline=FAKE_PIPELINE, use_processes=False, sleep=lambda s: None)
    ctx.launch = runner.submit
    runner.start(resume=False)
    try:
        runner.submit(job["id"])
        deadline = time.time() + 20
        while ctx.status.get_job(job["id"])["status"] != "FAILED" and time.time() < deadline:
            time.sleep(0.01)
        assert service.retry_job(ctx, job["user_id"], job["id"])["status"] == "PENDING"
        deadline = time.time() + 20
        while len(ctx.dead_letters.records) < 2 and time.time() < deadline:
            time.sleep(0.05)
        row = ctx.status.get_job(job["id"])
        assert row["status"] == "FAILED" and row["attempts"] == 1, row["status"]
        assert len(ctx.dead_letters.records) == 2  # it ran (and failed) a second time
    finally:
        runner.stop()


def test_a_dropped_database_connection_while_saving_state_does_not_strand_the_job(ctx, monkeypatch):
    """The job thread saves each step's result in ``jobs.state``; a transient database fault there
    (a PostgreSQL restart, a dropped connection, SQLite busy past its timeout) escaped the runner and
    left the job RENDERING until the next restart. It is retried like a step's transient error."""
    from functions.pipeline.errors import TransientError

    job = _job(ctx, n=2)
    real = ctx.status.merge_job_state
    faults = iter([True, False, True])

    def flaky_save(job_id: str, updates: dict) -> dict:
        if next(faults, False):
            raise TransientError("database error: server closed the connection unexpectedly")
        return real(job_id, updates)

    monkeypatch.setattr(ctx.status, "merge_job_state", flaky_save)
    waits: list[float] = []
    runner = LocalRunner(ctx, pipeline=FAKE_PIPELINE, use_processes=False, sleep=waits.append)
    assert runner.run_job(job["id"]) == "COMPLETED"
    assert waits == [2.0, 2.0]


def test_a_dropped_database_connection_as_a_run_starts_does_not_strand_the_job(ctx, monkeypatch):
    """Reading the job's row at the start of its run is retried too: a fault there left the job
    queued, run by nobody, until the next restart."""
    from functions.pipeline.errors import TransientError

    job = _job(ctx, n=2)
    real = ctx.status.get_job
    faults = iter([True])

    def flaky_get(job_id: str, user_id: str | None = None) -> dict | None:
        if next(faults, False):
            raise TransientError("database error: server closed the connection unexpectedly")
        return real(job_id) if user_id is None else real(job_id, user_id)

    monkeypatch.setattr(ctx.status, "get_job", flaky_get)
    waits: list[float] = []
    runner = LocalRunner(ctx, pipeline=FAKE_PIPELINE, use_processes=False, sleep=waits.append)
    assert runner.run_job(job["id"]) == "COMPLETED"
    assert waits == [2.0]


def returns_nan(event, ctx):
    return {"lufs": float("nan")}


def test_an_error_of_the_runner_itself_fails_the_job_instead_of_stranding_it(ctx):
    """Whatever goes wrong around a step (here its result cannot be saved: NaN is not JSON) ends the
    job FAILED naming the step, never leaves it running with nothing running it."""
    from functions.pipeline.definition import Pipeline, Task

    pipeline = Pipeline(
        name="nan",
        nodes=(Task("Measure", "tests.functions.test_runner:returns_nan", "measure", "ANALYZING", 0, 50),),
        on_error=FAKE_PIPELINE.on_error,
    )
    job = _job(ctx)
    runner = LocalRunner(ctx, pipeline=pipeline, use_processes=False, sleep=lambda s: None)
    assert runner.run_job(job["id"]) == "FAILED"
    row = ctx.status.get_job(job["id"])
    assert row["last_step"] == "Measure" and row["error"].startswith("ValueError: "), row["error"]
    assert [d["job_id"] for d in ctx.status.dead_letters()] == [job["id"]]


HOST_SCRIPT = """
import sys, time
from functions.pipeline.context import context_from_settings
from functions.pipeline.runner import LocalRunner
from functions.settings import Settings
ctx = context_from_settings(Settings(data_dir=sys.argv[1], scratch_dir=sys.argv[1] + "/scratch",
                                     jwt_secret="x", workers=2, run_local_runner=False))
runner = LocalRunner(ctx)
runner.warm_up(60)
print(" ".join(str(p) for p in runner._get_pool()._processes), flush=True)
time.sleep(120)
"""


@pytest.mark.slow
def test_render_processes_end_when_the_server_is_killed(tmp_path):
    """`tonematch serve` killed with SIGKILL (or by the OOM killer) cannot end its render
    processes; they used to stay forever (120 MB each, more with every crash) and a busy one kept
    writing to a job the next start resumes. Each now ends itself once its server is gone."""
    import os
    import signal
    import subprocess
    import sys

    host = subprocess.Popen(
        [sys.executable, "-c", HOST_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    pids: list[int] = []
    try:
        pids = [int(p) for p in host.stdout.readline().split()]
        assert len(pids) == 2 and all(_process_alive(p) for p in pids)
        os.kill(host.pid, signal.SIGKILL)
        host.wait(10)
        deadline = time.time() + 15
        while any(_process_alive(p) for p in pids) and time.time() < deadline:
            time.sleep(0.1)
        assert [p for p in pids if _process_alive(p)] == []
    finally:
        host.kill()
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)



def test_a_stopped_server_leaves_nothing_for_the_resource_tracker(tmp_path):
    """Every `tonematch serve` stopped with Ctrl-C or SIGTERM ended with multiprocessing's warning
    "There appear to be 5 leaked semaphore objects to clean up at shutdown"."""
    import signal
    import subprocess
    import sys

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "functions.cli", "serve", "--port", str(port), "--data-dir", str(tmp_path),
         "--no-drop-watch", "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        import httpx

        deadline = time.time() + 60
        while time.time() < deadline:  # up (render processes warm) once the app answers
            try:
                if httpx.get(f"http://127.0.0.1:{port}/options", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=60)
    finally:
        server.kill()
    assert server.returncode in (0, -signal.SIGTERM), out  # uvicorn re-raises the signal it stopped on
    assert "Application shutdown complete" in out and "leaked" not in out, out
