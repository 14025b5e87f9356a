"""The plugin guide keeps up with the code: every hook and every adapter method is documented."""

from __future__ import annotations

import inspect
from pathlib import Path

from gateway import hookspecs
from gateway.adapter import PlatformAdapter

GUIDE = (Path(__file__).resolve().parents[1] / "docs" / "writing-a-plugin.md").read_text()


def test_every_hook_is_documented_and_has_a_docstring() -> None:
    hooks = [
        name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "alana_gateway_spec")
    ]
    assert hooks, "no hookspecs found"
    for name in hooks:
        assert f"`{name}(" in GUIDE, f"hook {name} is missing from docs/writing-a-plugin.md"
        assert (getattr(hookspecs, name).__doc__ or "").strip(), f"hook {name} has no docstring"


def test_every_adapter_method_is_documented() -> None:
    methods = [name for name, _ in inspect.getmembers(PlatformAdapter, inspect.isfunction) if not name.startswith("_")]
    for name in methods:
        assert f"`{name}" in GUIDE, f"PlatformAdapter.{name} is missing from docs/writing-a-plugin.md"
