"""A study's summary tables for papers, beside its report: `tables/<name>.csv` (every number at
full precision, one column each) and `tables/<name>.tex` (a booktabs tabular, numbers rounded as
the report shows them, ready to `\\input`).

Tables: accuracy with 95 % intervals; the paired comparison of two models; per class, each
model's top-1 accuracy and where the second model wins or loses; the analyses' means per model
with the paired difference; the analyses' means per class.

The LaTeX is written here, not by pandas' `DataFrame.to_latex`: that needs jinja2 ≥ 3.1.6,
which SA-Viz does not require (a fresh install has it only through gradio, which allows older
releases), and a booktabs tabular is a few lines.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sa_viz.data.imagenet import label as class_name
from sa_viz.outputs import files

LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "−": "$-$",  # the report's minus sign (U+2212): not in every LaTeX font
}
MISSING = "--"  # an empty cell in LaTeX (an en dash); empty in CSV


@dataclass(frozen=True)
class Table:
    """One table: its CSV columns and rows (plain values), and its LaTeX header and rows
    (cells already formatted and escaped; the first column left-aligned, the others right)."""

    name: str
    caption: str  # a comment at the top of the .tex: what the table holds
    columns: list[str]
    rows: list[list[Any]]
    latex_header: list[str]
    latex_rows: list[list[str]]


def escape(text: str) -> str:
    """Text with LaTeX's special characters escaped."""
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def number(value: float | None, spec: str = ".3f") -> str:
    """A number for LaTeX as `spec` formats it, its minus sign a math minus; `MISSING` for
    none."""
    if value is None or value != value:
        return MISSING
    text = format(value, spec)
    return "$-$" + text[1:] if text.startswith("-") else text


def interval(value: float | None, ci: Sequence[float] | None, spec: str = ".3f") -> str:
    """A number and its interval for LaTeX: value [low, high]."""
    if value is None or not ci:
        return MISSING
    return f"{number(value, spec)} [{number(ci[0], spec)}, {number(ci[1], spec)}]"


def csv_text(table: Table) -> str:
    """The table as CSV: a header, then its rows; numbers as Python writes them (every digit),
    missing values empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows([["" if v is None else v for v in row] for row in table.rows])
    return buffer.getvalue()


def latex_text(table: Table) -> str:
    """The table as a booktabs tabular (needs \\usepackage{booktabs})."""
    spec = "l" + "r" * (len(table.latex_header) - 1)
    lines = [
        f"% {table.caption}",
        "% SA-Viz study table; needs \\usepackage{booktabs}",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(table.latex_header) + r" \\",
        "\\midrule",
        *(" & ".join(row) + r" \\" for row in table.latex_rows),
        "\\bottomrule",
        "\\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


def write_tables(folder: Path, tables: Sequence[Table]) -> list[Path]:
    """Each table as `<name>.csv` and `<name>.tex` in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables:
        written.append(files.write_text(folder / f"{table.name}.csv", csv_text(table)))
        written.append(files.write_text(folder / f"{table.name}.tex", latex_text(table)))
    return written


def study_tables(summary: dict[str, Any], rows: Sequence[dict[str, Any]] = ()) -> list[Table]:
    """The tables of a study from its `study.json` and its rows (key, model, label, correct1;
    for the per-class accuracy); those with nothing to show are left out."""
    tables = [accuracy_table(summary)]
    found = [
        paired_table(summary),
        class_accuracy_table(summary, rows),
        analyses_table(summary),
        analyses_class_table(summary),
    ]
    return tables + [t for t in found if t is not None]


def _titles(summary: dict[str, Any]) -> dict[str, str]:
    return {name: entry["title"] for name, entry in summary["models"].items()}


def accuracy_table(summary: dict[str, Any]) -> Table:
    columns = ["model", "title"]
    for k in ("top1", "top5"):
        columns += [k, f"{k}_ci95_low", f"{k}_ci95_high"]
    columns.append("n")
    rows, latex = [], []
    for model, figures in summary["accuracy"].items():
        row: list[Any] = [model, summary["models"][model]["title"]]
        cells = [escape(row[1])]
        for k in ("top1", "top5"):
            f = figures[k]
            ci = f["ci95"] or [None, None]
            row += [f["accuracy"], *ci]
            cells.append(interval(f["accuracy"], f["ci95"]))
        row.append(figures["top1"]["n"])
        cells.append(str(figures["top1"]["n"]))
        rows.append(row)
        latex.append(cells)
    header = ["Model", r"Top-1 [95\% CI]", r"Top-5 [95\% CI]", "$n$"]
    caption = "Accuracy on the labelled images, with 95% Wilson intervals"
    return Table("accuracy", caption, columns, rows, header, latex)


def paired_table(summary: dict[str, Any]) -> Table | None:
    """Who is right where both models are labelled: the 2 × 2 counts and the top-1
    difference, second − first."""
    paired = summary.get("paired")
    if not paired or not paired["n"]:
        return None
    titles = _titles(summary)
    names = {f"only_{m}": f"Only {t} right" for m, t in titles.items()}
    names |= {"both_right": "Both right", "both_wrong": "Both wrong"}
    matrix = paired["matrix"]
    columns = ["n", *matrix, "difference_top1"]
    row = [paired["n"], *matrix.values(), paired.get("difference_top1")]
    first, second = titles.values()
    header = ["Images", *(escape(names.get(k, k)) for k in matrix)]
    header.append(f"Top-1 difference ({escape(second)} $-$ {escape(first)})")
    cells = [str(v) for v in row[:-1]] + [number(row[-1], "+.3f")]
    caption = "Paired comparison on the images both models were scored on"
    return Table("paired", caption, columns, [row], header, [cells])


