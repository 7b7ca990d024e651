"""Strongly typed identifiers used across the shop domain.

Identifiers are small immutable wrappers around strings, so a user id can never
be passed where an order id is expected. Each kind has a fixed prefix; the
prefixed string (``usr_...``, ``ord_...``) is what gets stored, put in tokens
and sent over the API, so prefixes must never change.
"""

from __future__ import annotations

import secrets
from typing import TypeVar

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_SUFFIX_LENGTH = 12

T = TypeVar("T", bound="_PrefixedId")


class _PrefixedId:
    """Base class: a string value that must start with ``prefix``."""

    prefix = ""
    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value.startswith(self.prefix):
            raise ValueError(f"invalid {type(self).__name__}: {value!r}")
        suffix = value[len(self.prefix):]
        if not suffix or any(ch not in _ALPHABET for ch in suffix):
            raise ValueError(f"invalid {type(self).__name__}: {value!r}")
        object.__setattr__(self, "value", value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    @classmethod
    def new(cls: type[T]) -> T:
        """Returns a fresh random identifier."""
        suffix = "".join(secrets.choice(_ALPHABET) for _ in range(_SUFFIX_LENGTH))
        return cls(cls.prefix + suffix)

    @classmethod
    def parse(cls: type[T], raw: object) -> T:
        """Parses the external string form; raises ValueError on bad input."""
        if isinstance(raw, cls):
            return raw
        if not isinstance(raw, str):
            raise ValueError(f"invalid {cls.__name__}: {raw!r}")
        return cls(raw.strip().lower())

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.value == other.value  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.value))

    def __lt__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.value < other.value  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"

    def __str__(self) -> str:
        return self.value


class UserId(_PrefixedId):
    """Identifies a customer account."""

    prefix = "usr_"
    __slots__ = ()


class OrderId(_PrefixedId):
    """Identifies an order."""

    prefix = "ord_"
    __slots__ = ()


class InvoiceId(_PrefixedId):
    """Identifies an invoice."""

    prefix = "inv_"
    __slots__ = ()
