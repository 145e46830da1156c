"""Fixtures for the console tests: Debian's chromium through Playwright (never a downloaded
browser), a real tonematch service on a free loopback port, test audio, and screenshots."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts" / "console"
LAPTOP = {"width": 1366, "height": 860}
PHONE = {"width": 390, "height": 844}
EMAIL = "musician@example.com"
PASSWORD = "correct horse battery"
JWT_SECRET = "console-test-secret-0123456789abcdef"


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport=LAPTOP, accept_downloads=True)
    pg = ctx.new_page()
    pg.set_default_timeout(20_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # the console's own CSP must never block what it does
    pg.on("console", lambda m: errors.append(m.text)
          if m.type == "error" and "Security Policy" in m.text else None)
    pg.js_errors = errors  # type: ignore[attr-defined]
    yield pg
    ctx.close()
    assert not errors, f"JavaScript errors in the console: {errors}"


def shot(page, name: str, *, phone: bool = True) -> None:
    """Full-page screenshots at laptop and phone sizes into tests/artifacts/console/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    page.set_viewport_size(LAPTOP)
    page.wait_for_timeout(250)  # plots re-render on resize (debounced)
    page.screenshot(path=str(ARTIFACTS / f"{name}-laptop.png"), full_page=True)
    if phone:
        page.set_viewport_size(PHONE)
        page.wait_for_timeout(250)
        page.screenshot(path=str(ARTIFACTS / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(size or LAPTOP)
    page.wait_for_timeout(250)


# ---- audio ------------------------------------------------------------------------------------
def write_music(path: Path, seconds: float, *, seed: int, bright: bool, sr: int = 44100,
                level_db: float = -18.0) -> Path:
    """A few seconds of chord-like stereo 'music' with a tilt (bright or dark) and some dynamics."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = np.zeros_like(t)
    for k, f in enumerate((110.0, 220.0, 277.2, 329.6, 440.0, 880.0, 1760.0, 3520.0)):
        amp = (1.0 if bright else 2.0) / (k + 1) ** (0.5 if bright else 1.2)
        x += amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28))
    x += (0.05 if bright else 0.01) * rng.standard_normal(t.size)
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t) ** 2
    x *= 10 ** (level_db / 20) / (np.sqrt(np.mean(x**2)) + 1e-12)
    side = 0.2 * np.roll(x, 37)
    stereo = np.stack([x + side, x - side], axis=1).astype(np.float32)
    sf.write(path, np.clip(stereo, -0.99, 0.99), sr, subtype="PCM_16")
    return path


@dataclass
class Files:
    reference: Path
    target: Path
    short_target: Path
    not_audio: Path
    silent: Path


@pytest.fixture(scope="session")
def audio_files(tmp_path_factory) -> Files:
    d = tmp_path_factory.mktemp("audio")
    bad = d / "notes.wav"  # named like audio, isn't
    bad.write_text("These are my mixing notes, not a recording.\n" * 20)
    silent = d / "empty-bounce.wav"  # a valid WAV of digital silence: accepted, then the analysis refuses it
    sf.write(silent, np.zeros((44100 * 3, 2), dtype=np.float32), 44100, subtype="PCM_16")
    return Files(
        reference=write_music(d / "reference.wav", 4.0, seed=1, bright=True, level_db=-12.0),
        target=write_music(d / "my-mix.wav", 4.0, seed=2, bright=False, level_db=-22.0),
        short_target=write_music(d / "verse.wav", 2.0, seed=3, bright=False, level_db=-20.0),
        not_audio=bad,
        silent=silent,
    )


# ---- the service ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVER_CODE = """
import json, sys
from pathlib import Path
import uvicorn
from functions.settings import Settings
from functions.api.app import create_app
kw = json.loads(sys.argv[1])
kw["data_dir"] = Path(kw["data_dir"])
uvicorn.run(create_app(Settings(**kw)), host="127.0.0.1", port=kw.pop("_port", None) or int(sys.argv[2]),
            log_level="warning")
"""


@dataclass
class Service:
    url: str
    data_dir: Path
    settings_kw: dict
    proc: subprocess.Popen
    user_id: str
    log: Any

    def token(self, kind: str, ttl_s: int, user_id: str | None = None) -> str:
        from functions.api.auth import issue_token

        return issue_token(JWT_SECRET, user_id or self.user_id, kind, ttl_s)


def start_service(data_dir: Path) -> Service:
    """`create_app(settings)` under uvicorn in its own process, with the data dir given, one user, small
    multipart parts (so the test files go up in parts) and a generous rate limit."""
    from functions.api.auth import hash_password
    from functions.pipeline.context import context_from_settings
    from functions.settings import Settings

    port = _free_port()
    kw = {"data_dir": str(data_dir), "public_url": f"http://127.0.0.1:{port}", "jwt_secret": JWT_SECRET,
          "multipart_threshold_bytes": 512 * 1024, "multipart_part_bytes": 256 * 1024,
          "rate_limit_per_s": 1000.0, "rate_burst": 5000, "workers": 1}
    ctx = context_from_settings(Settings(**{**kw, "data_dir": Path(data_dir)}))
    user = ctx.status.create_user(EMAIL, hash_password(PASSWORD))
    log = open(data_dir / "server.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-c", SERVER_CODE, json.dumps(kw), str(port)], cwd=REPO,
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.close()
            tail = (data_dir / "server.log").read_text()[-4000:]
            raise RuntimeError("tonematch service did not start:\n" + tail)
        time.sleep(0.2)
    return Service(url=url, data_dir=data_dir, settings_kw=kw, proc=proc, user_id=user["id"], log=log)


def stop_service(svc: Service) -> None:
    svc.proc.terminate()
    try:
        svc.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        svc.proc.kill()
    svc.log.close()


@pytest.fixture(scope="session")
def service(tmp_path_factory):
    try:
        from functions.api.app import create_app  # noqa: F401
    except ImportError as exc:  # the service is built by another part
        pytest.skip(f"the API is not importable yet: {exc}")
    svc = start_service(tmp_path_factory.mktemp("tonematch-data"))
    yield svc
    stop_service(svc)


def wait_position_past(page, seconds: float, timeout_s: float = 20.0) -> float:
    """Wait until the player's position passes `seconds` (polled from Python: the console's CSP
    forbids the eval that wait_for_function needs)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pos = float(page.get_attribute("#player", "data-position") or 0)
        if pos > seconds:
            return pos
        page.wait_for_timeout(50)
    raise AssertionError(f"the player did not get past {seconds} s")


def login(page, base_url: str, email: str = EMAIL, password: str = PASSWORD) -> None:
    page.goto(base_url + "/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector("#view-new:not([hidden])")
