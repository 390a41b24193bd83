"""Every file of tests/hostile.py through the running app's API (uploaded, and as a `data:` URL,
which skips gradio's own size limit and decoding) and through the CLI: each one is explained or
refused with its message, none takes long, and the server answers the next request."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ASSETS, REPO, api_client, call_explain, data_url
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from hostile import write_all

pytestmark = pytest.mark.server

SLOW = 20  # s: "a few seconds" with room for a loaded CI machine; a hang fails here


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def client(app_server):
    return api_client(app_server)


def check(item, outcome: str | None, summary: str | None) -> None:
    """`outcome`: the error message, or None with the result's summary."""
    if item.expected is None:
        assert outcome is None, f"{item.name} was refused: {outcome}"
        assert item.note in summary, (item.name, summary)
    else:
        assert outcome is not None, f"{item.name} was accepted"
        assert re.search(item.expected, outcome), (item.name, outcome)
        assert not re.search(r"(?<!\w)/[\w.-]+/", outcome), outcome  # names no server path


def works(client: Client) -> None:
    summary = client.predict(handle_file(str(ASSETS / "coffee.jpg")), api_name="/explain")[0]
    assert "predict" in summary or "disagree" in summary


def test_uploads(client, hostile_files):
    for path, item in hostile_files.items():
        started = time.monotonic()
        try:
            summary, outcome = client.predict(handle_file(path), api_name="/explain")[0], None
        except AppError as error:
            summary, outcome = None, str(error)
        assert time.monotonic() - started < SLOW, item.name
        check(item, outcome, summary)
        works(client)


def test_data_urls(app_server, client, hostile_files):
    for item in hostile_files.values():
        started = time.monotonic()
        summary, outcome = call_explain(app_server, data_url(item.data))
        assert time.monotonic() - started < SLOW, item.name
        check(item, outcome, summary)
    works(client)


def test_oversized_data_url_is_refused_before_decoding(app_server, client):
    summary, outcome = call_explain(app_server, data_url(b"\xff" * (51 * 2**20)))
    assert summary is None and "the limit is 50 MB" in outcome
    works(client)


def test_oversized_upload_is_refused(client, tmp_path):
    big = tmp_path / "big.jpg"
    big.write_bytes((ASSETS / "coffee.jpg").read_bytes() + b"\0" * (51 * 2**20))
    with pytest.raises(Exception, match=r"(?i)size|large|413"):
        client.predict(handle_file(str(big)), api_name="/explain")
    works(client)


def test_cli(hostile_files, weights_folder, tmp_path):
    out = tmp_path / "out"
    process = subprocess.run(
        [sys.executable, "-m", "sa_viz", "explain", *hostile_files, "--out", str(out)],
        cwd=REPO,
        env={**os.environ, "SA_VIZ_WEIGHTS_DIR": str(weights_folder)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 1, process.stderr  # some files are refused, the rest explained
    assert "Traceback" not in process.stderr
    errors = dict(
        line.removeprefix("error: ").split(": ", 1)
        for line in process.stderr.splitlines()
        if line.startswith("error: ")
    )
    written = dict(line.split(": ", 1) for line in process.stdout.splitlines())
    for path, item in hostile_files.items():
        if item.expected is None:
            report = next(f for f in written[path].split(", ") if f.endswith(".json"))
            notes = json.loads(Path(report).read_text())["image"]["notes"]
            assert item.note in " ".join(notes), item.name
        else:
            assert re.search(item.expected, errors[path]), (item.name, errors.get(path))
