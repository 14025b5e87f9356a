"""API tokens: HS256 JWTs whose `account_id` claim names the tenant."""

from __future__ import annotations

import time

import jwt

from gateway.errors import Unauthenticated


def issue_token(secret: str, account_id: str, ttl_seconds: int = 86_400) -> str:
    now = int(time.time())
    return jwt.encode({"account_id": account_id, "iat": now, "exp": now + ttl_seconds}, secret, "HS256")


def account_from_authorization(secret: str, header: str | None) -> str:
    """The account id of a `Bearer <JWT>` header; Unauthenticated for anything else."""
    if not header:
        raise Unauthenticated("missing Authorization header: send 'Authorization: Bearer <token>'")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    try:
        claims = jwt.decode(token.strip(), secret, algorithms=["HS256"], options={"require": ["exp"]})
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the token has expired; ask for a new one") from None
    except jwt.PyJWTError:
        raise Unauthenticated("the token is not valid for this gateway") from None
    account = claims.get("account_id")
    if not isinstance(account, str) or not account:
        raise Unauthenticated("the token has no account_id claim")
    return account
