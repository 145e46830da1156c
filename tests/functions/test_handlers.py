"""The Lambda adapters (functions/handlers): what each does with good and bad events. The full
pipeline through them runs in tests/infra/test_state_machine.py."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from functions.handlers import starter, status, tagger
from functions.handlers.steps import task_named
from functions.stores import db_auth
from tests.functions.conftest import add_user
from tests.infra.moto_pipeline import sqs_event


@pytest.mark.parametrize(
    ("key", "cls"),
    [
        ("u1/audio/raw/a.wav", "raw"),
        ("u1/audio/processed/j.flac", "processed"),
        ("u1/work/j/seg/00001.wav", "work"),
        ("drop/u1/b/reference.wav", "drop"),
        ("u1/viz/j.json", None),
        ("u1/preset/p.json", None),
        ("ir/hall.wav", None),
        ("u1/audio/raw", None),
    ],
)
def test_lifecycle_class_of_keys(key, cls):
    assert tagger.object_class(key) == cls


@pytest.fixture
def tagger_s3(monkeypatch):
    """A moto S3 with the bucket ``tm-bucket``, and the tagger's client reset to reach it."""
    from moto import mock_aws

    for k, v in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    with mock_aws():
        import boto3

        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="tm-bucket")
        monkeypatch.setattr(tagger, "_s3", None)
        yield s3


def test_tagger_tags_and_keeps_existing_tags(tagger_s3):
    s3 = tagger_s3
    s3.put_object(Bucket="tm-bucket", Key="u1/audio/raw/a.wav", Body=b"x", Tagging="owner=me")
    event = {"detail": {"bucket": {"name": "tm-bucket"}, "object": {"key": "u1/audio/raw/a.wav"}}}
    from tests.infra.moto_pipeline import FakeLambdaContext

    assert tagger.handler(event, FakeLambdaContext("tagger"))["class"] == "raw"
    tags = {
        t["Key"]: t["Value"]
        for t in s3.get_object_tagging(Bucket="tm-bucket", Key="u1/audio/raw/a.wav")["TagSet"]
    }
    assert tags == {"owner": "me", "tonematch-class": "raw"}
    gone = {"detail": {"bucket": {"name": "tm-bucket"}, "object": {"key": "u1/audio/raw/deleted.wav"}}}
    assert tagger.handler(gone, FakeLambdaContext("tagger")).get("gone") is True


class FakeRds:
    def __init__(self):
        self.calls = []

    def generate_db_auth_token(self, DBHostname, Port, DBUsername):
        self.calls.append((DBHostname, Port, DBUsername))
        return f"token-{len(self.calls)}"


def test_iam_db_token_signed_then_refreshed_before_expiry(monkeypatch):
    monkeypatch.setenv("TONEMATCH_DB_IAM_AUTH", "1")
    monkeypatch.setenv(
        "TONEMATCH_DATABASE_URL", "postgresql://tonematch@proxy.example:5432/tonematch?sslmode=require"
    )
    monkeypatch.setenv("PGPASSWORD", "")  # registered, so teardown restores the real environment
    monkeypatch.setenv("PGSSLMODE", "require")
    monkeypatch.setattr(db_auth, "_token_signed_at", 0.0)
    rds = FakeRds()
    assert db_auth.refresh_db_credentials(now=1000.0, rds_client=rds) is True
    assert rds.calls == [("proxy.example", 5432, "tonematch")]
    import os

    assert os.environ["PGPASSWORD"] == "token-1"
    assert db_auth.refresh_db_credentials(now=1000.0 + 9 * 60, rds_client=rds) is False  # still fresh
    assert db_auth.refresh_db_credentials(now=1000.0 + 11 * 60, rds_client=rds) is True
    assert os.environ["PGPASSWORD"] == "token-2"
    monkeypatch.setenv("TONEMATCH_DB_IAM_AUTH", "0")
    assert db_auth.refresh_db_credentials(now=99999.0, rds_client=rds) is False


def test_malformed_drop_messages_are_refused_clearly():
    with pytest.raises(starter.MalformedDropEventError, match="not an S3 Object Created event"):
        starter.object_of("{not json")
    with pytest.raises(starter.MalformedDropEventError):
        starter.object_of(json.dumps({"detail": {"object": {}}}))
    assert starter.object_of(json.dumps({"detail": {"object": {"key": "drop/u/b/t.wav", "size": 12}}})) == (
        "drop/u/b/t.wav",
        12,
    )


def test_unknown_step_name_is_a_configuration_error():
    assert task_named("Invert").name == "Invert"
    with pytest.raises(RuntimeError, match="TONEMATCH_STEP='Nope'"):
        task_named("Nope")


