"""`alana-gateway demo`: embedded servers, API, worker and three simulated stores in one process.

A demo is something people use for a while, so a restart respects what they did in it:
- Everything the gateway stores lives in the embedded servers under GATEWAY_DATA_DIR and is kept:
  every integration of the demo account (the demo's own stores and any the person connected), with
  its products, Alana's edits, conflicts, sync history and activity.
- The simulated stores live in memory, so they are re-created at each start, from the same seed (same
  catalog, same keys) on the same ports as before (remembered in demo-state.json), together with the
  webhook registrations they held: integrations pointing at them carry on as if the stores had never
  gone away. A demo store the person disconnected stays disconnected; `--reset` starts over.
- Secrets for the demo are generated once and kept beside that state (demo-secrets.json, mode 0600),
  so a restart can still open the credentials it stored and the printed token keeps working.
- The install flows work in the demo: the simulated Shopify and BigCommerce play their platforms' app
  sides (GATEWAY_SHOPIFY_* / GATEWAY_BIGCOMMERCE_* point at them unless set), the WooCommerce store
  accepts the console's plain-HTTP callback, and "Connect a store" on the page goes through each
  platform's approve screen. The tokens and keys those screens issued are kept with the store's state,
  so a store connected that way also carries on after a restart.

Logs are human lines at WARNING unless GATEWAY_LOG_LEVEL says otherwise, so the banner stays on
screen; the stores keep changing (a few edits a minute, now and then a new or deleted product) so a
person watching sees real-time sync and the history fill up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import json
import logging
import os
import random
import secrets
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.api.app import create_app
from gateway.auth import issue_token
from gateway.embedded import EmbeddedServers
from gateway.jobs import Workers
from gateway.logs import configure_logging
from gateway.plugins import PluginRegistry
from gateway.services import Gateway, plugin_registry
from gateway.settings import Settings
from gateway.simkit import Hook, Simulator, TokenStore, free_port

log = logging.getLogger(__name__)

DEMO_ACCOUNT = "demo"
SECRETS_FILE = "demo-secrets.json"
STATE_FILE = "demo-state.json"
#: The seed of the demo's simulated stores: the same catalog and keys at every start.
SEED = 7
#: Bookkeeping the bundled simulators keep beside `hooks` (ids handed out, per-hook status); restored
#: with the hooks so a registration made before a restart keeps working and new ids never collide.
_HOOK_BOOKKEEPING = ("_hook_meta", "_next_hook", "_hook_ids")
#: Simulator options the demo needs: its console is plain HTTP, which a real WooCommerce would refuse as
#: the keys callback.
SIMULATOR_OPTIONS: dict[str, dict[str, Any]] = {"woocommerce": {"insecure_callbacks": True}}


def demo_secrets_path(data_dir: Path) -> Path:
    return data_dir / SECRETS_FILE


def demo_secrets(data_dir: Path) -> dict[str, str]:
    path = demo_secrets_path(data_dir)
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    data_dir.mkdir(parents=True, exist_ok=True)
    values = {"jwt": secrets.token_urlsafe(32), "key": secrets.token_urlsafe(32)}
    path.write_text(json.dumps(values))
    path.chmod(0o600)
    return values


# ---- what the demo remembers between starts ----------------------------------------------------------
@dataclasses.dataclass
class DemoState:
    #: platform -> the port its simulated store listens on
    ports: dict[str, int] = dataclasses.field(default_factory=dict)
    #: platform -> the integration the demo connected to its store (the person may disconnect it)
    integrations: dict[str, str] = dataclasses.field(default_factory=dict)
    #: platform -> the store's webhook registrations (see snapshot_hooks)
    hooks: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    #: platform -> the tokens and keys its install flow issued (see snapshot_app)
    apps: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    @classmethod
    def load(cls, data_dir: Path) -> DemoState:
        path = data_dir / STATE_FILE
        try:
            raw = json.loads(path.read_text())
            return cls(
                ports={str(k): int(v) for k, v in raw.get("ports", {}).items()},
                integrations={str(k): str(v) for k, v in raw.get("integrations", {}).items()},
                hooks=dict(raw.get("hooks", {})),
                apps=dict(raw.get("apps", {})),
            )
        except FileNotFoundError:
            return cls()
        except (ValueError, TypeError, AttributeError):
            log.warning("ignoring an unreadable %s; the demo stores are set up afresh", path)
            return cls()

    def save(self, data_dir: Path) -> None:
        path = data_dir / STATE_FILE
        data_dir.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        # Webhook secrets of simulated stores are in here: readable by the owner only, like the demo's secrets.
        temporary.touch(mode=0o600)
        temporary.write_text(json.dumps(dataclasses.asdict(self), indent=2))
        temporary.replace(path)


def snapshot_hooks(sim: Simulator) -> dict[str, Any]:
    """The webhook registrations a simulated store holds, as JSON."""
    hooks = [
        {"type": f"{type(h).__module__}:{type(h).__qualname__}", "fields": dataclasses.asdict(h)}
        for h in sim.hooks.values()
    ]
    extra = {name: getattr(sim, name) for name in _HOOK_BOOKKEEPING if hasattr(sim, name)}
    return {"hooks": hooks, "bookkeeping": extra}


def restore_hooks(sim: Simulator, snapshot: dict[str, Any]) -> int:
    """Give a freshly created simulated store the registrations it held before; returns how many."""
    restored: dict[str, Hook] = {}
    for entry in snapshot.get("hooks", []):
        module_name, _, qualname = str(entry.get("type", "")).partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), qualname)
        except (ImportError, AttributeError, ValueError):
            continue
        if not (isinstance(cls, type) and issubclass(cls, Hook)):
            continue
        try:
            hook = cls(**entry["fields"])
        except (TypeError, KeyError):
            continue
        restored[hook.id] = hook
    for name, value in snapshot.get("bookkeeping", {}).items():
        if name in _HOOK_BOOKKEEPING and hasattr(sim, name) and isinstance(value, type(getattr(sim, name))):
            setattr(sim, name, value)
    sim.hooks.update(restored)
    return len(restored)


def snapshot_app(sim: Simulator) -> dict[str, Any]:
    """What the store's install flow issued (the bundled simulators' tokens and WooCommerce's keys), as JSON."""
    found: dict[str, Any] = {}
    tokens = getattr(getattr(sim, "app", None), "tokens", None)
    if isinstance(tokens, TokenStore):
        found["tokens"] = tokens.snapshot()
    auth = getattr(sim, "auth", None)
    keys = getattr(auth, "keys", None)
    if isinstance(keys, dict) and all(dataclasses.is_dataclass(v) and not isinstance(v, type) for v in keys.values()):
        found["keys"] = {
            k: {"type": f"{type(v).__module__}:{type(v).__qualname__}", "fields": dataclasses.asdict(v)}
            for k, v in keys.items()
        }
        found["next_key"] = getattr(auth, "_next_key", None)
    return found


