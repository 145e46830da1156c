"""The object store: a local directory (the embedded default) or S3.

Both implement the same methods (``put_file, get_file, put_bytes, get_bytes, exists, size, delete,
copy, list, sign_put, sign_get`` and multipart ``create_multipart, sign_part, complete_multipart``).
Keys follow SPEC section 7, each under its owner: ``{user_id}/audio/raw/...``,
``{user_id}/audio/processed/{job_id}.{ext}``, ``{user_id}/viz/{job_id}.json``, ``{user_id}/preset/...``,
``{user_id}/work/{job_id}/...``, ``{user_id}/drop/...`` (drop folder); ``ir/...`` is shared.

The local store signs URLs itself: ``{public_url}/objects/{token}`` where the token is an HMAC-signed,
expiring grant for one key and one method (see :class:`UrlSigner`); the FastAPI app serves those URLs.
Faults worth retrying (S3 5xx, throttling, dropped connections, local I/O errors other than "not
found") raise :class:`TransientError`; a missing key raises :class:`ObjectNotFoundError`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from functions.pipeline.errors import TransientError

KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,1000}$")


class ObjectNotFoundError(KeyError):
    """The key does not exist."""

    def __str__(self) -> str:
        return f"object {self.args[0]!r} does not exist"


class SignatureError(Exception):
    """A signed URL token is forged, malformed or expired (``expired`` tells which)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


def check_key(key: str) -> str:
    """Refuse keys that could escape the store (``..``, absolute, odd characters)."""
    if not KEY_RE.match(key) or ".." in key.split("/") or "//" in key or key.endswith("/"):
        raise ValueError(f"invalid object key {key!r}")
    return key


class ObjectStore(Protocol):
    def put_file(self, key: str, path: str | Path, content_type: str | None = None) -> None: ...
    def get_file(self, key: str, path: str | Path) -> Path: ...
    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int: ...
    def delete(self, key: str) -> None: ...
    def copy(self, src_key: str, dst_key: str) -> None: ...
    def list(self, prefix: str) -> list[str]: ...
    def local_path(self, key: str) -> Path | None: ...
    def sign_put(self, key: str, content_type: str, expires_s: int, max_bytes: int | None = None) -> str: ...
    def sign_get(self, key: str, expires_s: int, filename: str | None = None) -> str: ...
    def create_multipart(self, key: str, content_type: str) -> str: ...
    def sign_part(
        self, key: str, upload_id: str, part_number: int, expires_s: int, max_bytes: int | None = None
    ) -> str: ...
    def complete_multipart(self, key: str, upload_id: str, parts: list[dict]) -> None: ...


# ---- signed tokens for the local store ---------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class UrlSigner:
    """HMAC-SHA256 signed, expiring grants: ``{method, key, exp, content_type?, max_bytes?,
    upload_id?, part?}`` packed in a URL-safe token ``payload.signature``."""

    secret: str

    def sign(self, grant: dict[str, Any]) -> str:
        payload = _b64(json.dumps(grant, separators=(",", ":"), sort_keys=True).encode())
        sig = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).digest()
        return f"{payload}.{_b64(sig)}"

    def verify(self, token: str, method: str) -> dict[str, Any]:
        """The grant of a valid token for ``method``; raises SignatureError otherwise."""
        try:
            payload, sig = token.split(".")
            good = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(good, _unb64(sig)):
                raise SignatureError("signature does not match (forged or altered URL)")
            grant = json.loads(_unb64(payload))
        except SignatureError:
            raise
        except Exception as exc:
            raise SignatureError(f"malformed signed URL token: {exc}") from exc
        if grant.get("method") != method:
            raise SignatureError(f"this URL is signed for {grant.get('method')}, not {method}")
        if float(grant.get("exp", 0)) < time.time():
            raise SignatureError("signed URL expired", expired=True)
        return grant


