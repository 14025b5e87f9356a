"""Store URL checks: the SSRF guard in front of every URL a merchant gives us.

`check_store_url` runs once, when a store is connected. It is not enough on its own (a name can resolve
to another address later), so `address_refusal` is also applied by the shared HTTP client to every
address it is about to connect to (gateway/httpclient.py).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from gateway.errors import BadInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: IPv6 ranges whose low 32 bits are an IPv4 address a gateway or the host itself may translate to:
#: IPv4-compatible (::/96, deprecated), IPv4-mapped (::ffff:0:0/96), IPv4-translated (::ffff:0:0:0/96,
#: RFC 2765) and the NAT64 well-known prefix (64:ff9b::/96, RFC 6052).
_EMBEDS_LOW_32 = tuple(ipaddress.IPv6Network(n) for n in ("::/96", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96"))
#: Refused outright: local-use NAT64 (RFC 8215, the IPv4 address may sit anywhere in it) and Teredo
#: (2001::/32: the client's IPv4 address is obfuscated inside, and the server's is plain).
_REFUSED_V6 = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b:1::/48", "2001::/32"))
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
#: ISATAP interface identifiers (RFC 5214): ...:0:5efe:a.b.c.d or ...:200:5efe:a.b.c.d, any prefix.
_ISATAP_IDS = (0x00005EFE, 0x02005EFE)


def address_refusal(address: IPAddress) -> str | None:
    """Why the gateway must not connect to `address` (a short phrase), or None for a public address.

    Private, loopback, link-local, reserved, shared and multicast addresses are refused, and so is any
    IPv6 address that carries such an IPv4 address inside it (mapped, compatible, NAT64, 6to4, ISATAP),
    since the host or a translator on the way may deliver it to that IPv4 address.
    """
    if address.is_multicast:
        return f"a multicast address ({address})"
    if not address.is_global:
        return f"a private or local address ({address})"
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return f"a scoped link-local address ({address})"
        for network in _REFUSED_V6:
            if address in network:
                return f"an address in {network} ({address})"
        embedded: ipaddress.IPv4Address | None = None
        if any(address in network for network in _EMBEDS_LOW_32):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        elif address in _SIX_TO_FOUR:
            embedded = address.sixtofour
        elif (int(address) >> 32) & 0xFFFFFFFF in _ISATAP_IDS:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = address_refusal(embedded)
            if inner is not None:
                return f"an IPv6 address ({address}) carrying {inner}"
    return None


def check_host_name(host: str) -> str | None:
    """What is wrong with a DNS host name (labels of 1 to 63 characters, 253 in all), or None."""
    name = host.rstrip(".")
    if not name:
        return "is empty"
    try:
        encoded = name.encode("idna")
    except UnicodeError:
        if any(len(label) > 63 for label in name.split(".")):
            return "has a label longer than 63 characters"
        return "is not a valid host name"
    labels = encoded.split(b".")
    if any(len(label) > 63 for label in labels):
        return "has a label longer than 63 characters"
    if any(not label for label in labels):
        return "has an empty label"
    if len(encoded) > 253:
        return "is longer than 253 characters"
    return None


def check_store_url(url: str, *, allow_private: bool, resolve: bool = True) -> str:
    """Return the normalised URL, or raise BadInput naming the problem.

    Only http(s); no credentials in the URL; no loopback, link-local, private or reserved address
    (literal or resolved, including IPv4 addresses embedded in IPv6 ones) unless `allow_private`
    (simulators, stores on a LAN).
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise BadInput("storeUrl must start with https:// (or http://)", field="storeUrl")
    if not parts.hostname:
        raise BadInput("storeUrl has no host name", field="storeUrl")
    if parts.username or parts.password:
        raise BadInput("storeUrl must not contain a user name or password", field="storeUrl")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise BadInput("storeUrl has an invalid port", field="storeUrl") from None
    literal = _literal(parts.hostname)
    if literal is None:
        problem = check_host_name(parts.hostname)
        if problem is not None:
            raise BadInput(f"storeUrl host name {problem}", field="storeUrl")
    if not allow_private:
        for address in [literal] if literal is not None else _resolved(parts.hostname, resolve):
            reason = address_refusal(address)
            if reason is not None:
                raise BadInput(
                    f"storeUrl points to {reason}; only public stores can be connected",
                    field="storeUrl",
                )
    return url.strip().rstrip("/")


def store_identity(url: str) -> str:
    """One spelling of a store URL, to tell that two URLs name the same store: scheme and host lowercased,
    default ports, query, fragment and trailing slashes dropped (the path is kept: a WooCommerce site may
    live under one)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port is None or port == default else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _resolved(host: str, resolve: bool) -> list[IPAddress]:
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return [ipaddress.ip_address("127.0.0.1")]
    if not resolve:
        return []
    try:
        infos = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        raise BadInput(f"storeUrl host {host!r} does not resolve", field="storeUrl") from None
    return [ipaddress.ip_address(str(info[4][0])) for info in infos]
