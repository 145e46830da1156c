"""The web console in Debian's chromium against a running tonematch service: the whole flow a
musician goes through, plus the ways it goes wrong (bad file, dropped upload, failed job, expired
session). Screenshots of each screen land in tests/artifacts/console/."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
import soundfile as sf

from tests.console.conftest import EMAIL, PASSWORD, login, shot, wait_position_past

pytestmark = [pytest.mark.browser, pytest.mark.slow]
JOB_TIMEOUT_MS = 240_000


def upload(page, selector: str, path, *, role: str) -> None:
    page.set_input_files(selector, str(path))
    page.wait_for_selector(f"[data-role={role}][data-state=done]", timeout=60_000)


def wait_job_done(page, timeout_ms: int = JOB_TIMEOUT_MS) -> str:
    page.wait_for_selector("#view-job[data-status=COMPLETED], #view-job[data-status=FAILED]",
                           timeout=timeout_ms)
    status = page.get_attribute("#view-job", "data-status")
    if status == "FAILED":
        pytest.fail("the job failed: " + page.inner_text("#job-error"))
    return status


def test_whole_flow(page, service, audio_files, tmp_path):
    base = service.url
    page.goto(base + "/")
    page.wait_for_selector("#view-login:not([hidden])")
    shot(page, "01-login")

    # wrong password: told in words, stays on the log-in screen
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill("not my password")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector("#login-error:not([hidden])")
    assert "don't match" in page.inner_text("#login-error")
    login(page, base)

    # options come from GET /options with units and ranges
    page.click("#opts-box summary")
    page.wait_for_selector("#opt-target_lufs")
    hint = page.inner_text("[data-opt=target_lufs]")
    assert "LUFS" in hint and "-40" in hint and "-5" in hint, hint
    assert "dBTP" in page.inner_text("[data-opt=ceiling_dbtp]")

    # reference goes up in parts (over the test's 512 KiB multipart threshold), with a progress bar
    puts: list[str] = []
    page.on("request", lambda r: puts.append(r.url) if r.method == "PUT" else None)
    upload(page, "#ref-file", audio_files.reference, role="reference")
    assert len(puts) >= 3, puts
    assert page.get_attribute("[data-role=reference] [role=progressbar]", "aria-valuenow") == "100"
    assert "reference.wav uploaded" in page.inner_text("#ref-msg")

    # a file that is not audio: a clear message, the reference upload is kept
    page.set_input_files("#tgt-file", str(audio_files.not_audio))
    page.wait_for_selector("[data-role=target][data-state=error]")
    msg = page.inner_text("#tgt-msg")
    assert "isn't audio we can read" in msg and "WAV, FLAC, AIFF, OGG, Opus, MP3" in msg, msg
    assert "reference upload is kept" in msg
    assert "reference.wav uploaded" in page.inner_text("#ref-msg")
    assert page.is_disabled("#start-btn")

    upload(page, "#tgt-file", audio_files.target, role="target")
    assert page.is_enabled("#start-btn")

    # an out-of-range option is refused in the browser, naming the option and its range
    page.fill("#opt-ceiling_dbtp", "3")
    page.click("#start-btn")
    err = page.inner_text("#new-error")
    assert "True-peak ceiling must be between -9 and 0 dBTP" in err, err
    assert page.get_attribute("#opt-ceiling_dbtp", "aria-invalid") == "true"
    page.fill("#opt-ceiling_dbtp", "-1.5")
    shot(page, "02-new-match")

    page.click("#start-btn")
    page.wait_for_selector("#view-job:not([hidden])")
    job_id = page.evaluate("location.hash").rsplit("/", 1)[1]
    page.wait_for_selector("#job-bar")
    shot(page, "03-job-running", phone=False)
    wait_job_done(page)

    # the level-matched A/B/reference player
    page.wait_for_selector("#player[data-state=ready]", timeout=60_000)
    gains = json.loads(page.get_attribute("#player", "data-gains"))
    assert set(gains) == {"original", "processed", "reference"}
    assert max(gains.values()) == pytest.approx(1.0) and min(gains.values()) < 1.0  # quieter one untouched
    page.click("#play")
    page.wait_for_selector("#player[data-state=playing]")
    wait_position_past(page, 0.3)
    before = float(page.get_attribute("#player", "data-position"))
    page.get_by_role("radio", name="Processed").click()
    assert page.get_attribute("#player", "data-active") == "processed"
    assert page.get_attribute("[data-src=processed]", "aria-checked") == "true"
    after = float(page.get_attribute("#player", "data-position"))
    assert after >= before  # switching keeps the position (no restart)
    page.keyboard.press("3")
    assert page.get_attribute("#player", "data-active") == "reference"
    page.click("#play")  # pause

    # plots drawn from the viz JSON
    page.wait_for_selector("#plots[data-rendered]")
    for key in ("spectrum", "lufs_trajectory", "gain_reduction", "mid_side"):
        d = page.eval_on_selector_all(f"#plot-{key} path.series", "ps => ps.map(p => p.getAttribute('d'))")
        assert d and all(len(x) > 20 for x in d), (key, d)
    labels = page.eval_on_selector_all("#plot-spectrum path.series", "ps => ps.map(p => p.dataset.label)")
    assert {"Target", "Reference", "Result"} <= set(labels), labels

    # metrics table
    metrics = page.inner_text("#metrics")
    for word in ("Loudness error", "True peak", "LUFS", "dBTP"):
        assert word in metrics, metrics
    shot(page, "04-result")

    # downloads: audio, preset JSON, EQ text
    with page.expect_download() as dl:
        page.get_by_role("link", name="Processed audio").click()
    audio_path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(audio_path)
    info = sf.info(str(audio_path))
    assert 3.5 < info.duration < 4.5
    with page.expect_download() as dl:
        page.get_by_role("link", name="Preset (JSON)").click()
    p = tmp_path / "preset.json"
    dl.value.save_as(p)
    assert "style_params" in json.loads(p.read_text())
    with page.expect_download() as dl:
        page.get_by_role("link", name=re.compile("EQ for Equalizer APO")).click()
    e = tmp_path / "eq.txt"
    dl.value.save_as(e)
    assert e.read_text().strip()

    # save as a preset; the same name twice is refused in words
    page.fill("#preset-name", "Bright master")
    page.click("#save-preset button")
    page.wait_for_selector("#save-msg.ok")
    page.fill("#preset-name", "Bright master")
    page.click("#save-preset button")
    page.wait_for_selector("#save-msg.err")
    assert "already have a preset" in page.inner_text("#save-msg")

    # jobs list, newest first
    page.get_by_role("link", name="Jobs").click()
    page.wait_for_selector(f"#jobs-table a[href='#/jobs/{job_id}']")
    assert "Done" in page.inner_text("#jobs-table tbody")
    shot(page, "05-jobs")

    # presets: rename, apply to a new recording, delete
    page.get_by_role("link", name="Presets").click()
    item = page.locator("#presets-list li[data-name='Bright master']")
    item.wait_for()
    item.get_by_role("button", name="Rename Bright master").click()
    item.get_by_label("New name").fill("Bright master v2")
    item.get_by_role("button", name="Save").click()
    page.wait_for_selector("#presets-list li[data-name='Bright master v2']")
    page.reload()
    item = page.locator("#presets-list li[data-name='Bright master v2']")
    item.wait_for()  # the rename reached the service
    shot(page, "06-presets")

    item.get_by_role("button", name="Apply Bright master v2 to a recording").click()
    page.wait_for_selector("#apply-box:not([hidden])")
    puts.clear()
    upload(page, "#apply-file", audio_files.short_target, role="apply")
    assert len(puts) == 1  # under the threshold: one signed PUT
    shot(page, "07-apply-preset", phone=False)
    page.click("#apply-btn")
    page.wait_for_selector("#view-job:not([hidden])")
    wait_job_done(page)
    page.wait_for_selector("#downloads a")

    page.get_by_role("link", name="Presets").click()
    item = page.locator("#presets-list li[data-name='Bright master v2']")
    item.wait_for()
    item.get_by_role("button", name="Delete Bright master v2").click()
    item.get_by_role("button", name="Yes, delete").click()
    item.wait_for(state="detached")
    page.reload()
    page.wait_for_selector("#view-presets[data-loaded]")
    assert page.locator("#presets-list li[data-name='Bright master v2']").count() == 0


def api_call(service, method: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(service.url + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {service.token('access', 300)}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def test_preset_management(page, service, audio_files, tmp_path):
    """Presets made elsewhere (here: POST /presets with style_params) are listed, renamed, downloaded,
    applied to a new recording and deleted from the console."""
    params = {"eq": [{"type": "high_shelf", "f_hz": 6000.0, "q": 0.7, "gain_db": 3.0}],
              "stereo": {"width": 1.1}, "lufs": {"target_db": -12.0},
              "limiter": {"tp_db": -1.0, "lookahead_ms": 1.5, "release_ms": 50.0}}
    api_call(service, "POST", "/presets", {"name": "Air lift", "style_params": params})
    login(page, service.url)
    page.get_by_role("link", name="Presets").click()
    item = page.locator("#presets-list li[data-name='Air lift']")
    item.wait_for()

    item.get_by_role("button", name="Rename Air lift").click()
    item.get_by_label("New name").fill("Air lift (podcast)")
    item.get_by_role("button", name="Save").click()
    item = page.locator("#presets-list li[data-name='Air lift (podcast)']")
    item.wait_for()
    names = [p["name"] for p in api_call(service, "GET", "/presets")["presets"]]
    assert "Air lift (podcast)" in names and "Air lift" not in names

    with page.expect_download() as dl:
        item.get_by_role("button", name="Download Air lift (podcast) as JSON").click()
    f = tmp_path / "preset.json"
    dl.value.save_as(f)
    doc = json.loads(f.read_text())
    assert doc["style_params"]["eq"][0]["f_hz"] == 6000.0

    item.get_by_role("button", name="Apply Air lift (podcast) to a recording").click()
    upload(page, "#apply-file", audio_files.short_target, role="apply")
    page.click("#apply-btn")
    page.wait_for_selector("#view-job:not([hidden])")
    job_id = page.evaluate("location.hash").rsplit("/", 1)[1]
    job = api_call(service, "GET", f"/jobs/{job_id}")
    assert job["preset_id"] and job["ref_key"] is None
    page.wait_for_selector("#view-job[data-status=COMPLETED], #view-job[data-status=FAILED]",
                           timeout=JOB_TIMEOUT_MS)  # a preset in use can't be deleted while running

    page.get_by_role("link", name="Presets").click()
    item = page.locator("#presets-list li[data-name='Air lift (podcast)']")
    item.get_by_role("button", name="Delete Air lift (podcast)").click()
    item.get_by_role("button", name="Keep it").click()  # changed my mind: still there
    item.get_by_role("button", name="Delete Air lift (podcast)").click()
    item.get_by_role("button", name="Yes, delete").click()
    item.wait_for(state="detached")
    assert all(p["name"] != "Air lift (podcast)" for p in api_call(service, "GET", "/presets")["presets"])


def test_failed_job_is_explained(page, service, audio_files):
    login(page, service.url)
    upload(page, "#ref-file", audio_files.reference, role="reference")
    upload(page, "#tgt-file", audio_files.silent, role="target")
    page.click("#start-btn")
    page.wait_for_selector("#view-job[data-status=FAILED]", timeout=JOB_TIMEOUT_MS)
    box = page.inner_text("#job-error")
    assert "The match stopped while listening to your target" in box, box
    assert "silent or too quiet" in box  # the service's reason, as it gave it
    assert "What to do: One of the files is silent" in box
    assert page.is_visible("#job-retry")
    assert page.locator("#job-steps li.failed").count() == 1
    shot(page, "08-job-failed")


def test_dropped_upload_resumes_without_resending_parts(page, service, audio_files):
    login(page, service.url)
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "PUT" else None)
    state = {"first_url": None, "aborted": 0}

    def drop_second_part(route, request):
        if request.method != "PUT":
            return route.continue_()
        if state["first_url"] is None:
            state["first_url"] = request.url
        if request.url != state["first_url"] and state["aborted"] < 50:
            state["aborted"] += 1
            return route.abort("connectionreset")
        return route.continue_()

    page.route(re.compile(r".*/objects/.*"), drop_second_part)
    page.set_input_files("#ref-file", str(audio_files.reference))
    page.wait_for_selector("[data-role=reference][data-state=error]", timeout=60_000)
    msg = page.inner_text("#ref-msg")
    assert "connection dropped" in msg and "Resume upload" in msg, msg
    assert page.is_visible("[data-role=reference] .resume")
    shot(page, "09-upload-dropped", phone=False)

    page.unroute(re.compile(r".*/objects/.*"))
    first = state["first_url"]
    assert sent.count(first) == 1
    page.click("[data-role=reference] .resume")
    page.wait_for_selector("[data-role=reference][data-state=done]", timeout=60_000)
    assert sent.count(first) == 1  # the part that made it was not sent again
    assert "reference.wav uploaded" in page.inner_text("#ref-msg")


def test_expired_session(page, service):
    login(page, service.url)
    # access token expired but the refresh token is good: carries on without asking
    page.evaluate("t => sessionStorage.setItem('tm.access', t)", service.token("access", -10))
    page.goto(service.url + "/#/jobs")
    page.wait_for_selector("#view-jobs:not([hidden])")
    page.wait_for_selector("#view-jobs[data-loaded]")
    assert page.is_hidden("#banner")

    # both expired: back to log in with a message, then straight back to where the user was
    page.evaluate("([a, r]) => { sessionStorage.setItem('tm.access', a);"
                  " localStorage.setItem('tm.refresh', r); }",
                  [service.token("access", -10), service.token("refresh", -10)])
    page.goto(service.url + "/#/presets")
    page.wait_for_selector("#view-login:not([hidden])")
    assert "session has expired" in page.inner_text("#banner")
    shot(page, "10-session-expired")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector("#view-presets:not([hidden])")
    assert page.is_hidden("#banner")
