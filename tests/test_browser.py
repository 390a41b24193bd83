"""End to end in a real browser: Debian's headless Chromium driven by Playwright.

Uploads a photo, waits for both CAM overlays and the gate grid, changes the CAM method, the SA
unit and the group, checks that the pictures changed, and saves screenshots (the README's come
from here: `SA_VIZ_SCREENSHOTS=assets/screenshots pytest tests/test_browser.py`).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from conftest import ASSETS, REPO
from hostile import write_all
from PIL import Image

from sa_viz.app.analyses_tab import CHART_LEFT, CHART_RIGHT
from sa_viz.studies import run_study

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
    box.press("Control+a")
    box.press_sequentially(text)  # typed: the list filters as a person types
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
    assert sizes[0] == sizes[1] and sizes[0][0] == 337  # the whole image, over its colour bar
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
    narrow.goto(page.url.split("?")[0])  # the page's address carries the last test's view
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


# --- issue 15: the page as a researcher lives in it, at 800 and 1400 px ----------------------

WIDTHS = [800, 1400]


@pytest.fixture(params=WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def at_width(request, page):
    """A fresh page (a session of its own) at 800 or 1400 px, its models' status shown."""
    fresh = page.context.browser.new_context(viewport={"width": request.param, "height": 1000})
    tab = fresh.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    tab.goto(page.url.split("?")[0])
    tab.locator("#weights-status").get_by_text("SA-ResNet-50").first.wait_for()
    tab.width = request.param
    yield tab
    fresh.close()


