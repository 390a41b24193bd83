"""The running app as an attacker and a crowd see it: no file outside its own space is served
or read, 8 clients at once each get their own result, the queue is bounded, a password can be
required, broken checkpoints leave it serving, and its temporary files go when it stops."""

from __future__ import annotations

import http.client
import signal
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from conftest import ASSETS, REPO, api_client, call_explain, running_app
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from sa_viz.models import list_models
from sa_viz.pipeline.explain import explain
from sa_viz.render import views

pytestmark = pytest.mark.server

SECRET = b"sa-viz-test-secret-4711"


def raw_get(base: str, path: str) -> tuple[int, bytes]:
    """GET `path` exactly as written (no client-side ../ normalisation)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def secret_image(tmp_path_factory) -> Path:
    """An image outside the app's folders, with a marker in its metadata: a server that read it
    for a caller would leak it."""
    path = tmp_path_factory.mktemp("private") / "private.png"
    image = Image.fromarray(np.full((64, 64, 3), 200, np.uint8))
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("secret", SECRET.decode())
    image.save(path, pnginfo=info)
    return path


def test_file_routes_serve_nothing_outside_the_app(app_server, secret_image):
    targets = [
        "/etc/passwd",
        str(secret_image),
        "app.py",
        str(REPO / "app.py"),
        "weights/README.md",
        "assets/../app.py",
        "../../../../../etc/passwd",
        "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "%2Fetc%2Fpasswd",
        "/proc/self/environ",
        str(secret_image.parent),
    ]
    for prefix in ("/gradio_api/file=", "/file=", "/gradio_api/file/", "/static/../../"):
        for target in targets:
            status, body = raw_get(app_server, prefix + target)
            assert status in (400, 403, 404), (prefix + target, status)
            assert SECRET not in body and b"root:" not in body and b"def main" not in body


def test_monitoring_is_off(app_server):
    for path in ("/monitoring", "/gradio_api/monitoring"):
        assert raw_get(app_server, path)[0] in (403, 404)


def test_api_payloads_naming_server_files_are_refused(app_server, secret_image):
    payloads = [
        {"path": str(secret_image), "meta": {"_type": "gradio.FileData"}},
        {"path": str(secret_image)},  # untagged: gradio's own check does not apply
        {"path": str(ASSETS / "chelsea.jpg")},
        {"path": "../" * 8 + str(secret_image)},
        {"path": None, "url": f"file://{secret_image}", "meta": {"_type": "gradio.FileData"}},
        {"path": None, "url": "http://127.0.0.1:1/x.png", "meta": {"_type": "gradio.FileData"}},
    ]
    for payload in payloads:
        summary, message = call_explain(app_server, payload)
        assert summary is None, payload
        assert str(secret_image.parent) not in message and str(REPO) not in message, message


def test_an_upload_cannot_choose_where_it_is_written(app_server, tmp_path):
    target = tmp_path / "escaped.png"
    name = "../" * 12 + str(target).lstrip("/")
    files = {"files": (name, (ASSETS / "chelsea.jpg").read_bytes(), "image/png")}
    response = httpx.post(f"{app_server}gradio_api/upload", files=files, timeout=30)
    assert response.status_code == 200
    assert not target.exists()
    (stored,) = response.json()
    assert Path(stored).resolve().name == "escaped.png" and ".." not in Path(stored).parts


def test_eight_clients_at_once_each_get_their_own_result(app_server, loaded_models, tmp_path):
    images = []
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        photo = Image.open(ASSETS / f"{name}.jpg").convert("RGB")
        for variant, picture in (("", photo), ("-flipped", photo.transpose(Image.FLIP_TOP_BOTTOM))):
            path = tmp_path / f"{name}{variant}.png"  # lossless: the server sees these pixels
            picture.save(path)
            images.append(path)
    # What each image must give: computed here, one at a time, with the same weights.
    expected = {}
    for path in images:
        result = explain(path, models=loaded_models, method="gradcam++")
        view = views.cam_view(result, colormap="jet", alpha=0.5, normalization="per model")
        expected[path] = (
            [row[0] for row in views.prediction_rows(result, "sa_resnet50")],
            view.overlays["sa_resnet50"].astype(np.float32),
        )

    barrier = threading.Barrier(len(images))
    answers, failures = {}, []

    def one_client(index: int, path: Path) -> None:
        try:
            client = api_client(app_server)
            barrier.wait(timeout=60)
            out = client.predict(handle_file(str(path)), method="gradcam++", api_name="/explain")
            unit, group = f"layer{1 + index % 4}.{index % 3}", index * 7
            gates = client.predict(unit, group, api_name="/gate_view")
            answers[path] = (out, gates, unit)
        except Exception as error:
            failures.append(f"{path.name}: {type(error).__name__}: {error}")

    threads = [threading.Thread(target=one_client, args=(i, p)) for i, p in enumerate(images)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not failures, failures
    for path, (out, gates, unit) in answers.items():
        classes = [row[0] for row in out[2]["data"]]
        assert classes == expected[path][0], path.name
        with Image.open(out[4]) as picture:
            cam = np.asarray(picture.convert("RGB"), np.float32)
        errors = {
            other.name: float(np.abs(cam - want).mean())
            for other, (_, want) in expected.items()
            if want.shape == cam.shape
        }
        assert min(errors, key=errors.get) == path.name and errors[path.name] < 3, errors
        assert unit in gates[3]


# --- a locked-down server: password, tiny queue, broken checkpoints, its own temp folder --------


@pytest.fixture(scope="module")
def locked(weights_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("locked")
    weights = root / "weights"
    weights.mkdir()
    good = (weights_folder / "resnet50-0676ba61.pth").read_bytes()
    (weights / "resnet50-0676ba61.pth").write_bytes(good[: len(good) // 3])  # truncated copy
    (weights / "sa_resnet50.pth.tar").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 64)
    temp = root / "tmp"
    temp.mkdir()
    flags = ("--auth", "tester:s3cret word", "--max-queue", "1")
    with running_app(weights, root / "app.log", *flags, env={"TMPDIR": str(temp)}) as server:
        yield server, temp


def test_a_password_is_required(locked):
    (url, _process), _temp = locked
    assert httpx.get(f"{url}config", timeout=30).status_code == 401
    assert httpx.post(f"{url}gradio_api/upload", timeout=30).status_code in (401, 403)
    with pytest.raises(Exception):  # noqa: B017 (any refusal will do)
        Client(url, verbose=False)
    with pytest.raises(Exception):  # noqa: B017
        Client(url, auth=("tester", "wrong"), verbose=False)
    client = Client(url, auth=("tester", "s3cret word"), verbose=False)
    assert "/explain" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]


def test_broken_checkpoints_leave_the_app_serving_with_a_clear_status(locked):
    (url, _process), _temp = locked
    client = Client(url, auth=("tester", "s3cret word"), verbose=False)
    status = client.predict(api_name="/weights_status")
    text = status["value"] if isinstance(status, dict) else status
    for name in ("resnet50-0676ba61.pth", "sa_resnet50.pth.tar"):
        assert (
            f"{name}: can't be read as a PyTorch checkpoint; it is truncated or corrupted" in text
        )
    assert text.count("**UNTRAINED") == len(list_models()) and str(Path(_temp).parent) not in text
    summary = client.predict(handle_file(str(ASSETS / "coffee.jpg")), api_name="/explain")[0]
    assert summary


def test_a_full_queue_answers_busy_and_the_server_recovers(locked):
    (url, _process), _temp = locked
    clients = [Client(url, auth=("tester", "s3cret word"), verbose=False) for _ in range(6)]
    jobs = [
        c.submit(handle_file(str(ASSETS / f"{n}.jpg")), method="gradcam++", api_name="/explain")
        for c, n in zip(clients, ["chelsea", "coffee", "astronaut", "rocket"] * 2, strict=False)
    ]
    outcomes = []
    for job in jobs:
        try:
            job.result(timeout=120)
            outcomes.append("ok")
        except Exception as error:
            outcomes.append(str(error))
    assert "ok" in outcomes
    assert any("queue is full" in o.lower() for o in outcomes), outcomes
    summary = clients[0].predict(handle_file(str(ASSETS / "coffee.jpg")), api_name="/explain")[0]
    assert summary


def test_stopping_removes_every_temporary_file(locked):
    (url, process), temp = locked
    client = Client(url, auth=("tester", "s3cret word"), verbose=False)
    client.predict(handle_file(str(ASSETS / "rocket.jpg")), api_name="/explain")
    client.predict(api_name="/export_zip")
    assert any(temp.rglob("*.zip")) and any(temp.rglob("rocket.jpg"))  # it did use the folder
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    left = [str(p.relative_to(temp)) for p in temp.rglob("*")]
    assert not left, left


def test_errors_do_not_stop_the_server(app_server):
    client = Client(app_server, verbose=False)
    with pytest.raises(AppError):
        client.predict(handle_file(__file__), api_name="/explain")
    with pytest.raises(AppError, match="Upload an image first"):
        client.predict(None, api_name="/explain")
    with pytest.raises(AppError, match="Explain an image first"):
        client.predict("layer1.0", 0, api_name="/gate_view")
    started = time.monotonic()
    assert client.predict(handle_file(str(ASSETS / "rocket.jpg")), api_name="/explain")[0]
    assert time.monotonic() - started < 60
