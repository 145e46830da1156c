"""AWS Lambda adapters: thin Powertools wrappers (logger with correlation ids, tracer, metrics) over
the service and the pipeline steps. Nothing here re-implements what the local path does."""

import contextlib

with contextlib.suppress(ImportError):  # the engine (dsp layer) is not on every function
    from engine.threads import single_blas_thread

    single_blas_thread()  # before a step handler loads numpy (see engine.threads)
