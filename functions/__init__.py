"""The tonematch service: API app, pipeline steps, stores, local runner and Lambda handlers."""
