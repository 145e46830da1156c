"""Console behaviour that needs no running service: the API is played by Playwright routes
(tests/console/mock_api.py), so these pin down what the browser does with given answers."""

from __future__ import annotations

import pytest

from tests.console.conftest import shot, wait_position_past
from tests.console.mock_api import BASE, MockApi, synthetic_viz, wav_bytes

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def mock_login(page, api: MockApi) -> None:
    api.install(page)
    page.goto(BASE + "/")
    page.get_by_label("Email").fill("a@example.com")
    page.get_by_label("Password").fill("right")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector("#view-new:not([hidden])")


def finished_job(page, api: MockApi) -> None:
    api.jobs["job1"] = {"job_id": "job1", "mode": "A", "status": "PENDING", "progress": 0, "polls": 0,
                        "created_at": "2026-11-28T01:00:00Z"}
    api.polls_to_finish = 0
    page.goto(BASE + "/#/jobs/job1")
    page.wait_for_selector("#view-job[data-status=COMPLETED]")


def test_plots_of_a_60_minute_job(page, capsys):
    """Every series at the service's 2000-point cap over 60 minutes: all five plots drawn, time axis in
    minutes, the F0 gaps (unvoiced) left open, and the render time printed."""
    api = MockApi(viz=synthetic_viz(3600.0, 2000))
    mock_login(page, api)
    finished_job(page, api)
    page.wait_for_selector("#plots[data-rendered='5']")
    for key in ("spectrum", "lufs_trajectory", "gain_reduction", "mid_side", "f0"):
        d = page.eval_on_selector_all(f"#plot-{key} path.series", "ps => ps.map(p => p.getAttribute('d'))")
        assert d and all(len(x) > 20 for x in d), key
    ticks = page.eval_on_selector_all("#plot-lufs_trajectory .axis text", "ts => ts.map(t => t.textContent)")
    assert "30:00" in ticks and "45:00" in ticks, ticks  # minutes:seconds over the hour
    f0 = page.get_attribute("#plot-f0 path.series", "d")
    assert f0.count("M") > 1  # unvoiced stretches are gaps, not lines to zero
    t = page.evaluate("window.tonematch.timings.viz")
    with capsys.disabled():
        print(f"\n[console] 60-minute viz: {t['points']} points in {t['plots']} plots, "
              f"built in {t['render_ms']:.1f} ms, on screen in {t['paint_ms']:.1f} ms "
              f"(fetch {t['fetch_ms']:.1f} ms)")
    shot(page, "11-plots-60-minutes")


def test_upload_refused_at_start_names_the_file_and_keeps_the_other(page, tmp_path):
    """A file that looks like audio but the service can't read (a truncated WAV): the message sits
    on that file, in words, and the reference stays uploaded."""
    api = MockApi(reject_target="file contains data in an unknown format")
    mock_login(page, api)
    ref, tgt = tmp_path / "ref.wav", tmp_path / "take3.wav"
    ref.write_bytes(wav_bytes(2.0))
    tgt.write_bytes(wav_bytes(2.0)[:60])
    page.set_input_files("#ref-file", str(ref))
    page.wait_for_selector("[data-role=reference][data-state=done]")
    page.set_input_files("#tgt-file", str(tgt))
    page.wait_for_selector("[data-role=target][data-state=done]")
    page.click("#start-btn")
    page.wait_for_selector("[data-role=target][data-state=error]")
    msg = page.inner_text("#tgt-msg")
    assert msg.startswith("take3.wav can't be used. That file isn't audio we can read"), msg
    assert "ref.wav uploaded" in page.inner_text("#ref-msg")
    assert "target can't be used" in page.inner_text("#new-error")
    assert page.is_disabled("#start-btn")


def test_mode_and_changed_options_are_sent(page, tmp_path):
    """Only the options the user changed go to POST /jobs, with the mode chosen."""
    api = MockApi()
    mock_login(page, api)
    _both_uploaded(page, tmp_path)
    page.get_by_label("B · Full style match").check()
    page.click("#opts-box summary")
    page.get_by_label("Intensity").fill("0.5")
    page.locator("[data-opt=exclude]").get_by_label("Stereo width").check()
    page.get_by_label("Output format").select_option("flac")
    page.click("#start-btn")
    page.wait_for_selector("#view-job:not([hidden])")
    body = next(b for m, p, b in api.calls if m == "POST" and p == "/jobs")
    assert body["mode"] == "B"
    assert body["opts"] == {"intensity": 0.5, "exclude": ["stereo"], "output_format": "flac"}
    assert body["ref_key"].endswith(".wav") and body["tgt_key"].endswith(".wav")


