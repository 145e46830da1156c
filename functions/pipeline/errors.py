"""Error classes the pipeline's retry and failure paths are keyed on.

On AWS a Python exception's class name becomes the Step Functions error name, so these names appear
verbatim in the state machine's Retry/Catch rules (see :mod:`functions.pipeline.definition`).
"""

from __future__ import annotations


class TransientError(Exception):
    """A fault worth retrying: object-store 5xx, a dropped connection, a busy queue or database."""


class StepFailed(Exception):  # noqa: N818 -- the Step Functions error name in Catch rules and stored errors
    """A permanent failure of one step (bad input found late, a render that cannot succeed)."""
