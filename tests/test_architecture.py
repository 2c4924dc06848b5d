"""The package's import graph: no cycles, and each lower layer imports only those below it
(docs/ARCHITECTURE.md, "Layers and imports").

Every import counts, those inside functions too (pygrub defers imports to keep start-up
short, which hides a cycle from Python but not from a reader); those under
``if TYPE_CHECKING:`` do not, as only type checkers run them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "pygrub"

#: The modules every layer may use: no pygrub imports of their own but among these.
FOUNDATION = {"_typing", "errors", "log", "record", "limits", "compress", "formats"}

#: Lower layers (first component under pygrub) and what each may import besides itself
#: and FOUNDATION. The upper layers (api, boot, cli, sandbox, menu, dropin, manpage) may
#: import anything below them.
MAY_IMPORT = {
    **{name: set() for name in FOUNDATION},
    "output": set(),
    "disk": set(),
    "volumes": {"disk"},
    "fs": {"disk"},
    "extract": {"fs"},
    "config": {"disk", "fs", "volumes"},
    "select": {"config"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def run_time_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement in ``tree`` but those only type checkers run."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and is_type_checking(node):
            pending.extend(node.orelse)
        else:
            pending.extend(ast.iter_child_nodes(node))
    return found


def imported_modules(name: str) -> set[str]:
    """The pygrub modules module ``name`` imports at run time."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in run_time_imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in MODULES)
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        for alias in node.names:
            submodule = f"{target}.{alias.name}"
            if submodule in MODULES:
                found.add(submodule)
            elif target in MODULES:
                found.add(target)
    found.discard(name)
    return found


GRAPH = {name: imported_modules(name) for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_graph_is_read():
    # Guards the parser above: known edges of each kind are found.
    assert "pygrub.fs.base" in GRAPH["pygrub.fs.ext4"]  # from .base import (...)
    assert "pygrub.volumes.gpt" in GRAPH["pygrub.volumes.discovery"]  # in a function
    assert "pygrub.disk.qcow2" in GRAPH["pygrub.disk.source"]  # in a function
    assert "pygrub.disk.qcow2" not in GRAPH["pygrub.disk"]  # under TYPE_CHECKING only
    assert "pygrub.volumes.volume" in GRAPH["pygrub.volumes"]  # a package's __init__


def test_cycles_are_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(GRAPH)
    assert not found, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in found)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if layer(n) in MAY_IMPORT))
def test_lower_layers_import_only_below(name):
    allowed = MAY_IMPORT[layer(name)] | FOUNDATION | {layer(name)}
    above = sorted(m for m in GRAPH[name] if layer(m) not in allowed)
    assert not above, f"{name} imports {above}: not below its layer"


def settings_uses(name: str) -> list[str]:
    """What module ``name`` does that only the command line's layer may: read the
    environment, or raise UsageError (the command line was wrong)."""
    tree = ast.parse(MODULES[name].read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            found.append(f"os.{node.attr} at line {node.lineno}")
        elif isinstance(node, ast.Name) and node.id == "UsageError":
            found.append(f"UsageError at line {node.lineno}")
    return found


def test_settings_are_found():
    uses = settings_uses("pygrub.cli")
    assert any(use.startswith("os.environ") for use in uses)
    assert any(use.startswith("UsageError") for use in uses)


@pytest.mark.parametrize(
    "name",
    sorted(n for n in MODULES if layer(n) in MAY_IMPORT and n not in ("pygrub.errors",)),
)
def test_lower_layers_take_settings_as_arguments(name):
    uses = settings_uses(name)
    assert not uses, f"{name}: {uses}"


#: The upper layers, bottom up (docs/ARCHITECTURE.md, "One run"): each may import the lower
#: layers and those before it here, never one after it.
UPPER = ["settings", "clock", "boot", "api", "menu", "sandbox", "run", "cli", "manpage"]


@pytest.mark.parametrize("name", sorted(n for n in MODULES if layer(n) in UPPER))
def test_upper_layers_import_only_downward(name):
    below = set(UPPER[: UPPER.index(layer(name)) + 1])
    above = sorted(m for m in GRAPH[name] if layer(m) in UPPER and layer(m) not in below)
    assert not above, f"{name} imports {above}: a layer above it"


def test_every_module_has_a_layer():
    known = set(MAY_IMPORT) | set(UPPER) | {"", "__main__", "dropin"}
    assert {layer(n) for n in MODULES} <= known, "a new module: give it a row in ARCHITECTURE.md"