def visible_hints(page) -> dict[str, str]:
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[id^=hint-]')]
            .filter(e => e.offsetParent !== null && e.innerText.trim())
            .map(e => [e.id, e.innerText.trim()]))"""
    )


def hint_shown(page, place: str, shown: bool = True) -> None:
    """Wait until the hint at `place` is shown (or gone: gradio may remove a hidden one)."""
    page.wait_for_function(
        """([id, shown]) => {
            const e = document.getElementById(id);
            return (!!e && e.offsetParent !== null && e.innerText.trim() !== '') === shown;
        }""",
        arg=[f"hint-{place}", shown],
    )


def explained(page, example: str = "chelsea.jpg") -> str:
    upload(page, ASSETS / example)
    return wait_for_new_src(page, "cam-a", "")


def test_a_failure_keeps_the_results_and_says_why_beside_the_control(at_width, shots):
    page = at_width
    page.locator("#explain").click()  # no image yet: one hint, beside the image
    hint_shown(page, "image")
    assert list(visible_hints(page)) == ["hint-image"]
    pick(page, "colormap", "viridis")  # another empty-state action: still that one hint
    page.wait_for_timeout(1500)
    assert list(visible_hints(page)) == ["hint-image"]
    cam = explained(page)
    hint_shown(page, "image", False)
    box = page.locator("#target input")
    box.click()
    box.press("Control+a")
    box.press_sequentially("no such class")
    box.press("Enter")
    hint_shown(page, "target")
    assert "Unknown class" in visible_hints(page)["hint-target"]
    assert image_src(page, "cam-a") == cam  # the good result stays
    assert page.locator("#cam-a .error, #top5-a .error").count() == 0  # no "Error" badges
    shots(page, f"hint-target-{page.width}", full_page=False)
    pick(page, "target", "281: tabby")
    wait_for_new_src(page, "cam-a", cam)
    hint_shown(page, "target", False)
    assert visible_hints(page) == {}


def test_the_banner_is_short(at_width):
    height = at_width.locator("#weights-status").bounding_box()["height"]
    assert height < 110, height  # one line per model and a fold (was ~170 px of red text)


def test_a_long_method_holds_up_nobody_and_reports_its_progress(page, shots):
    """Two users at once: one runs ScoreCAM, the other's Grad-CAM and view updates arrive
    meanwhile (they waited behind it before: 29 s for a Grad-CAM of 0.9 s)."""
    browser = page.context.browser
    pages = []
    for _ in range(2):
        tab = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        tab.set_default_timeout(TIMEOUT_MS)
        tab.goto(page.url.split("?")[0])
        tab.locator("#weights-status").get_by_text("SA-ResNet-50").first.wait_for()
        pages.append(tab)
    slow, quick = pages
    slow_cam = explained(slow, "rocket.jpg")
    pick(slow, "cam-method", "ScoreCAM")
    slow.get_by_text(re.compile(r"ScoreCAM: .* \d+(\.\d)?%")).first.wait_for()  # real progress
    shots(slow, "scorecam-progress", full_page=False)
    quick_cam = explained(quick, "coffee.jpg")
    pick(quick, "colormap", "viridis")
    wait_for_new_src(quick, "cam-a", quick_cam)
    assert image_src(slow, "cam-a") == slow_cam  # ScoreCAM is still running
    wait_for_new_src(slow, "cam-a", slow_cam)
    assert "ScoreCAM at layer4" in slow.locator("#cam-text").inner_text()
    for tab in pages:
        tab.context.close()


def displayed_scale(page, elem_id: str) -> float:
    return page.evaluate(
        "id => { const i = document.querySelector(`#${id} img`); "
        "return i.getBoundingClientRect().width / i.naturalWidth; }",
        elem_id,
    )


@pytest.mark.parametrize("model", ["SA-ResNet-50", "SE-ResNet-50"])
def test_gate_pictures_are_legible_at_their_displayed_size(at_width, model, shots):
    """The gate pictures are shown at ≥ 4/5 of their size, so their smallest (11-px) labels stay
    ~9 px on screen (the channel heatmap was drawn at half size beside the group view: 5–7 px;
    the grid and the group view at 0.56)."""
    page = at_width
    explained(page)
    if model == "SE-ResNet-50":
        old = image_src(page, "cam-a")
        pick(page, "model-a", model)
        wait_for_new_src(page, "cam-a", old)
    page.get_by_role("tab", name="Gate explorer").click()
    if model == "SE-ResNet-50":
        detail = image_src(page, "gate-detail")
        pick(page, "gate-model", model)
        wait_for_new_src(page, "gate-detail", detail)
    for picture in ("gate-mosaic", "gate-channel", "gate-detail", "gate-summary"):
        image_src(page, picture)
        assert displayed_scale(page, picture) >= 0.8, picture
    shots(page, f"gates-{model}-{page.width}")


def test_labels_never_cover_the_pictures_and_the_difference_follows_the_view(at_width):
    page = at_width
    explained(page)
    boxes = page.evaluate(
        """() => ['cam-a', 'cam-b', 'cam-difference'].map(id => {
            const block = document.getElementById(id);
            const label = block.querySelector('label').getBoundingClientRect();
            const buttons = block.querySelector('.icon-button-wrapper').getBoundingClientRect();
            const image = block.querySelector('img').getBoundingClientRect();
            return [label.bottom, buttons.bottom, image.top];
        })"""
    )
    for label, buttons, top in boxes:
        assert label <= top + 1 and buttons <= top + 1, boxes
    difference = image_src(page, "cam-difference")
    opacity = page.locator("#opacity input[type=number]")
    opacity.fill("0.9")
    opacity.press("Enter")  # a typed opacity applies on Enter
    difference = wait_for_new_src(page, "cam-difference", difference)
    page.get_by_label("joint").check()
    difference = wait_for_new_src(page, "cam-difference", difference)
    page.locator("#opacity input[type=range]").focus()
    page.keyboard.press("ArrowLeft")  # and the arrow keys too
    wait_for_new_src(page, "cam-difference", difference)
    assert "joint scale" in page.locator("#cam-text").inner_text()


def test_linked_views_and_a_shared_link(at_width, shots):
    page = at_width
    page.goto(page.url.split("?")[0] + "?example=coffee&class=hot%20dog&layer=layer3")
    cam = wait_for_new_src(page, "cam-a", "")
    assert "hotdog (934" in page.locator("#cam-text").inner_text()
    assert "▶ 934 · hotdog" in page.locator("#top5-a").inner_text()  # the target, marked
    # Typing a synonym with a space finds the class ("hot dog" found nothing before).
    box = page.locator("#target input")
    box.click()
    box.press("Control+a")
    box.press_sequentially("red hot")
    page.locator("ul[role='listbox'] li", has_text="hotdog").first.wait_for()
    box.press("Escape")
    # A click on a prediction makes it the target, marked in the table.
    unmarked = page.locator("#top5-b").get_by_text(re.compile(r"^\d+ · "))
    chosen = next(text for text in unmarked.all_inner_texts() if text)
    page.locator("#top5-b").get_by_text(chosen, exact=True).first.click()
    cam = wait_for_new_src(page, "cam-a", cam)
    page.wait_for_function(
        "t => document.querySelector('#top5-b').innerText.includes('▶ ' + t)", arg=chosen
    )
    page.get_by_role("tab", name="Gate explorer").click()
    mosaic = page.locator("#gate-mosaic img")
    detail = image_src(page, "gate-detail")
    image_src(page, "gate-mosaic")
    natural = page.evaluate("() => document.querySelector('#cam-a img').naturalWidth")
    box = mosaic.bounding_box()
    width = page.evaluate("() => document.querySelector('#gate-mosaic img').naturalWidth")
    scale = box["width"] / width
    tile = round(natural * 64 / 224)  # the tiles' width: the coffee photo is landscape
    mosaic.click(position={"x": (2 * (tile + 2) + tile / 2) * scale, "y": (28 + 32) * scale})
    wait_for_new_src(page, "gate-detail", detail)
    assert page.locator("#gate-group input[type=number]").input_value() == "2"
    page.wait_for_function("location.search.includes('group=2')")
    shots(page, f"linked-{page.width}", full_page=False)
    link = page.url
    page.reload()
    wait_for_new_src(page, "cam-a", "")
    page.get_by_role("tab", name="Gate explorer").click()
    assert page.locator("#gate-group input[type=number]").input_value() == "2"
    assert page.url == link and "example=coffee" in link and "layer=layer3" in link


def test_a_study_from_the_page_and_one_from_the_studies_folder(
    at_width, studies_folder, loaded_models, tmp_path, shots
):
    """Upload a ZIP of class folders, run the study, read its report on the page and get it as
    a ZIP; then open a study the CLI wrote into the server's studies folder."""
    page = at_width
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name, folder in (("chelsea.jpg", "n02123045"), ("coffee.jpg", "967")):
            for i in range(2):
                z.write(ASSETS / name, f"{folder}/{i}-{name}")
    if not (studies_folder / "cli-study" / "study.json").exists():
        run_study(ASSETS, studies_folder / "cli-study", loaded_models, workers=0, progress=False)
    page.goto(page.url)  # the list of studies is read when the page opens
    page.get_by_role("tab", name="Study").click()
    page.locator("#study-files input[type=file]").set_input_files(str(archive))
    page.locator("#study-files").get_by_text("set.zip").wait_for()
    page.locator("#study-run").click()
    report = page.locator("#study-report")
    report.get_by_text("4 of 4 images studied (4 labelled)").wait_for()
    for heading in ("Accuracy", "Per class", "Where the two models look", "gates across depth"):
        assert report.get_by_text(heading).count() >= 1, heading
    assert report.locator("img").count() >= 4
    link = page.locator("#study-zip a[download='study.zip']")
    link.wait_for()
    data = page.request.get(link.get_attribute("href")).body()
    with zipfile.ZipFile(io.BytesIO(data)) as z:  # what the download gives
        assert {"report.html", "study.json", "figures/agreement.png"} <= set(z.namelist())
    assert page.locator("#hint-study").is_hidden()
    shots(page, f"study-{page.width}")
    browse_the_study(page, shots)
    pick(page, "study-open", "cli-study")
    page.locator("#study-open-button").click()
    report.get_by_text("4 of 4 images studied (0 labelled)").wait_for()  # the 4 examples
    # The browser follows: the CLI's study, its images read where the study read them
    counter = page.locator("#browse-counter")
    page.wait_for_function(
        "document.querySelector('#browse-counter').innerText.startsWith('Images 1–4 of 4 ·')"
    )
    page.locator("#browse-thumbnails img[alt='rocket.jpg']").click()
    page.wait_for_function(
        "document.querySelector('#input-image img')?.src.endsWith('/rocket.jpg')"
    )
    assert page.get_by_role("tab", name="Grad-CAM").get_attribute("aria-selected") == "true"
    assert page.locator("#target input").input_value() == "each model's own top-1"  # unlabelled
    assert counter.count() == 1


