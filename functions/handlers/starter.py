"""Drop-folder starter: SQS batches of S3 "Object Created" EventBridge events → jobs.

Each record's body is one EventBridge event; its object key goes to
:func:`functions.dropfolder.handle_object_created`, which documents what happens to each kind of key
(ignored, waiting for the other half of a pair, rejected with an ``error.json``, started, exists).
Records are processed with Powertools' ``BatchProcessor``: a record whose handling raises (a malformed
message, a database or S3 fault) is reported as a batch item failure, so only it comes back, and after
5 receives it lands on the drop folder's dead-letter queue: never lost, never blocking the others.
Objects over ``max_upload_bytes`` are refused from the event's size alone, before anything is read.
S3 URL-encodes the object key in its events (``my batch/`` arrives as ``my+batch/``, a literal ``+`` as
``%2B``, other non-ASCII bytes as ``%XX``): :func:`object_of` decodes it, as Powertools' S3 event classes do.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from functions.handlers._runtime import logger, metrics, step_context
from functions.handlers._tracing import tracer

processor = BatchProcessor(event_type=EventType.SQS)


class MalformedDropEventError(ValueError):
    """The SQS message is not an S3 Object Created event (it goes to the DLQ after its retries)."""


def object_of(body: str) -> tuple[str, int | None]:
    """``(key, size_bytes)`` of the S3 object an EventBridge event names (the key URL-decoded)."""
    try:
        event = json.loads(body)
        obj = event["detail"]["object"]
        key = obj["key"]
    except (ValueError, KeyError, TypeError) as exc:
        raise MalformedDropEventError(f"not an S3 Object Created event: {body[:200]!r}") from exc
    if not isinstance(key, str) or not key:
        raise MalformedDropEventError(f"event names no object key: {body[:200]!r}")
    size = obj.get("size")
    return unquote_plus(key), int(size) if isinstance(size, int | float) else None


def _refuse_oversized(ctx: Any, key: str, size_bytes: int) -> dict:
    limit = ctx.settings.max_upload_bytes
    folder = key.rsplit("/", 1)[0]
    doc = {
        "code": "INVALID_INPUT",
        "message": f"{key.rsplit('/', 1)[-1]}: {size_bytes} bytes is over the limit of {limit} bytes",
        "detail": {"key": key, "size_bytes": size_bytes, "limit_bytes": limit},
    }
    if key.startswith("drop/"):
        ctx.objects.put_bytes(f"{folder}/error.json", json.dumps(doc, indent=2).encode(), "application/json")
    return {"action": "rejected", "key": key, **doc}


@tracer.capture_method(capture_response=False)
def record_handler(record: SQSRecord) -> dict:
    from functions.dropfolder import _valid_key, handle_object_created

    key, size_bytes = object_of(record.body)
    logger.append_keys(object_key=key, message_id=record.message_id)
    ctx = step_context()
    oversized = size_bytes is not None and size_bytes > ctx.settings.max_upload_bytes
    # a folder the store refuses (``my batch/``) cannot hold an error.json: the drop folder answers
    # it beside the folder, reading nothing
    if oversized and _valid_key(f"{key.rsplit('/', 1)[0]}/error.json"):
        result = _refuse_oversized(ctx, key, size_bytes)
    else:
        result = handle_object_created(key, ctx)
    action = result.get("action", "unknown")
    metrics.add_metric(name=f"Drop{action.capitalize()}", unit=MetricUnit.Count, value=1)
    if action == "started":
        metrics.add_metric(name="JobsQueued", unit=MetricUnit.Count, value=1)
    log = logger.warning if action in ("rejected", "ignored") else logger.info
    log(f"drop folder: {action}", extra={"result": result})
    return result


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict, context: Any) -> dict:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
