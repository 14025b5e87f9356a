"""Which browser origins may use the API: CORS for `/graphql` over HTTP, and the same rule for its websocket.

`GATEWAY_ALLOWED_ORIGINS` (docs/reference/RUNTIME.md) lists the origins (scheme://host[:port]) besides
the gateway's own. A request without an `Origin` header is not from a browser page and passes (it carries
no ambient credentials; the token decides). A browser request from any other origin is refused with 403
before it reaches GraphQL: a preflight gets no `Access-Control-Allow-*` headers, and a websocket
handshake is refused, so a page elsewhere can neither read answers nor open a subscription.

Browsers do not apply CORS to websockets, which is why the handshake's `Origin` is checked here too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.origins import OriginPolicy, normalize_origin

log = logging.getLogger(__name__)

__all__ = ["OriginPolicy", "cors_middleware", "normalize_origin"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Request headers a page may send (beyond the CORS-safelisted ones).
ALLOWED_HEADERS = ("Authorization", "Content-Type", "Accept", "X-Request-Id")
#: Response headers a page may read (beyond the CORS-safelisted ones).
EXPOSED_HEADERS = ("X-Request-Id",)
ALLOWED_METHODS = ("GET", "POST", "OPTIONS")
#: How long a browser may reuse a preflight answer, in seconds.
PREFLIGHT_MAX_AGE = 600


def _refuse(origin: str) -> web.Response:
    response = web.json_response(
        {
            "errors": [
                {
                    "message": f"origin {origin!r} is not allowed to use this API (see GATEWAY_ALLOWED_ORIGINS)",
                    "extensions": {"code": "FORBIDDEN"},
                }
            ]
        },
        status=403,
    )
    response.headers["Vary"] = "Origin"
    return response


def _add_cors_headers(response: web.StreamResponse, origin: str | None) -> None:
    vary = response.headers.get("Vary")
    if not vary:
        response.headers["Vary"] = "Origin"
    elif "origin" not in vary.lower():
        response.headers["Vary"] = f"{vary}, Origin"
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        # Tokens travel in Authorization, not cookies; this lets clients that send credentials anyway work.
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)


def cors_middleware(policy: OriginPolicy, paths: Iterable[str] = ("/graphql",)) -> Middleware:
    """Answers preflights and refuses foreign origins on `paths`; other paths pass untouched."""
    guarded = frozenset(paths)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in guarded:
            return await handler(request)
        origin = request.headers.get("Origin")
        if origin is not None and not policy.allows(origin, request.host):
            log.warning(
                "refused a request from a browser origin that is not allowed",
                extra={"origin": origin[:200], "path": request.path, "method": request.method},
            )
            return _refuse(origin)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            preflight = web.Response(status=204)
            _add_cors_headers(preflight, origin)
            preflight.headers["Access-Control-Allow-Methods"] = ", ".join(ALLOWED_METHODS)
            preflight.headers["Access-Control-Allow-Headers"] = ", ".join(ALLOWED_HEADERS)
            preflight.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
            return preflight
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _add_cors_headers(exc, origin)
            raise
        if not response.prepared:  # a websocket is already under way; its handshake passed the check above
            _add_cors_headers(response, origin)
        return response

    return middleware
