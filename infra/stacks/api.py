"""API: an HTTP API in front of one Lambda running the FastAPI app through Mangum, with stage
throttling, CORS and JSON access logs."""

from __future__ import annotations

import json

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.config import Settings
from infra.stacks.common import DataBucket, job_starting_function
from infra.stacks.database import DatabaseStack

ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "requestTime": "$context.requestTime",
        "method": "$context.httpMethod",
        "path": "$context.path",
        "routeKey": "$context.routeKey",
        "status": "$context.status",
        "protocol": "$context.protocol",
        "responseLength": "$context.responseLength",
        "latencyMs": "$context.responseLatency",
        "integrationError": "$context.integrationErrorMessage",
    }
)


class ApiStack(Stack):
    """HTTP API → Lambda (FastAPI via Mangum)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        bucket: DataBucket,
        database: DatabaseStack,
        state_machine: sfn.IStateMachine,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # presigned PUT/GET are signed with this role's rights; deleting is the service's own call
        self.function = job_starting_function(
            self,
            "ApiFunction",
            handler="functions.handlers.api.handler",
            description="tonematch HTTPS API (FastAPI through Mangum)",
            timeout_s=29,
            settings=settings,
            bucket=bucket,
            database=database,
            state_machine=state_machine,
            delete_objects=True,
        )
        # Tokens are signed with one key for every instance of the function (without it each instance
        # would make its own: a token from one refused by the next, users logged out at random).
        self.jwt_secret = secretsmanager.Secret(
            self,
            "JwtSecret",
            description="tonematch API: HMAC key of access/refresh tokens and signed URLs",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
        )
        self.jwt_secret.grant_read(self.function)
        self.function.add_environment("TONEMATCH_JWT_SECRET_ARN", self.jwt_secret.secret_arn)

        self.api = apigw.HttpApi(
            self,
            "HttpApi",
            description="tonematch HTTPS API",
            default_integration=integrations.HttpLambdaIntegration("Lambda", self.function),
            cors_preflight=apigw.CorsPreflightOptions(
                allow_origins=list(settings.cors_origins),
                allow_methods=[
                    apigw.CorsHttpMethod.GET,
                    apigw.CorsHttpMethod.POST,
                    apigw.CorsHttpMethod.PUT,
                    apigw.CorsHttpMethod.DELETE,
                    apigw.CorsHttpMethod.OPTIONS,
                ],
                allow_headers=["authorization", "content-type"],
                max_age=Duration.hours(1),
            ),
        )
        access_logs = logs.LogGroup(
            self, "AccessLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        stage = self.api.default_stage.node.default_child  # CfnStage
        stage.access_log_settings = apigw.CfnStage.AccessLogSettingsProperty(
            destination_arn=access_logs.log_group_arn, format=ACCESS_LOG_FORMAT
        )
        stage.default_route_settings = apigw.CfnStage.RouteSettingsProperty(
            throttling_rate_limit=settings.api_rate_limit,
            throttling_burst_limit=settings.api_burst_limit,
            detailed_metrics_enabled=True,
        )
        self.url = self.api.api_endpoint
