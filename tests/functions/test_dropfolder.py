"""The drop folder: a reference/target pair (or a manifest) under drop/{user_id}/{batch}/ starts one
job; everything else is ignored, waited for or rejected with an error.json, never lost."""

from __future__ import annotations

import json
import shutil

import pytest

from functions.dropfolder import DropWatcher, handle_object_created
from tests.functions.conftest import add_user, write_wav


@pytest.fixture
def launched(ctx):
    events = []
    ctx.launch = events.append
    return events


def _put(ctx, key, path):
    ctx.objects.put_file(key, path)
    return handle_object_created(key, ctx)


def test_pair_starts_one_job_and_redelivery_starts_nothing(ctx, launched, tmp_path):
    u = add_user(ctx)
    folder = f"drop/{u['id']}/b1"
    ref, tgt = write_wav(tmp_path / "r.wav", freq_hz=220), write_wav(tmp_path / "t.wav", freq_hz=880)
    first = _put(ctx, f"{folder}/reference.wav", ref)
    assert first == {"action": "waiting", "missing": ["target"], "folder": folder}
    second = _put(ctx, f"{folder}/target.wav", tgt)
    assert second["action"] == "started"
    job = ctx.status.get_job(second["job_id"], u["id"])
    assert job["ref_key"] == f"{folder}/reference.wav" and job["tgt_key"] == f"{folder}/target.wav"
    assert json.loads(ctx.objects.get_bytes(f"{folder}/job.json"))["job_id"] == job["id"]
    again = handle_object_created(f"{folder}/target.wav", ctx)  # S3 delivers events at least once
    assert again["action"] == "exists" and again["job_id"] == job["id"]
    assert len(launched) == 1 and launched[0]["job_id"] == job["id"]
    assert any(
        a["action"] == "job.create" and a["payload"]["source"] == "drop" for a in ctx.status.audit_rows()
    )


def test_an_opus_target_starts_a_job(ctx, launched, tmp_path):
    """.opus is how Ogg Opus files are named (phones, browsers, podcasts); the engine reads it."""
    import soundfile as sf

    u = add_user(ctx)
    folder = f"drop/{u['id']}/opus"
    audio, _ = sf.read(write_wav(tmp_path / "t.wav", freq_hz=440), dtype="float32")
    sf.write(tmp_path / "t.opus", audio, 48000, format="OGG", subtype="OPUS")
    _put(ctx, f"{folder}/reference.wav", write_wav(tmp_path / "r.wav", freq_hz=220))
    r = _put(ctx, f"{folder}/target.opus", tmp_path / "t.opus")
    assert r["action"] == "started", r
    assert ctx.status.get_job(r["job_id"], u["id"])["tgt_key"] == f"{folder}/target.opus"


def test_manifest_names_files_and_mode(ctx, launched, tmp_path):
    u = add_user(ctx)
    folder = f"drop/{u['id']}/b2"
    ctx.objects.put_bytes(
        f"{folder}/manifest.json",
        json.dumps(
            {"reference": "song.wav", "target": "mix.wav", "mode": "B", "opts": {"intensity": 0.5}}
        ).encode(),
    )
    assert handle_object_created(f"{folder}/manifest.json", ctx)["action"] == "waiting"
    ctx.objects.put_file(f"{folder}/song.wav", write_wav(tmp_path / "r.wav"))
    r = _put(ctx, f"{folder}/mix.wav", write_wav(tmp_path / "t.wav", seed=3))
    assert r["action"] == "ignored"  # mix.wav is not a trigger name; the manifest is
    r = handle_object_created(f"{folder}/manifest.json", ctx)
    assert r["action"] == "started"
    job = ctx.status.get_job(r["job_id"])
    assert job["mode"] == "B" and job["opts"]["intensity"] == 0.5


