"""Invoicing orders and collecting payment."""

from __future__ import annotations

import sys
from typing import Callable

from shop.auth.permissions import ensure_can_pay_invoice
from shop.errors import Conflict, PaymentDeclined
from shop.ids import InvoiceId, OrderId, UserId
from shop.models.invoice import Invoice, InvoiceStatus
from shop.models.order import OrderStatus
from shop.money import Money
from shop.notifications.notifier import Notifier
from shop.repositories.invoices import InvoiceRepository
from shop.repositories.orders import OrderRepository
from shop.services.pricing import PricingService
from shop.utils.clock import Clock, SystemClock
from shop.utils.retry import retry

# A payment gateway charges (payer, amount, reference) and returns a receipt id.
Gateway = Callable[[UserId, Money, str], str]


class BillingService:
    def __init__(self, invoices: InvoiceRepository, orders: OrderRepository,
                 pricing: PricingService, notifier: Notifier, gateway: Gateway,
                 clock: Clock | None = None, due_days: int = 14,
                 retry_delay: float = 0.5) -> None:
        self.invoices = invoices
        self._orders = orders
        self._pricing = pricing
        self._notifier = notifier
        self._charge = retry(attempts=3, delay=retry_delay)(gateway)
        self._clock = clock or SystemClock()
        self._due_days = due_days

    def invoice_order(self, order_id: OrderId) -> Invoice:
        order = self._orders.get(order_id)
        if self.invoices.for_order(order_id) is not None:
            raise Conflict(f"order {order_id} is already invoiced")
        if order.status is not OrderStatus.PENDING:
            raise Conflict(f"order {order_id} is {order.status.value}")
        subtotal = order.subtotal()
        invoice = Invoice(
            id=InvoiceId.new(),
            order_id=order.id,
            billed_to=order.customer_id,
            subtotal=subtotal,
            tax=self._pricing.tax_on(subtotal),
            issued_at=self._clock.now(),
            due_days=self._due_days,
        )
        self.invoices.add(invoice)
        self._orders.update_status(order_id, OrderStatus.INVOICED)
        print(f"[billing] issued {invoice.id} to {invoice.billed_to} for {invoice.total}")
        self._notifier.invoice_issued(invoice)
        return invoice

    def pay_invoice(self, invoice_id: InvoiceId, payer_id: UserId) -> Invoice:
        invoice = self.invoices.get(invoice_id)
        ensure_can_pay_invoice(payer_id, invoice)
        if invoice.status is not InvoiceStatus.OPEN:
            raise Conflict(f"invoice {invoice_id} is {invoice.status.value}")
        try:
            receipt = self._charge(payer_id, invoice.total, str(invoice.id))
        except PaymentDeclined as exc:
            print(f"[billing] WARNING: payment for {invoice_id} declined: {exc.reason}",
                  file=sys.stderr)
            self._notifier.payment_failed(invoice, exc.reason)
            raise
        invoice = self.invoices.save(invoice.paid(self._clock.now()))
        self._orders.update_status(invoice.order_id, OrderStatus.PAID)
        print(f"[billing] {invoice_id} paid by {payer_id}, receipt {receipt}")
        self._notifier.payment_received(invoice)
        return invoice

    def void_invoice(self, invoice_id: InvoiceId) -> Invoice:
        invoice = self.invoices.save(self.invoices.get(invoice_id).voided())
        print(f"[billing] voided {invoice_id}")
        return invoice

    def outstanding_for(self, customer_id: UserId, currency: str = "EUR") -> Money:
        return self.invoices.outstanding(customer_id, currency)
