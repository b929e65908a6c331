"""Inception-v3 features for true FID / KID / IS, from a local weights file (nothing downloads).

:func:`load_inception` takes one of two kinds of file, told apart by the classifier's width:

- **the FID Inception** (1008 classes): the TensorFlow Inception graph of 2015-12-05 that FID, KID
  and IS are defined on and published figures use, ported to PyTorch as
  ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid) or
  ``weights-inception-2015-12-05-6726825d.pth`` (torch-fidelity): the same tensors under
  torchvision's names. It runs as TensorFlow ran it: the images as 8-bit values scaled by
  ``(x - 128) / 128``, resized to 299 px with TF1's bilinear resize (no half-pixel offset), average
  pools that leave the padding out of the mean and a max pool in the last block; IS from the
  unbiased 1008-way logits (pool features times the classifier's weights, no bias, as the original
  IS code). Its FID is the one comparable with published FIDs (the same sample counts given).
- **a torchvision** ``inception_v3`` state dict (1000 ImageNet classes, e.g. the IMAGENET1K_V1
  weights saved with ``torch.save(model.state_dict(), PATH)``; ``AuxLogits.*`` ignored): ImageNet
  normalisation, bilinear resize to 299, IS on its 1000-way softmax. Another network: its FID is
  not comparable with published ones, and :attr:`InceptionFeatures.name` says which it is.

The file is read with ``safetensors`` or ``torch.load(weights_only=True)`` (never a pickle with
code); a file that is not such a state dict is a :class:`ModelFileError` naming it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from models.pretrained import ModelFileError, load_weights_file, short_cause

FID_CLASSES = 1008  # the TF 2015-12-05 graph's classifier (1000 ImageNet classes + 8 unused)
TORCHVISION_CLASSES = 1000
INPUT_SIZE = 299
POOL_DIM = 2048
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FIX = ("give the FID Inception weights (pt_inception-2015-12-05-6726825d.pth) or a torchvision inception_v3 "
       "state dict (torch.save(torchvision.models.inception_v3(weights=...).state_dict(), PATH))")  # fmt: skip


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _tf_max_pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


def _tf_blocks():
    """Subclasses of torchvision's Inception blocks whose pool branch pools as TensorFlow did
    (``pool``); same submodules and parameter names, so a block's class is swapped in place."""
    from torchvision.models.inception import InceptionA, InceptionC, InceptionE

    class TFInceptionA(InceptionA):
        pool = staticmethod(_tf_avg_pool)

        def _forward(self, x):
            b5 = self.branch5x5_2(self.branch5x5_1(x))
            b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            return [self.branch1x1(x), b5, b3, self.branch_pool(self.pool(x))]

    class TFInceptionC(InceptionC):
        pool = staticmethod(_tf_avg_pool)

        def _forward(self, x):
            b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
            d = x
            for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
                d = conv(d)
            return [self.branch1x1(x), b7, d, self.branch_pool(self.pool(x))]

    class TFInceptionE(InceptionE):
        pool = staticmethod(_tf_avg_pool)

        def _forward(self, x):
            b3 = self.branch3x3_1(x)
            b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
            d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
            return [self.branch1x1(x), b3, d, self.branch_pool(self.pool(x))]

    return TFInceptionA, TFInceptionC, TFInceptionE


