"""A study on a dataset the test makes: counts and schema, a bad file reported and the rest
studied, and a resumed study giving the rows of an uninterrupted one."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ASSETS
from imagenet_trees import kaggle_download

from sa_viz.data.sources import read_source
from sa_viz.outputs import study as study_files
from sa_viz.outputs import study_report
from sa_viz.outputs.study import SCHEMA, wilson
from sa_viz.pipeline import study as pipeline_study
from sa_viz.studies import run as study_run
from sa_viz.studies import run_study

PHOTOS = {"chelsea.jpg": "n02123045", "coffee.jpg": "967", "rocket.jpg": "hot dog"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """An ImageFolder: 3 photos × 3 copies in class folders, and an unreadable file."""
    root = tmp_path_factory.mktemp("dataset")
    for name, folder in PHOTOS.items():
        (root / folder).mkdir()
        for i in range(3):
            shutil.copy(ASSETS / name, root / folder / f"{i}-{name}")
    (root / "967" / "broken.jpg").write_text("not a photo")
    return root


def rows(out):
    table = pq.read_table(out / "rows")
    return sorted(table.to_pylist(), key=lambda r: (r["key"], r["model"]))


def test_a_study_writes_every_image_and_reports_the_bad_one(dataset, loaded_models, tmp_path):
    out = tmp_path / "study"
    summary = run_study(dataset, out, loaded_models, batch_size=4, workers=0, progress=False)
    table = pq.read_table(out / "rows")
    assert table.schema.equals(SCHEMA)
    assert table.num_rows == 9 * 2  # 9 readable images, two models each
    # The broken file, and each photo's two copies (the same file under other names).
    assert summary["counts"] == {"listed": 10, "labelled": 10, "studied": 9, "problems": 7}
    problems = (out / "problems.txt").read_text()
    assert "967/broken.jpg" in problems
    assert "967/2-coffee.jpg: the same file as 967/0-coffee.jpg (both studied)" in problems
    assert problems.count("the same file as") == 6
    record = next(r for r in rows(out) if r["model"] == "sa_resnet50")
    assert record["label"] == 967 and record["target"] == 967  # the label is the CAM's class
    assert len(record["top5"]) == 5 and record["cam_shape"] == [7, 7]
    assert len(record["cam_raw"]) == 49 and min(record["cam_raw"]) >= 0
    units = record["units"]
    assert len(units) == 16 and units[0]["unit"] == "layer1.0" and units[0]["groups"] == 64
    assert len(units[0]["channel"]) == 64 * 2 and len(units[0]["spatial_entropy"]) == 64
    assert all(0 <= e <= 1 for e in units[0]["spatial_entropy"])
    assert all(0 < y < 1 for y in units[0]["peak_y"])
    plain = next(r for r in rows(out) if r["model"] == "resnet50")
    assert plain["units"] == [] and plain["pearson"] == record["pearson"]
    written = json.loads((out / "study.json").read_text())
    assert set(written["models"]) == {"resnet50", "sa_resnet50"}
    assert written["paired"]["n"] == 9 and sum(written["paired"]["matrix"].values()) == 9
    assert written["accuracy"]["resnet50"]["top1"]["n"] == 9
    report = (out / "report.html").read_text()
    for part in (
        "Accuracy",
        "Paired, on 9 labelled images",
        "Where the two models look",
        "SA-ResNet-50: gates across depth",
        "figures/gates-sa_resnet50.png",
    ):
        assert part in report, part
    assert (out / "figures" / "agreement.png").stat().st_size > 1000
    assert (out / "figures" / "gates-sa_resnet50.png").stat().st_size > 1000


def test_the_agreement_histogram_counts_images_not_rows(
    dataset, loaded_models, tmp_path, monkeypatch
):
    out = tmp_path / "study"
    run_study(dataset, out, loaded_models, batch_size=4, workers=0, progress=False)
    seen = []
    original = study_report._histogram
    monkeypatch.setattr(study_report, "_histogram", lambda v: seen.append(len(v)) or original(v))
    study_report.write_report(out)
    assert seen == [9]  # 9 images, each on two rows (one per model)


def test_an_interrupted_study_resumes_to_the_same_rows(
    dataset, loaded_models, tmp_path, monkeypatch
):
    whole = tmp_path / "whole"
    run_study(dataset, whole, loaded_models, batch_size=2, workers=0, progress=False)
    resumed = tmp_path / "resumed"
    monkeypatch.setattr(study_run, "PART_SIZE", 4)  # parts of 4 images: stop after the first
    calls = {"n": 0}
    original = pipeline_study.study_batch

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # in the second part: as Ctrl+C would
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline_study, "study_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_study(dataset, resumed, loaded_models, batch_size=2, workers=0, progress=False)
    assert len(list((resumed / "rows").glob("*.parquet"))) == 1  # one whole part, no half one
    assert not list((resumed / "rows").glob("*.partial"))
    monkeypatch.setattr(pipeline_study, "study_batch", original)
    run_study(dataset, resumed, loaded_models, batch_size=2, workers=0, progress=False)
    first, second = rows(whole), rows(resumed)
    assert [r["key"] for r in first] == [r["key"] for r in second]
    lines = [sorted((o / "problems.txt").read_text().splitlines()) for o in (whole, resumed)]
    assert lines[0] == lines[1], lines
    assert len(lines[0]) == 7  # duplicates across parts too
    for a, b in zip(first, second, strict=True):
        assert a["top5"] == b["top5"] and a["target"] == b["target"]
        np.testing.assert_allclose(a["cam_raw"], b["cam_raw"], rtol=1e-4, atol=1e-6)


def test_the_command_line_with_decoding_processes(dataset, weights_folder, tmp_path):
    out = tmp_path / "cli"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sa_viz",
            "study",
            str(dataset),
            "--out",
            str(out),
            "--weights-dir",
            str(weights_folder),
            "--no-download",
            "--batch-size",
            "4",
            "--limit",
            "5",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "studied 5 of 5 images" in done.stdout or "studied 4 of 5 images" in done.stdout
    assert "imagefolder, 10 images, 10 labelled" in done.stderr


def test_wilson_intervals():
    low, high = wilson(8, 10)
    assert 0.49 < low < 0.5 and 0.94 < high < 0.95  # the textbook 0.490–0.943
    assert wilson(0, 5)[0] == 0.0 and wilson(5, 5)[1] == 1.0


@pytest.fixture(scope="module")
def local_ray():
    """A real Ray instance on this machine, two CPUs (CI installs Ray: there, no skip)."""
    if os.environ.get("CI"):
        import ray
    else:
        ray = pytest.importorskip("ray", reason='the Ray engine needs pip install ".[ray]"')
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_gives_the_local_engines_rows(dataset, loaded_models, local_ray, tmp_path):
    """The same rows, boxes and analyses included."""
    listed = tmp_path / "list.jsonl"
    lines = [
        {"path": str(p), "label": p.parent.name,
         **({"box": "30 0 385 300"} if "chelsea" in p.name else {})}
        for p in sorted(dataset.rglob("*.jpg"))
    ]  # fmt: skip
    listed.write_text("\n".join(json.dumps(line) for line in lines))
    source = read_source(listed)
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    options = {"batch_size": 4, "progress": False, "analyses": ["localisation"]}
    run_study(source, local, loaded_models, workers=0, **options)
    summary = run_study(source, on_ray, loaded_models, workers=2, engine="ray", **options)
    assert summary["counts"] == {"listed": 10, "labelled": 10, "studied": 9, "problems": 7}
    assert summary["settings"]["engine"] == "ray"
    assert "967/broken.jpg" in (on_ray / "problems.txt").read_text()
    first, second = rows(local), rows(on_ray)
    assert [(r["key"], r["model"]) for r in first] == [(r["key"], r["model"]) for r in second]
    for a, b in zip(first, second, strict=True):
        # The same weights and inputs; only the CPU threads differ (one per Ray worker).
        for column in ("label", "top5", "correct1", "correct5", "target", "cam_shape"):
            assert a[column] == b[column], column
        np.testing.assert_allclose(a["top5_p"], b["top5_p"], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(a["cam_raw"], b["cam_raw"], rtol=1e-4, atol=1e-6)
        assert dict(a["analyses"]).keys() == dict(b["analyses"]).keys()
        assert ("pointing_hit" in dict(b["analyses"])) is ("chelsea" in b["key"])
        for x, y in zip(a["units"], b["units"], strict=True):
            assert x["unit"] == y["unit"]
            np.testing.assert_allclose(x["channel"], y["channel"], rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(x["spatial_mean"], y["spatial_mean"], rtol=1e-4)
    a_json = json.loads((local / "study.json").read_text())
    assert a_json["accuracy"] == summary["accuracy"] and a_json["paired"] == summary["paired"]


@pytest.mark.slow
def test_the_command_line_on_ray_resumes(dataset, weights_folder, tmp_path):
    """`sa-viz study --engine ray` starts its own local Ray instance (its workers get absolute
    paths); a second run of the same command finds the study done."""
    command = [
        sys.executable, "-m", "sa_viz", "study", dataset.name, "--out", str(tmp_path / "ray"),
        "--weights-dir", str(weights_folder), "--no-download", "--engine", "ray",
        "--workers", "2", "--batch-size", "4",
    ]  # fmt: skip
    for _ in range(2):  # the source named relative to where the command runs
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=300, cwd=dataset.parent
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "studied 9 of 10 images" in done.stdout
    assert pq.read_table(tmp_path / "ray" / "rows").num_rows == 18


def test_the_report_names_the_classes_where_the_second_model_wins_and_loses(
    dataset, loaded_models, tmp_path
):
    """Labels made to be one model's answer: the chelseas labelled as SA-ResNet-50 sees them
    (it wins there), the coffees as ResNet-50 sees them (it loses there)."""
    first = tmp_path / "first"
    run_study(dataset, first, loaded_models, batch_size=4, workers=0, progress=False)
    top1 = {(r["key"], r["model"]): r["top5"][0] for r in rows(first)}
    lines = []
    for key in sorted({k for k, _ in top1}):
        if "rocket" in key:
            continue
        winner = "sa_resnet50" if "chelsea" in key else "resnet50"
        assert top1[(key, "sa_resnet50")] != top1[(key, "resnet50")]  # else nobody wins
        lines.append(json.dumps({"path": str(dataset / key), "label": top1[(key, winner)]}))
    listed = tmp_path / "list.jsonl"
    listed.write_text("\n".join(lines))
    out = tmp_path / "second"
    run_study(listed, out, loaded_models, batch_size=4, workers=0, progress=False)
    report = (out / "report.html").read_text()
    wins = report[report.index("second model wins most") : report.index("second model loses")]
    losses = report[report.index("second model loses most") : report.index("Where the two")]
    sa_class = top1[(next(k for k, _ in top1 if "chelsea" in k), "sa_resnet50")]
    plain_class = top1[(next(k for k, _ in top1 if "coffee" in k), "resnet50")]
    assert f"<th>{sa_class} " in wins and "<td>3</td><td>3</td><td>0</td>" in wins
    assert f"<th>{plain_class} " in losses and "<td>3</td><td>0</td><td>3</td>" in losses
    for figure in ("classes-wins", "classes-losses", "differ", "gates-classes-sa_resnet50"):
        assert (out / "figures" / f"{figure}.png").stat().st_size > 5000, figure
        assert f"figures/{figure}.png" in report
    assert "figures/entropy-sa_resnet50.png" in report  # SA has spatial gates
    assert "entropy-resnet50" not in report


def test_gate_tallies_match_the_rows(dataset, loaded_models, tmp_path):
    """The report's streamed histograms hold every channel-gate value of the study, and its
    per-class means are the rows' means."""
    out = tmp_path / "study"
    run_study(dataset, out, loaded_models, batch_size=4, workers=0, progress=False)
    tallies = study_report.tally_gates(out, "sa_resnet50", {967})
    table = [r for r in rows(out) if r["model"] == "sa_resnet50"]
    unit = tallies["layer3.0"]
    values = np.array([next(u for u in r["units"] if u["unit"] == "layer3.0")["channel"]
                       for r in table])  # fmt: skip
    assert unit.channel.sum() == values.size and unit.counts[None] == len(table)
    espresso = np.array([v for v, r in zip(values, table, strict=True) if r["label"] == 967])
    np.testing.assert_allclose(unit.sums[967] / unit.counts[967], espresso.mean(0), rtol=1e-6)
    assert unit.low == values.min() and unit.high == values.max()
    assert unit.entropy.sum() == len(table) * 64  # one entropy per group and image


