"""gpu_batch: the entrypoint renders one segment S3 → S3 (CPU path, moto S3), its exit codes match the
job definition's retry strategy, and the GPU code path (run here on NumPy) gives the CPU's audio."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from gpu_batch import entrypoint
from gpu_batch.entrypoint import EXIT_OK, EXIT_PERMANENT, EXIT_TRANSIENT, classify

PARAMS = {
    "eq": [{"type": "peaking", "f_hz": 1000.0, "q": 1.0, "gain_db": 3.0}],
    "stereo": {"width": 1.1},
    "lufs": {"target_db": -14.0, "gain_db": 4.0},
    "limiter": {"tp_db": -1.0, "lookahead_ms": 5.0, "release_ms": 80.0},
}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    rng = np.random.default_rng(3)
    fs = 16000
    t = np.arange(12 * fs) / fs
    x = np.stack([0.4 * np.sin(2 * np.pi * 330 * t), 0.3 * np.sin(2 * np.pi * 440 * t)], axis=1)
    x += 0.05 * rng.standard_normal(x.shape)
    path = tmp_path_factory.mktemp("src") / "target.wav"
    sf.write(path, x.astype(np.float32), fs, subtype="FLOAT")
    return path


@pytest.fixture
def s3(monkeypatch):
    from moto import mock_aws

    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="renders")
        yield client


def _env(tmp_path, segment, **kw):
    return {
        "TONEMATCH_BUCKET": "renders",
        "TONEMATCH_JOB_ID": "job-1",
        "TONEMATCH_INPUT_KEY": "u/audio/raw/t.wav",
        "TONEMATCH_PARAMS_KEY": "u/work/job-1/params.json",
        "TONEMATCH_SEGMENT": json.dumps(segment),
        "TONEMATCH_OUTPUT_KEY": "u/work/job-1/seg/00001.wav",
        "TONEMATCH_SCRATCH_DIR": str(tmp_path),
        "TONEMATCH_GPU": "off",
        **kw,
    }


def test_standalone_render_s3_to_s3_matches_engine(s3, source, tmp_path):
    from engine.segments import plan_segments, render_segment

    segment = plan_segments(12.0, segment_s=6.0)[1]
    s3.upload_file(str(source), "renders", "u/audio/raw/t.wav")
    s3.put_object(Bucket="renders", Key="u/work/job-1/params.json", Body=json.dumps(PARAMS).encode())
    assert entrypoint.main(_env(tmp_path, segment), s3=s3) == EXIT_OK
    s3.download_file("renders", "u/work/job-1/seg/00001.wav", str(tmp_path / "got.wav"))
    render_segment(str(source), str(tmp_path / "want.wav"), PARAMS, segment)
    got, _ = sf.read(tmp_path / "got.wav", dtype="float32")
    want, _ = sf.read(tmp_path / "want.wav", dtype="float32")
    assert got.shape == want.shape and np.array_equal(got, want)


def test_missing_input_is_permanent_and_missing_env_is_refused(s3, tmp_path):
    from engine.segments import plan_segments

    segment = plan_segments(12.0, segment_s=6.0)[0]
    assert entrypoint.main(_env(tmp_path, segment), s3=s3) == EXIT_PERMANENT  # no such key: 404
    env = _env(tmp_path, segment)
    del env["TONEMATCH_OUTPUT_KEY"]
    assert entrypoint.main(env, s3=s3) == EXIT_PERMANENT
    assert entrypoint.main(_env(tmp_path, segment, TONEMATCH_SEGMENT="{oops"), s3=s3) == EXIT_PERMANENT


def test_bad_params_are_permanent(s3, source, tmp_path):
    from engine.segments import plan_segments

    s3.upload_file(str(source), "renders", "u/audio/raw/t.wav")
    s3.put_object(
        Bucket="renders",
        Key="u/work/job-1/params.json",
        Body=json.dumps({**PARAMS, "lufs": {"target_db": -14.0}}).encode(),
    )  # gain not resolved
    assert entrypoint.main(_env(tmp_path, plan_segments(12.0, segment_s=6.0)[0]), s3=s3) == EXIT_PERMANENT


def test_exit_codes_for_transient_faults():
    from botocore.exceptions import ClientError, EndpointConnectionError

    from functions.pipeline.errors import TransientError

    assert classify(TransientError("db busy")) == EXIT_TRANSIENT
    assert classify(EndpointConnectionError(endpoint_url="https://s3")) == EXIT_TRANSIENT
    slow = ClientError(
        {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject"
    )
    assert classify(slow) == EXIT_TRANSIENT
    missing = ClientError(
        {"Error": {"Code": "404"}, "ResponseMetadata": {"HTTPStatusCode": 404}}, "HeadObject"
    )
    assert classify(missing) == EXIT_PERMANENT
    assert classify(ValueError("bad")) == EXIT_PERMANENT


def _diff_db(a, b):
    return 20 * np.log10(
        np.sqrt(np.mean((a.astype(np.float64) - b) ** 2)) / np.sqrt(np.mean(a.astype(np.float64) ** 2))
    )


def test_gpu_code_path_on_numpy_equals_cpu_render(source, tmp_path):
    """The CuPy code path, run with NumPy as the array module: same audio as the CPU path (< -90 dB)
    and the engine's true-peak oversampling really went through it."""
    from engine import true_peak
    from engine.segments import plan_segments, render_segment
    from gpu_batch.gpu import interp_peaks, use_array_module

    segment = plan_segments(12.0, segment_s=6.0)[1]
    render_segment(str(source), str(tmp_path / "cpu.wav"), PARAMS, segment)
    calls = {"n": 0}
    real = interp_peaks

    def counting(xp, x, rows, offset=0):
        calls["n"] += 1
        return real(xp, x, rows, offset)

    import gpu_batch.gpu as gpu_module

    gpu_module.interp_peaks = counting
    try:
        with use_array_module(np, np.fft, min_fft_elements=1):
            render_segment(str(source), str(tmp_path / "gpu.wav"), PARAMS, segment)
    finally:
        gpu_module.interp_peaks = real
    assert true_peak._interp_peaks.__module__ == "engine.true_peak"  # restored after the block
    assert calls["n"] > 0
    cpu, _ = sf.read(tmp_path / "cpu.wav", dtype="float32")
    gpu, _ = sf.read(tmp_path / "gpu.wav", dtype="float32")
    assert cpu.shape == gpu.shape and _diff_db(cpu, gpu) < -90


