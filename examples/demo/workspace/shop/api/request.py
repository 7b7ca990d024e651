"""The request and response types handlers work with, and error mapping."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shop.errors import (
    AuthenticationFailed,
    Conflict,
    NotFound,
    PaymentDeclined,
    PermissionDenied,
    ShopError,
    ValidationError,
)

_STATUS_BY_ERROR: list[tuple[type[ShopError], int]] = [
    (ValidationError, 422),
    (AuthenticationFailed, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (PaymentDeclined, 402),
]


@dataclass
class Request:
    method: str
    path: str
    body: dict[str, Any] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None

    def bearer_token(self) -> str | None:
        value = self.header("Authorization")
        if value and value.lower().startswith("bearer "):
            return value[7:].strip() or None
        return None


@dataclass
class Response:
    status: int
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def error_response(exc: ShopError) -> Response:
    for error_type, status in _STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            return Response(status, {"error": type(exc).__name__, "message": str(exc)})
    return Response(400, {"error": "ShopError", "message": str(exc)})
