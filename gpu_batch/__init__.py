"""AWS Batch container: renders one segment S3→S3 with the engine, on the GPU where one is present."""

from engine.threads import single_blas_thread

single_blas_thread()  # before the entrypoint loads numpy (see engine.threads)
