"""A study's report: `report.html` and its PNG figures, from the study's Parquet rows and
`study.json`.

Sections: accuracy (95 % intervals, the paired matrix); per class, where the second model wins
and loses most, with an example image and both CAMs; the two CAMs' agreement over the dataset
and the images where they differ most; per gated model, its gates across depth (the
distribution of channel-gate values per unit, over all images and for a few chosen classes, as
in the SE-Net paper's excitation figure), the spatial gates' entropy per unit, and the units
whose gates never vary. Beside the page, its tables as CSV and LaTeX (`outputs.tables`), and
its figures also in SVG and PDF when asked for.

The gate statistics are gathered part by part into fixed histograms and per-class sums
(`GateTally`), so the report's memory does not grow with the study. The figures are
matplotlib's; the page is plain HTML beside them, so it opens from the folder with no server.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from matplotlib.figure import Figure

from sa_viz.data.imagenet import label as class_name
from sa_viz.data.preprocess import ImageError
from sa_viz.data.regions import SAME_FRACTION
from sa_viz.outputs import files
from sa_viz.outputs.rows import read_rows
from sa_viz.outputs.tables import study_tables, write_tables
from sa_viz.pipeline.explain import prepare_for, preprocessing_for, raw_cam_on_display
from sa_viz.render import figure_views, paper
from sa_viz.render.overlays import overlay

FLAT_SPREAD = 1e-6  # a unit whose channel gates vary less than this over the study is flagged
BINS = np.linspace(0.0, 1.0, 10001)  # gate values and entropies lie in [0, 1]; fine enough
# for entropies that all sit near 1
CHOSEN = 3  # classes in the per-class gate figure when none are named: the most frequent
CLASSES_SHOWN = 5  # classes listed where the second model wins, and where it loses
EXAMPLES = 6  # images shown where the two CAMs differ most
CLASSES_LISTED = 20  # classes in the report's knockout table


@dataclass
class UnitTally:
    """One unit's gate values over a study, gathered without keeping them."""

    channel: np.ndarray = field(default_factory=lambda: np.zeros(len(BINS) - 1, np.int64))
    entropy: np.ndarray | None = None
    low: float = np.inf
    high: float = -np.inf
    sums: dict[int | None, np.ndarray] = field(default_factory=dict)  # class (None: all) → sum
    counts: Counter = field(default_factory=Counter)

    def add(self, unit: dict[str, Any], label: int | None, classes: set[int]) -> None:
        values = np.asarray(unit["channel"], dtype=np.float64)
        self.channel += np.histogram(values, BINS)[0]
        self.low, self.high = min(self.low, values.min()), max(self.high, values.max())
        if unit["spatial_entropy"] is not None:
            counts = np.histogram(unit["spatial_entropy"], BINS)[0]
            self.entropy = counts if self.entropy is None else self.entropy + counts
        for key in (None, label) if label in classes else (None,):
            self.sums[key] = self.sums.get(key, 0) + values
            self.counts[key] += 1


def tally_gates(out: Path, model: str, classes: set[int]) -> dict[str, UnitTally]:
    """Every unit's tally for `model`, reading the study's parts one at a time."""
    tallies: dict[str, UnitTally] = {}
    for part in sorted((out / "rows").glob("part-*.parquet")):
        table = pq.read_table(part, columns=["model", "label", "units"], filters=[
            ("model", "=", model)
        ])  # fmt: skip
        for row in table.to_pylist():
            for unit in row["units"] or ():
                tallies.setdefault(unit["unit"], UnitTally()).add(unit, row["label"], classes)
    return tallies