def _job(ctx, status_value: str) -> dict:
    user = add_user(ctx)
    job, _ = ctx.status.create_job(
        user_id=user["id"],
        mode="A",
        ref_key=f"{user['id']}/audio/raw/r.wav",
        tgt_key=f"{user['id']}/audio/raw/t.wav",
        opts={},
        idempotency_key=uuid.uuid4().hex,
        preset_id=None,
    )
    ctx.status.advance_job(job["id"], status_value, 40, "RenderSegments")
    return ctx.status.get_job(job["id"])


def test_status_watcher_fails_jobs_of_timed_out_executions(ctx):
    job = _job(ctx, "RENDERING")
    detail = {
        "status": "TIMED_OUT",
        "executionArn": "arn:x",
        "input": json.dumps({"job_id": job["id"], "user_id": job["user_id"], "attempt": 0}),
    }
    assert status.handle(detail, ctx)["action"] == "failed"
    row = ctx.status.get_job(job["id"])
    assert row["status"] == "FAILED" and "TIMED_OUT" in row["error"] and row["last_step"] == "RenderSegments"
    assert [d for d in ctx.status.dead_letters() if d.get("job_id") == job["id"]]
    again = status.handle(detail, ctx)  # a repeated event changes nothing
    assert again["action"] == "ignored" and "already FAILED" in again["reason"]


def test_status_watcher_ignores_unknown_and_newer_attempts(ctx):
    assert status.handle({"status": "ABORTED", "input": "{}"}, ctx)["action"] == "ignored"
    unknown = {"status": "ABORTED", "input": json.dumps({"job_id": str(uuid.uuid4())})}
    assert status.handle(unknown, ctx)["reason"].startswith("unknown job")
    job = _job(ctx, "ANALYZING")
    old = {"status": "ABORTED", "input": json.dumps({"job_id": job["id"], "attempt": 5})}
    assert status.handle(old, ctx)["reason"] == "a newer attempt of the job is running"
    assert ctx.status.get_job(job["id"])["status"] == "ANALYZING"


def test_api_handler_serves_http_api_events_through_mangum(tmp_path):
    """A cold process: import the Lambda module (app built from TONEMATCH_* env) and serve an HTTP API
    (payload v2) request for /health and an unknown route."""
    import os
    import subprocess
    import sys

    script = """
import json
from functions.handlers.api import handler
from tests.infra.moto_pipeline import FakeLambdaContext
def event(path):
    return {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
            "headers": {"host": "api.example", "x-forwarded-proto": "https"},
            "requestContext": {"http": {"method": "GET", "path": path, "sourceIp": "1.2.3.4",
                                        "protocol": "HTTP/1.1", "userAgent": "t"}, "requestId": "rid-1",
                               "stage": "$default", "domainName": "api.example"},
            "isBase64Encoded": False}
ok = handler(event("/health"), FakeLambdaContext("api"))
missing = handler(event("/nope"), FakeLambdaContext("api"))
print(json.dumps({"ok": ok["statusCode"], "body": json.loads(ok["body"]), "missing": missing["statusCode"],
                  "missing_body": json.loads(missing["body"])}))
"""
    env = {**os.environ, "TONEMATCH_DATA_DIR": str(tmp_path / "data"), "POWERTOOLS_TRACE_DISABLED": "1",
           "TONEMATCH_JWT_SECRET": "s"}
    env.pop("TONEMATCH_STATE_MACHINE_ARN", None)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         cwd=str(Path(__file__).parents[2]), timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["ok"] == 200 and got["body"] == {"ok": True}
    assert got["missing"] == 404 and got["missing_body"]["code"] == "NOT_FOUND"


def _s3_event_key(key: str) -> str:
    """The key as S3 writes it into its events (URL-encoded, form style: space → '+', '/' kept)."""
    from urllib.parse import quote_plus

    return quote_plus(key, safe="/")


def test_tagger_decodes_the_url_encoded_key_of_the_event(tagger_s3):
    """S3 events URL-encode the key: a dropped 'My Song+1 é.wav' arrives as 'My+Song%2B1+%C3%A9.wav'.
    Looked up as written it is not found, so the file was never tagged and never expired."""
    from tests.infra.moto_pipeline import FakeLambdaContext

    s3 = tagger_s3
    for key in ("drop/u1/b/My Song+1 é.wav", "drop/u1/b/50%.wav", "drop/u1/b/a#b.wav"):
        s3.put_object(Bucket="tm-bucket", Key=key, Body=b"x")
        event = {"detail": {"bucket": {"name": "tm-bucket"}, "object": {"key": _s3_event_key(key)}}}
        out = tagger.handler(event, FakeLambdaContext("tagger"))
        assert out == {"key": key, "class": "drop"}
        tags = s3.get_object_tagging(Bucket="tm-bucket", Key=key)["TagSet"]
        assert tags == [{"Key": "tonematch-class", "Value": "drop"}]