def restore_app(sim: Simulator, snapshot: dict[str, Any]) -> None:
    """Give a freshly created simulated store back what its install flow had issued."""
    tokens = getattr(getattr(sim, "app", None), "tokens", None)
    if isinstance(tokens, TokenStore) and isinstance(snapshot.get("tokens"), dict):
        with contextlib.suppress(TypeError, ValueError):
            tokens.restore(snapshot["tokens"])
    auth = getattr(sim, "auth", None)
    keys = getattr(auth, "keys", None)
    if isinstance(keys, dict):
        for key, entry in dict(snapshot.get("keys") or {}).items():
            module_name, _, qualname = str(entry.get("type", "")).partition(":")
            try:
                cls = getattr(importlib.import_module(module_name), qualname)
                keys[str(key)] = cls(**entry["fields"])
            except (ImportError, AttributeError, ValueError, TypeError, KeyError):
                continue
        if auth is not None and isinstance(snapshot.get("next_key"), int) and hasattr(auth, "_next_key"):
            auth._next_key = snapshot["next_key"]


def app_settings(settings: Settings, sims: list[Simulator]) -> Settings:
    """Point the install flows at the simulated platforms' app sides (unless real apps are configured)."""
    update: dict[str, str] = {}
    for sim in sims:
        app = sim.app_credentials()
        names = (f"{sim.platform}_client_id", f"{sim.platform}_client_secret", f"{sim.platform}_auth_url")
        if not app or not all(name in Settings.model_fields for name in names):
            continue
        if getattr(settings, names[0]):
            continue  # a real app is configured: the demo leaves it alone
        update.update(dict(zip(names, (app["client_id"], app["client_secret"], sim.base_url), strict=True)))
    return settings.model_copy(update=update) if update else settings


def register_apps(gw: Gateway, sims: list[Simulator]) -> list[str]:
    """Register the gateway's callback URLs with each simulated platform, as an operator does in the
    platform's dashboard. Returns the platforms that now connect through their own screens."""
    ready: list[str] = []
    for sim in sims:
        flow = gw.flows.install_flow(sim.platform)
        if flow is None or not sim.plays_install_flow:
            continue
        sim.register_app(flow.app_registration())
        ready.append(sim.platform)
    return ready


