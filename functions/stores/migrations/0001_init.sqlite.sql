-- tonematch status store, version 1 (SQLite: JSON as text, uuids as text, times as ISO-8601 UTC text). Fields of the seed's section 16 plus what the
-- service needs (password hash, idempotency key, pipeline state, outputs).
CREATE TABLE users (
    id text PRIMARY KEY,
    email text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    plan text NOT NULL DEFAULT 'free',
    created_at text NOT NULL
);

CREATE TABLE presets (
    id text PRIMARY KEY,
    user_id text NOT NULL REFERENCES users(id),
    name text NOT NULL,
    style_params text NOT NULL,
    public integer NOT NULL DEFAULT 0,
    source_job_id text,
    created_at text NOT NULL
);
CREATE UNIQUE INDEX presets_user_name_uniq ON presets (user_id, name);

CREATE TABLE jobs (
    id text PRIMARY KEY,
    user_id text NOT NULL REFERENCES users(id),
    mode text NOT NULL,
    ref_key text,
    tgt_key text NOT NULL,
    preset_id text,
    opts text NOT NULL,
    idempotency_key text NOT NULL,
    status text NOT NULL,
    progress integer NOT NULL DEFAULT 0,
    params text,
    metrics text,
    loudness text,
    outputs text,
    state text,
    error text,
    last_step text,
    attempts int NOT NULL DEFAULT 0,
    created_at text NOT NULL,
    updated_at text NOT NULL
);
CREATE INDEX jobs_status_idx ON jobs (status);
CREATE INDEX jobs_user_created_idx ON jobs (user_id, created_at DESC);
-- at most one queued/running job per idempotency key
CREATE UNIQUE INDEX jobs_active_idem_uniq ON jobs (idempotency_key)
    WHERE status IN ('PENDING', 'ANALYZING', 'INVERTING', 'RENDERING');

CREATE TABLE job_segments (
    id text PRIMARY KEY,
    job_id text NOT NULL REFERENCES jobs(id),
    idx int NOT NULL,
    status text NOT NULL,
    started_at text,
    finished_at text,
    metrics text,
    UNIQUE (job_id, idx)
);

CREATE TABLE metrics (
    id text PRIMARY KEY,
    job_id text NOT NULL REFERENCES jobs(id),
    stft_dist real,
    mel_dist real,
    lufs_err real,
    tp_db real,
    artifacts_rate real,
    detail text,
    created_at text NOT NULL
);
CREATE INDEX metrics_job_idx ON metrics (job_id);

CREATE TABLE audit_logs (
    id text PRIMARY KEY,
    user_id text REFERENCES users(id),
    action text NOT NULL,
    target text,
    payload text,
    created_at text NOT NULL
);
CREATE INDEX audit_logs_user_created_idx ON audit_logs (user_id, created_at DESC);

CREATE TABLE billing (
    id text PRIMARY KEY,
    user_id text NOT NULL REFERENCES users(id),
    job_id text NOT NULL UNIQUE REFERENCES jobs(id),
    audio_s real NOT NULL,
    created_at text NOT NULL
);
CREATE INDEX billing_user_created_idx ON billing (user_id, created_at DESC);

CREATE TABLE dead_letters (
    id text PRIMARY KEY,
    job_id text,
    step text,
    error text,
    payload text,
    created_at text NOT NULL
);
