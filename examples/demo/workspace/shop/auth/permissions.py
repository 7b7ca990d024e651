"""Who may see or change what.

Rules are functions, not decorators, so services call them exactly where the
decision is made and tests can call them directly.
"""

from __future__ import annotations

from shop.errors import PermissionDenied
from shop.ids import UserId
from shop.models.invoice import Invoice
from shop.models.order import Order
from shop.models.user import User


def ensure_self_or_admin(actor: User, target: UserId) -> None:
    """Accounts may manage themselves; admins may manage anyone."""
    if actor.is_admin or actor.id == target:
        return
    raise PermissionDenied(f"{actor.id} may not act on account {target}")


def ensure_can_view_order(actor: User, order: Order) -> None:
    if actor.is_admin or order.belongs_to(actor.id):
        return
    raise PermissionDenied(f"{actor.id} may not view order {order.id}")


def ensure_can_cancel_order(actor: User, order: Order) -> None:
    """Only the customer may cancel, and only before it is paid."""
    if not order.belongs_to(actor.id) and not actor.is_admin:
        raise PermissionDenied(f"{actor.id} may not cancel order {order.id}")
    if not order.is_open:
        raise PermissionDenied(f"order {order.id} can no longer be cancelled")


def ensure_can_pay_invoice(payer_id: UserId, invoice: Invoice) -> None:
    """Invoices are paid by the customer they are billed to, nobody else."""
    if not invoice.is_billed_to(payer_id):
        raise PermissionDenied(f"{payer_id} may not pay invoice {invoice.id}")


def visible_orders(actor: User, orders: list[Order]) -> list[Order]:
    return [order for order in orders if actor.is_admin or order.belongs_to(actor.id)]