# ---- running it ---------------------------------------------------------------------------------------
def _step(text: str) -> float:
    print(text, end="", flush=True)
    return time.perf_counter()


def _done(started: float) -> None:
    print(f" done ({time.perf_counter() - started:.1f} s)", flush=True)


def configure_demo_logging(settings: Settings) -> None:
    """Readable lines, quiet by default: the banner is what a person reads (JSON is for production)."""
    explicit = "log_level" in settings.model_fields_set
    level = settings.log_level if explicit else "WARNING"
    configure_logging(level, json_logs=False, pin=True)
    if not explicit:
        # arq logs every job at INFO; in a demo that is a line a second scrolling the banner away.
        logging.getLogger("arq").setLevel(logging.WARNING)


async def run_demo(
    port: int = 8000, products: int = 200, change_every: float = 8.0, reset: bool = False, host: str = "127.0.0.1"
) -> None:
    base = Settings()
    configure_demo_logging(base)
    data_dir = base.data_dir.resolve()
    generated = demo_secrets(data_dir)
    state = DemoState() if reset else DemoState.load(data_dir)
    servers = EmbeddedServers(
        mongodb_url=base.mongodb_url, redis_url=base.redis_url, persistent_dir=data_dir / "servers"
    )
    started = _step(f"Starting the database and Valkey (data in {data_dir})…")
    await asyncio.to_thread(servers.start)
    _done(started)
    stack = contextlib.AsyncExitStack()
    try:
        stack.callback(servers.close)
        console = f"http://{host}:{port}"
        origins = [o for o in (base.allowed_origins or "").split(",") if o.strip()]
        origins += [console, f"http://localhost:{port}"]
        settings = base.model_copy(
            update={
                "mongodb_url": servers.mongodb_url,
                "redis_url": servers.redis_url,
                "jwt_secret": base.jwt_secret or generated["jwt"],
                "secret_key": base.secret_key or generated["key"],
                "public_url": console,
                "allow_private_urls": True,
                "allowed_origins": ",".join(dict.fromkeys(o.strip() for o in origins)),
            }
        )
        # The simulated stores first: the gateway is built once, with their app credentials in its settings.
        started = _step("Starting the simulated stores…")
        registry = plugin_registry(settings)
        sims = await start_simulators(registry, products, state, stack)
        settings = app_settings(settings, sims)
        _done(started)
        gw = await Gateway.create(settings, registry=registry)
        stack.push_async_callback(gw.close)
        flows = register_apps(gw, sims)
        runner = web.AppRunner(create_app(gw), access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, host, port).start()

        workers = Workers(gw)
        workers.start()
        stack.push_async_callback(workers.stop)
        # Saved at once (ports, hooks) and again on the way out (hooks registered meanwhile).
        stack.callback(lambda: save_state(data_dir, state, sims))
        started = _step("Setting up the demo account…")
        report = await reconcile(gw, sims, state, reset)
        save_state(data_dir, state, sims)
        _done(started)
        ttl = min(7 * 86_400, settings.max_token_ttl)
        token = issue_token(settings.jwt_secret or "", DEMO_ACCOUNT, ttl, settings.max_token_ttl)
        print(banner(console, token, sims, report, flows), flush=True)
        await keep_changing(sims, change_every)
    finally:
        await stack.aclose()


def save_state(data_dir: Path, state: DemoState, sims: list[Simulator]) -> None:
    for sim in sims:
        state.ports[sim.platform] = sim.port
        state.hooks[sim.platform] = snapshot_hooks(sim)
        state.apps[sim.platform] = snapshot_app(sim)
    try:
        state.save(data_dir)
    except OSError:
        log.warning("could not save the demo's state under %s", data_dir, exc_info=True)


async def start_simulators(
    registry: PluginRegistry, products: int, state: DemoState, stack: contextlib.AsyncExitStack
) -> list[Simulator]:
    sims: list[Simulator] = []
    for platform, adapter in sorted(registry.adapters.items()):
        try:
            cls = adapter.simulator()
            if cls is None:
                continue
            sim = cls(products=products, seed=SEED, **SIMULATOR_OPTIONS.get(platform, {}))
            restore_hooks(sim, state.hooks.get(platform, {}))
            restore_app(sim, state.apps.get(platform, {}))
            try:
                await sim.start(port=state.ports.get(platform) or free_port())
            except OSError:  # the remembered port is taken now: any free one (integrations are re-pointed)
                await sim.start(port=free_port())
        except Exception:  # noqa: BLE001 - one broken simulator must not stop the demo
            log.exception("could not start the %s simulator", platform)
            continue
        stack.push_async_callback(sim.stop)
        sims.append(sim)
    return sims