def test_file_over_the_size_limit(page, tmp_path):
    api = MockApi(max_upload_bytes=50_000)
    mock_login(page, api)
    big = tmp_path / "album-side-a.wav"
    big.write_bytes(wav_bytes(4.0))
    page.set_input_files("#ref-file", str(big))
    page.wait_for_selector("[data-role=reference][data-state=error]")
    msg = page.inner_text("#ref-msg")
    assert msg.startswith("That file is too large to upload (the limit is 50 KB)."), msg
    assert "FLAC" in msg
    assert not any(m == "PUT" for m, _, _ in api.calls)  # nothing was sent


def test_failed_job_words_and_retry(page):
    api = MockApi(fail_job=True, polls_to_finish=1)
    mock_login(page, api)
    api.jobs["job1"] = {"job_id": "job1", "mode": "A", "status": "PENDING", "progress": 0, "polls": 0}
    page.goto(BASE + "/#/jobs/job1")
    page.wait_for_selector("#view-job[data-status=FAILED]")
    text = page.inner_text("#job-error")
    assert "stopped while listening to your target" in text
    assert "The target: the audio is silent" in text
    assert "silent" in text.split("What to do:")[1]
    assert page.locator("#job-steps li.failed").inner_text().endswith("Listening to both recordings")


def test_keyboard_only_player_switching(page):
    """Arrow keys move between Original / Processed / Reference (a radio group), keys 1-3 switch too."""
    api = MockApi()
    mock_login(page, api)
    finished_job(page, api)
    page.wait_for_selector("#player[data-state=ready]")
    page.focus("[data-src=original]")
    page.keyboard.press("ArrowRight")
    assert page.get_attribute("#player", "data-active") == "processed"
    assert page.evaluate("document.activeElement.dataset.src") == "processed"
    page.keyboard.press("ArrowRight")
    assert page.get_attribute("#player", "data-active") == "reference"
    page.keyboard.press("1")
    assert page.get_attribute("#player", "data-active") == "original"
    gains = page.get_attribute("#player", "data-gains")
    assert '"original":1' in gains  # the quietest version (-18 LUFS) is the level all are matched to


def test_long_recordings_stream_and_switch_in_step(page):
    """Past the decode limit the player streams through <audio> elements; switching keeps the
    position and the versions stay within a few frames of each other."""
    api = MockApi()
    mock_login(page, api)
    page.evaluate("window.tonematch.maxDecodeBytes = 1000")
    finished_job(page, api)
    page.wait_for_selector("#player[data-state=ready][data-mode=stream]")
    page.click("#play")
    wait_position_past(page, 0.4)
    before = float(page.get_attribute("#player", "data-position"))
    page.get_by_role("radio", name="Processed").click()
    assert page.get_attribute("#player", "data-active") == "processed"
    assert float(page.get_attribute("#player", "data-position")) >= before
    page.wait_for_selector("#player[data-drift]")  # a drift check ran while playing
    page.wait_for_timeout(1100)
    assert float(page.get_attribute("#player", "data-drift")) < 0.1
    page.click("#play")
    assert page.get_attribute("#player", "data-state") == "ready"


def test_settings_are_shown_in_words(page):
    api = MockApi()
    mock_login(page, api)
    finished_job(page, api)
    text = page.inner_text("#params")
    assert "Bell at 250 Hz -1.8 dB, Q 1.20" in text
    assert "High shelf at 8 kHz +2.5 dB" in text
    assert "112 % (wider)" in text and "Ceiling -1.0 dBTP" in text
    assert "Target -10.0 LUFS, gain +7.9 dB" in text


