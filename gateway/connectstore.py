"""Connect attempts and pending installs in MongoDB.

An attempt is one run through a platform's install flow: PENDING until the platform calls back, then
CONNECTED, FAILED or EXPIRED for good (10 minutes). Its `state` is a random single-use nonce that only
the platform's callback carries; it is kept as a SHA-256 digest, and the authorize URL that holds it is
sealed. The browser that opened the attempt's start URL is bound to it by a cookie whose secret is also
kept as a digest. Completing an attempt is claimed with one conditional update, so the code is exchanged
once however many callbacks race.

A pending install is a handshake that began on the platform's side (an app-store install) with no Alana
account yet: its credentials are sealed and kept an hour for `claimInstall`, found by the digest of a
one-time token that only the merchant's browser was given.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pymongo import ReturnDocument

from gateway.crypto import SecretBox
from gateway.domain import ConnectStatus, SyncFrequency, SyncMode
from gateway.installflow import AuthorizeRedirect, Installation
from gateway.integration_store import SyncSettings, TokenLifetimes
from gateway.storage.mongo import Database, Doc

#: How long a merchant has to approve on the platform's page (docs/reference/CONNECT.md).
ATTEMPT_TTL = timedelta(minutes=10)
#: How long an install begun on the platform waits to be claimed.
PENDING_INSTALL_TTL = timedelta(hours=1)


class AttemptKind(StrEnum):
    #: beginConnect: a new integration for the caller's account.
    CONNECT = "CONNECT"
    #: reconnectIntegration: new credentials for an existing integration, everything else kept.
    RECONNECT = "RECONNECT"
    #: An install begun on the platform (Shopify's App URL): no account; it ends as a pending install.
    INSTALL = "INSTALL"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _context(attempt_id: str) -> str:
    return f"attempt/{attempt_id}"


@dataclass(frozen=True)
class AttemptView:
    """What leaves the store about an attempt (GraphQL, events): no digests, no sealed URL, no return URL."""

    id: str
    kind: AttemptKind
    platform: str
    status: ConnectStatus
    expires_at: datetime
    created_at: datetime
    account_id: str | None = None
    integration_id: str | None = None
    error: str | None = None
    #: Whether the attempt was started through the platform's screen (it has an authorize URL to start).
    startable: bool = False


@dataclass(frozen=True)
class Attempt:
    """One run through a platform's install flow, as stored."""

    id: str
    kind: AttemptKind
    platform: str
    status: ConnectStatus
    created_at: datetime
    expires_at: datetime
    account_id: str | None = None
    integration_id: str | None = None
    name: str | None = None
    #: The sync settings asked for at beginConnect.
    settings: SyncSettings | None = None
    state_hash: str | None = field(default=None, repr=False)
    #: The platform's authorize URL (it carries the state), sealed.
    sealed_authorize_url: str | None = field(default=None, repr=False)
    store_url: str | None = None
    store_key: str | None = None
    return_url: str | None = None
    binding_hash: str | None = field(default=None, repr=False)
    error: str | None = None
    #: Set while one callback completes the attempt (the code is exchanged once).
    completing: str | None = None
    finished_at: datetime | None = None

    @property
    def pending(self) -> bool:
        return self.status is ConnectStatus.PENDING

    def expired(self, now: datetime) -> bool:
        return self.pending and self.expires_at <= now

    def view(self) -> AttemptView:
        return AttemptView(
            id=self.id,
            kind=self.kind,
            platform=self.platform,
            status=self.status,
            expires_at=self.expires_at,
            created_at=self.created_at,
            account_id=self.account_id,
            integration_id=self.integration_id,
            error=self.error,
            startable=self.state_hash is not None,
        )

    @classmethod
    def from_doc(cls, doc: Doc) -> Attempt:
        settings = doc.get("settings")
        return cls(
            id=doc["_id"],
            kind=AttemptKind(doc["kind"]),
            platform=doc["platform"],
            status=ConnectStatus(doc["status"]),
            created_at=doc["created_at"],
            expires_at=doc["expires_at"],
            account_id=doc.get("account_id"),
            integration_id=doc.get("integration_id"),
            name=doc.get("name"),
            settings=SyncSettings(
                SyncMode(settings.get("mode", SyncMode.AUTOMATIC)),
                SyncFrequency(settings.get("frequency", SyncFrequency.EVERY_HOUR)),
            )
            if settings
            else None,
            state_hash=doc.get("state_hash"),
            sealed_authorize_url=doc.get("authorize_url"),
            store_url=doc.get("store_url"),
            store_key=doc.get("store_key"),
            return_url=doc.get("return_url"),
            binding_hash=doc.get("binding_hash"),
            error=doc.get("error"),
            completing=doc.get("completing"),
            finished_at=doc.get("finished_at"),
        )


