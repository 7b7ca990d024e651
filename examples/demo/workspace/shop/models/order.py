"""Orders and their lines."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from shop.ids import OrderId, UserId
from shop.money import Money, total
from shop.utils.clock import utcnow


class OrderStatus(enum.Enum):
    PENDING = "pending"
    INVOICED = "invoiced"
    PAID = "paid"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class OrderLine:
    sku: str
    quantity: int
    unit_price: Money

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise ValueError(f"quantity must be positive, got {self.quantity}")

    @property
    def amount(self) -> Money:
        return self.unit_price * self.quantity


@dataclass
class Order:
    """An order placed by one customer. Lines are fixed once it is invoiced."""

    id: OrderId
    customer_id: UserId
    lines: list[OrderLine] = field(default_factory=list)
    status: OrderStatus = OrderStatus.PENDING
    discount: Money | None = None
    created_at: datetime = field(default_factory=utcnow)

    @classmethod
    def open(cls, customer_id: UserId) -> Order:
        return cls(id=OrderId.new(), customer_id=customer_id)

    def add_line(self, sku: str, quantity: int, unit_price: Money) -> None:
        if self.status is not OrderStatus.PENDING:
            raise ValueError(f"order {self.id} is {self.status.value}; lines are frozen")
        self.lines.append(OrderLine(sku, quantity, unit_price))

    @property
    def currency(self) -> str:
        return self.lines[0].unit_price.currency if self.lines else "EUR"

    def subtotal(self) -> Money:
        gross = total((line.amount for line in self.lines), self.currency)
        return gross - self.discount if self.discount else gross

    def belongs_to(self, user_id: UserId) -> bool:
        return self.customer_id == user_id

    @property
    def is_open(self) -> bool:
        return self.status in (OrderStatus.PENDING, OrderStatus.INVOICED)