def test_the_result_shows_what_the_service_warns_about(page):
    api = MockApi(job_warnings=["the limiter cuts more than 6 dB on 40 % of the audio (flattened peaks): "
                                "a lower loudness target or a higher ceiling keeps them"])
    mock_login(page, api)
    finished_job(page, api)
    assert page.is_visible("#job-warnings")
    assert "the limiter cuts more than 6 dB on 40 %" in page.inner_text("#job-warnings")


def test_no_warnings_box_for_a_clean_result(page):
    api = MockApi()
    mock_login(page, api)
    finished_job(page, api)
    page.wait_for_selector("#metrics tbody tr")
    assert not page.is_visible("#job-warnings")


def test_every_control_has_a_name(page):
    """No unlabeled inputs or buttons on the screens (screen readers say something for each)."""
    api = MockApi()
    mock_login(page, api)
    page.click("#opts-box summary")
    page.wait_for_selector("#opt-target_lufs")
    finished_job(page, api)
    nameless = page.evaluate("""() => [...document.querySelectorAll('input, select, button, [role=radio]')]
        .filter(e => e.offsetParent !== null || e.closest('#view-new'))
        .filter(e => { const l = e.labels && e.labels.length; const a = e.getAttribute('aria-label');
                       const t = (e.textContent || '').trim(); const lb = e.getAttribute('aria-labelledby');
                       const fs = e.closest('fieldset') && e.type === 'checkbox' && e.closest('label');
                       return !(l || a || lb || (e.tagName === 'BUTTON' && t) || fs); })
        .map(e => e.outerHTML.slice(0, 80))""")
    assert nameless == []


def test_older_jobs_are_reached_page_by_page(page):
    """Past the 50 newest jobs, "Show older jobs" asks for the next page with `before` set to the
    oldest shown job's created_at, until every job is listed."""
    api = MockApi()
    for i in range(120):  # job0 is the oldest, job119 the newest
        when = f"2026-03-01T{i // 60:02d}:{i % 60:02d}:00.123456+00:00"
        api.jobs[f"job{i}"] = {"job_id": f"job{i}", "mode": "A", "status": "COMPLETED", "progress": 100,
                               "polls": 0, "created_at": when}
    api.jobs["job119"]["status"] = "RENDERING"
    mock_login(page, api)
    page.get_by_role("link", name="Jobs").click()
    page.wait_for_selector("#view-jobs[data-loaded='50']")
    rows = page.locator("#jobs-table tbody tr")
    assert rows.count() == 50
    assert page.locator("#jobs-table a[href='#/jobs/job119']").count() == 1  # newest first
    more = page.get_by_role("button", name="Show older jobs")
    more.click()
    page.wait_for_selector("#view-jobs[data-loaded='100']")
    # the list refreshes while a job runs: the older page stays on screen
    n = sum(1 for m, p, _ in api.calls if (m, p) == ("GET", "/jobs"))
    page.wait_for_timeout(3500)
    assert sum(1 for m, p, _ in api.calls if (m, p) == ("GET", "/jobs")) > n
    assert rows.count() == 100
    more.click()
    page.wait_for_selector("#view-jobs[data-loaded='120']")
    assert page.locator("#jobs-table a[href='#/jobs/job0']").count() == 1  # the oldest is reachable
    ids = page.eval_on_selector_all("#jobs-table tbody a", "as => as.map(a => a.hash.split('/').pop())")
    assert ids == [f"job{i}" for i in range(119, -1, -1)]  # each job once, newest to oldest
    assert more.is_hidden()
    assert "That's all of your jobs" in page.inner_text("#view-jobs")


def test_jobs_page_cursor_is_the_oldest_shown_created_at_and_id(page):
    api = MockApi()
    for i in range(60):
        api.jobs[f"job{i}"] = {"job_id": f"job{i}", "mode": "A", "status": "COMPLETED", "polls": 0,
                               "created_at": f"2026-03-01T10:{i:02d}:00.000001+00:00"}
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url) if "/jobs?" in r.url else None)
    mock_login(page, api)
    page.goto(BASE + "/#/jobs")
    page.wait_for_selector("#view-jobs[data-loaded='50']")
    page.click("#jobs-more")
    page.wait_for_selector("#view-jobs[data-loaded='60']")
    # job10, the oldest shown: its created_at, and its id for jobs of the same instant
    assert urls[-1].endswith("before=2026-03-01T10%3A10%3A00.000001%2B00%3A00&before_id=job10"), urls
    assert page.is_hidden("#jobs-more")


