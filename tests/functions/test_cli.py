"""`tonematch users` and `tonematch drop` (the service commands engine.cli forwards)."""

from __future__ import annotations

from functions.api.auth import verify_password
from functions.cli import main
from functions.pipeline.context import context_from_settings
from functions.settings import Settings
from tests.functions.conftest import free_port, write_wav


def test_users_add_hashes_and_updates(tmp_path, capsys):
    data = str(tmp_path / "data")
    assert main(["users", "add", "Ann@Example.com", "--password", "a long password", "--data-dir", data]) == 0
    ctx = context_from_settings(Settings(data_dir=tmp_path / "data"))
    user = ctx.status.get_user_by_email("ann@example.com")
    assert user["password_hash"].startswith("$argon2id$")
    assert verify_password(user["password_hash"], "a long password")
    assert (
        main(["users", "add", "ann@example.com", "--password", "another password", "--data-dir", data]) == 0
    )
    assert verify_password(ctx.status.get_user(user["id"])["password_hash"], "another password")
    assert main(["users", "add", "bob@example.com", "--password", "short", "--data-dir", data]) == 2
    assert "at least 8 characters" in capsys.readouterr().err
    assert main(["users", "list", "--data-dir", data]) == 0
    assert "ann@example.com" in capsys.readouterr().out


def _user_and_pair(tmp_path) -> tuple[str, str, str]:
    """A data dir with the user a@example.com, and a reference/target pair to drop."""
    data = str(tmp_path / "data")
    main(["users", "add", "a@example.com", "--password", "a long password", "--data-dir", data])
    return data, str(write_wav(tmp_path / "r.wav")), str(write_wav(tmp_path / "t.wav", seed=1))


def test_drop_copies_the_pair_into_the_users_drop_folder(tmp_path, capsys):
    data, ref, tgt = _user_and_pair(tmp_path)
    assert main(["drop", "a@example.com", str(ref), str(tgt), "--batch", "b1", "--data-dir", data]) == 0
    folder = capsys.readouterr().out.strip().splitlines()[-1]
    ctx = context_from_settings(Settings(data_dir=tmp_path / "data"))
    assert folder.endswith("/b1") and sorted(ctx.objects.list(folder + "/")) == [
        f"{folder}/reference.wav",
        f"{folder}/target.wav",
    ]
    assert main(["drop", "nobody@example.com", str(ref), str(tgt), "--data-dir", data]) == 2
    assert "no user" in capsys.readouterr().err


def test_serve_reads_workers_and_public_url_from_the_environment(tmp_path, monkeypatch):
    # functions/settings.py documents TONEMATCH_WORKERS and TONEMATCH_PUBLIC_URL; `tonematch serve`
    # overwrote both with its own defaults (None: one process per core; http://HOST:PORT)
    from functions.cli import _parser, _serve_settings

    monkeypatch.setenv("TONEMATCH_WORKERS", "1")
    monkeypatch.setenv("TONEMATCH_PUBLIC_URL", "https://audio.example.com")
    args = _parser().parse_args(["serve", "--data-dir", str(tmp_path / "data")])
    s = _serve_settings(args)
    assert (s.workers, s.public_url) == (1, "https://audio.example.com")
    args = _parser().parse_args(["serve", "--workers", "3", "--public-url", "http://h:1",
                                 "--data-dir", str(tmp_path / "data")])
    assert (_serve_settings(args).workers, _serve_settings(args).public_url) == (3, "http://h:1")
    monkeypatch.delenv("TONEMATCH_WORKERS")
    monkeypatch.delenv("TONEMATCH_PUBLIC_URL")
    args = _parser().parse_args(["serve", "--host", "0.0.0.0", "--port", "8123",
                                 "--data-dir", str(tmp_path / "data")])
    assert (_serve_settings(args).workers, _serve_settings(args).public_url) == (None, "http://127.0.0.1:8123")


def test_drop_into_a_batch_that_exists_is_refused(tmp_path, capsys):
    """`tonematch drop ... --batch nightly` run again (tomorrow's files) overwrote the inputs of the
    batch's first job, running or done, and started nothing: the batch already had its job.json.
    It is refused, naming the batch, and the first batch's files stay as they were."""
    data, ref, tgt = _user_and_pair(tmp_path)
    assert main(["drop", "a@example.com", str(ref), str(tgt), "--batch", "nightly", "--data-dir", data]) == 0
    folder = capsys.readouterr().out.strip().splitlines()[-1]
    ctx = context_from_settings(Settings(data_dir=tmp_path / "data"))
    first = ctx.objects.get_bytes(f"{folder}/target.wav")
    other = write_wav(tmp_path / "t2.wav", seed=2, seconds=4.0)
    again = ["drop", "a@example.com", str(ref), str(other), "--batch", "nightly", "--data-dir", data]
    assert main(again) == 2
    err = capsys.readouterr().err
    assert "nightly" in err and "already" in err and "--batch" in err
    assert ctx.objects.get_bytes(f"{folder}/target.wav") == first


def test_a_second_server_on_the_same_data_dir_or_port_is_refused_before_it_runs_anything(tmp_path, capsys):
    """A second `tonematch serve` resumed and ran the first one's queued jobs (from the same data dir)
    and only then failed to bind the port: two runners on one job. Now it refuses at once."""
    import socket
    import subprocess
    import sys
    import time

    port = free_port()
    data = tmp_path / "data"
    first = subprocess.Popen(
        [sys.executable, "-m", "functions.cli", "serve", "--port", str(port), "--data-dir", str(data),
         "--no-drop-watch", "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = [first.stdout.readline() for _ in range(2)]
        assert any("serving on" in line for line in lines), lines
        deadline = time.time() + 30
        while time.time() < deadline:
            with socket.socket() as c:
                if c.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        capsys.readouterr()
        assert main(["serve", "--port", "0", "--data-dir", str(data)]) == 2
        err = capsys.readouterr().err
        assert f"is in use by another tonematch serve (pid {first.pid})" in err, err
        assert main(["serve", "--port", str(port), "--data-dir", str(tmp_path / "other")]) == 2
        err = capsys.readouterr().err
        assert f"cannot listen on 127.0.0.1:{port}" in err, err
        assert not (tmp_path / "other" / "tonematch.sqlite3").exists()  # nothing was started there
    finally:
        first.terminate()
        first.wait(30)
