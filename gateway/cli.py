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
    from arq.worker import Worker

    from gateway.jobs import worker_settings
    from gateway.logs import configure_logging
    from gateway.settings import get_settings

    settings = get_settings()
    if args.check:
        from arq.worker import check_health

        # The container healthcheck: exits non-zero when this host's worker stopped reporting.
        return int(check_health(worker_settings(settings)))
    configure_logging(settings.log_level)
    _require_secrets(settings)
    worker = Worker(**worker_settings(settings))
    worker.run()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return _run(lambda: run_demo(port=args.port, products=args.products))


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
    from gateway.auth import issue_token
    from gateway.settings import get_settings

    secret = get_settings().jwt_secret
    if not secret:
        print("GATEWAY_JWT_SECRET is not set", file=sys.stderr)
        return 2
    try:
        print(issue_token(secret, args.account, args.ttl, get_settings().max_token_ttl))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alana-gateway", description="Alana Integration Gateway")
    parser.add_argument("--version", action="version", version=f"alana-gateway {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="the HTTP server: GraphQL, webhooks, health, metrics")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="the arq worker: sync jobs, webhook jobs, the scheduler")
    worker.add_argument("--check", action="store_true", help="exit 0 when this host's worker is healthy")
    worker.set_defaults(func=cmd_worker)

    demo = sub.add_parser("demo", help="everything at once, with three simulated stores")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--products", type=int, default=200)
    demo.set_defaults(func=cmd_demo)

    simulate = sub.add_parser("simulate", help="one simulated store on its own")
    simulate.add_argument("platform")
    simulate.add_argument("--port", type=int, default=0)
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--products", type=int, default=100)
    simulate.set_defaults(func=cmd_simulate)

    token = sub.add_parser("token", help="print a JWT for an account")
    token.add_argument("--account", required=True)
    token.add_argument("--ttl", type=int, default=86_400, help="lifetime in seconds, at most GATEWAY_MAX_TOKEN_TTL")
    token.set_defaults(func=cmd_token)

    plugins = sub.add_parser("plugins", help="list installed platform plugins")
    plugins.set_defaults(func=cmd_plugins)

    export = sub.add_parser("export-schema", help="print the served GraphQL schema (SDL)")
    export.set_defaults(func=cmd_export_schema)

    new_plugin = sub.add_parser("new-plugin", help="scaffold a new platform plugin package")
    new_plugin.add_argument("name")
    new_plugin.add_argument("--directory", default=".")
    new_plugin.set_defaults(func=cmd_new_plugin)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
