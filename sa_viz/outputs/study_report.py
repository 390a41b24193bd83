"""A study's report: `report.html` and its PNG figures, from the study's Parquet rows and
`study.json` (first part: accuracy, agreement, gates across depth; issue 16 lists the rest).

The figures are matplotlib's (they are for reading and for papers); the page is plain HTML with
the figures beside it, so it opens from the folder with no server.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from matplotlib.figure import Figure

from sa_viz.render import figure_png

FLAT_SPREAD = 1e-6  # a unit whose channel gates vary less than this over the study is flagged


def write_report(out: str | Path) -> Path:
    """`out/report.html` (and `out/figures/*.png`) for the study in `out`; returns its path."""
    out = Path(out)
    summary = json.loads((out / "study.json").read_text())
    rows = pq.read_table(out / "rows", columns=["key", "model", "pearson", "units"]).to_pylist()
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    parts = [_accuracy_section(summary)]
    # One value per image (each image's rows, one per model, carry the pair's agreement).
    keys = {r["key"]: r["pearson"] for r in rows if r["pearson"] is not None}
    if keys:
        (figures / "agreement.png").write_bytes(figure_png(_histogram(list(keys.values()))))
        differ = sorted(keys.items(), key=lambda kv: kv[1])[:10]
        items = "".join(f"<li>{html.escape(k)}: r = {v:.3f}</li>" for k, v in differ)
        parts.append(
            "<h2>Where the two models look</h2><p>Pearson r of the two CAMs of each image.</p>"
            f'<img src="figures/agreement.png" alt="CAM agreement histogram">'
            f"<p>The images where they look most differently:</p><ol>{items}</ol>"
        )
    for model in summary["models"]:
        units = [r["units"] for r in rows if r["model"] == model and r["units"]]
        if not units:
            continue
        names = [u["unit"] for u in units[0]]
        values = [
            np.concatenate([np.asarray(img[i]["channel"]) for img in units])
            for i in range(len(names))
        ]
        flat = [n for n, v in zip(names, values, strict=True) if float(np.ptp(v)) < FLAT_SPREAD]
        file = f"gates-{model}.png"
        (figures / file).write_bytes(figure_png(_depth_figure(names, values, model)))
        note = (
            f"<p><b>Units whose gates never vary over the study</b> (untrained or dead): "
            f"{html.escape(', '.join(flat))}.</p>"
            if flat
            else "<p>Every unit's gates vary over the study.</p>"
        )
        parts.append(
            f"<h2>{html.escape(summary['models'][model]['title'])}: gates across depth</h2>"
            "<p>For each unit, the distribution of its channel-gate values over all images "
            "(as in the SE-Net paper's excitation figure).</p>"
            f'<img src="figures/{file}" alt="channel gates per unit">{note}'
        )
    counts = summary["counts"]
    page = (
        "<!doctype html><meta charset=utf-8><title>SA-Viz study</title>"
        "<style>body{font:15px/1.5 sans-serif;max-width:960px;margin:2em auto;padding:0 1em}"
        "img{max-width:100%}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px;text-align:right}</style>"
        f"<h1>SA-Viz study of {html.escape(summary['source']['path'])}</h1>"
        f"<p>{counts['studied']} of {counts['listed']} images studied ({counts['labelled']} "
        f"labelled), {counts['problems']} problems (<a href=problems.txt>problems.txt</a>); "
        f"Grad-CAM at {summary['settings']['layer']}.</p>" + "".join(parts)
    )
    path = out / "report.html"
    path.write_text(page)
    return path


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
        title = html.escape(summary["models"][model]["title"])
        rows.append(f"<tr><th>{title}</th>{''.join(cells)}<td>{figures['top1']['n']}</td></tr>")
    section = (
        "<h2>Accuracy</h2><table><tr><th></th><th>top-1 (95 % CI)</th><th>top-5 (95 % CI)</th>"
        f"<th>labelled images</th></tr>{''.join(rows)}</table>"
    )
    paired = summary.get("paired")
    if paired and paired["n"]:
        titles = {f"only_{m}": f"only {v['title']}" for m, v in summary["models"].items()}
        cells = "".join(
            f"<tr><th>{html.escape(titles.get(k, k.replace('_', ' ')))}</th><td>{v}</td></tr>"
            for k, v in paired["matrix"].items()
        )
        section += (
            f"<h3>Paired, on {paired['n']} labelled images</h3><table>{cells}</table>"
            f"<p>Top-1 difference (second − first): {paired['difference_top1']:+.3f}.</p>"
        )
    return section


def _histogram(values: list[float]) -> Figure:
    fig = Figure(figsize=(6, 3), layout="constrained")
    ax = fig.subplots()
    ax.hist(values, bins=20, range=(-1, 1), color="#3b6ea8")
    ax.set_xlabel("Pearson r of the two CAMs")
    ax.set_ylabel("images")
    return fig


def _depth_figure(names: list[str], values: list[np.ndarray], model: str) -> Figure:
    fig = Figure(figsize=(max(6, 0.45 * len(names)), 3.4), layout="constrained")
    ax = fig.subplots()
    ax.boxplot(values, showfliers=False)
    ax.set_xticks(range(1, len(names) + 1), [n.removeprefix("layer") for n in names])
    ax.set_xlabel("unit (stage.block)")
    ax.set_ylabel("channel gate")
    ax.set_ylim(0, 1)
    ax.set_title(f"{model}: channel gates over all images, per unit", fontsize=10)
    return fig
