"""The Powertools tracer, apart from :mod:`functions.handlers._runtime` because importing the X-Ray
SDK costs about 0.8 s of CPU at cold start: the API handler, where cold starts are user-visible, relies
on Lambda's active tracing alone; the pipeline handlers add annotations (job id, step) through this."""

from __future__ import annotations

from aws_lambda_powertools import Tracer

from functions.handlers._runtime import SERVICE

tracer = Tracer(service=SERVICE)