def test_ignored_and_rejected_inputs(ctx, launched, tmp_path):
    u = add_user(ctx)
    assert handle_object_created("elsewhere/x/reference.wav", ctx)["action"] == "ignored"
    assert handle_object_created("drop/not-a-user/b/reference.wav", ctx)["action"] == "ignored"
    assert handle_object_created(f"drop/{add_user(ctx)['id']}0/b/reference.wav", ctx)["action"] == "ignored"
    assert handle_object_created(f"drop/{u['id']}/b/notes.txt", ctx)["action"] == "ignored"
    folder = f"drop/{u['id']}/bad"
    ctx.objects.put_bytes(f"{folder}/reference.txt", b"hello")
    r = handle_object_created(f"{folder}/reference.txt", ctx)
    assert r["action"] == "rejected" and r["code"] == "INVALID_INPUT"
    # a pair where the target is not audio: rejected with the field and reason, inputs kept
    ref = write_wav(tmp_path / "r.wav")
    ctx.objects.put_file(f"{folder}/reference.wav", ref)
    ctx.objects.put_bytes(f"{folder}/target.wav", b"RIFF garbage, not a wave file")
    r = handle_object_created(f"{folder}/target.wav", ctx)
    assert r["action"] == "rejected" and r["detail"]["field"] == "tgt_key", r
    err = json.loads(ctx.objects.get_bytes(f"{folder}/error.json"))
    assert err["code"] == "INVALID_INPUT" and err["detail"]["key"] == f"{folder}/target.wav"
    assert ctx.objects.exists(f"{folder}/target.wav") and ctx.objects.exists(f"{folder}/reference.wav")
    ctx.objects.put_bytes(f"drop/{u['id']}/m/manifest.json", b"{not json")
    assert handle_object_created(f"drop/{u['id']}/m/manifest.json", ctx)["action"] == "rejected"
    assert launched == [] and ctx.status.query("SELECT count(*) AS n FROM jobs")[0]["n"] == 0


def test_a_rejection_is_written_and_logged_once_across_restarts(ctx, launched, tmp_path):
    """A restarted server's watcher looks at every object in the drop folder again (and S3 may
    deliver an event twice): a batch already answered with this error is not rewritten or audited
    again; a different problem still is."""
    u = add_user(ctx)
    folder = ctx.objects.root / "drop" / u["id"] / "bad"
    folder.mkdir(parents=True)
    shutil.copyfile(write_wav(tmp_path / "r.wav"), folder / "reference.wav")
    (folder / "target.wav").write_bytes(b"RIFF garbage, not a wave file")

    def rejections() -> int:
        return sum(a["action"] == "drop.rejected" for a in ctx.status.audit_rows(u["id"]))

    for _ in range(3):  # three server starts
        watcher = DropWatcher(ctx, interval_s=0.01)
        assert "rejected" in {r["action"] for r in watcher.scan() + watcher.scan()}
    assert rejections() == 1
    assert "not a readable audio file" in json.loads((folder / "error.json").read_text())["message"]
    shutil.copyfile(write_wav(tmp_path / "short.wav", seconds=0.5), folder / "target.wav")  # another problem
    watcher.scan()
    watcher.scan()
    assert rejections() == 2
    assert "at least 1 s" in json.loads((folder / "error.json").read_text())["message"]
    assert launched == []


def test_a_manifest_the_job_cannot_run_gets_an_error_json(ctx, launched, tmp_path):
    """What POST /jobs refuses, a manifest gets as error.json naming the field, instead of a job
    that fails later (a mode-B preset in mode A) or a batch that answers nothing (an integer too
    large for a float; a NUL in an option's name, which the rejection's audit row could not store)."""
    u = add_user(ctx)
    preset = ctx.status.create_preset(u["id"], "b", {"reverb": {"ir_key": "ir/hall_2.0s.wav", "mix": 0.2}})
    cases = (
        ({"target": "t.wav", "preset_id": preset["id"], "mode": "A"}, b"", "mode"),
        ({"reference": "r.wav", "target": "t.wav"}, b', "opts": {"segment_s": 1' + b"0" * 400 + b"}",
         "opts.segment_s"),
        ({"reference": "r.wav", "target": "t.wav", "opts": {"a\x00": 1}}, b"", "opts"),  # PostgreSQL: no NUL
    )
    for i, (manifest, extra, field) in enumerate(cases):
        folder = f"drop/{u['id']}/m{i}"
        ctx.objects.put_file(f"{folder}/r.wav", write_wav(tmp_path / "r.wav"))
        ctx.objects.put_file(f"{folder}/t.wav", write_wav(tmp_path / "t.wav", seed=2))
        ctx.objects.put_bytes(f"{folder}/manifest.json", json.dumps(manifest).encode()[:-1] + extra + b"}")
        r = handle_object_created(f"{folder}/manifest.json", ctx)
        assert r["action"] == "rejected" and r["detail"]["field"] == field, r
        err = json.loads(ctx.objects.get_bytes(f"{folder}/error.json"))
        assert err["code"] == "INVALID_INPUT" and err["detail"]["field"] == field
    assert launched == [] and ctx.status.query("SELECT count(*) AS n FROM jobs")[0]["n"] == 0


