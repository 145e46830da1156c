"""The drop folder: audio placed under ``drop/{user_id}/{batch}/`` starts a job.

A batch folder holds either ``reference.<ext>`` and ``target.<ext>``, or a ``manifest.json``
``{"reference": "a.wav", "target": "b.flac", "mode": "A", "opts": {...}}`` (or ``"preset_id"``
instead of ``"reference"``) naming files of the same folder. :func:`handle_object_created` is called
for every new object: by the local :class:`DropWatcher` (polling the local store) and by the S3 event
Lambda on AWS (prefix ``drop/``). What happens:

* unknown prefix or user, or a file name that is not ``reference.*``/``target.*``/``manifest.json``:
  ignored (``{"action": "ignored", "reason": ...}``), nothing written;
* a batch folder named with characters object keys do not take (anything but letters, digits, ``.``,
  ``_`` and ``-``; a space, for one): ``{"action": "rejected"}``, the reason written beside it in
  ``drop/{user_id}/{the name with those characters as _}.error.json``;
* only half of the pair present: ``{"action": "waiting", "missing": [...]}``;
* a reference/target that is not audio, a bad manifest, bad audio or options: the batch gets an
  ``error.json`` ``{code, message, detail}`` and ``{"action": "rejected"}``; the inputs stay (the
  same answer again, from a rescan or a re-delivered event, is neither rewritten nor audited);
* a complete pair: a job is created (idempotent: a re-delivered event returns the same job) and the
  batch gets ``job.json`` ``{job_id}``; ``{"action": "started" | "exists", "job_id": ...}``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import PurePosixPath
from typing import Any

from functions import service
from functions.pipeline.context import StepContext
from functions.service import AUDIO_TYPES, ServiceError
from functions.stores.objects import ObjectNotFoundError, check_key
from functions.stores.status import is_uuid

log = logging.getLogger("tonematch.drop")
ROLES = ("reference", "target")


def _write(ctx: StepContext, folder: str, name: str, doc: dict) -> None:
    ctx.objects.put_bytes(f"{folder}/{name}", json.dumps(doc, indent=2).encode(), "application/json")


def _answer_error(ctx: StepContext, where: str, name: str, folder: str, user_id: str | None,
                  err: ServiceError) -> dict:
    """Write ``err`` as ``where/name`` and audit it for ``folder``, unless that object already holds
    this very answer: a restart's rescan and a re-delivered S3 event would otherwise rewrite it and
    log it again each time."""
    body = err.body()
    try:
        same = json.loads(ctx.objects.get_bytes(f"{where}/{name}")) == json.loads(json.dumps(body))
    except (ObjectNotFoundError, ValueError):
        same = False
    if not same:
        _write(ctx, where, name, body)
        ctx.status.audit(user_id, "drop.rejected", folder, body)
    return {"action": "rejected", "folder": folder, **body}


def _reject(ctx: StepContext, folder: str, user_id: str | None, err: ServiceError) -> dict:
    return _answer_error(ctx, folder, "error.json", folder, user_id, err)


def _valid_key(key: str) -> bool:
    try:
        check_key(key)
    except ValueError:
        return False
    return True


def _reject_batch_name(ctx: StepContext, key: str, user_id: str) -> dict:
    """A batch folder name the store refuses: its files cannot be read or answered in place, so the
    error goes beside it, where the user looks."""
    folder = key.rsplit("/", 1)[0]
    batch = folder.split("/", 2)[2]
    err = service.invalid(
        batch, "only letters, digits, '.', '_' and '-' are accepted in a batch folder's name; rename it"
    )
    err.detail["key"] = key
    name = f"{re.sub(r'[^A-Za-z0-9._-]', '_', batch)}.error.json"
    return _answer_error(ctx, f"drop/{user_id}", name, folder, user_id, err)


def handle_object_created(key: str, ctx: StepContext) -> dict:
    """React to a new object ``key`` (see the module docstring); never raises for bad input."""
    parts = key.split("/")
    if len(parts) < 4 or parts[0] != "drop" or not all(parts):
        return {"action": "ignored", "reason": "not under drop/{user_id}/{batch}/", "key": key}
    user_id = parts[1]
    if not is_uuid(user_id) or ctx.status.get_user(user_id) is None:
        return {"action": "ignored", "reason": f"unknown user {user_id!r}", "key": key}
    folder, name = key.rsplit("/", 1)
    if not _valid_key(folder + "/job.json"):
        return _reject_batch_name(ctx, key, user_id)
    if not _valid_key(key):  # so no reference.*, target.* or manifest.json
        return {
            "action": "ignored",
            "reason": f"{name!r} is not reference.*, target.* or manifest.json",
            "key": key,
        }
    stem, _, ext = name.partition(".")
    if name != "manifest.json" and stem not in ROLES:
        return {
            "action": "ignored",
            "reason": f"{name!r} is not reference.*, target.* or manifest.json",
            "key": key,
        }
    if stem in ROLES and ext.lower() not in AUDIO_TYPES:
        return _reject(
            ctx,
            folder,
            user_id,
            service.invalid(name, f"not an audio file name; use one of .{', .'.join(sorted(AUDIO_TYPES))}"),
        )
    if ctx.objects.exists(f"{folder}/job.json"):
        doc = json.loads(ctx.objects.get_bytes(f"{folder}/job.json"))
        return {"action": "exists", "job_id": doc.get("job_id"), "folder": folder}

    files = {
        PurePosixPath(k).name: k for k in ctx.objects.list(folder + "/") if k.count("/") == key.count("/")
    }
    manifest: dict[str, Any] = {}
    if "manifest.json" in files:
        try:
            manifest = json.loads(ctx.objects.get_bytes(files["manifest.json"]))
            if not isinstance(manifest, dict):
                raise ValueError("must be a JSON object")
        except (ValueError, ObjectNotFoundError) as exc:
            return _reject(ctx, folder, user_id, service.invalid("manifest.json", f"malformed: {exc}"))
        wanted = {r: manifest.get(r) for r in ROLES if manifest.get(r) is not None}
        if "target" not in wanted or ("reference" not in wanted and not manifest.get("preset_id")):
            return _reject(
                ctx,
                folder,
                user_id,
                service.invalid(
                    "manifest.json", 'needs "target" and "reference" (or "preset_id") file names'
                ),
            )
        bad = [n for n in wanted.values() if not isinstance(n, str) or "/" in n]
        if bad:
            return _reject(ctx, folder, user_id, service.invalid("manifest.json", f"bad file names {bad}"))
    else:
        wanted = {}
        for fname in files:
            fstem, _, fext = fname.partition(".")
            if fstem in ROLES and fext.lower() in AUDIO_TYPES:
                wanted[fstem] = fname
        missing = [r for r in ROLES if r not in wanted]
        if missing:
            return {"action": "waiting", "missing": missing, "folder": folder}
    missing = [f"{r} ({n})" for r, n in wanted.items() if n not in files]
    if missing:
        return {"action": "waiting", "missing": missing, "folder": folder}
    try:
        job, created = service.create_job(
            ctx,
            user_id,
            mode=manifest.get("mode", "A"),
            tgt_key=files[wanted["target"]],
            ref_key=files[wanted["reference"]] if "reference" in wanted else None,
            preset_id=manifest.get("preset_id"),
            opts=manifest.get("opts"),
            source="drop",
        )
    except ServiceError as err:
        return _reject(ctx, folder, user_id, err)
    _write(ctx, folder, "job.json", {"job_id": job["id"], "status": job["status"]})
    if ctx.objects.exists(f"{folder}/error.json"):  # what an earlier, incomplete look refused
        ctx.objects.delete(f"{folder}/error.json")
    return {"action": "started" if created else "exists", "job_id": job["id"], "folder": folder}


class DropWatcher:
    """Polls the local store's ``drop/`` prefix every ``interval_s`` and hands each new object to
    :func:`handle_object_created` once its size has stopped changing (a copy in progress is not
    picked up half-written). An object whose size changes after it was handled (a copy that
    stalled longer than a poll, then went on) is handed over again once stable."""

    def __init__(self, ctx: StepContext, interval_s: float = 2.0) -> None:
        self.ctx = ctx
        self.interval_s = interval_s
        self._sizes: dict[str, int] = {}
        self._handled: dict[str, int | None] = {}  # key -> its size when handled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def scan(self) -> list[dict]:
        """One poll; returns the results of the objects handled now."""
        out = []
        for key in self.ctx.objects.list("drop/"):
            # one object must not stop the scan for everyone else: whatever goes wrong is logged
            size = None
            try:
                # a name the store refuses cannot be sized; handled at once (it only gets an error)
                size = self.ctx.objects.size(key) if _valid_key(key) else None
                if key in self._handled and self._handled[key] == size:
                    continue
                if size is not None and self._sizes.get(key) != size:
                    self._sizes[key] = size
                    continue
                self._handled[key] = size
                out.append(handle_object_created(key, self.ctx))
            except ObjectNotFoundError:
                continue
            except Exception:
                self._handled[key] = size
                log.exception("drop folder: %s", key)
        return out

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tonematch-drop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.scan()
            except Exception:
                log.exception("drop folder scan failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
