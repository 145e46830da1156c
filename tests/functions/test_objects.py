"""Object stores: the local directory (with its signed URLs) and S3 against moto's server mode over
real HTTP (presigned PUT/GET and multipart with presigned part URLs)."""

from __future__ import annotations

import time

import httpx
import pytest

from functions.pipeline.errors import TransientError
from functions.stores.objects import (
    LocalObjectStore,
    ObjectNotFoundError,
    S3ObjectStore,
    SignatureError,
    UrlSigner,
    check_key,
)
from tests.functions.conftest import free_port as _free_port


@pytest.fixture
def s3(moto_endpoint, monkeypatch):
    import uuid

    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = f"tm-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return S3ObjectStore(bucket, endpoint_url=moto_endpoint)


@pytest.fixture
def local(tmp_path):
    return LocalObjectStore(tmp_path / "objects", signer=UrlSigner("s3cret"), public_url="http://x")


@pytest.fixture(params=["local", "s3"])
def store(request):
    return request.getfixturevalue(request.param)


def test_put_get_list_copy_delete(store, tmp_path):
    src = tmp_path / "a.bin"
    src.write_bytes(b"abc" * 1000)
    store.put_file("u1/audio/raw/a.wav", src)
    store.put_bytes("u1/viz/j.json", b'{"x":1}')
    assert store.exists("u1/audio/raw/a.wav") and store.size("u1/audio/raw/a.wav") == 3000
    assert store.get_bytes("u1/viz/j.json") == b'{"x":1}'
    out = store.get_file("u1/audio/raw/a.wav", tmp_path / "dl" / "a.wav")
    assert out.read_bytes() == src.read_bytes()
    store.copy("u1/audio/raw/a.wav", "u1/audio/processed/j.wav")
    assert store.list("u1/audio/") == ["u1/audio/processed/j.wav", "u1/audio/raw/a.wav"]
    assert store.list("u2/") == []
    store.delete("u1/audio/raw/a.wav")
    assert not store.exists("u1/audio/raw/a.wav")
    with pytest.raises(ObjectNotFoundError):
        store.get_bytes("u1/audio/raw/a.wav")


def test_keys_cannot_escape(local):
    for bad in ("../etc/passwd", "/abs", "u1/../../x", "u1//x", "u1/x/", "u1/x y"):
        with pytest.raises(ValueError):
            check_key(bad)
    with pytest.raises(ValueError):
        local.put_bytes("u1/../../x", b"")


def test_presigned_put_and_get_over_http(s3):
    url = s3.sign_put("u1/audio/raw/x.wav", "audio/wav", 60)
    r = httpx.put(url, content=b"RIFF....", headers={"Content-Type": "audio/wav"})
    assert r.status_code == 200, r.text
    got = httpx.get(s3.sign_get("u1/audio/raw/x.wav", 60))
    assert got.status_code == 200 and got.content == b"RIFF...."


def test_multipart_with_presigned_parts_over_http(s3):
    key = "u1/audio/raw/big.wav"
    upload_id = s3.create_multipart(key, "audio/wav")
    chunks = [b"a" * (5 * 1024 * 1024), b"b" * 1000]  # S3 minimum part size except the last
    parts = []
    for i, chunk in enumerate(chunks, start=1):
        r = httpx.put(s3.sign_part(key, upload_id, i, 60), content=chunk)
        assert r.status_code == 200, r.text
        parts.append({"part_number": i, "etag": r.headers["ETag"]})
    s3.complete_multipart(key, upload_id, parts)
    assert s3.size(key) == sum(map(len, chunks))
    with pytest.raises(ValueError):  # a part that was never uploaded
        up2 = s3.create_multipart("u1/audio/raw/b2.wav", "audio/wav")
        s3.complete_multipart("u1/audio/raw/b2.wav", up2, [{"part_number": 1, "etag": '"00"'}])


def test_local_multipart_checks_etags(local):
    key = "u1/audio/raw/big.wav"
    up = local.create_multipart(key, "audio/wav")
    e1 = local.put_part(key, up, 1, [b"x" * 10], None)
    e2 = local.put_part(key, up, 2, [b"y" * 5], None)
    with pytest.raises(ValueError, match="etag"):
        local.complete_multipart(
            key, up, [{"part_number": 1, "etag": e1}, {"part_number": 2, "etag": '"bad"'}]
        )
    assert not local.exists(key)
    local.complete_multipart(key, up, [{"part_number": 1, "etag": e1}, {"part_number": 2, "etag": e2}])
    assert local.get_bytes(key) == b"x" * 10 + b"y" * 5


def test_signed_tokens_refuse_forgery_expiry_and_wrong_method():
    signer = UrlSigner("k1")
    token = signer.sign({"method": "GET", "key": "u/x", "exp": time.time() + 60})
    assert signer.verify(token, "GET")["key"] == "u/x"
    with pytest.raises(SignatureError, match="PUT"):
        signer.verify(token, "PUT")
    with pytest.raises(SignatureError, match="forged"):
        UrlSigner("other").verify(token, "GET")
    payload, sig = token.split(".")
    with pytest.raises(SignatureError):
        signer.verify(payload[:-2] + "AA." + sig, "GET")
    old = signer.sign({"method": "GET", "key": "u/x", "exp": time.time() - 1})
    with pytest.raises(SignatureError) as e:
        signer.verify(old, "GET")
    assert e.value.expired


def test_s3_unreachable_is_transient(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    store = S3ObjectStore("b", endpoint_url=f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(TransientError):
        store.get_bytes("u1/x")
