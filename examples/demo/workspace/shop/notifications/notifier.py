"""Sends customer e-mails for domain events.

Services call the notifier with ids; it looks the account up, skips inactive
ones, renders the template and hands the message to the configured backend.
A failing backend never fails the business operation that triggered the e-mail.
"""

from __future__ import annotations

from shop.ids import UserId
from shop.models.invoice import Invoice
from shop.models.order import Order
from shop.models.user import User
from shop.notifications.backends import EmailBackend, EmailMessage
from shop.notifications.templates import render
from shop.repositories.users import UserRepository
from shop.utils.text import plural


class Notifier:
    def __init__(self, users: UserRepository, backend: EmailBackend,
                 sender: str = "orders@shop.example") -> None:
        self._users = users
        self._backend = backend
        self._sender = sender

    def notify(self, user_id: UserId, template: str, **context: object) -> bool:
        """Sends ``template`` to ``user_id``; returns whether a message went out."""
        user = self._users.find(user_id)
        if user is None or not user.is_active:
            print(f"[notify] skipping {template} for {user_id}: no active account")
            return False
        subject, body = render(template, name=user.display_name, **context)
        try:
            self._backend.send(EmailMessage(user.email, subject, body, self._sender))
        except OSError as exc:
            print(f"[notify] could not send {template} to {user_id}: {exc}")
            return False
        return True

    def welcome(self, user: User) -> bool:
        return self.notify(user.id, "welcome")

    def order_confirmed(self, order: Order) -> bool:
        return self.notify(
            order.customer_id,
            "order_confirmed",
            order_id=order.id,
            items=plural(len(order.lines), "item"),
            amount=order.subtotal(),
        )

    def invoice_issued(self, invoice: Invoice) -> bool:
        return self.notify(
            invoice.billed_to,
            "invoice_issued",
            invoice_id=invoice.id,
            amount=invoice.total,
            due_date=invoice.due_at.date().isoformat(),
        )

    def payment_received(self, invoice: Invoice) -> bool:
        return self.notify(invoice.billed_to, "payment_received",
                           invoice_id=invoice.id, amount=invoice.total)

    def payment_failed(self, invoice: Invoice, reason: str) -> bool:
        return self.notify(invoice.billed_to, "payment_failed",
                           invoice_id=invoice.id, reason=reason)
