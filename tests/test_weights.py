"""Checkpoints in every real format, refusals with clear messages, statuses and the weights CLI."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from conftest import REPO, seeded, trained_like_sa

from sa_viz.models import resnet50, sa_resnet50, weights
from sa_viz.models.registry import SA_NET_BAIDU_CODE, SA_NET_BAIDU_URL
from sa_viz.models.weights import (
    CheckpointError,
    import_official,
    load_checkpoint,
    load_model,
    read_checkpoint,
)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_torchvision_file_loads(weights_folder):
    model = resnet50()
    info = load_checkpoint(model, weights_folder / "resnet50-0676ba61.pth")
    assert info.format == "state dict"
    assert_same_weights(model, seeded(resnet50))


def test_official_sa_net_checkpoint_loads(weights_folder):
    model = sa_resnet50()
    info = load_checkpoint(model, weights_folder / "sa_resnet50.pth.tar")
    assert "training checkpoint" in info.format and "module." in info.format
    assert info.meta == {"epoch": 100, "arch": "sa_resnet50", "best_acc": pytest.approx(77.88)}
    assert_same_weights(model, trained_like_sa())


def test_official_checkpoint_really_holds_a_gpu_tensor(weights_folder):
    """The fixture is faithful: without map_location this CPU machine can't load it."""
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine loads GPU tensors without map_location")
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(weights_folder / "sa_resnet50.pth.tar", weights_only=True)


@pytest.mark.parametrize("wrap", ["plain", "model", "state_dict", "module_prefix"])
def test_other_state_dict_layouts(tmp_path, wrap):
    source = seeded(resnet50)
    state = source.state_dict()
    obj = {
        "plain": state,
        "model": {"model": state, "epoch": 3},
        "state_dict": {"state_dict": state},
        "module_prefix": {f"module.{k}": v for k, v in state.items()},
    }[wrap]
    torch.save(obj, tmp_path / "ckpt.pth")
    model = resnet50()
    load_checkpoint(model, tmp_path / "ckpt.pth")
    assert_same_weights(model, source)


class RunsCode:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "payload": RunsCode(marker)}, path)
    with pytest.raises(CheckpointError, match="refused") as caught:
        load_checkpoint(sa_resnet50(), path)
    assert str(path) in str(caught.value)
    assert not marker.exists()


def test_mismatch_names_the_file_and_every_key(weights_folder):
    path = weights_folder / "resnet50-0676ba61.pth"
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(sa_resnet50(), path)
    error = caught.value
    assert str(path) in str(error)
    assert len(error.missing) == 96 and error.unexpected == [] and error.mismatched == []
    for key in error.missing:  # every key by name, not "and 90 more"
        assert key in str(error)
    assert "plain ResNet-50 checkpoint" in str(error)


