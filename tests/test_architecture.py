"""The rules of docs/architecture.md, read from the source (imports, sizes), not trusted.

Given every module of the product (ledger/, streams/, schemas/, auditor/), then:
- each package imports only the packages its room may use (arrows point inward);
- each driver or framework has one home package;
- no module imports, directly or through others, a module that imports it back;
- an import inside a function says why in a comment (startup time is the one reason);
- no module is longer than MAX_MODULE_LINES, no function longer than MAX_FUNCTION_LINES.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("ledger", "streams", "schemas", "auditor")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# room -> the rooms (first-party) and third-party distributions it may import.
ROOMS: dict[str, tuple[set[str], set[str]]] = {
    "schemas": ({"schemas"}, {"pydantic", "orjson"}),
    "ledger.domain": ({"ledger.domain", "schemas"}, {"orjson", "pydantic"}),
    "ledger.settings": ({"ledger.settings", "ledger.domain", "schemas"}, set()),
    "ledger.service": ({"ledger.service", "ledger.domain", "schemas"}, {"orjson", "cryptography"}),
    "ledger.memory": ({"ledger.memory", "ledger.domain", "schemas"}, set()),
    "ledger.postgres": ({"ledger.postgres", "ledger.domain", "schemas"}, {"asyncpg", "orjson"}),
    "ledger.documents": (
        {"ledger.documents", "ledger.service", "ledger.domain", "ledger.settings", "schemas"},
        {"jinja2", "weasyprint", "matplotlib", "orjson"},
    ),
    "ledger.http": (
        {"ledger.http", "ledger.documents", "ledger.service", "ledger.domain", "ledger.settings", "schemas"},
        {"fastapi", "starlette", "pydantic", "orjson", "prometheus_client", "uvicorn", "jinja2"},
    ),
    "streams": (
        {"streams", "ledger.service", "ledger.domain", "ledger.settings", "schemas"},
        {"faust", "mode", "aiokafka", "cramjam", "prometheus_client", "orjson", "uvloop"},
    ),
    "ledger.collect": (
        {"ledger.collect", "ledger.domain", "schemas"}, {"orjson", "prometheus_client", "pynvml", "grpc", "google"},
    ),
    "ledger.dev": ({"ledger.dev", "ledger.domain", "ledger.settings", "ledger.postgres", "streams"}, set()),
    "ledger.cli": (
        {"ledger.cli", "ledger.collect", "ledger.dev", "ledger.documents", "ledger.http", "ledger.postgres", "ledger.service", "ledger.domain",
         "ledger.settings", "streams", "schemas", "auditor"},
        {"click", "orjson"},
    ),
    "ledger": ({"ledger"}, set()),  # the package's own __init__
    "auditor": ({"auditor"}, {"cryptography"}),
}
# Each driver or framework, and the one room that may import it.
HOMES = {
    "asyncpg": {"ledger.postgres"},
    "aiokafka": {"streams"},
    "cramjam": {"streams"},  # aiokafka's codecs, bounded by streams.codecs
    "faust": {"streams"},
    "fastapi": {"ledger.http"},
    "starlette": {"ledger.http"},
    "uvicorn": {"ledger.http"},
    "click": {"ledger.cli"},
    "prometheus_client": {"streams", "ledger.http", "ledger.collect"},
    "pynvml": {"ledger.collect"},  # the GPU agent's NVML
    "grpc": {"ledger.collect"},  # the kubelet's PodResources API
    "jinja2": {"ledger.documents", "ledger.http"},  # documents, and the portal's pages
    "weasyprint": {"ledger.documents"},
    "matplotlib": {"ledger.documents"},
}
STDLIB = set(sys.stdlib_module_names)


def modules() -> dict[str, Path]:
    found = {}
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = modules()


def room_of(module: str) -> str:
    for room in sorted(ROOMS, key=len, reverse=True):
        if module == room or module.startswith(room + "."):
            return room
    raise AssertionError(f"{module} is in no room of docs/architecture.md")


def imports(path: Path, module: str) -> list[tuple[str, ast.stmt, bool]]:
    """(imported module, node, inside a function) for every import of a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((alias.name, child, nested) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] + ([base] if base else []))
                for alias in child.names:
                    candidate = f"{base}.{alias.name}"
                    found.append((candidate if candidate in MODULES else base, child, nested))
            visit(child, inner)

    visit(tree, False)
    return found


def first_party(name: str) -> bool:
    return name.split(".")[0] in PRODUCT


def test_every_room_imports_only_what_it_may():
    problems = []
    for module, path in MODULES.items():
        room = room_of(module)
        rooms, third_party = ROOMS[room]
        for name, node, _ in imports(path, module):
            top = name.split(".")[0]
            if top in STDLIB or top == "__future__":
                continue
            if first_party(name):
                if room_of(name) not in rooms:
                    problems.append(f"{path.relative_to(ROOT)}:{node.lineno}: {room} may not import {name}")
            elif top not in third_party:
                problems.append(f"{path.relative_to(ROOT)}:{node.lineno}: {room} may not import {top}")
    assert not problems, "\n".join(problems)


def test_each_driver_has_one_home():
    problems = []
    for module, path in MODULES.items():
        for name, node, _ in imports(path, module):
            homes = HOMES.get(name.split(".")[0])
            if homes is not None and room_of(module) not in homes:
                problems.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name} belongs in {sorted(homes)}")
    assert not problems, "\n".join(problems)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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
            connect(node)
    return found


def test_no_import_cycles():
    graph = {
        module: {name for name, _, _ in imports(path, module) if name in MODULES and name != module}
        for module, path in MODULES.items()
    }
    assert _cycles(graph) == []
    rooms: dict[str, set[str]] = {}
    for module, targets in graph.items():
        rooms.setdefault(room_of(module), set()).update(room_of(t) for t in targets if room_of(t) != room_of(module))
    assert _cycles(rooms) == [], "rooms import each other"


def test_imports_inside_functions_say_why():
    problems = []
    for module, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for name, node, nested in imports(path, module):
            if not nested:
                continue
            around = lines[max(node.lineno - 4, 0) : node.lineno]
            if not any("#" in line for line in around):
                problems.append(f"{path.relative_to(ROOT)}:{node.lineno}: import of {name} inside a function without a comment")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("package", [*PRODUCT, "bench"])
def test_modules_and_functions_stay_short(package):
    problems = []
    for path in sorted((ROOT / package).rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            problems.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    problems.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.name} is {length} lines")
    assert not problems, "\n".join(problems)


def test_the_rules_see_every_room():
    assert {room_of(module) for module in MODULES} == set(ROOMS)