@dataclass(frozen=True)
class FigureFiles:
    """Where the report's figures go, in which formats and at which width: PNG always (the page
    shows it), and the other `formats` asked for; `width` in inches (`render.paper`; None:
    each figure's own size)."""

    folder: Path
    formats: tuple[str, ...] = ("png",)
    width: float | None = None

    def write(self, stem: str, fig: Figure) -> str:
        """`stem`.png and `stem` in the other formats; returns the PNG's name."""
        fig = paper.resized(fig, self.width)
        for fmt in dict.fromkeys(("png", *self.formats)):
            files.write_figure(self.folder / f"{stem}.{fmt}", fig)
        return f"{stem}.png"


def write_report(
    out: str | Path,
    classes: Sequence[int] | None = None,
    *,
    formats: Sequence[str] = ("png",),
    width: float | None = None,
) -> Path:
    """`out/report.html`, its figures in `out/figures` (PNG, and the other `formats`, `width`
    inches wide: see `FigureFiles`) and its tables in `out/tables` (CSV and LaTeX) for the study
    in `out`; returns the page's path. `classes`: the classes of the per-class gate figure
    (default: the most frequent labels)."""

    out = Path(out)
    summary = json.loads((out / "study.json").read_text())
    columns = ["key", "model", "label", "correct1", "target", "pearson"]
    rows = read_rows(out, columns=columns).to_pylist()
    figures = FigureFiles(out / "figures", tuple(formats), width)
    figures.folder.mkdir(exist_ok=True)
    write_tables(out / "tables", study_tables(summary, rows))
    names = list(summary["models"])
    examples = Examples(out, summary, figures)
    parts = [_accuracy_section(summary)]
    if len(names) == 2:
        titles = [summary["models"][n]["title"] for n in names]
        parts.append(_class_section(rows, names, titles, examples))
        parts.append(_agreement_section(rows, examples))
    labels = Counter(r["label"] for r in rows if r["label"] is not None and r["model"] == names[0])
    chosen = list(classes) if classes else [c for c, _ in labels.most_common(CHOSEN)]
    parts.append(_analyses_section(summary))
    parts.append(_charts_section(out, summary, figures))
    for model in names:
        parts.append(_gates_section(out, summary, model, chosen, figures))
    parts.append(clusters_section(out))
    counts = summary["counts"]
    page = (
        "<!doctype html><meta charset=utf-8><title>SA-Viz study</title>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        "<style>body{font:15px/1.5 sans-serif;max-width:960px;margin:2em auto;padding:0 1em}"
        "img{max-width:100%}table{border-collapse:collapse;margin:.5em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th:first-child{text-align:left}.wide{overflow-x:auto}img.examples{width:min(100%,620px)}"
        "</style>"
        f"<h1>SA-Viz study of {html.escape(source_title(summary['source']))}</h1>"
        + _untrained_banner(summary)
        + f"<p>{counts['studied']} of {counts['listed']} images studied ({counts['labelled']} "
        f"labelled), {counts['problems']} problems (<a href=problems.txt>problems.txt</a>); "
        f"Grad-CAM at {summary['settings']['layer']}. Its tables for papers, as CSV and "
        "LaTeX (booktabs): <a href=tables/>tables/</a>.</p>"
        + _problems(out)
        + "".join(p for p in parts if p)
    )
    return files.write_html(out / "report.html", page)


SHOWN_PROBLEMS = 10  # problems listed on the page; all of them are in problems.txt
# Where a report holds the strategies per class, so that `sa-viz cluster` can put them into a
# report written before it ran (and a report written again keeps them).
CLUSTERS_START, CLUSTERS_END = "<!-- clusters -->", "<!-- /clusters -->"


