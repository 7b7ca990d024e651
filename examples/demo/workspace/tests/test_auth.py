from datetime import timedelta

import pytest

from shop.auth.passwords import PasswordHasher
from shop.auth.permissions import ensure_self_or_admin
from shop.auth.sessions import SessionStore
from shop.auth.tokens import TokenSigner
from shop.errors import PermissionDenied
from shop.ids import UserId
from shop.utils.clock import FixedClock

# Issued by shop 0.4 for usr_000000001234 at FixedClock()'s start, valid one hour.
# Clients hold tokens like this one: it must keep verifying after any refactoring.
RELEASED_TOKEN = (
    "eyJleHAiOjE3MDkyODcyMDAsImlhdCI6MTcwOTI4MzYwMCwia2luZCI6IlVzZXJJZCIsInN1YiI6InVzcl8w"
    "MDAwMDAwMDEyMzQifQ.b9Wtqo2fZXTJn0pU5mYq06mG9GbrAPijyBzre6Gv6ZU"
)


def test_password_round_trip():
    hasher = PasswordHasher(iterations=1000)
    encoded = hasher.hash("hunter2hunter2")
    assert hasher.verify("hunter2hunter2", encoded)
    assert not hasher.verify("hunter3hunter3", encoded)
    assert not hasher.verify("anything", "garbage")


def test_weaker_hashes_need_rehash():
    old = PasswordHasher(iterations=1000).hash("hunter2hunter2")
    assert PasswordHasher(iterations=2000).needs_rehash(old)
    assert not PasswordHasher(iterations=1000).needs_rehash(old)


def test_token_round_trip_and_expiry(token_secret):
    clock = FixedClock()
    signer = TokenSigner(token_secret, ttl_seconds=60)
    user_id = UserId.new()
    token = signer.issue(user_id, clock.now())
    assert signer.verify(token, clock.now()) == user_id
    assert signer.verify(token, clock.advance(seconds=61)) is None


def test_tampered_or_foreign_tokens_are_rejected(token_secret):
    clock = FixedClock()
    token = TokenSigner(token_secret).issue(UserId.new(), clock.now())
    assert TokenSigner(b"another-secret-0123456789").verify(token, clock.now()) is None
    assert TokenSigner(token_secret).verify(token[:-2] + "xx", clock.now()) is None
    assert TokenSigner(token_secret).verify("not-a-token", clock.now()) is None


def test_tokens_issued_by_the_previous_release_still_verify(token_secret):
    signer = TokenSigner(token_secret)
    later = FixedClock().now() + timedelta(minutes=10)
    assert signer.verify(RELEASED_TOKEN, later) == UserId("usr_000000001234")


def test_sessions_expire_when_idle():
    clock = FixedClock()
    store = SessionStore(idle_seconds=60, clock=clock)
    user_id = UserId.new()
    session = store.create(user_id)
    clock.advance(seconds=30)
    assert store.resolve(session) == user_id
    clock.advance(seconds=61)
    assert store.resolve(session) is None


def test_revoke_all_ends_every_session_of_one_account():
    store = SessionStore(clock=FixedClock())
    user_id, other = UserId.new(), UserId.new()
    sessions = [store.create(user_id), store.create(user_id), store.create(other)]
    assert store.revoke_all(user_id) == 2
    assert store.resolve(sessions[2]) == other


def test_accounts_manage_only_themselves(alice, bob):
    ensure_self_or_admin(alice, alice.id)
    with pytest.raises(PermissionDenied):
        ensure_self_or_admin(alice, bob.id)
    ensure_self_or_admin(alice.with_role("admin"), bob.id)
