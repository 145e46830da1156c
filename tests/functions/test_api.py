"""The HTTP API: auth, the one error body, signed uploads through the app, ownership, limits,
presets, console files and the OpenAPI document (on SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from dataclasses import replace

import jwt
import pytest
from fastapi.testclient import TestClient

from functions.api.app import create_app
from functions.api.auth import issue_token
from functions.pipeline.context import context_from_settings
from tests.functions.conftest import add_user, make_settings, write_wav

PASSWORD = "correct horse battery"
CODES = {"INVALID_INPUT", "NOT_FOUND", "RATE_LIMITED", "UNAUTHORIZED", "FORBIDDEN", "CONFLICT", "INTERNAL"}


def assert_error(r, status: int, code: str, field: str | None = None) -> dict:
    body = r.json()
    assert r.status_code == status, (r.status_code, body)
    assert set(body) <= {"code", "message", "detail"} and body["code"] == code, body
    assert body["code"] in CODES and body["message"]
    if field is not None:
        assert body["detail"]["field"] == field, body
    return body


@pytest.fixture
def api(backend, tmp_path, request):
    settings = make_settings(
        backend,
        tmp_path,
        request,
        public_url="http://testserver",
        max_upload_bytes=2_000_000,
        multipart_threshold_bytes=1_000_000,
        multipart_part_bytes=400_000,
    )
    ctx = context_from_settings(settings)
    with TestClient(create_app(ctx=ctx)) as client:
        yield client, ctx
    ctx.status.drop_schema()
    ctx.status.close()


def login(client, ctx, user=None) -> tuple[dict, dict]:
    user = user or add_user(ctx, PASSWORD)
    r = client.post("/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert r.status_code == 200, r.text
    return user, {"Authorization": f"Bearer {r.json()['access_token']}"}


def upload(client, headers, path, content_type="audio/wav", ext="wav") -> str:
    r = client.post("/uploads/sign", json={"content_type": content_type, "ext": ext}, headers=headers)
    assert r.status_code == 200, r.text
    doc = r.json()
    put = client.put(doc["put_url"], content=path.read_bytes(), headers={"Content-Type": content_type})
    assert put.status_code == 200, put.text
    return doc["key"]


def test_login_refresh_and_token_errors(api):
    client, ctx = api
    user = add_user(ctx, PASSWORD)
    assert_error(
        client.post("/auth/login", json={"email": user["email"], "password": "nope"}), 401, "UNAUTHORIZED"
    )
    assert_error(
        client.post("/auth/login", json={"email": "who@x.y", "password": PASSWORD}), 401, "UNAUTHORIZED"
    )
    tokens = client.post("/auth/login", json={"email": user["email"].upper(), "password": PASSWORD}).json()
    r = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200
    access = r.json()["access_token"]
    assert client.get("/jobs", headers={"Authorization": f"Bearer {access}"}).status_code == 200
    # a refresh token is not an access token and vice versa
    body = assert_error(
        client.get("/jobs", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}),
        401,
        "UNAUTHORIZED",
    )
    assert body["message"] == "this is a refresh token, not an access token"
    body = assert_error(client.post("/auth/refresh", json={"refresh_token": access}), 401, "UNAUTHORIZED")
    assert body["message"] == "this is an access token, not a refresh token"
    # forged (other secret) and expired tokens, missing header
    forged = jwt.encode({"sub": user["id"], "typ": "access", "exp": time.time() + 60}, "x", algorithm="HS256")
    body = assert_error(
        client.get("/jobs", headers={"Authorization": f"Bearer {forged}"}), 401, "UNAUTHORIZED"
    )
    assert body["detail"]["reason"] == "invalid"
    expired = issue_token(ctx.settings.jwt_secret, user["id"], "access", -10)
    body = assert_error(
        client.get("/jobs", headers={"Authorization": f"Bearer {expired}"}), 401, "UNAUTHORIZED"
    )
    assert body["detail"]["reason"] == "expired"
    assert_error(client.get("/jobs"), 401, "UNAUTHORIZED", "Authorization")
    assert any(a["action"] == "auth.login" for a in ctx.status.audit_rows(user["id"]))


def test_framework_errors_use_the_one_body(api):
    client, ctx = api
    _, h = login(client, ctx)
    assert_error(client.get("/nope"), 404, "NOT_FOUND", "path")
    assert_error(client.delete("/health"), 405, "INVALID_INPUT", "method")
    r = client.post("/jobs", content=b'{"mode": "A", ', headers={**h, "Content-Type": "application/json"})
    body = assert_error(r, 422 if r.status_code == 422 else 400, "INVALID_INPUT", "body")
    assert "malformed JSON" in body["message"]
    body = assert_error(
        client.post("/jobs", json={"mode": "C", "tgt_key": "x", "ref_key": "y"}, headers=h),
        r.status_code,
        "INVALID_INPUT",
        "mode",
    )
    assert_error(
        client.post("/jobs", json={"mode": "A"}, headers=h), r.status_code, "INVALID_INPUT", "tgt_key"
    )
    assert_error(
        client.post("/jobs", json={"mode": "A", "tgt_key": "k", "bogus": 1}, headers=h),
        r.status_code,
        "INVALID_INPUT",
        "bogus",
    )
    assert_error(client.get("/jobs?limit=0", headers=h), r.status_code, "INVALID_INPUT", "query.limit")


def test_numbers_past_float_range_are_refused_naming_the_field(api, tmp_path):
    """An integer too large for a float is a 400 naming its field; one with more digits than Python
    parses (4300) is a 400 saying so (it used to be "There was an error parsing the body")."""
    client, ctx = api
    _, h = login(client, ctx)
    h = {**h, "Content-Type": "application/json"}
    ref = upload(client, h, write_wav(tmp_path / "r.wav"))
    tgt = upload(client, h, write_wav(tmp_path / "t.wav", seed=1))
    big = b"1" + b"0" * 400
    job = b'{"mode":"A","ref_key":"%s","tgt_key":"%s","opts":{"segment_s":%s}}' % (
        ref.encode(), tgt.encode(), big
    )
    assert_error(client.post("/jobs", content=job, headers=h), 400, "INVALID_INPUT", "opts.segment_s")
    preset = b'{"name":"big","style_params":{"lufs":{"target_db":-%s}}}' % big
    assert_error(client.post("/presets", content=preset, headers=h), 400, "INVALID_INPUT",
                 "style_params.lufs.target_db")
    huge = b'{"name":"huge","style_params":{"lufs":{"target_db":1' + b"0" * 5000 + b"}}}"
    body = assert_error(client.post("/presets", content=huge, headers=h), 400, "INVALID_INPUT", "body")
    assert "more than 4300 digits" in body["message"]
    deep = b'{"name":"deep","style_params":' + b"[" * 5000 + b"]" * 5000 + b"}"
    body = assert_error(client.post("/presets", content=deep, headers=h), 400, "INVALID_INPUT", "body")
    assert "nested too deeply" in body["message"]
    assert client.get("/health").status_code == 200


def test_request_body_limit(api):
    client, ctx = api
    _, h = login(client, ctx)
    big = b'{"name": "' + b"x" * (ctx.settings.max_json_bytes + 10) + b'"}'
    assert_error(
        client.post("/presets", content=big, headers={**h, "Content-Type": "application/json"}),
        413,
        "INVALID_INPUT",
        "body",
    )

    def chunks():  # no Content-Length: counted while streaming
        yield b'{"name": "'
        for _ in range(ctx.settings.max_json_bytes // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    r = client.post("/presets", content=chunks(), headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "INVALID_INPUT"


def test_signed_upload_put_and_download(api, tmp_path):
    client, ctx = api
    user, h = login(client, ctx)
    wav = write_wav(tmp_path / "t.wav")
    key = upload(client, h, wav)
    assert key.startswith(f"{user['id']}/audio/raw/") and key.endswith(".wav")
    assert ctx.objects.get_bytes(key) == wav.read_bytes()
    url = ctx.objects.sign_get(key, 60)
    r = client.get(url)
    assert r.status_code == 200 and r.content == wav.read_bytes()
    actions = [a["action"] for a in ctx.status.audit_rows(user["id"])]
    assert "upload.sign" in actions and "object.put" in actions


def test_upload_bad_input(api, tmp_path):
    client, ctx = api
    _user, h = login(client, ctx)
    wav = write_wav(tmp_path / "t.wav")
    sign = lambda **kw: client.post("/uploads/sign", json=kw, headers=h)  # noqa: E731
    assert_error(sign(content_type="audio/wav", ext="exe"), 400, "INVALID_INPUT", "ext")
    assert_error(sign(content_type="image/png", ext="wav"), 400, "INVALID_INPUT", "content_type")
    assert_error(sign(content_type="audio/wav", ext="wav", size_bytes=0), 400, "INVALID_INPUT", "size_bytes")
    assert_error(
        sign(content_type="audio/wav", ext="wav", size_bytes=10**9), 400, "INVALID_INPUT", "size_bytes"
    )
    doc = sign(content_type="audio/wav", ext="wav", size_bytes=wav.stat().st_size).json()
    url = doc["put_url"]
    assert_error(
        client.put(url, content=wav.read_bytes(), headers={"Content-Type": "text/plain"}),
        400,
        "INVALID_INPUT",
        "Content-Type",
    )
    assert_error(
        client.put(url, content=b"", headers={"Content-Type": "audio/wav"}), 400, "INVALID_INPUT", "body"
    )
    assert_error(
        client.put(url, content=wav.read_bytes() + b"extra", headers={"Content-Type": "audio/wav"}),
        400,
        "INVALID_INPUT",
        "body",
    )
    assert not ctx.objects.exists(doc["key"])  # nothing half-written
    assert client.put(url, content=wav.read_bytes(), headers={"Content-Type": "audio/wav"}).status_code == 200
    # a second PUT never overwrites
    assert_error(
        client.put(url, content=b"RIFFxxxx", headers={"Content-Type": "audio/wav"}), 409, "CONFLICT", "key"
    )
    assert ctx.objects.get_bytes(doc["key"]) == wav.read_bytes()
    # forged / expired / wrong-method signed URLs
    token = url.rsplit("/", 1)[1]
    assert_error(
        client.put(url[:-3] + "AAA", content=b"x", headers={"Content-Type": "audio/wav"}),
        403,
        "FORBIDDEN",
        "token",
    )
    assert_error(client.get(f"/objects/{token}"), 403, "FORBIDDEN", "token")
    expired = ctx.objects.sign_get(doc["key"], -5)
    body = assert_error(client.get(expired), 403, "FORBIDDEN", "token")
    assert body["detail"]["reason"] == "expired"


def test_multipart_upload_through_the_app(api, tmp_path):
    client, ctx = api
    _user, h = login(client, ctx)
    wav = write_wav(tmp_path / "long.wav", seconds=8.0)  # ~2 MB at 24-bit stereo: over the 1 MB threshold
    data = wav.read_bytes()[:1_900_000]
    r = client.post(
        "/uploads/sign", json={"content_type": "audio/wav", "ext": "wav", "size_bytes": len(data)}, headers=h
    )
    doc = r.json()
    assert doc["multipart"] is True and len(doc["parts"]) == 5 and doc["part_size_bytes"] == 400_000
    parts = []
    for p in doc["parts"]:
        chunk = data[(p["part_number"] - 1) * 400_000 : p["part_number"] * 400_000]
        put = client.put(p["put_url"], content=chunk)
        assert put.status_code == 200
        parts.append({"part_number": p["part_number"], "etag": put.headers["ETag"]})
    bad = client.post(
        "/uploads/complete",
        json={"key": doc["key"], "upload_id": doc["upload_id"], "parts": parts[::-1]},
        headers=h,
    )
    assert_error(bad, 400, "INVALID_INPUT", "parts")
    for upload_id in ("0" * 32, "not-an-upload-id"):  # unknown or malformed: not found, named
        r = client.post(
            "/uploads/complete", json={"key": doc["key"], "upload_id": upload_id, "parts": parts}, headers=h
        )
        assert_error(r, 404, "NOT_FOUND", "upload_id")
    r = client.post(
        "/uploads/complete",
        json={"key": doc["key"], "upload_id": doc["upload_id"], "parts": parts},
        headers=h,
    )
    assert r.status_code == 200 and r.json()["size_bytes"] == len(data)
    assert ctx.objects.get_bytes(doc["key"]) == data
    # another user cannot complete or see it
    _, h2 = login(client, ctx)
    r = client.post(
        "/uploads/complete",
        json={"key": doc["key"], "upload_id": doc["upload_id"], "parts": parts},
        headers=h2,
    )
    assert_error(r, 404, "NOT_FOUND", "key")


def test_unknown_and_foreign_jobs_are_404(api):
    client, ctx = api
    alice, ha = login(client, ctx)
    _, hb = login(client, ctx)
    job, _ = ctx.status.create_job(
        user_id=alice["id"],
        mode="A",
        ref_key=f"{alice['id']}/r.wav",
        tgt_key=f"{alice['id']}/t.wav",
        opts={},
        idempotency_key="x",
    )
    assert client.get(f"/jobs/{job['id']}", headers=ha).json()["status"] == "PENDING"
    for path in (f"/jobs/{job['id']}", "/jobs/00000000-0000-0000-0000-000000000000", "/jobs/garbage"):
        assert_error(client.get(path, headers=hb), 404, "NOT_FOUND", "job")
    assert_error(client.post(f"/jobs/{job['id']}/retry", headers=hb), 404, "NOT_FOUND", "job")
    assert client.get("/jobs", headers=hb).json()["jobs"] == []
    assert [j["job_id"] for j in client.get("/jobs", headers=ha).json()["jobs"]] == [job["id"]]
    # retry of a job that is not FAILED
    body = assert_error(client.post(f"/jobs/{job['id']}/retry", headers=ha), 409, "CONFLICT", "status")
    assert "PENDING" in body["message"]


def test_ids_are_found_only_in_their_canonical_form(api):
    """An id is the lower-case dashed uuid the API hands out; other spellings of it are 404 on both
    databases (PostgreSQL used to find, and delete, a preset by its dash-less or upper-case id)."""
    client, ctx = api
    _, h = login(client, ctx)
    pid = client.post("/presets", json={"name": "p", "style_params": {"stereo": {"width": 1.2}}}, headers=h)
    pid = pid.json()["id"]
    zero = "00000000-0000-0000-0000-000000000000"
    for other in (pid.upper(), pid.replace("-", ""), f"{{{pid}}}", f"urn:uuid:{pid}"):
        assert_error(client.get(f"/presets/{other}", headers=h), 404, "NOT_FOUND", "preset")
        assert_error(client.delete(f"/presets/{other}", headers=h), 404, "NOT_FOUND", "preset")
    for other in (zero.replace("-", ""), f"{{{zero}}}", f"urn:uuid:{zero}"):
        assert_error(client.get(f"/jobs/{other}", headers=h), 404, "NOT_FOUND", "job")
    assert client.get(f"/presets/{pid}", headers=h).status_code == 200  # still there


def test_jobs_before_cursor(api):
    """``before`` takes a job's created_at (any ISO-8601 spelling of it); anything else is a 400
    naming it on both databases (SQLite used to ignore it, PostgreSQL answered 500)."""
    client, ctx = api
    user, h = login(client, ctx)
    ids = []
    for i in range(3):
        job, _ = ctx.status.create_job(
            user_id=user["id"], mode="A", ref_key=None, tgt_key=f"{user['id']}/t{i}.wav", opts={},
            idempotency_key=f"k{i}",
        )
        ids.append(job["id"])
    jobs = client.get("/jobs", headers=h).json()["jobs"]
    assert [j["job_id"] for j in jobs] == ids[::-1]
    cursor = jobs[0]["created_at"]  # the newest
    page = client.get("/jobs", params={"before": cursor}, headers=h).json()["jobs"]
    assert [j["job_id"] for j in page] == ids[1::-1]
    as_z = cursor.replace("+00:00", "Z")
    assert client.get("/jobs", params={"before": as_z}, headers=h).json()["jobs"] == page
    assert client.get("/jobs", params={"before": "2000-01-01"}, headers=h).json()["jobs"] == []
    for bad in ("garbage", "2026-13-45", "a\x00", "2026-01-01T25:00:00"):
        body = assert_error(
            client.get("/jobs", params={"before": bad}, headers=h), 400, "INVALID_INPUT", "before"
        )
        assert "ISO-8601" in body["message"]


def test_paging_through_jobs_of_one_instant_loses_none(api):
    """Jobs created in the same instant (a drop batch, a coarse clock): paging by ``before`` alone
    skipped every job that shared the last one's created_at; ``before_id`` splits them by id."""
    client, ctx = api
    user, h = login(client, ctx)
    ids = set()
    for i in range(5):
        job, _ = ctx.status.create_job(
            user_id=user["id"], mode="A", ref_key=None, tgt_key=f"{user['id']}/t{i}.wav", opts={},
            idempotency_key=f"same{i}",
        )
        ids.add(job["id"])
    ctx.status.query("UPDATE jobs SET created_at = (SELECT MIN(created_at) FROM jobs WHERE user_id = ?) "
                     "WHERE user_id = ?", (user["id"], user["id"]))
    seen: list[str] = []
    page = client.get("/jobs", params={"limit": 2}, headers=h).json()["jobs"]
    while page:
        seen += [j["job_id"] for j in page]
        last = page[-1]
        page = client.get("/jobs", params={"limit": 2, "before": last["created_at"],
                                           "before_id": last["job_id"]}, headers=h).json()["jobs"]
    assert len(seen) == 5 and set(seen) == ids
    assert_error(client.get("/jobs", params={"before_id": seen[0]}, headers=h), 400, "INVALID_INPUT",
                 "before_id")
    assert_error(client.get("/jobs", params={"before": last["created_at"], "before_id": "nope"}, headers=h),
                 400, "INVALID_INPUT", "before_id")


