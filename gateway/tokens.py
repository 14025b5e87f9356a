"""Expiring credentials (Shopify's 60-minute offline tokens with rotating refresh tokens): refreshed ahead
of expiry, one refresh at a time per integration across every worker and API process, the rotated pair
sealed at rest.

- An integration connected through an expiring flow carries its tokens' lifetimes, unsealed, in
  `Integration.tokens` (gateway.integration_store.TokenLifetimes).
- `IntegrationService.connection` attaches a `FreshCredentials` to every Connection it builds for such
  an integration: before each request through the connection's HTTP clients it checks the expiry in
  memory and, when due, asks `TokenKeeper.refresh` for the current pair and swaps it into the clients'
  headers, so a run that outlives a token never sends an expired one.
- `TokenKeeper.refresh` takes a Redis lock per integration (SET NX PX, released by compare-and-delete),
  then re-reads the sealed credentials: a process that waited for another one's refresh finds the new
  pair and uses it without calling the platform. The new pair is written only over the pair it replaced
  (a conditional update), so a refresh that outlived its lock and raced another loses cleanly and takes
  the winner's pair; the platform keeps the previous refresh token valid until its replacement is used,
  so the loser's extra refresh harms nothing.
- A platform that refuses the refresh (`invalid_grant`: CredentialsRejected) marks the integration's
  credentials rejected (health RED, RECONNECT, activity once): only reconnecting helps.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import BasicAuth
from redis.asyncio import Redis

from gateway.constants import token_refresh_lock_key
from gateway.crypto import SecretBox
from gateway.errors import CredentialsRejected, NotFound, StoreAuthError, StoreUnreachable
from gateway.flows import Flows
from gateway.httpclient import HttpClient
from gateway.installflow import REFRESH_LEAD, TokenSet
from gateway.integration_store import Integration, IntegrationStore, TokenLifetimes
from gateway.lifecycle import LifecycleService

log = logging.getLogger(__name__)

#: How long one refresh may hold the lock; a process that dies holding it delays others at most this.
LOCK_SECONDS = 30.0
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def token_meta(tokens: TokenSet, now: datetime) -> TokenLifetimes | None:
    """What an integration keeps, unsealed, about expiring tokens; None for tokens that do not expire."""
    if tokens.expires_at is None:
        return None
    return TokenLifetimes(
        expires_at=tokens.expires_at,
        refresh_expires_at=tokens.refresh_expires_at,
        lifetime=max(1.0, (tokens.expires_at - now).total_seconds()),
        scopes=tuple(tokens.scopes),
    )


@dataclass(frozen=True)
class Expiry:
    """When expiring credentials are due a refresh."""

    lifetimes: TokenLifetimes

    @classmethod
    def of(cls, tokens: TokenLifetimes | Integration | None) -> Expiry | None:
        if isinstance(tokens, Integration):
            tokens = tokens.tokens
        return None if tokens is None else cls(tokens)

    @property
    def expires_at(self) -> datetime:
        return self.lifetimes.expires_at

    @property
    def lead(self) -> timedelta:
        """Refresh this long ahead: five minutes, or a third of a short lifetime (a simulator's seconds)."""
        if self.lifetimes.lifetime is None:
            return REFRESH_LEAD
        return min(REFRESH_LEAD, timedelta(seconds=self.lifetimes.lifetime / 3))

    def due(self, now: datetime) -> bool:
        return now >= self.expires_at - self.lead

    def token_set(self, credentials: Mapping[str, str]) -> TokenSet:
        return TokenSet(
            credentials=dict(credentials),
            expires_at=self.expires_at,
            refresh_expires_at=self.lifetimes.refresh_expires_at,
            scopes=self.lifetimes.scopes,
        )


class TokenKeeper:
    def __init__(
        self,
        *,
        store: IntegrationStore,
        redis: Redis,
        box: SecretBox,
        flows: Flows,
        lifecycle: LifecycleService,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.redis = redis
        self.box = box
        self.flows = flows
        self.lifecycle = lifecycle
        self.clock = clock

    def credentials(self, integration: Integration) -> dict[str, str]:
        if not integration.credentials:
            return {}
        return self.box.open(integration.credentials, integration.seal_context)

    def fresh(self, integration: Integration) -> FreshCredentials | None:
        """What keeps a Connection's credentials fresh; None for credentials that do not expire."""
        expiry = Expiry.of(integration)
        return None if expiry is None else FreshCredentials(self, integration.id, expiry)

    async def refresh(self, integration_id: str) -> tuple[Integration, dict[str, str]]:
        """The integration and its credentials, refreshed first if they are due (once across processes)."""
        key = token_refresh_lock_key(integration_id)
        mine = uuid.uuid4().hex
        deadline = time.monotonic() + LOCK_SECONDS + 5
        delay = 0.02
        while True:
            acquired = bool(await self.redis.set(key, mine, nx=True, px=int(LOCK_SECONDS * 1000)))
            try:
                current = await self.store.get_any(integration_id)
                if current is None:
                    raise NotFound("the integration was disconnected", field="integrationId")
                if current.paused:
                    raise CredentialsRejected(
                        current.credentials_rejected_reason
                        or "the store no longer accepts this connection's credentials: reconnect the store"
                    )
                expiry = Expiry.of(current)
                if expiry is None or not expiry.due(self.clock()):
                    return current, self.credentials(current)  # fresh (another process may just have refreshed)
                if acquired:
                    return await self._refresh(current, expiry)
            finally:
                if acquired:
                    await self.redis.eval(_RELEASE, 1, key, mine)  # type: ignore[misc]
            if time.monotonic() > deadline:
                raise StoreUnreachable("the store's access token is being renewed by another process: try again")
            # Another process is refreshing: wait for it, then read what it stored.
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)

    async def _refresh(self, current: Integration, expiry: Expiry) -> tuple[Integration, dict[str, str]]:
        platform = current.platform
        flow = self.flows.install_flow(platform)
        if flow is None:
            raise StoreAuthError(
                f"this store was connected through the {platform} app, and the app's credentials "
                f"(GATEWAY_{platform.upper()}_CLIENT_ID and _CLIENT_SECRET) are not configured here, so its "
                "access token cannot be renewed"
            )
        credentials = self.credentials(current)
        http = self.flows.http(current.store_url)
        try:
            renewed = await flow.refresh(expiry.token_set(credentials), current.store_url, http)
        except CredentialsRejected as exc:
            await self.lifecycle.credentials_rejected(current, exc.message)
            raise
        finally:
            await http.close()
        merged = {**credentials, **dict(renewed.credentials)}
        sealed = self.box.seal(merged, current.seal_context)
        names = tuple(sorted(set(current.credential_names) | set(renewed.credentials)))
        # Only over the pair this refresh replaced: a refresh that outlived its lock never overwrites a newer one.
        updated = await self.store.replace_credentials(
            current.id, current.credentials, sealed, credential_names=names, tokens=token_meta(renewed, self.clock())
        )
        if updated is None:
            latest = await self.store.get_any(current.id)
            if latest is None:
                raise NotFound("the integration was disconnected", field="integrationId")
            log.info("a concurrent token refresh won; using its credentials", extra={"integration_id": current.id})
            return latest, self.credentials(latest)
        log.info("store access token refreshed", extra={"integration_id": current.id, "platform": platform})
        return updated, merged


class FreshCredentials:
    """Keeps one Connection's expiring credentials fresh (see the module docstring).

    `bind` gives it the Connection's credentials dict (updated in place after a refresh) and `watch` each
    HttpClient built for the connection: after a refresh, every header value (and BasicAuth part) holding
    an old credential value holds the new one. Plugins put tokens into headers verbatim, so this works for
    any of them without a plugin hook.
    """

    def __init__(self, keeper: TokenKeeper, integration_id: str, expiry: Expiry) -> None:
        self.keeper = keeper
        self.integration_id = integration_id
        self.expiry: Expiry | None = expiry
        self.credentials: dict[str, str] = {}
        self.clients: list[HttpClient] = []
        self._lock = asyncio.Lock()
        self.refreshes = 0

    def bind(self, credentials: dict[str, str]) -> None:
        self.credentials = credentials

    def watch(self, client: HttpClient) -> None:
        client.prepare = self.before_request
        self.clients.append(client)

    def due(self) -> bool:
        return self.expiry is not None and self.expiry.due(self.keeper.clock())

    async def before_request(self) -> None:
        if not self.due():
            return
        async with self._lock:
            if not self.due():
                return  # another request of this connection refreshed while this one waited
            integration, credentials = await self.keeper.refresh(self.integration_id)
            self.swap(credentials)
            self.expiry = Expiry.of(integration)
            self.refreshes += 1

    def swap(self, fresh: Mapping[str, str]) -> None:
        old = dict(self.credentials)
        replacements = {value: fresh[key] for key, value in old.items() if value and fresh.get(key, value) != value}
        self.credentials.clear()
        self.credentials.update(fresh)
        if not replacements:
            return
        for client in self.clients:
            client.headers = {name: _replaced(value, replacements) for name, value in client.headers.items()}
            if client.auth is not None:
                client.auth = BasicAuth(
                    _replaced(client.auth.login, replacements),
                    _replaced(client.auth.password, replacements),
                    client.auth.encoding,
                )


def _replaced(value: str, replacements: Mapping[str, str]) -> str:
    for old, new in replacements.items():
        if old in value:
            value = value.replace(old, new)
    return value
