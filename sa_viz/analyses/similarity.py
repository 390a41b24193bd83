"""How alike two maps of one image are, in the measures of the sanity checks (Adebayo et al.,
NeurIPS 2018): Spearman's rank correlation with and without absolute values, SSIM, and the
overlap of the maps' top pixels. NumPy and OpenCV only (both are dependencies already).

Two identical maps are alike (1) even when they are constant, where a correlation is undefined;
a constant map against a different one gives NaN (no order to compare).
"""

from __future__ import annotations

import cv2
import numpy as np

MEASURES = ("spearman", "spearman_abs", "ssim", "topk")
TOP_FRACTION = 0.2  # of the pixels, for `topk` (as `cam_agreement`'s IoU of the top 20 %)
# SSIM as Wang et al. (IEEE TIP 2004) define it: an 11 × 11 Gaussian window of σ = 1.5, K1 = 0.01,
# K2 = 0.03, the window's own (not the sample) covariance.
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # int(3.5 σ + 0.5): scikit-image's truncation of the same window
SSIM_K1, SSIM_K2 = 0.01, 0.03
TIE_SEED = 0


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of the flattened `values`, ties sharing their average rank (as Spearman's
    correlation needs, and as `scipy.stats.rankdata` gives them)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(v, kind="stable")
    ordered = v[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    counts = np.diff(np.r_[starts, len(v)])
    ranks = np.empty(len(v))
    ranks[order] = np.repeat(starts + (counts + 1) / 2, counts)
    return ranks


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r of the flattened arrays; 1 for identical ones, NaN if either is constant."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if np.array_equal(a, b):
        return 1.0
    a, b = a - a.mean(), b - b.mean()
    norm = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / norm) if norm > 0 else float("nan")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps (Pearson's r of their average ranks)."""
    if np.array_equal(a, b):
        return 1.0
    return pearson(average_ranks(a), average_ranks(b))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """The structural similarity of two (H, W) maps: the mean of SSIM's map over the pixels
    whose whole window lies inside the image (scikit-image's
    `structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`).

    Written here because scikit-image, torchmetrics and pytorch-msssim are none of them a
    dependency of this package, and OpenCV's Gaussian blur is all SSIM needs. The data range is
    that of both maps together (as Quantus's `ssim` takes it): 1 for maps in [0, 1] that span it.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"SSIM compares two maps of one shape; got {a.shape} and {b.shape}")
    if np.array_equal(a, b):
        return 1.0
    r = SSIM_RADIUS
    if min(a.shape) < 2 * r + 1:
        raise ValueError(f"SSIM's window needs maps of at least {2 * r + 1} pixels a side")
    data_range = max(a.max(), b.max()) - min(a.min(), b.min())
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2

    window = (2 * r + 1, 2 * r + 1)

    def mean(v: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(v, window, SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = mean(a), mean(b)
    var_a, var_b = mean(a * a) - mu_a**2, mean(b * b) - mu_b**2
    cov = mean(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(s[r:-r, r:-r].mean())


def top_pixels(cam: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """The flat indices of the round(fraction · N) highest pixels of `cam`; ties broken at
    random (a map that is 0 over most of the image has no order there to agree on)."""
    v = np.asarray(cam, np.float64).ravel()
    k = max(1, round(fraction * len(v)))
    kth = np.partition(v, len(v) - k)[len(v) - k]  # the k-th highest value
    above = np.flatnonzero(v > kth)
    tied = np.flatnonzero(v == kth)
    return np.concatenate([above, rng.choice(tied, k - len(above), replace=False)])


def topk_intersection(a: np.ndarray, b: np.ndarray, fraction: float = TOP_FRACTION) -> float:
    """The share of `a`'s top `fraction` of pixels that are among `b`'s top `fraction`: 1 when
    they pick the same pixels, about `fraction` for unrelated maps."""
    if np.array_equal(a, b):
        return 1.0
    rng = np.random.default_rng(TIE_SEED)
    top_a, top_b = top_pixels(a, fraction, rng), top_pixels(b, fraction, rng)
    return len(np.intersect1d(top_a, top_b)) / len(top_a)


def similarities(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Every measure of `MEASURES` for two maps of one image. For the CAMs of this package,
    ReLU'd and scaled to [0, 1], `spearman_abs` equals `spearman`; both are kept so that a
    registered method with signed maps is read as Adebayo et al. read gradients."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return {
        "spearman": spearman(a, b),
        "spearman_abs": spearman(np.abs(a), np.abs(b)),
        "ssim": ssim(a, b),
        "topk": topk_intersection(a, b),
    }
