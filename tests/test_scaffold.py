"""`alana-gateway new-plugin`: the package it writes installs with pip, shows up as a platform and passes
the conformance suite out of the box, with no change to gateway code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.scaffold import plugin_names, scaffold_plugin
from gateway.testing import conformance, conformance_install

NAME = "acme_kit"
NAMES = plugin_names(NAME)
PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input")
SCRIPT = Path(sys.executable).with_name("alana-gateway")
#: One test per check of the suite (both of its modules), for the one platform under test.
SUITE_CHECKS = sum(
    1 for module in (conformance, conformance_install) for name in module.__all__ if name.startswith("test_")
)
#: The scaffold's own mapper tests.
MAPPER_TESTS = 5


def run(*args: str, cwd: Path | None = None, site: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A command as a person runs it; `site`: a directory of installed packages it also finds."""
    # Without the operator's plugin allowlist: the new plugin must show up like any installed one.
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_LOAD_PLUGINS"}
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH")) if p)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False)


def test_names_become_a_platform_id_a_package_and_a_distribution() -> None:
    assert plugin_names("Acme-Store") | {"gateway_version": ""} == {
        "name": "acme_store",
        "Name": "AcmeStore",
        "Title": "Acme Store",
        "package": "alana_acme_store",
        "distribution": "alana-gateway-acme-store",
        "gateway_version": "",
    }


@pytest.mark.parametrize("bad", ["9lives", "a", "acme store", "acme.store", ""])
def test_a_name_that_cannot_be_a_platform_id_is_refused(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot name a platform"):
        scaffold_plugin(bad, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_package_is_never_overwritten(tmp_path: Path) -> None:
    path = scaffold_plugin("acme", tmp_path)
    (path / "alana_acme" / "adapter.py").write_text("# my work\n")
    with pytest.raises(FileExistsError, match="already exists"):
        scaffold_plugin("acme", tmp_path)
    assert (path / "alana_acme" / "adapter.py").read_text() == "# my work\n"


@pytest.fixture
def installed(tmp_path: Path) -> tuple[Path, Path]:
    """A plugin scaffolded by the CLI into tmp_path and pip-installed into a directory of its own (the
    package, the site directory). The commands of the test find it there (PYTHONPATH); the environment
    the suite runs in is left as it was, so tests beside this one see the same platforms."""
    made = run(str(SCRIPT), "new-plugin", NAME, "--directory", str(tmp_path))
    assert made.returncode == 0, made.stderr
    path = tmp_path / NAMES["distribution"]
    assert (path / "pyproject.toml").is_file(), made.stdout
    site = tmp_path / "site"
    # Build isolation: pip builds with the setuptools the package asks for, like any user's install.
    install = run(*PIP, "install", "--quiet", "--no-deps", "--target", str(site), str(path))
    assert install.returncode == 0, install.stdout + install.stderr
    return path, site


def test_a_scaffolded_plugin_is_listed_and_passes_the_conformance_suite(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    package, site = installed
    listed = run(str(SCRIPT), "plugins", site=site)
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"^{NAME}\s+Acme Kit\s+0\.1\.0", listed.stdout, re.MULTILINE), listed.stdout
    assert "error" not in listed.stderr, listed.stderr

    loaded = run(
        sys.executable,
        "-c",
        "from gateway.plugins import load_plugins; r = load_plugins(); "
        f"print(type(r.adapters[{NAME!r}]).__name__, r.load_errors)",
        site=site,
    )
    assert loaded.stdout.strip() == "AcmeKitAdapter []", loaded.stdout + loaded.stderr

    # Its own tests: the conformance suite wired in, plus the mapper tests; nothing skipped.
    suite = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=package, site=site)
    assert suite.returncode == 0, suite.stdout + suite.stderr
    passed = rf"\b{SUITE_CHECKS + MAPPER_TESTS} passed\b"
    assert re.search(passed, suite.stdout) and "skipped" not in suite.stdout, suite.stdout

    # And the suite run from anywhere against the installed platform.
    anywhere = run(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--gateway-platform={NAME}",
        cwd=tmp_path,
        site=site,
    )
    assert anywhere.returncode == 0, anywhere.stdout + anywhere.stderr
    passed = rf"\b{SUITE_CHECKS} passed\b"
    assert re.search(passed, anywhere.stdout) and "skipped" not in anywhere.stdout, anywhere.stdout