def clusters_section(out: Path) -> str:
    """The strategies per class of the study in `out` (`sa-viz cluster`: its clusters.json and
    figures), between the markers; only the markers where it has none."""
    path = out / "clusters.json"
    if not path.is_file():
        return CLUSTERS_START + CLUSTERS_END
    document = json.loads(path.read_text())
    models = json.loads((out / "study.json").read_text()).get("models", {})
    parts = [
        "<h2>Strategies per class</h2><p>Spectral relevance analysis (<code>sa-viz cluster</code>, "
        "after Lapuschkin et al., 2019): each class's CAMs at 16 × 16, clustered by spectral "
        "clustering, the number of clusters chosen by the eigengap. Each figure: the eigenvalues "
        "with the gap, a t-SNE map of the images coloured by cluster, and each cluster's mean CAM. "
        "Every image's cluster: <a href=clusters.parquet>clusters.parquet</a>; the eigenvalues and "
        "each cluster's most typical images: <a href=clusters.json>clusters.json</a>.</p>"
    ]
    for group in document.get("groups", []):
        title = (models.get(group["model"]) or {}).get("title") or group["model"]
        sizes = ", ".join(str(c["images"]) for c in group["clusters"])
        parts.append(
            f"<h3>{html.escape(group['class_name'])} (class {group['class']}): "
            f"{html.escape(title)}</h3><p>{group['images']} images, k = {group['k']} "
            f"(images per cluster: {sizes})</p>"
            f'<img src="{html.escape(group["figure"])}" alt="strategies of class '
            f'{group["class"]} in {html.escape(title)}">'
        )
    return CLUSTERS_START + "".join(parts) + CLUSTERS_END


def add_clusters_to_report(out: str | Path) -> Path | None:
    """Put the study's strategies per class into its report.html (in place of its markers'
    section, else at its end); None where the study has no report."""
    out = Path(out)
    report = out / "report.html"
    if not report.is_file():
        return None
    page = report.read_text()
    section = clusters_section(out)
    head, start, rest = page.partition(CLUSTERS_START)
    if start and CLUSTERS_END in rest:
        page = head + section + rest.partition(CLUSTERS_END)[2]
    else:
        page += section
    return files.write_html(report, page)


def source_title(source: dict[str, Any]) -> str:
    """What a study's source is called: its `title` (a page study's "3 images uploaded on the
    page"), else its path."""
    return source.get("title") or source["path"]


def _untrained_banner(summary: dict[str, Any]) -> str:
    """A warning above everything when a model ran without trained weights: its numbers then
    describe random gates, not the model (a shared report must say so)."""
    untrained = [
        v["title"]
        for v in summary["models"].values()
        # study.json's weights entry; one written before it had one says `pretrained`
        if (v["weights"]["untrained"] if v.get("weights") else not v.get("pretrained", True))
    ]
    if not untrained:
        return ""
    return (
        "<p style='border-left:6px solid #b00020;padding-left:10px;color:#5f0010'><b>"
        f"{html.escape(' and '.join(untrained))} ran with UNTRAINED weights</b> (no checkpoint "
        "was found): their predictions, maps and gates here describe random weights, not the "
        "trained model. See <code>sa-viz weights status</code>.</p>"
    )


def _problems(out: Path) -> str:
    """The first problems met (unreadable or duplicate files), named on the page."""
    path = out / "problems.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    if not lines:
        return ""
    shown = "" if len(lines) <= SHOWN_PROBLEMS else f", the first {SHOWN_PROBLEMS} here"
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines[:SHOWN_PROBLEMS])
    return (
        f"<details><summary>The {len(lines)} problem{'s' * (len(lines) != 1)} met{shown}"
        f"</summary><ul>{items}</ul></details>"
    )


def _title(summary: dict[str, Any], model: str) -> str:
    return html.escape(summary["models"][model]["title"])


