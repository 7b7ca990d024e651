"""Signed bearer tokens for the API.

A token is ``<payload>.<signature>``: the payload is base64url JSON claims, the
signature HMAC-SHA256 over the payload. Claims: ``sub`` (the account id string),
``kind`` (the subject's id type, checked on the way back in), ``iat`` and ``exp``
(epoch seconds). Tokens are long-lived on clients, so the claim format is a wire
format: changing it logs every customer out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime

from shop.ids import UserId
from shop.utils.clock import epoch_seconds


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, secret: bytes, ttl_seconds: int = 3600) -> None:
        if len(secret) < 16:
            raise ValueError("token secret must be at least 16 bytes")
        self._secret = secret
        self.ttl_seconds = ttl_seconds

    def _sign(self, payload: str) -> str:
        mac = hmac.new(self._secret, payload.encode("ascii"), hashlib.sha256)
        return _encode(mac.digest())

    def issue(self, subject: UserId, now: datetime) -> str:
        issued = epoch_seconds(now)
        claims = {
            "sub": str(subject),
            "kind": type(subject).__name__,
            "iat": issued,
            "exp": issued + self.ttl_seconds,
        }
        payload = _encode(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def verify(self, token: str, now: datetime) -> UserId | None:
        """The token's subject, or None if it is forged, malformed or expired."""
        payload, _, signature = token.partition(".")
        if not payload or not signature:
            print("[auth] rejected token: not in <payload>.<signature> form")
            return None
        if not hmac.compare_digest(signature, self._sign(payload)):
            print("[auth] rejected token: bad signature")
            return None
        try:
            claims = json.loads(_decode(payload))
        except (ValueError, UnicodeDecodeError):
            print("[auth] rejected token: undecodable payload")
            return None
        if claims.get("kind") != UserId.__name__:
            print(f"[auth] rejected token: unexpected subject kind {claims.get('kind')!r}")
            return None
        if epoch_seconds(now) >= claims.get("exp", 0):
            print(f"[auth] rejected token for {claims.get('sub')}: expired")
            return None
        try:
            return UserId.parse(claims["sub"])
        except (KeyError, ValueError):
            print("[auth] rejected token: bad subject")
            return None
