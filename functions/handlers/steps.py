"""One adapter for every pipeline step Lambda: ``TONEMATCH_STEP`` names the task of
:data:`functions.pipeline.definition.PIPELINE`, whose ``handler`` (``module:function``) runs with the
event and the process's :class:`StepContext`. The step itself moves the job's status and progress.

Errors propagate unchanged, so their class name becomes the Step Functions error name the definition's
Retry (``TransientError``) and Catch rules match; a transient error is also counted in the
``StepTransientErrors`` metric (the "retried" alarm). ``Finalize`` publishes the job's quality metrics.

A warm Lambda keeps /tmp from one invocation to the next, and steps leave files in the scratch dir
(inputs cached by ``fetch`` under ``cache/``, the job's own folder): kept while the function works on
one job (the segments of a job share the downloaded target), they are removed when a step of another
job arrives, or every job a function ever saw would stay there until /tmp is full.
"""

from __future__ import annotations

import importlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from functions.handlers._runtime import logger, metrics, step_context
from functions.handlers._tracing import tracer
from functions.pipeline.definition import PIPELINE, Task
from functions.pipeline.errors import TransientError

QUALITY_METRICS = ("stft_dist", "mel_dist", "lufs_err", "tp_db", "artifacts_rate")


def resolve(task: Task) -> Callable[[dict, Any], dict]:
    """The step function a task names (``"functions.pipeline.steps:invert"``)."""
    module, _, name = task.handler.partition(":")
    return getattr(importlib.import_module(module), name)


_scratch_job: str | None = None


def clear_other_jobs_scratch(scratch_dir: Path, job_id: str) -> list[str]:
    """Remove what steps of other jobs left in ``scratch_dir`` (``cache/`` and job folders) when
    ``job_id`` is not the job this process last worked on; returns the names removed."""
    global _scratch_job
    if _scratch_job == job_id:
        return []
    from functions.stores.status import is_uuid

    scratch = Path(scratch_dir)
    stale = [
        entry.name
        for entry in (scratch.iterdir() if scratch.is_dir() else ())
        if entry.is_dir() and (entry.name == "cache" or (is_uuid(entry.name) and entry.name != job_id))
    ]
    for name in stale:
        shutil.rmtree(scratch / name, ignore_errors=True)
    _scratch_job = job_id
    return stale


def task_named(name: str) -> Task:
    """The pipeline task ``name`` (``TONEMATCH_STEP`` of the function)."""
    try:
        return PIPELINE.task(name)
    except KeyError:
        raise RuntimeError(f"TONEMATCH_STEP={name!r} is not a task of pipeline {PIPELINE.name}") from None


def publish_quality(ctx: Any, job_id: str) -> None:
    """Quality metrics of a finished job (SPEC section 3) as CloudWatch metrics."""
    rows = ctx.status.metrics_for(job_id)
    job = ctx.status.get_job(job_id) or {}
    values = (rows[-1] if rows else None) or job.get("metrics") or {}
    if isinstance(values, dict) and isinstance(values.get("metrics"), dict):
        values = values["metrics"]
    for name in QUALITY_METRICS:
        value = values.get(name) if isinstance(values, dict) else None
        if isinstance(value, int | float):
            metrics.add_metric(name=name, unit=MetricUnit.NoUnit, value=float(value))


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict, context: Any) -> dict:
    """The Lambda entry point: runs the task ``TONEMATCH_STEP`` names."""
    return run_step(os.environ.get("TONEMATCH_STEP", ""), event)


def run_step(step: str, event: dict) -> dict:
    """Run pipeline task ``step`` on ``event`` with logging, tracing and metrics around it."""
    task = task_named(step)
    job_id = str(event.get("job_id", ""))
    logger.set_correlation_id(job_id)
    logger.append_keys(job_id=job_id, step=task.name, item_index=event.get("item_index"))
    tracer.put_annotation("job_id", job_id)
    tracer.put_annotation("step", task.name)
    metrics.add_dimension(name="step", value=task.name)
    started = time.perf_counter()
    ctx = step_context()
    if job_id:
        clear_other_jobs_scratch(ctx.scratch_dir, job_id)
    try:
        result = resolve(task)(event, ctx)
    except TransientError as exc:
        metrics.add_metric(name="StepTransientErrors", unit=MetricUnit.Count, value=1)
        logger.warning("transient error, the state machine retries", extra={"error": str(exc)})
        raise
    except Exception as exc:
        logger.error("step failed", extra={"error_type": type(exc).__name__, "error": str(exc)})
        raise
    finally:
        metrics.add_metric(
            name="StepDuration", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000.0
        )
    if task.name == "Finalize":
        publish_quality(step_context(), job_id)
        metrics.add_metric(name="JobsCompleted", unit=MetricUnit.Count, value=1)
    elif task is PIPELINE.on_error:
        metrics.add_metric(name="JobsFailed", unit=MetricUnit.Count, value=1)
    logger.info("step done", extra={"result_keys": sorted(result) if isinstance(result, dict) else None})
    return result
