"""The network modules' imports point one way, down the layers: no import circle runs through them.

Every ``import`` in a module counts, also one inside a function (a lazy import
is still a dependency). The layers, from the bottom: ``_loopstate`` (which loop
is installed), ``_aio``, ``_transport``, the ports, connectors and datagram
ports, then ``reactor``, ``internet``, ``endpoints`` and ``strports``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from support import ROOT

PACKAGE = ROOT / "twistdlite"
NETWORK = {"twistdlite.reactor", "twistdlite._loopstate", "twistdlite._aio", "twistdlite._transport",
           "twistdlite._ports", "twistdlite._connectors", "twistdlite._datagram", "twistdlite._unixsock",
           "twistdlite._clientservice", "twistdlite.internet", "twistdlite.endpoints", "twistdlite.strports",
           "twistdlite.process", "twistdlite._events", "twistdlite.protocol", "twistdlite.ssl"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict:
    """module -> the twistdlite modules it imports anywhere in its code."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            else:
                continue
            graph[name].update(target for target in targets if target in modules and target != name)
    return graph


def circles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_runs_through_the_network_modules():
    graph = import_graph()
    assert NETWORK <= set(graph), NETWORK - set(graph)
    bad = [component for component in circles(graph) if NETWORK & set(component)]
    assert bad == [], "import circles: " + "; ".join(" <-> ".join(component) for component in bad)


def test_the_checker_sees_a_circle_through_a_lazy_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]


def test_importing_the_service_module_stays_light():
    code = ("import sys; import twistdlite.service; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('twistdlite') or m in "
            "('asyncio', 'click', 'socket', 'ssl', 'logging'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["twistdlite", "twistdlite.service"]
