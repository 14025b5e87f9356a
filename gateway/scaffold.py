"""`alana-gateway new-plugin NAME`: a new platform plugin package, ready to install and test.

The package it writes has everything a platform plugin ships (pyproject.toml with the entry point,
an adapter, a mapper, a simulator, the plugin module) and the conformance suite wired into its
tests, and `pytest` passes in it out of the box against its toy API. The files come from
gateway/testing/templates/plugin/ (package data), with {{placeholders}} filled in.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from gateway import __version__

TEMPLATE = "plugin"
_NAME = re.compile(r"[a-z][a-z0-9_]{1,39}")


def plugin_names(name: str) -> dict[str, str]:
    """The placeholders for a platform called `name` (e.g. "acme_store")."""
    platform = name.strip().lower().replace("-", "_")
    if not _NAME.fullmatch(platform):
        raise ValueError(
            f"{name!r} cannot name a platform: use 2-40 lower-case letters, digits and underscores, "
            "starting with a letter (e.g. acme or acme_store)"
        )
    words = platform.split("_")
    return {
        "name": platform,
        "Name": "".join(w.capitalize() for w in words),
        "Title": " ".join(w.capitalize() for w in words),
        "package": f"alana_{platform}",
        "distribution": f"alana-gateway-{platform.replace('_', '-')}",
        "gateway_version": __version__,
    }


def render(text: str, names: dict[str, str]) -> str:
    for key, value in names.items():
        text = text.replace("{{" + key + "}}", value)
    leftover = re.search(r"\{\{\w+\}\}", text)
    if leftover:
        raise ValueError(f"the plugin template has an unknown placeholder {leftover.group(0)}")
    return text


def _files(folder: Traversable, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Traversable]]:
    found: list[tuple[tuple[str, ...], Traversable]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            if entry.name != "__pycache__":
                found += _files(entry, (*prefix, entry.name))
        elif entry.name.endswith(".tmpl"):
            found.append(((*prefix, entry.name.removesuffix(".tmpl")), entry))
    return found


def scaffold_plugin(name: str, directory: str | Path = ".") -> Path:
    """Write the package for platform `name` into `directory`/alana-gateway-<name>; return its path.

    Raises ValueError for a name that cannot be a platform id and FileExistsError when the target
    exists and is not empty.
    """
    names = plugin_names(name)
    target = Path(directory) / names["distribution"]
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} already exists and is not empty")
    template = resources.files("gateway.testing").joinpath("templates", TEMPLATE)
    for parts, source in _files(template):
        relative = Path(*(names["package"] if part == "__package__" else part for part in parts))
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(render(source.read_text(encoding="utf-8"), names), encoding="utf-8")
    return target
