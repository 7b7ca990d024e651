"""Command line entry point.

``python -m shop.cli demo`` runs a scripted order -> invoice -> payment flow
against in-memory storage; ``python -m shop.cli token usr_...`` prints a
development bearer token for an account id.
"""

from __future__ import annotations

import argparse
import secrets
import sys

from shop.app import build_app
from shop.config import Settings
from shop.ids import UserId
from shop.money import Money
from shop.services.pricing import Catalogue
from shop.utils.clock import utcnow


def fake_gateway(payer: UserId, amount: Money, reference: str) -> str:
    """Accepts every charge; stands in for the payment provider in the demo."""
    return f"rcpt_{secrets.token_hex(4)}"


def run_demo(settings: Settings) -> int:
    print("[cli] seeding catalogue")
    catalogue = Catalogue({"MUG-01": Money.of("12.50"), "TEE-M": Money.of("19.90")})
    app = build_app(settings, fake_gateway, catalogue)
    user = app.accounts.register("demo@shop.example", "Demo Customer", "correct horse battery")
    order = app.orders.place_order(user.id, [("MUG-01", 2), ("TEE-M", 1)])
    invoice = app.billing.invoice_order(order.id)
    invoice = app.billing.pay_invoice(invoice.id, user.id)
    print(f"order    {order.id}  {order.subtotal()}")
    print(f"invoice  {invoice.id}  {invoice.total}  ({invoice.status.value})")
    return 0


def issue_token(settings: Settings, raw_user_id: str) -> int:
    try:
        user_id = UserId.parse(raw_user_id)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = build_app(settings, fake_gateway)
    print(app.tokens.issue(user_id, utcnow()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shop")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run a scripted order flow in memory")
    token = commands.add_parser("token", help="print a development bearer token")
    token.add_argument("user_id")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    print(f"[cli] e-mail backend: {settings.email_backend}")
    if settings.uses_default_secret:
        print("[cli] WARNING: using the development token secret", file=sys.stderr)
    if args.command == "demo":
        return run_demo(settings)
    return issue_token(settings, args.user_id)


if __name__ == "__main__":
    sys.exit(main())