def test_nul_characters_are_refused_naming_the_field(api):
    """PostgreSQL stores no NUL in text or jsonb: a NUL in a login email or anywhere in a preset's
    parameters is a 400 naming where it is, on both databases (PostgreSQL answered 500)."""
    client, ctx = api
    user, h = login(client, ctx)
    r = client.post("/auth/login", json={"email": user["email"] + "\x00", "password": PASSWORD})
    assert_error(r, 400, "INVALID_INPUT", "email")
    for params, field in (
        ({"notes": {"eq": "two\x00bands"}}, "style_params.notes.eq"),
        ({"notes": {"e\x00q": "two bands"}}, "style_params.notes"),
        ({"reverb": {"ir_key": "ir/hall_2.0s.wav\x00", "mix": 0.2}}, "style_params.reverb.ir_key"),
    ):
        body = assert_error(
            client.post("/presets", json={"name": "nul", "style_params": params}, headers=h),
            400,
            "INVALID_INPUT",
            field,
        )
        assert "NUL" in body["message"]
    assert client.get("/presets", headers=h).json()["presets"] == []


def test_foreign_keys_cannot_be_used(api, tmp_path):
    client, ctx = api
    _, ha = login(client, ctx)
    _, hb = login(client, ctx)
    key = upload(client, ha, write_wav(tmp_path / "a.wav"))
    r = client.post("/jobs", json={"mode": "A", "ref_key": key, "tgt_key": key}, headers=hb)
    assert_error(r, 404, "NOT_FOUND", "tgt_key")
    assert ctx.status.query("SELECT count(*) AS n FROM jobs")[0]["n"] == 0


