"""Configuration from the environment and `.env` (names per docs/reference/RUNTIME.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.constants import DEFAULT_QUEUE_NAME, Lane


@dataclass(frozen=True)
class AppCredentials:
    """The platform app's own credentials (GATEWAY_<PLATFORM>_CLIENT_ID / _CLIENT_SECRET / _APP_NAME /
    _AUTH_URL, docs/reference/RUNTIME.md). `auth_url` is set only to point at a simulator: then the
    platform's authorize and token endpoints, and for BigCommerce its API, live there."""

    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    app_name: str = "Alana"
    auth_url: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.client_secret)

    @classmethod
    def from_env(cls, platform: str, env: Mapping[str, str]) -> AppCredentials:
        """Read GATEWAY_<PLATFORM>_* from an environment mapping (os.environ, or settings' extras)."""
        prefix = f"GATEWAY_{platform.upper()}_"
        auth_url = (env.get(prefix + "AUTH_URL") or "").strip().rstrip("/")
        return cls(
            client_id=(env.get(prefix + "CLIENT_ID") or "").strip(),
            client_secret=(env.get(prefix + "CLIENT_SECRET") or "").strip(),
            app_name=(env.get(prefix + "APP_NAME") or "").strip() or "Alana",
            auth_url=auth_url or None,
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    mongodb_url: str | None = Field(default=None, alias="MONGODB_URL")
    mongodb_database: str = Field(default="alana_gateway", alias="MONGODB_DATABASE")
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    jwt_secret: str | None = Field(default=None, alias="GATEWAY_JWT_SECRET")
    secret_key: str | None = Field(default=None, alias="GATEWAY_SECRET_KEY")
    public_url: str = Field(default="http://localhost:8000", alias="GATEWAY_PUBLIC_URL")
    allow_private_urls: bool = Field(default=False, alias="GATEWAY_ALLOW_PRIVATE_URLS")
    #: Comma-separated browser origins allowed to call /graphql (CORS and websocket); the gateway's
    #: own origin is always allowed (gateway/api/cors.py).
    allowed_origins: str | None = Field(default=None, alias="GATEWAY_ALLOWED_ORIGINS")
    host: str = Field(default="127.0.0.1", alias="GATEWAY_HOST")
    port: int = Field(default=8000, alias="GATEWAY_PORT")
    data_dir: Path = Field(default=Path("./.gateway"), alias="GATEWAY_DATA_DIR")
    load_plugins: str | None = Field(default=None, alias="GATEWAY_LOAD_PLUGINS")
    #: Plugin modules to load by import path, without an installed distribution (plugin development).
    extra_plugins: str | None = Field(default=None, alias="GATEWAY_EXTRA_PLUGINS")
    log_level: str = Field(default="INFO", alias="GATEWAY_LOG_LEVEL")
    #: The worker's own Prometheus endpoint (runs by outcome, webhook latency, queue depth); 0 = off.
    worker_metrics_port: int = Field(default=0, alias="GATEWAY_WORKER_METRICS_PORT")
    queue_name: str = Field(default=DEFAULT_QUEUE_NAME, alias="GATEWAY_QUEUE_NAME")
    #: Where installs begun on a platform's side send the merchant to claim the store
    #: (`?claimInstall=<token>`), and where a connect lands without a returnUrl; default: the console `/`.
    frontend_url: str | None = Field(default=None, alias="GATEWAY_FRONTEND_URL")
    # The platform apps' own credentials (install flows, compliance webhooks, signed callbacks); a
    # third-party plugin's GATEWAY_<PLATFORM>_* are read from the environment (`app_credentials`).
    shopify_client_id: str | None = Field(default=None, alias="GATEWAY_SHOPIFY_CLIENT_ID")
    shopify_client_secret: str | None = Field(default=None, alias="GATEWAY_SHOPIFY_CLIENT_SECRET")
    shopify_auth_url: str | None = Field(default=None, alias="GATEWAY_SHOPIFY_AUTH_URL")
    bigcommerce_client_id: str | None = Field(default=None, alias="GATEWAY_BIGCOMMERCE_CLIENT_ID")
    bigcommerce_client_secret: str | None = Field(default=None, alias="GATEWAY_BIGCOMMERCE_CLIENT_SECRET")
    bigcommerce_auth_url: str | None = Field(default=None, alias="GATEWAY_BIGCOMMERCE_AUTH_URL")
    woocommerce_app_name: str | None = Field(default=None, alias="GATEWAY_WOOCOMMERCE_APP_NAME")

    # Tunables (not part of the runtime contract; sensible defaults).
    max_page_size: int = Field(default=250, alias="GATEWAY_MAX_PAGE_SIZE")
    max_query_depth: int = Field(default=12, alias="GATEWAY_MAX_QUERY_DEPTH")
    max_body_bytes: int = Field(default=1_000_000, alias="GATEWAY_MAX_BODY_BYTES")
    max_webhook_bytes: int = Field(default=5_000_000, alias="GATEWAY_MAX_WEBHOOK_BYTES")
    ws_auth_timeout: float = Field(default=10.0, alias="GATEWAY_WS_AUTH_TIMEOUT")
    worker_poll_delay: float = Field(default=0.05, alias="GATEWAY_WORKER_POLL_DELAY")
    #: Job slots of each worker process, per lane (gateway.constants.Lane): long runs can fill the run
    #: slots, never the slots of Sync Now presses or webhook applies.
    worker_run_slots: int = Field(default=4, gt=0, alias="GATEWAY_WORKER_RUN_SLOTS")
    worker_sync_now_slots: int = Field(default=4, gt=0, alias="GATEWAY_WORKER_SYNC_NOW_SLOTS")
    worker_webhook_slots: int = Field(default=8, gt=0, alias="GATEWAY_WORKER_WEBHOOK_SLOTS")
    #: The lanes a worker serves (comma-separated: runs, sync_now, webhooks); all by default. A
    #: deployment may run dedicated webhook workers, say, as long as every lane has some.
    worker_lanes: str = Field(default="runs,sync_now,webhooks", alias="GATEWAY_WORKER_LANES")
    incremental_overlap_seconds: int = Field(default=300, alias="GATEWAY_INCREMENTAL_OVERLAP")
    run_lease_seconds: float = Field(default=30.0, alias="GATEWAY_RUN_LEASE_SECONDS")
    scheduler_interval: float = Field(default=5.0, alias="GATEWAY_SCHEDULER_INTERVAL")
    store_concurrency: int = Field(default=4, alias="GATEWAY_STORE_CONCURRENCY")
    http_backoff_base: float = Field(default=0.25, alias="GATEWAY_HTTP_BACKOFF_BASE")
    #: Deliveries triggered longer ago than this are refused as replays: beyond every platform's own
    #: retry window (Shopify ~4 h, BigCommerce ~48 h), so no genuine retry is lost.
    webhook_max_age_seconds: float = Field(default=72 * 3600, alias="GATEWAY_WEBHOOK_MAX_AGE")
    webhook_coalesce_seconds: float = Field(default=0.05, alias="GATEWAY_WEBHOOK_COALESCE")
    #: Answer a delivery once it is journaled in Redis and store it in MongoDB right after
    #: (gateway/journal.py); off, every delivery is in MongoDB before its answer (slower under load).
    webhook_journal: bool = Field(default=True, alias="GATEWAY_WEBHOOK_JOURNAL")
    #: How often the scheduler asks each store whether its webhook registrations still work (at least
    #: daily, docs/reference/CONNECT.md), and how soon again after a delivery gap or a failed repair.
    webhook_check_seconds: float = Field(default=86_400, alias="GATEWAY_WEBHOOK_CHECK_INTERVAL")
    webhook_recheck_seconds: float = Field(default=900, alias="GATEWAY_WEBHOOK_RECHECK_INTERVAL")

    #: Tokens expire after at most this long: longer-lived tokens (and `token --ttl`) are refused.
    max_token_ttl: int = Field(default=7 * 86_400, gt=0, alias="GATEWAY_MAX_TOKEN_TTL")

    # What one GraphQL request may cost (gateway/api/guard.py; the cost model is in gateway/api/cost.py).
    # The document limits bound parsing and validation, so a hostile document is refused in milliseconds.
    max_query_chars: int = Field(default=100_000, gt=0, alias="GATEWAY_MAX_QUERY_CHARS")
    max_query_tokens: int = Field(default=3_000, gt=0, alias="GATEWAY_MAX_QUERY_TOKENS")
    #: Selections and directives in a document once its fragments are expanded.
    max_query_nodes: int = Field(default=1_000, gt=0, alias="GATEWAY_MAX_QUERY_NODES")
    max_query_cost: int = Field(default=100_000, gt=0, alias="GATEWAY_MAX_QUERY_COST")
    #: Each caller's token bucket of query cost (per account; per address without a token), shared by
    #: every API process through Redis: it holds up to BURST points and refills at RATE a second.
    query_cost_burst: int = Field(default=300_000, gt=0, alias="GATEWAY_QUERY_COST_BURST")
    query_cost_rate: float = Field(default=10_000.0, gt=0, alias="GATEWAY_QUERY_COST_RATE")
    max_response_bytes: int = Field(default=10_000_000, gt=0, alias="GATEWAY_MAX_RESPONSE_BYTES")
    #: Items in any list in request variables, and in id lists (syncNow's productExternalIds).
    max_input_items: int = Field(default=1_000, gt=0, alias="GATEWAY_MAX_INPUT_ITEMS")
    #: Values in request variables in all, counted before graphql-core coerces them one by one.
    max_variable_values: int = Field(default=10_000, gt=0, alias="GATEWAY_MAX_VARIABLE_VALUES")

    # Input sizes (gateway/api/limits.py), in characters or items.
    max_name_chars: int = Field(default=200, gt=0, alias="GATEWAY_MAX_NAME_CHARS")
    max_title_chars: int = Field(default=1_000, gt=0, alias="GATEWAY_MAX_TITLE_CHARS")
    max_description_chars: int = Field(default=100_000, gt=0, alias="GATEWAY_MAX_DESCRIPTION_CHARS")
    max_tags: int = Field(default=250, gt=0, alias="GATEWAY_MAX_TAGS")
    max_tag_chars: int = Field(default=255, gt=0, alias="GATEWAY_MAX_TAG_CHARS")
    max_attributes: int = Field(default=100, gt=0, alias="GATEWAY_MAX_ATTRIBUTES")
    #: An attribute's name and each of its values; an attribute holds at most GATEWAY_MAX_TAGS values.
    max_attribute_chars: int = Field(default=1_000, gt=0, alias="GATEWAY_MAX_ATTRIBUTE_CHARS")

    @property
    def lanes(self) -> list[Lane]:
        """GATEWAY_WORKER_LANES as lanes (an unknown name is a configuration error, said at start-up)."""
        names = [n.strip().lower() for n in self.worker_lanes.split(",") if n.strip()]
        unknown = [n for n in names if n not in {lane.value for lane in Lane}]
        if unknown or not names:
            known = ", ".join(lane.value for lane in Lane)
            raise ValueError(f"GATEWAY_WORKER_LANES: unknown lane {', '.join(unknown) or '(none)'}; known: {known}")
        return [lane for lane in Lane if lane.value in names]

    def lane_slots(self, lane: Lane) -> int:
        return {
            Lane.RUNS: self.worker_run_slots,
            Lane.SYNC_NOW: self.worker_sync_now_slots,
            Lane.WEBHOOKS: self.worker_webhook_slots,
        }[lane]

    @property
    def plugin_allowlist(self) -> list[str] | None:
        if not self.load_plugins:
            return None
        return [p.strip() for p in self.load_plugins.split(",") if p.strip()]

    def app_credentials(self, platform: str) -> AppCredentials:
        """GATEWAY_<PLATFORM>_CLIENT_ID / _CLIENT_SECRET / _APP_NAME / _AUTH_URL for one platform's app."""
        prefix = f"GATEWAY_{platform.upper()}_"
        env = {k: v for k, v in os.environ.items() if k.startswith(prefix)}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if info.alias and info.alias.startswith(prefix) and value is not None:
                env[info.alias] = str(value)
        return AppCredentials.from_env(platform, env)

    @property
    def effective_frontend_url(self) -> str:
        return self.frontend_url or f"{self.public_url.rstrip('/')}/"

    def effective_mongodb_url(self) -> str:
        return self.mongodb_url or "mongodb://localhost:27017"

    def effective_redis_url(self) -> str:
        return self.redis_url or "redis://localhost:6379"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
