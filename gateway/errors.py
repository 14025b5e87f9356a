"""Every error the gateway raises on purpose, in one tree.

    GatewayError                      code            meaning
    ├── BadInput                      BAD_USER_INPUT  the caller sent something invalid (names the field)
    │   └── ConnectRefused            BAD_USER_INPUT  an install-flow step failed; `failure` names which (FlowFailure)
    ├── NotFound                      NOT_FOUND       absent, or another account's (never says which)
    ├── Unauthenticated               UNAUTHENTICATED missing, expired or forged token
    ├── Forbidden                     FORBIDDEN
    ├── Conflict                      CONFLICT        the state does not allow it (e.g. run already ended)
    ├── RateLimited                   RATE_LIMITED    the caller spent its query-cost budget; retry later
    ├── Unavailable                   UNAVAILABLE     a dependency (MongoDB, Redis) is down
    ├── PluginError                   INTERNAL        a plugin could not be loaded or misbehaved
    └── StoreError                    UNAVAILABLE     talking to a store failed
        ├── StoreAuthError            BAD_USER_INPUT  the store refused the credentials
        │   └── CredentialsRejected   BAD_USER_INPUT  the platform will not renew them (invalid_grant): reconnect
        ├── StoreRateLimited          RATE_LIMITED    retries exhausted while throttled
        ├── StoreHTTPError            UNAVAILABLE     an unexpected HTTP status (after retries)
        ├── StoreUnreachable          UNAVAILABLE     connection refused, DNS, timeouts (after retries)
        ├── StorePayloadError         UNAVAILABLE     the store answered with something unparseable
        └── StoreRequestRefused       UNAVAILABLE     the outbound guard refused the request (private
                                                      address, a host or redirect the plugin did not allow)

`MappingError` is separate: it is a per-product failure that becomes a SyncError in the run summary,
never a failed run.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    CONFLICT = "CONFLICT"
    RATE_LIMITED = "RATE_LIMITED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


class GatewayError(Exception):
    """Base of every deliberate gateway error; `code` becomes GraphQL `extensions.code`."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def extensions(self) -> dict[str, str]:
        """GraphQL error extensions (graphql-core copies them from the original error)."""
        found = {"code": self.code.value}
        if self.field:
            found["field"] = self.field
        return found


class BadInput(GatewayError):
    code = ErrorCode.BAD_USER_INPUT


class ConnectRefused(BadInput):
    """An install-flow step failed: a forged or stale callback, a code the platform refused, a denial.

    `failure` is a gateway.installflow.FlowFailure value (a machine-readable reason); the message says
    what happened in a merchant's words and never carries a secret. Nothing was stored.
    """

    def __init__(self, message: str, *, failure: str, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.failure = failure


class NotFound(GatewayError):
    code = ErrorCode.NOT_FOUND


class Unauthenticated(GatewayError):
    code = ErrorCode.UNAUTHENTICATED


class Forbidden(GatewayError):
    code = ErrorCode.FORBIDDEN


class Conflict(GatewayError):
    code = ErrorCode.CONFLICT


class RateLimited(GatewayError):
    code = ErrorCode.RATE_LIMITED


class Unavailable(GatewayError):
    code = ErrorCode.UNAVAILABLE


class PluginError(GatewayError):
    code = ErrorCode.INTERNAL


class StoreError(GatewayError):
    """Talking to the store failed. `status` is the HTTP status when there was one."""

    code = ErrorCode.UNAVAILABLE

    def __init__(self, message: str, *, status: int | None = None, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.status = status


class StoreAuthError(StoreError):
    code = ErrorCode.BAD_USER_INPUT


class CredentialsRejected(StoreAuthError):
    """The platform refused to renew the integration's credentials (a refresh answered `invalid_grant`):
    retrying cannot help, only reconnecting the store does."""


class StoreRateLimited(StoreError):
    code = ErrorCode.RATE_LIMITED


class StoreHTTPError(StoreError):
    pass


class StoreUnreachable(StoreError):
    pass


class StorePayloadError(StoreError):
    pass


class StoreRequestRefused(StoreError):
    """Never retried: asking again would reach the same refused address or host."""


class MappingError(Exception):
    """One product could not be mapped; the run records it and goes on."""

    def __init__(self, message: str, *, external_id: str | None = None, code: str = "MAPPING_FAILED"):
        super().__init__(message)
        self.message = message
        self.external_id = external_id
        self.code = code
