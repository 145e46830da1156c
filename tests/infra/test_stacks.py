"""Template assertions on the synthesised app: every resource the issue asks for, encryption, and
least-privilege IAM (no wildcard actions on data resources)."""

from __future__ import annotations

import json

import pytest

from functions.pipeline.definition import PIPELINE

pytestmark = pytest.mark.cdk


def _statements(synth, suffix=None):
    for name, policy in synth.resources("AWS::IAM::Policy", suffix).items():
        for st in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            yield name, actions, st.get("Resource"), st


def test_six_stacks(synth):
    assert sorted(n.split("-")[-1] for n in synth.templates) == [
        "Api",
        "Database",
        "DropFolder",
        "Monitoring",
        "Pipeline",
        "Storage",
    ]
    print(f"synth took {synth.seconds:.1f} s")


def test_data_bucket_is_private_encrypted_tls_only_with_lifecycle_and_eventbridge(synth):
    buckets = synth.resources("AWS::S3::Bucket", "Storage")
    data = next(b for k, b in buckets.items() if "Data" in k)["Properties"]
    assert data["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    sse = data["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    (notify,) = synth.resources("Custom::S3BucketNotifications", "Storage").values()
    assert notify["Properties"]["NotificationConfiguration"] == {"EventBridgeConfiguration": {}}
    rules = {r["Id"]: r for r in data["LifecycleConfiguration"]["Rules"]}
    assert rules["raw-audio"]["TagFilters"] == [{"Key": "tonematch-class", "Value": "raw"}]
    assert rules["raw-audio"]["ExpirationInDays"] == 180
    assert rules["processed-audio"]["Transitions"][0]["StorageClass"] == "INTELLIGENT_TIERING"
    assert rules["work-files"]["ExpirationInDays"] == 7
    assert rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1
    policies = synth.resources("AWS::S3::BucketPolicy", "Storage")
    denies = [
        st
        for p in policies.values()
        for st in p["Properties"]["PolicyDocument"]["Statement"]
        if st["Effect"] == "Deny"
        and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
    ]
    assert len(denies) == len(buckets), "every bucket refuses plain HTTP"


def test_database_postgres_iam_auth_behind_proxy_with_secret_and_migrations(synth):
    db = next(iter(synth.resources("AWS::RDS::DBInstance", "Database").values()))["Properties"]
    assert db["Engine"] == "postgres" and db["StorageEncrypted"] is True
    assert db["EnableIAMDatabaseAuthentication"] is True and db["PubliclyAccessible"] is False
    proxy = next(iter(synth.resources("AWS::RDS::DBProxy", "Database").values()))["Properties"]
    assert proxy["RequireTLS"] is True and proxy["Auth"][0]["IAMAuth"] == "REQUIRED"
    assert synth.resources("AWS::SecretsManager::Secret", "Database")
    assert synth.resources("AWS::SecretsManager::RotationSchedule", "Database")
    (mig,) = synth.resources("Custom::TonematchMigrations", "Database").values()
    assert len(mig["Properties"]["MigrationsHash"]) == 64
    fns = synth.resources("AWS::Lambda::Function", "Database")
    assert any(f["Properties"]["Handler"] == "functions.handlers.migrate.on_event" for f in fns.values())
    assert synth.resources("AWS::EC2::FlowLog", "Database")


def test_api_http_lambda_mangum_throttled_cors_access_logs(synth):
    (api,) = synth.resources("AWS::ApiGatewayV2::Api", "Api").values()
    assert api["Properties"]["ProtocolType"] == "HTTP"
    assert "authorization" in api["Properties"]["CorsConfiguration"]["AllowHeaders"]
    (stage,) = synth.resources("AWS::ApiGatewayV2::Stage", "Api").values()
    routes = stage["Properties"]["DefaultRouteSettings"]
    assert routes["ThrottlingRateLimit"] == 50 and routes["ThrottlingBurstLimit"] == 100
    assert "$context.requestId" in stage["Properties"]["AccessLogSettings"]["Format"]
    fns = synth.resources("AWS::Lambda::Function", "Api")
    (fn,) = [f for f in fns.values() if f["Properties"]["Handler"] == "functions.handlers.api.handler"]
    assert fn["Properties"]["TracingConfig"]["Mode"] == "Active"
    assert "TONEMATCH_STATE_MACHINE_ARN" in fn["Properties"]["Environment"]["Variables"]


def _definition(synth) -> dict:
    (sm,) = synth.resources("AWS::StepFunctions::StateMachine", "Pipeline").values()
    parts = sm["Properties"]["DefinitionString"]["Fn::Join"][1]
    # tokens (ARNs, names) sit inside JSON strings; any placeholder text keeps the JSON valid
    return json.loads("".join(p if isinstance(p, str) else "x" for p in parts))


def test_state_machine_is_generated_from_the_pipeline_definition(synth):
    asl = _definition(synth)
    states = asl["States"]
    top = [n.name for n in PIPELINE.nodes]
    for name in top:
        assert name in states or f"{name}Where" in states, name
    par = states["Analyze"]
    assert [b["StartAt"] for b in par["Branches"]] == ["AnalyzeReference", "AnalyzeTarget"]
    retry = states["Invert"]["Retry"][0]
    assert (retry["IntervalSeconds"], retry["BackoffRate"], retry["MaxAttempts"]) == (2, 2, 5)
    assert "TransientError" in retry["ErrorEquals"]
    for name in (
        "Analyze",
        "Invert",
        "PlanSegments",
        "RenderSegments",
        "RenderSegmentsOnLambda",
        "Merge",
        "Finalize",
    ):
        (catch,) = states[name]["Catch"]
        assert catch["ErrorEquals"] == ["States.ALL"] and states[catch["Next"]]["Next"] == "MarkFailed"
    assert states["MarkFailed"]["Next"] == "SendToDeadLetterQueue"
    assert states["SendToDeadLetterQueue"]["Next"] == "JobFailed" and states["JobFailed"]["Type"] == "Fail"
    choice = states["RenderSegmentsWhere"]
    assert choice["Choices"][0] == {
        "Variable": "$.plan.segments[1]",
        "IsPresent": True,
        "Next": "RenderSegments",
    }
    batch = states["RenderSegments"]["ItemProcessor"]["States"]["RenderSegmentsJob"]
    assert batch["Resource"].endswith(":states:::batch:submitJob.sync")
    env = {e["Name"] for e in batch["Parameters"]["ContainerOverrides"]["Environment"]}
    assert env == {"TONEMATCH_EVENT", "TONEMATCH_RESULT_KEY", "TONEMATCH_STEP_HANDLER"}
    assert states["RenderSegments"]["ItemProcessor"]["ProcessorConfig"]["Mode"] == "INLINE"


def test_batch_gpu_compute_queue_and_job_definition(synth):
    (ce,) = synth.resources("AWS::Batch::ComputeEnvironment", "Pipeline").values()
    res = ce["Properties"]["ComputeResources"]
    assert res["Ec2Configuration"][0]["ImageType"] == "ECS_AL2023_NVIDIA"
    assert all(t.startswith(("g5.", "g6.")) for t in res["InstanceTypes"]) and res["MinvCpus"] == 0
    assert res["Type"] == "EC2"  # spot only when context tonematch:spot is true
    (jd,) = synth.resources("AWS::Batch::JobDefinition", "Pipeline").values()
    props = jd["Properties"]
    gpu = [r for r in props["ContainerProperties"]["ResourceRequirements"] if r["Type"] == "GPU"]
    assert gpu == [{"Type": "GPU", "Value": "1"}]
    on_exit = props["RetryStrategy"]["EvaluateOnExit"]
    assert {"Action": "RETRY", "OnExitCode": "3"} in on_exit and {
        "Action": "EXIT",
        "OnExitCode": "2",
    } in on_exit
    assert synth.resources("AWS::Batch::JobQueue", "Pipeline")


def test_drop_folder_eventbridge_sqs_dlq_partial_batch(synth):
    (rule,) = [r for r in synth.resources("AWS::Events::Rule", "DropFolder").values()]
    assert rule["Properties"]["EventPattern"]["detail"]["object"]["key"] == [{"prefix": "drop/"}]
    queues = synth.resources("AWS::SQS::Queue", "DropFolder")
    main = next(q for k, q in queues.items() if "DropQueue" in k and "Dead" not in k)
    assert main["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 5
    (mapping,) = synth.resources("AWS::Lambda::EventSourceMapping", "DropFolder").values()
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_monitoring_dashboard_and_alarms(synth):
    assert synth.resources("AWS::CloudWatch::Dashboard", "Monitoring")
    alarms = synth.resources("AWS::CloudWatch::Alarm", "Monitoring")
    names = " ".join(alarms)
    for what in (
        "JobsFailed",
        "JobsTimedOut",
        "JobsRetried",
        "JobDurationHigh",
        "BatchJobsFailed",
        "PipelineDLQNotEmpty",
        "DropFolderDLQNotEmpty",
        "ApiErrors",
        "RenderSegmentErrors",
    ):
        assert what in names, what
    dash = next(iter(synth.resources("AWS::CloudWatch::Dashboard", "Monitoring").values()))
    body = json.dumps(dash["Properties"]["DashboardBody"])
    for metric in ("JobsQueued", "StepTransientErrors", "stft_dist", "lufs_err", "ExecutionTime"):
        assert metric in body, metric


def test_queues_and_topics_encrypted(synth):
    for name, q in synth.resources("AWS::SQS::Queue").items():
        assert q["Properties"].get("SqsManagedSseEnabled") or q["Properties"].get("KmsMasterKeyId"), name
    for name, t in synth.resources("AWS::SNS::Topic").items():
        assert t["Properties"].get("KmsMasterKeyId"), name


def test_least_privilege_no_wildcard_actions_on_data(synth):
    data_services = ("s3:", "kms:", "sqs:", "rds-db:", "states:", "dynamodb:", "secretsmanager:")
    offenders = []
    for name, actions, resource, _ in _statements(synth):
        for action in actions:
            if action == "*" or (action.startswith(data_services) and "*" in action):
                offenders.append((name, action, resource))
    assert offenders == []


def test_step_lambdas_read_and_write_only_the_data_bucket(synth):
    for name, actions, resource, _ in _statements(synth, "Pipeline"):
        if any(a.startswith("s3:") for a in actions):
            text = json.dumps(resource)
            assert "tonematch-test-data-" in text, (name, actions, text)


def test_every_tonematch_lambda_settles_its_settings_under_tmp_and_the_api_shares_one_jwt_key(synth):
    """Settings.resolved() writes ``{data_dir}/jwt_secret`` when no JWT secret is configured; on Lambda
    only /tmp is writable (the default ``./data`` is the read-only /var/task), so every function needs
    a data dir there, and the API needs one signing key for all its instances (Secrets Manager)."""
    from pathlib import Path

    from functions.settings import Settings

    checked = []
    for name, fn in synth.resources("AWS::Lambda::Function").items():
        props = fn["Properties"]
        if not str(props.get("Handler", "")).startswith("functions."):
            continue
        env = (props.get("Environment") or {}).get("Variables") or {}
        settings = Settings.from_env({k: v for k, v in env.items() if isinstance(v, str)})
        data_dir = Path(settings.data_dir)
        assert data_dir.is_absolute() and Path("/tmp") in data_dir.parents, (name, str(data_dir))
        checked.append(props["Handler"])
    assert {"functions.handlers.steps.handler", "functions.handlers.batch_result.handler"} <= set(checked)

    (api,) = [
        f
        for f in synth.resources("AWS::Lambda::Function", "Api").values()
        if f["Properties"]["Handler"] == "functions.handlers.api.handler"
    ]
    arn = api["Properties"]["Environment"]["Variables"].get("TONEMATCH_JWT_SECRET_ARN")
    assert isinstance(arn, dict) and "Ref" in arn, arn
    assert synth.template("Api")["Resources"][arn["Ref"]]["Type"] == "AWS::SecretsManager::Secret"
    readers = [
        actions
        for _, actions, resource, _ in _statements(synth, "Api")
        if resource == arn and "secretsmanager:GetSecretValue" in actions
    ]
    assert readers, "the API function may not read its JWT secret"


def test_batch_render_container_gets_a_region_and_a_writable_data_dir(synth):
    """ECS on EC2 (AWS Batch) puts no AWS_REGION in the container (boto3 and the RDS IAM token need
    one), and the image runs as a user who may not write its working directory /app."""
    from pathlib import Path

    from functions.settings import Settings

    (jd,) = synth.resources("AWS::Batch::JobDefinition", "Pipeline").values()
    env = {e["Name"]: e["Value"] for e in jd["Properties"]["ContainerProperties"]["Environment"]}
    assert env.get("AWS_REGION") == {"Ref": "AWS::Region"}
    assert env["TONEMATCH_DB_IAM_AUTH"] == "1"
    data_dir = Path(Settings.from_env({k: v for k, v in env.items() if isinstance(v, str)}).data_dir)
    assert data_dir.is_absolute() and Path("/tmp") in data_dir.parents, str(data_dir)


def test_step_lambdas_have_scratch_space_for_the_largest_upload(synth):
    """Steps put whole files in /tmp (Lambda's default is 512 MB): Invert the target plus its
    gain-probe render, Merge every segment as float32 plus the merged file, some four times a 16-bit
    target. A 60-minute 24-bit stereo file alone is 1 GB: 'No space left on device' failed the job."""
    from functions.settings import MIB, Settings

    needed_mb = 4 * Settings().max_upload_bytes // MIB
    steps = [
        f
        for f in synth.resources("AWS::Lambda::Function", "Pipeline").values()
        if f["Properties"]["Handler"] == "functions.handlers.steps.handler"
    ]
    assert len(steps) == len(PIPELINE.tasks())
    for fn in steps:
        size = (fn["Properties"].get("EphemeralStorage") or {}).get("Size", 512)
        assert size >= needed_mb, (fn["Properties"]["Environment"]["Variables"]["TONEMATCH_STEP"], size)


def test_every_role_that_reads_objects_may_list_the_bucket(synth):
    """Without s3:ListBucket S3 answers a missing key with 403 AccessDenied instead of 404 NoSuchKey:
    the tagger's "object gone" branch and the Batch result loader's "no result written" one would
    raise and be retried instead."""
    reads: dict[str, bool] = {}
    for name, actions, _, _ in _statements(synth):
        if {"s3:GetObject", "s3:GetObjectTagging"} & set(actions):
            reads.setdefault(name, False)
    for name, actions, _, _ in _statements(synth):
        if "s3:ListBucket" in actions and name in reads:
            reads[name] = True
    assert reads and [name for name, lists in reads.items() if not lists] == []
