"""The status store behaves the same on PostgreSQL and SQLite (every test runs on both)."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from functions.stores.status import ConflictError, StatusStore
from tests.functions.conftest import add_user


def test_migrations_are_versioned_and_rerunnable(ctx):
    st = ctx.status
    assert st.schema_version() == max(v for v, _, _ in st.migrations())
    assert st.migrate() == []  # nothing pending the second time
    rows = st.query("SELECT version, name FROM schema_migrations ORDER BY version")
    assert rows[0]["version"] == 1 and rows[0]["name"] == "init"


def test_seed_tables_and_indexes_exist(ctx):
    st = ctx.status
    if st.dialect == "postgres":
        tables = {
            r["table_name"]
            for r in st.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            )
        }
        idx = {
            r["indexname"]: r["indexdef"]
            for r in st.query(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            )
        }
        assert "gin" in idx["jobs_metrics_gin"].lower() and "jsonb_path_ops" in idx["jobs_metrics_gin"]
        assert "created_at DESC" in idx["jobs_user_created_idx"]
        cols = {
            r["column_name"]: r["data_type"]
            for r in st.query(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'jobs' "
                "AND table_schema = current_schema()"
            )
        }
        assert cols["params"] == "jsonb" and cols["id"] == "uuid" and cols["progress"] == "smallint"
    else:
        tables = {r["name"] for r in st.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
        idx = {
            r["name"]: r["sql"]
            for r in st.query("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        }
    assert {
        "users",
        "jobs",
        "job_segments",
        "presets",
        "metrics",
        "audit_logs",
        "billing",
        "schema_migrations",
    } <= tables
    assert {"jobs_status_idx", "jobs_user_created_idx", "presets_user_name_uniq"} <= set(idx)


def test_json_columns_round_trip_identically(ctx):
    u = add_user(ctx)
    opts = {"intensity": 0.5, "exclude": ["stereo"], "nested": {"a": [1, 2.5, None]}}
    job, created = ctx.status.create_job(
        user_id=u["id"], mode="A", ref_key="r", tgt_key="t", opts=opts, idempotency_key="k1"
    )
    assert created and job["opts"] == opts and job["status"] == "PENDING" and job["progress"] == 0
    ctx.status.update_job(job["id"], params={"eq": [{"type": "peaking", "f_hz": 1000.0}]})
    assert ctx.status.get_job(job["id"])["params"]["eq"][0]["f_hz"] == 1000.0
    assert isinstance(job["created_at"], str) and job["created_at"].endswith("+00:00")


def test_idempotency_key_returns_the_active_job_even_when_racing(ctx):
    u = add_user(ctx)
    results = []

    def create():
        results.append(
            ctx.status.create_job(
                user_id=u["id"], mode="A", ref_key="r", tgt_key="t", opts={}, idempotency_key="same"
            )
        )

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = {job["id"] for job, _ in results}
    assert len(ids) == 1 and sum(created for _, created in results) == 1
    # once finished, the same key may run again
    ctx.status.update_job(ids.pop(), status="COMPLETED")
    _again, created = ctx.status.create_job(
        user_id=u["id"], mode="A", ref_key="r", tgt_key="t", opts={}, idempotency_key="same"
    )
    assert created


def test_progress_only_rises_and_finished_jobs_stay_finished(ctx):
    u = add_user(ctx)
    job, _ = ctx.status.create_job(
        user_id=u["id"], mode="A", ref_key="r", tgt_key="t", opts={}, idempotency_key="p"
    )
    ctx.status.advance_job(job["id"], "RENDERING", 50, "RenderSegment")
    ctx.status.advance_job(job["id"], "RENDERING", 30)
    row = ctx.status.get_job(job["id"])
    assert (row["status"], row["progress"], row["last_step"]) == ("RENDERING", 50, "RenderSegment")
    ctx.status.update_job(job["id"], status="FAILED", error="boom")
    ctx.status.advance_job(job["id"], "RENDERING", 90)
    assert ctx.status.get_job(job["id"])["status"] == "FAILED"


def test_ownership_and_unknown_ids(ctx):
    a, b = add_user(ctx), add_user(ctx)
    job, _ = ctx.status.create_job(
        user_id=a["id"], mode="A", ref_key="r", tgt_key="t", opts={}, idempotency_key="o"
    )
    assert ctx.status.get_job(job["id"], a["id"]) is not None
    assert ctx.status.get_job(job["id"], b["id"]) is None
    assert ctx.status.get_job("not-a-uuid") is None
    p = ctx.status.create_preset(a["id"], "warm", {"eq": []})
    assert ctx.status.get_preset(p["id"], b["id"]) is None


def test_preset_names_unique_per_user(ctx):
    a, b = add_user(ctx), add_user(ctx)
    ctx.status.create_preset(a["id"], "warm", {"eq": []})
    ctx.status.create_preset(b["id"], "warm", {"eq": []})  # another user may reuse the name
    with pytest.raises(ConflictError):
        ctx.status.create_preset(a["id"], "warm", {"eq": []})


def test_billing_once_per_job_and_segments(ctx):
    u = add_user(ctx)
    job, _ = ctx.status.create_job(
        user_id=u["id"], mode="A", ref_key="r", tgt_key="t", opts={}, idempotency_key="b"
    )
    assert ctx.status.bill(u["id"], job["id"], 240.0) is True
    assert ctx.status.bill(u["id"], job["id"], 240.0) is False
    assert ctx.status.billed_seconds(u["id"]) == pytest.approx(240.0)
    ctx.status.init_segments(job["id"], 3)
    ctx.status.init_segments(job["id"], 3)
    ctx.status.finish_segment(job["id"], 1, {"duration_s": 60.0})
    assert ctx.status.segment_counts(job["id"]) == (1, 3)


def test_billing_commits_or_rolls_back_with_the_completion(ctx):
    """Finalize billed, then marked the job COMPLETED: a failure between the two left a job that did
    not complete billed. Both now share one transaction, in which a second bill is a no-op (a unique
    violation would have aborted a PostgreSQL transaction)."""
    st = ctx.status
    u = add_user(ctx)
    job, _ = st.create_job(user_id=u["id"], mode="A", ref_key="r", tgt_key="t", opts={}, idempotency_key="c")
    with pytest.raises(RuntimeError), st.transaction():
        assert st.bill(u["id"], job["id"], 60.0) is True
        raise RuntimeError("the COMPLETED update failed")
    assert st.billed_seconds(u["id"]) == 0.0
    with st.transaction():
        assert st.bill(u["id"], job["id"], 60.0) is True
        assert st.bill(u["id"], job["id"], 60.0) is False
        st.update_job(job["id"], status="COMPLETED")
    assert st.billed_seconds(u["id"]) == pytest.approx(60.0)
    assert st.get_job(job["id"])["status"] == "COMPLETED"


def test_bad_urls_are_refused():
    with pytest.raises(ValueError, match="postgresql://"):
        StatusStore("mysql://x")
    with pytest.raises(ValueError, match="schema"):
        StatusStore("postgresql://x/y", schema="bad; drop")


@pytest.mark.postgres
def test_a_connection_reopened_after_the_iam_token_expired_gets_a_fresh_token(pg_url, monkeypatch):
    """RDS Proxy takes IAM tokens that live 15 minutes and are checked only at connect time: a Batch
    render longer than that, or a warm Lambda, whose connection dropped must reconnect with a new
    token, not the one signed when the process started."""
    from functions.stores import db_auth

    class FakeRds:
        signed = 0

        def generate_db_auth_token(self, DBHostname, Port, DBUsername):
            FakeRds.signed += 1
            return f"{DBHostname}:{Port}/?Action=connect&DBUser={DBUsername}&token={FakeRds.signed}"

    clock = [1000.0]
    monkeypatch.setenv("TONEMATCH_DB_IAM_AUTH", "1")
    monkeypatch.setenv("TONEMATCH_DATABASE_URL", pg_url)
    monkeypatch.setenv("PGPASSWORD", "")  # registered, so teardown restores the real environment
    monkeypatch.setenv("PGSSLMODE", "disable")  # the local test server (trust auth, no TLS)
    monkeypatch.setattr(db_auth, "_token_signed_at", 0.0)
    monkeypatch.setattr(db_auth, "_rds_client", FakeRds)
    monkeypatch.setattr(db_auth.time, "time", lambda: clock[0])
    st = StatusStore(pg_url, schema=f"tm_iam_{uuid.uuid4().hex[:8]}")
    try:
        st.migrate()
        assert os.environ["PGPASSWORD"].endswith("token=1")
        st._conn().close()  # the proxy dropped the connection while a 12-minute render ran
        clock[0] += 12 * 60
        assert st.get_job(str(uuid.uuid4())) is None  # reconnects
        assert os.environ["PGPASSWORD"].endswith("token=2")
    finally:
        st.drop_schema()
        st.close()
