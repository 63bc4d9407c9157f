"""The import structure: layers as DESIGN.md draws them, and no import cycle.

An AST walk over the hand-written source, with pyproject's package-dir mapping
applied (``protocol/`` is ``ppx.protocol``, ...). Every import statement
counts, those inside functions included.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {
    "ppx": ROOT / "ppx",
    "ppx.protocol": ROOT / "protocol",
    "ppx.inference": ROOT / "inference",
    "ppx.simulators": ROOT / "simulators",
}
GENERATED = "ppx.protocol._generated"


def _modules() -> dict[str, Path]:
    """Module name -> source file, for every hand-written module of the package."""
    modules = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join((package, *parts))
            if not name.startswith(GENERATED):
                modules[name] = path
    return modules


MODULES = _modules()


def _imported(name: str, path: Path) -> Iterator[str]:
    """The first-party modules that ``name``'s source imports, anywhere in the file."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in MODULES and not target.startswith(GENERATED):
                target = target.rpartition(".")[0]
            if target and target != name and not target.startswith(GENERATED):
                yield target
                break


GRAPH = {name: set(_imported(name, path)) for name, path in MODULES.items()}


def _in(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_the_walk_sees_the_package():
    assert {"ppx", "ppx.protocol", "ppx.engine.remote", "ppx.cli.main"} <= set(MODULES)
    assert "ppx.protocol.errors" in GRAPH["ppx.errors"]
    assert "ppx.effects" in GRAPH["ppx.simulator.primitives"]


def test_protocol_imports_nothing_else_of_ppx():
    outside = {
        (module, target)
        for module, targets in GRAPH.items()
        if _in(module, "ppx.protocol")
        for target in targets
        if not _in(target, "ppx.protocol")
    }
    assert not outside


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("core", ("ppx.inference", "ppx.simulators", "ppx.cli")),
        ("ppx.inference", ("ppx.cli",)),
        ("ppx.simulators", ("ppx.cli",)),
        ("ppx.simulator", ("ppx.engine",)),
        ("ppx.engine", ("ppx.simulator",)),
    ],
)
def test_lower_layers_never_import_higher_ones(layer, forbidden):
    def members(module: str) -> bool:
        if layer == "core":
            return not _in(module, "ppx.protocol", "ppx.inference", "ppx.simulators", "ppx.cli")
        return _in(module, layer)

    wrong = {
        (module, target)
        for module, targets in GRAPH.items()
        if members(module)
        for target in targets
        if _in(target, *forbidden)
    }
    assert not wrong


def test_no_import_cycle():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in GRAPH[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert not cycles


def test_no_hand_written_module_over_400_lines():
    long = {
        name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > 400
    }
    assert not long


def _annotations(tree: ast.AST) -> Iterator[ast.expr]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = node.args
            every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
            every += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
            yield from (a.annotation for a in every if a.annotation is not None)
            if node.returns is not None:
                yield node.returns
        elif isinstance(node, ast.AnnAssign):
            yield node.annotation


def _mentions_any(annotation: ast.expr) -> bool:
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        annotation = ast.parse(annotation.value, mode="eval").body
    return any(
        isinstance(node, ast.Name)
        and node.id == "Any"
        or isinstance(node, ast.Attribute)
        and node.attr == "Any"
        for node in ast.walk(annotation)
    )


def test_any_is_rare_among_annotations():
    annotations = [
        a for path in MODULES.values() for a in _annotations(ast.parse(path.read_text()))
    ]
    share = sum(map(_mentions_any, annotations)) / len(annotations)
    assert len(annotations) > 1000 and share < 0.03
