"""tonematch's AWS CDK app: storage, database, API, pipeline, drop folder and monitoring stacks."""
