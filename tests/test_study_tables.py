"""A study's tables for papers (CSV and booktabs LaTeX, the numbers of study.json), and the
command line's figure flags: `--format` and `--figure-width` on `explain` and `study`."""

from __future__ import annotations

import csv
import io
import json
import shutil
import xml.etree.ElementTree as ET

import pytest
from conftest import ASSETS

from sa_viz import cli
from sa_viz.outputs.tables import csv_text, escape, latex_text, study_tables

SUMMARY = {
    "models": {"resnet50": {"title": "ResNet-50"}, "sa_resnet50": {"title": "SA-ResNet-50"}},
    "accuracy": {
        "resnet50": {
            "top1": {"n": 4, "accuracy": 0.5, "ci95": [0.15, 0.85]},
            "top5": {"n": 4, "accuracy": 0.75, "ci95": [0.3, 0.954]},
        },
        "sa_resnet50": {
            "top1": {"n": 4, "accuracy": 0.75, "ci95": [0.3, 0.954]},
            "top5": {"n": 4, "accuracy": 1.0, "ci95": [0.51, 1.0]},
        },
    },
    "paired": {
        "n": 4,
        "matrix": {"both_right": 2, "only_resnet50": 0, "only_sa_resnet50": 1, "both_wrong": 1},
        "difference_top1": 0.25,
    },
    "analyses": {
        "deletion_auc": {
            "resnet50": {"n": 4, "mean": 0.2, "ci95": [0.1, 0.3]},
            "sa_resnet50": {"n": 4, "mean": 0.1234, "ci95": [0.05, 0.2]},
            "paired": {"n": 4, "mean_difference": -0.0766, "ci95": [-0.1, -0.01], "p": 0.04},
            "per_class": {"281": {"resnet50": 0.2, "sa_resnet50": 0.1234}},
            "higher_is_better": False,
        },
        "knockout_view": {"resnet50": {}},  # per group: study.json only
    },
}
ROWS = [
    {"key": f"{i}.jpg", "model": m, "label": 281 if i < 3 else 967, "correct1": ok}
    for i, (a, b) in enumerate([(True, True), (False, True), (True, True), (False, False)])
    for m, ok in (("resnet50", a), ("sa_resnet50", b))
]


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def check_booktabs(tex: str, columns: int) -> None:
    lines = tex.splitlines()
    assert lines[2] == "\\begin{tabular}{l" + "r" * (columns - 1) + "}"
    assert [ln for ln in lines if ln in ("\\toprule", "\\midrule", "\\bottomrule")] == [
        "\\toprule",
        "\\midrule",
        "\\bottomrule",
    ]
    assert lines[-1] == "\\end{tabular}"
    body = [ln for ln in lines[3:-1] if ln.endswith("\\\\")]
    assert all(ln.count(" & ") == columns - 1 for ln in body), body


def test_the_tables_hold_the_summarys_numbers():
    tables = {t.name: t for t in study_tables(SUMMARY, ROWS)}
    assert set(tables) == {
        "accuracy",
        "paired",
        "accuracy_per_class",
        "analyses",
        "analyses_per_class",
    }
    for t in tables.values():
        check_booktabs(latex_text(t), len(t.latex_header))
        assert len(read_csv(csv_text(t))) == len(t.rows) == len(t.latex_rows)
    accuracy = read_csv(csv_text(tables["accuracy"]))
    for row in accuracy:
        top1 = SUMMARY["accuracy"][row["model"]]["top1"]
        assert float(row["top1"]) == top1["accuracy"]
        assert [float(row["top1_ci95_low"]), float(row["top1_ci95_high"])] == top1["ci95"]
        assert int(row["n"]) == 4
    tex = latex_text(tables["accuracy"])
    assert r"SA-ResNet-50 & 0.750 [0.300, 0.954] & 1.000 [0.510, 1.000] & 4 \\" in tex
    assert r"Top-1 [95\% CI]" in tex
    paired = read_csv(csv_text(tables["paired"]))[0]
    assert paired["only_sa_resnet50"] == "1" and float(paired["difference_top1"]) == 0.25
    assert r"4 & 2 & 0 & 1 & 1 & +0.250 \\" in latex_text(tables["paired"])
    assert r"Only SA-ResNet-50 right &" in latex_text(tables["paired"])
    analyses = read_csv(csv_text(tables["analyses"]))
    assert [r["number"] for r in analyses] == ["deletion_auc"]  # views are study.json's
    assert float(analyses[0]["sa_resnet50_mean"]) == 0.1234
    assert float(analyses[0]["p"]) == 0.04
    tex = latex_text(tables["analyses"])
    assert r"deletion\_auc $\downarrow$ & 0.2 [0.1, 0.3] & 0.123 [0.05, 0.2]" in tex
    assert r"$-$0.0766 [$-$0.1, $-$0.01], $p = 0.040$" in tex
    per_class = {r["class"]: r for r in read_csv(csv_text(tables["accuracy_per_class"]))}
    assert per_class["281"]["images"] == "3" and per_class["281"]["wins"] == "1"
    assert float(per_class["281"]["resnet50_top1"]) == pytest.approx(2 / 3)
    assert per_class["967"]["losses"] == "0"
    assert escape("top_5 50% & #1 {x}") == r"top\_5 50\% \& \#1 \{x\}"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """An ImageFolder of the three example photos."""
    root = tmp_path_factory.mktemp("photos")
    for name, folder in {
        "chelsea.jpg": "281",
        "coffee.jpg": "967",
        "rocket.jpg": "hot dog",
    }.items():
        (root / folder).mkdir()
        shutil.copy(ASSETS / name, root / folder / name)
    return root


