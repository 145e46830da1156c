"""Database: VPC, RDS PostgreSQL (IAM auth) behind RDS Proxy, credentials in Secrets Manager, and the
service's migrations applied on every deploy that changes them (a custom resource Lambda)."""

from __future__ import annotations

from aws_cdk import CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra import assets
from infra.config import Settings
from infra.stacks.common import python_function

DB_NAME = "tonematch"
DB_USER = "tonematch"
DB_PORT = 5432


class DatabaseStack(Stack):
    """VPC + PostgreSQL + proxy + migrations."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=settings.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="app", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20
                ),
                ec2.SubnetConfiguration(
                    name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                ),
            ],
        )
        flow_logs = logs.LogGroup(
            self, "VpcFlowLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        self.vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs))
        # S3 traffic of Lambdas and Batch stays on the AWS network (and off the NAT bill).
        self.vpc.add_gateway_endpoint("S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3)

        #: every tonematch Lambda in the VPC and every Batch instance uses this group
        self.app_security_group = ec2.SecurityGroup(
            self,
            "AppSecurityGroup",
            vpc=self.vpc,
            allow_all_outbound=True,
            description="tonematch Lambdas and Batch renders (clients of the database proxy)",
        )
        db_security_group = ec2.SecurityGroup(
            self,
            "DatabaseSecurityGroup",
            vpc=self.vpc,
            allow_all_outbound=False,
            description="tonematch PostgreSQL",
        )

        self.instance = rds.DatabaseInstance(
            self,
            "Postgres",
            engine=rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_17_9),
            instance_type=ec2.InstanceType(settings.db_instance_type),
            vpc=self.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            security_groups=[db_security_group],
            database_name=DB_NAME,
            port=DB_PORT,
            credentials=rds.Credentials.from_generated_secret(DB_USER),
            iam_authentication=True,
            storage_encrypted=True,
            multi_az=settings.db_multi_az,
            allocated_storage=20,
            max_allocated_storage=200,
            backup_retention=Duration.days(7),
            deletion_protection=True,
            removal_policy=RemovalPolicy.SNAPSHOT,
            cloudwatch_logs_exports=["postgresql"],
            cloudwatch_logs_retention=logs.RetentionDays.ONE_MONTH,
            auto_minor_version_upgrade=True,
            enable_performance_insights=True,
            parameters={"rds.force_ssl": "1"},
        )
        assert self.instance.secret is not None
        self.secret = self.instance.secret
        self.instance.add_rotation_single_user(automatically_after=Duration.days(30))

        self.proxy = self.instance.add_proxy(
            "Proxy",
            secrets=[self.secret],
            vpc=self.vpc,
            iam_auth=True,
            require_tls=True,
            security_groups=[db_security_group],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            debug_logging=False,
        )
        db_security_group.add_ingress_rule(
            self.app_security_group, ec2.Port.tcp(DB_PORT), "tonematch apps to the proxy"
        )
        db_security_group.add_ingress_rule(
            db_security_group, ec2.Port.tcp(DB_PORT), "the proxy to the database"
        )
        db_security_group.add_egress_rule(
            db_security_group, ec2.Port.tcp(DB_PORT), "the proxy to the database"
        )

        #: what each client Lambda needs to reach the database (see functions/handlers/_runtime.py)
        self.client_environment = {
            "TONEMATCH_DATABASE_URL": f"postgresql://{DB_USER}@{self.proxy.endpoint}:{DB_PORT}/{DB_NAME}"
            "?sslmode=require",
            "TONEMATCH_DB_IAM_AUTH": "1",
        }

        service_layer = assets.layer(self, "service", settings.lambda_python, settings.python_runtime)
        self.migrator = python_function(
            self,
            "Migrator",
            handler="functions.handlers.migrate.on_event",
            settings=settings,
            layers=[service_layer],
            description="applies the status store's migrations on deploy",
            environment=self.client_environment,
            memory_mb=256,
            timeout_s=300,
            vpc=self.vpc,
            security_groups=[self.app_security_group],
        )
        self.proxy.grant_connect(self.migrator, DB_USER)
        provider = cr.Provider(
            self,
            "MigrationsProvider",
            on_event_handler=self.migrator,
            log_group=logs.LogGroup(
                self,
                "MigrationsProviderLogs",
                retention=logs.RetentionDays.ONE_MONTH,
                removal_policy=RemovalPolicy.DESTROY,
            ),
        )
        self.migrations = CustomResource(
            self,
            "Migrations",
            service_token=provider.service_token,
            resource_type="Custom::TonematchMigrations",
            properties={"MigrationsHash": assets.migrations_hash()},
        )
        self.migrations.node.add_dependency(self.proxy)
        self.migrations.node.add_dependency(self.instance)

    def grant_client(self, grantee) -> None:
        """Let ``grantee`` (a Lambda or role) connect through the proxy as the app user (IAM auth)."""
        self.proxy.grant_connect(grantee, DB_USER)
