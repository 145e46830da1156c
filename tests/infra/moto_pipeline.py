"""Run the SYNTHESISED state machine offline: moto executes its ASL, Lambda invokes are dispatched to
the project's handlers in-process, Batch jobs run gpu_batch's entrypoint, and the status store is the
real PostgreSQL. Used by test_state_machine.py.

Three small hooks into moto 5.2 (no Docker here):
* Lambda: the simple backend's ``invoke`` runs the function's handler (an exception becomes a function
  error with ``errorType``/``errorMessage``, as the Lambda runtime reports it);
* Batch: the simple backend runs ``gpu_batch.entrypoint.main`` with the job's container-override
  environment and marks the job SUCCEEDED/FAILED by its exit code;
* the Step Functions interpreter: service-task parameters are converted to the API's member names
  (moto 5.2.5 leaves them as written, so ``batch:submitJob.sync`` fails with ``KeyError: 'JobName'``),
  and the retry back-off ``time.sleep`` is replaced by a recorder.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import threading
import time
import zipfile
from dataclasses import dataclass, field
from typing import Any

import boto3

REGION = "us-east-1"
ACCOUNT = "123456789012"


@dataclass
class FakeLambdaContext:
    function_name: str
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = ""
    aws_request_id: str = "req"
    log_group_name: str = "/aws/lambda/test"
    log_stream_name: str = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def sqs_event(bodies: list[str]) -> dict:
    """An SQS-triggered Lambda's event carrying ``bodies`` (the drop queue's messages)."""
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": "r",
                "body": body,
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:DropQueue",
                "awsRegion": REGION,
            }
            for i, body in enumerate(bodies)
        ]
    }


@dataclass
class Hooks:
    """What the hooks saw: invocations per function, retry waits, Batch job environments."""

    invocations: list[tuple[str, dict]] = field(default_factory=list)
    retry_waits_s: list[float] = field(default_factory=list)
    batch_jobs: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _to_member_names(value: Any, shape: Any) -> Any:
    """Rename dict keys to the botocore shape's member names (case-insensitively), recursively."""
    if shape is None:
        return value
    if shape.type_name == "structure" and isinstance(value, dict):
        members = {name.lower(): name for name in shape.members}
        out = {}
        for key, v in value.items():
            name = members.get(key.lower(), key)
            out[name] = _to_member_names(v, shape.members.get(name))
        return out
    if shape.type_name == "list" and isinstance(value, list):
        return [_to_member_names(v, shape.member) for v in value]
    return value


def install_hooks(monkeypatch, hooks: Hooks, function_env: dict[str, dict[str, str]]) -> None:
    """Patch moto's simple Lambda/Batch backends and the ASL interpreter (see module docstring)."""
    import botocore.session
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.batch_simple.models import BatchSimpleBackend
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service

    session = botocore.session.get_session()

    def normalise(self, parameters, boto_service_name=None, service_action_name=None):
        service = boto_service_name or self._get_boto_service_name()
        action = service_action_name or self._get_boto_service_action()
        model = session.get_service_model(service)
        op_name = next(
            (o for o in model.operation_names if o.lower() == action.replace("_", "").lower()), None
        )
        if op_name is None:
            return
        converted = _to_member_names(dict(parameters), model.operation_model(op_name).input_shape)
        parameters.clear()
        parameters.update(converted)

    def pascal(value: Any) -> Any:
        if isinstance(value, dict):
            return {(k[:1].upper() + k[1:]): pascal(v) for k, v in value.items()}
        if isinstance(value, list):
            return [pascal(v) for v in value]
        return value

    def normalise_response(self, response, boto_service_name=None, service_action_name=None):
        # Step Functions hands service responses to the state machine in PascalCase (JobId, ...)
        if isinstance(response, dict):
            converted = pascal(response)
            response.clear()
            response.update(converted)

    monkeypatch.setattr(state_task_service.StateTaskService, "_normalise_parameters", normalise)
    monkeypatch.setattr(state_task_service.StateTaskService, "_normalise_response", normalise_response)

    class _Clock:
        @staticmethod
        def sleep(seconds: float) -> None:
            with hooks.lock:
                hooks.retry_waits_s.append(float(seconds))

        def __getattr__(self, name):  # time.time() etc. stay real
            return getattr(time, name)

    monkeypatch.setattr(retrier_decl, "time", _Clock())

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        fn = self.get_function(function_name, qualifier)
        name = fn.function_name
        event = json.loads(body) if body else {}
        with hooks.lock:
            hooks.invocations.append((name, event))
        env = function_env.get(name, {})
        try:
            result = _run_handler(
                fn.handler, env, event, FakeLambdaContext(name, invoked_function_arn=fn.function_arn)
            )
        except Exception as exc:  # the Lambda runtime's error document
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}).encode()
        return json.dumps(result).encode()

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)

    def finish(self, include_start_attempt, job):
        from gpu_batch.entrypoint import main

        self.backend._jobs[job.job_id] = job
        job.job_started_at = __import__("datetime").datetime.now()
        job.log_stream_name = job._stream_name
        if include_start_attempt:
            job._start_attempt()
        overrides = (job.container_overrides or {}).get("environment") or []
        env = {**os.environ, **{e["name"]: e["value"] for e in overrides}}
        code = main(env)
        with hooks.lock:
            hooks.batch_jobs.append({"env": {e["name"]: e["value"] for e in overrides}, "exit_code": code})
        job._mark_stopped(success=code == 0)

    monkeypatch.setattr(BatchSimpleBackend, "_mark_job_as_finished", finish)


