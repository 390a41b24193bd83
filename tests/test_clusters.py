"""Strategies per class (`sa_viz.studies.clusters`): three planted CAM patterns written as a
study's rows are found again (k = 3 by the eigengap, adjusted Rand index 1), the clustering is
scikit-learn's on the same features, and `sa-viz cluster` writes its table and figures or
stops with one sentence."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.sparse.csgraph import laplacian
from sklearn.cluster import SpectralClustering
from sklearn.metrics import adjusted_rand_score

from sa_viz.cli import main
from sa_viz.outputs.rows import SCHEMA
from sa_viz.outputs.study import write_part
from sa_viz.studies import clusters
from sa_viz.studies.clusters import NotAStudy, cluster_cams, cluster_study

MODELS = ("resnet50", "sa_resnet50")
CLASS = 281  # tabby
SMALL = 967  # espresso: 5 images, under the default --min-images


def pattern(which: int) -> np.ndarray:
    """Three ways to look at a 7 × 7 map: the top-left corner, the bottom-right one, a band."""
    cam = np.zeros((7, 7), np.float32)
    if which == 0:
        cam[:3, :3] = 1
    elif which == 1:
        cam[4:, 4:] = 1
    else:
        cam[3, :] = 1
    return cam


def planted(count: int = 30, seed: int = 0) -> tuple[list[str], list[np.ndarray], list[int]]:
    """`count` CAMs in the three patterns in turn, each at its own scale (as a raw Grad-CAM's
    follows its gradient) with noise."""
    rng = np.random.default_rng(seed)
    keys, cams, truth = [], [], []
    for i in range(count):
        which = i % 3
        noise = rng.uniform(0, 0.15, (7, 7)).astype(np.float32)
        cams.append(pattern(which) * rng.uniform(0.5, 20) + noise)
        keys.append(f"{CLASS}/{i:02d}.jpg")
        truth.append(which)
    return keys, cams, truth


def row(key: str, model: str, label: int | None, cam: np.ndarray) -> dict:
    found = dict.fromkeys(SCHEMA.names)
    found |= {"key": key, "model": model, "label": label, "target": label, "units": []}
    found |= {"cam_raw": cam.ravel().tolist(), "cam_shape": list(cam.shape)}
    return found


@pytest.fixture
def study(tmp_path):
    """A study's folder written as `run_study` writes one (its schema, `write_part`): 30
    images of CLASS in three planted patterns, 5 of SMALL and 2 unlabelled, for two models."""
    out = tmp_path / "study"
    (out / "rows").mkdir(parents=True)
    keys, cams, _ = planted()
    rng = np.random.default_rng(1)
    records = [row(k, m, CLASS, c) for k, c in zip(keys, cams, strict=True) for m in MODELS]
    records += [row(f"{SMALL}/{i}.jpg", m, SMALL, pattern(0)) for i in range(5) for m in MODELS]
    records += [row(f"x/{i}.jpg", m, None, rng.random((7, 7))) for i in range(2) for m in MODELS]
    table = pa.Table.from_pylist(records, schema=SCHEMA)
    write_part(out, 0, [table], out / "problems.txt", [])
    (out / "study.json").write_text(json.dumps({"models": {m: {} for m in MODELS}}))
    return out


def test_planted_strategies_are_found_in_a_study(study):
    results = cluster_study(study, seed=0)
    assert [(r.label, r.model) for r in results] == [(CLASS, m) for m in MODELS]
    _, _, truth = planted()
    for result in results:
        assert result.k == 3  # the eigengap
        assert np.allclose(result.eigenvalues[:3], 0, atol=1e-6) and result.eigenvalues[3] > 0.5
        assert adjusted_rand_score(truth, result.clusters) == 1.0
        assert result.embedding.shape == (30, 2) and np.isfinite(result.embedding).all()
        means = result.means()
        assert means.shape == (3, 16, 16)
        # Each cluster's mean is its pattern: its brightest cell where the pattern is.
        for c in range(3):
            members = [t for t, found in zip(truth, result.clusters, strict=True) if found == c]
            which = members[0]
            y, x = np.unravel_index(np.argmax(means[c]), means[c].shape)
            assert pattern(which)[y * 7 // 16, x * 7 // 16] == 1
        for c, typical in enumerate(result.typical()):
            assert len(typical) == 4
            assert all(result.clusters[result.keys.index(k)] == c for k in typical)


def test_the_clustering_is_scikit_learns_on_the_same_features():
    keys, cams, _ = planted(seed=3)
    result = cluster_cams(keys, cams, seed=7)
    model = SpectralClustering(
        n_clusters=result.k, affinity="rbf", gamma=result.gamma, random_state=7
    ).fit(result.features)
    # The same partition; ours numbered by size (all 10 here, so only the numbers may differ).
    assert adjusted_rand_score(model.labels_, result.clusters) == 1.0
    # The eigenvalues are of the Laplacian of the affinity scikit-learn clustered.
    expected = np.linalg.eigvalsh(laplacian(model.affinity_matrix_, normed=True))
    np.testing.assert_allclose(result.eigenvalues, np.clip(expected, 0, 2), atol=1e-9)


def test_features_are_unit_norm_maps_of_the_common_size():
    cams = [pattern(0) * 5, np.zeros((7, 7)), np.ones((28, 28)), np.ones((7, 10))]
    features = clusters.cam_features(cams, size=16)
    assert features.shape == (4, 256)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), [1, 0, 1, 1], atol=1e-6)
    np.testing.assert_allclose(features[2], features[3], atol=1e-6)  # shape, not size


def test_the_eigengap():
    assert clusters.eigengap(np.array([0, 0, 0, 0.9, 1, 1.1])) == 3
    assert clusters.eigengap(np.array([0, 0.8, 0.9, 1.0])) == 1
    assert clusters.eigengap(np.array([0, 0, 0, 0, 0.9]), max_clusters=2) == 2  # parts > max


def test_the_command_line_writes_the_table_the_json_and_the_figures(study, capsys):
    assert main(["cluster", str(study), "--models", "sa_resnet50", "--seed", "2"]) == 0
    assert f"class {CLASS}, sa_resnet50: 30 images, k = 3 (10, 10, 10)" in capsys.readouterr().out
    table = pq.read_table(study / "clusters.parquet")
    assert table.column_names == ["image", "model", "class", "cluster", "x", "y"]
    assert table.num_rows == 30 and set(table["model"].to_pylist()) == {"sa_resnet50"}
    assert set(table["class"].to_pylist()) == {CLASS}
    assert sorted(set(table["cluster"].to_pylist())) == [0, 1, 2]
    document = json.loads((study / "clusters.json").read_text())
    (group,) = document["groups"]
    assert group["k"] == 3 and len(group["eigenvalues"]) == 30
    assert [c["images"] for c in group["clusters"]] == [10, 10, 10]
    assert document["settings"]["seed"] == 2
    for suffix in (".png", ".svg"):
        figure = study / "clusters" / f"class{CLASS}-sa_resnet50{suffix}"
        assert figure.stat().st_size > 5000, figure
    assert group["figure"] == f"clusters/class{CLASS}-sa_resnet50.png"


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--classes", str(SMALL)], f"class {SMALL}: 5 with resnet50, 5 with sa_resnet50"),
        (["--models", "senet"], "senet: not in the study"),
        (["--min-images", "31"], "no class in"),
    ],
    ids=["too-few-images", "unknown-model", "no-class-big-enough"],
)
def test_the_command_line_stops_with_one_sentence(study, flags, said, capsys):
    assert main(["cluster", str(study), *flags]) == 2
    error = capsys.readouterr().err
    assert error.startswith("sa-viz cluster: error: ") and said in error, error
    assert error.count("\n") == 1
    assert not (study / "clusters.parquet").exists()


def test_a_folder_that_is_not_a_study(tmp_path, capsys):
    with pytest.raises(NotAStudy, match="is not a study"):
        cluster_study(tmp_path)
    assert main(["cluster", str(tmp_path)]) == 2
    assert "is not a study" in capsys.readouterr().err


def test_a_small_class_can_be_asked_for(study):
    (result,) = cluster_study(study, classes=[SMALL], models=["resnet50"], min_images=5)
    assert result.k == 1 and (result.clusters == 0).all()  # five copies of one map


def test_the_usage_names_the_command(capsys):
    assert main([]) == 2
    assert "sa-viz cluster STUDY_DIR" in capsys.readouterr().err


def test_the_report_gains_the_strategies(study, capsys):
    """`sa-viz cluster` puts its figures into the study's report, in place of the section's
    markers (a second run replaces it, never adds a second); a report without them gets it at
    its end."""
    report = study / "report.html"
    report.write_text("<h1>study</h1><!-- clusters --><!-- /clusters --><p>the end</p>")
    for _ in range(2):
        assert main(["cluster", str(study), "--models", "sa_resnet50", "--seed", "2"]) == 0
    page = report.read_text()
    assert page.count("<h2>Strategies per class</h2>") == 1 and page.endswith("<p>the end</p>")
    assert f'<img src="clusters/class{CLASS}-sa_resnet50.png"' in page
    assert "k = 3 (images per cluster: 10, 10, 10)" in page
    assert f"the strategies are in {report}" in capsys.readouterr().out
    report.write_text("<h1>an older report</h1>")
    assert main(["cluster", str(study), "--models", "sa_resnet50"]) == 0
    assert report.read_text().startswith("<h1>an older report</h1><!-- clusters --><h2>")
