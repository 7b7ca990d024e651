"""Placing and cancelling orders."""

from __future__ import annotations

from shop.auth.permissions import ensure_can_cancel_order
from shop.errors import ValidationError
from shop.ids import OrderId, UserId
from shop.models.order import Order, OrderStatus
from shop.notifications.notifier import Notifier
from shop.repositories.orders import OrderRepository
from shop.repositories.users import UserRepository
from shop.services.pricing import PricingService

MAX_LINES = 50


class OrderService:
    def __init__(self, orders: OrderRepository, users: UserRepository,
                 pricing: PricingService, notifier: Notifier) -> None:
        self.orders = orders
        self._users = users
        self._pricing = pricing
        self._notifier = notifier

    def place_order(self, customer_id: UserId, items: list[tuple[str, int]],
                    discount_code: str | None = None) -> Order:
        """Creates an order for ``customer_id`` from (sku, quantity) pairs."""
        customer = self._users.get(customer_id)
        if not customer.is_active:
            raise ValidationError("customer", "account is deactivated")
        if len(items) > MAX_LINES:
            raise ValidationError("items", f"at most {MAX_LINES} lines per order")
        order = Order.open(customer.id)
        for sku, quantity in items:
            order.add_line(sku, quantity, self._pricing.catalogue.price_of(sku))
        order.discount = self._pricing.discount_for(discount_code, order.subtotal())
        self.orders.add(order)
        print(f"[orders] {customer_id} placed {order.id} for {order.subtotal()}")
        self._notifier.order_confirmed(order)
        return order

    def cancel_order(self, order_id: OrderId, requested_by: UserId) -> Order:
        order = self.orders.get(order_id)
        actor = self._users.get(requested_by)
        ensure_can_cancel_order(actor, order)
        if order.status is OrderStatus.INVOICED:
            print(f"[orders] {order_id} was invoiced; billing must void the invoice")
        order = self.orders.update_status(order_id, OrderStatus.CANCELLED)
        print(f"[orders] {order_id} cancelled by {requested_by}")
        return order

    def history(self, customer_id: UserId) -> list[Order]:
        return self.orders.for_customer(customer_id)