def test_the_same_file_can_be_chosen_again_after_cancel(page, tmp_path):
    """Cancel an upload, then choose that very file again: it uploads (the input was emptied, so the
    browser reports the choice)."""
    api = MockApi(hold_puts=1)
    mock_login(page, api)
    tgt = tmp_path / "take7.wav"
    tgt.write_bytes(wav_bytes(2.0))
    page.set_input_files("#tgt-file", str(tgt))
    page.wait_for_selector("[data-role=target][data-state=uploading]")
    page.locator("[data-role=target]").get_by_role("button", name="Cancel").click()
    page.wait_for_selector("[data-role=target][data-state=error]")
    assert page.inner_text("#tgt-msg") == "Upload cancelled."
    page.set_input_files("#tgt-file", str(tgt))
    page.wait_for_selector("[data-role=target][data-state=done]", timeout=5000)
    assert "take7.wav uploaded" in page.inner_text("#tgt-msg")


def test_upload_after_the_session_expired(page, tmp_path):
    """The session runs out when a new target is chosen: after logging in again the slot says the
    earlier target is still used, Start says so too, and the same file can be chosen again."""
    api = MockApi()
    mock_login(page, api)
    ref, first, second = tmp_path / "ref.wav", tmp_path / "mix-v1.wav", tmp_path / "mix-v2.wav"
    for f in (ref, first, second):
        f.write_bytes(wav_bytes(2.0))
    page.set_input_files("#ref-file", str(ref))
    page.set_input_files("#tgt-file", str(first))
    page.wait_for_selector("[data-role=target][data-state=done]")
    page.wait_for_selector("[data-role=reference][data-state=done]")
    api.refresh_ok = False
    page.evaluate("sessionStorage.setItem('tm.access', 'stale')")
    page.set_input_files("#tgt-file", str(second))
    page.wait_for_selector("#view-login:not([hidden])")
    api.refresh_ok = True
    page.get_by_label("Email").fill("a@example.com")
    page.get_by_label("Password").fill("right")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector("#view-new:not([hidden])")
    msg = page.inner_text("#tgt-msg")
    assert "session expired" in msg and "earlier upload (mix-v1.wav) is used" in msg, msg
    assert page.inner_text("#start-hint") == "Ready to start with your earlier target (mix-v1.wav)."
    page.set_input_files("#tgt-file", str(second))
    page.wait_for_selector("[data-role=target][data-state=done]", timeout=5000)
    assert "mix-v2.wav uploaded" in page.inner_text("#tgt-msg")
    assert page.inner_text("#start-hint") == "Ready when you are."


def _wait_for(cond, page, timeout_ms: int = 5000) -> None:
    for _ in range(timeout_ms // 50):
        if cond():
            return
        page.wait_for_timeout(50)
    raise AssertionError("timed out")


def _signs(api: MockApi) -> int:
    return sum(1 for m, p, _ in api.calls if (m, p) == ("POST", "/uploads/sign"))


def test_log_out_forgets_half_finished_uploads(page, tmp_path):
    """A multipart upload half-way through when the user logs out stops there, and whoever logs in next
    on this browser does not resume into its part URLs: the same file starts afresh, signed anew."""
    api = MockApi(multipart=True, hold_puts=1)
    mock_login(page, api)
    big = tmp_path / "album.wav"
    big.write_bytes(wav_bytes(2.0))
    page.set_input_files("#tgt-file", str(big))
    _wait_for(lambda: len(api.objects) == 1 and len(api.held) == 1, page)  # one part in, one stalled
    page.click("#logout")  # with the upload under way: it stops
    page.wait_for_selector("#view-login:not([hidden])")
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('tm.up.'))") == []
    mock_login(page, api)
    assert page.inner_text("#tgt-msg") == ""
    page.set_input_files("#tgt-file", str(big))
    page.wait_for_selector("[data-role=target][data-state=done]")
    assert _signs(api) == 2  # signed again for the new session, not resumed into the old part URLs