def _run_handler(handler_path: str, env: dict[str, str], event: dict, context: FakeLambdaContext) -> Any:
    """Run a Lambda handler in-process. Per-function environment that differs between functions
    (``TONEMATCH_STEP``) is passed explicitly, since functions run concurrently in one process."""
    module_name, _, attr = handler_path.rpartition(".")
    if module_name == "functions.handlers.steps":
        from functions.handlers import steps

        wrapped = steps.logger.inject_lambda_context(
            steps.metrics.log_metrics(lambda e, c: steps.run_step(env["TONEMATCH_STEP"], e))
        )
        return wrapped(event, context)
    return getattr(importlib.import_module(module_name), attr)(event, context)


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("index.py", "def handler(e, c):\n    return e\n")
    return buf.getvalue()


@dataclass
class Deployed:
    state_machine_arn: str
    dlq_url: str
    bucket: str
    function_names: dict[str, str]


def deploy(template: dict, bucket: str) -> tuple[Deployed, dict[str, dict[str, str]]]:
    """Create in moto what the pipeline template's state machine refers to, then the state machine
    itself from the template's definition with every token resolved to those resources."""
    res = template["Resources"]
    iam = boto3.client("iam", region_name=REGION)
    role_arn = iam.create_role(RoleName="tonematch-test", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=bucket)
    sqs = boto3.client("sqs", region_name=REGION)
    lam = boto3.client("lambda", region_name=REGION)
    batch = boto3.client("batch", region_name=REGION)
    sfn = boto3.client("stepfunctions", region_name=REGION)

    refs: dict[tuple[str, str], str] = {}
    function_env: dict[str, dict[str, str]] = {}
    names: dict[str, str] = {}
    dlq_url = ""
    for lid, r in res.items():
        if r["Type"] == "AWS::Lambda::Function":
            props = r["Properties"]
            env = {
                k: v
                for k, v in (props.get("Environment", {}).get("Variables") or {}).items()
                if isinstance(v, str)
            }
            arn = lam.create_function(
                FunctionName=lid,
                Runtime="python3.12",
                Role=role_arn,
                Handler=props["Handler"],
                Code={"ZipFile": _zip()},
                Environment={"Variables": env},
            )["FunctionArn"]
            refs[(lid, "Arn")] = arn
            function_env[lid] = env
            names[env.get("TONEMATCH_STEP") or props["Handler"]] = lid
        elif r["Type"] == "AWS::SQS::Queue":
            url = sqs.create_queue(QueueName=lid)["QueueUrl"]
            refs[(lid, "Ref")] = url
            refs[(lid, "Arn")] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            if "DeadLetter" in lid:
                dlq_url = url
    for lid, r in res.items():
        if r["Type"] == "AWS::Batch::ComputeEnvironment":
            ce = batch.create_compute_environment(
                computeEnvironmentName=lid, type="UNMANAGED", state="ENABLED", serviceRole=role_arn
            )
            refs[(lid, "Ref")] = ce["computeEnvironmentArn"]
    for lid, r in res.items():
        if r["Type"] == "AWS::Batch::JobQueue":
            ce_arn = next(v for (k, kind), v in refs.items() if kind == "Ref" and "Compute" in k)
            q = batch.create_job_queue(
                jobQueueName=lid,
                state="ENABLED",
                priority=1,
                computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce_arn}],
            )
            refs[(lid, "JobQueueArn")] = q["jobQueueArn"]
        elif r["Type"] == "AWS::Batch::JobDefinition":
            jd = batch.register_job_definition(
                jobDefinitionName=lid,
                type="container",
                containerProperties={"image": "tonematch-render", "vcpus": 1, "memory": 512},
            )
            refs[(lid, "Ref")] = jd["jobDefinitionArn"]

    def resolve(part: Any) -> str:
        if isinstance(part, str):
            return part
        if "Ref" in part:
            name = part["Ref"]
            pseudo = {
                "AWS::Partition": "aws",
                "AWS::Region": REGION,
                "AWS::AccountId": ACCOUNT,
                "AWS::URLSuffix": "amazonaws.com",
            }
            return pseudo.get(name) or refs[(name, "Ref")]
        lid, attr = part["Fn::GetAtt"]
        return refs[(lid, attr)]

    (_, sm) = next((k, v) for k, v in res.items() if v["Type"] == "AWS::StepFunctions::StateMachine")
    body = sm["Properties"]["DefinitionString"]
    definition = "".join(resolve(p) for p in body["Fn::Join"][1]) if isinstance(body, dict) else body
    arn = sfn.create_state_machine(
        name="tonematch-job-test", definition=definition, roleArn=role_arn, type="STANDARD"
    )["stateMachineArn"]
    return Deployed(arn, dlq_url, bucket, names), function_env


def wait_for_execution(execution_arn: str, timeout_s: float = 150.0) -> dict:
    """Poll until the execution leaves RUNNING."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    deadline = time.monotonic() + timeout_s
    while True:
        desc = sfn.describe_execution(executionArn=execution_arn)
        if desc["status"] != "RUNNING" or time.monotonic() > deadline:
            return desc
        time.sleep(0.2)


def executions(state_machine_arn: str) -> list[dict]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    return sfn.list_executions(stateMachineArn=state_machine_arn)["executions"]
