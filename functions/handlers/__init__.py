"""AWS Lambda adapters: thin Powertools wrappers (logger with correlation ids, tracer, metrics) over
the service and the pipeline steps. Nothing here re-implements what the local path does."""