def test_rate_limit_per_user(backend, tmp_path, request):
    settings = make_settings(backend, tmp_path, request, rate_limit_per_s=1.0, rate_burst=3)
    ctx = context_from_settings(settings)
    try:
        with TestClient(create_app(ctx=ctx)) as client:
            _, h = login(client, ctx)
            _, h2 = login(client, ctx)
            codes = [client.get("/jobs", headers=h).status_code for _ in range(5)]
            assert codes[:3] == [200, 200, 200] and codes[-1] == 429
            r = client.get("/jobs", headers=h)
            body = assert_error(r, 429, "RATE_LIMITED")
            wait_s = int(r.headers["Retry-After"])
            assert wait_s >= 1 and body["detail"]["retry_after_s"] == wait_s
            assert body["message"] == f"too many requests; retry in {wait_s} s"  # not "retry in 0.0 s"
            assert client.get("/jobs", headers=h2).status_code == 200  # per user
    finally:
        ctx.status.drop_schema()
        ctx.status.close()


def test_console_files_and_openapi(api, tmp_path, monkeypatch):
    client, _ctx = api
    import functions.api.app as app_mod

    console = tmp_path / "console"
    monkeypatch.setattr(app_mod, "CONSOLE_DIR", console)
    assert_error(client.get("/"), 404, "NOT_FOUND")
    console.mkdir()
    (console / "index.html").write_text("<h1>tonematch</h1>")
    (console / "app.js").write_text("console.log(1)")
    assert client.get("/").text == "<h1>tonematch</h1>"
    assert client.get("/console/app.js").text == "console.log(1)"
    assert_error(client.get("/console/../app.py"), 404, "NOT_FOUND")
    assert_error(client.get("/console/%2e%2e/app.py"), 404, "NOT_FOUND")
    doc = client.get("/openapi.json").json()
    for path in (
        "/auth/login",
        "/auth/refresh",
        "/uploads/sign",
        "/uploads/complete",
        "/jobs",
        "/jobs/{job_id}",
        "/jobs/{job_id}/retry",
        "/presets",
        "/presets/{preset_id}",
        "/health",
        "/options",
    ):
        assert path in doc["paths"], path
    assert client.get("/health").json() == {"ok": True}