class LocalObjectStore:
    """Objects as files under ``root``; writes go to a temp file and are renamed (atomic)."""

    def __init__(self, root: str | Path, *, signer: UrlSigner, public_url: str) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.signer = signer
        self.public_url = public_url.rstrip("/")
        self._mp_root = self.root / ".multipart"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def local_path(self, key: str) -> Path | None:
        p = self._path(key)
        return p if p.is_file() else None

    def _write(self, key: str, writer) -> None:
        dst = self._path(key)
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.part")
            try:
                writer(tmp)
                os.replace(tmp, dst)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            raise TransientError(f"local store write {key}: {exc}") from exc

    def put_file(self, key: str, path: str | Path, content_type: str | None = None) -> None:
        self._write(key, lambda tmp: shutil.copyfile(path, tmp))

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        self._write(key, lambda tmp: tmp.write_bytes(data))

    def put_stream(self, key: str, chunks, max_bytes: int | None = None) -> int:
        """Write an iterable of byte chunks; returns the size. Raises ValueError past ``max_bytes``
        (nothing is written then)."""
        total = 0

        def writer(tmp: Path) -> None:
            nonlocal total
            with open(tmp, "wb") as f:
                for chunk in chunks:
                    total += len(chunk)
                    if max_bytes is not None and total > max_bytes:
                        raise ValueError(f"upload larger than the signed limit of {max_bytes} bytes")
                    f.write(chunk)

        self._write(key, writer)
        return total

    def get_file(self, key: str, path: str | Path) -> Path:
        src = self._path(key)
        if not src.is_file():
            raise ObjectNotFoundError(key)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, path)
        except OSError as exc:
            raise TransientError(f"local store read {key}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def get_bytes(self, key: str) -> bytes:
        src = self._path(key)
        if not src.is_file():
            raise ObjectNotFoundError(key)
        return src.read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        p = self._path(key)
        if not p.is_file():
            raise ObjectNotFoundError(key)
        return p.stat().st_size

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def copy(self, src_key: str, dst_key: str) -> None:
        src = self._path(src_key)
        if not src.is_file():
            raise ObjectNotFoundError(src_key)
        self.put_file(dst_key, src)

    def list(self, prefix: str) -> list[str]:
        base = self.root
        out = []
        start = base / prefix.rsplit("/", 1)[0] if "/" in prefix else base
        if not start.exists():
            return []
        for p in start.rglob("*"):
            if p.is_file() and not p.name.startswith("."):
                key = p.relative_to(base).as_posix()
                if key.startswith(prefix) and not key.startswith(".multipart"):
                    out.append(key)
        return sorted(out)

    # signed URLs served by the app (functions/api/app.py: PUT/GET /objects/{token})
    def sign_put(self, key: str, content_type: str, expires_s: int, max_bytes: int | None = None) -> str:
        grant = {
            "method": "PUT",
            "key": check_key(key),
            "exp": int(time.time() + expires_s),
            "content_type": content_type,
            "max_bytes": max_bytes,
        }
        return f"{self.public_url}/objects/{self.signer.sign(grant)}"

    def sign_get(self, key: str, expires_s: int, filename: str | None = None) -> str:
        grant = {"method": "GET", "key": check_key(key), "exp": int(time.time() + expires_s)}
        if filename:
            grant["filename"] = filename
        return f"{self.public_url}/objects/{self.signer.sign(grant)}"

    def create_multipart(self, key: str, content_type: str) -> str:
        check_key(key)
        upload_id = uuid.uuid4().hex
        d = self._mp_root / upload_id
        d.mkdir(parents=True)
        (d / "meta.json").write_text(json.dumps({"key": key, "content_type": content_type}))
        return upload_id

    def sign_part(
        self, key: str, upload_id: str, part_number: int, expires_s: int, max_bytes: int | None = None
    ) -> str:
        grant = {
            "method": "PUT",
            "key": check_key(key),
            "exp": int(time.time() + expires_s),
            "upload_id": upload_id,
            "part": int(part_number),
            "max_bytes": max_bytes,
        }
        return f"{self.public_url}/objects/{self.signer.sign(grant)}"

    def _part_path(self, key: str, upload_id: str, part_number: int) -> Path:
        """Where part ``part_number`` goes; ObjectNotFoundError for an upload_id that is malformed,
        unknown or another key's (all alike, as S3's NoSuchUpload)."""
        if not re.fullmatch(r"[0-9a-f]{32}", upload_id):
            raise ObjectNotFoundError(f"multipart upload {upload_id}")
        d = self._mp_root / upload_id
        try:
            meta = json.loads((d / "meta.json").read_text())
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"multipart upload {upload_id}") from exc
        if meta["key"] != key:
            raise ObjectNotFoundError(f"multipart upload {upload_id}")
        return d / f"{int(part_number):05d}"

    def put_part(self, key: str, upload_id: str, part_number: int, chunks, max_bytes: int | None) -> str:
        """Store one part; returns its ETag (MD5 hex, as S3 does)."""
        dst = self._part_path(key, upload_id, part_number)
        md5 = hashlib.md5()
        total = 0
        tmp = dst.with_suffix(".part")
        try:
            with open(tmp, "wb") as f:
                for chunk in chunks:
                    total += len(chunk)
                    if max_bytes is not None and total > max_bytes:
                        raise ValueError(f"part larger than the signed limit of {max_bytes} bytes")
                    md5.update(chunk)
                    f.write(chunk)
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
        return f'"{md5.hexdigest()}"'

    def complete_multipart(self, key: str, upload_id: str, parts: list[dict]) -> None:
        """Join the listed parts (``[{part_number, etag}]``, ascending) into ``key``."""
        numbers = [int(p["part_number"]) for p in parts]
        if not numbers or numbers != sorted(set(numbers)):
            raise ValueError("parts must be listed once each, in ascending part_number order")
        paths = []
        for p in parts:
            path = self._part_path(key, upload_id, int(p["part_number"]))
            if not path.is_file():
                raise ValueError(f"part {p['part_number']} was not uploaded")
            etag = '"' + hashlib.md5(path.read_bytes()).hexdigest() + '"'
            if str(p.get("etag", "")).strip('"') != etag.strip('"'):
                raise ValueError(f"part {p['part_number']}: etag does not match the uploaded part")
            paths.append(path)

        def writer(tmp: Path) -> None:
            with open(tmp, "wb") as out:
                for path in paths:
                    with open(path, "rb") as f:
                        shutil.copyfileobj(f, out, 4 * 1024 * 1024)

        self._write(key, writer)
        shutil.rmtree(self._mp_root / upload_id, ignore_errors=True)


