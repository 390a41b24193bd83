"""The package's layout holds: folders in data-flow order, each importing only from its own
folder and the ones before it (at module level); gradio only in `app/`; pytorch-grad-cam only in
`cam/`."""

from __future__ import annotations

import ast

import pytest
from conftest import REPO

PACKAGE = REPO / "sa_viz"
FLOW = ["data", "models", "probes", "cam", "analyses", "pipeline", "render", "outputs", "app"]
ONLY_IN = {"gradio": "app", "gradio_client": "app", "pytorch_grad_cam": "cam"}
# Modules every folder may import: they import nothing from the package themselves.
FOUNDATION = {"errors"}


def module_imports(path):
    """The modules `path` imports at module level (not inside functions)."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def all_imports(path):
    """Every module `path` imports anywhere."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


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
    for name in module_imports(path):
        parts = name.split(".")
        if parts[0] == "sa_viz" and len(parts) > 1:
            assert parts[1] in allowed, f"{path.name} imports {name}, later in the flow"


@pytest.mark.parametrize("name", sorted(FOUNDATION))
def test_foundation_modules_import_nothing_of_the_package(name):
    imported = list(all_imports(PACKAGE / f"{name}.py"))
    assert not [m for m in imported if m.split(".")[0] == "sa_viz"], imported
