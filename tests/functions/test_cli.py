"""`tonematch users` and `tonematch drop` (the service commands engine.cli forwards)."""

from __future__ import annotations

from functions.api.auth import verify_password
from functions.cli import main
from functions.pipeline.context import context_from_settings
from functions.settings import Settings
from tests.functions.conftest import write_wav


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


def test_drop_copies_the_pair_into_the_users_drop_folder(tmp_path, capsys):
    data = str(tmp_path / "data")
    main(["users", "add", "a@example.com", "--password", "a long password", "--data-dir", data])
    ref, tgt = write_wav(tmp_path / "r.wav"), write_wav(tmp_path / "t.wav", seed=1)
    assert main(["drop", "a@example.com", str(ref), str(tgt), "--batch", "b1", "--data-dir", data]) == 0
    folder = capsys.readouterr().out.strip().splitlines()[-1]
    ctx = context_from_settings(Settings(data_dir=tmp_path / "data"))
    assert folder.endswith("/b1") and sorted(ctx.objects.list(folder + "/")) == [
        f"{folder}/reference.wav",
        f"{folder}/target.wav",
    ]
    assert main(["drop", "nobody@example.com", str(ref), str(tgt), "--data-dir", data]) == 2
    assert "no user" in capsys.readouterr().err
