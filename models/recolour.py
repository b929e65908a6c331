"""Recolourings of garment images: the siamese training augmentation and the structure
evaluation's, two disjoint sets by construction.

Both keep white white (the evaluation crops are garments on white, so a recolouring changes the
garment only) and change no pixel's position (the structure stays).

- :data:`TRAIN_RECOLOURS` (``models.siamese_train.recolour`` draws only from these): the five
  non-identity RGB channel permutations and hue rotations by :data:`TRAIN_HUE_DEGREES`
  (multiples of 60 degrees).
- :data:`EVAL_RECOLOURS` (``flows.evaluation.structure``: one per item, picked by a hash of its
  id): hue rotations by the held-out :data:`HELD_OUT_HUE_DEGREES` (odd multiples of 30 degrees:
  never a training angle), palette remaps (the garment's luma mapped onto a gradient from one
  palette colour to white: every hue replaced) and lightness changes (a gamma on every channel).
  None of them is a channel permutation, and none is a training transform (a test checks both
  on images: ``tests/test_recolour.py``).

A :class:`Recolour` is a frozen, hashable spec (``kind``, ``param``) applied with ``r(x)`` to
(..., 3, H, W) float images in [0, 1]; its ``name`` goes into the reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

PERMUTATIONS = ((0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))  # every RGB order but the identity
TRAIN_HUE_DEGREES = (60, 120, 180, 240, 300)
HELD_OUT_HUE_DEGREES = (90, 150, 210, 270)  # 30 degrees from every training angle
PALETTE = ((0.55, 0.10, 0.15), (0.10, 0.35, 0.20), (0.45, 0.35, 0.05))  # dark ends of the gradient maps (wine, forest, ochre)
GAMMAS = (0.6, 1.7)  # lightness changes: < 1 lighter, > 1 darker (0 and 1 stay put)

_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_LUMA = _YIQ[0]


def permute_channels(x: torch.Tensor, perm: tuple[int, int, int]) -> torch.Tensor:
    """The image(s) with RGB reordered by ``perm`` (white and greys unchanged)."""
    return x[..., list(perm), :, :]


def hue_rotate(x: torch.Tensor, angle: float) -> torch.Tensor:
    """Rotate the hue by ``angle`` radians in YIQ space (luma and greys kept), clamped to [0, 1];
    ``x`` is (..., 3, H, W)."""
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    m = (torch.linalg.inv(_YIQ) @ rot @ _YIQ).to(x.dtype).to(x.device)
    return torch.einsum("ij,...jhw->...ihw", m, x).clamp(0, 1)


def palette_remap(x: torch.Tensor, colour: tuple[float, float, float]) -> torch.Tensor:
    """A gradient map: each pixel's luma ``y`` becomes ``colour * (1 - y) + white * y`` (white
    stays white, every hue is replaced by tones of ``colour``)."""
    y = torch.einsum("j,...jhw->...hw", _LUMA.to(x.dtype).to(x.device), x).clamp(0, 1).unsqueeze(-3)
    c = torch.tensor(colour, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return c * (1 - y) + y


def lightness(x: torch.Tensor, gamma: float) -> torch.Tensor:
    """``x ** gamma`` on every channel: lighter for gamma < 1, darker above (white and black stay)."""
    return x.clamp(0, 1).pow(gamma)


@dataclass(frozen=True)
class Recolour:
    """One recolouring: ``kind`` in ``permute`` / ``hue`` (``param`` in degrees) / ``palette``
    (the gradient's dark colour) / ``lightness`` (a gamma)."""

    kind: str
    param: tuple | float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "permute":
            return permute_channels(x, self.param)
        if self.kind == "hue":
            return hue_rotate(x, math.radians(self.param))
        if self.kind == "palette":
            return palette_remap(x, self.param)
        if self.kind == "lightness":
            return lightness(x, self.param)
        raise ValueError(f"unknown recolouring {self.kind!r}")

    @property
    def name(self) -> str:
        if self.kind == "permute":
            return "channels " + "".join("RGB"[i] for i in self.param)
        if self.kind == "hue":
            return f"hue {self.param:g} deg"
        if self.kind == "palette":
            return "palette (" + ", ".join(f"{v:g}" for v in self.param) + ")->white"
        return f"lightness gamma {self.param:g}"


TRAIN_RECOLOURS = tuple([Recolour("permute", p) for p in PERMUTATIONS] + [Recolour("hue", float(a)) for a in TRAIN_HUE_DEGREES])
EVAL_RECOLOURS = tuple([Recolour("hue", float(a)) for a in HELD_OUT_HUE_DEGREES] + [Recolour("palette", c) for c in PALETTE]
                       + [Recolour("lightness", g) for g in GAMMAS])  # fmt: skip


def describe(recolours) -> str:
    """One line: the recolourings by name."""
    return "; ".join(r.name for r in recolours)
