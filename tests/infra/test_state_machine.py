"""The synthesised state machine, executed by moto, with the real step handlers in-process, Batch jobs
run by gpu_batch's entrypoint, S3 in moto and job status in the real PostgreSQL
(``TONEMATCH_TEST_PG_URL``, one schema per test)."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra.moto_pipeline import (
    REGION,
    Deployed,
    Hooks,
    deploy,
    executions,
    install_hooks,
    sqs_event,
    wait_for_execution,
)

pytestmark = [pytest.mark.cdk, pytest.mark.postgres, pytest.mark.slow]

PG_URL = os.environ.get("TONEMATCH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MOTO_CONFIG = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
    "batch": {"use_docker": False},
}


@dataclass
class Cloud:
    deployed: Deployed
    hooks: Hooks
    ctx: object
    user_id: str
    audio: dict[str, dict[str, str]]

    def job(self, job_id: str) -> dict:
        return self.ctx.status.get_job(job_id)


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> dict[str, dict[str, str]]:
    from engine.examples import write_example_pair

    base = tmp_path_factory.mktemp("audio")
    return {
        "short": write_example_pair(base / "short", duration_s=6.0, sample_rate_hz=16000),
        "long": write_example_pair(base / "long", duration_s=21.0, sample_rate_hz=16000),
    }


@pytest.fixture
def cloud(synth, monkeypatch, tmp_path, audio):
    pytest.importorskip("moto")
    import psycopg
    from moto import mock_aws

    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except Exception as exc:
        pytest.fail(f"PostgreSQL at TONEMATCH_TEST_PG_URL={PG_URL} is not reachable: {exc}")
    from functions.handlers import batch_result, tagger
    from functions.pipeline import context as context_module

    schema = f"tm_sfn_{uuid.uuid4().hex[:10]}"
    bucket = f"tm-sfn-{uuid.uuid4().hex[:8]}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "TONEMATCH_BUCKET": bucket,
        "TONEMATCH_DATABASE_URL": PG_URL,
        "TONEMATCH_DATABASE_SCHEMA": schema,
        "TONEMATCH_SCRATCH_DIR": str(tmp_path / "scratch"),
        "TONEMATCH_DATA_DIR": str(tmp_path / "data"),
        "TONEMATCH_JWT_SECRET": "test-secret",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "Tonematch",
        "POWERTOOLS_SERVICE_NAME": "tonematch",
        "TONEMATCH_GPU": "off",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("TONEMATCH_DB_IAM_AUTH", "TONEMATCH_DLQ_URL", "TONEMATCH_S3_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    with mock_aws(config=MOTO_CONFIG):
        hooks = Hooks()
        deployed, function_env = deploy(synth.template("Pipeline"), bucket)
        install_hooks(monkeypatch, hooks, function_env)
        monkeypatch.setenv("TONEMATCH_STATE_MACHINE_ARN", deployed.state_machine_arn)
        monkeypatch.setattr(context_module, "_ENV_CTX", None)
        monkeypatch.setattr(batch_result, "_objects", None)
        monkeypatch.setattr(tagger, "_s3", None)
        ctx = context_module.context_from_env()
        user = ctx.status.create_user(f"{uuid.uuid4().hex[:8]}@example.com", "x")
        try:
            yield Cloud(deployed, hooks, ctx, user["id"], audio)
        finally:
            ctx.status.drop_schema()
            ctx.status.close()
            context_module._ENV_CTX = None


def _start(cloud: Cloud, which: str = "short", opts: dict | None = None) -> dict:
    from functions import service

    ref, tgt = _pair(cloud, which)
    job, created = service.create_job(cloud.ctx, cloud.user_id, mode="A", ref_key=ref, tgt_key=tgt, opts=opts)
    assert created
    return job


def _pair(cloud: Cloud, which: str) -> tuple[str, str]:
    keys = []
    for role in ("reference", "target"):
        key = f"{cloud.user_id}/audio/raw/{which}-{role}.wav"
        if not cloud.ctx.objects.exists(key):
            cloud.ctx.objects.put_file(key, Path(cloud.audio[which][role]))
        keys.append(key)
    return keys[0], keys[1]


def _only_execution(cloud: Cloud) -> dict:
    (execution,) = executions(cloud.deployed.state_machine_arn)
    return wait_for_execution(execution["executionArn"])


def _dead_letters(cloud: Cloud) -> list[dict]:
    import boto3

    sqs = boto3.client("sqs", region_name=REGION)
    msgs = sqs.receive_message(QueueUrl=cloud.deployed.dlq_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in msgs]


def _needs_full_engine():
    for module in ("engine.metrics", "engine.viz", "engine.features", "engine.invert"):
        pytest.importorskip(module, reason=f"{module} (another part of the project) has not landed yet")


def test_happy_path_short_job_on_lambda_completes(cloud):
    _needs_full_engine()
    job = _start(cloud, "short")
    desc = _only_execution(cloud)
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    row = cloud.job(job["id"])
    assert row["status"] == "COMPLETED" and row["progress"] == 100
    outputs = row["outputs"] if isinstance(row["outputs"], dict) else json.loads(row["outputs"])
    assert cloud.ctx.objects.exists(outputs["result_key"])
    called = {name for name, _ in cloud.hooks.invocations}
    for step in (
        "AnalyzeReference",
        "AnalyzeTarget",
        "Invert",
        "PlanSegments",
        "RenderSegment",
        "Merge",
        "Finalize",
    ):
        assert cloud.deployed.function_names[step] in called, step
    assert cloud.hooks.batch_jobs == []  # one segment: the CPU path on Lambda
    assert cloud.hooks.retry_waits_s == [] and _dead_letters(cloud) == []


def test_long_job_renders_segments_on_batch(cloud):
    _needs_full_engine()
    job = _start(cloud, "long", opts={"segment_s": 10})
    desc = _only_execution(cloud)
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    assert cloud.job(job["id"])["status"] == "COMPLETED"
    assert [j["exit_code"] for j in cloud.hooks.batch_jobs] == [0, 0]
    events = [json.loads(j["env"]["TONEMATCH_EVENT"]) for j in cloud.hooks.batch_jobs]
    assert sorted(e["item"]["idx"] for e in events) == [0, 1]
    assert all("segments" not in e["plan"] for e in events)  # the item list is not copied into each job


def test_transient_errors_retry_with_exponential_backoff(cloud, monkeypatch):
    _needs_full_engine()
    from functions.pipeline.errors import TransientError
    from functions.stores import objects

    failures = {"left": 3}
    real_exists = objects.S3ObjectStore.exists

    def flaky_exists(self, key):
        if key.endswith("/params.json") and failures["left"] > 0:
            failures["left"] -= 1
            raise TransientError("S3 503 Slow Down (injected)")
        return real_exists(self, key)

    monkeypatch.setattr(objects.S3ObjectStore, "exists", flaky_exists)
    job = _start(cloud, "short")
    desc = _only_execution(cloud)
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    assert cloud.hooks.retry_waits_s == [2, 4, 8]
    assert cloud.job(job["id"])["status"] == "COMPLETED"


def test_failing_segment_fails_job_with_error_and_dead_letter(cloud, monkeypatch):
    pytest.importorskip("engine.features")
    import engine.segments
    from engine.errors import ParamsError

    real = engine.segments.render_segment

    def broken(in_path, out_path, params, segment, **kw):
        if int(segment["idx"]) == 1:
            raise ParamsError("segment 1 cannot be rendered (injected)", where="segment[1]")
        return real(in_path, out_path, params, segment, **kw)

    monkeypatch.setattr(engine.segments, "render_segment", broken)
    job = _start(cloud, "long", opts={"segment_s": 10})
    desc = _only_execution(cloud)
    assert desc["status"] == "FAILED"
    row = cloud.job(job["id"])
    assert row["status"] == "FAILED" and row["last_step"] == "RenderSegments"
    # the step's own error, as on the Lambda path (not States.TaskFailed + the Batch job description)
    assert "ParamsError: segment[1]: segment 1 cannot be rendered (injected)" in row["error"]
    assert "the Batch job of step RenderSegment (item 1) ended" in row["error"]
    assert 2 in [j["exit_code"] for j in cloud.hooks.batch_jobs]  # the permanent exit code; the Map stops
    (letter,) = _dead_letters(cloud)
    assert letter["job_id"] == job["id"] and letter["failed_step"] == "RenderSegments"
    assert letter["error"]["Error"] == "StepFailed"
    assert "segment 1 cannot be rendered (injected)" in letter["error"]["Cause"]


def test_resubmit_while_running_starts_nothing(cloud):
    from functions import service

    ref, tgt = _pair(cloud, "short")
    first, created = service.create_job(cloud.ctx, cloud.user_id, mode="A", ref_key=ref, tgt_key=tgt)
    again, created_again = service.create_job(cloud.ctx, cloud.user_id, mode="A", ref_key=ref, tgt_key=tgt)
    assert created and not created_again and again["id"] == first["id"]
    assert len(executions(cloud.deployed.state_machine_arn)) == 1
    cloud.ctx.launch(service.job_event(first))  # a duplicate start of the same attempt is refused
    assert len(executions(cloud.deployed.state_machine_arn)) == 1
    wait_for_execution(executions(cloud.deployed.state_machine_arn)[0]["executionArn"])


def _created(bucket: str, key: str, size: int = 1000) -> str:
    return json.dumps(
        {
            "version": "0",
            "source": "aws.s3",
            "detail-type": "Object Created",
            "detail": {"bucket": {"name": bucket}, "object": {"key": key, "size": size}},
        }
    )


def test_drop_folder_upload_to_completed_job_and_bad_input(cloud):
    _needs_full_engine()
    from functions.handlers import starter
    from tests.infra.moto_pipeline import FakeLambdaContext

    folder = f"drop/{cloud.user_id}/batch1"
    bucket = cloud.deployed.bucket
    cloud.ctx.objects.put_file(f"{folder}/reference.wav", Path(cloud.audio["short"]["reference"]))
    half = starter.handler(sqs_event([_created(bucket, f"{folder}/reference.wav")]), FakeLambdaContext("s"))
    assert half == {"batchItemFailures": []} and executions(cloud.deployed.state_machine_arn) == []
    cloud.ctx.objects.put_file(f"{folder}/target.wav", Path(cloud.audio["short"]["target"]))
    cloud.ctx.objects.put_bytes(f"drop/{cloud.user_id}/batch2/target.txt", b"not audio")
    cloud.ctx.objects.put_bytes(f"drop/{cloud.user_id}/batch3/reference.wav", b"x")
    bodies = [
        _created(bucket, f"{folder}/target.wav"),
        _created(bucket, f"{folder}/target.wav"),  # the same event delivered twice
        "{not json",  # malformed: reported as a failure, SQS retries it then dead-letters it
        _created(bucket, "elsewhere/x.wav"),  # unknown prefix: ignored
        _created(bucket, f"drop/{cloud.user_id}/batch2/target.txt"),  # not audio: ignored by name
        _created(bucket, f"drop/{cloud.user_id}/batch3/reference.wav", size=50 * 2**30),  # oversized
    ]
    result = starter.handler(sqs_event(bodies), FakeLambdaContext("s"))
    assert result == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    oversized = json.loads(cloud.ctx.objects.get_bytes(f"drop/{cloud.user_id}/batch3/error.json"))
    assert oversized["code"] == "INVALID_INPUT" and "over the limit" in oversized["message"]
    desc = _only_execution(cloud)  # duplicate delivery started nothing twice
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    job_id = json.loads(cloud.ctx.objects.get_bytes(f"{folder}/job.json"))["job_id"]
    assert cloud.job(job_id)["status"] == "COMPLETED"