def browse_the_study(page, shots) -> None:
    """Issue 28: the study's images in a table under its report's download: a class chosen, a
    sort, then a click on a row opens that image in the explorer, with its class."""
    counter = page.locator("#browse-counter")
    counter.get_by_text("Images 1–4 of 4").wait_for()
    pick(page, "browse-class", "967: espresso")
    counter.get_by_text("Images 1–2 of 2 (of 4)").wait_for()
    pick(page, "browse-sort", "image")
    page.locator("#browse-descending input").check()
    first = page.locator("#browse-table [data-testid='cell-0-0']").first
    page.wait_for_function(
        "document.querySelector(\"#browse-table [data-testid='cell-0-0']\")"
        ".innerText.startsWith('967/1-')"
    )
    page.locator("#browse-thumbnails img").nth(1).wait_for()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.width, width  # the table scrolls inside itself
    shots(page, f"study-browser-{page.width}")
    old = image_src(page, "cam-a") if page.locator("#cam-a img").count() else ""
    first.click()
    wait_for_new_src(page, "cam-a", old)
    assert page.get_by_role("tab", name="Grad-CAM").get_attribute("aria-selected") == "true"
    assert "967: espresso" in page.locator("#target input").input_value()
    assert page.locator("#input-image img").get_attribute("src").endswith("/1-coffee.jpg")
    shots(page, f"study-browser-opened-{page.width}", full_page=False)
    page.get_by_role("tab", name="Study").click()
    # The map of the filtered images (espresso's two, under both models)
    page.get_by_text("Map of the filtered images").click()
    pick(page, "map-model", "every model")
    page.locator("#map-draw").click()
    page.locator("#map-text").get_by_text("4 points").wait_for()
    page.locator("#browse-map img").wait_for()
    map_box = page.locator("#browse-map-box").first
    map_box.screenshot(path=str(REPO / "tests" / "artifacts" / f"map-{page.width}.png"))


