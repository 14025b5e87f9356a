"""Alana Integration Gateway: keeps merchants' store catalogs in sync with Alana."""

import pluggy

__version__ = "0.1.0"

#: Decorate hook implementations in a plugin with this marker (see gateway.hookspecs).
hookimpl = pluggy.HookimplMarker("alana_gateway")
