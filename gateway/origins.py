"""Which browser origins the gateway trusts: GATEWAY_ALLOWED_ORIGINS plus its own (GATEWAY_PUBLIC_URL).

One rule for two uses: the API layer lets those origins call `/graphql` (gateway/api/cors.py), and the
connect service sends a merchant's browser back only to a `returnUrl` on one of them (gateway/connect.py),
so the gateway never redirects to a URL it was not configured to trust.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from gateway.settings import Settings

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize_origin(value: str) -> str | None:
    """`value` as browsers send it in `Origin` (lowercase, default port dropped); None if not an origin."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is not None and port != _DEFAULT_PORTS[parts.scheme.lower()]:
        host = f"{host}:{port}"
    return f"{parts.scheme.lower()}://{host}"


def _host_port(scheme: str, host: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(f"//{host.strip()}")
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.hostname.lower(), port


class OriginPolicy:
    """The allowed origins, and the decision for one request."""

    def __init__(self, origins: Iterable[str]) -> None:
        normalized: set[str] = set()
        for origin in origins:
            value = normalize_origin(origin)
            if value is None:
                raise ValueError(
                    f"GATEWAY_ALLOWED_ORIGINS: {origin!r} is not an origin; write scheme://host[:port] "
                    "(e.g. https://app.alana.example), without a path"
                )
            normalized.add(value)
        self.origins = frozenset(normalized)

    @classmethod
    def from_settings(cls, settings: Settings) -> OriginPolicy:
        """The gateway's own origin (GATEWAY_PUBLIC_URL) and GATEWAY_ALLOWED_ORIGINS."""
        listed = [o.strip() for o in (settings.allowed_origins or "").split(",") if o.strip()]
        own = normalize_origin(_origin_of(settings.public_url))
        return cls([*([own] if own else []), *listed])

    def allows(self, origin: str | None, host: str | None = None) -> bool:
        """Whether a request with this `Origin`, sent to this `Host`, may use the API."""
        if origin is None:
            return True
        normalized = normalize_origin(origin)
        if normalized is None:  # "null" (sandboxed frames, file:) and anything malformed
            return False
        if normalized in self.origins:
            return True
        # The page was served by the host it talks to (whatever name or address reached the gateway).
        if host:
            scheme = normalized.split("://", 1)[0]
            return _host_port(scheme, normalized.split("://", 1)[1]) == _host_port(scheme, host)
        return False

    def trusts_url(self, url: str) -> bool:
        """Whether the gateway may send a browser to `url`: an http(s) URL on one of the listed origins."""
        origin = origin_of_url(url)
        return origin is not None and origin in self.origins


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def origin_of_url(url: str) -> str | None:
    """The normalized origin of an absolute http(s) URL; None for anything else."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or parts.username or parts.password:
        return None
    return normalize_origin(f"{parts.scheme}://{parts.netloc}")