def test_a_drawn_box_the_analyses_and_a_knockout_bar_that_opens_its_group(page, shots):
    page.goto(page.url.split("?")[0] + "?example=chelsea")
    page.locator("#cam-a img").wait_for()
    page.get_by_role("tab", name="Analyses").click()
    # Two clicks on what the models see (the photo, 451 × 300, whole: 337 × 224) give the box
    # in the photo's pixels, and the picture shows it.
    picture = page.locator("#box-picture img")
    typed = page.locator("#faith-box textarea")
    for fx, fy, count in ((0.1, 0.1, 2), (0.8, 0.9, 4)):
        before = picture.get_attribute("src")
        size = picture.bounding_box()
        picture.click(position={"x": size["width"] * fx, "y": size["height"] * fy})
        page.wait_for_function(
            f"document.querySelector('#faith-box textarea').value.split(' ').length == {count}"
        )
        page.wait_for_function(  # redrawn: the corner's cross, then the box
            f"document.querySelector('#box-picture img')?.src !== {before!r}"
        )
    x0, y0, x1, y1 = map(float, typed.input_value().split())
    assert (x0, y0, x1, y1) == pytest.approx((45, 30, 361, 270), abs=3)
    page.locator("#faith-run").click()
    text = page.locator("#faith-text")
    text.get_by_text("SA-ResNet-50 (class").wait_for()
    assert text.inner_text().count("insertion area") == 2  # both models
    assert text.inner_text().count("the box,") == 2
    # Every registered analysis without a panel of its own, ticked: ROAD.
    page.locator("#chosen-run").click()
    table = page.locator("#chosen-table")
    page.wait_for_function(
        "document.querySelector('#chosen-table').innerText.includes('road_morf')"
    )
    assert table.inner_text().count("↑") == 2 and table.inner_text().count("↓") == 1
    page.locator("#knock-run").click()
    page.locator("#knock-text").get_by_text("The whole unit knocked out").wait_for()
    page.locator("#knock-cams img").wait_for()
    shots(page, "analyses-1440")
    # Another unit in the explorer: a click on a bar still opens the chart's unit's group.
    page.get_by_role("tab", name="Gate explorer").click()
    charted = page.locator("#gate-unit input").input_value()
    pick(page, "gate-unit", "layer1.0")
    page.get_by_role("tab", name="Analyses").click()
    chart = page.locator("#knock-plot img")
    box = chart.bounding_box()
    # The chart's axes span CHART_LEFT to CHART_RIGHT of its width: bar 10's middle.
    middle = CHART_LEFT + 10.5 / 64 * (CHART_RIGHT - CHART_LEFT)
    chart.click(position={"x": box["width"] * middle, "y": box["height"] / 2})
    # The click opens the Gate explorer tab itself (before: set it, hidden, with no sign)
    page.wait_for_function(
        "() => document.querySelector('#gate-group input[type=number]')?.value === '10'"
    )
    page.locator("#gate-mosaic img").wait_for(state="visible")
    selected = page.locator("#result-tabs [role=tab][aria-selected=true]").inner_text()
    assert "Gate explorer" in selected
    assert page.locator("#gate-unit input").input_value() == charted != "layer1.0"
    assert page.locator("#hint-analyses").count() == 0 or page.locator("#hint-analyses").is_hidden()