def class_accuracy_table(summary: dict[str, Any], rows: Sequence[dict[str, Any]]) -> Table | None:
    """Per labelled class: its images, each model's top-1 accuracy and, for two models, on how
    many only the second is right (wins) or only the first (losses)."""
    models = list(summary["models"])
    right: dict[int, dict[str, dict[str, bool]]] = {}  # class → model → key → correct
    for r in rows:
        if r["label"] is not None and r["correct1"] is not None:
            right.setdefault(r["label"], {}).setdefault(r["model"], {})[r["key"]] = r["correct1"]
    if not right:
        return None
    titles = _titles(summary)
    pair = len(models) == 2
    columns = ["class", "class_name", "images", *(f"{m}_top1" for m in models)]
    columns += ["wins", "losses"] if pair else []
    table, latex = [], []
    for c in sorted(right):
        per_model = right[c]
        keys = sorted({k for found in per_model.values() for k in found})
        accuracy = [
            sum(per_model[m].values()) / len(per_model[m]) if per_model.get(m) else None
            for m in models
        ]
        row: list[Any] = [c, class_name(c), len(keys), *accuracy]
        if pair:
            a, b = (per_model.get(m, {}) for m in models)
            both = [k for k in keys if k in a and k in b]
            row += [sum(b[k] and not a[k] for k in both), sum(a[k] and not b[k] for k in both)]
        table.append(row)
        cells = [f"{c} {escape(class_name(c))}", str(len(keys))]
        cells += [number(v) for v in accuracy] + [str(v) for v in row[3 + len(models) :]]
        latex.append(cells)
    header = ["Class", "Images", *(f"{escape(titles[m])} top-1" for m in models)]
    header += ["Wins", "Losses"] if pair else []
    caption = "Per class: top-1 accuracy; wins: only the second model right, losses: only the first"
    return Table("accuracy_per_class", caption, columns, table, header, latex)


def analyses_table(summary: dict[str, Any]) -> Table | None:
    """Per analysis number: each model's mean with its 95 % bootstrap interval and n, and for
    two models the paired difference (second − first) with its interval and p-value."""
    found = summary.get("analyses")
    if not found:
        return None
    models = list(summary["models"])
    titles = _titles(summary)
    pair = len(models) == 2
    columns = ["number", "higher_is_better"]
    for m in models:
        columns += [f"{m}_mean", f"{m}_ci95_low", f"{m}_ci95_high", f"{m}_n"]
    if pair:
        columns += ["difference_mean", "difference_ci95_low", "difference_ci95_high", "p", "n"]
    rows, latex = [], []
    for name, entry in found.items():
        if name.endswith("_view"):  # per class and group: study.json only
            continue
        row: list[Any] = [name, entry.get("higher_is_better")]
        better = {True: r" $\uparrow$", False: r" $\downarrow$"}.get(
            entry.get("higher_is_better"), ""
        )
        cells = [escape(name) + better]
        for m in models:
            e = entry[m]
            row += [e["mean"], *(e["ci95"] or [None, None]), e["n"]]
            cells.append(interval(e["mean"], e["ci95"], ".3g"))
        d = entry.get("paired")
        if pair and d is not None:
            row += [d["mean_difference"], *(d["ci95"] or [None, None]), d["p"], d["n"]]
            cells.append(
                MISSING
                if not d["n"]
                else f"{interval(d['mean_difference'], d['ci95'], '+.3g')}, $p = {d['p']:.3f}$"
            )
        elif pair:
            row += [None] * 5
            cells.append(MISSING)
        rows.append(row)
        latex.append(cells)
    header = ["", *(escape(titles[m]) for m in models)]
    if pair:
        first, second = (escape(titles[m]) for m in models)
        header.append(f"{second} $-$ {first}")
    caption = (
        "Analyses: mean [95% bootstrap interval] per model; the paired difference with a "
        "sign-flip permutation test's p"
    )
    return Table("analyses", caption, columns, rows, header, latex)


def analyses_class_table(summary: dict[str, Any]) -> Table | None:
    """Per labelled class and analysis number: each model's mean."""
    found = {k: v for k, v in (summary.get("analyses") or {}).items() if not k.endswith("_view")}
    if not any(entry.get("per_class") for entry in found.values()):
        return None
    models = list(summary["models"])
    titles = _titles(summary)
    columns = ["class", "class_name", "number", *models]
    rows, latex = [], []
    classes = sorted({int(c) for entry in found.values() for c in entry.get("per_class", {})})
    for c in classes:
        for name, entry in found.items():
            means = entry.get("per_class", {}).get(str(c))
            if means is None:
                continue
            values = [means.get(m) for m in models]
            rows.append([c, class_name(c), name, *values])
            latex.append(
                [f"{c} {escape(class_name(c))}", escape(name), *(number(v, ".3g") for v in values)]
            )
    header = ["Class", "Number", *(escape(titles[m]) for m in models)]
    return Table("analyses_per_class", "Analyses: mean per class", columns, rows, header, latex)
