"""Store URL checks: the SSRF guard in front of every URL a merchant gives us."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from gateway.errors import BadInput


def check_store_url(url: str, *, allow_private: bool, resolve: bool = True) -> str:
    """Return the normalised URL, or raise BadInput naming the problem.

    Only http(s); no credentials in the URL; no loopback, link-local, private or reserved address
    (literal or resolved) unless `allow_private` (simulators, stores on a LAN).
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise BadInput("storeUrl must start with https:// (or http://)", field="storeUrl")
    if not parts.hostname:
        raise BadInput("storeUrl has no host name", field="storeUrl")
    if parts.username or parts.password:
        raise BadInput("storeUrl must not contain a user name or password", field="storeUrl")
    if not allow_private:
        for address in _addresses(parts.hostname, resolve):
            if not address.is_global or address.is_multicast:
                raise BadInput(
                    f"storeUrl points to a private or local address ({address}); only public stores can be connected",
                    field="storeUrl",
                )
    return url.strip().rstrip("/")


def _addresses(host: str, resolve: bool) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return [ipaddress.ip_address("127.0.0.1")]
    if not resolve:
        return []
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        raise BadInput(f"storeUrl host {host!r} does not resolve", field="storeUrl") from None
    return [ipaddress.ip_address(info[4][0]) for info in infos]