def test_the_tab_bar_never_loses_a_tab(at_width):
    """Clicking every tab, in any order, leaves the bar as it was: one button per tab (issue 27:
    a click on Export showed "Export · Export" and Study was gone until a reload)."""
    page = at_width
    labels = ["Grad-CAM", "Gate explorer", "Analyses", "Export", "Study"]

    def bar() -> list[str]:
        return [b.inner_text() for b in page.locator("[role=tablist] > button[role=tab]").all()]

    assert bar() == labels
    for name in ["Export", "Study", "Analyses", "Export", "Gate explorer", "Study", "Grad-CAM"]:
        page.locator("[role=tablist] > button[role=tab]", has_text=name).first.click()
        page.wait_for_timeout(300)
        assert bar() == labels, (name, bar())
        selected = page.locator("[role=tablist] > button[aria-selected=true]")
        assert selected.count() == 1 and selected.inner_text() == name


# --- issue 27, round two: the image box, the controls, the panels and the address agree ------


def test_a_refused_upload_leaves_the_explained_image_in_its_box(at_width, tmp_path, shots):
    """A 144-megapixel PNG after a photo: refused, with the note on screen; the image box shows
    the explained photo again, so the next control change explains it (it sent the refused
    picture again, refused, while the layer control said layer3 and the panels layer4), and the
    address still names the example."""
    page = at_width
    huge = tmp_path / "huge.png"
    Image.new("RGB", (12000, 12000), (200, 120, 60)).save(huge)  # the limit: 50 megapixels
    page.goto(page.url.split("?")[0] + "?example=chelsea")
    cam = wait_for_new_src(page, "cam-a", "")
    # A window of a small laptop: the image box is on screen, what is under it is not.
    page.set_viewport_size({"width": page.width, "height": 640})
    page.evaluate("window.scrollTo(0, 0)")
    upload(page, huge)
    hint_shown(page, "image")
    page.wait_for_function(  # the explained photo (451 × 300) in the box again
        "document.querySelector('#input-image img')?.naturalWidth === 451", timeout=30_000
    )
    note = visible_hints(page)["hint-image"]
    assert "144 megapixels" in note and "still shows the image explained before" in note
    page.wait_for_function(  # the note is scrolled into the window
        """() => { const box = document.getElementById('hint-image').getBoundingClientRect();
                   return box.top >= 0 && box.bottom <= window.innerHeight; }""",
        timeout=10_000,
    )
    assert "example=chelsea" in page.url
    assert image_src(page, "cam-a") == cam
    shots(page, f"refused-upload-{page.width}", full_page=False)
    page.locator("#cam-layer").get_by_label("layer3", exact=True).check()
    wait_for_new_src(page, "cam-a", cam)
    assert "at layer3" in page.locator("#cam-text").inner_text()
    hint_shown(page, "image", False)
    assert visible_hints(page) == {}
    page.wait_for_function("location.search.includes('layer=layer3')")
    assert "example=chelsea" in page.url


