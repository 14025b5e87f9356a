"""`alana-gateway`: the command line (subcommands per docs/reference/RUNTIME.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from gateway import __version__


def _run(main: Callable[[], Awaitable[Any]]) -> int:
    """Run a coroutine until it ends or SIGINT / SIGTERM arrives, then clean up."""

    async def runner() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(main())
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(runner())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.api.app import serve
    from gateway.logs import configure_logging
    from gateway.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level)
    _require_secrets(settings)
    return _run(lambda: serve(settings, args.host or settings.host, args.port or settings.port))


def cmd_worker(args: argparse.Namespace) -> int:
    from gateway.jobs import serve_worker, worker_settings
    from gateway.settings import get_settings

    settings = get_settings()
    if args.check:
        from arq.worker import check_health

        # The container healthcheck: exits non-zero when this host's worker stopped reporting.
        return int(check_health(worker_settings(settings)))
    _require_secrets(settings)
    try:
        settings.lanes  # noqa: B018 - a bad GATEWAY_WORKER_LANES is said before anything starts
    except ValueError as exc:
        print(f"alana-gateway worker: {exc}", file=sys.stderr)
        return 2
    return _run(lambda: serve_worker(settings))


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return _run(
        lambda: run_demo(
            port=args.port, products=args.products, change_every=args.change_every, reset=args.reset, host=args.host
        )
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    from gateway.plugins import load_plugins
    from gateway.simkit import serve_forever

    registry = load_plugins()
    adapter = registry.adapter(args.platform)
    simulator_cls = adapter.simulator()
    if simulator_cls is None:
        print(f"the {args.platform} plugin ships no simulator", file=sys.stderr)
        return 2
    simulator = simulator_cls(products=args.products)
    return _run(lambda: serve_forever(simulator, port=args.port, host=args.host))


def cmd_token(args: argparse.Namespace) -> int:
    import json

    from gateway.auth import issue_token
    from gateway.demo import DEMO_ACCOUNT, demo_secrets_path
    from gateway.settings import get_settings

    settings = get_settings()
    demo_file = demo_secrets_path(settings.data_dir.resolve())
    if args.demo:
        try:
            secret = json.loads(demo_file.read_text())["jwt"]
        except (OSError, ValueError, KeyError):
            print(
                f"no demo secret at {demo_file}: start `alana-gateway demo` once (GATEWAY_DATA_DIR sets the folder)",
                file=sys.stderr,
            )
            return 2
        account = args.account or DEMO_ACCOUNT
    else:
        secret = settings.jwt_secret or ""
        account = args.account
        if not secret:
            where = (
                f"The demo signs its tokens with its own secret, kept in {demo_file}: "
                "`alana-gateway token --demo` prints one for the demo."
                if demo_file.exists()
                else f"`alana-gateway demo` keeps its own secret in {demo_file} once it has run."
            )
            print(f"GATEWAY_JWT_SECRET is not set. {where}", file=sys.stderr)
            return 2
        if not account:
            print("--account is required (the account the token acts for)", file=sys.stderr)
            return 2
    try:
        print(issue_token(secret, account, args.ttl, settings.max_token_ttl))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from gateway.plugins import load_plugins
    from gateway.settings import get_settings

    registry = load_plugins(get_settings().plugin_allowlist)
    for plugin in registry.plugins:
        for platform in plugin.platforms:
            info = registry.adapters[platform].info
            print(
                f"{platform:<14} {info.name:<14} {info.version:<10} ({plugin.name} {plugin.version}) "
                f"{', '.join(info.capabilities)}"
            )
    for problem in registry.load_errors:
        print(f"error: {problem}", file=sys.stderr)
    return 0


def cmd_export_schema(args: argparse.Namespace) -> int:
    from gateway.api.schema import schema

    print(schema.as_str())
    return 0


def cmd_new_plugin(args: argparse.Namespace) -> int:
    from gateway.scaffold import scaffold_plugin

    try:
        path = scaffold_plugin(args.name, args.directory)
    except (ValueError, FileExistsError) as exc:
        print(f"alana-gateway new-plugin: {exc}", file=sys.stderr)
        return 2
    print(f"created {path}\nnext: pip install -e {path} && pytest {path}")
    return 0


def _require_secrets(settings: Any) -> None:
    missing = [
        name
        for name, value in (
            ("GATEWAY_JWT_SECRET", settings.jwt_secret),
            ("GATEWAY_SECRET_KEY", settings.secret_key),
        )
        if not value
    ]
    if missing:
        raise SystemExit(f"set {' and '.join(missing)} (see README: Configuration)")


class _HelpFormatter(argparse.HelpFormatter):
    """Shows an option's default where it has a meaningful one (not for flags or unset options)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alana-gateway",
        description="Alana Integration Gateway. Configuration comes from environment variables and a .env file "
        "(README: Configuration).",
    )
    parser.add_argument("--version", action="version", version=f"alana-gateway {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    formatter = _HelpFormatter

    serve = sub.add_parser(
        "serve",
        help="the HTTP server: GraphQL, webhooks, health, metrics",
        description="The HTTP server: GraphQL over HTTP and websocket at /graphql (GraphiQL in a browser), "
        "webhooks, /healthz, /readyz, /metrics, and the Integrations page at /. Needs GATEWAY_JWT_SECRET "
        "and GATEWAY_SECRET_KEY.",
        formatter_class=formatter,
    )
    serve.add_argument("--host", metavar="ADDRESS", help="address to listen on (default: GATEWAY_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, metavar="PORT", help="TCP port to listen on (default: GATEWAY_PORT, 8000)")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser(
        "worker",
        help="the arq worker: sync jobs, webhook jobs, the scheduler",
        description="The worker: runs sync and webhook jobs from Redis and enqueues scheduled syncs. Run as many "
        "as you like; MongoDB and Redis are the only shared state.",
        formatter_class=formatter,
    )
    worker.add_argument(
        "--check", action="store_true", help="exit 0 when this host's worker is healthy, 1 otherwise (healthcheck)"
    )
    worker.set_defaults(func=cmd_worker)

    demo = sub.add_parser(
        "demo",
        help="everything at once, with three simulated stores",
        description="Everything in one process: embedded MongoDB-protocol server and Valkey (unless MONGODB_URL / "
        "REDIS_URL are set), the API, a worker and simulated Shopify, WooCommerce and BigCommerce stores "
        "connected to the account 'demo'. Prints the URLs and a token. Data lives in GATEWAY_DATA_DIR; a "
        "restart keeps every integration, product, edit and sync run.",
        formatter_class=formatter,
    )
    demo.add_argument("--port", type=int, default=8000, metavar="PORT", help="TCP port of the API and the page")
    demo.add_argument("--host", default="127.0.0.1", metavar="ADDRESS", help="address to listen on")
    demo.add_argument("--products", type=int, default=200, metavar="N", help="products in each simulated store")
    demo.add_argument(
        "--change-every",
        type=float,
        default=8.0,
        metavar="SECONDS",
        help="seconds between simulated edits in the stores (0: the stores stay still)",
    )
    demo.add_argument(
        "--reset",
        action="store_true",
        help="start over: disconnect every integration of the demo account and connect the demo stores afresh",
    )
    demo.set_defaults(func=cmd_demo)

    simulate = sub.add_parser(
        "simulate",
        help="one simulated store on its own",
        description="Serve one platform's simulated store (its API, webhooks and /_sim/ control endpoints). Prints "
        "one JSON line with the store URL and its credentials, then a line for people.",
        formatter_class=formatter,
    )
    simulate.add_argument("platform", help="the platform id, e.g. shopify, woocommerce, bigcommerce")
    simulate.add_argument("--port", type=int, default=0, metavar="PORT", help="TCP port (0: any free port)")
    simulate.add_argument("--host", default="127.0.0.1", metavar="ADDRESS", help="address to listen on")
    simulate.add_argument("--products", type=int, default=100, metavar="N", help="products in the store's catalog")
    simulate.set_defaults(func=cmd_simulate)

    token = sub.add_parser(
        "token",
        help="print a JWT for an account",
        description="Print an API token (HS256 JWT signed with GATEWAY_JWT_SECRET) that acts for one account. "
        "Send it as 'Authorization: Bearer <token>'.",
        formatter_class=formatter,
    )
    token.add_argument("--account", metavar="ID", help="the account the token acts for (required without --demo)")
    token.add_argument(
        "--ttl",
        type=int,
        default=86_400,
        metavar="SECONDS",
        help="how long the token is valid, in seconds (at most GATEWAY_MAX_TOKEN_TTL)",
    )
    token.add_argument(
        "--demo",
        action="store_true",
        help="sign with the demo's own secret (GATEWAY_DATA_DIR/demo-secrets.json); the account defaults to 'demo'",
    )
    token.set_defaults(func=cmd_token)

    plugins = sub.add_parser(
        "plugins",
        help="list installed platform plugins",
        description="List the platform plugins this installation loads (GATEWAY_LOAD_PLUGINS limits them), with "
        "versions and capabilities; load errors go to stderr.",
    )
    plugins.set_defaults(func=cmd_plugins)

    export = sub.add_parser(
        "export-schema",
        help="print the served GraphQL schema (SDL)",
        description="Print the GraphQL schema the API serves, in SDL (`make schema` writes it to schema.graphql).",
    )
    export.set_defaults(func=cmd_export_schema)

    new_plugin = sub.add_parser(
        "new-plugin",
        help="scaffold a new platform plugin package",
        description="Create a platform plugin package (adapter, mapper, simulator, tests) that passes the "
        "conformance suite out of the box.",
        formatter_class=formatter,
    )
    new_plugin.add_argument(
        "name",
        help="the platform id: 2 to 40 lowercase letters, digits or underscores, starting with a letter (e.g. acme)",
    )
    new_plugin.add_argument("--directory", default=".", metavar="DIR", help="where to create the package folder")
    new_plugin.set_defaults(func=cmd_new_plugin)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
