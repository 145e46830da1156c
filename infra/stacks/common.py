"""Shared pieces of the stacks: the Lambda function factory and naming."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_cdk import Aws, Duration, RemovalPolicy, Size
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import assets
from infra.config import Settings

if TYPE_CHECKING:
    from infra.stacks.database import DatabaseStack

SERVICE_NAME = "tonematch"
METRICS_NAMESPACE = "Tonematch"
#: ``TONEMATCH_DATA_DIR`` of every Lambda: /tmp is the only writable place there, and
#: ``Settings.resolved()`` writes to the data dir (default ``./data``, i.e. the read-only /var/task)
LAMBDA_DATA_DIR = "/tmp/tonematch"


@functools.cache
def _staged_function_code_path() -> str:
    code = assets.function_code()
    return code.path  # type: ignore[attr-defined]


def python_function(
    scope: Construct,
    construct_id: str,
    *,
    handler: str,
    settings: Settings,
    layers: list[lambda_.ILayerVersion],
    description: str,
    environment: dict[str, str] | None = None,
    memory_mb: int = 512,
    timeout_s: int = 30,
    vpc: ec2.IVpc | None = None,
    security_groups: list[ec2.ISecurityGroup] | None = None,
    reserved_concurrency: int | None = None,
    ephemeral_storage_mb: int | None = None,
) -> lambda_.Function:
    """A tonematch Lambda: shared code asset, Powertools settings, X-Ray, its own log group."""
    log_group = logs.LogGroup(
        scope,
        f"{construct_id}Logs",
        retention=logs.RetentionDays.ONE_MONTH,
        removal_policy=RemovalPolicy.DESTROY,
    )
    env = {
        "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "TONEMATCH_STAGE": settings.stage,
        "TONEMATCH_DATA_DIR": LAMBDA_DATA_DIR,
        **(environment or {}),
    }
    return lambda_.Function(
        scope,
        construct_id,
        runtime=settings.python_runtime,
        architecture=lambda_.Architecture.X86_64,
        handler=handler,
        code=lambda_.Code.from_asset(_staged_function_code_path()),
        layers=layers,
        environment=env,
        tracing=lambda_.Tracing.ACTIVE,
        memory_size=memory_mb,
        timeout=Duration.seconds(timeout_s),
        description=description,
        log_group=log_group,
        vpc=vpc,
        security_groups=security_groups,
        vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS) if vpc else None,
        reserved_concurrent_executions=reserved_concurrency,
        ephemeral_storage_size=Size.mebibytes(ephemeral_storage_mb) if ephemeral_storage_mb else None,
    )


def data_bucket_name(stage: str) -> str:
    """The data bucket's physical name. Fixed from stage, account and region so that other stacks
    name it (and its ARNs) without cross-stack exports, and IAM findings read plainly."""
    return f"tonematch-{stage.lower()}-data-{Aws.ACCOUNT_ID}-{Aws.REGION}"


@dataclass(frozen=True)
class DataBucket:
    """What other stacks need of the data bucket: its name, ARN, and the KMS key's ARN."""

    name: str
    key_arn: str

    @property
    def arn(self) -> str:
        return f"arn:{Aws.PARTITION}:s3:::{self.name}"

    def arn_for_objects(self, key_pattern: str) -> str:
        return f"{self.arn}/{key_pattern}"


def grant_objects(
    grantee: iam.IGrantable,
    bucket: DataBucket,
    *,
    read: bool = True,
    write: bool = False,
    delete: bool = False,
    list_keys: bool = False,
    key_pattern: str = "*",
) -> None:
    """Least privilege on the data bucket: named actions only (no ``s3:GetObject*``-style wildcards),
    on ``key_pattern`` objects of this one bucket, plus the KMS calls SSE-KMS needs on its key."""
    actions = (
        (["s3:GetObject"] if read else [])
        + (["s3:PutObject", "s3:AbortMultipartUpload"] if write else [])
        + (["s3:DeleteObject"] if delete else [])
    )
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(actions=actions, resources=[bucket.arn_for_objects(key_pattern)])
    )
    if list_keys:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.arn])
        )
    kms_actions = (["kms:Decrypt"] if read or write else []) + (["kms:GenerateDataKey"] if write else [])
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(actions=kms_actions, resources=[bucket.key_arn])
    )


def job_starting_function(
    scope: Construct,
    construct_id: str,
    *,
    handler: str,
    description: str,
    timeout_s: int,
    settings: Settings,
    bucket: DataBucket,
    database: DatabaseStack,
    state_machine: sfn.IStateMachine,
    delete_objects: bool = False,
) -> lambda_.Function:
    """A service Lambda that creates jobs and starts the pipeline (the API, the drop-folder starter):
    both layers, the database client inside its VPC, read/write/list on the bucket (``delete_objects``
    adds delete) and the right to start the state machine."""
    layers = [
        assets.layer(scope, kind, settings.lambda_python, settings.python_runtime)
        for kind in ("dsp", "service")
    ]
    function = python_function(
        scope,
        construct_id,
        handler=handler,
        settings=settings,
        layers=layers,
        description=description,
        environment={
            "TONEMATCH_BUCKET": bucket.name,
            "TONEMATCH_STATE_MACHINE_ARN": state_machine.state_machine_arn,
            "TONEMATCH_RUNNER": "stepfunctions",
            **database.client_environment,
        },
        memory_mb=1024,
        timeout_s=timeout_s,
        vpc=database.vpc,
        security_groups=[database.app_security_group],
    )
    grant_objects(function, bucket, read=True, write=True, delete=delete_objects, list_keys=True)
    state_machine.grant_start_execution(function)
    database.grant_client(function)
    return function
