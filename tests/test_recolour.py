"""Recolourings (issue 15, item 3): the structure evaluation's are no channel permutation and never
a training augmentation; grayscale_mask's channel invariance is a property of the mode (its input
is identical under any channel permutation), stated in the report, not measured. Tiny, CPU, no data."""

from __future__ import annotations

import itertools

import pytest
import torch

from flows.evaluation.structure import eval_recolour, grayscale_property
from models.recolour import (
    EVAL_RECOLOURS,
    HELD_OUT_HUE_DEGREES,
    TRAIN_HUE_DEGREES,
    TRAIN_RECOLOURS,
    permute_channels,
)
from models.siamese import SiameseConfig, SiameseEncoder
from models.siamese_train import recolour

ALL_ORDERS = list(itertools.permutations(range(3)))  # the identity included


def _garments(n: int = 4, background: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Garments of random colours with a stripe on a plain background (white or grey)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, 3, 32, 32), background)
    for i in range(n):
        body, stripe = torch.rand(3, generator=g) * 0.8, torch.rand(3, generator=g) * 0.8
        x[i, :, 6:28, 10:22] = body.view(3, 1, 1)
        x[i, :, 6:12, 4:28] = body.view(3, 1, 1)
        x[i, :, 14:18, 10:22] = stripe.view(3, 1, 1)
    return x


def test_evaluation_recolourings_are_disjoint_from_training_and_no_channel_permutation():
    assert not set(EVAL_RECOLOURS) & set(TRAIN_RECOLOURS)
    assert not set(HELD_OUT_HUE_DEGREES) & set(TRAIN_HUE_DEGREES)
    assert {r.kind for r in EVAL_RECOLOURS} == {"hue", "palette", "lightness"}
    x = _garments()
    train_outputs = [r(x) for r in TRAIN_RECOLOURS]
    for r in EVAL_RECOLOURS:
        y = r(x)
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
        assert (y[..., 0, 0] == 1).all(), r.name  # the white background stays white
        for order in ALL_ORDERS:  # on pixels: not any channel order of the input (nor the input itself)
            assert (y - permute_channels(x, order)).abs().amax() > 0.05, (r.name, order)
        for t, out in zip(TRAIN_RECOLOURS, train_outputs):  # nor what any training recolouring makes
            assert (y - out).abs().amax() > 0.05, (r.name, t.name)
        assert torch.equal(y[..., :4, :], x[..., :4, :])  # rows with no garment: untouched


def test_training_augmentation_draws_only_training_recolourings():
    x = _garments(1)[0]
    train = [r(x) for r in TRAIN_RECOLOURS]
    evals = [r(x) for r in EVAL_RECOLOURS]
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(200):
        y = recolour(x, g)
        match = [i for i, t in enumerate(train) if torch.allclose(y, t, atol=1e-6)]
        assert len(match) >= 1, "an augmentation outside TRAIN_RECOLOURS"
        assert not any(torch.allclose(y, e, atol=1e-3) for e in evals)
        seen.add(match[0])
    assert seen == set(range(len(TRAIN_RECOLOURS)))  # every training recolouring is used


def test_the_evaluation_recolours_each_item_with_a_held_out_transform():
    picked = [eval_recolour(f"validation/{i:06d}.jpg#item1") for i in range(300)]
    assert set(picked) == set(EVAL_RECOLOURS)  # each one is used, none other
    assert eval_recolour("validation/000001.jpg#item1") == picked[1]  # fixed per item


@pytest.mark.parametrize("background", [1.0, 0.5])
def test_grayscale_mask_input_is_identical_under_channel_permutations(background):
    """The property of the mode: what the encoder sees cannot change under a channel swap, so any
    channel-swap 'result' of an untrained or trained grayscale_mask model is this, not learning."""
    torch.manual_seed(0)
    gray = SiameseEncoder(SiameseConfig(mode="grayscale_mask", image_size=32)).eval()
    colour = SiameseEncoder(SiameseConfig(mode="color_mask_crop", image_size=32)).eval()
    x = _garments(background=background)
    seen = gray.prepare(x)
    assert 0 < seen.mean() < 1
    for order in ALL_ORDERS:
        assert torch.equal(gray.prepare(permute_channels(x, order)), seen)
    assert not torch.equal(colour.prepare(permute_channels(x, (2, 1, 0))), colour.prepare(x))  # a colour mode sees it
    # the structure report states it for the mode (and for no other), as a property, not a result
    assert grayscale_property(gray) and "property of the mode" in grayscale_property(gray)[0]
    assert grayscale_property(colour) == []