def test_refused_join_of_parts_is_not_resumed(page, tmp_path):
    """POST /uploads/complete refuses the parts: no "Resume upload" that would only repeat the
    refusal, and choosing the file again signs a new upload."""
    api = MockApi(multipart=True, complete_error="part 2's ETag does not match")
    mock_login(page, api)
    f = tmp_path / "vocal.wav"
    f.write_bytes(wav_bytes(2.0))
    page.set_input_files("#ref-file", str(f))
    page.wait_for_selector("[data-role=reference][data-state=error]")
    assert "ETag does not match" in page.inner_text("#ref-msg")
    assert page.locator("[data-role=reference] .resume").is_hidden()
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('tm.up.'))") == []
    api.complete_error = None
    page.set_input_files("#ref-file", str(f))
    page.wait_for_selector("[data-role=reference][data-state=done]")
    assert _signs(api) == 2
    assert "vocal.wav uploaded" in page.inner_text("#ref-msg")


def test_parts_joined_before_count_as_uploaded(page, tmp_path):
    """The answer to an earlier POST /uploads/complete was lost, so the service now says the upload is
    already complete: the file counts as uploaded, not as an error."""
    api = MockApi(multipart=True, complete_conflict=True)
    mock_login(page, api)
    f = tmp_path / "vocal.wav"
    f.write_bytes(wav_bytes(2.0))
    page.set_input_files("#ref-file", str(f))
    page.wait_for_selector("[data-role=reference][data-state=done]")
    assert "vocal.wav uploaded" in page.inner_text("#ref-msg")


def _both_uploaded(page, tmp_path) -> None:
    ref, tgt = tmp_path / "ref.wav", tmp_path / "mix.wav"
    ref.write_bytes(wav_bytes(2.0))
    tgt.write_bytes(wav_bytes(2.0, 300.0))
    page.set_input_files("#ref-file", str(ref))
    page.set_input_files("#tgt-file", str(tgt))
    page.wait_for_selector("[data-role=reference][data-state=done]")
    page.wait_for_selector("[data-role=target][data-state=done]")


@pytest.mark.parametrize("typed", ["--5", "1e", "-"])
def test_option_that_is_not_a_number_is_refused(page, tmp_path, typed):
    """Text the browser can't read as a number is not quietly dropped for the default: the field is
    named, marked, and no job starts. (Chromium keeps letters other than "e" out of the field; other
    browsers let "abc" in, which reads the same: validity.badInput.)"""
    api = MockApi()
    mock_login(page, api)
    _both_uploaded(page, tmp_path)
    page.click("#opts-box summary")
    page.click("#opt-target_lufs")
    page.keyboard.type(typed)
    page.click("#start-btn")
    err = page.inner_text("#new-error")
    assert err == ("Target loudness isn't a number we can read. Enter a number between -40 and -5 LUFS, "
                   "or leave it empty for the default."), err
    assert page.get_attribute("#opt-target_lufs", "aria-invalid") == "true"
    assert page.is_visible("#view-new")
    assert not any(m == "POST" and p == "/jobs" for m, p, _ in api.calls)


def test_a_job_that_is_not_found_leaves_nothing_stale(page):
    """After a finished job, a job id that doesn't exist shows only "not found" (not the previous
    job's status), and the message goes once the user moves on."""
    api = MockApi()
    mock_login(page, api)
    finished_job(page, api)
    page.wait_for_selector("#job-result:not([hidden])")
    page.goto(BASE + "/#/jobs/00000000-0000-0000-0000-000000000000")
    page.wait_for_selector("#banner:not([hidden])")
    assert "couldn't find" in page.inner_text("#banner")
    assert page.is_hidden("#job-status") and page.is_hidden("#job-result")
    view = page.inner_text("#view-job")
    assert "Done" not in view and "100%" not in view and "Match finished" not in view, view
    page.get_by_role("link", name="Presets").click()
    page.wait_for_selector("#view-presets[data-loaded]")
    assert page.is_hidden("#banner")
    page.go_back()
    page.wait_for_selector("#banner:not([hidden])")
    page.get_by_role("link", name="New match", exact=True).click()
    page.wait_for_selector("#view-new:not([hidden])")
    assert page.is_hidden("#banner")
    # and a job that exists shows its own status again
    page.goto(BASE + "/#/jobs/job1")
    page.wait_for_selector("#view-job[data-status=COMPLETED]")
    assert page.is_visible("#job-status")