def test_a_link_names_its_models_at_once_and_keeps_its_view(at_width, shots):
    """A link's model A names the tables and the CAMs before any explanation; its CAM scale and
    opacity are in it; a class typed by name is written in the list's words; and an unknown
    class, refused, leaves the address naming the class the panels show."""
    page = at_width
    base = page.url.split("?")[0]
    page.goto(base + "?a=se_resnet50&cam_scale=joint&opacity=0.7")
    for elem_id in ("top5-a", "cam-a"):
        page.wait_for_function(
            "id => document.getElementById(id)?.innerText.includes('SE-ResNet-50')",
            arg=elem_id,
            timeout=30_000,
        )
    assert page.get_by_label("joint").is_checked()
    assert page.locator("#opacity input[type=number]").input_value() == "0.7"
    page.goto(base + "?example=chelsea&a=se_resnet50&cam_scale=joint&opacity=0.7")
    cam = wait_for_new_src(page, "cam-a", "")
    assert "joint scale" in page.locator("#cam-text").inner_text()
    box = page.locator("#target input")
    box.click()
    box.press("Control+a")
    box.press_sequentially("tabby")
    box.press("Enter")
    cam = wait_for_new_src(page, "cam-a", cam)
    page.wait_for_function("document.querySelector('#target input').value.startsWith('281: ')")
    page.wait_for_function("location.search.includes('class=281')")
    box.click()
    box.press("Control+a")
    box.press_sequentially("no such class")
    box.press("Enter")
    hint_shown(page, "target")
    page.wait_for_timeout(500)  # the address follows the controls as they change
    assert "tabby (281" in page.locator("#cam-text").inner_text()
    query = page.evaluate("location.search")
    wanted = ("class=281", "a=se_resnet50", "cam_scale=joint", "opacity=0.7", "example=chelsea")
    for kept in wanted:
        assert kept in query, query
    shots(page, f"link-view-{page.width}", full_page=False)
    page.reload()  # the link restores the view
    wait_for_new_src(page, "cam-a", "")
    assert page.get_by_label("joint").is_checked()
    assert page.locator("#opacity input[type=number]").input_value() == "0.7"
    assert "tabby (281" in page.locator("#cam-text").inner_text()