def test_analyses_in_a_study_with_boxes(loaded_models, tmp_path):
    """Deletion/insertion on every row, localisation where a box is known; study.json holds
    each model's mean with its interval and the paired difference."""
    lines = [
        {"path": str(ASSETS / "chelsea.jpg"), "label": 281, "box": "30 0 385 300"},
        {"path": str(ASSETS / "coffee.jpg"), "label": 967},
    ]
    listed = tmp_path / "list.jsonl"
    listed.write_text("\n".join(json.dumps(line) for line in lines))
    out = tmp_path / "study"
    summary = run_study(listed, out, loaded_models, workers=0, progress=False,
                        analyses=["deletion_insertion", "localisation"])  # fmt: skip
    table = rows(out)
    for row in table:
        numbers = dict(row["analyses"])
        assert 0 <= numbers["deletion_auc"] <= 1 and 0 <= numbers["insertion_auc"] <= 1
        assert ("pointing_hit" in numbers) is ("chelsea" in row["key"])
    found = summary["analyses"]
    assert found["deletion_auc"]["resnet50"]["n"] == 2
    assert found["pointing_hit"]["sa_resnet50"]["n"] == 1
    assert found["deletion_auc"]["paired"]["n"] == 2
    assert set(found["insertion_auc"]["per_class"]) == {"281", "967"}
    report = (out / "report.html").read_text()
    assert "<h2>Analyses</h2>" in report and "insertion_auc ↑" in report
    assert json.loads((out / "study.json").read_text())["settings"]["analyses"] == [
        "deletion_insertion",
        "localisation",
    ]