def test_watcher_waits_for_a_stable_size(ctx, launched, tmp_path):
    u = add_user(ctx)
    watcher = DropWatcher(ctx, interval_s=0.01)
    folder = ctx.objects.root / "drop" / u["id"] / "w"
    folder.mkdir(parents=True)
    shutil.copyfile(write_wav(tmp_path / "r.wav"), folder / "reference.wav")
    shutil.copyfile(write_wav(tmp_path / "t.wav", seed=2), folder / "target.wav")
    assert watcher.scan() == []  # first sight: sizes noted, not handled yet
    results = watcher.scan()
    assert sorted(r["action"] for r in results) in (["exists", "started"], ["started", "waiting"])
    assert len(launched) == 1
    assert watcher.scan() == []  # handled once


def test_a_batch_named_with_a_space_is_answered_and_blocks_no_one(ctx, launched, tmp_path):
    """"my batch/" is a folder name people make; the store refuses such keys. The batch gets an
    error beside it saying what to rename, and another user's batch in the same scan still starts."""
    first, second = sorted((add_user(ctx), add_user(ctx)), key=lambda u: u["id"])  # bad one sorts first
    bad = ctx.objects.root / "drop" / first["id"] / "my batch"
    good = ctx.objects.root / "drop" / second["id"] / "ok"
    for folder in (bad, good):
        folder.mkdir(parents=True)
        shutil.copyfile(write_wav(tmp_path / "r.wav"), folder / "reference.wav")
        shutil.copyfile(write_wav(tmp_path / "t.wav", seed=2), folder / "target.wav")
    watcher = DropWatcher(ctx, interval_s=0.01)
    results = watcher.scan() + watcher.scan()
    assert [r["job_id"] for r in results if r["action"] == "started"] == [launched[0]["job_id"]]
    assert ctx.status.get_job(launched[0]["job_id"], second["id"]) is not None
    err = json.loads(ctx.objects.get_bytes(f"drop/{first['id']}/my_batch.error.json"))
    assert err["code"] == "INVALID_INPUT" and err["detail"]["field"] == "my batch"
    assert "rename" in err["message"] and f"{first['id']}/my batch/" in err["detail"]["key"]
    assert (bad / "reference.wav").exists() and (bad / "target.wav").exists()  # nothing lost
    assert [r for r in watcher.scan() if r["action"] != "ignored"] == [] and len(launched) == 1


def test_an_odd_file_name_in_a_good_batch_is_ignored(ctx, launched):
    u = add_user(ctx)
    r = handle_object_created(f"drop/{u['id']}/b/cover art (1).jpg", ctx)
    assert r["action"] == "ignored" and "cover art (1).jpg" in r["reason"]


def test_a_copy_that_stalled_half_way_starts_its_job_once_it_completes(ctx, launched, tmp_path):
    """A copy that pauses longer than a poll (a slow network share) is seen at a stable size while
    still incomplete: the batch gets an error.json for the truncated file. When the copy then
    completes the file is looked at again and the job starts (the stale error.json goes); it used
    to stay rejected until the server restarted."""
    u = add_user(ctx)
    watcher = DropWatcher(ctx, interval_s=0.01)
    folder = ctx.objects.root / "drop" / u["id"] / "slow"
    folder.mkdir(parents=True)
    shutil.copyfile(write_wav(tmp_path / "r.wav"), folder / "reference.wav")
    data = write_wav(tmp_path / "t.wav", seed=2).read_bytes()
    (folder / "target.wav").write_bytes(data[: len(data) // 2])  # the copy stalls here
    results = watcher.scan() + watcher.scan()
    assert {r["action"] for r in results} == {"rejected"}, results
    err = json.loads((folder / "error.json").read_text())
    assert "truncated" in err["message"] and err["detail"]["key"].endswith("/slow/target.wav"), err
    assert launched == []

    with open(folder / "target.wav", "ab") as fh:  # ...and completes
        fh.write(data[len(data) // 2 :])
    results = watcher.scan() + watcher.scan()
    started = [r for r in results if r["action"] == "started"]
    assert len(started) == 1 and len(launched) == 1, results
    assert json.loads((folder / "job.json").read_text())["job_id"] == started[0]["job_id"]
    assert not (folder / "error.json").exists()
    assert [r for r in watcher.scan() if r["action"] not in ("ignored", "exists")] == []