def _posts(api: MockApi, path: str) -> int:
    return sum(1 for m, p, _ in api.calls if (m, p) == ("POST", path))


def test_double_click_on_save_preset_saves_once(page):
    """A double click on "Save preset" sends one request: saved, not "you already have a preset"."""
    api = MockApi(hold={"POST /presets": 1})
    mock_login(page, api)
    finished_job(page, api)
    page.fill("#preset-name", "Warm master")
    page.dblclick("#save-preset button[type=submit]")
    page.wait_for_timeout(300)
    assert _posts(api, "/presets") == 1
    assert page.is_disabled("#save-preset button[type=submit]")
    api.release()
    page.wait_for_selector("#save-msg.ok")
    assert page.inner_text("#save-msg") == "Saved as “Warm master”. Find it under Presets."
    assert _posts(api, "/presets") == 1
    assert page.is_enabled("#save-preset button[type=submit]")


def _open_apply(page, api: MockApi, tmp_path, name: str = "take.wav") -> None:
    api.presets["p1"] = {"id": "p1", "name": "Warm master", "created_at": "2026-11-28T01:00:00Z", "mode": "A"}
    page.get_by_role("link", name="Presets").click()
    page.get_by_role("button", name="Apply Warm master to a recording").click()
    f = tmp_path / name
    f.write_bytes(wav_bytes(2.0))
    page.set_input_files("#apply-file", str(f))
    page.wait_for_selector("[data-role=apply][data-state=done]")


def test_double_click_on_apply_starts_one_job(page, tmp_path):
    api = MockApi(hold={"POST /jobs": 1})
    mock_login(page, api)
    _open_apply(page, api, tmp_path)
    page.dblclick("#apply-btn")
    page.wait_for_timeout(300)
    assert _posts(api, "/jobs") == 1
    assert page.is_disabled("#apply-btn")
    api.release()
    page.wait_for_selector("#view-job:not([hidden])")
    assert _posts(api, "/jobs") == 1


def test_apply_drops_a_recording_the_service_refuses(page, tmp_path):
    """A 3-channel file refused when the job is asked for: the Apply form says why on that file and
    no longer shows it as uploaded, as the New-match form does."""
    api = MockApi(reject_target="has 3 channels; mono or stereo audio is needed")
    mock_login(page, api)
    _open_apply(page, api, tmp_path, "three_ch.wav")
    page.click("#apply-btn")
    page.wait_for_selector("[data-role=apply][data-state=error]")
    msg = page.inner_text("#apply-msg")
    assert msg.startswith("three_ch.wav can't be used. That file has more than two channels."), msg
    assert "uploaded" not in msg
    assert "can't be used" in page.inner_text("#apply-error")
    assert page.is_disabled("#apply-btn")


NARROW = {"width": 375, "height": 760}


def _overflow(page) -> list[str]:
    """What sticks out past the right edge of the screen, or whose text overflows its box (visible
    elements only; tables scroll in their own box)."""
    return page.evaluate("""() => [...document.querySelectorAll('button, a, input, p, li, h1, h2, span, div')]
        .filter(e => e.offsetParent !== null && !e.closest('.tablewrap, .visually-hidden'))
        .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5
                     || (e.tagName !== 'INPUT' && e.scrollWidth > e.clientWidth + 1))
        .map(e => e.outerHTML.slice(0, 60))""")


