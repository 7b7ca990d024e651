"""Customer accounts, with a unique index on e-mail."""

from __future__ import annotations

from shop.errors import Conflict, NotFound
from shop.ids import UserId
from shop.models.user import User
from shop.repositories.base import InMemoryRepository
from shop.utils.text import mask_email, normalise_email


class UserRepository(InMemoryRepository[UserId, User]):
    kind = "user"

    def __init__(self) -> None:
        super().__init__(lambda user: user.id)
        self._by_email: dict[str, UserId] = {}

    def add(self, user: User) -> User:
        if user.email in self._by_email:
            print(f"[users] rejected duplicate registration for {mask_email(user.email)}")
            raise Conflict("e-mail address already registered")
        super().add(user)
        self._by_email[user.email] = user.id
        return user

    def save(self, user: User) -> User:
        previous = self.get(user.id)
        if previous.email != user.email:
            if user.email in self._by_email:
                raise Conflict("e-mail address already registered")
            del self._by_email[previous.email]
            self._by_email[user.email] = user.id
        return super().save(user)

    def get_by_email(self, email: str) -> User:
        user = self.find_by_email(email)
        if user is None:
            raise NotFound("user", mask_email(email))
        return user

    def find_by_email(self, email: str) -> User | None:
        try:
            key = normalise_email(email)
        except ValueError:
            return None
        user_id = self._by_email.get(key)
        return self.find(user_id) if user_id is not None else None

    def active_ids(self) -> list[UserId]:
        ids = sorted(user.id for user in self if user.is_active)
        print(f"[users] {len(ids)} active accounts")
        return ids
