"""Reads back the return value a Batch-run step left in the object store (gpu_batch/entrypoint.py
writes it to ``TONEMATCH_RESULT_KEY``), so a Map over Batch jobs collects the same results as a Map
over Lambda steps."""

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


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict, context: Any) -> Any:
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
