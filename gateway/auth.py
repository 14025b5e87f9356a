"""API tokens: HS256 JWTs whose `account_id` claim names the tenant.

A token must carry a numeric `exp` no further away than the configured maximum lifetime
(GATEWAY_MAX_TOKEN_TTL): PyJWT alone accepts `"exp": "9999999999"` (it converts strings) and any
far-future date, and a token that never really expires cannot be taken back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from gateway.errors import Unauthenticated

DEFAULT_MAX_TTL = 7 * 86_400
#: Clock skew tolerated between the issuer and this process when checking the lifetime.
LEEWAY_SECONDS = 60


@dataclass(frozen=True)
class TokenClaims:
    account_id: str
    #: Epoch seconds.
    expires_at: float


def issue_token(secret: str, account_id: str, ttl_seconds: int = 86_400, max_ttl: int = DEFAULT_MAX_TTL) -> str:
    if not 0 < ttl_seconds <= max_ttl:
        raise ValueError(f"the token lifetime must be between 1 and {max_ttl} seconds (GATEWAY_MAX_TOKEN_TTL)")
    now = int(time.time())
    return jwt.encode({"account_id": account_id, "iat": now, "exp": now + ttl_seconds}, secret, "HS256")


def claims_from_authorization(secret: str, header: str | None, max_ttl: int = DEFAULT_MAX_TTL) -> TokenClaims:
    """The claims of a `Bearer <JWT>` header; Unauthenticated for anything else."""
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
    expires_at = claims["exp"]
    if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
        raise Unauthenticated("the token's exp claim must be a number")
    if expires_at > time.time() + max_ttl + LEEWAY_SECONDS:
        raise Unauthenticated(f"the token lives longer than this gateway allows ({max_ttl} seconds); ask for a new one")
    account = claims.get("account_id")
    if not isinstance(account, str) or not account:
        raise Unauthenticated("the token has no account_id claim")
    # PyJWT compares the whole seconds of exp; so does every later check of this token.
    return TokenClaims(account_id=account, expires_at=float(int(expires_at)))


def account_from_authorization(secret: str, header: str | None, max_ttl: int = DEFAULT_MAX_TTL) -> str:
    """The account id of a `Bearer <JWT>` header; Unauthenticated for anything else."""
    return claims_from_authorization(secret, header, max_ttl).account_id
