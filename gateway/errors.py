"""Every error the gateway raises on purpose, in one tree.

GatewayError                      code            meaning
├── BadInput                      BAD_USER_INPUT  the caller sent something invalid (names the field)
│   └── ConnectRefused            BAD_USER_INPUT  an install-flow step failed; `failure` names which (FlowFailure)
├── NotFound                      NOT_FOUND       absent, or another account's (never says which)
├── Unauthenticated               UNAUTHENTICATED missing, expired or forged token
├── Conflict                      CONFLICT        the state does not allow it (e.g. run already ended)
│   └── AlreadyConnected          CONFLICT        the store is connected in the account already;
│                                                 extensions.integrationId names it (reconnect it)
├── RateLimited                   RATE_LIMITED    the caller spent its query-cost budget; retry later
├── Unavailable                   UNAVAILABLE     a dependency (MongoDB, Redis) is down
├── MappingError                  (per product)   one product could not be mapped: a SyncError in the
│                                                 run summary, never a failed run; `code` is the
│                                                 SyncError's (MAPPING_FAILED, BAD_PRICE, ...)
├── RunInterrupted                CONFLICT        a worker stops working on a run (never shown to a caller)
│   ├── RunCancelled              CONFLICT        the merchant cancelled it (stops at a page boundary)
│   └── LeaseLost                 CONFLICT        another worker took the run over, or it was deleted
└── StoreError                    UNAVAILABLE     talking to a store failed
    ├── StoreAuthError            BAD_USER_INPUT  the store refused the credentials
    │   └── CredentialsRejected   BAD_USER_INPUT  the platform will not renew them (invalid_grant): reconnect
    ├── StoreRateLimited          RATE_LIMITED    retries exhausted while throttled
    ├── StoreHTTPError            UNAVAILABLE     an unexpected HTTP status (after retries)
    ├── StoreUnreachable          UNAVAILABLE     connection refused, DNS, timeouts (after retries)
    ├── StorePayloadError         UNAVAILABLE     the store answered with something unparseable
    ├── StoreRequestRefused       UNAVAILABLE     the outbound guard refused the request (private
    │                                             address, a host or redirect the plugin did not allow)
    └── (plugins' own, e.g. alana_shopify.bulk.BulkUnavailable: no bulk result, read paginated)
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

    #: An ErrorCode for every error a caller can see; MappingError carries its SyncError code here.
    code: str = ErrorCode.INTERNAL

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def extensions(self) -> dict[str, str]:
        """GraphQL error extensions (graphql-core copies them from the original error)."""
        found = {"code": str(self.code)}
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


class Conflict(GatewayError):
    code = ErrorCode.CONFLICT


class AlreadyConnected(Conflict):
    """The store is connected in this account already (same platform, same store): one store is one
    integration, so the caller is pointed at that one (reconnectIntegration renews its access)."""

    def __init__(self, message: str, *, integration_id: str, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.integration_id = integration_id

    @property
    def extensions(self) -> dict[str, str]:
        return {**super().extensions, "integrationId": self.integration_id}


class RateLimited(GatewayError):
    code = ErrorCode.RATE_LIMITED


class Unavailable(GatewayError):
    code = ErrorCode.UNAVAILABLE


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


class MappingError(GatewayError):
    """One product could not be mapped; the run records it (`code`, `external_id`) and goes on."""

    def __init__(self, message: str, *, external_id: str | None = None, code: str = "MAPPING_FAILED") -> None:
        super().__init__(message)
        self.external_id = external_id
        self.code = code


class RunInterrupted(GatewayError):
    """The worker must stop working on this run now; what it saved so far stays."""

    code = ErrorCode.CONFLICT

    def __init__(self, message: str = "the run was interrupted") -> None:
        super().__init__(message)


class RunCancelled(RunInterrupted):
    """Cancel was requested: the run ends CANCELLED at the page boundary where this is raised."""


class LeaseLost(RunInterrupted):
    """The run's lease was taken by another worker (or the run is gone): stop without finishing it."""
