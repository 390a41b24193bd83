"""The installable package: the wheel that `pip install .` builds holds every module, the example
photos, the documents' JSON Schemas and the `sa-viz` command; `sa-viz` answers."""

from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
         "-w", str(out), "-q"],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    (path,) = out.glob("sa_viz-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_holds_the_package_and_the_examples(wheel):
    names = set(wheel.namelist())
    sources = {str(p.relative_to(REPO)) for p in (REPO / "sa_viz").rglob("*.py")}
    assert sources <= names, sorted(sources - names)
    for photo in ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg", "README.md"):
        assert f"sa_viz/data/examples/{photo}" in names
    assert not any(n.startswith(("tests/", "benchmarks/", "weights/")) for n in names)
    schemas = {str(p.relative_to(REPO)) for p in (REPO / "sa_viz").rglob("*.schema.json")}
    assert "sa_viz/outputs/schemas/explanation.schema.json" in schemas
    assert schemas <= names, sorted(schemas - names)


def test_the_wheel_installs_the_command(wheel):
    (entry,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    points = configparser.ConfigParser()
    points.read_string(wheel.read(entry).decode())
    assert points["console_scripts"]["sa-viz"] == "sa_viz.cli:main"
    (meta,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    requires = [line for line in wheel.read(meta).decode().splitlines() if "Requires-Dist" in line]
    assert any("timm" in line for line in requires) and any("gradio" in line for line in requires)


def test_the_command_answers():
    result = subprocess.run(
        [sys.executable, "-m", "sa_viz", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "sa-viz explain" in result.stdout and "sa-viz serve" in result.stdout
