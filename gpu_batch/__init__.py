"""AWS Batch container: renders one segment S3→S3 with the engine, on the GPU where one is present."""