def test_settings_replace_keeps_secret(tmp_path):
    from functions.settings import Settings

    s = Settings(data_dir=tmp_path).resolved()
    again = replace(Settings(data_dir=tmp_path)).resolved()
    assert s.jwt_secret == again.jwt_secret and len(s.jwt_secret) > 30  # tokens survive restarts


def test_create_job_idempotent_and_bad_input_refused_before_work(api, tmp_path):
    client, ctx = api
    launched = []
    ctx.launch = launched.append
    user, h = login(client, ctx)
    ref = upload(client, h, write_wav(tmp_path / "r.wav", freq_hz=220))
    tgt = upload(client, h, write_wav(tmp_path / "t.wav", freq_hz=660))
    body = {"mode": "A", "ref_key": ref, "tgt_key": tgt, "opts": {"intensity": 0.8}}
    r1 = client.post("/jobs", json=body, headers=h)
    assert r1.status_code == 201 and r1.json()["created"] is True
    r2 = client.post("/jobs", json={**body, "opts": {"intensity": 0.8, "ceiling_dbtp": -1.0}}, headers=h)
    assert r2.status_code == 200 and r2.json() == {**r1.json(), "created": False}  # same canonical opts
    assert len(launched) == 1
    view = client.get(f"/jobs/{r1.json()['job_id']}", headers=h).json()
    assert view["status"] == "PENDING" and view["opts"]["intensity"] == 0.8 and view["mode"] == "A"
    assert client.get(view["inputs"]["reference_url"]).content == ctx.objects.get_bytes(ref)

    # bad input: each refused with the field, no job row, nothing stored touched
    bad_txt = (
        upload(client, h, tmp_path.joinpath("x.txt"), "audio/wav", "wav")
        if tmp_path.joinpath("x.txt").write_bytes(b"this is not audio at all")
        else None
    )
    short = upload(client, h, write_wav(tmp_path / "s.wav", seconds=0.3))
    cases = [
        ({**body, "opts": {"intensity": 5}}, 400, "INVALID_INPUT", "opts.intensity"),
        ({**body, "opts": {"colour": "red"}}, 400, "INVALID_INPUT", "opts.colour"),
        ({**body, "opts": {"output_format": "mp3"}}, 400, "INVALID_INPUT", "opts.output_format"),
        ({**body, "ref_key": f"{user['id']}/audio/raw/missing.wav"}, 404, "NOT_FOUND", "ref_key"),
        ({**body, "tgt_key": "../../etc/passwd"}, 400, "INVALID_INPUT", "tgt_key"),
        ({**body, "tgt_key": bad_txt}, 400, "INVALID_INPUT", "tgt_key"),
        ({**body, "ref_key": short}, 400, "INVALID_INPUT", "ref_key"),
        ({"mode": "A", "tgt_key": tgt}, 400, "INVALID_INPUT", "ref_key"),
        (
            {"mode": "A", "tgt_key": tgt, "preset_id": "00000000-0000-0000-0000-000000000000"},
            404,
            "NOT_FOUND",
            "preset_id",
        ),
    ]
    for req, status, code, field in cases:
        assert_error(client.post("/jobs", json=req, headers=h), status, code, field)
    assert ctx.status.query("SELECT count(*) AS n FROM jobs")[0]["n"] == 1
    assert len(launched) == 1
    for key in (ref, tgt, bad_txt, short):
        assert ctx.objects.exists(key)


