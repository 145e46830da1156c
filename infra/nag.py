"""cdk-nag (AwsSolutions pack) on the whole app, with every acknowledged finding justified.

Each acknowledgement names the construct path it applies to (a glob over ``node.path``), the rule,
and why the finding does not apply or is accepted. ``tests/infra/test_nag.py`` fails on any finding
that is not acknowledged here and on any acknowledgement without a reason.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


@dataclass(frozen=True)
class Ack:
    path_glob: str
    rule: str
    reason: str


_LAMBDA_ROLES = "*/ServiceRole/Resource"
_LAMBDA_POLICIES = "*/ServiceRole/DefaultPolicy/Resource"
_DATA_OBJECTS = (
    "Object keys are created per user and per job at run time ({user_id}/audio/raw/..., "
    "{user_id}/work/{job_id}/...), so object-level actions name this one bucket's objects "
    "(or a prefix pattern of it); actions are listed one by one, never wildcards."
)

ACKNOWLEDGEMENTS: tuple[Ack, ...] = (
    # -- managed policies --------------------------------------------------------------------------
    Ack(
        _LAMBDA_ROLES,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AWSLambdaBasicExecutionRole]",
        "AWS's minimal Lambda policy: writes the function's own CloudWatch log streams, nothing else.",
    ),
    Ack(
        _LAMBDA_ROLES,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AWSLambdaVPCAccessExecutionRole]",
        "Needed for Lambdas in the VPC (to reach RDS Proxy): creates and removes the function's own "
        "network interfaces, plus log writes; AWS keeps it in step with Lambda's networking.",
    ),
    Ack(
        "*/GpuCompute/InstanceProfileRole/Resource",
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:"
        "policy/service-role/AmazonEC2ContainerServiceforEC2Role]",
        "The ECS agent on AWS Batch GPU hosts needs this AWS-maintained policy to register with the "
        "cluster and pull the render image; the job's own rights are in RenderJobRole.",
    ),
    # -- Resource::* that the services require ------------------------------------------------------
    Ack(
        _LAMBDA_POLICIES,
        "AwsSolutions-IAM5[Resource::*]",
        "Only X-Ray tracing (xray:PutTraceSegments, xray:PutTelemetryRecords), which has no "
        "resource-level permissions; every data action names its resource.",
    ),
    Ack(
        "*/StateMachine/Role/DefaultPolicy/Resource",
        "AwsSolutions-IAM5[Resource::*]",
        "X-Ray tracing and CloudWatch Logs delivery for the state machine (logs:CreateLogDelivery and "
        "friends, xray:PutTraceSegments) and batch:DescribeJobs/TerminateJob for .sync jobs: none of "
        "these support resource-level permissions.",
    ),
    Ack(
        "*/RenderContainer/ExecutionRole/DefaultPolicy/Resource",
        "AwsSolutions-IAM5[Resource::*]",
        "ecr:GetAuthorizationToken has no resource-level permissions; image pulls name the repository.",
    ),
    Ack(
        "*/StateMachine/Role/DefaultPolicy/Resource",
        "AwsSolutions-IAM5[Resource::arn:{partition}:batch:{region}:{account}:job-definition/*]",
        "Granted by CDK's BatchSubmitJob task: SubmitJob names a job definition by name:revision, and the "
        "revision changes on every image update; the queue is named exactly.",
    ),
    Ack(
        "*/StateMachine/Role/DefaultPolicy/Resource",
        "AwsSolutions-IAM5[Resource::<{function}.Arn>:*]",
        "lambda:InvokeFunction on the pipeline's own step functions and their versions/aliases (ARN:*).",
    ),
    # -- data bucket objects -------------------------------------------------------------------------
    Ack(_LAMBDA_POLICIES, "AwsSolutions-IAM5[Resource::{bucket}/*]", _DATA_OBJECTS),
    Ack(_LAMBDA_POLICIES, "AwsSolutions-IAM5[Resource::{bucket}/*/work/*/batch-results/*]", _DATA_OBJECTS),
    Ack("*/RenderJobRole/DefaultPolicy/Resource", "AwsSolutions-IAM5[Resource::{bucket}/*]", _DATA_OBJECTS),
    # -- constructs that CDK itself adds -------------------------------------------------------------
    Ack(
        "*/BucketNotificationsHandler*/Role/Resource",
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:"
        "policy/service-role/AWSLambdaBasicExecutionRole]",
        "CDK's own handler that turns on the bucket's EventBridge notifications at deploy time.",
    ),
    Ack(
        "*/LogRetention*/ServiceRole/Resource",
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:"
        "policy/service-role/AWSLambdaBasicExecutionRole]",
        "CDK's own log-retention handler for the RDS log groups (deploy time only).",
    ),
    Ack(
        "*/LogRetention*/ServiceRole/DefaultPolicy/Resource",
        "AwsSolutions-IAM5[Resource::*]",
        "CDK's own log-retention handler: logs:PutRetentionPolicy on log groups RDS creates at run time.",
    ),
    Ack(
        "*/MigrationsProvider/framework-onEvent/ServiceRole/Resource",
        "AwsSolutions-IAM4[Policy::arn:"
        "<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        "CDK's custom-resource provider framework (runs the migration Lambda on deploy); log writes only.",
    ),
    Ack(
        "*/MigrationsProvider/framework-onEvent/ServiceRole/DefaultPolicy/Resource",
        "AwsSolutions-IAM5[Resource::<{function}.Arn>:*]",
        "The provider framework invokes the migration Lambda and its versions (ARN:*), nothing else.",
    ),
    Ack(
        "*/MigrationsProvider/framework-onEvent/Resource",
        "AwsSolutions-L1",
        "CDK's provider framework picks its own Node.js runtime; it only forwards deploy events.",
    ),
    Ack(
        "*/AWS679f53fac002430cb0da5b7982bd2287/ServiceRole/Resource",
        "AwsSolutions-IAM4[Policy::arn:"
        "<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        "CDK's AwsCustomResource handler that adds the EventBridge → CloudWatch Logs resource policy.",
    ),
    Ack(
        "*/EventsLogGroupPolicy*/CustomResourcePolicy/Resource",
        "AwsSolutions-IAM5[Resource::*]",
        "CDK-generated policy of the EventBridge → CloudWatch Logs target: logs:PutResourcePolicy and "
        "logs:DeleteResourcePolicy have no resource-level permissions.",
    ),
    # -- design decisions ---------------------------------------------------------------------------------
    Ack(
        "*/Resource",
        "AwsSolutions-L1",
        "Runtime pinned to the Python the layers are built for (context tonematch:lambdaPython, 3.11 or "
        "3.12, layers/build.py); wheels of scipy/onnxruntime decide it, so both move together.",
    ),
    Ack(
        "*/Postgres/Resource",
        "AwsSolutions-RDS11",
        "Clients only reach PostgreSQL through RDS Proxy (which always listens on 5432 for PostgreSQL); "
        "the instance sits in isolated subnets and accepts only the proxy's security group, so a "
        "non-default port would hide nothing.",
    ),
    Ack(
        "*/DeadLetterQueue/Resource",
        "AwsSolutions-SQS3",
        "This queue IS the pipeline's dead-letter queue (failed jobs from the state machine and the "
        "status watcher); it is read by operators, never redriven into another queue.",
    ),
    Ack(
        "*/JwtSecret/Resource",
        "AwsSolutions-SMG4",
        "The API's token-signing key: rotating it would log every user out at once (refresh tokens "
        "live 30 days); it never leaves Secrets Manager and the API function alone may read it.",
    ),
    Ack(
        "*/HttpApi/DefaultRoute/Resource",
        "AwsSolutions-APIG4",
        "The FastAPI app authorises every route itself with JWT bearer tokens (SPEC section 8); "
        "/auth/login, /auth/refresh and /health are public by design, so no gateway authoriser.",
    ),
)


def _walk(root: IConstruct):
    yield root
    for child in root.node.children:
        yield from _walk(child)


def _logical_id(resource: cdk.CfnResource) -> str:
    stack = cdk.Stack.of(resource)
    return str(stack.resolve(stack.get_logical_id(resource)))


def _expand(rule: str, construct: IConstruct, stage: str) -> list[str]:
    """The exact finding ids a rule template stands for at ``construct`` (cdk-nag matches exactly).

    ``{bucket}`` is the data bucket's ARN as cdk-nag prints it; ``{function}`` stands for each Lambda
    function of the construct's stack (rules about invoking a named function and its versions);
    ``{partition}``, ``{region}``, ``{account}`` are the stack's, literal when its env is concrete."""
    stack = cdk.Stack.of(construct)

    def pseudo(value: str, name: str) -> str:
        resolved = stack.resolve(value)  # a literal when the stack has a concrete env, else a Ref
        return resolved if isinstance(resolved, str) else f"<AWS::{name}>"

    rule = (
        rule.replace("{partition}", pseudo(stack.partition, "Partition"))
        .replace("{region}", pseudo(stack.region, "Region"))
        .replace("{account}", pseudo(stack.account, "AccountId"))
    )
    rule = rule.replace(
        "{bucket}", f"arn:<AWS::Partition>:s3:::tonematch-{stage.lower()}-data-<AWS::AccountId>-<AWS::Region>"
    )
    if "{function}" not in rule:
        return [rule]
    functions = [c for c in _walk(stack) if isinstance(c, lambda_.CfnFunction)]
    return [rule.replace("{function}", _logical_id(fn)) for fn in functions]


def apply_nag(app: cdk.App, acknowledgements: tuple[Ack, ...] = ACKNOWLEDGEMENTS) -> dict[Ack, int]:
    """Register the AwsSolutions checks and the acknowledgements; returns how many constructs each
    acknowledgement matched (an acknowledgement that matches nothing is stale)."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    stage = str(app.node.try_get_context("tonematch:stage") or "dev")
    matched = dict.fromkeys(acknowledgements, 0)
    constructs = list(_walk(app))
    for ack in acknowledgements:
        if not ack.reason.strip():
            raise ValueError(f"cdk-nag acknowledgement {ack.rule} at {ack.path_glob} has no reason")
        for construct in constructs:
            if fnmatch.fnmatchcase(construct.node.path, ack.path_glob):
                for rule in _expand(ack.rule, construct, stage):
                    cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=rule, reason=ack.reason))
                matched[ack] += 1
    return matched