@pytest.mark.parametrize("at_width", [1400], ids=["1400px"], indirect=True)
def test_a_drawn_box_gives_its_localisation_at_once(at_width, shots):
    """Two clicks draw the box, and its pointing game, mass inside and IoU for both models
    appear beside it, without "Compute deletion and insertion" (~15 s) and with nothing else
    computed."""
    page = at_width
    page.goto(page.url.split("?")[0] + "?example=chelsea")
    wait_for_new_src(page, "cam-a", "")
    page.get_by_role("tab", name="Analyses").click()
    picture = page.locator("#box-picture img")
    picture.wait_for()
    for fx, fy in ((0.1, 0.1), (0.8, 0.9)):
        size = picture.bounding_box()
        picture.click(position={"x": size["width"] * fx, "y": size["height"] * fy})
    page.wait_for_function(
        "document.querySelector('#box-text')?.innerText.split('of its mass inside').length === 3",
        timeout=15_000,
    )
    text = page.locator("#box-text").inner_text()
    for title in ("ResNet-50", "SA-ResNet-50"):
        assert re.search(rf"{title} \(class \d+\): its peak is (inside|outside) the box", text)
    assert text.count("IoU") == 2
    assert page.locator("#faith-text").inner_text().strip() == ""  # nothing else was computed
    shots(page, "box-localisation-1400", full_page=False)


@pytest.mark.parametrize("at_width", [1400], ids=["1400px"], indirect=True)
def test_the_analyses_buttons_and_panels_of_an_earlier_explanation(at_width, shots):
    """The Compute buttons look like the page's main button (they looked disabled); a chart
    computed for one class is marked, and faded, once the page explains another, and unmarked
    when it shows its class again. (The knockout of SE-ResNet-50's one-group unit: every panel
    is marked alike, and this one computes in a few seconds on a busy machine.)"""
    page = at_width
    page.goto(page.url.split("?")[0] + "?example=chelsea&b=se_resnet50&unit=layer4.0")
    wait_for_new_src(page, "cam-a", "")
    page.get_by_role("tab", name="Analyses").click()
    explain = page.evaluate("getComputedStyle(document.getElementById('explain')).backgroundImage")
    for button in ("faith-run", "chosen-run", "knock-run"):
        assert "primary" in page.locator(f"#{button}").get_attribute("class")
        look = page.evaluate(
            "id => getComputedStyle(document.getElementById(id)).backgroundImage", button
        )
        assert look == explain, (button, look, explain)
    page.locator("#knock-run").click()
    page.locator("#knock-text").get_by_text("The whole unit knocked out").wait_for()
    page.locator("#knock-plot img").wait_for()
    note = page.locator("#stale-knockout")
    assert note.is_hidden()
    pick(page, "target", "281: tabby")  # the CAMs (in their tab) follow, then the mark
    note.get_by_text("Of an earlier explanation").wait_for()
    assert "each model's own top-1, now class 281" in note.inner_text()
    faded = "getComputedStyle(document.querySelector('#knock-plot img')).opacity"
    page.wait_for_function(f"{faded} < 0.5")
    assert page.locator("#stale-faithfulness").is_hidden()  # never computed: nothing to mark
    note.scroll_into_view_if_needed()
    shots(page, "analyses-stale-1400", full_page=False)
    pick(page, "target", "each model's own top-1")  # the chart's explanation again
    note.wait_for(state="hidden")
    page.wait_for_function(f"{faded} === '1'")


SHOWN_CLASSES = """() => [...document.querySelectorAll("#target ul[role=listbox] li[role=option]")]
    .sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top)
    .map(item => item.getAttribute("aria-label"))"""