def test_interp_peaks_matches_engine_exactly_in_float32():
    from engine import true_peak
    from gpu_batch.gpu import interp_peaks

    rng = np.random.default_rng(0)
    x = rng.standard_normal((5000, 2)).astype(np.float32)
    rows = np.arange(0, 5000 // true_peak._ROW_FRAMES + 1)
    want = true_peak._interp_peaks(x, rows, offset=7)
    got = interp_peaks(np, x, rows, offset=7)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_fft_backend_routes_large_transforms_only():
    import scipy.fft
    from scipy import signal

    from gpu_batch.gpu import ArrayFFTBackend

    backend = ArrayFFTBackend(xp=np, fft_module=np.fft, min_elements=4096)
    x = np.random.default_rng(1).standard_normal(48000).astype(np.float32)
    h = np.random.default_rng(2).standard_normal(4800).astype(np.float32)
    want = signal.fftconvolve(x, h)
    with scipy.fft.set_backend(backend):
        got = signal.fftconvolve(x, h)
        scipy.fft.rfft(np.ones(16))  # small: stays on the CPU
    assert backend.calls >= 2 and backend.fallbacks >= 1
    assert _diff_db(want, got) < -90


def test_pipeline_mode_signs_the_rds_iam_token_before_connecting(monkeypatch):
    """The job definition gives the container the Lambdas' database environment: a passwordless URL
    of RDS Proxy, which takes IAM authentication only. The token must be in PGPASSWORD before the
    status store connects, or every Batch render fails to reach the database."""
    from functions.pipeline import context as context_module
    from functions.stores import db_auth

    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "TONEMATCH_DB_IAM_AUTH": "1",
        "TONEMATCH_DATABASE_URL": "postgresql://tonematch@proxy.example:5432/tonematch?sslmode=require",
        "PGPASSWORD": "",  # registered, so teardown restores the real environment
        "PGSSLMODE": "require",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(db_auth, "_token_signed_at", 0.0)
    seen = {}

    class StopError(Exception):
        pass

    def context_from_env():
        import os

        seen["password"] = os.environ.get("PGPASSWORD")
        raise StopError

    monkeypatch.setattr(context_module, "context_from_env", context_from_env)
    env = {
        "TONEMATCH_EVENT": json.dumps({"job_id": "j", "user_id": "u", "item": {"idx": 0}}),
        "TONEMATCH_RESULT_KEY": "u/work/j/batch-results/RenderSegment-0.json",
    }
    with pytest.raises(StopError):
        entrypoint.run_pipeline_step(env)
    assert seen["password"] and "proxy.example" in seen["password"]  # a signed rds-db token