def test_boxes_follow_the_resize_and_the_centre_crop():
    from sa_viz.data.preprocess import boxes_in_input, prepare_image

    prepared = prepare_image(ASSETS / "chelsea.jpg", crop=True)  # 451 × 300 → 384 × 256 → 224
    ((x0, y0, x1, y1),) = boxes_in_input([(100, 50, 200, 150)], prepared)
    assert (x0, y0) == pytest.approx((100 * 384 / 451 - 80, 50 * 256 / 300 - 16))
    assert (x1, y1) == pytest.approx((200 * 384 / 451 - 80, 150 * 256 / 300 - 16))
    assert boxes_in_input([(0, 0, 50, 10)], prepared) == ()  # cropped away
    whole = prepare_image(ASSETS / "chelsea.jpg")  # 451 × 300 → 337 × 224
    ((x0, y0, x1, y1),) = boxes_in_input([(100, 50, 200, 150)], whole)
    assert (x0, x1) == pytest.approx((100 * 337 / 451, 200 * 337 / 451))


def test_a_resume_with_other_settings_is_refused(dataset, loaded_models, tmp_path):
    out = tmp_path / "study"
    run_study(dataset, out, loaded_models, limit=2, workers=0, progress=False, report=False)
    with pytest.raises(study_run.SettingsChanged, match="layer layer4"):
        run_study(dataset, out, loaded_models, layer="layer3", workers=0, progress=False)
    assert pq.read_table(out / "rows").num_rows == 4  # nothing added


