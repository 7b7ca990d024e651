"""Invoices, queryable by order and by the customer they are billed to."""

from __future__ import annotations

from datetime import datetime

from shop.ids import InvoiceId, OrderId, UserId
from shop.models.invoice import Invoice, InvoiceStatus
from shop.money import Money, total
from shop.repositories.base import InMemoryRepository


class InvoiceRepository(InMemoryRepository[InvoiceId, Invoice]):
    kind = "invoice"

    def __init__(self) -> None:
        super().__init__(lambda invoice: invoice.id)

    def for_order(self, order_id: OrderId) -> Invoice | None:
        """The live (not voided) invoice of an order, if any."""
        matches = self.filter(
            lambda invoice: invoice.order_id == order_id
            and invoice.status is not InvoiceStatus.VOID
        )
        return matches[0] if matches else None

    def billed_to(self, customer_id: UserId) -> list[Invoice]:
        invoices = self.filter(lambda invoice: invoice.is_billed_to(customer_id))
        return sorted(invoices, key=lambda invoice: invoice.issued_at)

    def unpaid(self) -> list[Invoice]:
        return self.filter(lambda invoice: invoice.status is InvoiceStatus.OPEN)

    def overdue(self, now: datetime) -> list[Invoice]:
        return [invoice for invoice in self.unpaid() if invoice.is_overdue(now)]

    def outstanding(self, customer_id: UserId, currency: str = "EUR") -> Money:
        """What ``customer_id`` still owes across all open invoices."""
        return total(
            (
                invoice.total
                for invoice in self.billed_to(customer_id)
                if invoice.status is InvoiceStatus.OPEN
            ),
            currency,
        )
