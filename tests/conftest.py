"""Shared fixtures: fixed-seed weights saved in each real checkpoint format, real photos.

No test touches the network. The "trained-like" weights are random draws with a fixed seed, also
for the SA gate parameters (the paper's init would make every gate the constant σ(1)), saved the
way torchvision and the official SA-Net training script save theirs.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import torch

from sa_viz.models import DEFAULT_PAIR, get_model, list_models, sa_resnet50
from sa_viz.models.attention import ShuffleAttention
from sa_viz.models.registry import SA_OFFICIAL_FILE

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ["SA_VIZ_NO_DOWNLOAD"] = "1"  # tests never wait on the network

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / "sa_viz" / "data" / "examples"  # the example photos shipped with the package
SEED = 1234


def sa_modules(model: torch.nn.Module) -> list[ShuffleAttention]:
    """Every SA unit of `model`, in order."""
    return [m for m in model.modules() if isinstance(m, ShuffleAttention)]


def randomize_gates(model: torch.nn.Module, seed: int = SEED) -> torch.nn.Module:
    """Give every SA unit non-trivial gate parameters, as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for unit in sa_modules(model):
            for p in (unit.cweight, unit.sweight, unit.gn.weight):
                p.copy_(torch.randn(p.shape, generator=generator) * 0.8 + (p is unit.gn.weight))
            for p in (unit.cbias, unit.sbias, unit.gn.bias):
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
    return model


def seeded(builder, seed: int = SEED) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = builder()
    return model.eval()


def trained_like_sa(seed: int = SEED) -> torch.nn.Module:
    return randomize_gates(seeded(sa_resnet50, seed), seed)


def save_as_gpu_tensor(value: torch.Tensor):
    """A tensor that torch.save records on 'cuda:0', as a checkpoint saved during GPU training
    records `best_acc`: loading it needs map_location="cpu" on a machine without CUDA."""
    pointer = value.untyped_storage().data_ptr()

    def tagger(storage):
        return "cuda:0" if storage.data_ptr() == pointer else None

    def never(_obj, _location):
        return None

    torch.serialization.register_package(0, tagger, never)
    return tagger


def official_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """Write `model` the way SA-Net's main.py saves: epoch, arch, state_dict under DataParallel's
    `module.` prefix, best_acc (a tensor saved from the GPU) and the SGD optimizer's state."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()  # creates the momentum buffers a real checkpoint carries; weights unchanged
    optimizer.param_groups[0]["weight_decay"] = 1e-4  # the training recipe's value
    for p in model.parameters():
        p.grad = None
    best_acc = torch.tensor(77.88)
    tagger = save_as_gpu_tensor(best_acc)
    try:
        torch.save(
            {
                "epoch": 100,
                "arch": "sa_resnet50",
                "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
                "best_acc": best_acc,
                "optimizer": optimizer.state_dict(),
            },
            path,
        )
    finally:
        torch.serialization._package_registry[:] = [
            entry for entry in torch.serialization._package_registry if entry[1] is not tagger
        ]
    return path


@pytest.fixture(scope="session")
def weights_folder(tmp_path_factory) -> Path:
    """A weights folder as a user has it: torchvision's file, the official SA-Net file and the
    published SE-ResNet-50 file (a plain state dict, as Cadene's port saved it)."""
    folder = tmp_path_factory.mktemp("weights")
    for name in list_models():  # every registered model, under the file name it is published as
        spec = get_model(name).weights
        if name == "sa_resnet50":  # the official training checkpoint's format
            official_checkpoint(trained_like_sa(), folder / SA_OFFICIAL_FILE)
        else:
            torch.save(seeded(get_model(name).builder).state_dict(), folder / spec.filenames[0])
    return folder


def assert_explanation_document(document: dict) -> None:
    """`document` follows the explanation schema shipped with the package, in plain JSON (no
    NaN: JSON has none)."""
    import jsonschema

    from sa_viz.outputs.document import schema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(document), key=lambda e: e.json_path)
    assert not errors, "\n".join(f"{e.json_path}: {e.message[:300]}" for e in errors[:10])
    assert json.loads(json.dumps(document, allow_nan=False)) == document


