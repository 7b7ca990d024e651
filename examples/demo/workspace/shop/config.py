"""Runtime settings, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal
from typing import Mapping

_DEFAULT_SECRET = "dev-only-secret-change-me"


@dataclass(frozen=True)
class Settings:
    """Everything the services need to know about their environment."""

    token_secret: bytes = _DEFAULT_SECRET.encode()
    token_ttl_seconds: int = 3600
    session_idle_seconds: int = 1800
    tax_rate_percent: Decimal = Decimal("20")
    currency: str = "EUR"
    invoice_due_days: int = 14
    email_backend: str = "console"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    sender_address: str = "orders@shop.example"
    password_iterations: int = 240_000
    payment_retry_seconds: float = 0.5

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Builds settings from ``SHOP_*`` variables, falling back to defaults."""
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            token_secret=env.get("SHOP_TOKEN_SECRET", _DEFAULT_SECRET).encode(),
            token_ttl_seconds=int(env.get("SHOP_TOKEN_TTL", defaults.token_ttl_seconds)),
            session_idle_seconds=int(env.get("SHOP_SESSION_IDLE", defaults.session_idle_seconds)),
            tax_rate_percent=Decimal(env.get("SHOP_TAX_RATE", str(defaults.tax_rate_percent))),
            currency=env.get("SHOP_CURRENCY", defaults.currency),
            invoice_due_days=int(env.get("SHOP_INVOICE_DUE_DAYS", defaults.invoice_due_days)),
            email_backend=env.get("SHOP_EMAIL_BACKEND", defaults.email_backend),
            smtp_host=env.get("SHOP_SMTP_HOST", defaults.smtp_host),
            smtp_port=int(env.get("SHOP_SMTP_PORT", defaults.smtp_port)),
            sender_address=env.get("SHOP_SENDER", defaults.sender_address),
            password_iterations=int(env.get("SHOP_PASSWORD_ITERATIONS", defaults.password_iterations)),
            payment_retry_seconds=float(env.get("SHOP_PAYMENT_RETRY", defaults.payment_retry_seconds)),
        )

    @property
    def uses_default_secret(self) -> bool:
        return self.token_secret == _DEFAULT_SECRET.encode()
