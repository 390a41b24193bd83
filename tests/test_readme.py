"""The README's Python examples run as written (against the test weights and a live server)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO

BLOCKS = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def run(code: str, weights_folder) -> subprocess.CompletedProcess:
    env = {**os.environ, "SA_VIZ_WEIGHTS_DIR": str(weights_folder), "SA_VIZ_NO_DOWNLOAD": "1"}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_there_are_examples():
    assert len(BLOCKS) == 3


@pytest.mark.parametrize("index", [1, 2], ids=["explain", "pieces"])
def test_python_api_examples(index, weights_folder):
    result = run(BLOCKS[index], weights_folder)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip()


@pytest.mark.server
def test_gradio_client_example(app_server, weights_folder):
    code = BLOCKS[0].replace("http://127.0.0.1:7860/", app_server)
    assert code != BLOCKS[0]
    result = run(code, weights_folder)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Pearson r" in result.stdout