def _attempt(doc: Doc | None) -> Attempt | None:
    return None if doc is None else Attempt.from_doc(doc)


class AttemptStore:
    def __init__(self, db: Database, box: SecretBox, clock: Callable[[], datetime]) -> None:
        self.collection = db.connect_attempts
        self.box = box
        self.clock = clock

    async def create(
        self,
        *,
        kind: AttemptKind,
        platform: str,
        account_id: str | None,
        state: str | None,
        redirect: AuthorizeRedirect | None,
        return_url: str | None = None,
        integration_id: str | None = None,
        name: str | None = None,
        settings: SyncSettings | None = None,
        status: ConnectStatus = ConnectStatus.PENDING,
    ) -> Attempt:
        now = self.clock()
        attempt_id = uuid.uuid4().hex
        doc: Doc = {
            "_id": attempt_id,
            "kind": kind.value,
            "platform": platform,
            "account_id": account_id,
            "integration_id": integration_id,
            "name": name,
            "settings": {"mode": settings.mode.value, "frequency": settings.frequency.value} if settings else None,
            "state_hash": digest(state) if state else None,
            "authorize_url": self.box.seal({"url": redirect.url}, _context(attempt_id)) if redirect else None,
            "store_url": redirect.store_url if redirect else None,
            "store_key": redirect.store_key if redirect else None,
            "return_url": return_url,
            "binding_hash": None,
            "status": status.value,
            "error": None,
            "completing": None,
            "created_at": now,
            "expires_at": now + ATTEMPT_TTL,
            "finished_at": None if status is ConnectStatus.PENDING else now,
        }
        await self.collection.insert_one(doc)
        return Attempt.from_doc(doc)

    def authorize_url(self, attempt: Attempt) -> str | None:
        if not attempt.sealed_authorize_url:
            return None
        return self.box.open(attempt.sealed_authorize_url, _context(attempt.id)).get("url")

    async def get(self, attempt_id: str) -> Attempt | None:
        return _attempt(await self.collection.find_one({"_id": attempt_id}))

    async def by_state(self, platform: str, state: str) -> Attempt | None:
        return _attempt(await self.collection.find_one({"state_hash": digest(state), "platform": platform}))

    @staticmethod
    def bound_to(attempt: Attempt, secret: str | None) -> bool:
        """Whether the browser holding `secret` is the one bound to the attempt."""
        expected = attempt.binding_hash
        return bool(expected and secret) and hmac.compare_digest(str(expected), digest(str(secret)))

    async def bind(self, attempt: Attempt, secret: str) -> Attempt | None:
        """Bind a live attempt to the browser holding `secret`; None when another browser holds it already."""
        doc = await self.collection.find_one_and_update(
            {
                "_id": attempt.id,
                "status": ConnectStatus.PENDING.value,
                "expires_at": {"$gt": self.clock()},
                "binding_hash": {"$in": [None, digest(secret)]},
            },
            {"$set": {"binding_hash": digest(secret)}},
            return_document=ReturnDocument.AFTER,
        )
        return _attempt(doc)

    async def claim(self, attempt_id: str) -> Attempt | None:
        """Take a live attempt for completion (the code exchange happens once); None when it is not live."""
        now = self.clock()
        doc = await self.collection.find_one_and_update(
            {
                "_id": attempt_id,
                "status": ConnectStatus.PENDING.value,
                "completing": None,
                "expires_at": {"$gt": now},
            },
            {"$set": {"completing": uuid.uuid4().hex, "completing_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        return _attempt(doc)

    async def finish(
        self,
        attempt_id: str,
        status: ConnectStatus,
        *,
        error: str | None = None,
        integration_id: str | None = None,
        store_key: str | None = None,
        only_idle: bool = False,
    ) -> Attempt | None:
        """End a PENDING attempt for good; None when it had ended already (or, with `only_idle`, is being completed)."""
        query: Doc = {"_id": attempt_id, "status": ConnectStatus.PENDING.value}
        if only_idle:
            query["completing"] = None
        update: Doc = {"status": status.value, "error": error, "finished_at": self.clock()}
        if integration_id is not None:
            update["integration_id"] = integration_id
        if store_key is not None:
            update["store_key"] = store_key
        doc = await self.collection.find_one_and_update(query, {"$set": update}, return_document=ReturnDocument.AFTER)
        return _attempt(doc)

    async def overdue(self, limit: int = 100) -> list[Attempt]:
        """PENDING attempts past their expiry that nobody is completing."""
        query = {"status": ConnectStatus.PENDING.value, "expires_at": {"$lte": self.clock()}, "completing": None}
        return [Attempt.from_doc(doc) async for doc in self.collection.find(query).limit(limit)]

    async def delete_integration(self, integration_id: str) -> None:
        await self.collection.delete_many({"integration_id": integration_id})

    async def delete_for_store(self, platform: str, store_key: str) -> None:
        await self.collection.delete_many({"platform": platform, "store_key": store_key})


@dataclass(frozen=True)
class PendingInstall:
    """A completed handshake begun on the platform, waiting to be claimed by an account."""

    id: str
    platform: str
    store_url: str
    store_key: str
    store_name: str | None
    account: Mapping[str, Any]
    credentials: str = field(repr=False)
    tokens: TokenLifetimes | None
    created_at: datetime
    expires_at: datetime
    claimed_by: str | None = None

    @classmethod
    def from_doc(cls, doc: Doc) -> PendingInstall:
        return cls(
            id=doc["_id"],
            platform=doc["platform"],
            store_url=doc["store_url"],
            store_key=doc["store_key"],
            store_name=doc.get("store_name"),
            account=dict(doc.get("account") or {}),
            credentials=doc["credentials"],
            tokens=TokenLifetimes.from_doc(doc.get("tokens")),
            created_at=doc["created_at"],
            expires_at=doc["expires_at"],
            claimed_by=doc.get("claimed_by"),
        )


class PendingInstalls:
    def __init__(self, db: Database, box: SecretBox, clock: Callable[[], datetime]) -> None:
        self.collection = db.pending_installs
        self.box = box
        self.clock = clock

    async def create(self, platform: str, installation: Installation, tokens: TokenLifetimes | None) -> str:
        """Keep a completed handshake for an hour; returns the one-time claim token (never stored)."""
        token = secrets.token_urlsafe(32)
        install_id = digest(token)
        now = self.clock()
        await self.collection.insert_one(
            {
                "_id": install_id,
                "platform": platform,
                "store_url": installation.store_url,
                "store_key": installation.store_key,
                "store_name": installation.store_name,
                "account": dict(installation.account),
                "credentials": self.box.seal(dict(installation.tokens.credentials), f"pending/{install_id}"),
                "tokens": tokens.to_doc() if tokens else None,
                "created_at": now,
                "expires_at": now + PENDING_INSTALL_TTL,
                "claimed_by": None,
            }
        )
        return token

    def credentials(self, pending: PendingInstall) -> dict[str, str]:
        return self.box.open(pending.credentials, f"pending/{pending.id}")

    async def claim(self, token: str, account_id: str) -> PendingInstall | None:
        """Take an unexpired, unclaimed install for `account_id`; None for an unknown, used or expired token."""
        doc = await self.collection.find_one_and_update(
            {"_id": digest(token), "claimed_by": None, "expires_at": {"$gt": self.clock()}},
            {"$set": {"claimed_by": account_id, "claimed_at": self.clock()}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else PendingInstall.from_doc(doc)

    async def release(self, pending: PendingInstall) -> None:
        await self.collection.update_one({"_id": pending.id}, {"$set": {"claimed_by": None}})

    async def delete(self, pending: PendingInstall) -> None:
        await self.collection.delete_one({"_id": pending.id})

    async def delete_for_store(self, platform: str, store_key: str) -> int:
        result = await self.collection.delete_many({"platform": platform, "store_key": store_key})
        return result.deleted_count
