"""Shared fixtures: a fully wired app on in-memory storage and a frozen clock."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shop.app import App, build_app
from shop.config import Settings
from shop.errors import PaymentDeclined
from shop.ids import UserId
from shop.money import Money
from shop.notifications.backends import MemoryBackend
from shop.services.pricing import Catalogue
from shop.utils.clock import FixedClock

TEST_SECRET = b"test-secret-0123456789abcdef"
PASSWORD = "correct horse battery"


class FakeGateway:
    """Records charges; can be told to decline or to fail transiently."""

    def __init__(self) -> None:
        self.charges: list[tuple[UserId, Money, str]] = []
        self.decline_reason: str | None = None
        self.transient_failures = 0

    def __call__(self, payer: UserId, amount: Money, reference: str) -> str:
        if self.transient_failures:
            self.transient_failures -= 1
            raise ConnectionError("gateway unreachable")
        if self.decline_reason:
            raise PaymentDeclined(self.decline_reason)
        self.charges.append((payer, amount, reference))
        return f"rcpt_{len(self.charges)}"


@pytest.fixture
def token_secret() -> bytes:
    return TEST_SECRET


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def outbox() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def app(clock: FixedClock, outbox: MemoryBackend, gateway: FakeGateway) -> App:
    settings = Settings(token_secret=TEST_SECRET, tax_rate_percent=Decimal("20"),
                        password_iterations=1000, payment_retry_seconds=0.0)
    catalogue = Catalogue({"MUG-01": Money.of("12.50"), "TEE-M": Money.of("19.90")})
    return build_app(settings, gateway, catalogue, outbox, clock)


@pytest.fixture
def alice(app: App):
    return app.accounts.register("alice@example.com", "Alice", PASSWORD)


@pytest.fixture
def bob(app: App):
    return app.accounts.register("bob@example.com", "Bob", PASSWORD)


@pytest.fixture
def unknown_user_id() -> UserId:
    return UserId("usr_000000000404")
