"""schema.graphql is exported from the code and honours the shared contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.api.schema import schema

ROOT = Path(__file__).resolve().parents[1]
#: The team's contract checker lives beside the repository, not in it: a clone on its own skips it.
CONTRACT_CHECK = ROOT.parent / "shared" / "tools" / "contract_check.py"


def test_committed_schema_matches_the_code() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed.strip() == schema.as_str().strip(), "schema.graphql is stale: run `make schema` and commit it"


@pytest.mark.skipif(
    not CONTRACT_CHECK.exists(),
    reason=f"contract checker not found at {CONTRACT_CHECK} (../shared is not beside this clone)",
)
def test_schema_honours_the_contract() -> None:
    result = subprocess.run(
        [sys.executable, str(CONTRACT_CHECK), str(ROOT / "schema.graphql")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "contract: 0 differences" in result.stdout
