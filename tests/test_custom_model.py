"""The researcher's own model, through the file the README shows (examples/my_model.py: a CBAM
ResNet-50 and its checkpoint) and `--model-file`: explained from the command line with its
checkpoint loaded strictly, studied, and served beside a timm zoo model, its gates read by the
CBAM probe. The checkpoint is made here from fixed-seed weights, saved as a training checkpoint
(a dict holding the state dict), as a researcher's training loop saves it."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ASSETS, REPO, SEED, api_client, running_app
from gradio_client import handle_file
from PIL import Image

MODEL_FILE = REPO / "examples" / "my_model.py"
NAME = "small_cbam_net"
TITLE = "Small CBAM net (mine)"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registered():
    """The file run as `--model-file` runs it, in this process; its model and probe are
    unregistered afterwards, so other tests see the built-in registry."""
    from sa_viz.models import registry
    from sa_viz.probes import recorder

    namespace = runpy.run_path(str(MODEL_FILE), run_name="sa_viz_model_file")
    try:
        yield namespace
    finally:
        registry._BY_NAME.pop(NAME, None)
        recorder._REGISTERED.clear()
        recorder.probes.cache_clear()
        recorder.unit_layouts.cache_clear()


@pytest.fixture(scope="module")
def checkpoint(registered, tmp_path_factory):
    """Fixed-seed weights with the attention's parameters away from their initial values,
    saved as a training loop saves them (a dict holding the state dict)."""
    torch.manual_seed(SEED)
    model = registered["SmallCbamNet"]()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".attn." in name:
                parameter.normal_(0, 0.3)
    path = tmp_path_factory.mktemp("mine") / "cbam_epoch90.pth"
    torch.save({"epoch": 90, "state_dict": model.state_dict()}, path)
    return path


def test_the_probe_reads_the_modules_own_gates(registered, checkpoint):
    """The new attention type against the module's own computation: for every unit, the
    recorded gates times the unit's input are its output (x · a · s), on the checkpoint's
    weights loaded through SA-Viz's loading path."""
    from sa_viz.models.weights import load_model
    from sa_viz.probes import record_gates

    loaded = load_model(NAME, path=checkpoint)
    assert loaded.status.pretrained and "cbam_epoch90.pth" in loaded.status.message
    model = loaded.module
    seen = {}
    hooks = [
        module.register_forward_hook(
            lambda m, args, out, path=path: seen.__setitem__(path, (args[0], out))
        )
        for path, module in model.named_modules()
        if isinstance(module, registered["ChannelSpatialAttention"])
    ]
    torch.manual_seed(1)
    with torch.no_grad(), record_gates(model) as gates:
        model(torch.randn(2, 3, 160, 192))
    for hook in hooks:
        hook.remove()
    assert len(gates) == len(seen) == 8
    for path, (x, out) in seen.items():
        unit = gates[path.removesuffix(".attn")]
        assert unit.layout.kind == "MyCBAM" and unit.spatial.shape[1:3] == (1, 1)
        a = unit.channel[:, 0, :, None, None]
        s = unit.spatial[:, 0]  # (B, 1, h, w)
        torch.testing.assert_close(x * a * s, out, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(a, a.flatten()[0])  # trained-looking gates, not constants


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sa_viz", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **env},
        timeout=600,
    )