def test_the_class_search_lists_exact_and_whole_word_matches_first(at_width):
    """Issue 27: "espresso" listed 550 espresso maker above 967 espresso and Enter took it;
    "cat" listed bullfrog (Rana catesbeiana) first. The list now shows the matches in the order
    of `choices.ranked_classes`, and Enter takes the first shown."""
    from sa_viz.app.choices import ranked_classes

    page = at_width
    box = page.locator("#target input")
    for text in ("cat", "espresso", "terrier"):
        box.click()
        box.press("Control+a")
        box.press_sequentially(text)
        page.wait_for_function(
            """([first]) => {
                const items = [...document.querySelectorAll("#target li[role=option]")];
                const top = items.sort((a, b) => a.getBoundingClientRect().top
                                                - b.getBoundingClientRect().top)[0];
                return top && top.getAttribute("aria-label") === first;
            }""",
            arg=[ranked_classes(text)[0]],
        )
        assert page.evaluate(SHOWN_CLASSES) == ranked_classes(text), text
        box.press("Escape")
    assert ranked_classes("cat")[:5] == [
        "281: tabby (tabby cat)", "282: tiger cat", "283: Persian cat",
        "284: Siamese cat (Siamese)", "285: Egyptian cat",
    ]  # fmt: skip
    box.click()
    box.press("Control+a")
    box.press_sequentially("espresso")
    page.locator("#target li[role=option]").first.wait_for()
    box.press("Enter")
    page.wait_for_function("document.querySelector('#target input').value === '967: espresso'")
    # The arrow keys still choose: down from the first shown entry, in the list's own order
    box.click()
    box.press("Control+a")
    box.press_sequentially("espresso")
    page.locator("#target li[role=option]").first.wait_for()
    box.press("ArrowDown")
    box.press("Enter")
    page.wait_for_function(
        "['550: espresso maker', '967: espresso'].includes("
        "document.querySelector('#target input').value)"
    )


def test_an_explanation_shows_its_progress_once_and_not_over_the_text(at_width):
    """Issue 27, point 10: the progress covered the explanation's text and was drawn on all
    three panels; now on the results' first line and the first CAM only."""
    page = at_width
    page.goto(page.url.split("?")[0] + "?example=chelsea")
    old = wait_for_new_src(page, "cam-a", "")
    page.evaluate(
        """() => {
            window.saVizTrackers = new Set();
            window.saVizWatch = setInterval(() => {
                for (const t of document.querySelectorAll("[data-testid=status-tracker]")) {
                    const box = t.getBoundingClientRect();
                    if (!t.classList.contains("hide") && box.height > 0 && t.innerText.trim()) {
                        window.saVizTrackers.add(t.closest("[id]")?.id);
                    }
                }
            }, 10);
        }"""
    )
    page.locator("#cam-layer").get_by_label("layer3", exact=True).check()
    wait_for_new_src(page, "cam-a", old)
    seen = page.evaluate("clearInterval(window.saVizWatch); [...window.saVizTrackers]")
    assert set(seen) == {"summary", "cam-a"}, seen


def test_in_a_narrow_window_the_controls_stand_under_the_maps_they_change(at_width, shots):
    """Issue 27, point 9: at 800 px the layer and class controls stood ~1000 px above the
    heatmaps; the results now come between the Explain button and what to explain."""
    page = at_width
    page.goto(page.url.split("?")[0] + "?example=chelsea")
    wait_for_new_src(page, "cam-a", "")
    top = page.evaluate(
        """() => Object.fromEntries(["explain", "summary", "cam-a", "target", "cam-layer",
            "model-a"].map(id => {
                const box = document.getElementById(id).getBoundingClientRect();
                return [id, {top: box.top + window.scrollY, bottom: box.bottom + window.scrollY}];
            }))"""
    )
    if page.width < 1280:
        assert top["explain"]["bottom"] < top["summary"]["top"], top  # results under the button
        maps_end = top["cam-a"]["bottom"]
        assert maps_end < top["target"]["top"] < maps_end + 500, top
        assert maps_end < top["cam-layer"]["top"] < maps_end + 800, top
        assert top["target"]["top"] < top["model-a"]["top"], top  # the class before the models
        shots(page, f"controls-under-the-maps-{page.width}")
    else:  # side by side: the controls in the left column, the results beside them
        assert top["summary"]["top"] < top["explain"]["top"], top
    assert page.evaluate("document.documentElement.scrollWidth") <= page.width
    # Issue 27, point 8: the colour bars' numbers (14 px in the picture) at ≥ 8.5 px on screen
    from sa_viz.render.panels import colour_strip

    assert colour_strip.__kwdefaults__["size"] == 14
    for panel in ("cam-a", "cam-b", "cam-difference"):
        assert 14 * displayed_scale(page, panel) >= 8.5, (panel, displayed_scale(page, panel))
