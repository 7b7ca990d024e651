"""Registration, login and account management."""

from __future__ import annotations

from shop.auth.passwords import PasswordHasher
from shop.errors import AuthenticationFailed, ValidationError
from shop.ids import UserId
from shop.models.user import User
from shop.notifications.notifier import Notifier
from shop.repositories.users import UserRepository
from shop.utils.text import mask_email

MIN_PASSWORD_LENGTH = 10


class AccountService:
    def __init__(self, users: UserRepository, hasher: PasswordHasher, notifier: Notifier) -> None:
        self.users = users
        self._hasher = hasher
        self._notifier = notifier

    def register(self, email: str, display_name: str, password: str) -> User:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ValidationError("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
        try:
            user = User.create(email, display_name, self._hasher.hash(password))
        except ValueError as exc:
            raise ValidationError("email", str(exc)) from None
        self.users.add(user)
        print(f"[accounts] registered {user.id} ({mask_email(user.email)})")
        self._notifier.welcome(user)
        return user

    def authenticate(self, email: str, password: str) -> User:
        """The account for these credentials; upgrades outdated password hashes."""
        user = self.users.find_by_email(email)
        if user is None or not user.is_active:
            print(f"[accounts] login failed for {mask_email(email)}: no active account")
            raise AuthenticationFailed("wrong e-mail or password")
        if not self._hasher.verify(password, user.password_hash):
            print(f"[accounts] login failed for {user.id}: wrong password")
            raise AuthenticationFailed("wrong e-mail or password")
        if self._hasher.needs_rehash(user.password_hash):
            user = self.users.save(user.with_password_hash(self._hasher.hash(password)))
        return user

    def get(self, user_id: UserId) -> User:
        return self.users.get(user_id)

    def change_password(self, user_id: UserId, old: str, new: str) -> None:
        user = self.users.get(user_id)
        if not self._hasher.verify(old, user.password_hash):
            raise AuthenticationFailed("wrong password")
        if len(new) < MIN_PASSWORD_LENGTH:
            raise ValidationError("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
        self.users.save(user.with_password_hash(self._hasher.hash(new)))
        print(f"[accounts] password changed for {user_id}")

    def deactivate(self, user_id: UserId) -> User:
        user = self.users.save(self.users.get(user_id).deactivated())
        print(f"[accounts] deactivated {user_id}")
        return user