def test_a_study_names_the_groups_whose_knockout_hurts_each_class(loaded_models, tmp_path):
    lines = [
        {"path": str(ASSETS / "chelsea.jpg"), "label": 281},
        {"path": str(ASSETS / "coffee.jpg"), "label": 967},
    ]
    listed = tmp_path / "list.jsonl"
    listed.write_text("\n".join(json.dumps(line) for line in lines))
    out = tmp_path / "study"
    summary = run_study(listed, out, loaded_models, workers=0, progress=False,
                        analyses=["knockout"])  # fmt: skip
    view = summary["analyses"]["knockout_view"]
    assert view["resnet50"]["per_class"] == {}  # no gates, nothing knocked out
    cat = view["sa_resnet50"]["per_class"]["281"]
    row = next(r for r in rows(out) if r["model"] == "sa_resnet50" and "chelsea" in r["key"])
    dp = [dict(row["analyses"])[f"knockout_dp_g{g:02d}"] for g in range(64)]
    assert cat["images"] == 1 and cat["groups"] == list(np.argsort(dp, kind="stable")[:3])
    assert cat["mean_dp"] == sorted(cat["mean_dp"]) and cat["mean_dp"][0] == min(dp)
    assert "whose knockout hurts each class most" in (out / "report.html").read_text()


