"""The shop order and billing service.

The package is organised in layers: ``models`` hold plain data, ``repositories``
store it, ``services`` implement the business rules, and ``api`` adapts them to
requests. The identifier types are re-exported here because nearly every caller
needs one of them.
"""

from shop.ids import InvoiceId, OrderId, UserId

__version__ = "0.4.2"

__all__ = ["InvoiceId", "OrderId", "UserId", "__version__"]
