"""The fault matrix (tests/test_faults.py) run as a benchmark, so its figures are written down.

The matrix is a test module: each test hurts one moving part of the multi-process rig during a full sync
and a webhook stream, then checks that nothing was lost. Here it runs in a pytest process of its own
with ALANA_FAULT_REPORT set, which makes every check append what it found (products lost, extra,
duplicated, stale; deliveries still waiting; runs stuck; the runs and their attempts; seconds from the
fault's scenario to a settled store) to a file; pytest's JUnit XML adds each test's outcome and time.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MATRIX = "tests/test_faults.py"
#: --quick runs the two worker kills only.
QUICK = "worker_killed_mid_run and not redis"


async def fault_matrix(quick: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        found, junit = Path(tmp) / "faults.jsonl", Path(tmp) / "junit.xml"
        env = {**os.environ, "ALANA_FAULT_MATRIX": "1", "ALANA_FAULT_REPORT": str(found)}
        command = [sys.executable, "-m", "pytest", MATRIX, "-q", f"--junitxml={junit}"]
        if quick:
            command += ["-k", QUICK]
        process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await process.communicate()
        records = [json.loads(line) for line in found.read_text().splitlines()] if found.exists() else []
        outcomes = _outcomes(junit)
    by_test = {record["test"]: record for record in records}
    tests = [{**outcome, **by_test.get(outcome["test"], {})} for outcome in outcomes]
    return {
        "products": int(os.environ.get("ALANA_FAULT_PRODUCTS", "2000")),
        "tests": tests,
        "passed": sum(1 for t in tests if t["outcome"] == "passed"),
        "failed": sum(1 for t in tests if t["outcome"] == "failed"),
        "seconds": round(sum(t["seconds_total"] for t in tests), 1),
        "exit_status": process.returncode,
        # What pytest said, when something failed: enough to see which assertion.
        "failures": output.decode(errors="replace")[-4000:] if process.returncode else "",
    }


def _outcomes(junit: Path) -> list[dict[str, Any]]:
    if not junit.exists():
        return []
    outcomes = []
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        if case.find("skipped") is not None:
            outcome = "skipped"
        elif case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        else:
            outcome = "passed"
        outcomes.append(
            {"test": case.get("name", "?"), "outcome": outcome, "seconds_total": round(float(case.get("time", 0)), 1)}
        )
    return outcomes
