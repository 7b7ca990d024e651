"""The catalogue, discount codes and tax."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from shop.errors import NotFound, ValidationError
from shop.money import Money


@dataclass
class Catalogue:
    """Unit prices by SKU."""

    prices: dict[str, Money] = field(default_factory=dict)

    def price_of(self, sku: str) -> Money:
        try:
            return self.prices[sku]
        except KeyError:
            raise NotFound("product", sku) from None

    def set_price(self, sku: str, price: Money) -> None:
        if price.amount < 0:
            raise ValidationError("price", "must not be negative")
        self.prices[sku] = price


class PricingService:
    def __init__(self, catalogue: Catalogue, tax_rate_percent: Decimal = Decimal("20"),
                 discount_codes: dict[str, Decimal] | None = None) -> None:
        self.catalogue = catalogue
        self.tax_rate_percent = tax_rate_percent
        self._discount_codes = {code.upper(): rate for code, rate in (discount_codes or {}).items()}

    def discount_for(self, code: str | None, subtotal: Money) -> Money | None:
        """The amount a discount code takes off ``subtotal``, or None."""
        if not code:
            return None
        rate = self._discount_codes.get(code.strip().upper())
        if rate is None:
            print(f"[pricing] unknown discount code {code!r}; charging full price")
            return None
        discount = subtotal.percent(rate)
        print(f"[pricing] code {code.upper()} takes {discount} off {subtotal}")
        return discount

    def tax_on(self, amount: Money) -> Money:
        return amount.percent(self.tax_rate_percent)

    def quote(self, items: list[tuple[str, int]]) -> Money:
        """The undiscounted, untaxed price of ``items`` ((sku, quantity) pairs)."""
        if not items:
            raise ValidationError("items", "an order needs at least one item")
        result: Money | None = None
        for sku, quantity in items:
            line = self.catalogue.price_of(sku) * quantity
            result = line if result is None else result + line
        assert result is not None
        return result
