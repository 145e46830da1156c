"""The job pipeline: one declarative definition, its step functions, and the local runner."""
