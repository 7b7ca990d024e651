"""Handlers for ``/orders`` and ``/invoices``."""

from __future__ import annotations

from shop.api.accounts import authenticated_user_id
from shop.api.request import Request, Response, error_response
from shop.api.serializers import (
    invoice_to_dict,
    order_to_dict,
    parse_invoice_id,
    parse_items,
    parse_order_id,
)
from shop.auth.permissions import ensure_can_view_order
from shop.auth.tokens import TokenSigner
from shop.errors import ShopError
from shop.ids import UserId
from shop.services.accounts import AccountService
from shop.services.billing import BillingService
from shop.services.orders import OrderService
from shop.utils.clock import Clock, SystemClock


class OrderHandlers:
    def __init__(self, orders: OrderService, billing: BillingService, accounts: AccountService,
                 tokens: TokenSigner, clock: Clock | None = None) -> None:
        self._orders = orders
        self._billing = billing
        self._accounts = accounts
        self._tokens = tokens
        self._clock = clock or SystemClock()

    def _caller(self, request: Request) -> UserId:
        return authenticated_user_id(request, self._tokens, self._clock)

    def place(self, request: Request) -> Response:
        print(f"[api] {request.method} {request.path}")
        try:
            customer_id = self._caller(request)
            items = parse_items(request.body.get("items"))
            order = self._orders.place_order(customer_id, items, request.body.get("discount_code"))
            invoice = self._billing.invoice_order(order.id)
        except ShopError as exc:
            print(f"[api] placing order failed: {exc}")
            return error_response(exc)
        return Response(201, {"order": order_to_dict(order), "invoice": invoice_to_dict(invoice)})

    def show(self, request: Request) -> Response:
        print(f"[api] {request.method} {request.path}")
        try:
            actor = self._accounts.get(self._caller(request))
            order = self._orders.orders.get(parse_order_id(request.params.get("order_id")))
            ensure_can_view_order(actor, order)
        except ShopError as exc:
            return error_response(exc)
        return Response(200, order_to_dict(order))

    def mine(self, request: Request) -> Response:
        try:
            customer_id = self._caller(request)
        except ShopError as exc:
            return error_response(exc)
        return Response(200, {"orders": [order_to_dict(o) for o in self._orders.history(customer_id)]})

    def pay(self, request: Request) -> Response:
        print(f"[api] {request.method} {request.path}")
        try:
            payer_id = self._caller(request)
            invoice_id = parse_invoice_id(request.params.get("invoice_id"))
            invoice = self._billing.pay_invoice(invoice_id, payer_id)
        except ShopError as exc:
            print(f"[api] payment failed: {exc}")
            return error_response(exc)
        return Response(200, invoice_to_dict(invoice))
