"""Strategies per class: spectral relevance analysis (SpRAy; Lapuschkin et al. 2019, "Unmasking
Clever Hans predictors and assessing what machines really learn") on a study's Grad-CAMs.

For one class (the images' label) and one model, each image's raw CAM is resized to a common
size and normalised; a Gaussian (RBF) kernel on their distances is the affinity; the number of
clusters is where the normalised graph Laplacian's eigenvalues jump most (the eigengap); scikit-
learn's `SpectralClustering` groups the maps, and its `TSNE` lays them out in 2-D. Each cluster
is one way the model looks at the class: its mean CAM, and its most typical images (those
closest to that mean). `sa-viz cluster STUDY_DIR` writes `clusters.parquet`, `clusters.json` and
a figure per class and model (`write_clusters`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sa_viz.outputs import files
from sa_viz.outputs.rows import read_rows

SIZE = 16  # every CAM resized to SIZE × SIZE (7 × 7 at layer4; other layers and whole images vary)
MIN_IMAGES = 8  # a class with fewer images (per model) is not clustered by default
MAX_CLUSTERS = 8  # the eigengap is looked for among the first MAX_CLUSTERS + 1 eigenvalues
TYPICAL = 4  # images named per cluster: those closest to its mean CAM
NEIGHBOURS = 10  # the RBF kernel's scale: the distance to this neighbour (`rbf_gamma`)
FIGURES = "clusters"  # the figures' folder in the study's
COLUMNS = pa.schema(
    [
        ("image", pa.string()),
        ("model", pa.string()),
        ("class", pa.int32()),
        ("cluster", pa.int32()),
        ("x", pa.float32()),
        ("y", pa.float32()),
    ]
)


class NotAStudy(ValueError):
    """A folder without a study's `study.json` and `rows/`."""


@dataclass(frozen=True)
class Strategies:
    """One class's CAMs under one model, clustered: `features` (n, size²) are the normalised
    maps, `gamma` the RBF affinity's, `eigenvalues` those of its normalised Laplacian (ascending,
    all n), `k` the clusters the eigengap chose, `clusters` each image's cluster (0: the largest),
    `embedding` (n, 2) the t-SNE coordinates."""

    label: int
    model: str
    keys: list[str]
    features: np.ndarray
    size: int
    gamma: float
    eigenvalues: np.ndarray
    k: int
    clusters: np.ndarray
    embedding: np.ndarray

    def means(self) -> np.ndarray:
        """Each cluster's mean CAM, (k, size, size); of other features (`size` 0), (k, d)."""
        means = np.stack([self.features[self.clusters == c].mean(0) for c in range(self.k)])
        return means.reshape(self.k, self.size, self.size) if self.size else means

    def typical(self, count: int = TYPICAL) -> list[list[str]]:
        """Per cluster, the keys of its `count` images closest to its mean CAM, closest first."""
        found = []
        for c, mean in enumerate(self.means().reshape(self.k, self.features.shape[1])):
            members = np.flatnonzero(self.clusters == c)
            distances = np.linalg.norm(self.features[members] - mean, axis=1)
            closest = members[np.argsort(distances, kind="stable")][:count]
            found.append([self.keys[i] for i in closest])
        return found


def cam_features(cams: Sequence[np.ndarray], size: int = SIZE) -> np.ndarray:
    """The CAMs as rows of a (n, size²) matrix, each resized to size × size and scaled to unit
    L2 norm.

    Unit L2, not [0, 1]: the clusters should group where a model looks, not how strongly (a raw
    Grad-CAM's scale follows the gradient's, image by image), and min–max scaling lets one
    pixel (the peak, the minimum) set the whole map's scale. On unit vectors, Euclidean distance
    is a function of the cosine, the usual similarity of two heatmaps. A map that is zero
    everywhere (ReLU left nothing) stays zero. Shrinking uses INTER_AREA (the mean over each
    cell, as SpRAy pools its heatmaps); enlarging, which INTER_AREA does as nearest-neighbour,
    uses INTER_LINEAR."""
    rows = []
    for cam in cams:
        cam = np.asarray(cam, dtype=np.float32)
        shrink = cam.shape[0] >= size and cam.shape[1] >= size
        resized = cv2.resize(
            cam, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        ).ravel()
        norm = float(np.linalg.norm(resized))
        rows.append(resized / norm if norm > 0 else resized)
    return np.stack(rows).astype(np.float64)


