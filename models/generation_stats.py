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
- :func:`dominant_colour`: the colour check of caption faithfulness: the named colour most of an
  image's foreground pixels (those that differ from the border's median colour) are nearest to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from models.intervals import Interval, bootstrap_indices


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need a (n >= 2, dim) feature matrix, got shape {x.shape}")
    return x.mean(0), np.cov(x, rowvar=False)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to feature sets ``a`` and ``b`` (n, dim)."""
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


def dominant_colour(image: np.ndarray, palette: Sequence[tuple[str, tuple[int, int, int]]], background_tolerance: float = 40.0,
                    match_tolerance: float = 60.0) -> str | None:  # fmt: skip
    """The name in ``palette`` that most of ``image``'s foreground pixels are nearest to (within
    ``match_tolerance`` in RGB); foreground = farther than ``background_tolerance`` from the
    border's median colour. None when no foreground pixel is near any palette colour. Skin and
    hair count too, so the reader is imperfect: the evaluation reports it on real images (its
    ceiling) beside generated ones. ``image``: (H, W, 3) uint8, or float in [0, 1]."""
    x = np.asarray(image, dtype=np.float64)
    if x.dtype.kind == "f" and x.max() <= 1.0:
        x = x * 255.0
    border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    pixels = x.reshape(-1, 3)
    pixels = pixels[np.linalg.norm(pixels - np.median(border, axis=0), axis=1) > background_tolerance]
    names, rgb = zip(*palette)
    if not len(pixels):
        return None
    distance = np.linalg.norm(pixels[:, None, :] - np.asarray(rgb, dtype=np.float64)[None], axis=2)
    nearest = distance.argmin(1)[distance.min(1) <= match_tolerance]
    return names[int(np.bincount(nearest, minlength=len(names)).argmax())] if len(nearest) else None
