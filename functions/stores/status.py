"""The status store: users, jobs, segments, presets, metrics, audit, billing, dead letters.

One class, two databases: PostgreSQL (psycopg 3, ``jsonb``, uuid, timestamptz) and SQLite (the
embedded default; JSON, uuids and times as text). Queries are written once with ``?`` placeholders;
rows come back as plain dicts with JSON columns decoded, ids as ``str`` and times as ISO-8601 UTC
strings on both databases. Schema changes are versioned SQL files in ``migrations/``
(``NNNN_name.{postgres,sqlite}.sql``), recorded in ``schema_migrations``.

Connections are per thread (the API server, the runner's threads and the render processes each open
their own). Connection faults and lock time-outs surface as :class:`TransientError` so the pipeline
retries them.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from functions.pipeline.errors import TransientError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
JSON_COLUMNS = frozenset(
    {"params", "metrics", "loudness", "outputs", "state", "opts", "style_params", "payload", "detail"}
)
ACTIVE_STATUSES = ("PENDING", "ANALYZING", "INVERTING", "RENDERING")
TERMINAL_STATUSES = ("COMPLETED", "FAILED")
JOB_COLUMNS = frozenset(
    {
        "status",
        "progress",
        "params",
        "metrics",
        "loudness",
        "outputs",
        "state",
        "error",
        "last_step",
        "attempts",
        "updated_at",
    }
)


class ConflictError(Exception):
    """A uniqueness rule refused the write (preset name taken, idempotency key busy)."""


def now_iso() -> str:
    """The current UTC time as ISO-8601 with microseconds (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def new_id() -> str:
    return str(uuid.uuid4())


UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_uuid(value: Any) -> bool:
    """True for an id in the one form this store writes (lower-case, dashed). Only that form: the
    other spellings ``uuid.UUID`` takes (upper case, no dashes, braces, ``urn:uuid:``) would name
    the same row on PostgreSQL and no row on SQLite, or make PostgreSQL raise."""
    return isinstance(value, str) and UUID_RE.fullmatch(value) is not None


class StatusStore:
    """Status store on ``postgresql://...`` or ``sqlite:///path`` (see module docstring)."""

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema
        if url.startswith(("postgresql://", "postgres://")):
            self.dialect = "postgres"
            if schema and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
                raise ValueError(f"database schema name {schema!r} must match [a-z_][a-z0-9_]*")
        elif url.startswith("sqlite://"):
            self.dialect = "sqlite"
            self.sqlite_path = url.removeprefix("sqlite:///") if url != "sqlite://" else ":memory:"
            if self.sqlite_path != ":memory:":
                Path(self.sqlite_path).parent.mkdir(parents=True, exist_ok=True)
        else:
            raise ValueError(f"database URL must start with postgresql:// or sqlite:///, got {url!r}")
        self._local = threading.local()
        self._all_conns: list[Any] = []
        self._lock = threading.Lock()

    # ---- connections -------------------------------------------------------------------------
    def _connect(self) -> Any:
        if self.dialect == "postgres":
            import psycopg

            from functions.stores.db_auth import refresh_db_credentials

            # an IAM token outlives neither a long render nor a warm Lambda
            refresh_db_credentials(database_url=self.url)
            try:
                conn = psycopg.connect(self.url, autocommit=True)
            except psycopg.OperationalError as exc:
                raise TransientError(f"database unreachable: {exc}") from exc
            if self.schema:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                conn.execute(f'SET search_path TO "{self.schema}"')
        else:
            conn = sqlite3.connect(
                self.sqlite_path, isolation_level=None, timeout=30.0, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._all_conns.append(conn)
        return conn

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self.dialect == "postgres" and conn.closed:
            conn = None
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close every connection this store opened (all threads)."""
        with self._lock:
            conns, self._all_conns = self._all_conns, []
        for c in conns:
            with suppress(Exception):
                c.close()
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A transaction on this thread's connection (nesting is flattened)."""
        conn = self._conn()
        depth = getattr(self._local, "tx_depth", 0)
        if depth:
            self._local.tx_depth = depth + 1
            try:
                yield
            finally:
                self._local.tx_depth = depth
            return
        self._local.tx_depth = 1
        try:
            if self.dialect == "postgres":
                with conn.transaction():
                    yield
            else:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        finally:
            self._local.tx_depth = 0

    def _params(self, params: tuple | list) -> list:
        out = []
        for p in params:
            if isinstance(p, dict | list):
                p = json.dumps(p, separators=(",", ":"), allow_nan=False)
            elif isinstance(p, bool) and self.dialect == "sqlite":
                p = int(p)
            out.append(p)
        return out

    def _row(self, cols: list[str], values: tuple) -> dict:
        row: dict[str, Any] = {}
        for c, v in zip(cols, values, strict=True):
            if v is None:
                row[c] = None
            elif c in JSON_COLUMNS and isinstance(v, str):
                row[c] = json.loads(v)
            elif isinstance(v, uuid.UUID):
                row[c] = str(v)
            elif isinstance(v, datetime):
                row[c] = v.astimezone(UTC).isoformat(timespec="microseconds")
            elif c == "public":
                row[c] = bool(v)
            else:
                row[c] = v
        return row

    def query(self, sql: str, params: tuple | list = ()) -> list[dict]:
        """Run one statement; returns its rows as dicts (empty for writes without RETURNING)."""
        conn = self._conn()
        args = self._params(params)
        try:
            if self.dialect == "postgres":
                import psycopg

                try:
                    cur = conn.execute(sql.replace("?", "%s"), args)
                except psycopg.errors.UniqueViolation as exc:
                    raise ConflictError(str(exc)) from exc
                except psycopg.OperationalError as exc:
                    self._local.conn = None
                    raise TransientError(f"database error: {exc}") from exc
            else:
                try:
                    cur = conn.execute(sql, args)
                except sqlite3.IntegrityError as exc:
                    if "UNIQUE" in str(exc):
                        raise ConflictError(str(exc)) from exc
                    raise
                except sqlite3.OperationalError as exc:
                    if "locked" in str(exc) or "busy" in str(exc):
                        raise TransientError(f"database busy: {exc}") from exc
                    raise
        except ConflictError:
            raise
        if cur.description is None:
            return []
        cols = [d[0] for d in cur.description]
        return [self._row(cols, r) for r in cur.fetchall()]

    def one(self, sql: str, params: tuple | list = ()) -> dict | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    # ---- migrations --------------------------------------------------------------------------
    def migrations(self) -> list[tuple[int, str, Path]]:
        """``(version, name, path)`` of this dialect's migration files, in order."""
        out = []
        for p in sorted(MIGRATIONS_DIR.glob(f"*.{self.dialect}.sql")):
            m = re.match(r"(\d+)_(.+)\." + self.dialect + r"\.sql$", p.name)
            if m:
                out.append((int(m.group(1)), m.group(2), p))
        return out

    def migrate(self) -> list[int]:
        """Apply pending migrations; returns the versions applied now."""
        self.query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at text NOT NULL)"
        )
        applied: list[int] = []
        with self.transaction():
            if self.dialect == "postgres":
                self.query("SELECT pg_advisory_xact_lock(72657301)")
            done = {r["version"] for r in self.query("SELECT version FROM schema_migrations")}
            for version, name, path in self.migrations():
                if version in done:
                    continue
                for stmt in _split_sql(path.read_text()):
                    self.query(stmt)
                self.query(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, now_iso()),
                )
                applied.append(version)
        return applied

    def schema_version(self) -> int:
        row = self.one("SELECT max(version) AS v FROM schema_migrations")
        return int(row["v"] or 0) if row else 0

    def drop_schema(self) -> None:
        """Drop this store's PostgreSQL schema and everything in it (tests)."""
        if self.dialect == "postgres" and self.schema:
            self.query(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    # ---- users -------------------------------------------------------------------------------
    def create_user(self, email: str, password_hash: str, plan: str = "free") -> dict:
        uid = new_id()
        self.query(
            "INSERT INTO users (id, email, password_hash, plan, created_at) VALUES (?, ?, ?, ?, ?)",
            (uid, email.lower(), password_hash, plan, now_iso()),
        )
        return self.get_user(uid)  # type: ignore[return-value]

    def get_user(self, user_id: str) -> dict | None:
        if not is_uuid(user_id):
            return None
        return self.one("SELECT * FROM users WHERE id = ?", (user_id,))

    def get_user_by_email(self, email: str) -> dict | None:
        if "\x00" in email:  # no stored email has one, and PostgreSQL refuses NUL in text
            return None
        return self.one("SELECT * FROM users WHERE email = ?", (email.lower(),))

    def set_password(self, user_id: str, password_hash: str) -> None:
        self.query("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))

    # ---- jobs --------------------------------------------------------------------------------
    def find_active_job(self, idempotency_key: str) -> dict | None:
        return self.one(
            "SELECT * FROM jobs WHERE idempotency_key = ? AND status IN (?, ?, ?, ?)",
            (idempotency_key, *ACTIVE_STATUSES),
        )

    def create_job(
        self,
        *,
        user_id: str,
        mode: str,
        ref_key: str | None,
        tgt_key: str,
        opts: dict,
        idempotency_key: str,
        preset_id: str | None = None,
    ) -> tuple[dict, bool]:
        """Insert a PENDING job, or return the queued/running job with the same idempotency key.
        Returns ``(job, created)``."""
        for _ in range(3):
            existing = self.find_active_job(idempotency_key)
            if existing:
                return existing, False
            job_id = new_id()
            ts = now_iso()
            try:
                self.query(
                    "INSERT INTO jobs (id, user_id, mode, ref_key, tgt_key, preset_id, opts, idempotency_key,"
                    " status, progress, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'PENDING', 0,"
                    " ?, ?)",
                    (job_id, user_id, mode, ref_key, tgt_key, preset_id, opts, idempotency_key, ts, ts),
                )
            except ConflictError:
                continue  # a concurrent create won the race: return its job
            return self.get_job(job_id), True  # type: ignore[return-value]
        raise TransientError("idempotency key contended")

    def get_job(self, job_id: str, user_id: str | None = None) -> dict | None:
        """The job, or None when unknown or (with ``user_id``) owned by someone else."""
        if not is_uuid(job_id):
            return None
        if user_id is None:
            return self.one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return self.one("SELECT * FROM jobs WHERE id = ? AND user_id = ?", (job_id, user_id))

    def list_jobs(self, user_id: str, *, limit: int = 50, before: str | None = None,
                  before_id: str | None = None) -> list[dict]:
        """The user's jobs, newest first (ties by id, descending). ``before``: a created_at cursor;
        with ``before_id`` (the id of the job at that cursor, the last one a page showed) the jobs
        created at that same instant and ordered after it are included, so a page boundary between
        two jobs of one timestamp loses neither."""
        cols = (
            "id, mode, status, progress, error, last_step, ref_key, tgt_key, preset_id, created_at,"
            " updated_at"
        )
        order = "ORDER BY created_at DESC, id DESC LIMIT ?"
        if before and before_id:
            id_param = "CAST(? AS uuid)" if self.dialect == "postgres" else "?"
            return self.query(
                f"SELECT {cols} FROM jobs WHERE user_id = ? AND (created_at < ? OR "
                f"(created_at = ? AND id < {id_param})) {order}",
                (user_id, before, before, before_id, limit),
            )
        if before:
            return self.query(
                f"SELECT {cols} FROM jobs WHERE user_id = ? AND created_at < ? {order}",
                (user_id, before, limit),
            )
        return self.query(f"SELECT {cols} FROM jobs WHERE user_id = ? {order}", (user_id, limit))

    def active_jobs(self) -> list[dict]:
        """Jobs queued or running (to resume after a restart), oldest first."""
        return self.query(
            "SELECT * FROM jobs WHERE status IN (?, ?, ?, ?) ORDER BY created_at", ACTIVE_STATUSES
        )

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Set columns of a job (names checked against the known columns)."""
        bad = set(fields) - JOB_COLUMNS
        if bad:
            raise ValueError(f"unknown job columns {sorted(bad)}")
        fields.setdefault("updated_at", now_iso())
        cols = ", ".join(f"{k} = ?" for k in fields)
        self.query(f"UPDATE jobs SET {cols} WHERE id = ?", (*fields.values(), job_id))

    def requeue_failed_job(self, job_id: str) -> bool:
        """Move a FAILED job back to PENDING (error cleared, one more attempt) in one statement;
        False when it is not FAILED (any more): of concurrent retries exactly one wins. Raises
        :class:`ConflictError` when the same job is already queued or running again."""
        rows = self.query(
            "UPDATE jobs SET status = 'PENDING', error = NULL, attempts = attempts + 1, updated_at = ?"
            " WHERE id = ? AND status = 'FAILED' RETURNING id",
            (now_iso(), job_id),
        )
        return bool(rows)

    def advance_job(self, job_id: str, status: str, progress: int, step: str | None = None) -> None:
        """Move a running job to ``status`` (and ``last_step`` to ``step``) and raise its progress
        (never lowers it, never touches a finished job)."""
        self.query(
            "UPDATE jobs SET status = ?, progress = CASE WHEN progress < ? THEN ? ELSE progress END,"
            " last_step = COALESCE(?, last_step), updated_at = ? WHERE id = ?"
            " AND status NOT IN ('COMPLETED', 'FAILED')",
            (status, progress, progress, step, now_iso(), job_id),
        )

    def merge_job_state(self, job_id: str, updates: dict) -> dict:
        """Merge ``updates`` into the job's saved pipeline state (for resume); returns the new state."""
        with self.transaction():
            row = self.one("SELECT state FROM jobs WHERE id = ?", (job_id,))
            state = dict((row or {}).get("state") or {})
            state.update(updates)
            self.update_job(job_id, state=state)
        return state

    # ---- segments ----------------------------------------------------------------------------
    def init_segments(self, job_id: str, count: int) -> None:
        """Create PENDING rows for segments ``0..count-1`` (existing rows are kept)."""
        with self.transaction():
            have = {r["idx"] for r in self.query("SELECT idx FROM job_segments WHERE job_id = ?", (job_id,))}
            for idx in range(count):
                if idx not in have:
                    self.query(
                        "INSERT INTO job_segments (id, job_id, idx, status) VALUES (?, ?, ?, 'PENDING')",
                        (new_id(), job_id, idx),
                    )

    def start_segment(self, job_id: str, idx: int) -> None:
        self.query(
            "UPDATE job_segments SET status = 'RUNNING', started_at = ? WHERE job_id = ? AND idx = ?",
            (now_iso(), job_id, idx),
        )

    def finish_segment(self, job_id: str, idx: int, metrics: dict | None) -> None:
        self.query(
            "UPDATE job_segments SET status = 'DONE', finished_at = ?, metrics = ? "
            "WHERE job_id = ? AND idx = ?",
            (now_iso(), metrics, job_id, idx),
        )

    def segments(self, job_id: str) -> list[dict]:
        return self.query("SELECT * FROM job_segments WHERE job_id = ? ORDER BY idx", (job_id,))

    def segment_counts(self, job_id: str) -> tuple[int, int]:
        """``(done, total)`` segments of a job."""
        row = self.one(
            "SELECT count(*) AS total, sum(CASE WHEN status = 'DONE' THEN 1 ELSE 0 END) AS done "
            "FROM job_segments WHERE job_id = ?",
            (job_id,),
        )
        return int((row or {}).get("done") or 0), int((row or {}).get("total") or 0)

    # ---- presets -----------------------------------------------------------------------------
    def create_preset(
        self, user_id: str, name: str, style_params: dict, *, source_job_id: str | None = None
    ) -> dict:
        pid = new_id()
        self.query(
            "INSERT INTO presets (id, user_id, name, style_params, public, source_job_id, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (pid, user_id, name, style_params, False, source_job_id, now_iso()),
        )
        return self.get_preset(pid)  # type: ignore[return-value]

    def get_preset(self, preset_id: str, user_id: str | None = None) -> dict | None:
        if not is_uuid(preset_id):
            return None
        if user_id is None:
            return self.one("SELECT * FROM presets WHERE id = ?", (preset_id,))
        return self.one("SELECT * FROM presets WHERE id = ? AND user_id = ?", (preset_id, user_id))

    def list_presets(self, user_id: str) -> list[dict]:
        return self.query(
            "SELECT id, name, public, source_job_id, created_at FROM presets WHERE user_id = ?"
            " ORDER BY created_at DESC",
            (user_id,),
        )

    def rename_preset(self, preset_id: str, name: str) -> None:
        self.query("UPDATE presets SET name = ? WHERE id = ?", (name, preset_id))

    def preset_in_use(self, preset_id: str) -> bool:
        """True when a queued or running job applies the preset."""
        return bool(
            self.query(
                "SELECT id FROM jobs WHERE preset_id = ? AND status IN (?, ?, ?, ?) LIMIT 1",
                (preset_id, *ACTIVE_STATUSES),
            )
        )

    def delete_preset(self, preset_id: str) -> None:
        self.query("DELETE FROM presets WHERE id = ?", (preset_id,))

    # ---- metrics, audit, billing, dead letters -------------------------------------------------
    def add_metrics(self, job_id: str, metrics: dict) -> str:
        mid = new_id()
        self.query(
            "INSERT INTO metrics (id, job_id, stft_dist, mel_dist, lufs_err, tp_db, artifacts_rate,"
            " detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                mid,
                job_id,
                *(
                    _num(metrics.get(k))
                    for k in ("stft_dist", "mel_dist", "lufs_err", "tp_db", "artifacts_rate")
                ),
                metrics,
                now_iso(),
            ),
        )
        return mid

    def metrics_for(self, job_id: str) -> list[dict]:
        return self.query("SELECT * FROM metrics WHERE job_id = ? ORDER BY created_at", (job_id,))

    def audit(
        self, user_id: str | None, action: str, target: str | None = None, payload: dict | None = None
    ) -> None:
        self.query(
            "INSERT INTO audit_logs (id, user_id, action, target, payload, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (new_id(), user_id, action, target, payload or {}, now_iso()),
        )

    def audit_rows(self, user_id: str | None = None) -> list[dict]:
        if user_id:
            return self.query("SELECT * FROM audit_logs WHERE user_id = ? ORDER BY created_at", (user_id,))
        return self.query("SELECT * FROM audit_logs ORDER BY created_at")

    def bill(self, user_id: str, job_id: str, audio_s: float) -> bool:
        """Record ``audio_s`` seconds processed for a job, once per job; True when written now. One
        statement that never raises on the second time, so it can run inside a transaction (a
        unique violation would abort a PostgreSQL one)."""
        rows = self.query(
            "INSERT INTO billing (id, user_id, job_id, audio_s, created_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (job_id) DO NOTHING RETURNING id",
            (new_id(), user_id, job_id, float(audio_s), now_iso()),
        )
        return bool(rows)

    def billed_seconds(self, user_id: str) -> float:
        row = self.one("SELECT sum(audio_s) AS s FROM billing WHERE user_id = ?", (user_id,))
        return float((row or {}).get("s") or 0.0)

    def add_dead_letter(self, record: dict) -> None:
        self.query(
            "INSERT INTO dead_letters (id, job_id, step, error, payload, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (new_id(), record.get("job_id"), record.get("step"), record.get("error"), record, now_iso()),
        )

    def dead_letters(self) -> list[dict]:
        return self.query("SELECT * FROM dead_letters ORDER BY created_at")


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f and abs(f) != float("inf") else None


def _split_sql(text: str) -> list[str]:
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
