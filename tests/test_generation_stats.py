"""The statistics of generated-image evaluation (models.generation_stats) on known inputs."""

from __future__ import annotations

import numpy as np
import pytest

from models.generation_stats import frechet_distance, garment_colour, inception_score, kernel_distance, with_interval

PALETTE = (("red", (200, 30, 40)), ("blue", (40, 90, 200)), ("white", (245, 245, 245)))


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (4000, 3))
    b = rng.normal(0, 2, (4000, 3)) + np.array([3.0, 0, 0])
    # N(0, I) vs N(m, 4I): |m|^2 + 3 * (1 + 4 - 2 * 2) = 9 + 3
    assert frechet_distance(a, b) == pytest.approx(12.0, rel=0.05)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="feature matri"):
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


def test_garment_colour_reads_the_torso_not_the_background_or_a_pattern():
    image = np.full((32, 32, 3), 245, np.uint8)  # white background, larger than the garment
    image[12:28, 10:22] = (190, 40, 45)  # a red garment over the torso
    image[14:24:3, 10:22] = (45, 85, 195)  # blue stripes: an accent, fewer pixels
    assert garment_colour(image, PALETTE) == "red"
    assert garment_colour(image.astype(np.float32) / 255, PALETTE) == "red"
    image[12:28, 10:22] = (45, 85, 195)
    assert garment_colour(image, PALETTE) == "blue"
    assert garment_colour(np.full((4, 4, 3), 245, np.uint8), PALETTE) == "white"  # a tiny image still reads its box
    with pytest.raises(ValueError, match="shape"):
        garment_colour(np.zeros((8, 8)), PALETTE)


@pytest.mark.parametrize("n_a,n_b,dim", [(10, 12, 20), (50, 40, 8)])
def test_frechet_distance_equals_the_reference_formula(n_a, n_b, dim):
    from models.generation_stats import frechet_distance_sqrtm

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(n_a, dim)), rng.normal(0.3, 1.5, size=(n_b, dim))
    assert frechet_distance(a, b) == pytest.approx(frechet_distance_sqrtm(a, b), rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-9)
