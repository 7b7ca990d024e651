"""In-memory repositories. Swapping in a database only touches this package."""

from shop.repositories.invoices import InvoiceRepository
from shop.repositories.orders import OrderRepository
from shop.repositories.users import UserRepository

__all__ = ["InvoiceRepository", "OrderRepository", "UserRepository"]
