"""Install flows as this gateway configures them: each platform's app credentials (GATEWAY_<PLATFORM>_*),
the gateway's own endpoints under GATEWAY_PUBLIC_URL, and the HTTP client flows talk to platforms with.

The flows themselves are plugin code (gateway.installflow); this module only builds them for the core's
connect service, token keeper and lifecycle handling.
"""

from __future__ import annotations

import logging

from gateway.adapter import ConnectMethod, PlatformAdapter
from gateway.httpclient import HttpClient
from gateway.installflow import AppEndpoints, FlowConfig, InstallFlow, connect_methods
from gateway.plugins import PluginRegistry
from gateway.settings import Settings

log = logging.getLogger(__name__)


class Flows:
    def __init__(self, registry: PluginRegistry, settings: Settings) -> None:
        self.registry = registry
        self.settings = settings

    def config(self, platform: str) -> FlowConfig:
        settings = self.settings
        return FlowConfig(
            app=settings.app_credentials(platform),
            endpoints=AppEndpoints.for_gateway(settings.public_url, platform),
            allow_private_urls=settings.allow_private_urls,
        )

    def install_flow(self, platform: str) -> InstallFlow | None:
        """The platform's install flow as configured here; None when its plugin has none or its app is not set up."""
        adapter = self.registry.adapters.get(platform)
        if adapter is None or ConnectMethod.INSTALL_FLOW not in adapter.info.connect_methods:
            return None
        try:
            return adapter.install_flow(self.config(platform))
        except Exception:  # noqa: BLE001 - a plugin bug must not break the platform list or pasted keys
            log.exception("the %s plugin could not build its install flow", platform)
            return None

    def methods(self, adapter: PlatformAdapter) -> tuple[ConnectMethod, ...]:
        """PlatformInfo.connectMethods: INSTALL_FLOW only when the flow can be built with this configuration."""
        try:
            return connect_methods(adapter, self.config(adapter.info.id))
        except Exception:  # noqa: BLE001 - see install_flow
            log.exception("the %s plugin could not build its install flow", adapter.info.id)
            return tuple(m for m in adapter.info.connect_methods if m is not ConnectMethod.INSTALL_FLOW)

    def http(self, base_url: str | None = None) -> HttpClient:
        """A client for a flow's calls to the platform (code exchange, refresh), behind the outbound guard.

        Flows pass absolute URLs; `base_url` only names the platform in error messages.
        """
        return HttpClient(
            base_url or "https://platform.invalid",
            backoff_base=self.settings.http_backoff_base,
            max_retries=3,
            allow_private=self.settings.allow_private_urls,
        )
