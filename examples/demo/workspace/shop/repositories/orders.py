"""Orders, queryable by customer."""

from __future__ import annotations

from shop.ids import OrderId, UserId
from shop.models.order import Order, OrderStatus
from shop.repositories.base import InMemoryRepository


class OrderRepository(InMemoryRepository[OrderId, Order]):
    kind = "order"

    def __init__(self) -> None:
        super().__init__(lambda order: order.id)

    def for_customer(self, customer_id: UserId) -> list[Order]:
        """All orders of one customer, oldest first."""
        orders = self.filter(lambda order: order.customer_id == customer_id)
        orders.sort(key=lambda order: order.created_at)
        print(f"[orders] {len(orders)} orders for customer {customer_id}")
        return orders

    def open_for_customer(self, customer_id: UserId) -> list[Order]:
        return [order for order in self.for_customer(customer_id) if order.is_open]

    def with_status(self, status: OrderStatus) -> list[Order]:
        return self.filter(lambda order: order.status is status)

    def update_status(self, order_id: OrderId, status: OrderStatus) -> Order:
        order = self.get(order_id)
        if order.status is status:
            return order
        print(f"[orders] {order_id}: {order.status.value} -> {status.value}")
        order.status = status
        return self.save(order)

    def count_by_status(self) -> dict[OrderStatus, int]:
        counts = {status: 0 for status in OrderStatus}
        for order in self:
            counts[order.status] += 1
        return counts
