"""AUTH_PASSWORD as plaintext or as an argon2/bcrypt hash: recognising, validating and verifying it.

Pure (no Flask, no database), so that `exporter.config` refuses a malformed hash at start and every
place that checks the configured password (Basic auth, settings) shares one verify function.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time

import argon2
import bcrypt
from marshmallow import ValidationError

ARGON2_PREFIXES = ("$argon2id$", "$argon2i$", "$argon2d$")
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
CACHE_SECONDS = 60.0  # how long a verified (user, password) pair skips the slow hash
_CACHE_LIMIT = 1024  # entries; the cache is cleared when full, never grows without bound

_hasher = argon2.PasswordHasher()
_cache_key = secrets.token_bytes(32)  # per process: the cache's keys say nothing outside it
_verified: dict[bytes, float] = {}
_lock = threading.Lock()


def is_hash(value: str) -> bool:
    """Whether `value` is meant as a hash (by its prefix), well-formed or not."""
    return value.startswith(ARGON2_PREFIXES + BCRYPT_PREFIXES)


def hash_problem(value: str) -> str | None:
    """Why a value that looks like a hash cannot be one, or None (plaintext, or a usable hash)."""
    if value.startswith(ARGON2_PREFIXES):
        try:
            argon2.extract_parameters(value)
        except argon2.exceptions.InvalidHashError:
            return "looks like an argon2 hash but is malformed (create one with `mailcow-grafana hash-password`)"
        return None
    if value.startswith(BCRYPT_PREFIXES):
        parts = value.split("$")
        ok = len(parts) == 4 and parts[2].isdigit() and 4 <= int(parts[2]) <= 31 and len(parts[3]) == 53
        return None if ok else "looks like a bcrypt hash but is malformed (expected $2b$NN$ and 53 characters)"
    return None


def check(value: str) -> None:
    """AUTH_PASSWORD's validator in `exporter.config`: a malformed hash stops the start, named."""
    if (problem := hash_problem(value)) is not None:
        raise ValidationError(problem)


def hash_password(password: str) -> str:
    """An argon2id hash of `password` with the library's default cost, for AUTH_PASSWORD."""
    return _hasher.hash(password)


def _verify_hash(password: str, stored: str) -> bool:
    if stored.startswith(ARGON2_PREFIXES):
        try:
            return _hasher.verify(stored, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False
    try:
        return bcrypt.checkpw(password.encode(), stored.encode())
    except ValueError:
        return False


def password_ok(password: str, stored: str | None) -> bool:
    """Whether `password` matches the configured one: constant-time for plaintext, the library's verify
    for a hash. Always does the comparison (no early exit when nothing is configured)."""
    stored = stored or ""
    if is_hash(stored):
        return _verify_hash(password, stored)
    return hmac.compare_digest(password.encode(), stored.encode())


def credentials_ok(user: str, password: str, username: str, stored: str | None) -> bool:
    """Both parts checked, always, the user name in constant time. A hashed password's successful check is
    remembered for CACHE_SECONDS under an HMAC of the pair and the hash (never the plaintext): Grafana sends the
    credentials with every datasource call, and argon2 costs ~50 ms by design."""
    user_ok = hmac.compare_digest(user.encode(), username.encode())
    if not is_hash(stored or ""):
        return password_ok(password, stored) & user_ok
    key = hmac.digest(_cache_key, b"\0".join([user.encode(), password.encode(), (stored or "").encode()]), "sha256")
    now = time.monotonic()
    with _lock:
        cached = _verified.get(key, 0.0) > now
    if cached:
        return user_ok
    verified = _verify_hash(password, stored or "")
    if verified and user_ok:
        with _lock:
            if len(_verified) >= _CACHE_LIMIT:
                _verified.clear()
            _verified[key] = now + CACHE_SECONDS
    return verified and user_ok
