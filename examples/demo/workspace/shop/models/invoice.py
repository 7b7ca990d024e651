"""Invoices issued for orders."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shop.ids import InvoiceId, OrderId, UserId
from shop.money import Money


class InvoiceStatus(enum.Enum):
    OPEN = "open"
    PAID = "paid"
    VOID = "void"


@dataclass(frozen=True)
class Invoice:
    """A bill for one order. Amounts are frozen at issue time."""

    id: InvoiceId
    order_id: OrderId
    billed_to: UserId
    subtotal: Money
    tax: Money
    issued_at: datetime
    due_days: int = 14
    status: InvoiceStatus = InvoiceStatus.OPEN
    paid_at: datetime | None = None

    @property
    def total(self) -> Money:
        return self.subtotal + self.tax

    @property
    def due_at(self) -> datetime:
        return self.issued_at + timedelta(days=self.due_days)

    def is_overdue(self, now: datetime) -> bool:
        return self.status is InvoiceStatus.OPEN and now > self.due_at

    def is_billed_to(self, user_id: UserId) -> bool:
        return self.billed_to == user_id

    def paid(self, when: datetime) -> Invoice:
        if self.status is not InvoiceStatus.OPEN:
            raise ValueError(f"invoice {self.id} is {self.status.value}")
        return replace(self, status=InvoiceStatus.PAID, paid_at=when)

    def voided(self) -> Invoice:
        if self.status is InvoiceStatus.PAID:
            raise ValueError(f"invoice {self.id} is already paid")
        return replace(self, status=InvoiceStatus.VOID)