def _accuracy_section(summary: dict[str, Any]) -> str:
    rows = []
    for model, figures in summary["accuracy"].items():
        cells = []
        for k in ("top1", "top5"):
            f = figures[k]
            cells.append(
                "<td>–</td>"
                if not f["n"]
                else f"<td>{f['accuracy']:.3f} ({f['ci95'][0]:.3f}–{f['ci95'][1]:.3f})</td>"
            )
        rows.append(
            f"<tr><th>{_title(summary, model)}</th>{''.join(cells)}"
            f"<td>{figures['top1']['n']}</td></tr>"
        )
    section = (
        "<h2>Accuracy</h2><table><tr><th></th><th>top-1 (95 % CI)</th><th>top-5 (95 % CI)</th>"
        f"<th>labelled images</th></tr>{''.join(rows)}</table>"
    )
    paired = summary.get("paired")
    if paired and paired["n"]:
        titles = {f"only_{m}": f"only {v['title']} right" for m, v in summary["models"].items()}
        cells = "".join(
            f"<tr><th>{html.escape(titles.get(k, k.replace('_', ' ')))}</th><td>{v}</td></tr>"
            for k, v in paired["matrix"].items()
        )
        section += (
            f"<h3>Paired, on {paired['n']} labelled images</h3><table>{cells}</table>"
            f"<p>Top-1 difference (second − first): {paired['difference_top1']:+.3f}.</p>"
        )
    return section


def _analyses_section(summary: dict[str, Any]) -> str:
    """The analyses' numbers: each model's mean (95 % bootstrap interval) and the paired
    difference, second − first, with its interval and permutation p-value."""
    found = summary.get("analyses")
    if not found:
        return ""
    models = list(summary["models"])
    head = "".join(f"<th>{_title(summary, m)}</th>" for m in models)
    head += "<th>second − first (p)</th>" if len(models) == 2 else ""
    body = []
    views = {k: v for k, v in found.items() if k.endswith("_view")}
    for number, entry in found.items():
        if number in views:
            continue
        better = {True: " ↑", False: " ↓"}.get(entry.get("higher_is_better"), "")
        cells = [f"<th>{html.escape(number)}{better}</th>"]
        for m in models:
            e = entry[m]
            cells.append(
                "<td>–</td>"
                if not e["n"]
                else f"<td>{e['mean']:.3g} ({e['ci95'][0]:.3g} to {e['ci95'][1]:.3g}), "
                f"n={e['n']}</td>"
            )
        pair = entry.get("paired")
        if pair is not None:
            cells.append(
                "<td>–</td>"
                if not pair["n"]
                else f"<td>{pair['mean_difference']:+.3g} ({pair['ci95'][0]:+.3g} to "
                f"{pair['ci95'][1]:+.3g}), p={pair['p']:.3f}</td>"
            )
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        "<h2>Analyses</h2><p>Means over the images with 95 % bootstrap intervals (three "
        "significant digits); ↑: higher is "
        "better, ↓: lower is. The paired column: the second model less the first on the same "
        "images, with a sign-flip permutation test's p. Per class: study.json.</p>"
        f"<div class=wide><table><tr><th></th>{head}</tr>{''.join(body)}</table></div>"
        + _harmful_groups(summary, views.get("knockout_view"))
        + _harmful_groups_per_unit(summary, views.get("knockout_units_view"))
    )


def _charts_section(out: Path, summary: dict[str, Any], figures: FigureFiles) -> str:
    """The charts of the study's analyses that have one (`figure_views.CHARTS`: the MPRT's
    curves), every model on one, drawn from each model's mean numbers over the images."""
    from sa_viz.analyses import analyses

    charted = {
        name: a
        for name, a in analyses().items()
        if name in figure_views.CHARTS and a.details_of_means is not None
    }
    if not charted or not summary.get("analyses"):
        return ""
    sums: dict[str, dict[str, list[float]]] = {}  # model → number → (sum, count)
    for row in read_rows(out, columns=["model", "analyses"]).to_pylist():
        kept = sums.setdefault(row["model"], {})
        for number, value in row["analyses"] or ():
            if (
                value is not None
                and value == value
                and any(a.owns(number) for a in charted.values())
            ):
                total = kept.setdefault(number, [0.0, 0])
                total[0] += value
                total[1] += 1
    section = []
    for name, a in charted.items():
        curves = {}
        for model, kept in sums.items():
            means = {n: t[0] / t[1] for n, t in kept.items() if a.owns(n) and t[1]}
            if means:
                curves[summary["models"][model]["title"]] = a.details_of_means(means)
        if not curves:
            continue
        file = figures.write(f"analysis-{name}", figure_views.CHARTS[name](curves, None))
        section.append(
            f"<h3>{html.escape(a.title)}</h3><p>Each model's means over the images it applied "
            f'to.</p><img src="figures/{file}" alt="{html.escape(name)} chart">'
        )
    return "<h2>Sanity checks and charts</h2>" + "".join(section) if section else ""


