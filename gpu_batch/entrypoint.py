"""AWS Batch entrypoint: render one segment, S3 to S3, on the GPU where present.

Two ways to call it, both from environment variables:

* pipeline mode (what the state machine submits): ``TONEMATCH_EVENT`` (the step's JSON event),
  ``TONEMATCH_STEP_HANDLER`` (``functions.pipeline.steps:render_segment``) and ``TONEMATCH_RESULT_KEY``
  (where the step's return value goes for the loader Lambda). The step handler is the same code the
  local runner and the Lambda CPU path run: it downloads, calls ``engine.segments.render_segment``,
  uploads, and moves the job's status; its stores come from ``TONEMATCH_*`` (``context_from_env``).
* standalone mode: ``TONEMATCH_BUCKET``, ``TONEMATCH_JOB_ID``, ``TONEMATCH_INPUT_KEY``,
  ``TONEMATCH_PARAMS_KEY`` (style params JSON with the resolved gain), ``TONEMATCH_SEGMENT`` (the
  segment JSON of ``plan_segments``), ``TONEMATCH_OUTPUT_KEY``, optional ``TONEMATCH_SAMPLE_RATE_HZ``:
  no database, just S3 → render → S3.

Exit codes, matched by the job definition's retry strategy (infra/stacks/pipeline.py): 0 done;
3 transient (S3/database hiccup, GPU lost: Batch retries the attempt); 2 permanent (bad input or
parameters, missing object: no retry, the state machine marks the job FAILED).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_PERMANENT = 2
EXIT_TRANSIENT = 3

log = logging.getLogger("tonematch.gpu_batch")


class UsageError(Exception):
    """Missing or malformed environment (a permanent failure)."""


def _env(name: str, env: dict[str, str]) -> str:
    value = env.get(name)
    if not value:
        raise UsageError(f"environment variable {name} is not set")
    return value


def _json_env(name: str, env: dict[str, str]) -> Any:
    try:
        return json.loads(_env(name, env))
    except ValueError as exc:
        raise UsageError(f"{name} is not valid JSON: {exc}") from exc


def classify(exc: BaseException) -> int:
    """Exit code for an exception: transient faults 3, everything else 2."""
    from functions.pipeline.errors import TransientError

    transient_names = {
        "TransientError",
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "OperationalError",
        "CUDARuntimeError",
        "OutOfMemoryError",
    }
    if (
        isinstance(exc, TransientError | ConnectionError | TimeoutError)
        or type(exc).__name__ in transient_names
    ):
        return EXIT_TRANSIENT
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code = str(response.get("Error", {}).get("Code", ""))
        if status >= 500 or code in ("SlowDown", "RequestTimeout", "Throttling", "ThrottlingException"):
            return EXIT_TRANSIENT
    return EXIT_PERMANENT


def run_pipeline_step(env: dict[str, str]) -> dict:
    """Pipeline mode: run the named step handler with the event, store its return value."""
    from functions.handlers._runtime import refresh_db_credentials
    from functions.pipeline.context import context_from_env

    event = _json_env("TONEMATCH_EVENT", env)
    handler_path = env.get("TONEMATCH_STEP_HANDLER") or "functions.pipeline.steps:render_segment"
    result_key = _env("TONEMATCH_RESULT_KEY", env)
    module, _, name = handler_path.partition(":")
    step = getattr(importlib.import_module(module), name)
    # RDS Proxy takes IAM authentication only (TONEMATCH_DB_IAM_AUTH=1): sign the token, as the Lambdas do
    refresh_db_credentials()
    ctx = context_from_env()
    result = step(event, ctx)
    ctx.objects.put_bytes(result_key, json.dumps(result).encode(), "application/json")
    return result


def run_standalone(env: dict[str, str], s3: Any = None) -> dict:
    """Standalone mode: S3 input + params → ``engine.segments.render_segment`` → S3 output."""
    from engine.segments import render_segment

    bucket = _env("TONEMATCH_BUCKET", env)
    input_key, params_key = _env("TONEMATCH_INPUT_KEY", env), _env("TONEMATCH_PARAMS_KEY", env)
    output_key = _env("TONEMATCH_OUTPUT_KEY", env)
    segment = _json_env("TONEMATCH_SEGMENT", env)
    rate = env.get("TONEMATCH_SAMPLE_RATE_HZ")
    if s3 is None:
        import boto3

        s3 = boto3.client("s3", endpoint_url=env.get("TONEMATCH_S3_ENDPOINT_URL") or None)
    scratch = Path(env.get("TONEMATCH_SCRATCH_DIR") or tempfile.gettempdir())
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        src = Path(tmp) / ("input" + Path(input_key).suffix)
        out = Path(tmp) / "segment.wav"
        s3.download_file(bucket, input_key, str(src))
        try:
            params = json.loads(s3.get_object(Bucket=bucket, Key=params_key)["Body"].read())
        except ValueError as exc:
            raise UsageError(f"{params_key} is not valid JSON: {exc}") from exc
        report = render_segment(
            str(src), str(out), params, segment, sample_rate_hz=int(rate) if rate else None
        )
        s3.upload_file(str(out), bucket, output_key, ExtraArgs={"ContentType": "audio/wav"})
    return {"idx": segment.get("idx"), "key": output_key, "report": report}


def record_failure(env: dict[str, str], exc: BaseException) -> None:
    """Pipeline mode: leave ``{errorType, errorMessage}`` at ``TONEMATCH_RESULT_KEY`` (best effort),
    so the state machine's failure path reports the step's own error instead of Batch's "Essential
    container in task exited" (a later successful attempt overwrites it with the result)."""
    result_key = env.get("TONEMATCH_RESULT_KEY")
    if not env.get("TONEMATCH_EVENT") or not result_key:
        return
    try:
        from functions.settings import Settings
        from functions.stores.objects import object_store_from_settings

        objects = object_store_from_settings(Settings.from_env(env).resolved())
        doc = {"errorType": type(exc).__name__, "errorMessage": str(exc)[:4000]}
        objects.put_bytes(result_key, json.dumps(doc).encode(), "application/json")
    except Exception:
        log.exception("could not record the failure at %s", result_key)


def main(env: dict[str, str] | None = None, s3: Any = None) -> int:
    """Run one render; returns the exit code (see the module docstring)."""
    from gpu_batch.gpu import gpu_if_available

    env = dict(os.environ if env is None else env)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    started = time.perf_counter()
    try:
        with gpu_if_available() as device:
            if env.get("TONEMATCH_EVENT"):
                mode = "pipeline"
                result = run_pipeline_step(env)
            else:
                mode = "standalone"
                result = run_standalone(env, s3=s3)
    except UsageError as exc:
        log.error("render refused: %s", exc)
        record_failure(env, exc)
        return EXIT_PERMANENT
    except Exception as exc:
        code = classify(exc)
        log.exception(
            "render failed (%s, exit %d): %s: %s",
            "transient" if code == EXIT_TRANSIENT else "permanent",
            code,
            type(exc).__name__,
            exc,
        )
        record_failure(env, exc)
        return code
    log.info(
        "render done: mode=%s device=%s seconds=%.2f result=%s",
        mode,
        device,
        time.perf_counter() - started,
        json.dumps(result, default=str)[:500],
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
