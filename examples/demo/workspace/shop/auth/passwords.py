"""Password hashing with PBKDF2-HMAC-SHA256.

Encoded hashes look like ``pbkdf2_sha256$<iterations>$<salt>$<digest>`` (salt and
digest base64), so the iteration count can be raised without invalidating
existing passwords: ``needs_rehash`` tells the login flow to upgrade them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

ALGORITHM = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 240_000
SALT_BYTES = 16


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


class PasswordHasher:
    def __init__(self, iterations: int = DEFAULT_ITERATIONS) -> None:
        if iterations < 1000:
            raise ValueError("refusing fewer than 1000 PBKDF2 iterations")
        self.iterations = iterations

    def _digest(self, password: str, salt: bytes, iterations: int) -> bytes:
        return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)

    def hash(self, password: str) -> str:
        if not password:
            raise ValueError("empty password")
        salt = secrets.token_bytes(SALT_BYTES)
        digest = self._digest(password, salt, self.iterations)
        return f"{ALGORITHM}${self.iterations}${_b64(salt)}${_b64(digest)}"

    def verify(self, password: str, encoded: str) -> bool:
        """True when ``password`` matches ``encoded``. Never raises on bad input."""
        try:
            algorithm, iterations, salt, expected = encoded.split("$")
            rounds = int(iterations)
        except ValueError:
            print("[auth] malformed password hash in store; treating as mismatch")
            return False
        if algorithm != ALGORITHM:
            print(f"[auth] unsupported password hash algorithm {algorithm!r}")
            return False
        actual = self._digest(password, _unb64(salt), rounds)
        return hmac.compare_digest(actual, _unb64(expected))

    def needs_rehash(self, encoded: str) -> bool:
        try:
            rounds = int(encoded.split("$")[1])
        except (IndexError, ValueError):
            return True
        if rounds < self.iterations:
            print(f"[auth] password hash uses {rounds} iterations, policy is {self.iterations}")
            return True
        return False