def rbf_gamma(features: np.ndarray, neighbours: int = NEIGHBOURS) -> float:
    """The RBF kernel's γ = 1 / (2σ²), exp(−d² / 2σ²), with σ the median distance from an image
    to its `neighbours`-th nearest (itself counted; at most half the class): the scale of a
    neighbourhood, so that an image's own strategy is near 1 and another's near 0, whatever the
    noise in the maps."""
    from sklearn.neighbors import NearestNeighbors

    count = max(2, min(neighbours, len(features) // 2))
    distances, _ = NearestNeighbors(n_neighbors=count).fit(features).kneighbors(features)
    sigma2 = float(np.median(distances[:, -1] ** 2))
    return 1.0 / (2.0 * sigma2) if sigma2 > 0 else 1.0


def rbf_affinity(features: np.ndarray, gamma: float) -> np.ndarray:
    """The affinity `SpectralClustering(affinity="rbf", gamma=gamma)` builds from the same
    features: exp(−γ‖xᵢ − xⱼ‖²)."""
    from sklearn.metrics.pairwise import rbf_kernel

    return rbf_kernel(features, gamma=gamma)


def laplacian_eigenvalues(affinity: np.ndarray) -> np.ndarray:
    """The eigenvalues of the normalised graph Laplacian I − D^-½ A D^-½, ascending: SciPy's, as
    scikit-learn's spectral embedding uses (the diagonal, self-loops, left out)."""
    from scipy.sparse.csgraph import laplacian

    return np.clip(np.linalg.eigvalsh(laplacian(affinity, normed=True)), 0.0, 2.0)


def eigengap(eigenvalues: np.ndarray, max_clusters: int = MAX_CLUSTERS) -> int:
    """The number of clusters k (1 to `max_clusters`) after which the eigenvalues jump most:
    λ_{k+1} − λ_k largest. A graph of k separate parts has k eigenvalues 0; more parts than
    `max_clusters` (every gap 0) give `max_clusters`."""
    gaps = np.diff(eigenvalues[: max_clusters + 1])
    if gaps.size == 0 or gaps.max() <= 1e-9:
        return max(1, min(max_clusters, len(eigenvalues)))
    return int(np.argmax(gaps)) + 1


def cluster_cams(
    keys: Sequence[str],
    cams: Sequence[np.ndarray],
    *,
    label: int = -1,
    model: str = "",
    max_clusters: int = MAX_CLUSTERS,
    seed: int = 0,
    size: int = SIZE,
) -> Strategies:
    """One class's CAMs (at least 3) clustered: the features (`cam_features`), the eigengap's
    k, scikit-learn's spectral clustering and t-SNE (both seeded with `seed`)."""
    features = cam_features(cams, size) if len(cams) else np.empty((0, size * size))
    return cluster_features(
        keys, features, label=label, model=model, max_clusters=max_clusters, seed=seed, size=size
    )


def cluster_features(
    keys: Sequence[str],
    features: np.ndarray,
    *,
    label: int = -1,
    model: str = "",
    max_clusters: int = MAX_CLUSTERS,
    seed: int = 0,
    size: int = 0,
) -> Strategies:
    """Any (n, d) features of n ≥ 3 images clustered as `cluster_cams` clusters CAMs (the CAMs'
    `size`; 0 for features that are not maps, e.g. a unit's channel gates)."""
    from sklearn.cluster import SpectralClustering
    from sklearn.manifold import TSNE

    n = len(keys)
    if n < 3:
        raise ValueError(f"{n} images: too few to cluster (3 at least)")
    features = np.asarray(features, dtype=np.float64)
    gamma = rbf_gamma(features)
    eigenvalues = laplacian_eigenvalues(rbf_affinity(features, gamma))
    k = eigengap(eigenvalues, min(max_clusters, n - 1))
    with warnings.catch_warnings():
        # Strategies far apart make a graph of separate parts (affinities that underflow to 0):
        # the case spectral clustering separates best, one eigenvalue 0 per part.
        warnings.filterwarnings("ignore", "Graph is not fully connected", UserWarning)
        found = SpectralClustering(
            n_clusters=k, affinity="rbf", gamma=gamma, random_state=seed
        ).fit_predict(features)
    # Cluster 0 the largest (ties: the one met first), so the numbers read the same every run.
    order = sorted(range(k), key=lambda c: (-np.sum(found == c), np.argmax(found == c)))
    clusters = np.argsort(order)[found]
    if np.ptp(features, axis=0).max() <= 1e-12:
        # One map n times: no layout to find (and t-SNE's PCA start divides by its zero spread,
        # which crashed the process in scikit-learn 1.9).
        xy = np.zeros((n, 2))
    else:
        # Perplexity below n (scikit-learn's rule), about a third of a small class.
        perplexity = min(30.0, max(1.0, (n - 1) / 3))
        embedding = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
        xy = embedding.fit_transform(features)
    return Strategies(label, model, list(keys), features, size, gamma, eigenvalues, k, clusters, xy)


def study_models(study: Path) -> list[str]:
    """The study's models, in its order; `NotAStudy` for a folder that is not a study."""
    summary = study / "study.json"
    if not summary.is_file() or not (study / "rows").is_dir():
        raise NotAStudy(
            f"{study} is not a study: it has no study.json and rows/ (make one with sa-viz study)"
        )
    return list(json.loads(summary.read_text()).get("models", {}))


def chosen_groups(
    study: Path, classes: Sequence[int] | None, models: Sequence[str] | None, min_images: int
) -> list[tuple[int, str]]:
    """The (class, model) pairs to cluster: the `classes` named (each with at least
    `min_images` images, else a ValueError), or every class that has them; the `models` named
    (each in the study, else a ValueError), or all."""
    known = study_models(study)
    unknown = [m for m in models or () if m not in known]
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)}: not in the study {study}; its models: {', '.join(known)}"
        )
    models = list(models or known)
    table = read_rows(study, columns=["model", "label"])
    counts = (
        table.filter(pc.is_valid(table["label"]))
        .group_by(["label", "model"])
        .aggregate([("label", "count")])
    )
    found = {(r["label"], r["model"]): r["label_count"] for r in counts.to_pylist()}
    if classes:
        for c in classes:
            few = {m: found.get((c, m), 0) for m in models if found.get((c, m), 0) < min_images}
            if few:
                has = ", ".join(f"{n} with {m}" for m, n in few.items())
                raise ValueError(
                    f"class {c}: {has} labelled images in {study}, fewer than --min-images "
                    f"{min_images}"
                )
        return [(c, m) for c in classes for m in models]
    chosen = sorted({c for (c, m), n in found.items() if m in models and n >= min_images})
    if not chosen:
        raise ValueError(
            f"no class in {study} has {min_images} labelled images (--min-images) or more"
        )
    return [(c, m) for c in chosen for m in models if found.get((c, m), 0) >= min_images]