def test_the_report_folds_the_knockout_of_every_unit():
    """`knockout_units`' dataset view in the report: one folded table per unit, in order."""
    from sa_viz.analyses.knockout_units import harmful_groups_per_unit

    numbers = {"a.jpg": {"knockout_unit_dp_layer1.0": -0.1, "knockout_unit_dp_layer4.2": 0.0}}
    for unit, worst in (("layer1.0", 5), ("layer4.2", 2)):
        numbers["a.jpg"] |= {f"knockout_dp_{unit}_g{g:02d}": -0.5 * (g == worst) for g in range(8)}
    view = {"sa_resnet50": harmful_groups_per_unit(numbers, {"a.jpg": 281})}
    summary = {"models": {"sa_resnet50": {"title": "SA-ResNet-50"}}}
    page = study_report._harmful_groups_per_unit(summary, view)
    assert page.index("<summary>layer1.0") < page.index("<summary>layer4.2")
    assert "Groups of layer1.0 whose knockout" in page and "281 tabby" in page
    assert "<td>5 (-0.5), 0 (+0), 1 (+0)</td>" in page
    assert study_report._harmful_groups_per_unit(summary, None) == ""


def test_a_study_with_no_readable_image_still_reports(loaded_models, tmp_path):
    """Every listed file unreadable: before, Arrow failed on the empty rows folder ("No match
    for FieldRef.Name(key)") and problems.txt was never written. (Every listed file missing
    is a source without images: `test_a_source_without_images_stops_the_study`.)"""
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_text(f"{name} is not a photo")
    listed = tmp_path / "list.jsonl"
    listed.write_text('{"path": "a.jpg", "label": 281}\n{"path": "b.jpg", "label": 3}\n')
    out = tmp_path / "study"
    summary = run_study(listed, out, loaded_models, workers=0, progress=False,
                        analyses=["road"])  # fmt: skip
    assert summary["counts"]["studied"] == 0 and summary["counts"]["problems"] == 2
    assert len((out / "problems.txt").read_text().splitlines()) == 2
    assert "0 of 2 images studied" in (out / "report.html").read_text()
    assert study_files.read_rows(out).num_rows == 0


@pytest.mark.parametrize("given", ["folder", "list", "Source"])
def test_a_source_without_images_stops_the_study(tmp_path, given):
    """Issue 28: a source without images was studied (0 images, 0 problems) and said nothing;
    now `run_study` stops before writing anything, naming where it looked."""
    from sa_viz.data.sources import EmptySource, Source

    listed = tmp_path / "list.jsonl"
    listed.write_text('{"path": "gone/a.jpg", "label": 281}\n')
    (tmp_path / "empty").mkdir()
    source = {"folder": tmp_path / "empty", "list": listed, "Source": Source("folder", tmp_path)}
    where = {"folder": tmp_path / "empty", "list": listed, "Source": tmp_path}[given]
    out = tmp_path / "study"
    with pytest.raises(EmptySource, match=re.escape(f"{where}: no images to study")) as caught:
        run_study(source[given], out, {}, workers=0, progress=False)
    assert "sa-viz reads:" in str(caught.value)
    if given == "list":
        assert "list.jsonl, line 1: gone/a.jpg does not exist" in str(caught.value)
    assert not out.exists()