def test_retrying_a_job_whose_input_is_gone_is_a_conflict(api, tmp_path):
    """A retry that could only fail again (its target deleted from the store) is refused with the
    field instead of being queued."""
    client, ctx = api
    launched = []
    ctx.launch = launched.append
    _, h = login(client, ctx)
    ref = upload(client, h, write_wav(tmp_path / "r.wav"))
    tgt = upload(client, h, write_wav(tmp_path / "t.wav", seed=1))
    r = client.post("/jobs", json={"mode": "A", "ref_key": ref, "tgt_key": tgt}, headers=h)
    job_id = r.json()["job_id"]
    ctx.status.update_job(job_id, status="FAILED", error="TransientError: x", last_step="AnalyzeTarget")
    ctx.objects.delete(tgt)
    body = assert_error(client.post(f"/jobs/{job_id}/retry", headers=h), 409, "CONFLICT", "tgt_key")
    assert "no longer exists" in body["message"] and body["detail"]["key"] == tgt
    assert ctx.status.get_job(job_id)["status"] == "FAILED" and len(launched) == 1


def test_presets_crud_and_ownership(api):
    client, ctx = api
    _, h = login(client, ctx)
    _, h2 = login(client, ctx)
    params = {"eq": [{"type": "peaking", "f_hz": 1000.0, "q": 1.0, "gain_db": 2.0}], "stereo": {"width": 1.1}}
    r = client.post("/presets", json={"name": "bright", "style_params": params}, headers=h)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert client.get(f"/presets/{pid}", headers=h).json()["style_params"]["stereo"]["width"] == 1.1
    assert [p["name"] for p in client.get("/presets", headers=h).json()["presets"]] == ["bright"]
    assert_error(
        client.post("/presets", json={"name": "bright", "style_params": params}, headers=h),
        409,
        "CONFLICT",
        "name",
    )
    bad = {"eq": [{"type": "peaking", "f_hz": 1000.0, "q": 1.0, "gain_db": 2.0}], "stereo": {"width": 7}}
    body = assert_error(
        client.post("/presets", json={"name": "x", "style_params": bad}, headers=h), 400, "INVALID_INPUT"
    )
    assert body["detail"]["field"].startswith("style_params.stereo")
    for method, path in (
        ("GET", f"/presets/{pid}"),
        ("PATCH", f"/presets/{pid}"),
        ("DELETE", f"/presets/{pid}"),
    ):
        r = client.request(method, path, json={"name": "mine"} if method == "PATCH" else None, headers=h2)
        assert_error(r, 404, "NOT_FOUND", "preset")
    assert client.get("/presets", headers=h2).json()["presets"] == []
    r = client.patch(f"/presets/{pid}", json={"name": "brighter"}, headers=h)
    assert r.status_code == 200 and r.json()["name"] == "brighter"
    assert client.delete(f"/presets/{pid}", headers=h).status_code == 204
    assert_error(client.get(f"/presets/{pid}", headers=h), 404, "NOT_FOUND")
    assert {"preset.create", "preset.rename", "preset.delete"} <= {
        a["action"] for a in ctx.status.audit_rows()
    }