def test_a_study_from_the_command_line_writes_its_tables_and_figures(
    photos, weights_folder, tmp_path, capsys
):
    out = tmp_path / "study"
    flags = ["--weights-dir", str(weights_folder), "--no-download", "--device", "cpu"]
    flags += ["--workers", "0", "--format", "svg,pdf", "--figure-width", "single"]
    assert cli.main(["study", str(photos), "--out", str(out), *flags]) == 0
    assert f"tables for papers in {out / 'tables'}" in capsys.readouterr().out
    summary = json.loads((out / "study.json").read_text())
    accuracy = read_csv((out / "tables" / "accuracy.csv").read_text())
    assert [r["model"] for r in accuracy] == ["resnet50", "sa_resnet50"]
    for row in accuracy:
        top1 = summary["accuracy"][row["model"]]["top1"]
        assert float(row["top1"]) == top1["accuracy"] and int(row["n"]) == top1["n"] == 3
    tex = (out / "tables" / "accuracy.tex").read_text()
    check_booktabs(tex, 4)
    assert f"{summary['accuracy']['resnet50']['top1']['accuracy']:.3f} [" in tex
    assert (out / "tables" / "paired.tex").exists()
    assert (out / "tables" / "accuracy_per_class.csv").exists()
    pngs = sorted((out / "figures").glob("*.png"))
    assert pngs
    for png in pngs:  # the page's PNG, and the formats asked for beside it
        assert png.with_suffix(".pdf").read_bytes().startswith(b"%PDF-")
        svg = ET.fromstring(png.with_suffix(".svg").read_bytes())
        assert svg.get("width") == "252pt"  # 3.5 in
    gates = (out / "figures" / "gates-sa_resnet50.svg").read_text()
    assert "<text" in gates and "SA-ResNet-50" in gates


def test_the_figure_flags_of_explain(weights_folder, tmp_path):
    flags = ["--weights-dir", str(weights_folder), "--no-download", "--device", "cpu"]
    chelsea = str(ASSETS / "chelsea.jpg")
    args = [chelsea, "--out", str(tmp_path), "--unit", "layer4.0", *flags]
    assert cli.main(["explain", *args, "--format", "pdf,svg", "--figure-width", "double"]) == 0
    written = {p.name for p in tmp_path.iterdir()}
    assert written == {
        f"chelsea_{name}.{fmt}" for name in ("cam", "gates_layer4.0") for fmt in ("svg", "pdf")
    } | {"chelsea.json"}
    svg = (tmp_path / "chelsea_cam.svg").read_bytes()
    assert ET.fromstring(svg).get("width") == f"{7.1 * 72:g}pt"
    assert b"SA-ResNet-50" in svg and b"<text" in svg
    pdf = (tmp_path / "chelsea_gates_layer4.0.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and b"/FontFile2" in pdf and b"/Subtype /Image" in pdf


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--format", "png,eps"], "choose from png, svg, pdf"),
        (["--figure-width", "wide"], "single, double or a width in inches"),
    ],
)
@pytest.mark.parametrize("command", ["explain", "study"])
def test_wrong_figure_flags_stop_before_any_model_loads(command, flags, says, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main([command, str(ASSETS), "--out", str(tmp_path), *flags])
    assert stopped.value.code == 2
    assert says in capsys.readouterr().err