def study_command(source, out, weights_folder, *flags):
    return subprocess.run(
        [sys.executable, "-m", "sa_viz", "study", str(source), "--out", str(out),
         "--weights-dir", str(weights_folder), "--no-download", "--workers", "0", *flags],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_command_line_names_the_lines_of_a_hostile_label_file_and_goes_on(
    weights_folder, tmp_path
):
    """Before: UnicodeDecodeError (or _csv.Error for the long field), a traceback, exit 1."""
    val = tmp_path / "val"
    val.mkdir()
    for i in (1, 2, 3):
        shutil.copy(ASSETS / "chelsea.jpg", val / f"ILSVRC2012_val_{i:08d}.JPEG")
    (val / "LOC_val_solution.csv").write_bytes(
        b"ImageId,PredictionString\n"
        b"ILSVRC2012_val_00000001,n02123045 10 20 200 210\n"
        b"ILSVRC2012_val_00000002,n02123045 \xff\xfe 1 2 3\n"
        b"ILSVRC2012_val_00000003,n02123045 " + b"9" * 200_000 + b"\n"
    )
    done = study_command(val, tmp_path / "study", weights_folder, "--limit", "1")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    problems = (tmp_path / "study" / "problems.txt").read_text()
    assert "LOC_val_solution.csv, line 3: not UTF-8 text" in problems
    assert "LOC_val_solution.csv, line 4: field larger than field limit" in problems


def test_the_command_line_studies_the_kaggle_download_from_its_root(weights_folder, tmp_path):
    """Issue 28: before, 0 images were studied and 0 problems reported, with exit 0."""
    val = kaggle_download(tmp_path / "kaggle")
    out = tmp_path / "study"
    done = study_command(tmp_path / "kaggle", out, weights_folder, "--limit", "2")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"imagenet-val in {val}, 3 images, 3 labelled, 0 problems" in done.stderr
    summary = json.loads((out / "study.json").read_text())
    assert summary["counts"]["studied"] == 2 and summary["counts"]["labelled"] == 2
    table = pq.read_table(out / "rows", columns=["key", "label"]).to_pylist()
    assert sorted({(r["key"], r["label"]) for r in table}) == [
        ("ILSVRC2012_val_00000001.JPEG", 281),
        ("ILSVRC2012_val_00000002.JPEG", 967),
    ]


def test_the_command_line_stops_on_a_source_without_images(tmp_path, capsys):
    """Before the models load: where it looked, the layouts it knows, exit 2."""
    from sa_viz.cli import main

    (tmp_path / "kaggle").mkdir()
    (tmp_path / "kaggle" / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n")
    with pytest.raises(SystemExit) as caught:
        main(["study", str(tmp_path / "kaggle"), "--out", str(tmp_path / "study")])
    said = capsys.readouterr().err
    assert caught.value.code == 2 and "Traceback" not in said
    assert f"sa-viz study: error: {tmp_path / 'kaggle'}: no images to study" in said
    assert "ILSVRC/Data/CLS-LOC/val/" in said and "  - an ImageFolder" in said
    assert not (tmp_path / "study").exists()


def test_the_command_line_stops_with_one_sentence_on_a_label_file_it_cannot_read(
    weights_folder, tmp_path
):
    val = tmp_path / "val"
    val.mkdir()
    shutil.copy(ASSETS / "chelsea.jpg", val / "ILSVRC2012_val_00000001.JPEG")
    (val / "LOC_val_solution.csv").write_bytes(b"Image\xffId,PredictionString\n")
    done = study_command(val, tmp_path / "study", weights_folder)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("sa-viz study: error: ") and "csv, line 1: the header" in last, last


def test_a_foreign_file_among_the_rows_is_named_and_nothing_is_resumed(
    dataset, loaded_models, tmp_path
):
    """Before: a multi-line Arrow schema dump that named no file; or, for a part with the
    study's key and sha256, a resumed study whose rows (pandas.read_parquet) mixed in NaN rows;
    or, for a part of an older schema, its rows read with nulls in the missing columns."""
    out = tmp_path / "study"
    run_study(dataset, out, loaded_models, limit=2, workers=0, progress=False, report=False)
    rows_before = pq.read_table(out / "rows")
    foreign = {
        "part-00001.parquet": pa.table({"a": [1], "b": ["x"]}),
        "part-00002.parquet": pa.table({"key": ["zzz"], "sha256": ["0"], "other": [1.5]}),
        "part-00003.parquet": rows_before.drop_columns(["analyses"]),  # another version's
        "copy.parquet": rows_before,  # the study's own schema, but read twice
        "notes.txt": b"not Parquet",
        "part-00004.parquet": b"not Parquet either",
    }
    for name, content in foreign.items():
        path = out / "rows" / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            pq.write_table(content, path)
        with pytest.raises(ValueError, match=re.escape(str(path))) as caught:
            run_study(dataset, out, loaded_models, limit=4, workers=0, progress=False)
        assert caught.typename == "ForeignRows" and "\n" not in str(caught.value), name
        path.unlink()
        assert pq.read_table(out / "rows").equals(rows_before), name  # nothing written
    # What the study itself leaves while it writes a part (a dot file: no reader reads it).
    (out / "rows" / ".part-00001.parquet.partial").write_bytes(b"cut short by a crash")
    run_study(dataset, out, loaded_models, limit=4, workers=0, progress=False, report=False)
    assert pq.read_table(out / "rows").num_rows == 3 * 2  # 4 images, 967/broken.jpg unread


def test_the_report_warns_of_untrained_weights_and_names_the_problems(tmp_path):
    """Issue 27: a shared report never said that its models were untrained, and named the bad
    files only in problems.txt."""
    from sa_viz.outputs.study_report import _problems, _untrained_banner, source_title

    summary = {
        "models": {
            "resnet50": {"title": "ResNet-50", "weights": {"untrained": False}},
            "sa_resnet50": {"title": "SA-ResNet-50", "weights": {"untrained": True}},
        }
    }
    assert "SA-ResNet-50 ran with UNTRAINED weights" in _untrained_banner(summary)
    assert "ResNet-50 and" not in _untrained_banner(summary)
    summary["models"]["sa_resnet50"]["weights"]["untrained"] = False
    assert _untrained_banner(summary) == ""
    older = {"models": {"a": {"title": "A", "pretrained": False}}}  # no weights entry yet
    assert "A ran with UNTRAINED weights" in _untrained_banner(older)
    (tmp_path / "problems.txt").write_text("".join(f"bad{i}.jpg: unreadable\n" for i in range(12)))
    listed = _problems(tmp_path)
    assert "bad0.jpg: unreadable" in listed and "bad9.jpg" in listed and "bad10.jpg" not in listed
    assert "The 12 problems met, the first 10 here" in listed
    (tmp_path / "problems.txt").write_text("")
    assert _problems(tmp_path) == ""
    assert source_title({"path": "/tmp/x", "title": "3 images uploaded on the page"}) == (
        "3 images uploaded on the page"
    )
    assert source_title({"path": "/data/val"}) == "/data/val"


@pytest.mark.slow  # the MPRT of two ResNet-50s on one image: ~10 s here
def test_the_report_draws_the_mprt_of_both_models(dataset, loaded_models, tmp_path):
    """Issue 29: the sanity check's curves in the report, every model on one chart, from each
    model's mean numbers (one image: that image's own)."""
    from sa_viz.analyses.mprt import curve

    out = tmp_path / "study"
    run_study(dataset, out, loaded_models, limit=1, workers=0, progress=False,
              analyses=["mprt"], figure_formats=("png", "svg"))  # fmt: skip
    page = (out / "report.html").read_text()
    assert "<h2>Sanity checks and charts</h2>" in page
    assert 'src="figures/analysis-mprt.png"' in page
    svg = (out / "figures" / "analysis-mprt.svg").read_text()
    titles = [loaded.title for loaded in loaded_models.values()]
    assert all(title in svg for title in titles)
    numbers = {r["model"]: dict(r["analyses"]) for r in rows(out)}
    for model in loaded_models:  # the steps it draws are the study's, from the head down
        steps = curve(numbers[model])["steps"]
        assert steps[0] == "fc" and steps[-1] == "conv1+bn1" and len(steps) == 18