def tf1_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of (B, C, H, W) to ``size`` x ``size`` as TensorFlow 1's ``resize_bilinear``
    (align_corners False, no half-pixel centres: source = destination x in / out), which the FID
    Inception graph applies."""
    for dim in (2, 3):
        n_in = x.shape[dim]
        src = torch.arange(size, dtype=torch.float32) * torch.tensor(n_in / size, dtype=torch.float32)
        i0 = src.floor().long().clamp(max=n_in - 1)
        i1 = (i0 + 1).clamp(max=n_in - 1)
        w = (src - i0.float()).to(x.device, x.dtype)
        shape = [1] * x.dim()
        shape[dim] = size
        w = w.view(shape)
        x = x.index_select(dim, i0.to(x.device)) * (1 - w) + x.index_select(dim, i1.to(x.device)) * w
    return x


class InceptionFeatures(nn.Module):
    """An Inception-v3 from a local file: images (B, 3, H, W) in [0, 1] -> (pool features (B, 2048),
    class probabilities (B, classes)), both float32. ``kind``: "fid" or "torchvision"."""

    def __init__(self, net: nn.Module, kind: str, path: Path):
        super().__init__()
        self.net, self.kind, self.path = net, kind, path
        self.requires_grad_(False).eval()

    @property
    def name(self) -> str:
        """What the statistics are computed on, for the report: honest about which network."""
        if self.kind == "fid":
            return f"FID Inception-v3 (TF 2015-12-05 weights, {self.path.name})"
        return f"Inception-v3 (torchvision weights, {self.path.name}; not the FID Inception)"

    def train(self, mode: bool = True):
        return super().train(False)  # always in eval mode (batch norm statistics frozen)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        net = self.net
        x = images.to(next(net.parameters()).device, torch.float32)
        if self.kind == "fid":
            x = tf1_resize(x * 255, INPUT_SIZE)
            x = (x - 128) / 128
        else:
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
            mean, std = (torch.tensor(v, device=x.device).view(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
            x = net._transform_input((x - mean) / std)  # torchvision's own mapping to the weights' [-1, 1] input
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                     "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                     "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):  # fmt: skip
            x = getattr(net, name)(x)
        pool = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        logits = pool @ net.fc.weight.T if self.kind == "fid" else net.fc(pool)  # IS on the unbiased logits (FID graph)
        return pool.float(), torch.softmax(logits.double(), 1).float()


def load_inception(path: str | os.PathLike) -> InceptionFeatures:
    """The Inception-v3 of a local weights file (see the module docstring); :class:`ModelFileError`
    naming the file when it is not an Inception-v3 state dict."""
    from torchvision.models import inception_v3

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--inception-weights {path}: no such file")
    state = load_weights_file(path)  # safetensors or torch.load(weights_only=True); ModelFileError when unreadable
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(path, "not a state dict (a mapping of names to tensors)", FIX)
    state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
    fc = state.get("fc.weight")
    if fc is None or fc.dim() != 2 or fc.shape[1] != POOL_DIM or fc.shape[0] not in (FID_CLASSES, TORCHVISION_CLASSES):
        found = "no fc.weight" if fc is None else f"fc.weight of shape {tuple(fc.shape)}"
        raise ModelFileError(path, f"not an Inception-v3 state dict ({found}; expected ({FID_CLASSES} or "
                                   f"{TORCHVISION_CLASSES}, {POOL_DIM}))", FIX)  # fmt: skip
    kind = "fid" if fc.shape[0] == FID_CLASSES else "torchvision"
    net = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=fc.shape[0],
                       transform_input=kind == "torchvision")  # fmt: skip
    if kind == "fid":
        block_a, block_c, block_e = _tf_blocks()
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
            getattr(net, name).__class__ = block_a
        for name in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
            getattr(net, name).__class__ = block_c
        for name in ("Mixed_7b", "Mixed_7c"):
            getattr(net, name).__class__ = block_e
        net.Mixed_7c.pool = _tf_max_pool  # the graph's last block max-pools its pool branch
    try:
        result = net.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a tensor of the wrong shape
        raise ModelFileError(path, f"not an Inception-v3 state dict ({short_cause(e)})", FIX) from e
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        what = (f"{len(missing)} tensors missing (e.g. {missing[0]})" if missing
                else f"{len(result.unexpected_keys)} unexpected tensors (e.g. {result.unexpected_keys[0]})")  # fmt: skip
        raise ModelFileError(path, f"not an Inception-v3 state dict ({what})", FIX)
    return InceptionFeatures(net, kind, path)


__all__ = ["FID_CLASSES", "InceptionFeatures", "load_inception", "tf1_resize"]
