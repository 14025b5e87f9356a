"""Secrets at rest: store credentials and webhook secrets are sealed with AES-256-GCM.

The key is derived from GATEWAY_SECRET_KEY with HKDF, so any sufficiently long passphrase works; the
associated data binds a sealed blob to its account and integration, so a blob copied onto another
integration's document fails to open instead of leaking.
"""

from __future__ import annotations

import base64
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.errors import GatewayError

_VERSION = b"v1"


class SecretBox:
    """Seal and open small JSON secrets with a key derived from GATEWAY_SECRET_KEY."""

    def __init__(self, secret_key: str) -> None:
        if not secret_key or len(secret_key) < 16:
            raise GatewayError("GATEWAY_SECRET_KEY must be set to at least 16 characters")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"alana-gateway", info=b"credentials-v1").derive(
            secret_key.encode()
        )
        self._aead = AESGCM(key)

    def seal(self, value: dict[str, str], context: str) -> str:
        nonce = os.urandom(12)
        data = json.dumps(value, separators=(",", ":")).encode()
        sealed = self._aead.encrypt(nonce, data, context.encode())
        return (_VERSION + b"." + base64.urlsafe_b64encode(nonce + sealed)).decode()

    def open(self, token: str, context: str) -> dict[str, str]:
        try:
            version, _, payload = token.encode().partition(b".")
            if version != _VERSION:
                raise ValueError("unknown version")
            raw = base64.urlsafe_b64decode(payload)
            data = self._aead.decrypt(raw[:12], raw[12:], context.encode())
        except (ValueError, InvalidTag) as exc:
            raise GatewayError("stored credentials cannot be decrypted with this GATEWAY_SECRET_KEY") from exc
        result: dict[str, str] = json.loads(data)
        return result
