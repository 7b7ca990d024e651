"""Converting domain objects to and from JSON-ready dicts.

Ids travel as their prefixed string form. Money travels as a string amount plus
a currency, never as a float.
"""

from __future__ import annotations

from typing import Any

from shop.errors import ValidationError
from shop.ids import InvoiceId, OrderId, UserId
from shop.models.invoice import Invoice
from shop.models.order import Order
from shop.models.user import User
from shop.money import Money


def money_to_dict(money: Money) -> dict[str, str]:
    return {"amount": f"{money.amount:.2f}", "currency": money.currency}


def user_to_dict(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "email": user.email,
        "display_name": user.display_name,
        "active": user.is_active,
        "created_at": user.created_at.isoformat(),
    }


def order_to_dict(order: Order) -> dict[str, Any]:
    return {
        "id": str(order.id),
        "customer_id": str(order.customer_id),
        "status": order.status.value,
        "lines": [
            {"sku": line.sku, "quantity": line.quantity, "unit_price": money_to_dict(line.unit_price)}
            for line in order.lines
        ],
        "subtotal": money_to_dict(order.subtotal()),
    }


def invoice_to_dict(invoice: Invoice) -> dict[str, Any]:
    return {
        "id": str(invoice.id),
        "order_id": str(invoice.order_id),
        "billed_to": str(invoice.billed_to),
        "total": money_to_dict(invoice.total),
        "status": invoice.status.value,
        "due_at": invoice.due_at.isoformat(),
    }


def parse_user_id(raw: object, field: str = "user_id") -> UserId:
    try:
        return UserId.parse(raw)
    except ValueError:
        raise ValidationError(field, "not a valid account id") from None


def parse_order_id(raw: object, field: str = "order_id") -> OrderId:
    try:
        return OrderId.parse(raw)
    except ValueError:
        raise ValidationError(field, "not a valid order id") from None


def parse_invoice_id(raw: object, field: str = "invoice_id") -> InvoiceId:
    try:
        return InvoiceId.parse(raw)
    except ValueError:
        raise ValidationError(field, "not a valid invoice id") from None


def parse_items(raw: object) -> list[tuple[str, int]]:
    """``[{"sku": "A", "quantity": 2}, ...]`` -> ``[("A", 2), ...]``."""
    if not isinstance(raw, list) or not raw:
        raise ValidationError("items", "expected a non-empty list")
    items = []
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("sku"), str):
            raise ValidationError("items", "each item needs a sku")
        quantity = entry.get("quantity", 1)
        if not isinstance(quantity, int) or quantity <= 0:
            raise ValidationError("items", f"bad quantity for {entry['sku']}")
        items.append((entry["sku"], quantity))
    return items
