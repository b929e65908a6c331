"""The statistics of generated-image evaluation, on features any network gives (pure numpy/scipy).

- :func:`frechet_distance`: FID's formula, ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2)``
  between two feature sets. Called "FID" only on Inception pool features; on another network's
  features the caller names it after that network (e.g. "FID (atelier-resnet features)"). Biased
  upwards for small sets (the covariance of n < dim points is singular): compare sets of the same
  size only, as the evaluation does (generated vs real, and the untrained model's samples).
- :func:`kernel_distance`: KID, the unbiased MMD^2 with the cubic polynomial kernel
  ``(x.y / d + 1)^3``, averaged over random subsets (unbiased for any set size).
- :func:`inception_score`: ``exp(E_x KL(p(y|x) || p(y)))`` from class probabilities, mean and
  standard deviation over splits (the usual report), for Inception's 1000 classes or another
  classifier's (named after it).
- :func:`with_interval`: a set statistic with a 95% bootstrap interval over the generated images
  (the reference set held fixed), via `models.intervals.bootstrap_indices`.
- :func:`garment_colour`: the colour check of caption faithfulness: the named colour most pixels of
  the torso window of a centred figure are nearest to.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from models.intervals import Interval, bootstrap_indices


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need a (n >= 2, dim) feature matrix, got shape {x.shape}")
    return x.mean(0), np.cov(x, rowvar=False)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to feature sets ``a`` and ``b`` (n, dim), the value
    of FID's formula (:func:`frechet_distance_sqrtm`) without a dim x dim matrix square root (minutes
    at 2048-d, taken once per bootstrap resample): ``tr sqrt(S_a S_b)`` is the sum of the singular values
    of ``A B^T / sqrt((n_a - 1)(n_b - 1))`` (A, B the centred features; n x n) when n < dim, else of
    the square roots of the eigenvalues of the symmetric ``S_b^1/2 S_a S_b^1/2``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or len(a) < 2 or len(b) < 2:
        raise ValueError(f"need two (n >= 2, dim) feature matrices, got shapes {a.shape} and {b.shape}")
    ac, bc = a - a.mean(0), b - b.mean(0)
    trace_a, trace_b = (ac**2).sum() / (len(a) - 1), (bc**2).sum() / (len(b) - 1)
    if min(len(a), len(b)) < a.shape[1]:
        cross = np.linalg.svd(ac @ bc.T, compute_uv=False).sum() / np.sqrt((len(a) - 1) * (len(b) - 1))
    else:
        w, v = np.linalg.eigh(bc.T @ bc / (len(b) - 1))
        root_b = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        middle = root_b @ (ac.T @ ac / (len(a) - 1)) @ root_b
        cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + trace_a + trace_b - 2 * cross)


def frechet_distance_sqrtm(a: np.ndarray, b: np.ndarray) -> float:
    """FID's formula as the reference code computes it (``scipy.linalg.sqrtm`` of ``S_a S_b``): what
    :func:`frechet_distance` is tested against."""
    from scipy import linalg

    mu_a, s_a = _stats(a)
    mu_b, s_b = _stats(b)
    covmean = linalg.sqrtm(s_a @ s_b)
    if not np.isfinite(covmean).all():  # near-singular product: regularise as the reference code does
        eps = np.eye(len(s_a)) * 1e-6
        covmean = linalg.sqrtm((s_a + eps) @ (s_b + eps))
    covmean = np.real(covmean)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(covmean))


def kernel_distance(a: np.ndarray, b: np.ndarray, subsets: int = 50, subset_size: int = 100, seed: int = 0) -> float:
    """KID: the mean over ``subsets`` random subsets (``subset_size``, capped at the smaller set)
    of the unbiased MMD^2 with the kernel ``(x.y / dim + 1) ** 3``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {len(a)} and {len(b)}")
    rng, dim, out = np.random.default_rng(seed), a.shape[1], []
    for _ in range(subsets):
        x, y = a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T) / dim + 1) ** 3, ((y @ y.T) / dim + 1) ** 3, ((x @ y.T) / dim + 1) ** 3
        off = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        out.append(off - 2 * kxy.mean())
    return float(np.mean(out))


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """(mean, std) over ``splits`` of ``exp(mean KL(p(y|x) || p(y)))``; ``probs`` (n, classes)."""
    p = np.asarray(probs, dtype=np.float64)
    splits = max(1, min(splits, len(p)))
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(0, keepdims=True)
        kl = (part * (np.log(part + 1e-12) - np.log(py + 1e-12))).sum(1)
        scores.append(float(np.exp(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))


def with_interval(statistic: Callable[[np.ndarray, np.ndarray], float], generated: np.ndarray, reference: np.ndarray,
                  n_boot: int = 200, seed: int = 0) -> Interval:  # fmt: skip
    """``statistic(generated, reference)`` with a 95% bootstrap interval over the generated images."""
    generated = np.asarray(generated)
    value = statistic(generated, reference)
    boot = bootstrap_indices(len(generated), lambda idx: statistic(generated[idx], reference), n_boot=n_boot, seed=seed)
    return Interval(value, boot.low, boot.high, boot.n)


GARMENT_BOX = (0.45, 0.70, 0.40, 0.60)  # (top, bottom, left, right) as fractions of the side: the torso of a centred figure


def garment_colour(image: np.ndarray, palette: Sequence[tuple[str, tuple[int, int, int]]],
                   box: tuple[float, float, float, float] = GARMENT_BOX) -> str:  # fmt: skip
    """The name in ``palette`` most pixels of ``box`` (the torso of a centred, full-length figure, as
    Fashion Synthesis images are: the garment there whatever its category) are nearest to. A pattern's
    accent colour, the background and skin outside the box do not vote. ``image``: (H, W, 3) uint8,
    or float in [0, 1]. The evaluation reports the reader on real images (its ceiling) beside
    generated ones: 0.77 of the scale-1 sample train images at 32 px (the whole-image reader it
    replaced read 0.59)."""
    x = np.asarray(image, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got shape {x.shape}")
    if x.dtype.kind == "f" and x.max() <= 1.0:
        x = x * 255.0
    h, w = x.shape[:2]
    top, bottom, left, right = box
    crop = x[int(top * h) : max(int(top * h) + 1, math.ceil(bottom * h)), int(left * w) : max(int(left * w) + 1, math.ceil(right * w))]
    names, rgb = zip(*palette)
    distance = np.linalg.norm(crop.reshape(-1, 1, 3) - np.asarray(rgb, dtype=np.float64)[None], axis=2)
    return names[int(np.bincount(distance.argmin(1), minlength=len(names)).argmax())]
