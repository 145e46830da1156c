"""An in-browser stand-in for the tonematch API (Playwright routes), for fast UI tests of the console
that do not need a running service: static files come from functions/api/console/, API calls are
answered from the small state kept here. The real service is exercised by test_console_e2e.py."""

from __future__ import annotations

import io
import json
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import soundfile as sf


def _when(s: str | None) -> datetime:
    t = datetime.fromisoformat(s or "2000-01-01T00:00:00Z")
    return t if t.tzinfo else t.replace(tzinfo=UTC)


CONSOLE_DIR = Path(__file__).resolve().parents[2] / "functions" / "api" / "console"
BASE = "http://console.test"


def wav_bytes(seconds: float = 2.0, freq_hz: float = 440.0, level_db: float = -12.0,
              sr: int = 22050) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    x = (10 ** (level_db / 20) * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, np.stack([x, x], axis=1), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def synthetic_viz(duration_s: float, points: int = 2000) -> dict:
    """A visualisation document shaped like engine/viz.py's, each series at the service's cap."""
    n = points
    hop = duration_s / n
    t = np.arange(n) * hop
    freqs = np.geomspace(20, 20000, 121)
    tilt = -3.0 * np.log2(freqs / 1000)
    rng = np.random.default_rng(0)
    st = -14 + 3 * np.sin(t / 37) + rng.normal(0, 1, n)
    f0 = 220 * 2 ** (np.sin(t / 11) / 12)
    voiced = (np.sin(t / 5) > -0.3)
    edges = np.geomspace(20, 20000, 9)
    r = lambda a: [round(float(v), 2) for v in a]  # noqa: E731
    return {
        "spectrum": {"freqs_hz": r(freqs), "target_db": r(tilt - 20 + rng.normal(0, 1, freqs.size)),
                     "reference_db": r(tilt - 18),
                     "result_db": r(tilt - 18.5 + rng.normal(0, .5, freqs.size))},
        "lufs_trajectory": {"hop_s": hop, "target": r(st - 4), "result": r(st)},
        "gain_reduction": {"hop_s": hop, "db": r(np.abs(rng.normal(0, 1.5, n)))},  # positive = reduction
        "f0": {"hop_s": hop, "target_hz": r(np.where(voiced, f0, 0)),
               "result_hz": r(np.where(voiced, f0 * 1.01, 0))},
        "mid_side": {"band_edges_hz": r(edges), "target_mid_db": r(-20 - np.arange(8)),
                     "target_side_db": r(-32 - np.arange(8)), "result_mid_db": r(-19 - np.arange(8)),
                     "result_side_db": r(-28 - np.arange(8)), "reference_mid_db": r(-19 - np.arange(8)),
                     "reference_side_db": r(-27 - np.arange(8))},
    }


OPTIONS = {
    "options": {
        "target_lufs": {"type": "number", "default": None, "min": -40, "max": -5, "unit": "LUFS",
                        "description": "Default: the reference's loudness."},
        "ceiling_dbtp": {"type": "number", "default": -1.0, "min": -9, "max": 0, "unit": "dBTP"},
        "intensity": {"type": "number", "default": 1.0, "min": 0, "max": 1, "unit": ""},
        "output_format": {"type": "string", "default": "wav24", "choices": ["wav16", "wav24", "flac"]},
        "exclude": {"type": "array", "default": [], "choices": ["eq", "stereo", "limiter"]},
        "segment_s": {"type": "number", "default": 60, "min": 10, "max": 600, "unit": "s"},
        # as the service has it: a range, no choices (the console offers the common rates)
        "output_sample_rate_hz": {"default": None, "unit": "Hz", "min": 8000, "max": 192000,
                                  "note": "sample rate of the result; default: the target's"},
    }
}


@dataclass
class MockApi:
    """State of the fake service; tweak the fields in a test to script behaviour."""

    viz: dict = field(default_factory=lambda: synthetic_viz(180.0, 300))
    fail_job: bool = False
    fail_error: str = "tgt_key: the audio is silent"  # the failed job's error
    job_warnings: list[str] = field(default_factory=list)
    polls_to_finish: int = 3
    expire_after_login: bool = False
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    jobs: dict[str, dict] = field(default_factory=dict)
    presets: dict[str, dict] = field(default_factory=dict)
    objects: dict[str, bytes] = field(default_factory=dict)
    refresh_ok: bool = True
    max_upload_bytes: int = 2048 * 1024 * 1024
    reject_target: str | None = None  # a reason: POST /jobs refuses the target as the service's probe would
    multipart: bool = False  # uploads are signed as two parts, joined by POST /uploads/complete
    complete_error: str | None = None  # a reason: POST /uploads/complete refuses the parts
    complete_conflict: bool = False  # POST /uploads/complete says an earlier complete went through
    hold_puts: int = 0  # this many upload PUTs are left unanswered (in `held`), as a stalled connection
    hold: dict[str, int] = field(default_factory=dict)  # {"POST /presets": n}: the next n wait for release()
    held: list = field(default_factory=list)
    _n: int = 0

    def install(self, page) -> None:
        page.route(re.compile(r"^http://console\.test/.*"), self._handle)

    def _json(self, route, obj, status=200):
        route.fulfill(status=status, content_type="application/json", body=json.dumps(obj))

    def _err(self, route, status, code, message, detail=None):
        self._json(route, {"code": code, "message": message, "detail": detail}, status)

    def release(self) -> None:
        """Answer the requests held back by `hold` (as if their connection came unstuck)."""
        held, self.held = self.held, []
        for route in held:
            self._handle(route, route.request, first_time=False)

    def _handle(self, route, request, first_time=True):
        url = request.url[len(BASE):]
        path = url.split("?")[0]
        method = request.method
        body = None
        if request.post_data and "json" in (request.headers.get("content-type") or ""):
            body = json.loads(request.post_data)
        if first_time:
            self.calls.append((method, path, body))
            if self.hold.get(f"{method} {path}", 0) > 0:
                self.hold[f"{method} {path}"] -= 1
                self.held.append(route)
                return None
        if method == "GET" and (path == "/" or path.startswith("/console/")):
            f = CONSOLE_DIR / ("index.html" if path == "/" else path[len("/console/"):])
            if not f.is_file():
                return route.fulfill(status=404, body="not found")
            ctype = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
            if f.suffix == ".js":
                ctype = "text/javascript"
            return route.fulfill(status=200, content_type=ctype, body=f.read_bytes())
        if path == "/auth/login" and len((body or {}).get("password") or "") > 1024:  # as pydantic words it
            why = "String should have at most 1024 characters"
            return self._err(route, 400, "INVALID_INPUT", f"password: {why}",
                             {"field": "password", "reason": why})
        if path == "/auth/login":
            if body and body.get("password") == "right":
                return self._json(route, {"access_token": "expired" if self.expire_after_login else "a1",
                                          "refresh_token": "r1"})
            return self._err(route, 401, "UNAUTHORIZED", "bad credentials")
        if path == "/auth/refresh":
            if self.refresh_ok:
                return self._json(route, {"access_token": "a2"})
            return self._err(route, 401, "UNAUTHORIZED", "refresh token expired")
        auth = request.headers.get("authorization", "")
        if path.startswith("/mock-put/") and self.hold_puts > 0:
            self.hold_puts -= 1
            self.held.append(route)
            return None
        if path.startswith("/mock-put/"):
            self.objects[path[len("/mock-put/"):]] = request.post_data_buffer or b""
            return route.fulfill(status=200, headers={"ETag": '"abc"'}, body="")
        if path.startswith("/mock-get/"):
            return route.fulfill(status=200, content_type="audio/wav", body=wav_bytes(
                seconds=8.0, freq_hz={"ref": 660.0, "tgt": 440.0, "out": 550.0}[path.rsplit("/", 1)[1]]))
        if path == "/mock-viz":
            return self._json(route, self.viz)
        if auth not in ("Bearer a1", "Bearer a2"):
            return self._err(route, 401, "UNAUTHORIZED", "token expired")
        if path == "/options":
            return self._json(route, OPTIONS)
        if path == "/uploads/sign" and body.get("size_bytes", 0) > self.max_upload_bytes:
            why = f"{body['size_bytes']} bytes is over the limit of {self.max_upload_bytes} bytes"
            return self._err(route, 400, "INVALID_INPUT", f"size_bytes: {why}",
                             {"field": "size_bytes", "reason": why})
        if path == "/uploads/sign":
            self._n += 1
            key = f"u1/audio/raw/{self._n}.{body['ext']}"
            if self.multipart:
                half = -(-body["size_bytes"] // 2)
                parts = [{"part_number": i, "put_url": f"{BASE}/mock-put/{key}.part{i}"} for i in (1, 2)]
                return self._json(route, {
                    "key": key, "expires": 900, "content_type": body["content_type"], "multipart": True,
                    "upload_id": f"up{self._n}", "part_size_bytes": half, "parts": parts})
            return self._json(route, {"put_url": f"{BASE}/mock-put/{key}", "key": key, "expires": 900,
                                      "content_type": body["content_type"], "multipart": False})
        if path == "/uploads/complete" and self.complete_error:
            return self._err(route, 400, "INVALID_INPUT", f"parts: {self.complete_error}",
                             {"field": "parts", "reason": self.complete_error})
        if path == "/uploads/complete" and self.complete_conflict:
            return self._err(route, 409, "CONFLICT", f"key {body['key']!r} is already complete",
                             {"field": "key", "key": body["key"]})
        if path == "/uploads/complete":
            return self._json(route, {"key": body["key"], "size_bytes": 0})
        if path == "/jobs" and method == "POST" and self.reject_target:
            return self._err(route, 400, "INVALID_INPUT", f"tgt_key: {self.reject_target}",
                             {"field": "tgt_key", "key": body["tgt_key"], "reason": self.reject_target})
        if path == "/jobs" and method == "POST":
            jid = f"job{len(self.jobs) + 1}"
            self.jobs[jid] = {"job_id": jid, "mode": body["mode"], "status": "PENDING", "progress": 0,
                              "polls": 0, "created_at": "2026-11-28T01:00:00Z", "opts": body.get("opts")}
            return self._json(route, {"job_id": jid})
        if path == "/jobs" and method == "GET":
            # newest first, `limit` of them, created strictly before `before` (as functions/service.py)
            q = parse_qs(urlsplit(request.url).query)
            limit = int(q.get("limit", ["50"])[0])
            jobs = sorted(self.jobs.values(), key=lambda j: _when(j.get("created_at")), reverse=True)
            if "before" in q:  # (the mock's ids are not uuids: ties are split by the list's order)
                at, after = _when(q["before"][0]), q.get("before_id", [None])[0]
                keep = [j for j in jobs if _when(j.get("created_at")) < at]
                if after in [j["job_id"] for j in jobs]:
                    ties = [j for j in jobs if _when(j.get("created_at")) == at]
                    keep = ties[[j["job_id"] for j in ties].index(after) + 1:] + keep
                jobs = keep
            jobs = [{k: v for k, v in j.items() if k != "polls"} for j in jobs[:limit]]
            return self._json(route, {"jobs": jobs})
        m = re.fullmatch(r"/jobs/([^/]+)", path)
        if m and method == "GET" and m.group(1) not in self.jobs:
            return self._err(route, 404, "NOT_FOUND", f"job {m.group(1)!r} not found")
        if m and method == "GET":
            j = self.jobs[m.group(1)]
            j["polls"] += 1
            k = j["polls"]
            states = ["PENDING", "ANALYZING", "RENDERING"]
            if k <= self.polls_to_finish:
                j.update(status=states[min(k - 1, 2)], progress=int(100 * (k - 1) / self.polls_to_finish))
            elif self.fail_job:
                j.update(status="FAILED", last_step="AnalyzeTarget", error=self.fail_error)
            else:
                j.update(status="COMPLETED", progress=100, download_url=f"{BASE}/mock-get/out",
                         warnings=list(self.job_warnings),
                         viz_urls={"viz": f"{BASE}/mock-viz"},
                         metrics={"stft_dist": 0.71, "mel_dist": 1.9, "lufs_err": 0.1, "tp_db": -1.02,
                                  "artifacts_rate": 0.0012},
                         inputs={"reference_url": f"{BASE}/mock-get/ref",
                                 "target_url": f"{BASE}/mock-get/tgt"},
                         loudness={"reference_lufs": -10.0, "target_lufs": -18.0, "result_lufs": -10.1},
                         preset_url=f"{BASE}/mock-viz", eq_text_url=f"{BASE}/mock-viz",
                         params={"eq": [{"type": "high_shelf", "f_hz": 8000.0, "q": 0.71, "gain_db": 2.5},
                                        {"type": "peaking", "f_hz": 250.0, "q": 1.2, "gain_db": -1.8}],
                                 "stereo": {"width": 1.12}, "lufs": {"target_db": -10.0, "gain_db": 7.9},
                                 "limiter": {"tp_db": -1.0, "lookahead_ms": 1.5, "release_ms": 60.0},
                                 "notes": {"eq": "2 bands fitted", "stereo_width": "kept",
                                           "lufs": "target = the reference's loudness"}})
            return self._json(route, {k: v for k, v in j.items() if k != "polls"})
        if path == "/presets" and method == "GET":
            return self._json(route, list(self.presets.values()))
        if path == "/presets" and method == "POST":
            if any(p["name"] == body["name"] for p in self.presets.values()):
                return self._err(route, 409, "CONFLICT", "name taken")
            pid = f"p{len(self.presets) + 1}"
            self.presets[pid] = {"id": pid, "name": body["name"], "created_at": "2026-11-28T01:00:00Z",
                                 "mode": "A"}
            return self._json(route, self.presets[pid], 201)
        m = re.fullmatch(r"/presets/([^/]+)", path)
        if m and method == "PATCH":
            self.presets[m.group(1)]["name"] = body["name"]
            return self._json(route, self.presets[m.group(1)])
        if m and method == "DELETE":
            self.presets.pop(m.group(1), None)
            return route.fulfill(status=204, body="")
        if m and method == "GET":
            return self._json(route, {**self.presets[m.group(1)], "style_params": {"eq": []}})
        return self._err(route, 404, "NOT_FOUND", f"no route {method} {path}")