class S3ObjectStore:
    """Objects in an S3 bucket (or an S3-compatible endpoint); URLs are S3 presigned URLs."""

    def __init__(
        self, bucket: str, *, endpoint_url: str | None = None, region: str = "us-east-1", client: Any = None
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.client = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(
                signature_version="s3v4",
                retries={"max_attempts": 2, "mode": "standard"},
                s3={"addressing_style": "path"} if endpoint_url else None,
            ),
        )

    def _call(self, key: str, fn, *args, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in ("NoSuchKey", "404", "NotFound"):
                raise ObjectNotFoundError(key) from exc
            if status >= 500 or code in ("SlowDown", "Throttling", "RequestTimeout", "InternalError"):
                raise TransientError(f"S3 {code or status} on {key}: {exc}") from exc
            raise
        except BotoCoreError as exc:
            raise TransientError(f"S3 connection fault on {key}: {exc}") from exc

    def local_path(self, key: str) -> Path | None:
        return None

    def put_file(self, key: str, path: str | Path, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else None
        self._call(key, self.client.upload_file, str(path), self.bucket, check_key(key), ExtraArgs=extra)

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        kw = {"ContentType": content_type} if content_type else {}
        self._call(key, self.client.put_object, Bucket=self.bucket, Key=check_key(key), Body=data, **kw)

    def get_file(self, key: str, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        try:
            self._call(key, self.client.download_file, self.bucket, check_key(key), str(tmp))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def get_bytes(self, key: str) -> bytes:
        resp = self._call(key, self.client.get_object, Bucket=self.bucket, Key=check_key(key))
        return resp["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except ObjectNotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        resp = self._call(key, self.client.head_object, Bucket=self.bucket, Key=check_key(key))
        return int(resp["ContentLength"])

    def delete(self, key: str) -> None:
        self._call(key, self.client.delete_object, Bucket=self.bucket, Key=check_key(key))

    def copy(self, src_key: str, dst_key: str) -> None:
        self._call(
            src_key,
            self.client.copy,
            {"Bucket": self.bucket, "Key": check_key(src_key)},
            self.bucket,
            check_key(dst_key),
        )

    def list(self, prefix: str) -> list[str]:
        out: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in self._call(prefix, lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=prefix))):
            out.extend(o["Key"] for o in page.get("Contents", []))
        return sorted(out)

    def sign_put(self, key: str, content_type: str, expires_s: int, max_bytes: int | None = None) -> str:
        return self.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": check_key(key), "ContentType": content_type},
            ExpiresIn=int(expires_s),
        )

    def sign_get(self, key: str, expires_s: int, filename: str | None = None) -> str:
        params = {"Bucket": self.bucket, "Key": check_key(key)}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=int(expires_s))

    def create_multipart(self, key: str, content_type: str) -> str:
        resp = self._call(
            key,
            self.client.create_multipart_upload,
            Bucket=self.bucket,
            Key=check_key(key),
            ContentType=content_type,
        )
        return resp["UploadId"]

    def sign_part(
        self, key: str, upload_id: str, part_number: int, expires_s: int, max_bytes: int | None = None
    ) -> str:
        return self.client.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": self.bucket,
                "Key": check_key(key),
                "UploadId": upload_id,
                "PartNumber": int(part_number),
            },
            ExpiresIn=int(expires_s),
        )

    def complete_multipart(self, key: str, upload_id: str, parts: list[dict]) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=check_key(key),
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": int(p["part_number"]), "ETag": p["etag"]} for p in parts]
                },
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "NoSuchUpload":
                raise ObjectNotFoundError(f"multipart upload {upload_id}") from exc
            if code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall"):
                raise ValueError(f"{code}: {exc.response['Error'].get('Message', '')}") from exc
            raise


def object_store_from_settings(settings) -> ObjectStore:
    """S3 when ``settings.bucket`` is set, else the local directory ``{data_dir}/objects``."""
    if settings.bucket:
        return S3ObjectStore(
            settings.bucket, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
        )
    return LocalObjectStore(
        Path(settings.data_dir) / "objects",
        signer=UrlSigner(settings.jwt_secret),
        public_url=settings.public_url,
    )
