import pytest

from shop.errors import Conflict, PaymentDeclined, PermissionDenied
from shop.ids import UserId
from shop.models.invoice import InvoiceStatus
from shop.models.order import OrderStatus
from shop.money import Money


@pytest.fixture
def order(app, alice):
    return app.orders.place_order(alice.id, [("MUG-01", 2), ("TEE-M", 1)])


def test_invoice_adds_tax_and_marks_order_invoiced(app, order, outbox):
    invoice = app.billing.invoice_order(order.id)
    assert invoice.subtotal == Money.of("44.90")
    assert invoice.tax == Money.of("8.98")
    assert invoice.total == Money.of("53.88")
    assert app.orders.orders.get(order.id).status is OrderStatus.INVOICED
    assert outbox.subjects()[-1] == f"Invoice {invoice.id}"


def test_an_order_is_invoiced_once(app, order):
    app.billing.invoice_order(order.id)
    with pytest.raises(Conflict):
        app.billing.invoice_order(order.id)


def test_payment_charges_the_customer(app, alice, order, gateway, clock):
    invoice = app.billing.invoice_order(order.id)
    paid = app.billing.pay_invoice(invoice.id, alice.id)
    assert paid.status is InvoiceStatus.PAID and paid.paid_at == clock.now()
    assert gateway.charges == [(alice.id, Money.of("53.88"), str(invoice.id))]
    assert app.orders.orders.get(order.id).status is OrderStatus.PAID


def test_someone_else_cannot_pay(app, bob, order):
    invoice = app.billing.invoice_order(order.id)
    with pytest.raises(PermissionDenied):
        app.billing.pay_invoice(invoice.id, bob.id)


def test_transient_gateway_failures_are_retried(app, alice, order, gateway):
    gateway.transient_failures = 2
    invoice = app.billing.invoice_order(order.id)
    assert app.billing.pay_invoice(invoice.id, alice.id).status is InvoiceStatus.PAID


def test_declined_payment_notifies_and_leaves_invoice_open(app, alice, order, gateway, outbox):
    gateway.decline_reason = "insufficient funds"
    invoice = app.billing.invoice_order(order.id)
    with pytest.raises(PaymentDeclined):
        app.billing.pay_invoice(invoice.id, alice.id)
    assert app.billing.invoices.get(invoice.id).status is InvoiceStatus.OPEN
    assert outbox.outbox[-1].subject == f"Payment for {invoice.id} failed"


def test_outstanding_sums_open_invoices(app, alice, order):
    app.billing.invoice_order(order.id)
    second = app.orders.place_order(alice.id, [("MUG-01", 1)])
    app.billing.invoice_order(second.id)
    assert app.billing.outstanding_for(alice.id) == Money.of("68.88")
    assert app.billing.outstanding_for(UserId("usr_000000000404")) == Money.zero()
