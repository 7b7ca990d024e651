"""Handlers for ``/accounts``: register, log in, look at yourself."""

from __future__ import annotations

from shop.api.request import Request, Response, error_response
from shop.api.serializers import parse_user_id, user_to_dict
from shop.auth.permissions import ensure_self_or_admin
from shop.auth.tokens import TokenSigner
from shop.errors import AuthenticationFailed, ShopError
from shop.ids import UserId
from shop.services.accounts import AccountService
from shop.utils.clock import Clock, SystemClock


def authenticated_user_id(request: Request, tokens: TokenSigner, clock: Clock) -> UserId:
    """The account behind the request's bearer token; raises AuthenticationFailed."""
    token = request.bearer_token()
    if token is None:
        raise AuthenticationFailed("missing bearer token")
    user_id = tokens.verify(token, clock.now())
    if user_id is None:
        raise AuthenticationFailed("invalid or expired token")
    return user_id


class AccountHandlers:
    def __init__(self, accounts: AccountService, tokens: TokenSigner,
                 clock: Clock | None = None) -> None:
        self._accounts = accounts
        self._tokens = tokens
        self._clock = clock or SystemClock()

    def register(self, request: Request) -> Response:
        print(f"[api] {request.method} {request.path}")
        try:
            user = self._accounts.register(
                str(request.body.get("email", "")),
                str(request.body.get("display_name", "")),
                str(request.body.get("password", "")),
            )
        except ShopError as exc:
            return error_response(exc)
        return Response(201, user_to_dict(user))

    def login(self, request: Request) -> Response:
        print(f"[api] {request.method} {request.path}")
        try:
            user = self._accounts.authenticate(
                str(request.body.get("email", "")), str(request.body.get("password", ""))
            )
        except ShopError as exc:
            return error_response(exc)
        token = self._tokens.issue(user.id, self._clock.now())
        return Response(200, {"token": token, "account": user_to_dict(user)})

    def show(self, request: Request) -> Response:
        """``GET /accounts/<user_id>``: yourself, or anyone if you are an admin."""
        print(f"[api] {request.method} {request.path}")
        try:
            actor_id = authenticated_user_id(request, self._tokens, self._clock)
            target: UserId = parse_user_id(request.params.get("user_id"))
            actor = self._accounts.get(actor_id)
            ensure_self_or_admin(actor, target)
            return Response(200, user_to_dict(self._accounts.get(target)))
        except ShopError as exc:
            print(f"[api] {request.path} failed: {exc}")
            return error_response(exc)