@dataclasses.dataclass
class Reconciled:
    connected: list[str] = dataclasses.field(default_factory=list)
    kept: list[str] = dataclasses.field(default_factory=list)
    left_disconnected: list[str] = dataclasses.field(default_factory=list)


async def reconcile(gw: Gateway, sims: list[Simulator], state: DemoState, reset: bool) -> Reconciled:
    """Keep every integration of the demo account; connect a demo store only where none ever was."""
    service = gw.integrations
    report = Reconciled()
    existing = {integration.id: integration for integration in await service.list(DEMO_ACCOUNT)}
    if reset:
        # Starting over: the stores are fresh, so removing webhooks on them is quick.
        await asyncio.gather(*(service.disconnect(DEMO_ACCOUNT, iid) for iid in existing), return_exceptions=True)
        existing = {}
        state.integrations.clear()
    by_url = {integration.store_url: integration for integration in existing.values()}
    for sim in sims:
        remembered = state.integrations.get(sim.platform)
        if remembered in existing:
            kept = existing[remembered]
            if kept.store_url != sim.store_url:
                # The store came back on another port: only the demo's own bookkeeping changes.
                await gw.integration_store.move_store(DEMO_ACCOUNT, kept.store_url, sim.store_url)
            continue
        if remembered is not None:
            report.left_disconnected.append(sim.platform)  # the person disconnected it: respected
            continue
        if sim.store_url in by_url:  # an earlier demo connected it without remembering (older versions)
            state.integrations[sim.platform] = by_url[sim.store_url].id
            continue
        try:
            connected = await service.connect(
                DEMO_ACCOUNT, sim.platform, f"Demo {sim.platform} store", sim.store_url, sim.credentials()
            )
        except Exception:  # noqa: BLE001
            log.exception("could not connect the %s demo store", sim.platform)
            continue
        state.integrations[sim.platform] = connected.id
        report.connected.append(connected.name)
    report.kept = sorted(integration.name for integration in existing.values())
    return report


def banner(console: str, token: str, sims: list[Simulator], report: Reconciled, flows: list[str] | None = None) -> str:
    lines = [
        "",
        "Alana Integration Gateway demo",
        f"  Console:  {console}/   (Settings > Integrations)",
        f"  GraphQL:  {console}/graphql   (GraphiQL in a browser)",
        f"  Token:    {token}",
        f"            (account '{DEMO_ACCOUNT}', valid 7 days: paste it into the page, or send it as "
        "'Authorization: Bearer <token>')",
        "  Stores:   simulated, each connected as a 'Demo ... store' (one store is one integration: disconnect",
        "            one to connect it again with its keys in 'Connect a store')",
    ]
    for sim in sims:
        keys = "  ".join(f"{k}={v}" for k, v in sim.credentials().items())
        lines.append(f"            {sim.platform:<12} {sim.store_url}  {keys}")
    by_platform = {sim.platform: sim for sim in sims}
    if flows:
        lines.append("  Connect:  'Connect a store' also goes through each platform's own approve screen (simulated):")
        for platform in flows:
            sim = by_platform[platform]
            what = "no store to type" if platform == "bigcommerce" else f"store {sim.install_store}"
            lines.append(f"            - {sim.platform.capitalize()}: {what}, then 'Continue to ...'")
        lines.append("            (each is a demo store connected already: disconnect it first)")
    if report.kept:
        lines.append(f"  Kept from the last run: {', '.join(report.kept)}")
    if report.left_disconnected:
        lines.append(
            f"  You disconnected the demo {', '.join(report.left_disconnected)} store(s); they stay disconnected."
        )
    lines.append("Ctrl-C stops everything; a restart keeps what you did ('alana-gateway demo --reset' starts over).")
    return "\n".join(lines) + "\n"


async def keep_changing(sims: list[Simulator], every: float) -> None:
    if every <= 0:
        await asyncio.Event().wait()
    rng = random.Random(os.getpid())
    while True:
        await asyncio.sleep(every)
        if not sims:
            continue
        sim = rng.choice(sims)
        try:
            ids = sim.product_ids()
            roll = rng.random()
            if roll < 0.08 or not ids:
                sim.create_product()
            elif roll < 0.12 and len(ids) > 10:
                sim.delete_product(rng.choice(ids))
            else:
                sim.update_product(rng.choice(ids))
        except Exception:  # noqa: BLE001
            log.warning("demo change failed on %s", sim.platform, exc_info=True)
