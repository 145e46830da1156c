"""Passwords (argon2id), JWT access/refresh tokens (HS256) and the per-user rate limiter."""

from __future__ import annotations

import math
import threading
import time
import uuid

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from functions.service import ServiceError

_HASHER = PasswordHasher()
ALGORITHM = "HS256"
MIN_PASSWORD_CHARS = 8


def configure_hasher(*, time_cost: int = 3, memory_cost_kib: int = 65536, parallelism: int = 4) -> None:
    """Set the argon2id cost (defaults: argon2-cffi's RFC 9106 low-memory profile). Tests lower it;
    existing hashes keep verifying since each hash records its own parameters."""
    global _HASHER
    _HASHER = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=parallelism)


def hash_password(password: str) -> str:
    """argon2id hash of a password (refuses passwords shorter than 8 characters)."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"password must have at least {MIN_PASSWORD_CHARS} characters")
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def issue_token(secret: str, user_id: str, kind: str, ttl_s: int) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "typ": kind, "iat": now, "exp": now + int(ttl_s), "jti": uuid.uuid4().hex}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


_VALID: dict[tuple[str, str, str], tuple[str, float]] = {}
_VALID_MAX = 4096


def decode_token(secret: str, token: str, kind: str) -> str:
    """The user id of a valid token of ``kind`` (access|refresh); UNAUTHORIZED otherwise. Tokens
    found valid are remembered until they expire (verifying costs ~0.5 ms; a polling client sends
    the same token many times a second)."""
    hit = _VALID.get((secret, token, kind))
    if hit is not None and hit[1] > time.time():
        return hit[0]
    user_id = _decode(secret, token, kind)
    if len(_VALID) >= _VALID_MAX:
        _VALID.clear()
    exp = jwt.decode(token, options={"verify_signature": False}).get("exp", 0)
    _VALID[(secret, token, kind)] = (user_id, float(exp))
    return user_id


def _decode(secret: str, token: str, kind: str) -> str:
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp", "typ"]})
    except jwt.ExpiredSignatureError as exc:
        raise ServiceError(
            "UNAUTHORIZED", f"{kind} token expired", {"field": "token", "reason": "expired"}
        ) from exc
    except jwt.PyJWTError as exc:
        raise ServiceError(
            "UNAUTHORIZED", f"invalid {kind} token: {exc}", {"field": "token", "reason": "invalid"}
        ) from exc
    if claims.get("typ") != kind:
        raise ServiceError(
            "UNAUTHORIZED",
            f"this is {_a(str(claims.get('typ')))} token, not {_a(kind)} token",
            {"field": "token", "reason": "wrong type"},
        )
    return str(claims["sub"])


def _a(word: str) -> str:
    """``word`` with its indefinite article ("an access", "a refresh")."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


class RateLimiter:
    """Token bucket per key: ``rate_per_s`` sustained, ``burst`` at once."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate = float(rate_per_s)
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Take one token or raise RATE_LIMITED with a Retry-After hint."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                # whole seconds, rounded up (Retry-After takes no fraction; sooner would be refused)
                wait_s = max(1, math.ceil((1.0 - tokens) / self.rate))
                self._buckets[key] = (tokens, now)
                raise ServiceError(
                    "RATE_LIMITED",
                    f"too many requests; retry in {wait_s} s",
                    {"retry_after_s": wait_s},
                    headers={"Retry-After": str(wait_s)},
                )
            self._buckets[key] = (tokens - 1.0, now)
