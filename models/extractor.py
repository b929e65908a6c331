"""``extractor``: the VITON garment extractor. A person photo and the mask of their upper garment
in, the garment out: flat, frontal, on white, at the cloth image's size (VITON-HD's `cloth/`).

- Generator: a UNet whose encoder is a torchvision resnet18 or resnet34 (``encoder``) taking
  4 channels (RGB + mask; local ImageNet weights go into the RGB filters, the mask filter starts at
  zero, so the pretrained trunk first sees what it was trained on), a decoder of upsample + skip
  concatenation + two 3x3 conv blocks per stride, and a sigmoid RGB head: images in [0, 1].
  With ``paste_box`` (the default of the ``extractor`` kind) it also sees the copy-paste garment
  (:func:`copy_paste`: the masked pixels cropped and resized into that box) as 3 more channels
  and predicts a *correction* of it: the head starts at zero, so the untrained model is exactly
  the copy-paste baseline and training has to earn every point above it (fill what the face
  hid, fix the placement and the edges).
- Discriminator (``arch="patchgan"``): pix2pix's 70x70 PatchGAN (4x4 convs C64-C128-C256-C512,
  instance norm, LeakyReLU 0.2) on (condition, garment) pairs, one real/fake logit per patch.
  ``arch="unet"`` has none. The discriminator is part of the module (its weights are saved:
  training can resume) but :meth:`forward` never uses it.

Inputs are float tensors in [0, 1]: person (B, 3, H, W), mask (B, 1, H, W); H and W multiples of
32 (the encoder's stride). The generator applies the ImageNet mean/std to the RGB channels itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18, resnet34

from models.pretrained import EXPORT_FIX, ModelFileError, PretrainedMixin, load_weights_file
from models.resnet import IMAGENET_MEAN, IMAGENET_STD

ENCODERS = {"resnet18": resnet18, "resnet34": resnet34}
ARCHS = ("unet", "patchgan")
GARMENT_LABELS = (5, 6, 7)  # LIP parse labels of an upper garment: upper clothes, dress, coat
ENCODER_CHANNELS = (64, 64, 128, 256, 512)  # resnet18/34 features at strides 2, 4, 8, 16, 32


@dataclass
class ExtractorConfig:
    encoder: str = "resnet18"  # the UNet's encoder: resnet18 or resnet34 (torchvision layout, so ImageNet weights load)
    arch: str = "unet"  # unet (reconstruction losses only) or patchgan (+ a 70x70 PatchGAN discriminator, pix2pix)
    height: int = 128  # input and output height (multiple of 32); VITON-HD is 1024 x 768, 4:3
    width: int = 96  # input and output width (multiple of 32)
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)  # decoder widths from stride 32 up to full resolution
    disc_channels: int = 64  # width of the PatchGAN's first layer (doubling per layer, up to 8x)
    encoder_weights: str | None = None  # local ImageNet weights the encoder started from; None = random init (provenance only)
    paste_box: tuple[float, ...] | None = None  # (x0, y0, x1, y1) fractions: the generator also sees the copy-paste baseline placed in this box (the train clothes' mean garment box); None: person + mask only

    def __post_init__(self):
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}: one of {', '.join(ENCODERS)}")
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}: one of {', '.join(ARCHS)}")
        if self.height % 32 or self.width % 32 or self.height <= 0 or self.width <= 0:
            raise ValueError(f"height and width must be positive multiples of 32, got {self.height} x {self.width}")
        self.decoder_channels = tuple(self.decoder_channels)
        if self.paste_box is not None:
            self.paste_box = tuple(float(v) for v in self.paste_box)
            x0, y0, x1, y1 = self.paste_box
            if len(self.paste_box) != 4 or not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
                raise ValueError(f"paste_box must be (x0, y0, x1, y1) fractions with x0 < x1, y0 < y1, got {self.paste_box}")
        if len(self.decoder_channels) != 5:
            raise ValueError(f"decoder_channels needs 5 widths (strides 16, 8, 4, 2, 1), got {self.decoder_channels}")


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))  # fmt: skip


class UNetGenerator(nn.Module):
    """ResNet encoder (4 input channels) + UNet decoder + sigmoid RGB head (see the module docstring)."""

    def __init__(self, config: ExtractorConfig):
        super().__init__()
        trunk = ENCODERS[config.encoder](weights=None)
        self.box = config.paste_box
        self.inputs = 4 if self.box is None else 7  # RGB + mask (+ the copy-paste's RGB)
        conv1 = nn.Conv2d(self.inputs, 64, 7, 2, 3, bias=False)
        self.stem = nn.Sequential(conv1, trunk.bn1, trunk.relu)  # stride 2
        self.pool = trunk.maxpool
        self.layers = nn.ModuleList([trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4])  # strides 4..32
        skips = (ENCODER_CHANNELS[3], ENCODER_CHANNELS[2], ENCODER_CHANNELS[1], ENCODER_CHANNELS[0], self.inputs)
        widths, cin = config.decoder_channels, ENCODER_CHANNELS[4]
        blocks = []
        for skip, cout in zip(skips, widths):
            blocks.append(_block(cin + skip, cout))
            cin = cout
        self.decoder = nn.ModuleList(blocks)
        self.head = nn.Conv2d(cin, 3, 1)
        if self.box is not None:  # a correction of the copy-paste: zero at init, so the untrained model is the baseline
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, person: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        parts = [(person - self.mean) / self.std, mask]
        if self.box is not None:
            pasted = copy_paste(person, mask, self.box)
            parts.append((pasted - self.mean) / self.std)
        x = torch.cat(parts, 1)
        feats = [x]
        h = self.stem(x)
        feats.append(h)
        h = self.pool(h)
        for layer in self.layers:
            h = layer(h)
            feats.append(h)
        skips = feats[-2::-1]  # stride 16, 8, 4, 2, then the input
        for block, skip in zip(self.decoder, skips):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], 1))
        if self.box is not None:
            return (pasted + self.head(h)).clamp(0, 1)
        return torch.sigmoid(self.head(h))


class PatchDiscriminator(nn.Module):
    """pix2pix's 70x70 PatchGAN on (person, mask, garment): a map of real/fake logits."""

    def __init__(self, config: ExtractorConfig):
        super().__init__()
        c = config.disc_channels
        layers: list[nn.Module] = [nn.Conv2d(3 + 4, c, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for i, stride in ((1, 2), (2, 2), (3, 1)):
            cin, cout = c * 2 ** (i - 1), c * 2**i
            layers += [nn.Conv2d(cin, cout, 4, stride, 1, bias=False), nn.InstanceNorm2d(cout, affine=True),
                       nn.LeakyReLU(0.2, inplace=True)]  # fmt: skip
        layers.append(nn.Conv2d(c * 8, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, person: torch.Tensor, mask: torch.Tensor, garment: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([person * 2 - 1, mask * 2 - 1, garment * 2 - 1], 1))


class GarmentExtractor(PretrainedMixin, nn.Module):
    """The generator, and with ``arch="patchgan"`` its discriminator (see the module docstring)."""

    model_type = "extractor"
    config_class = ExtractorConfig

    def __init__(self, config: ExtractorConfig):
        super().__init__()
        self.config = config
        self.generator = UNetGenerator(config)
        self.discriminator = PatchDiscriminator(config) if config.arch == "patchgan" else None

    def init_constants(self) -> None:
        self.generator.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.generator.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, person: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The flat garment on white, (B, 3, H, W) in [0, 1]."""
        return self.generator(person, mask)

    def load_backbone_weights(self, path: str | os.PathLike) -> dict:
        """Local torchvision ImageNet weights of ``config.encoder`` into the encoder: ``conv1``'s RGB
        filters as given, the mask channel's filter zero; ``fc.*`` ignored. Anything but a state
        dict of that network is a :class:`ModelFileError` naming the file (never unpickled code:
        ``load_weights_file``). Records the path in ``config.encoder_weights``."""
        path = Path(path)
        state = load_weights_file(path)
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ModelFileError(path, f"not a state_dict of tensors (got {type(state).__name__})", EXPORT_FIX)
        state = {k.removeprefix("module."): v for k, v in state.items() if not k.startswith("fc.")}
        reference = ENCODERS[self.config.encoder](weights=None).state_dict()
        reference.pop("fc.weight"), reference.pop("fc.bias")
        missing, unexpected = sorted(set(reference) - set(state)), sorted(set(state) - set(reference))
        bad = sorted(k for k in set(reference) & set(state) if tuple(reference[k].shape) != tuple(state[k].shape))
        if missing or unexpected or bad:
            raise ModelFileError(path, f"not a {self.config.encoder} state_dict (missing {missing[:3]}, unexpected "
                                       f"{unexpected[:3]}, wrong shape {bad[:3]})", EXPORT_FIX)  # fmt: skip
        g = self.generator
        with torch.no_grad():
            conv1 = torch.zeros_like(g.stem[0].weight)
            conv1[:, :3] = state["conv1.weight"]  # the person's RGB; the mask (and copy-paste) filters start at zero
            g.stem[0].weight.copy_(conv1)
            g.stem[1].load_state_dict({k.removeprefix("bn1."): v for k, v in state.items() if k.startswith("bn1.")})
            for i, layer in enumerate(g.layers, 1):
                layer.load_state_dict({k.removeprefix(f"layer{i}."): v for k, v in state.items() if k.startswith(f"layer{i}.")})
        self.config.encoder_weights = str(path)
        return {"path": str(path), "n_loaded": len(state)}


def load_vgg16_features(path: str | os.PathLike) -> nn.Sequential:
    """torchvision VGG16's convolutional part (``features``) from a local state dict: the whole
    network's (``features.*`` kept, the classifier ignored) or ``features`` alone. Anything else
    is a :class:`ModelFileError` naming the file (never unpickled code: ``load_weights_file``)."""
    from torchvision.models import vgg16

    path = Path(path)
    state = load_weights_file(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(path, f"not a state_dict of tensors (got {type(state).__name__})", EXPORT_FIX)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith("features.") for k in state):
        state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    features = vgg16(weights=None).features
    reference = features.state_dict()
    missing, unexpected = sorted(set(reference) - set(state)), sorted(set(state) - set(reference))
    bad = sorted(k for k in set(reference) & set(state) if tuple(reference[k].shape) != tuple(state[k].shape))
    if missing or unexpected or bad:
        raise ModelFileError(path, f"not a torchvision vgg16 state_dict (missing {missing[:3]}, unexpected "
                                   f"{unexpected[:3]}, wrong shape {bad[:3]})", EXPORT_FIX)  # fmt: skip
    features.load_state_dict(state)
    return features


def copy_paste(person: torch.Tensor, mask: torch.Tensor, box: tuple[float, ...]) -> torch.Tensor:
    """The copy-paste garment: each person's garment pixels (white elsewhere) cropped to the
    mask's bounding box and resized into ``box`` (x0, y0, x1, y1 fractions) of a white canvas of
    the same size. (N, 3, H, W) in [0, 1]; a person without garment pixels gives a white canvas."""
    n, _, h, w = person.shape
    out = torch.ones_like(person)
    x0, y0 = min(round(box[0] * w), w - 1), min(round(box[1] * h), h - 1)
    x1, y1 = max(round(box[2] * w), x0 + 1), max(round(box[3] * h), y0 + 1)
    for i in range(n):
        on = mask[i, 0] > 0.5
        rows, cols = torch.nonzero(on.any(1)).flatten(), torch.nonzero(on.any(0)).flatten()
        if not rows.numel():
            continue
        crop = torch.where(on, person[i], torch.ones_like(person[i]))[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        out[i, :, y0:y1, x0:x1] = F.interpolate(crop[None], size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False)[0]
    return out


def garment_mask(parse: torch.Tensor) -> torch.Tensor:
    """The upper-garment mask (float 0/1) of a parse map of LIP label indices (any shape)."""
    return sum((parse == label) for label in GARMENT_LABELS).float()
