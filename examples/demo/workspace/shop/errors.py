"""Domain errors raised by the shop on purpose.

The API layer maps each of these to an HTTP status (see ``shop.api.request``);
anything else escaping a handler is a bug and becomes a 500.
"""

from __future__ import annotations


class ShopError(Exception):
    """Base class for every error the shop raises deliberately."""


class NotFound(ShopError):
    """A record that the caller referred to does not exist."""

    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"{kind} {key} not found")
        self.kind = kind
        self.key = key


class Conflict(ShopError):
    """The operation clashes with existing state (duplicate e-mail, paid invoice...)."""


class ValidationError(ShopError):
    """Input that is well-formed but not acceptable."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class AuthenticationFailed(ShopError):
    """Credentials or a token were missing, wrong or expired."""


class PermissionDenied(ShopError):
    """The caller is authenticated but not allowed to do this."""


class PaymentDeclined(ShopError):
    """The payment provider refused the charge."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"payment declined: {reason}")
        self.reason = reason
