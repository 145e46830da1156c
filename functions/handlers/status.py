"""Status watcher: every execution of the pipeline that ends FAILED, TIMED_OUT or ABORTED (an
EventBridge "Step Functions Execution Status Change" event) must leave its job FAILED with a
dead letter. The Catch path does that for step errors; this covers what Catch cannot see (execution
timeouts, aborts, ``States.Runtime`` errors, a failure path that itself failed). A job already
FAILED or COMPLETED, or one that a newer attempt has taken over, is left alone (logged)."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from functions.handlers._runtime import logger, metrics, step_context
from functions.handlers._tracing import tracer

FINAL = ("FAILED", "COMPLETED")


def handle(detail: dict, ctx: Any) -> dict:
    """Mark the execution's job FAILED unless it already ended; returns what was done."""
    from functions.pipeline.steps import mark_failed

    try:
        state = json.loads(detail.get("input") or "{}")
    except ValueError:
        state = {}
    job_id = state.get("job_id")
    status = detail.get("status")
    if not job_id:
        logger.error(
            "ended execution has no job_id in its input", extra={"execution": detail.get("executionArn")}
        )
        return {"action": "ignored", "reason": "no job_id in the execution input"}
    job = ctx.status.get_job(job_id)
    if job is None:
        return {"action": "ignored", "reason": f"unknown job {job_id}"}
    if job.get("status") in FINAL:
        return {"action": "ignored", "reason": f"job already {job['status']}", "job_id": job_id}
    if int(job.get("attempts") or 0) != int(state.get("attempt", job.get("attempts") or 0)):
        return {"action": "ignored", "reason": "a newer attempt of the job is running", "job_id": job_id}
    error = {
        "Error": detail.get("error") or f"Execution{str(status).title().replace('_', '')}",
        "Cause": detail.get("cause") or f"the Step Functions execution ended {status}",
    }
    mark_failed({**state, "error": error, "failed_step": job.get("last_step")}, ctx)
    metrics.add_metric(name="JobsFailed", unit=MetricUnit.Count, value=1)
    return {"action": "failed", "job_id": job_id, "status": status}


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict, context: Any) -> dict:
    detail = event.get("detail") or {}
    result = handle(detail, step_context())
    logger.info(f"execution ended {detail.get('status')}: {result['action']}", extra={"result": result})
    return result
