"""Plain data classes for the shop domain. No I/O happens here."""

from shop.models.invoice import Invoice, InvoiceStatus
from shop.models.order import Order, OrderLine, OrderStatus
from shop.models.user import User

__all__ = ["Invoice", "InvoiceStatus", "Order", "OrderLine", "OrderStatus", "User"]
