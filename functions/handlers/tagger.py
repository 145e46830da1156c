"""Tags each new object of the data bucket with its lifecycle class (``tonematch-class``), since
keys start with the owner's id and S3 lifecycle rules only filter by key prefix or tag.

``{user}/audio/raw/...`` → raw, ``{user}/audio/processed/...`` → processed, ``{user}/work/...`` → work,
``drop/...`` → drop; anything else (viz, presets, IRs) keeps no class and is never expired.
The event's key is URL-encoded by S3 (``a b.wav`` arrives as ``a+b.wav``, ``a+b.wav`` as ``a%2Bb.wav``)
and decoded here, or a dropped file with such a name would never be tagged, so never expire.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote_plus

from functions.handlers._runtime import logger
from functions.handlers._tracing import tracer

TAG = os.environ.get("TONEMATCH_CLASS_TAG", "tonematch-class")


def object_class(key: str) -> str | None:
    """The lifecycle class of ``key`` (module docstring), or None."""
    parts = key.split("/")
    if parts[0] == "drop" and len(parts) > 1:
        return "drop"
    if len(parts) >= 4 and parts[1] == "audio" and parts[2] in ("raw", "processed"):
        return parts[2]
    if len(parts) >= 3 and parts[1] == "work":
        return "work"
    return None


_s3 = None


def s3_client():
    global _s3
    if _s3 is None:
        import boto3

        _s3 = boto3.client("s3", endpoint_url=os.environ.get("TONEMATCH_S3_ENDPOINT_URL") or None)
    return _s3


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict, context: Any) -> dict:
    detail = event.get("detail") or {}
    bucket, key = detail["bucket"]["name"], unquote_plus(detail["object"]["key"])
    cls = object_class(key)
    if cls is None:
        return {"key": key, "class": None}
    s3 = s3_client()
    try:
        tags = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    except s3.exceptions.NoSuchKey:
        logger.info("object gone before tagging", extra={"key": key})
        return {"key": key, "class": None, "gone": True}
    tags = [t for t in tags if t["Key"] != TAG] + [{"Key": TAG, "Value": cls}]
    s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": tags})
    return {"key": key, "class": cls}