def cluster_study(
    study: str | Path,
    *,
    classes: Sequence[int] | None = None,
    models: Sequence[str] | None = None,
    min_images: int = MIN_IMAGES,
    max_clusters: int = MAX_CLUSTERS,
    seed: int = 0,
) -> list[Strategies]:
    """The strategies of each chosen class under each chosen model (see `chosen_groups`), read
    from the study's rows one class at a time."""
    study = Path(study)
    groups = chosen_groups(study, classes, models, min_images)
    results = []
    for label in dict.fromkeys(c for c, _ in groups):
        table = read_rows(
            study, columns=["key", "model", "cam_raw", "cam_shape"], filters=[("label", "=", label)]
        )
        for model in (m for c, m in groups if c == label):
            rows = table.filter(pc.equal(table["model"], model)).to_pylist()
            cams = [np.reshape(r["cam_raw"], r["cam_shape"]) for r in rows]
            results.append(
                cluster_cams(
                    [r["key"] for r in rows],
                    cams,
                    label=label,
                    model=model,
                    max_clusters=max_clusters,
                    seed=seed,
                )
            )
    return results


def figure_name(result: Strategies) -> str:
    return f"class{result.label}-{result.model}"


def write_clusters(
    study: str | Path, results: Sequence[Strategies], settings: dict[str, Any]
) -> list[Path]:
    """`clusters.parquet` (one row per image, model and class: its cluster and t-SNE x, y),
    `clusters.json` (the settings, and per class and model its k, eigenvalues, clusters' sizes
    and typical images) and `clusters/class<C>-<model>.png` and `.svg`; returns the paths."""
    from sa_viz.data.imagenet import label as class_name
    from sa_viz.render.figures import clusters_figure

    study = Path(study)
    (study / FIGURES).mkdir(exist_ok=True)
    written: list[Path] = []
    rows: dict[str, list[Any]] = {name: [] for name in COLUMNS.names}
    groups = []
    for r in results:
        n = len(r.keys)
        rows["image"] += r.keys
        rows["model"] += [r.model] * n
        rows["class"] += [r.label] * n
        rows["cluster"] += r.clusters.tolist()
        rows["x"] += r.embedding[:, 0].tolist()
        rows["y"] += r.embedding[:, 1].tolist()
        title = f"{class_name(r.label)} (class {r.label}), {r.model}: {n} images"
        fig = clusters_figure(r.eigenvalues, r.k, r.means(), r.embedding, r.clusters, title)
        base = study / FIGURES / figure_name(r)
        written += [files.write_figure(base.with_suffix(".png"), fig)]
        written += [files.write_figure(base.with_suffix(".svg"), fig)]
        sizes = np.bincount(r.clusters, minlength=r.k).tolist()
        groups.append(
            {
                "class": r.label,
                "class_name": class_name(r.label),
                "model": r.model,
                "images": n,
                "gamma": r.gamma,
                "k": r.k,
                "eigenvalues": [round(float(v), 6) for v in r.eigenvalues],
                "clusters": [
                    {"cluster": c, "images": size, "typical": typical}
                    for c, (size, typical) in enumerate(zip(sizes, r.typical(), strict=True))
                ],
                "figure": f"{FIGURES}/{figure_name(r)}.png",
            }
        )
    table = pa.Table.from_pydict(rows, schema=COLUMNS)
    written.insert(0, files.write_parquet(study / "clusters.parquet", table))
    document = {"method": "spectral relevance analysis", "settings": settings, "groups": groups}
    written.insert(1, files.write_json(study / "clusters.json", document))
    return written
