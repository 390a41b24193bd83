"""End to end in a real browser: Debian's headless Chromium driven by Playwright.

Uploads a photo, waits for both CAM overlays and the gate grid, changes the CAM method, the SA
unit and the group, checks that the pictures changed, and saves screenshots (the README's come
from here: `SA_VIZ_SCREENSHOTS=assets/screenshots pytest tests/test_browser.py`).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import ASSETS, REPO
from hostile import write_all

pytestmark = [pytest.mark.browser, pytest.mark.server]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def page(app_server):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("no Chromium here (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app_server)
        yield page
        browser.close()


@pytest.fixture(scope="module")
def shots():
    """Screenshots as PNG in tests/artifacts; also as JPEG in $SA_VIZ_SCREENSHOTS if set (that is
    how the README's pictures in assets/screenshots are made)."""
    artifacts = REPO / "tests" / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    readme = os.environ.get("SA_VIZ_SCREENSHOTS")

    def take(page, name: str, full_page: bool = True) -> None:
        page.screenshot(path=str(artifacts / f"{name}.png"), full_page=full_page)
        if readme:
            Path(readme).mkdir(parents=True, exist_ok=True)
            page.screenshot(
                path=str(Path(readme) / f"{name}.jpg"),
                full_page=full_page,
                type="jpeg",
                quality=80,
            )

    return take


def image_src(page, elem_id: str) -> str:
    """The src of the picture shown in a gr.Image, once it has one."""
    locator = page.locator(f"#{elem_id} img")
    locator.first.wait_for(state="visible")
    return locator.first.get_attribute("src")


def wait_for_new_src(page, elem_id: str, old: str) -> str:
    page.wait_for_function(
        """([id, old]) => {
            const img = document.querySelector(`#${id} img`);
            return img && img.src && img.complete && img.naturalWidth > 0 && img.src !== old;
        }""",
        arg=[elem_id, old],
    )
    return image_src(page, elem_id)


def upload(page, path: Path) -> None:
    clear = page.locator("#input-image button[aria-label='Remove Image']")
    if clear.count():
        clear.first.click()
        clear.first.wait_for(state="detached")
    page.locator("#input-image input[type=file]").set_input_files(str(path))


def pick(page, elem_id: str, text: str) -> None:
    """Choose an option of a gr.Dropdown by typing part of it."""
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(text)
    page.locator("ul[role='listbox'] li", has_text=text).first.click()


def test_upload_explain_and_explore(page, shots):
    page.locator("#weights-status").get_by_text("SA-ResNet-50").first.wait_for()
    upload(page, ASSETS / "chelsea.jpg")

    cams = {slot: wait_for_new_src(page, f"cam-{slot}", "") for slot in ("a", "b")}
    for table in ("top5-a", "top5-b"):  # "283 · Persian cat", ...
        page.wait_for_function(f"document.querySelector('#{table}').innerText.includes('·')")
    assert "Pearson r" in page.locator("#cam-text").inner_text()
    sizes = page.evaluate(
        """() => ['a', 'b'].map(
            n => [document.querySelector(`#cam-${n} img`).naturalWidth,
                  document.querySelector(`#cam-${n} img`).naturalHeight])"""
    )
    assert sizes[0] == sizes[1] == [337, 224]  # same size, the whole uploaded image
    shots(page, "gradcam")

    pick(page, "cam-method", "Grad-CAM++")
    for name, old in cams.items():
        cams[name] = wait_for_new_src(page, f"cam-{name}", old)
    assert "Grad-CAM++ at layer4" in page.locator("#cam-text").inner_text()

    page.get_by_role("tab", name="Gate explorer").click()
    mosaic = wait_for_new_src(page, "gate-mosaic", "")
    detail = image_src(page, "gate-detail")
    shots(page, "gate-explorer")

    pick(page, "gate-unit", "layer1.0")
    mosaic = wait_for_new_src(page, "gate-mosaic", mosaic)
    detail = wait_for_new_src(page, "gate-detail", detail)
    assert "layer1.0" in page.locator("#gate-text").inner_text()

    number = page.locator("#gate-group input[type=number]")
    number.fill("17")
    number.press("Enter")
    detail = wait_for_new_src(page, "gate-detail", detail)
    mosaic = wait_for_new_src(page, "gate-mosaic", mosaic)  # the frame moved to group 17
    shots(page, "gate-group")


def test_any_pair_of_models_and_se_gates(page, shots):
    """SE-ResNet-50 as model A against SA-ResNet-50: both CAMs named, the difference labelled
    B − A, and the gate explorer shows either model's gates."""
    page.get_by_role("tab", name="Grad-CAM").click()
    old = image_src(page, "cam-a")
    pick(page, "model-a", "SE-ResNet-50")
    wait_for_new_src(page, "cam-a", old)
    difference = "document.querySelector('#cam-difference').innerText"
    page.wait_for_function(f"{difference}.includes('SA-ResNet-50 − SE-ResNet-50')")
    assert "SE-ResNet-50" in page.locator("#cam-a").inner_text()
    assert "blue where SE-ResNet-50 does" in page.locator("#cam-text").inner_text()
    shots(page, "pair-se-sa")
    page.get_by_role("tab", name="Gate explorer").click()
    detail = image_src(page, "gate-detail")
    pick(page, "gate-model", "SE-ResNet-50")
    wait_for_new_src(page, "gate-detail", detail)
    page.wait_for_function("document.querySelector('#gate-text').innerText.includes('SE unit')")
    shots(page, "gate-explorer-se")
    page.get_by_role("tab", name="Grad-CAM").click()
    for slot, name in (("a", "ResNet-50"), ("b", "SE-ResNet-50")):  # each pair of the three
        old = image_src(page, f"cam-{slot}")
        pick(page, f"model-{slot}", name)
        wait_for_new_src(page, f"cam-{slot}", old)
        page.wait_for_function(
            "([id, n]) => document.querySelector(`#${id}`).innerText.includes(n)",
            arg=[f"cam-{slot}", name],
        )


def test_a_bad_file_shows_a_message_and_the_page_keeps_working(page, tmp_path, shots):
    bad = tmp_path / "notes.jpg"
    bad.write_text("these are notes, not a photo")
    page.get_by_role("tab", name="Grad-CAM").click()
    upload(page, ASSETS / "astronaut.jpg")
    old = wait_for_new_src(page, "cam-a", "")
    upload(page, bad)
    page.get_by_text("not an image SA-Viz can read").first.wait_for()
    shots(page, "bad-file", full_page=False)
    upload(page, ASSETS / "coffee.jpg")
    wait_for_new_src(page, "cam-a", old)


def test_every_hostile_file_through_the_page(page, tmp_path, shots):
    """tests/hostile.py's files, uploaded as a user would: each is explained (its note shown) or
    refused with its message in the page, and the page goes on working."""
    page.get_by_role("tab", name="Grad-CAM").click()
    cam = page.evaluate("document.querySelector('#cam-a img')?.src || ''")
    upload(page, ASSETS / "rocket.jpg")
    cam = wait_for_new_src(page, "cam-a", cam)
    for path, item in write_all(tmp_path).items():
        upload(page, Path(path))
        if item.expected is None:
            cam = wait_for_new_src(page, "cam-a", cam)
            page.wait_for_function(
                "note => document.querySelector('#summary').innerText.includes(note)",
                arg=item.note,
            )
        else:
            page.get_by_text(re.compile(item.expected)).first.wait_for(timeout=30_000)
    shots(page, "hostile-last", full_page=False)
    upload(page, ASSETS / "chelsea.jpg")
    wait_for_new_src(page, "cam-a", cam)


def test_at_800_pixels_the_tables_are_readable_and_the_cams_share_a_row(page, shots):
    """At 800 px the results go under the inputs: each top-5 row is one line (no digit per
    line), and the two CAMs and their difference stand in one row at a usable size."""
    narrow = page.context.browser.new_page(viewport={"width": 800, "height": 1000})
    narrow.set_default_timeout(TIMEOUT_MS)
    narrow.goto(page.url)
    narrow.locator("#weights-status").get_by_text("SA-ResNet-50").first.wait_for()
    upload(narrow, ASSETS / "chelsea.jpg")
    wait_for_new_src(narrow, "cam-b", "")
    narrow.wait_for_function("document.querySelector('#top5-b').innerText.includes('·')")
    boxes = narrow.evaluate(
        """() => {
            const box = id => document.querySelector(id).getBoundingClientRect();
            const cell = document.querySelector('#top5-a tbody tr td:nth-child(2)');
            const line = parseFloat(getComputedStyle(cell).lineHeight) || 20;
            return {cams: ['#cam-a', '#cam-b', '#cam-difference'].map(id => [box(id).top,
                    box(id).width]), table: box('#top5-a').width, probability: cell.innerText,
                    cellLines: (cell.getBoundingClientRect().height - 16) / line};
        }"""
    )
    shots(narrow, "width-800")
    narrow.close()
    tops = {round(top) for top, _ in boxes["cams"]}
    assert len(tops) == 1, boxes  # one row
    assert all(width > 200 for _, width in boxes["cams"]), boxes
    assert boxes["table"] > 300 and boxes["cellLines"] < 1.6, boxes  # "0.988" on one line