def test_explain_with_a_model_file(weights_folder, checkpoint, tmp_path):
    env = {"SA_VIZ_WEIGHTS_DIR": str(weights_folder), "SA_VIZ_SMALL_CBAM_NET": str(checkpoint)}
    result = run_cli(
        "explain",
        str(ASSETS / "chelsea.jpg"),
        "--out",
        str(tmp_path),
        "--model-file",
        str(MODEL_FILE),
        "--models",
        f"resnet50,{NAME}",
        "--unit",
        "layer3.0",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert f"{TITLE}: weights from cbam_epoch90.pth" in result.stderr
    document = json.loads((tmp_path / "chelsea.json").read_text())
    mine = document["models"][NAME]
    assert mine["title"] == TITLE
    assert len(mine["gates"]) == 8  # a unit in every block
    assert mine["gates"]["layer3.0"]["layout"]["kind"] == "MyCBAM"
    assert (tmp_path / "chelsea_gates_layer3.0.png").stat().st_size > 10_000

    broken = tmp_path / "broken.py"
    broken.write_text("import sa_viz\nsa_viz.register_model('x', 42)\n")
    wrong = run_cli(
        "explain", str(ASSETS / "chelsea.jpg"), "--out", str(tmp_path), "--model-file",
        str(broken), env=env,
    )  # fmt: skip
    assert wrong.returncode == 2
    assert f"--model-file {broken}: TypeError: register_model takes a name and a builder" in (
        wrong.stderr
    )


def test_study_with_a_model_file(weights_folder, checkpoint, tmp_path):
    import pyarrow.parquet as pq

    env = {"SA_VIZ_WEIGHTS_DIR": str(weights_folder), "SA_VIZ_SMALL_CBAM_NET": str(checkpoint)}
    result = run_cli(
        "study", str(ASSETS), "--out", str(tmp_path / "study"), "--limit", "2",
        "--model-file", str(MODEL_FILE), "--models", f"sa_resnet50,{NAME}", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = pq.read_table(tmp_path / "study" / "rows").to_pylist()
    assert sorted({row["model"] for row in rows}) == sorted(["sa_resnet50", NAME])
    ray = run_cli(
        "study", str(ASSETS), "--out", str(tmp_path / "r"), "--engine", "ray",
        "--model-file", str(MODEL_FILE), env=env,
    )  # fmt: skip
    assert ray.returncode == 2 and "--model-file works with --engine local" in ray.stderr


def test_served_beside_a_zoo_model(weights_folder, checkpoint, tmp_path):
    """`sa-viz serve --model-file ... --models ...`: the page offers the own model and the zoo
    model, and explains with them (the zoo model untrained here: no hub cache)."""
    env = {"SA_VIZ_SMALL_CBAM_NET": str(checkpoint), "HF_HUB_CACHE": str(tmp_path / "hub")}
    flags = ("--model-file", str(MODEL_FILE), "--models", "ecaresnet50d.miil_in1k")
    with running_app(weights_folder, tmp_path / "app.log", *flags, env=env) as (url, _):
        client = api_client(url)
        status = client.predict(api_name="/weights_status")
        text = status["value"] if isinstance(status, dict) else status
        assert TITLE in text and "ECA-ResNet-50-D (MIIL)" in text
        out = client.predict(
            handle_file(str(ASSETS / "chelsea.jpg")),
            model_a=NAME,
            model_b="ecaresnet50d.miil_in1k",
            gate_model=NAME,
            api_name="/explain",
        )
        with Image.open(out[3]) as picture:
            assert np.asarray(picture).shape[1] == 337  # the whole image: shorter side 224
        assert TITLE in out[6], out[6]


FOUR_CAMS = """() => ['a', 'b', 'c', 'd'].map(slot => {
    const image = document.querySelector(`#cam-${slot} img`);
    const table = document.querySelector(`#top5-${slot}`);
    return {slot, label: document.querySelector(`#cam-${slot}`).innerText,
            width: image ? image.getBoundingClientRect().width : 0,
            loaded: !!image && image.complete && image.naturalWidth > 0,
            table: table && table.offsetParent !== null ? table.innerText : ''};
})"""


@pytest.mark.browser
def test_its_gates_on_the_page_beside_three_others(weights_folder, checkpoint, tmp_path):
    """In a real browser: a link that names the own model, a zoo model and two of the test
    weights' explains an example with all four (issue 25: up to four side by side), at 1400 and
    at 800 px; the gate explorer shows the own model's unit, described in its probe's words;
    the difference compares the pair chosen on the page."""
    from test_browser import ARGS, CHROMIUM, TIMEOUT_MS, pick

    if not os.path.exists(CHROMIUM):
        pytest.skip("no Chromium here (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    env = {"SA_VIZ_SMALL_CBAM_NET": str(checkpoint), "HF_HUB_CACHE": str(tmp_path / "hub")}
    flags = ("--model-file", str(MODEL_FILE), "--models", "ecaresnet50d.miil_in1k")
    four = f"a={NAME}&b=ecaresnet50d.miil_in1k&c=resnet50&d=sa_resnet50&gates={NAME}"
    titles = [TITLE, "ECA-ResNet-50-D (MIIL)", "ResNet-50", "SA-ResNet-50"]
    with (
        running_app(weights_folder, tmp_path / "app.log", *flags, env=env) as (url, _),
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        artifacts = REPO / "tests" / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        for width in (1400, 800):
            page = browser.new_page(viewport={"width": width, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{url}?example=chelsea&{four}")
            try:
                for slot in "abcd":  # below the fold at 800 px: Chromium loads lazily
                    page.locator(f"#cam-{slot}").scroll_into_view_if_needed()
                    page.wait_for_function(
                        f"() => {{ const i = document.querySelector('#cam-{slot} img');"
                        " return i && i.complete && i.naturalWidth > 0; }"
                    )
                page.wait_for_function("document.querySelector('#top5-d').innerText.includes('·')")
                shown = page.evaluate(FOUR_CAMS)
                for found, title in zip(shown, titles, strict=True):
                    assert title in found["label"] and title in found["table"], found
                    assert found["loaded"] and found["width"] > 200, found
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                text = page.locator("#cam-text").inner_text()
                assert all(title in text for title in titles)
                pick(page, "cam-pair", f"SA-ResNet-50 − {TITLE}")
                page.locator("#cam-text").get_by_text(
                    f"red where SA-ResNet-50 looks more, blue where {TITLE} does"
                ).wait_for()
                page.locator("#cam-difference").get_by_text(f"SA-ResNet-50 − {TITLE}").wait_for()
                assert "diff=sa_resnet50" in page.url
                if width == 1400:
                    page.get_by_role("tab", name="Gate explorer").click()
                    page.locator("#gate-mosaic img").wait_for()
                    page.locator("#gate-text").get_by_text("MyCBAM unit").first.wait_for()
                    gated = page.locator("#gate-model input")
                    gated.click()  # every shown model with gates: all but ResNet-50
                    offered = page.locator("ul[role='listbox'] li").all_inner_texts()
                    offered = {o.replace("✓", "").strip() for o in offered}  # the chosen: ✓
                    assert offered == {t for t in titles if t != "ResNet-50"}, offered
                    gated.press("Escape")
            finally:
                page.screenshot(path=str(artifacts / f"four-models-{width}.png"), full_page=True)
                page.close()
        browser.close()
