"""The running app against the third round of hostile cases, on the newer surfaces: damaged ZIPs
leave nothing on the server's disk, Study files that are not fresh uploads are refused with a
sentence that names the parameter, every refusal is one line in the server's log, never a
traceback, and /explain_json names the sides of its sizes. The Study tab's events are the
page's own (not in the API): called here as the page calls them, over HTTP."""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ASSETS, api_client, running_app
from gradio_client import handle_file
from hostile import damaged_zip

pytestmark = pytest.mark.server

FILE = {"_type": "gradio.FileData"}
# the study event's inputs after the files: the models, the analyses, the page's layer and method
MODELS = ["resnet50", "sa_resnet50", [], "layer4", "gradcam"]


@pytest.fixture(scope="module")
def server(weights_folder, tmp_path_factory):
    """A server of its own, with its own TMPDIR (the disk the tests measure) and log."""
    root = tmp_path_factory.mktemp("round3")
    temp, studies = root / "tmp", root / "studies"
    temp.mkdir(), studies.mkdir()
    log = root / "app.log"
    flags = ("--studies-dir", str(studies))
    with running_app(weights_folder, log, *flags, env={"TMPDIR": str(temp)}) as (url, _process):
        yield url, temp, log


def page_event(url: str, name: str, data: list) -> tuple[bool, Any]:
    """One of the page's events (`name`: its api_name) as the page calls it: joined to the
    queue by its index, answered on the session's event stream; (success, the outputs or the
    error message)."""
    config = httpx.get(f"{url}config", timeout=30).json()
    index = next(
        d.get("id", i) for i, d in enumerate(config["dependencies"]) if d.get("api_name") == name
    )
    session = uuid.uuid4().hex[:11]
    body = {"data": data, "fn_index": index, "session_hash": session, "event_data": None}
    httpx.post(f"{url}gradio_api/queue/join", json=body, timeout=30).raise_for_status()
    stream = f"{url}gradio_api/queue/data"
    with httpx.stream("GET", stream, params={"session_hash": session}, timeout=120) as answer:
        for line in answer.iter_lines():
            message = json.loads(line[5:]) if line.startswith("data:") else {}
            if message.get("msg") == "process_completed":
                output = message.get("output") or {}
                if message.get("success"):
                    return True, output["data"]
                return False, output.get("error")
    raise AssertionError("the event stream ended without an answer")


def upload(url: str, name: str, data: bytes) -> dict:
    """A file uploaded as the page uploads it; its payload."""
    answer = httpx.post(f"{url}gradio_api/upload", files={"files": (name, data)}, timeout=60)
    answer.raise_for_status()
    return {"path": answer.json()[0], "meta": FILE}


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_damaged_zips_leave_nothing_on_the_servers_disk(server):
    url, temp, log = server
    data = damaged_zip(60)  # about 120 KB that unpack to 120 MB before the bad member
    sizes = [size_of(temp)]
    for _ in range(3):
        files = [[upload(url, "set.zip", data)], *MODELS]
        ok, (_report, _zip, hint, *_state) = page_event(url, "page_study", files)
        assert ok and "Damaged ZIP" in hint["value"] and "c.png" in hint["value"], hint
        sizes.append(size_of(temp))
    grown = [b - a for a, b in itertools.pairwise(sizes)]
    # Each request keeps its upload (gradio's cache, removed after an hour): ~0.1 MB. Before:
    # +120 MB each, for as long as the server ran.
    assert all(g < 2**20 for g in grown), grown
    text = log.read_text()
    assert text.count("page run answered 'Damaged ZIP'") == 3  # one line each (`hints.on_page`)
    assert "Traceback" not in text, text[-3000:]


def test_study_files_that_are_not_fresh_uploads_get_a_sentence(server):
    url, temp, log = server
    on_server = temp / "elsewhere.zip"  # a ZIP on the server that no one uploaded
    on_server.write_bytes(damaged_zip(0))
    zip_url = "data:application/zip;base64," + base64.b64encode(on_server.read_bytes()).decode()
    fresh = upload(url, "chelsea.jpg", (ASSETS / "chelsea.jpg").read_bytes())
    refused = {
        "server path": [{"path": str(on_server), "meta": FILE}],
        "../ path": [{"path": "../" * 12 + str(on_server).lstrip("/"), "meta": FILE}],
        "untagged": [{"path": str(on_server)}],
        "data: URL": [{"path": None, "url": zip_url, "meta": FILE}],
        "bare data: URL": [{"url": zip_url}],
        "second of two": [fresh, {"path": str(on_server), "meta": FILE}],
        "not a payload": [{"path": 5, "meta": FILE}],
    }
    before = log.read_text().count("\n")
    for case, files in refused.items():
        ok, message = page_event(url, "page_study", [files, *MODELS])
        # Before: success false, error null (the page showed a bare "Error").
        assert not ok and message and "parameter `files`" in message, (case, message)
        assert str(temp) not in message, (case, message)
    added = log.read_text().splitlines()[before:]
    assert sum("refused /page_study" in line for line in added) == len(refused), added
    assert not any("Traceback" in line or "Error:" in line for line in added), added


def test_refusals_of_the_study_list_say_what_is_wanted(server):
    url, _temp, _log = server
    ok, message = page_event(url, "page_open_study", [5])
    # Before: "Study (parameter `study`) a name; got int 5." (no verb)
    assert not ok and message.startswith("Study (parameter `study`) must be"), message


def test_explain_json_names_the_sides_of_its_sizes(server):
    url, _temp, _log = server
    photo = handle_file(str(ASSETS / "chelsea.jpg"))  # 451 × 300, explained whole
    image = api_client(url).predict(photo, api_name="/explain_json")["image"]
    # Before: "original_size": [451, 300] but "input_size": [224, 337].
    assert image["original_size"] == {"width": 451, "height": 300}
    assert image["input_size"] == {"width": 337, "height": 224}
