"""The pages a browser gets from the gateway: the Integrations page at `/`, the GraphQL explorer at
`GET /graphql`, and their assets under `/static/`. Everything they load comes from the gateway itself
(no CDN, so they work offline), and each page is sent with a strict Content-Security-Policy: scripts
and styles only from this origin, no inline script, connections only back to this gateway.

The explorer is GraphiQL 3.8.3 with React 18.3.1, vendored unchanged from the npm registry under
static/graphiql/ (MIT licences beside them).
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from gateway.api.permissions import public

STATIC = Path(__file__).parent / "static"


_HOST = re.compile(r"[A-Za-z0-9.:\[\]-]+")


def content_security_policy(request: web.Request) -> str:
    # The websocket source names the Host the browser asked for; anything odd in it is left out.
    host = request.host if _HOST.fullmatch(request.host or "") else None
    websocket = f" ws://{host} wss://{host}" if host else ""
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            # 'self' covers this origin over HTTP; the websocket to the same host is named explicitly.
            f"connect-src 'self'{websocket}",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def _page(request: web.Request, name: str) -> web.FileResponse:
    response = web.FileResponse(STATIC / name)
    response.headers["Content-Security-Policy"] = content_security_policy(request)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"
    return response


@public("the Integrations page: static HTML; its data comes through GraphQL with a token")
async def console(request: web.Request) -> web.FileResponse:
    """Settings > Integrations."""
    return _page(request, "index.html")


def wants_explorer(request: web.Request) -> bool:
    """A browser navigating to /graphql (not an API call, not a websocket)."""
    if request.method != "GET" or request.headers.get("Upgrade", "").lower() == "websocket":
        return False
    accept = request.headers.get("Accept", "")
    return "text/html" in accept and "application/json" not in accept.split(",")[0]


@public("GraphiQL: static HTML; queries go through GraphQL with a token")
async def explorer(request: web.Request) -> web.FileResponse:
    return _page(request, "graphiql.html")


@public("the page's static files")
async def asset(request: web.Request) -> web.FileResponse:
    """A file under static/. Revalidated on every load (cheap: ETag / Last-Modified), so an upgrade shows at once."""
    root = STATIC.resolve()
    path = (root / request.match_info["path"]).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise web.HTTPNotFound()
    response = web.FileResponse(path)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", console)
    app.router.add_get("/static/{path:.+}", asset)