def _harmful_groups_per_unit(summary: dict[str, Any], view: dict[str, Any] | None) -> str:
    """`_harmful_groups` for every unit (the knockout at every unit), each unit folded."""
    units = list(dict.fromkeys(u for found in (view or {}).values() for u in found))
    parts = []
    for unit in units:
        table = _harmful_groups(summary, {m: v[unit] for m, v in view.items() if unit in v})
        if table:
            parts.append(f"<details><summary>{html.escape(unit)}</summary>{table}</details>")
    if not parts:
        return ""
    return "<h3>Knockout at every unit</h3><p>Open a unit for its table.</p>" + "".join(parts)


def _harmful_groups(summary: dict[str, Any], view: dict[str, Any] | None) -> str:
    """Per class and gated model: the groups whose knockout hurts the class most."""
    if not view:
        return ""
    rows = []
    for model, found in view.items():
        for label, entry in list(found["per_class"].items())[:CLASSES_LISTED]:
            groups = ", ".join(
                f"{g} ({dp:+.3g})" for g, dp in zip(entry["groups"], entry["mean_dp"], strict=True)
            )
            rows.append(
                f"<tr><th>{_title(summary, model)}</th><td>{label} "
                f"{html.escape(class_name(int(label)))}</td><td>{entry['images']}</td>"
                f"<td>{groups}</td></tr>"
            )
    if not rows:
        return ""
    unit = next(iter(view.values()))["unit"]
    return (
        f"<h3>Groups of {unit} whose knockout hurts each class most</h3><p>Mean change of the "
        "class's probability over its images, most harmful first (the first classes "
        "only: all are in study.json).</p><div class=wide><table><tr><th>model</th>"
        f"<th>class</th><th>images</th><th>groups</th></tr>{''.join(rows)}</table></div>"
    )


class Examples:
    """Example images with both models' CAMs, drawn from the study's rows and its source."""

    def __init__(self, out: Path, summary: dict[str, Any], figures: FigureFiles) -> None:
        self.out, self.summary, self.figures = out, summary, figures
        self.root = Path(summary["source"]["path"])
        self.crop = summary["settings"].get("crop", True)

    def figure(self, file: str, keys: Sequence[str], captions: Sequence[str]) -> str:
        """`figures/<file>.png` (and its other formats): one row per image (the image, then
        each model's CAM), as an <img>; empty when the images can no longer be read."""
        table = pq.read_table(
            self.out / "rows",
            columns=["key", "model", "label", "top5", "target", "cam_raw", "cam_shape"],
            filters=[("key", "in", list(keys))],
        ).to_pylist()
        cams = {(r["key"], r["model"]): r for r in table}
        models = list(self.summary["models"])
        shown = []
        for key, caption in zip(keys, captions, strict=True):
            try:
                prepared = prepare_for(self.root / key, models, crop=self.crop)
            except (ImageError, OSError):
                continue  # the source moved since the study: the row is listed, not drawn
            image = prepared.display
            panels = []
            for model in models:
                r = cams[(key, model)]
                raw = np.asarray(r["cam_raw"], np.float32).reshape(r["cam_shape"])
                cam = raw_cam_on_display(raw, prepared, model)
                top = r["top5"][0]
                mark = "" if r["label"] is None else (" ✓" if top == r["label"] else " ✗")
                title = self.summary["models"][model]["title"]
                words = f"{title}: CAM of {_short(r['target'])}\ntop-1 {_short(top)}{mark}"
                panels.append((overlay(image, cam), words))
            shown.append((image, caption, panels))
        if not shown:
            return ""
        file = self.figures.write(file, _examples_figure(shown, self.figures.width))
        return f'<img class=examples src="figures/{file}" alt="example images with both CAMs">'


