import pytest

from shop.errors import NotFound, PermissionDenied, ValidationError
from shop.models.order import OrderStatus
from shop.money import Money


def test_place_order_prices_lines_from_the_catalogue(app, alice, outbox):
    order = app.orders.place_order(alice.id, [("MUG-01", 2), ("TEE-M", 1)])
    assert order.customer_id == alice.id
    assert order.subtotal() == Money.of("44.90")
    assert order.status is OrderStatus.PENDING
    assert "Order" in outbox.subjects()[-1]


def test_discount_code_reduces_subtotal(app, alice):
    app.pricing._discount_codes["SPRING10"] = 10
    order = app.orders.place_order(alice.id, [("MUG-01", 2)], discount_code="spring10")
    assert order.subtotal() == Money.of("22.50")


def test_unknown_discount_code_charges_full_price(app, alice):
    order = app.orders.place_order(alice.id, [("MUG-01", 1)], discount_code="NOPE")
    assert order.subtotal() == Money.of("12.50")


def test_unknown_sku_is_not_found(app, alice):
    with pytest.raises(NotFound):
        app.orders.place_order(alice.id, [("GHOST", 1)])


def test_unknown_customer_is_not_found(app, unknown_user_id):
    with pytest.raises(NotFound):
        app.orders.place_order(unknown_user_id, [("MUG-01", 1)])


def test_deactivated_customer_cannot_order(app, alice):
    app.accounts.deactivate(alice.id)
    with pytest.raises(ValidationError):
        app.orders.place_order(alice.id, [("MUG-01", 1)])


def test_only_the_customer_may_cancel(app, alice, bob):
    order = app.orders.place_order(alice.id, [("MUG-01", 1)])
    with pytest.raises(PermissionDenied):
        app.orders.cancel_order(order.id, bob.id)
    assert app.orders.cancel_order(order.id, alice.id).status is OrderStatus.CANCELLED


def test_history_lists_only_own_orders(app, alice, bob):
    mine = app.orders.place_order(alice.id, [("MUG-01", 1)])
    app.orders.place_order(bob.id, [("TEE-M", 1)])
    assert [order.id for order in app.orders.history(alice.id)] == [mine.id]