def test_a_preset_that_cannot_apply_is_refused_before_any_work(api, tmp_path):
    """A job applying a preset in a mode it cannot run in is a 400 at creation (it used to be
    queued and then fail at Invert); so is a stored preset the engine no longer accepts."""
    client, ctx = api
    launched = []
    ctx.launch = launched.append
    user, h = login(client, ctx)
    tgt = upload(client, h, write_wav(tmp_path / "t.wav"))
    mode_b = {
        "compressor": {"threshold_db": -20, "ratio": 3, "attack_ms": 10, "release_ms": 100, "makeup_db": 0},
        "reverb": {"ir_key": "ir/hall_2.0s.wav", "mix": 0.2, "pre_delay_ms": 10},
    }
    pid = client.post("/presets", json={"name": "b", "style_params": mode_b}, headers=h).json()["id"]
    body = assert_error(
        client.post("/jobs", json={"mode": "A", "tgt_key": tgt, "preset_id": pid}, headers=h),
        400,
        "INVALID_INPUT",
        "mode",
    )
    assert "compressor, reverb" in body["message"] and "mode B" in body["message"]
    assert body["detail"]["preset_id"] == pid
    # an IR outside the library is refused when saved...
    bad_ir = {"reverb": {"ir_key": "../../etc/passwd", "mix": 0.2, "pre_delay_ms": 10}}
    assert_error(
        client.post("/presets", json={"name": "bad ir", "style_params": bad_ir}, headers=h),
        400,
        "INVALID_INPUT",
        "style_params.reverb.ir_key",
    )
    # ...and one saved before that check is refused when applied
    old = ctx.status.create_preset(user["id"], "old", bad_ir)
    body = assert_error(
        client.post("/jobs", json={"mode": "B", "tgt_key": tgt, "preset_id": old["id"]}, headers=h),
        400,
        "INVALID_INPUT",
        "preset_id",
    )
    assert "style_params.reverb.ir_key" in body["message"]
    assert ctx.status.query("SELECT count(*) AS n FROM jobs")[0]["n"] == 0 and launched == []
    # intensity is a matching option: a preset is applied as saved
    body = assert_error(
        client.post("/jobs", json={"mode": "B", "tgt_key": tgt, "preset_id": pid, "opts": {"intensity": 0.5}},
                    headers=h),
        400,
        "INVALID_INPUT",
        "opts.intensity",
    )
    assert "applied as saved" in body["message"]
    r = client.post("/jobs", json={"mode": "B", "tgt_key": tgt, "preset_id": pid}, headers=h)
    assert r.status_code == 201, r.text
    # the preset's own ceiling stays unless the job sets one
    assert ctx.status.get_job(r.json()["job_id"])["opts"]["ceiling_dbtp"] is None


