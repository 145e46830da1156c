"""Small step handlers for runner tests (importable by "module:function" in pool processes too).
Each counts its calls in files under the scratch dir, so counts survive processes and restarts."""

from __future__ import annotations

import os
import time
from pathlib import Path

from functions.pipeline.definition import DEFAULT_RETRY, Map, Parallel, Pipeline, RetryPolicy, Task
from functions.pipeline.errors import StepFailed, TransientError

M = "tests.functions.pipeline_fakes"


def _count(ctx, name: str) -> int:
    d = Path(ctx.scratch_dir) / "counts"
    d.mkdir(parents=True, exist_ok=True)
    with open(d / name, "a") as f:
        f.write("x")
    return (d / name).stat().st_size


def calls(scratch_dir, name: str) -> int:
    p = Path(scratch_dir) / "counts" / name
    return p.stat().st_size if p.exists() else 0


def left(event, ctx):
    _count(ctx, "left")
    ctx.status.advance_job(event["job_id"], "ANALYZING", 10, "Left")
    return {"value": 1, "thread_name": __import__("threading").current_thread().name}


def right(event, ctx):
    _count(ctx, "right")
    return {"value": 2}


def plan(event, ctx):
    _count(ctx, "plan")
    n = int(event["opts"].get("n", 4))
    return {"segments": [{"idx": i} for i in range(n)]}


def square(event, ctx):
    _count(ctx, f"square-{event['item']['idx']}")
    gate = Path(ctx.scratch_dir) / "gate"
    if event["opts"].get("gate") and event["item"]["idx"] >= 1:
        deadline = time.time() + 20
        while not gate.exists() and time.time() < deadline:
            time.sleep(0.02)
    i = event["item"]["idx"]
    return {"idx": i, "sq": i * i, "pid": os.getpid()}


def flaky(event, ctx):
    n = _count(ctx, "flaky")
    if n <= int(event["opts"].get("fail_times", 0)):
        raise TransientError(f"object store 503 (attempt {n})")
    return {"attempts": n}


def boom(event, ctx):
    if event["opts"].get("boom"):
        raise StepFailed("target.wav: 3.2 s: NaN sample")
    return {"ok": True}


def finish(event, ctx):
    _count(ctx, "finish")
    total = sum(s["sq"] for s in event["squares"])
    ctx.status.update_job(event["job_id"], status="COMPLETED", progress=100, metrics={"total": total})
    return {"total": total}


FAST = RetryPolicy(errors=DEFAULT_RETRY.errors)

FAKE_PIPELINE = Pipeline(
    name="fake",
    nodes=(
        Parallel(
            "Both",
            (
                (Task("Left", f"{M}:left", "left", "ANALYZING", 0, 10),),
                (Task("Right", f"{M}:right", "right", "ANALYZING", 0, 10),),
            ),
        ),
        Task("Flaky", f"{M}:flaky", "flaky", "INVERTING", 10, 20),
        Task("Boom", f"{M}:boom", "boom", "INVERTING", 20, 25),
        Task("Plan", f"{M}:plan", "plan", "RENDERING", 25, 30),
        Map(
            "Squares",
            "plan.segments",
            Task("Square", f"{M}:square", None, "RENDERING", 30, 90, compute="batch"),
            "squares",
        ),
        Task("Finish", f"{M}:finish", "result", "COMPLETED", 90, 100),
    ),
    on_error=Task(
        "MarkFailed",
        "functions.pipeline.steps:mark_failed",
        None,
        "FAILED",
        0,
        0,
        retry=RetryPolicy(max_attempts=3),
    ),
)
