"""Reads back the return value a Batch-run step left in the object store (gpu_batch/entrypoint.py
writes it to ``TONEMATCH_RESULT_KEY``), so a Map over Batch jobs collects the same results as a Map
over Lambda steps.

When the Batch job failed (the event carries the Catch's ``batch_error``), it raises the step's own
error instead: the entrypoint leaves ``{errorType, errorMessage}`` at the result key, and Batch's own
reason (timeout, exit code) is added, so the job's error says what went wrong, as on the Lambda path,
not ``States.TaskFailed`` with the Batch job's description."""

from __future__ import annotations

import json
from typing import Any

from functions.handlers._runtime import logger
from functions.handlers._tracing import tracer
from functions.pipeline.errors import StepFailed, TransientError
from functions.settings import Settings
from functions.stores.objects import ObjectNotFoundError, object_store_from_settings

_objects = None


def objects():
    global _objects
    if _objects is None:
        _objects = object_store_from_settings(Settings.from_env().resolved())
    return _objects


def batch_failure(event: dict) -> StepFailed:
    """The error of a failed Batch job: the step's own (left at the result key) and Batch's reason."""
    key, err = event["result_key"], event.get("batch_error") or {}
    try:
        cause = json.loads(err.get("Cause") or "{}")
    except ValueError:
        cause = {}
    cause = cause if isinstance(cause, dict) else {}
    container = cause.get("Container") if isinstance(cause.get("Container"), dict) else {}
    why = [str(cause.get("StatusReason") or err.get("Error") or "failed")]
    if container.get("ExitCode") is not None:
        why.append(f"exit code {container['ExitCode']}")
    if container.get("Reason"):
        why.append(str(container["Reason"]))
    try:
        doc = json.loads(objects().get_bytes(key))
    except (ObjectNotFoundError, OSError, ValueError):
        doc = None
    own = (
        f"{doc['errorType']}: {doc['errorMessage']}"
        if isinstance(doc, dict) and doc.get("errorMessage")
        else ""
    )
    item = f" (item {event['item_index']})" if event.get("item_index") is not None else ""
    return StepFailed(
        f"{own + '; ' if own else ''}the Batch job of step {event.get('step')}{item} ended: {', '.join(why)}"
    )


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict, context: Any) -> Any:
    if "batch_error" in event:
        raise batch_failure(event)
    key = event["result_key"]
    try:
        raw = objects().get_bytes(key)
    except ObjectNotFoundError:
        raise StepFailed(
            f"the Batch job of step {event.get('step')} ended without writing its result {key!r}"
        ) from None
    except OSError as exc:
        raise TransientError(f"reading {key!r}: {exc}") from exc
    return json.loads(raw)