def test_unexpected_and_misshapen_keys_are_listed(tmp_path):
    state = seeded(resnet50).state_dict()
    state["fc.weight"] = torch.zeros(10, 2048)
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(resnet50(), tmp_path / "odd.pth")
    assert caught.value.unexpected == ["extra.weight"]
    assert caught.value.mismatched == ["fc.weight (file (10, 2048), model (1000, 2048))"]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_files_give_a_clear_error(weights_folder, tmp_path, damage):
    data = (weights_folder / "resnet50-0676ba61.pth").read_bytes()
    path = tmp_path / "damaged.pth"
    path.write_bytes(
        {"truncated": data[: len(data) // 2], "garbage": b"\x00garbage" * 100, "empty": b""}[damage]
    )
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        read_checkpoint(path)


def test_missing_weights_fall_back_to_a_flagged_untrained_model(tmp_path):
    loaded = load_model("sa_resnet50", folder=tmp_path, allow_download=False)
    status = loaded.status
    assert not status.pretrained and status.untrained
    assert SA_NET_BAIDU_URL in status.how_to_get and SA_NET_BAIDU_CODE in status.how_to_get
    assert "sa_resnet50.pth or sa_resnet50.pth.tar in the weights folder" in status.message
    assert str(tmp_path) not in status.message  # statuses are shown to web users
    # the fallback is the fixed-seed initialisation, the same every time
    assert_same_weights(loaded.module, load_model("sa_resnet50", folder=tmp_path).module)


def test_corrupt_file_gives_status_not_crash(tmp_path):
    (tmp_path / "sa_resnet50.pth").write_bytes(b"not a checkpoint")
    status = load_model("sa_resnet50", folder=tmp_path).status
    assert status.untrained and "truncated or corrupted" in status.message


def test_untrained_gates_in_a_loaded_file_are_flagged(tmp_path):
    torch.save(seeded(sa_resnet50).state_dict(), tmp_path / "sa_resnet50.pth")
    status = load_model("sa_resnet50", folder=tmp_path).status
    assert status.pretrained and status.untrained and len(status.untrained_units) == 16
    assert "16 of 16 SA units" in status.message and "one constant, 0.731" in status.message


def test_env_var_and_argument_override_the_folder(weights_folder, tmp_path, monkeypatch):
    elsewhere = tmp_path / "custom.pth"
    elsewhere.write_bytes((weights_folder / "resnet50-0676ba61.pth").read_bytes())
    monkeypatch.setenv("SA_VIZ_RESNET50", str(elsewhere))
    assert load_model("resnet50", folder=tmp_path / "empty").status.path == str(elsewhere)
    monkeypatch.delenv("SA_VIZ_RESNET50")
    monkeypatch.setenv("SA_VIZ_WEIGHTS_DIR", str(weights_folder))
    assert load_model("resnet50").status.path == str(weights_folder / "resnet50-0676ba61.pth")


def test_import_writes_a_clean_state_dict(weights_folder, tmp_path):
    target, digest = import_official(weights_folder / "sa_resnet50.pth.tar", tmp_path)
    assert target == tmp_path / "sa_resnet50.pth"
    assert digest == hashlib.sha256(target.read_bytes()).hexdigest()
    state = torch.load(target, weights_only=True, map_location="cpu")
    assert set(state) == set(sa_resnet50().state_dict())  # no optimizer, no prefixes
    assert target.stat().st_size < (weights_folder / "sa_resnet50.pth.tar").stat().st_size / 1.5
    loaded = load_model("sa_resnet50", folder=tmp_path)
    assert loaded.status.path == str(target)
    assert_same_weights(loaded.module, trained_like_sa())


@pytest.fixture
def file_server(tmp_path):
    """A loopback HTTP server for the download path (the real URL is unreachable here)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_checks_the_hash(file_server, weights_folder, tmp_path, monkeypatch):
    root, url = file_server
    payload = (weights_folder / "resnet50-0676ba61.pth").read_bytes()
    (root / "r.pth").write_bytes(payload)
    spec = weights.SPECS["resnet50"]
    monkeypatch.setitem(weights.SPECS, "resnet50", dataclasses.replace(spec, url=f"{url}/r.pth"))
    dest = tmp_path / "dl"
    with pytest.raises(CheckpointError, match="does not start with the published"):
        weights.download("resnet50", dest)
    assert list(dest.iterdir()) == []  # nothing half-written left behind

    good_prefix = hashlib.sha256(payload).hexdigest()[:8]
    fixed = dataclasses.replace(spec, url=f"{url}/r.pth", hash_prefix=good_prefix)
    monkeypatch.setitem(weights.SPECS, "resnet50", fixed)
    monkeypatch.delenv("SA_VIZ_NO_DOWNLOAD", raising=False)
    loaded = load_model("resnet50", folder=dest, allow_download=True)
    assert loaded.status.pretrained and loaded.status.verified
    assert (dest / "resnet50-0676ba61.pth").read_bytes() == payload


def test_offline_download_fails_with_a_status(tmp_path, monkeypatch):
    spec = weights.SPECS["resnet50"]
    dead = dataclasses.replace(spec, url="http://127.0.0.1:9/resnet50-0676ba61.pth")
    monkeypatch.setitem(weights.SPECS, "resnet50", dead)
    monkeypatch.delenv("SA_VIZ_NO_DOWNLOAD", raising=False)
    status = load_model("resnet50", folder=tmp_path, allow_download=True).status
    assert status.untrained and "could not download" in status.message
    assert list(tmp_path.iterdir()) == []


def run_weights_cli(*args: str, env_dir: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sa_viz", "weights", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_status_tells_how_to_get_missing_weights(tmp_path):
    result = run_weights_cli("--weights-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "UNTRAINED" in result.stdout
    assert SA_NET_BAIDU_URL in result.stdout and SA_NET_BAIDU_CODE in result.stdout
    assert "sa-viz weights import" in result.stdout


def test_cli_status_and_import(weights_folder, tmp_path):
    result = run_weights_cli(
        "import", str(weights_folder / "sa_resnet50.pth.tar"), "--weights-dir", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    written = tmp_path / "sa_resnet50.pth"
    assert f"sha256 {hashlib.sha256(written.read_bytes()).hexdigest()}" in result.stdout

    result = run_weights_cli("status", "--weights-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert str(written) in result.stdout
    assert hashlib.sha256(written.read_bytes()).hexdigest() in result.stdout


def test_cli_import_of_a_wrong_file_fails_cleanly(weights_folder, tmp_path):
    result = run_weights_cli(
        "import", str(weights_folder / "resnet50-0676ba61.pth"), "--weights-dir", str(tmp_path)
    )
    assert result.returncode == 1
    assert "96 missing keys" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "sa_resnet50.pth").exists()


@pytest.mark.parametrize(
    "data",
    [b"hello", b"\x80\x02}q\x00", b"\x80\x02]q\x01(K\x01", b"PK\x03\x04x", bytes(range(7, 40))],
    ids=["text", "pickle-dict", "pickle-list", "zip-head", "bytes"],
)
def test_garbage_of_any_kind_is_named_not_raised(tmp_path, data):
    """Short garbage fails in many places inside torch.load's unpickler (b"hello": a KeyError
    from its memo); each is the same clear error, and the CLI prints one line."""
    path = tmp_path / "sa_resnet50.pth.tar"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match=r"truncated or corrupted|refused|not a state dict"):
        read_checkpoint(path)
    result = run_weights_cli("import", str(path), env_dir=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: ")
