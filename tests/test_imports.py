"""The module graph: every gateway module imports on its own, and no two modules import each other.

Each module is imported alone in a fresh interpreter (a child forked before any gateway module is
loaded) while `__import__` records who imports whom; the union of those edges must have no cycle.
A function-level import that only hides a cycle is caught by the second test.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

GATEWAY = Path(__file__).resolve().parents[1] / "gateway"

WALK = r"""
import builtins, importlib, json, os, pkgutil, shutil, sys, tempfile
# Third-party packages loaded once here, so each child only pays for the gateway's own modules.
import aiohttp, arq, bson, pluggy, prometheus_client, pydantic, pymongo, redis, strawberry  # noqa

import gateway
modules = sorted(
    m.name for m in pkgutil.walk_packages(gateway.__path__, "gateway.") if ".templates" not in m.name
)
sys.modules.pop("gateway")
edges, failures = set(), {}
# Children run side by side (one per core): each writes what it saw to a file of its own.
out_dir = tempfile.mkdtemp()
running = {}


def reap():
    pid, status = os.wait()
    name, path = running.pop(pid)
    try:
        with open(path) as f:
            result = json.load(f)
    except (OSError, ValueError):
        result = {"error": f"the child importing it died (wait status {status})"}
    if "error" in result:
        failures[name] = result["error"]
    edges.update(tuple(e) for e in result.get("edges", []))


for n, name in enumerate(modules):
    if len(running) >= (os.cpu_count() or 1):
        reap()
    path = os.path.join(out_dir, f"{n}.json")
    pid = os.fork()
    if pid == 0:
        found, real = set(), builtins.__import__

        def recording(target, globals=None, locals=None, fromlist=(), level=0):
            module = real(target, globals, locals, fromlist, level)
            importer = (globals or {}).get("__name__", "")
            if importer.startswith("gateway") and target.startswith("gateway") and level == 0:
                for item in fromlist or ():
                    sub = f"{target}.{item}"
                    if sub in sys.modules:
                        found.add((importer, sub))
                        break
                else:
                    found.add((importer, target))
            return module

        builtins.__import__ = recording
        try:
            importlib.import_module(name)
            out = {"edges": sorted(found)}
        except BaseException as exc:
            out = {"error": f"{type(exc).__name__}: {exc}"}
        with open(path, "w") as f:
            json.dump(out, f)
        os._exit(0)
    running[pid] = (name, path)
while running:
    reap()
shutil.rmtree(out_dir)
print(json.dumps({"modules": modules, "edges": sorted(edges), "failures": failures}))
"""


def cycles(edges: list[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), plus self-imports."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        if a != b:
            graph.setdefault(a, set()).add(b)
            graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]) == [["a", "b", "c"]]
    assert cycles([("a", "b"), ("b", "c")]) == []


def test_every_gateway_module_imports_alone_and_the_graph_has_no_cycle() -> None:
    done = subprocess.run([sys.executable, "-c", WALK], capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["failures"] == {}, result["failures"]
    assert len(result["modules"]) > 40 and "gateway.engine" in result["modules"]
    edges = [tuple(e) for e in result["edges"]]
    assert ("gateway.engine", "gateway.mapping") in edges  # the walk saw real edges
    assert cycles(edges) == []


#: Imports inside functions that are there for start-up time, not to hide a cycle: the CLI loads
#: only what its subcommand needs, and the conformance suite's registry loads plugins on first use.
LAZY_ON_PURPOSE = {"gateway/cli.py", "gateway/testing/conformance.py"}


def test_no_gateway_module_imports_another_inside_a_function() -> None:
    hidden: list[str] = []
    for path in sorted(GATEWAY.rglob("*.py")):
        where = str(path.relative_to(GATEWAY.parent))
        if "templates" in where or where in LAZY_ON_PURPOSE:
            continue
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                module = node.module if isinstance(node, ast.ImportFrom) else None
                if isinstance(node, ast.Import):
                    module = node.names[0].name
                if module and module.startswith("gateway"):
                    hidden.append(f"{where}:{node.lineno} imports {module} inside {func.name}()")
    assert hidden == []
