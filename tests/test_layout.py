"""The package's layout holds: folders in data-flow order, each importing only from its own
folder and the ones before it (every import, function-level ones included); no import loops
between modules; gradio only in `app/`; pytorch-grad-cam only in `cam/`."""

from __future__ import annotations

import ast

import pytest
from conftest import REPO

PACKAGE = REPO / "sa_viz"
FLOW = [
    "data",
    "models",
    "probes",
    "cam",
    "analyses",
    "pipeline",
    "render",
    "outputs",
    "studies",
    "app",
]
ONLY_IN = {"gradio": "app", "gradio_client": "app", "pytorch_grad_cam": "cam"}
# Modules every folder may import: they import nothing from the package themselves.
FOUNDATION = {"errors", "hooks"}  # failure stages; thread-local hooks, time limits, progress


def module_name(path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def type_checking_only(tree) -> set[int]:
    """The ids of the nodes under `if TYPE_CHECKING:` (annotations only: never run)."""
    nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            nodes |= {id(n) for n in ast.walk(node)}
    return nodes


def all_imports(path):
    """Every module `path` imports when it runs, anywhere in it (`from a import b` may import
    the module a.b: both are given)."""
    tree = ast.parse(path.read_text())
    skipped = type_checking_only(tree)
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    )
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([node.module] if node.module else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def package_imports(path) -> set[str]:
    """The package's modules `path` imports (its own excluded)."""
    found = set()
    for name in all_imports(path):
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name.startswith("sa_viz") and name != module_name(path):
            found.add(name)
    return found


def folder_of(path) -> str | None:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_folder_is_in_the_flow():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(FLOW)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_flow(path):
    folder = folder_of(path)
    for name in all_imports(path):
        top = name.split(".")[0]
        if top in ONLY_IN:
            assert folder == ONLY_IN[top], f"{path.name} imports {top}"
    if folder is None:
        return  # the CLI and the old addresses sit on top of everything
    allowed = set(FLOW[: FLOW.index(folder) + 1]) | FOUNDATION
    for name in package_imports(path):
        parts = name.split(".")
        if len(parts) > 1:
            assert parts[1] in allowed, f"{path.name} imports {name}, later in the flow"


def test_no_module_imports_itself_in_a_loop():
    """No cycle of imports between the package's modules, function-level ones included."""
    graph = {name: package_imports(path) for name, path in MODULES.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    loops = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    # a package's __init__ and the modules it re-exports form no loop of their own making
    loops = [loop for loop in loops if not _package_and_its_modules(loop)]
    assert not loops, loops


def _package_and_its_modules(loop: list[str]) -> bool:
    packages = [m for m in loop if MODULES[m].name == "__init__.py"]
    return len(packages) == 1 and all(m.startswith(packages[0]) for m in loop)


@pytest.mark.parametrize("name", sorted(FOUNDATION))
def test_foundation_modules_import_nothing_of_the_package(name):
    assert not package_imports(PACKAGE / f"{name}.py")
