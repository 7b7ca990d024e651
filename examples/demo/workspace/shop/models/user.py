"""Customer accounts."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from shop.ids import UserId
from shop.utils.clock import utcnow
from shop.utils.text import normalise_email

ADMIN_ROLE = "admin"


@dataclass(frozen=True)
class User:
    """A registered customer. ``password_hash`` is never serialised."""

    id: UserId
    email: str
    display_name: str
    password_hash: str
    created_at: datetime = field(default_factory=utcnow)
    is_active: bool = True
    roles: frozenset[str] = frozenset()

    @classmethod
    def create(cls, email: str, display_name: str, password_hash: str) -> User:
        """A new active account with a fresh id."""
        return cls(
            id=UserId.new(),
            email=normalise_email(email),
            display_name=display_name.strip() or email.split("@")[0],
            password_hash=password_hash,
        )

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    def deactivated(self) -> User:
        return replace(self, is_active=False)

    def with_password_hash(self, password_hash: str) -> User:
        return replace(self, password_hash=password_hash)

    def with_role(self, role: str) -> User:
        return replace(self, roles=self.roles | {role})

    def owns(self, owner_id: UserId) -> bool:
        """True when ``owner_id`` is this account (admins do not count)."""
        return self.id == owner_id
