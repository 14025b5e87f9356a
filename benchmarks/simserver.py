"""Run one platform simulator with options from ALANA_SIM_OPTIONS (JSON): `python -m benchmarks.simserver P PORT N`."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from gateway.plugins import load_plugins
from gateway.simkit import serve_forever


def main() -> None:
    platform_id, port, products = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    options = json.loads(os.environ.get("ALANA_SIM_OPTIONS", "{}"))
    registry = load_plugins(extra=[__import__("gateway.testing.toy", fromlist=["toy"])])
    cls = registry.adapter(platform_id).simulator()
    assert cls is not None, f"{platform_id} has no simulator"
    sim = cls(products=products, seed=11, **options)
    asyncio.run(serve_forever(sim, port=port))


if __name__ == "__main__":
    main()