def _examples_figure(
    shown: list[tuple[np.ndarray, str, list[tuple[np.ndarray, str]]]], width: float | None = None
) -> Figure:
    """One row per image: the image, then each model's CAM, each under its caption (wrapped to
    its column at a paper `width`); the pictures set the rows' height."""
    columns = 1 + len(shown[0][2])
    inches = 2.3 if width is None else width / columns
    fig = Figure(layout="compressed")
    axes = np.atleast_2d(fig.subplots(len(shown), columns))
    lines = 1
    for row, (image, caption, panels) in zip(axes, shown, strict=True):
        for ax, (picture, title) in zip(row, [(image, caption), *panels], strict=True):
            ax.imshow(picture, interpolation="none")
            title = paper.wrap(title, inches * 0.95, width)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
            lines = max(lines, title.count("\n") + 1)
    aspect = max(image.shape[0] / image.shape[1] for image, _, _ in shown)
    row_height = inches * 0.95 * aspect + lines * paper.line_height() + 0.1
    fig.set_size_inches(inches * columns, row_height * len(shown))
    return fig


def _class_section(
    rows: list[dict[str, Any]], names: list[str], titles: list[str], examples: Examples
) -> str:
    """Per class: where the second model is right and the first wrong (wins), and the reverse."""
    a, b = ({r["key"]: r for r in rows if r["model"] == n} for n in names)
    per_class: dict[int, dict[str, list[str]]] = {}
    for key, ra in a.items():
        rb = b.get(key)
        if ra["label"] is None or rb is None:
            continue
        cell = per_class.setdefault(ra["label"], {"n": [], "wins": [], "losses": []})
        cell["n"].append(key)
        if rb["correct1"] and not ra["correct1"]:
            cell["wins"].append(key)
        if ra["correct1"] and not rb["correct1"]:
            cell["losses"].append(key)
    if not per_class:
        return ""
    net = {c: len(v["wins"]) - len(v["losses"]) for c, v in per_class.items()}
    wins = sorted((c for c in net if net[c] > 0), key=lambda c: (-net[c], c))[:CLASSES_SHOWN]
    losses = sorted((c for c in net if net[c] < 0), key=lambda c: (net[c], c))[:CLASSES_SHOWN]
    section = [
        "<h2>Per class</h2><p>For each labelled class: its images, and on how many of them only "
        f"the second model ({html.escape(titles[1])}) is right (wins) or only the first "
        f"({html.escape(titles[0])}) is (losses). One example per class, with both CAMs of "
        "the true class.</p>"
    ]
    for title, chosen, kind in (("wins most", wins, "wins"), ("loses most", losses, "losses")):
        section.append(f"<h3>Where the second model {title}</h3>")
        if not chosen:
            section.append("<p>No class.</p>")
            continue
        body = "".join(
            f"<tr><th>{c} {html.escape(class_name(c))}</th><td>{len(per_class[c]['n'])}</td>"
            f"<td>{len(per_class[c]['wins'])}</td><td>{len(per_class[c]['losses'])}</td></tr>"
            for c in chosen
        )
        section.append(
            "<table><tr><th>class</th><th>images</th><th>wins</th><th>losses</th></tr>"
            f"{body}</table>"
        )
        keys = [per_class[c][kind][0] for c in chosen]
        captions = [f"{c} {class_name(c)}\n{key}" for c, key in zip(chosen, keys, strict=True)]
        section.append(examples.figure(f"classes-{kind}", keys, captions))
    return "".join(section)


