import pytest

from shop.api.request import Request
from shop.api.serializers import parse_items, parse_user_id
from shop.errors import ValidationError
from shop.ids import UserId


def login(app, email="alice@example.com", password="correct horse battery"):
    response = app.account_api.login(
        Request("POST", "/sessions", body={"email": email, "password": password})
    )
    assert response.status == 200, response.body
    return {"Authorization": f"Bearer {response.body['token']}"}


def test_register_then_login(app):
    created = app.account_api.register(Request("POST", "/accounts", body={
        "email": "Carol@Example.com", "display_name": "Carol", "password": "long enough pw",
    }))
    assert created.status == 201
    assert created.body["email"] == "carol@example.com"
    assert UserId.parse(created.body["id"])
    assert "password_hash" not in created.body
    login(app, "carol@example.com", "long enough pw")


def test_wrong_password_is_401(app, alice):
    response = app.account_api.login(Request("POST", "/sessions", body={
        "email": "alice@example.com", "password": "not the password",
    }))
    assert response.status == 401


def test_show_self_but_not_others(app, alice, bob):
    headers = login(app)
    own = app.account_api.show(Request("GET", "/accounts/x", params={"user_id": str(alice.id)},
                                       headers=headers))
    assert own.status == 200 and own.body["id"] == str(alice.id)
    other = app.account_api.show(Request("GET", "/accounts/x", params={"user_id": str(bob.id)},
                                         headers=headers))
    assert other.status == 403


def test_place_and_pay_through_the_api(app, alice, gateway):
    headers = login(app)
    placed = app.order_api.place(Request("POST", "/orders", headers=headers, body={
        "items": [{"sku": "MUG-01", "quantity": 2}],
    }))
    assert placed.status == 201
    assert placed.body["order"]["customer_id"] == str(alice.id)
    assert placed.body["invoice"]["total"] == {"amount": "30.00", "currency": "EUR"}
    paid = app.order_api.pay(Request("POST", "/invoices/pay", headers=headers,
                                     params={"invoice_id": placed.body["invoice"]["id"]}))
    assert paid.status == 200 and paid.body["status"] == "paid"
    assert len(gateway.charges) == 1


def test_requests_without_a_token_are_401(app):
    response = app.order_api.mine(Request("GET", "/orders"))
    assert response.status == 401


def test_parse_user_id_maps_errors_to_validation():
    assert parse_user_id("usr_000000001234") == UserId("usr_000000001234")
    with pytest.raises(ValidationError):
        parse_user_id("ord_000000001234")


def test_parse_items_validates_quantities():
    assert parse_items([{"sku": "A", "quantity": 2}, {"sku": "B"}]) == [("A", 2), ("B", 1)]
    with pytest.raises(ValidationError):
        parse_items([{"sku": "A", "quantity": 0}])