def _created(key: str, size: int) -> str:
    detail = {"bucket": {"name": "b"}, "object": {"key": _s3_event_key(key), "size": size}}
    return json.dumps({"source": "aws.s3", "detail-type": "Object Created", "detail": detail})


def test_starter_answers_odd_batch_names_as_the_local_drop_folder_does(ctx, monkeypatch):
    """The starter gets the key URL-encoded ('Müller mix' as 'M%C3%BCller+mix'): decoded, the batch
    is answered as the local watcher answers it (the same error file, the folder's real name), and an
    oversized file in such a folder is answered too, instead of failing on an error.json the store
    refuses to write (the record went round five times into the dead-letter queue)."""
    from tests.infra.moto_pipeline import FakeLambdaContext

    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    monkeypatch.setattr(starter, "step_context", lambda: ctx)
    user = add_user(ctx)
    assert starter.object_of(_created("drop/u/take 1+2 é/reference.wav", 5)) == (
        "drop/u/take 1+2 é/reference.wav",
        5,
    )
    too_big = ctx.settings.max_upload_bytes + 1
    result = starter.handler(
        sqs_event([
            _created(f"drop/{user['id']}/Müller mix/reference.wav", 1000),
            _created(f"drop/{user['id']}/my batch/target.wav", too_big),
        ]),
        FakeLambdaContext("starter"),
    )
    assert result == {"batchItemFailures": []}
    err = json.loads(ctx.objects.get_bytes(f"drop/{user['id']}/M_ller_mix.error.json"))
    assert err["code"] == "INVALID_INPUT" and err["detail"]["field"] == "Müller mix"
    err = json.loads(ctx.objects.get_bytes(f"drop/{user['id']}/my_batch.error.json"))
    assert err["detail"]["field"] == "my batch"


def test_a_warm_step_lambda_drops_the_scratch_files_of_earlier_jobs(monkeypatch, tmp_path):
    """Lambda keeps /tmp between invocations of a warm function: the targets fetch() cached and the
    job folders of every earlier job piled up until the disk was full ('No space left on device').
    Files of the job at hand stay (its segments share the downloaded target)."""
    from types import SimpleNamespace

    from functions.handlers import steps as steps_handler

    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    ctx = SimpleNamespace(scratch_dir=tmp_path)
    monkeypatch.setattr(steps_handler, "step_context", lambda: ctx)
    monkeypatch.setattr(steps_handler, "_scratch_job", None, raising=False)
    seen = []

    def fake_step(event, ctx):
        seen.append(sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()))
        (tmp_path / "cache").mkdir(exist_ok=True)
        (tmp_path / "cache" / f"{event['job_id'][:4]}.wav").write_bytes(b"x" * 10)
        (tmp_path / event["job_id"]).mkdir(exist_ok=True)
        (tmp_path / event["job_id"] / "seg.wav").write_bytes(b"x")
        return {}

    monkeypatch.setattr(steps_handler, "resolve", lambda task: fake_step)
    (tmp_path / "tonematch").mkdir()
    (tmp_path / "tonematch" / "jwt_secret").write_text("s")  # not a step's file: kept
    one, two = str(uuid.uuid4()), str(uuid.uuid4())
    for job_id in (one, one, two):
        steps_handler.run_step("RenderSegment", {"job_id": job_id, "item_index": 0})
    assert seen[1] == sorted([f"cache/{one[:4]}.wav", f"{one}/seg.wav", "tonematch/jwt_secret"])
    assert seen[2] == ["tonematch/jwt_secret"]


def test_a_timed_out_batch_render_is_reported_with_batch_s_reason(monkeypatch):
    """A Batch job killed at its timeout writes nothing: the error names the step, the item and what
    Batch said (from the Catch's cause, the job description), not a bare States.TaskFailed."""
    from functions.handlers import batch_result
    from functions.pipeline.errors import StepFailed
    from functions.stores.objects import ObjectNotFoundError

    class Empty:
        def get_bytes(self, key):
            raise ObjectNotFoundError(key)

    monkeypatch.setattr(batch_result, "_objects", Empty())
    cause = {
        "JobName": "tonematch-RenderSegment",
        "Status": "FAILED",
        "StatusReason": "Job attempt duration exceeded timeout",
        "Container": {"ExitCode": 137, "Reason": "OutOfMemoryError: Container killed due to memory usage"},
    }
    event = {
        "result_key": "u/work/j/batch-results/RenderSegment-3.json",
        "step": "RenderSegment",
        "item_index": 3,
        "batch_error": {"Error": "States.TaskFailed", "Cause": json.dumps(cause)},
    }
    err = batch_result.batch_failure(event)
    assert isinstance(err, StepFailed)
    assert str(err) == (
        "the Batch job of step RenderSegment (item 3) ended: Job attempt duration exceeded timeout, "
        "exit code 137, OutOfMemoryError: Container killed due to memory usage"
    )