def _crops_note(examples: Examples) -> str:
    """Where the first two models' centre crops differ: which saw less, and what r is over."""
    names = list(examples.summary["models"])[:2]
    if not examples.crop or len(names) < 2:
        return ""
    fractions = {name: preprocessing_for(name).crop_fraction for name in names}
    narrow, wide = sorted(names, key=fractions.__getitem__)
    if fractions[wide] - fractions[narrow] <= SAME_FRACTION:
        return ""
    title = {name: examples.summary["models"][name]["title"] for name in names}
    return html.escape(
        f" {title[narrow]} was evaluated with a narrower centre crop ({fractions[narrow]:.1%}) "
        f"than {title[wide]} ({fractions[wide]:.1%}): the images below are the wider crop, "
        f"{title[narrow]}'s maps are dark gray where it saw nothing, and r is over the pixels "
        "both saw."
    )


def _agreement_section(rows: list[dict[str, Any]], examples: Examples) -> str:
    # One value per image (each image's rows, one per model, carry the pair's agreement).
    agreement = {r["key"]: r["pearson"] for r in rows if r["pearson"] is not None}
    if not agreement:
        return ""
    examples.figures.write("agreement", _histogram(list(agreement.values())))
    differ = sorted(agreement.items(), key=lambda kv: kv[1])[:10]
    items = "".join(f"<li>{html.escape(k)}: r = {v:.3f}</li>" for k, v in differ)
    shown = differ[:EXAMPLES]
    picture = examples.figure(
        "differ", [k for k, _ in shown], [f"{k}\nr = {v:.3f}" for k, v in shown]
    )
    return (
        "<h2>Where the two models look</h2><p>Pearson r of the two CAMs of each image."
        f"{_crops_note(examples)}</p>"
        f'<img src="figures/agreement.png" alt="CAM agreement histogram">'
        f"<p>The images where they look most differently:</p><ol>{items}</ol>{picture}"
    )


def _gates_section(
    out: Path, summary: dict[str, Any], model: str, chosen: list[int], figures: FigureFiles
) -> str:
    tallies = tally_gates(out, model, set(chosen))
    if not tallies:
        return ""
    units = list(tallies)
    title = _title(summary, model)
    shown_as = summary["models"][model]["title"]  # in the figures' titles: "SA-ResNet-50"
    figures.write(
        f"gates-{model}", _depth_figure(units, [tallies[u].channel for u in units], shown_as)
    )
    parts = [
        f"<h2>{title}: gates across depth</h2><p>For each unit, the distribution of its "
        "channel-gate values over all images (as in the SE-Net paper's excitation figure; "
        "boxes: quartiles, whiskers: 5th and 95th percentiles).</p>"
        f'<div class=wide><img src="figures/gates-{model}.png" alt="channel gates per unit">'
        "</div>"
    ]
    shown = [c for c in chosen if tallies[units[0]].counts[c]]
    if shown:
        file = figures.write(
            f"gates-classes-{model}",
            _classes_figure(tallies, _class_units(units), shown, shown_as, figures.width),
        )
        parts.append(
            "<p>The mean channel-gate value of each channel, over all images and over the "
            f"images of each chosen class ({', '.join(f'{c} {class_name(c)}' for c in shown)}), "
            "for the last unit of each stage and every unit of the last: where the lines part, "
            f'the gates depend on the class.</p><img src="figures/{file}" '
            'alt="channel gates per class">'
        )
    entropies = [tallies[u].entropy for u in units]
    if all(e is not None for e in entropies):
        file = figures.write(
            f"entropy-{model}",
            _depth_figure(units, entropies, shown_as, "spatial-gate entropy", False),
        )
        parts.append(
            "<p>The entropy of each group's spatial gate (0: all on one position, 1: uniform), "
            f'over all images and groups, per unit.</p><div class=wide><img src="figures/{file}" '
            'alt="spatial-gate entropy per unit"></div>'
        )
    flat = [u for u in units if tallies[u].high - tallies[u].low < FLAT_SPREAD]
    parts.append(
        f"<p><b>Units whose gates never vary over the study</b> (untrained or dead): "
        f"{html.escape(', '.join(flat))}.</p>"
        if flat
        else "<p>Every unit's gates vary over the study.</p>"
    )
    return "".join(parts)


