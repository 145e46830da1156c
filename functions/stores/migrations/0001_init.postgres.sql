-- tonematch status store, version 1 (PostgreSQL). Fields of the seed's section 16 plus what the
-- service needs (password hash, idempotency key, pipeline state, outputs).
CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    plan text NOT NULL DEFAULT 'free',
    created_at timestamptz NOT NULL
);

CREATE TABLE presets (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users(id),
    name text NOT NULL,
    style_params jsonb NOT NULL,
    public boolean NOT NULL DEFAULT false,
    source_job_id uuid,
    created_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX presets_user_name_uniq ON presets (user_id, name);

CREATE TABLE jobs (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users(id),
    mode text NOT NULL,
    ref_key text,
    tgt_key text NOT NULL,
    preset_id uuid,
    opts jsonb NOT NULL,
    idempotency_key text NOT NULL,
    status text NOT NULL,
    progress int2 NOT NULL DEFAULT 0,
    params jsonb,
    metrics jsonb,
    loudness jsonb,
    outputs jsonb,
    state jsonb,
    error text,
    last_step text,
    attempts int NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX jobs_status_idx ON jobs (status);
CREATE INDEX jobs_user_created_idx ON jobs (user_id, created_at DESC);
-- at most one queued/running job per idempotency key
CREATE UNIQUE INDEX jobs_active_idem_uniq ON jobs (idempotency_key)
    WHERE status IN ('PENDING', 'ANALYZING', 'INVERTING', 'RENDERING');
CREATE INDEX jobs_metrics_gin ON jobs USING gin (metrics jsonb_path_ops);

CREATE TABLE job_segments (
    id uuid PRIMARY KEY,
    job_id uuid NOT NULL REFERENCES jobs(id),
    idx int NOT NULL,
    status text NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    metrics jsonb,
    UNIQUE (job_id, idx)
);

CREATE TABLE metrics (
    id uuid PRIMARY KEY,
    job_id uuid NOT NULL REFERENCES jobs(id),
    stft_dist float4,
    mel_dist float4,
    lufs_err float4,
    tp_db float4,
    artifacts_rate float4,
    detail jsonb,
    created_at timestamptz NOT NULL
);
CREATE INDEX metrics_job_idx ON metrics (job_id);
CREATE INDEX metrics_detail_gin ON metrics USING gin (detail jsonb_path_ops);

CREATE TABLE audit_logs (
    id uuid PRIMARY KEY,
    user_id uuid REFERENCES users(id),
    action text NOT NULL,
    target text,
    payload jsonb,
    created_at timestamptz NOT NULL
);
CREATE INDEX audit_logs_user_created_idx ON audit_logs (user_id, created_at DESC);

CREATE TABLE billing (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users(id),
    job_id uuid NOT NULL UNIQUE REFERENCES jobs(id),
    audio_s float8 NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX billing_user_created_idx ON billing (user_id, created_at DESC);

CREATE TABLE dead_letters (
    id uuid PRIMARY KEY,
    job_id uuid,
    step text,
    error text,
    payload jsonb,
    created_at timestamptz NOT NULL
);