def test_options_document(api):
    client, _ = api
    doc = client.get("/options").json()["options"]
    assert doc["intensity"]["min"] == 0 and doc["intensity"]["max"] == 1
    assert doc["ceiling_dbtp"]["unit"] == "dBTP" and doc["ceiling_dbtp"]["default"] == -1.0
    assert "flac" in doc["output_format"]["choices"]


def test_a_preset_used_by_an_old_queued_job_cannot_be_deleted(api):
    """DELETE /presets/{id} looked for a queued or running job using the preset among the user's
    1000 newest jobs only: behind a backlog of newer jobs (a drop-folder import) the preset was
    deleted and the queued job failed when it reached its Invert step."""
    client, ctx = api
    user, h = login(client, ctx)
    params = {"eq": [], "lufs": {"target_db": -14.0}}
    pid = client.post("/presets", json={"name": "p", "style_params": params}, headers=h).json()["id"]
    ctx.status.create_job(
        user_id=user["id"], mode="A", ref_key=None, tgt_key=f"{user['id']}/old.wav", opts={},
        idempotency_key="old", preset_id=pid,
    )
    with ctx.status.transaction():
        for i in range(1000):
            job, _ = ctx.status.create_job(
                user_id=user["id"], mode="A", ref_key=None, tgt_key=f"{user['id']}/t{i}.wav", opts={},
                idempotency_key=f"k{i}",
            )
            ctx.status.update_job(job["id"], status="COMPLETED")
    assert_error(client.delete(f"/presets/{pid}", headers=h), 409, "CONFLICT", "preset_id")
    assert ctx.status.get_preset(pid) is not None