def _short(index: int) -> str:
    """A class as a figure's caption names it: its index and first name, cut at 16 letters."""
    return f"{index} {class_name(index)[:16]}"


def _class_units(units: list[str]) -> list[str]:
    """The last unit of each stage and every unit of the last stage, in depth order."""
    stages: dict[str, list[str]] = {}
    for unit in units:
        stages.setdefault(unit.split(".")[0], []).append(unit)
    *early, last = stages.values()
    return [s[-1] for s in early] + last


def _quantiles(counts: np.ndarray, qs: Iterable[float]) -> list[float]:
    """Quantiles of values known only by their histogram over `BINS` (bin centres)."""
    cumulative = np.cumsum(counts) / max(1, counts.sum())
    centres = (BINS[:-1] + BINS[1:]) / 2
    return [float(centres[min(len(centres) - 1, np.searchsorted(cumulative, q))]) for q in qs]


def _histogram(values: list[float]) -> Figure:
    fig = Figure(figsize=(6, 3), layout="constrained")
    ax = fig.subplots()
    ax.hist(values, bins=20, range=(-1, 1), color="#3b6ea8")
    ax.set_xlabel("Pearson r of the two CAMs")
    ax.set_ylabel("images")
    return fig


def _depth_figure(
    names: list[str],
    histograms: list[np.ndarray],
    model: str,
    what: str = "channel gate",
    whole_range: bool = True,  # the y axis 0–1, else the data's range (entropies crowd near 1)
) -> Figure:
    stats = []
    for name, counts in zip(names, histograms, strict=True):
        low, q1, med, q3, high = _quantiles(counts, (0.05, 0.25, 0.5, 0.75, 0.95))
        stats.append(
            {"label": name.removeprefix("layer"), "whislo": low, "q1": q1, "med": med,
             "q3": q3, "whishi": high, "fliers": []}
        )  # fmt: skip
    fig = Figure(figsize=(max(6, 0.45 * len(names)), 3.4), layout="constrained")
    ax = fig.subplots()
    ax.bxp(stats, showfliers=False)
    ax.set_xlabel("unit (stage.block)")
    ax.set_ylabel(what)
    if whole_range:
        ax.set_ylim(0, 1)
    ax.set_title(f"{model}: {what} over all images, per unit", fontsize=10)
    return fig


def _classes_figure(
    tallies: dict[str, UnitTally],
    units: list[str],
    classes: list[int],
    model: str,
    width: float | None = None,
) -> Figure:
    """Per unit, one chart: the mean channel gate of each channel, over all images and over
    each chosen class; 3 charts to a row (2 in a single column)."""
    columns = min(3 if width is None or width > 5 else 2, len(units))
    rows = -(-len(units) // columns)
    row_height = 2.6 if width is None else max(1.4, 0.7 * width / columns)
    inches = 4 * columns if width is None else width
    fig = Figure(figsize=(inches, row_height * rows + 0.3), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    for ax, unit in zip(axes, units, strict=False):
        tally = tallies[unit]
        for key, colour in ((None, "black"), *((c, f"C{i}") for i, c in enumerate(classes))):
            if not tally.counts[key]:
                continue
            mean = tally.sums[key] / tally.counts[key]
            name = "all" if key is None else _short(key)
            ax.plot(mean, lw=0.8, color=colour, label=f"{name} ({tally.counts[key]})")
        ax.set_title(unit, fontsize=9)
        ax.set_ylim(0, 1)
        ax.set_xlabel("channel", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(units) :]:
        ax.axis("off")
    axes[0].set_ylabel("mean channel gate", fontsize=8)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle(f"{model}: channel gates per class", fontsize=10)
    return fig
