"""Wiring: builds the object graph of services from settings."""

from __future__ import annotations

from dataclasses import dataclass

from shop.api.accounts import AccountHandlers
from shop.api.orders import OrderHandlers
from shop.auth.passwords import PasswordHasher
from shop.auth.sessions import SessionStore
from shop.auth.tokens import TokenSigner
from shop.config import Settings
from shop.notifications.backends import EmailBackend, backend_from_settings
from shop.notifications.notifier import Notifier
from shop.repositories import InvoiceRepository, OrderRepository, UserRepository
from shop.services.accounts import AccountService
from shop.services.billing import BillingService, Gateway
from shop.services.orders import OrderService
from shop.services.pricing import Catalogue, PricingService
from shop.utils.clock import Clock, SystemClock


@dataclass
class App:
    settings: Settings
    accounts: AccountService
    orders: OrderService
    billing: BillingService
    pricing: PricingService
    sessions: SessionStore
    tokens: TokenSigner
    account_api: AccountHandlers
    order_api: OrderHandlers


def build_app(settings: Settings, gateway: Gateway, catalogue: Catalogue | None = None,
              backend: EmailBackend | None = None, clock: Clock | None = None) -> App:
    clock = clock or SystemClock()
    users, orders, invoices = UserRepository(), OrderRepository(), InvoiceRepository()
    backend = backend or backend_from_settings(
        settings.email_backend, settings.smtp_host, settings.smtp_port
    )
    notifier = Notifier(users, backend, settings.sender_address)
    pricing = PricingService(catalogue or Catalogue(), settings.tax_rate_percent)
    accounts = AccountService(users, PasswordHasher(settings.password_iterations), notifier)
    order_service = OrderService(orders, users, pricing, notifier)
    billing = BillingService(invoices, orders, pricing, notifier, gateway, clock,
                             settings.invoice_due_days, settings.payment_retry_seconds)
    tokens = TokenSigner(settings.token_secret, settings.token_ttl_seconds)
    return App(
        settings=settings,
        accounts=accounts,
        orders=order_service,
        billing=billing,
        pricing=pricing,
        sessions=SessionStore(settings.session_idle_seconds, clock),
        tokens=tokens,
        account_api=AccountHandlers(accounts, tokens, clock),
        order_api=OrderHandlers(order_service, billing, accounts, tokens, clock),
    )