@pytest.fixture(scope="session")
def all_models(weights_folder):
    """Every registered model, loaded from the test weights."""
    from sa_viz.models.weights import load_models

    return load_models(weights_folder, allow_download=False)


@pytest.fixture(scope="session")
def loaded_models(all_models):
    """The default pair, ResNet-50 and SA-ResNet-50."""
    return {name: all_models[name] for name in DEFAULT_PAIR}


@pytest.fixture(scope="session")
def chelsea_path() -> Path:
    return ASSETS / "chelsea.jpg"


# One TLS context for all of the tests' gradio_client requests, as the README advises: a Client
# otherwise loads the whole CA bundle for every upload, call and download (~50 ms each here).
TLS = ssl.create_default_context()


def api_client(url: str, **kwargs):
    """A gradio_client Client for `url` as the README's example makes it."""
    from gradio_client import Client

    return Client(url, verbose=False, ssl_verify=TLS, **kwargs)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(
    weights: Path, log: Path, *flags: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`sa-viz serve` as a user starts it (`python -m sa_viz serve`: this checkout), on a free
    loopback port; yields its URL and process once it answers HTTP 200, and stops it (SIGTERM,
    as `kill` does) afterwards."""
    port = free_port()
    environment = {
        **os.environ,
        "SA_VIZ_WEIGHTS_DIR": str(weights),
        "SA_VIZ_NO_DOWNLOAD": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        **(env or {}),
    }
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sa_viz", "serve", "--port", str(port), *flags],
            cwd=REPO,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    break
        except urllib.error.HTTPError:
            break  # it answers (a password-protected app answers 401 until one logs in)
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the app did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    try:
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def app_server(weights_folder, studies_folder, tmp_path_factory):
    """The app with the test weights and default settings (and a studies folder, empty until a
    test writes a study into it), shared by the server tests."""
    log = tmp_path_factory.mktemp("server") / "app.log"
    with running_app(weights_folder, log, "--studies-dir", str(studies_folder)) as (url, _):
        yield url


@pytest.fixture(scope="session")
def studies_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("studies")


# The explain endpoint's inputs after the image, at their defaults (a raw HTTP call sends all).
DEFAULTS = [
    "whole image",
    "each model's own top-1",
    "gradcam",
    "layer4",
    "jet",
    0.5,
    "per model",
    "layer3.0",
    0,
    "unit range",
    "resnet50",
    "sa_resnet50",
    "sa_resnet50",
]


def call_explain(base: str, image: dict) -> tuple[str | None, str | None]:
    """POST /gradio_api/call/explain as any HTTP client can; (summary, error message)."""
    api = f"{base}gradio_api/call/explain"
    event = httpx.post(api, json={"data": [image, *DEFAULTS]}, timeout=60).json()["event_id"]
    lines = httpx.get(f"{api}/{event}", timeout=120).text.strip().splitlines()
    kind, payload = lines[-2], json.loads(lines[-1].removeprefix("data: "))
    if kind == "event: error":
        return None, str(payload["error"] if isinstance(payload, dict) else payload)
    return payload[0], None


def data_url(data: bytes) -> dict:
    url = "data:application/octet-stream;base64," + base64.b64encode(data).decode()
    return {"url": url, "meta": {"_type": "gradio.FileData"}}


# The independent SA-ResNet-50 (torch.nn.functional from a state dict) that the official
# checkpoint and the server's folded models are checked against.
SA_UNIT_NAMES_REF = tuple(f"layer{s}.{b}" for s, d in enumerate((3, 4, 6, 3), 1) for b in range(d))


def functional_sa_resnet50(state: dict[str, torch.Tensor], x: torch.Tensor):
    """SA-ResNet-50 written from DESIGN.md with torch.nn.functional only, straight from a state
    dict: an implementation independent of our modules. Returns logits and every unit's gates."""
    import torch.nn.functional as F

    def bn(t, name):
        return F.batch_norm(
            t,
            state[f"{name}.running_mean"],
            state[f"{name}.running_var"],
            state[f"{name}.weight"],
            state[f"{name}.bias"],
            training=False,
            eps=1e-5,
        )

    def sa(t, name, gates):
        b, ch, h, w = t.shape
        p = {k: state[f"{name}.{k}"] for k in ("cweight", "cbias", "sweight", "sbias")}
        groups = t.reshape(b * 64, ch // 64, h, w)
        x1, x2 = groups[:, : ch // 128], groups[:, ch // 128 :]
        gc = torch.sigmoid(p["cweight"] * x1.mean((2, 3), keepdim=True) + p["cbias"])
        normed = F.group_norm(x2, x2.shape[1], state[f"{name}.gn.weight"], state[f"{name}.gn.bias"])
        gs = torch.sigmoid(p["sweight"] * normed + p["sbias"])
        gates[name.removesuffix(".sa")] = (gc.reshape(b, 64, -1), gs.reshape(b, 64, *gs.shape[1:]))
        out = torch.cat([x1 * gc, x2 * gs], 1).reshape(b, ch, h, w)
        return out.reshape(b, 2, ch // 2, h, w).transpose(1, 2).reshape(b, ch, h, w)

    gates: dict = {}
    t = F.relu(bn(F.conv2d(x, state["conv1.weight"], stride=2, padding=3), "bn1"))
    t = F.max_pool2d(t, 3, 2, 1)
    for stage, depth in enumerate((3, 4, 6, 3), 1):
        for block in range(depth):
            n = f"layer{stage}.{block}"
            stride = 2 if block == 0 and stage > 1 else 1
            out = F.relu(bn(F.conv2d(t, state[f"{n}.conv1.weight"]), f"{n}.bn1"))
            out = F.conv2d(out, state[f"{n}.conv2.weight"], stride=stride, padding=1)
            out = F.relu(bn(out, f"{n}.bn2"))
            out = sa(bn(F.conv2d(out, state[f"{n}.conv3.weight"]), f"{n}.bn3"), f"{n}.sa", gates)
            if f"{n}.downsample.0.weight" in state:
                t = bn(
                    F.conv2d(t, state[f"{n}.downsample.0.weight"], stride=stride),
                    f"{n}.downsample.1",
                )
            t = F.relu(out + t)
    logits = F.linear(t.mean((2, 3)), state["fc.weight"], state["fc.bias"])
    return logits, gates


def matches_functional(
    model, path, gate_rtol: float, gate_atol: float, then=lambda model: model
) -> None:
    """`model`, loaded from `path` (and passed through `then`), gives the logits (within 1e-4)
    and every gate (within the given tolerances) of `functional_sa_resnet50` fed the same
    file's tensors."""
    from sa_viz.models.weights import load_checkpoint, read_checkpoint
    from sa_viz.probes import record_gates

    load_checkpoint(model, path)
    model = then(model)
    state, _ = read_checkpoint(path)
    x = torch.randn(2, 3, 160, 192, generator=torch.Generator().manual_seed(3))
    with torch.no_grad(), record_gates(model) as gates:
        logits = model(x)
        expected_logits, expected_gates = functional_sa_resnet50(state, x)
    torch.testing.assert_close(logits, expected_logits, rtol=1e-4, atol=1e-4)
    assert set(gates) == set(expected_gates) == set(SA_UNIT_NAMES_REF)
    for name, (channel, spatial) in expected_gates.items():
        torch.testing.assert_close(gates[name].channel, channel, rtol=gate_rtol, atol=gate_atol)
        torch.testing.assert_close(gates[name].spatial, spatial, rtol=gate_rtol, atol=gate_atol)
