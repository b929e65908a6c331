"""The statistics of generated-image evaluation (models.generation_stats) on known inputs."""

from __future__ import annotations

import numpy as np
import pytest

from models.generation_stats import dominant_colour, frechet_distance, inception_score, kernel_distance, with_interval

PALETTE = (("red", (200, 30, 40)), ("blue", (40, 90, 200)), ("white", (245, 245, 245)))


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (4000, 3))
    b = rng.normal(0, 2, (4000, 3)) + np.array([3.0, 0, 0])
    # N(0, I) vs N(m, 4I): |m|^2 + 3 * (1 + 4 - 2 * 2) = 9 + 3
    assert frechet_distance(a, b) == pytest.approx(12.0, rel=0.05)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="feature matrix"):
        frechet_distance(a[:1], b)


def test_kernel_distance_is_near_zero_for_one_distribution_and_grows_with_the_shift():
    rng = np.random.default_rng(1)
    a, same = rng.normal(0, 1, (300, 8)), rng.normal(0, 1, (300, 8))
    near, far = same + 0.5, same + 2.0
    zero = kernel_distance(a, same)
    assert abs(zero) < 0.05 < kernel_distance(a, near) < kernel_distance(a, far)


def test_inception_score_is_one_for_constant_predictions_and_the_class_count_for_sure_distinct_ones():
    assert inception_score(np.full((100, 5), 0.2), splits=4)[0] == pytest.approx(1.0)
    sure = np.eye(5)[np.arange(100) % 5]
    assert inception_score(sure, splits=4)[0] == pytest.approx(5.0, rel=1e-3)


def test_with_interval_brackets_the_value():
    rng = np.random.default_rng(2)
    gen, ref = rng.normal(0.5, 1, (60, 4)), rng.normal(0, 1, (60, 4))
    iv = with_interval(frechet_distance, gen, ref, n_boot=50)
    assert iv.value == pytest.approx(frechet_distance(gen, ref)) and iv.low < iv.high and iv.n == 60


def test_dominant_colour_reads_the_garment_not_the_background():
    image = np.full((32, 32, 3), 245, np.uint8)  # white background
    image[8:24, 8:24] = (190, 40, 45)  # a red garment
    image[8:12, 8:12] = (45, 85, 195)  # a smaller blue patch
    assert dominant_colour(image, PALETTE) == "red"
    assert dominant_colour(image.astype(np.float32) / 255, PALETTE) == "red"
    assert dominant_colour(np.full((8, 8, 3), 245, np.uint8), PALETTE) is None  # nothing but background
