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
from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument

from gateway.domain import ConnectStatus
from gateway.installflow import AuthorizeRedirect, Installation
from gateway.storage.mongo import Doc

if TYPE_CHECKING:
    from gateway.services import Gateway

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


class AttemptStore:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.collection = gw.db.connect_attempts

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
        settings: Mapping[str, Any] | None = None,
        status: ConnectStatus = ConnectStatus.PENDING,
    ) -> Doc:
        now = self.gw.now()
        attempt_id = uuid.uuid4().hex
        doc: Doc = {
            "_id": attempt_id,
            "kind": kind.value,
            "platform": platform,
            "account_id": account_id,
            "integration_id": integration_id,
            "name": name,
            "settings": dict(settings) if settings else None,
            "state_hash": digest(state) if state else None,
            "authorize_url": self.gw.box.seal({"url": redirect.url}, _context(attempt_id)) if redirect else None,
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
        return doc

    def authorize_url(self, attempt: Doc) -> str | None:
        sealed = attempt.get("authorize_url")
        if not sealed:
            return None
        return self.gw.box.open(sealed, _context(attempt["_id"])).get("url")

    async def get(self, attempt_id: str) -> Doc | None:
        return await self.collection.find_one({"_id": attempt_id})

    async def by_state(self, platform: str, state: str) -> Doc | None:
        return await self.collection.find_one({"state_hash": digest(state), "platform": platform})

    @staticmethod
    def bound_to(attempt: Doc, secret: str | None) -> bool:
        """Whether the browser holding `secret` is the one bound to the attempt."""
        expected = attempt.get("binding_hash")
        return bool(expected and secret) and hmac.compare_digest(str(expected), digest(str(secret)))

    async def bind(self, attempt: Doc, secret: str) -> Doc | None:
        """Bind a live attempt to the browser holding `secret`; None when another browser holds it already."""
        return await self.collection.find_one_and_update(
            {
                "_id": attempt["_id"],
                "status": ConnectStatus.PENDING.value,
                "expires_at": {"$gt": self.gw.now()},
                "binding_hash": {"$in": [None, digest(secret)]},
            },
            {"$set": {"binding_hash": digest(secret)}},
            return_document=ReturnDocument.AFTER,
        )

    async def claim(self, attempt_id: str) -> Doc | None:
        """Take a live attempt for completion (the code exchange happens once); None when it is not live."""
        now = self.gw.now()
        return await self.collection.find_one_and_update(
            {
                "_id": attempt_id,
                "status": ConnectStatus.PENDING.value,
                "completing": None,
                "expires_at": {"$gt": now},
            },
            {"$set": {"completing": uuid.uuid4().hex, "completing_at": now}},
            return_document=ReturnDocument.AFTER,
        )

    async def finish(
        self,
        attempt_id: str,
        status: ConnectStatus,
        *,
        error: str | None = None,
        integration_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
        only_idle: bool = False,
    ) -> Doc | None:
        """End a PENDING attempt for good; None when it had ended already (or, with `only_idle`, is being completed)."""
        query: Doc = {"_id": attempt_id, "status": ConnectStatus.PENDING.value}
        if only_idle:
            query["completing"] = None
        update: Doc = {"status": status.value, "error": error, "finished_at": self.gw.now(), **(extra or {})}
        if integration_id is not None:
            update["integration_id"] = integration_id
        return await self.collection.find_one_and_update(query, {"$set": update}, return_document=ReturnDocument.AFTER)

    async def overdue(self, limit: int = 100) -> list[Doc]:
        """PENDING attempts past their expiry that nobody is completing."""
        query = {"status": ConnectStatus.PENDING.value, "expires_at": {"$lte": self.gw.now()}, "completing": None}
        return [doc async for doc in self.collection.find(query).limit(limit)]


def attempt_view(attempt: Doc) -> Doc:
    """What leaves the store (GraphQL, events): no digests, no sealed URL, no return URL."""
    keys = ("_id", "kind", "platform", "account_id", "integration_id", "status", "error", "expires_at", "created_at")
    return {key: attempt.get(key) for key in keys}


class PendingInstalls:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.collection = gw.db.pending_installs

    async def create(self, platform: str, installation: Installation, tokens: Doc | None) -> str:
        """Keep a completed handshake for an hour; returns the one-time claim token (never stored)."""
        token = secrets.token_urlsafe(32)
        install_id = digest(token)
        now = self.gw.now()
        await self.collection.insert_one(
            {
                "_id": install_id,
                "platform": platform,
                "store_url": installation.store_url,
                "store_key": installation.store_key,
                "store_name": installation.store_name,
                "account": dict(installation.account),
                "credentials": self.gw.box.seal(dict(installation.tokens.credentials), f"pending/{install_id}"),
                "tokens": tokens,
                "created_at": now,
                "expires_at": now + PENDING_INSTALL_TTL,
                "claimed_by": None,
            }
        )
        return token

    def credentials(self, pending: Doc) -> dict[str, str]:
        return self.gw.box.open(pending["credentials"], f"pending/{pending['_id']}")

    async def claim(self, token: str, account_id: str) -> Doc | None:
        """Take an unexpired, unclaimed install for `account_id`; None for an unknown, used or expired token."""
        return await self.collection.find_one_and_update(
            {"_id": digest(token), "claimed_by": None, "expires_at": {"$gt": self.gw.now()}},
            {"$set": {"claimed_by": account_id, "claimed_at": self.gw.now()}},
            return_document=ReturnDocument.AFTER,
        )

    async def release(self, pending: Doc) -> None:
        await self.collection.update_one({"_id": pending["_id"]}, {"$set": {"claimed_by": None}})

    async def delete(self, pending: Doc) -> None:
        await self.collection.delete_one({"_id": pending["_id"]})

    async def delete_for_store(self, platform: str, store_key: str) -> int:
        result = await self.collection.delete_many({"platform": platform, "store_key": store_key})
        return result.deleted_count