def test_long_names_without_spaces_fit_a_phone(page, tmp_path):
    """At 375 px a 120-character preset name and file name wrap: Rename/Delete stay on screen and
    nothing scrolls sideways."""
    long = "Warm_master_for_the_album_" + "x" * 94
    api = MockApi()
    api.jobs["job1"] = {"job_id": "job1", "mode": "A", "status": "COMPLETED", "polls": 0,
                        "created_at": "2026-11-28T01:00:00Z", "tgt_key": "u1/audio/raw/1.wav"}
    page.set_viewport_size(NARROW)
    mock_login(page, api)
    f = tmp_path / (long[:100] + ".wav")
    f.write_bytes(wav_bytes(1.0))
    page.set_input_files("#tgt-file", str(f))
    page.wait_for_selector("[data-role=target][data-state=done]")
    assert _overflow(page) == []
    page.goto(BASE + "/#/jobs/job1")
    page.wait_for_selector("#view-job[data-status=COMPLETED]")
    assert long[:100] in page.inner_text("#job-sub")
    assert _overflow(page) == []
    api.presets["p1"] = {"id": "p1", "name": long, "created_at": "2026-11-28T01:00:00Z", "mode": "A"}
    page.get_by_role("link", name="Presets").click()
    item = page.locator("#presets-list li[data-preset-id=p1]")
    item.wait_for()
    for b in ("Rename", "Delete"):
        box = item.get_by_role("button", name=f"{b} {long}").bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= NARROW["width"], (b, box)
    assert _overflow(page) == []
    item.get_by_role("button", name=f"Apply {long} to a recording").click()
    assert _overflow(page) == []
    item.get_by_role("button", name=f"Delete {long}").click()
    assert _overflow(page) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]


def test_a_truncated_wav_is_explained_in_the_services_words(page, tmp_path):
    """The service says how much of a cut-short WAV is missing: that is shown, not "isn't audio"."""
    api = MockApi(reject_target="is truncated: its header promises 8.00 s of audio, the file holds 4.00 s "
                                "(an interrupted copy or download?)")
    mock_login(page, api)
    _both_uploaded(page, tmp_path)
    page.click("#start-btn")
    page.wait_for_selector("[data-role=target][data-state=error]")
    assert page.inner_text("#tgt-msg") == (
        "mix.wav can't be used. That file is truncated: its header promises 8.00 s of audio, the file holds "
        "4.00 s (an interrupted copy or download?). Copy or export it again, then choose it again.")


def test_a_job_stopped_by_a_truncated_file_says_so(page):
    why = "is truncated: its header promises 8.00 s of audio, the file holds 4.00 s"
    api = MockApi(fail_job=True, polls_to_finish=1, fail_error=f"tgt_key: {why}")
    mock_login(page, api)
    api.jobs["job1"] = {"job_id": "job1", "mode": "A", "status": "PENDING", "progress": 0, "polls": 0}
    page.goto(BASE + "/#/jobs/job1")
    page.wait_for_selector("#view-job[data-status=FAILED]")
    text = page.inner_text("#job-error")
    assert "The target: is truncated: its header promises 8.00 s of audio, the file holds 4.00 s" in text
    assert text.split("What to do:")[1].strip().startswith("One of the files is cut short."), text


def test_sample_rate_hint_matches_its_choices(page):
    """The output sample rate is a choice of common rates: its hint doesn't promise the service's
    whole 8000-192000 Hz range."""
    api = MockApi()
    mock_login(page, api)
    page.click("#opts-box summary")
    page.wait_for_selector("#opt-output_sample_rate_hz")
    hint = page.inner_text("#opt-output_sample_rate_hz-hint")
    assert hint == "Sample rate of the result; default: the target's.", hint
    values = page.eval_on_selector_all("#opt-output_sample_rate_hz option", "os => os.map(o => o.value)")
    assert values == ["", "44100", "48000", "88200", "96000"]
    assert "range -40 to -5 LUFS" in page.inner_text("#opt-target_lufs-hint")  # number fields keep theirs


def test_too_long_password_is_said_in_words(page):
    api = MockApi()
    api.install(page)
    page.goto(BASE + "/")
    page.get_by_label("Email").fill("a@example.com")
    page.get_by_label("Password").fill("p" * 2000)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector("#login-error:not([hidden])")
    assert page.inner_text("#login-error") == "The password is too long (at most 1024 characters)."


def test_notes_have_readable_labels(page):
    api = MockApi()
    mock_login(page, api)
    finished_job(page, api)
    text = page.inner_text("#params")
    assert "EQ: 2 bands fitted" in text and "Loudness: target = the reference's loudness" in text, text
    assert "Stereo width: kept" in text
    assert "Eq:" not in text and "Lufs:" not in text
