"""``ae``: convolutional autoencoder with a 128-d bottleneck, trained with 1 - (MS-)SSIM.

Images are float tensors in [0, 1], (B, 3, H, W) with H = W = ``image_size``; the decoder ends
in a sigmoid so reconstructions are in [0, 1] too.

Loss choice (``AutoencoderConfig.loss``):

- ``"ssim"``: ``1 - SSIM`` (``pytorch_msssim.ssim``, data_range=1, 11 px Gaussian window);
- ``"ms-ssim"``: ``1 - MS-SSIM`` (``pytorch_msssim.ms_ssim``, 5 scales). With the default 5
  scales and 11 px window pytorch_msssim needs the smaller side > (11 - 1) * 2**4 = 160 px, so
  this is refused for ``image_size <= 160``;
- ``"auto"``: MS-SSIM above 160 px, SSIM at 160 px and below. MS-SSIM is preferred when it is
  possible because it scores structure at several resolutions (Zhao et al., "Loss Functions for
  Image Restoration with Neural Networks"); at the 128 px default the choice is SSIM.

The default is ``"ssim"`` (the 128 px default image size cannot use MS-SSIM anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim, ssim
from torch import nn

from models.pretrained import PretrainedMixin

MS_SSIM_MIN_SIDE = 160  # pytorch_msssim: MS-SSIM (5 scales, win 11) needs the smaller side > 160
LOSSES = ("ssim", "ms-ssim", "auto", "ssim+l1")
L1_WEIGHT = 0.16  # "ssim+l1": 0.84 * (1 - SSIM) + 0.16 * L1, the mix of Zhao et al. (SSIM alone is blind to flat colour shifts)


def resolve_loss(loss: str, image_size: int) -> str:
    """The loss actually used: ``"auto"`` -> ``"ms-ssim"`` above 160 px, else ``"ssim"``."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if loss == "ssim+l1":
        return loss
    if loss == "auto":
        return "ms-ssim" if image_size > MS_SSIM_MIN_SIDE else "ssim"
    if loss == "ms-ssim" and image_size <= MS_SSIM_MIN_SIDE:
        raise ValueError(f"ms-ssim needs image_size > {MS_SSIM_MIN_SIDE} (got {image_size}); use ssim or auto")
    return loss


@dataclass
class AutoencoderConfig:
    image_size: int = 128  # square input side; must be divisible by 2 ** len(channels)
    embedding_dim: int = 128  # bottleneck width: the vector stored per image
    channels: tuple = (32, 64, 128, 256)  # encoder widths, one stride-2 conv each (decoder mirrors them)
    loss: str = "ssim"  # "ssim", "ms-ssim" (> 160 px only) or "auto" (ms-ssim above 160 px, else ssim)


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)
    )


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


class ConvAutoencoder(PretrainedMixin, nn.Module):
    """Conv encoder -> Linear bottleneck (embedding_dim) -> Linear -> ConvTranspose decoder -> sigmoid."""

    model_type = "ae"
    config_class = AutoencoderConfig

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        channels = tuple(config.channels)
        factor = 2 ** len(channels)
        if not channels or config.image_size % factor:
            raise ValueError(f"image_size {config.image_size} must be divisible by 2**{len(channels)} = {factor}")
        self.config = config
        self.loss_name = resolve_loss(config.loss, config.image_size)
        self.grid = config.image_size // factor  # spatial side at the bottleneck
        flat = channels[-1] * self.grid * self.grid
        widths = (3, *channels)
        self.encoder = nn.Sequential(*(_down(widths[i], widths[i + 1]) for i in range(len(channels))))
        self.to_code = nn.Linear(flat, config.embedding_dim)
        self.from_code = nn.Sequential(nn.Linear(config.embedding_dim, flat), nn.ReLU())
        ups = [_up(widths[i + 1], widths[i]) for i in range(len(channels) - 1, 0, -1)]
        last = nn.ConvTranspose2d(widths[1], 3, 4, stride=2, padding=1)
        self.decoder = nn.Sequential(*ups, last)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The bottleneck before normalisation, (B, embedding_dim)."""
        return self.to_code(self.encoder(x).flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1], (B, 3, image_size, image_size)."""
        h = self.from_code(z).view(z.shape[0], self.config.channels[-1], self.grid, self.grid)
        return torch.sigmoid(self.decoder(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of ``x``, same shape, values in [0, 1]."""
        return self.decode(self.encode(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised float32 bottleneck, (B, embedding_dim)."""
        return F.normalize(self.encode(x).float(), dim=1)

    def similarity(self, recon: torch.Tensor, target: torch.Tensor, per_image: bool = False) -> torch.Tensor:
        """SSIM or MS-SSIM (per the resolved loss) in float32, data_range=1; mean unless per_image."""
        fn = ms_ssim if self.loss_name == "ms-ssim" else ssim  # "ssim+l1" reports SSIM
        return fn(recon.float(), target.float(), data_range=1.0, size_average=not per_image)

    def loss(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``1 - SSIM`` (or ``1 - MS-SSIM``; ``ssim+l1``: mixed with the mean absolute error), a scalar."""
        if self.loss_name == "ssim+l1":
            l1 = (recon.float() - target.float()).abs().mean()
            return (1 - L1_WEIGHT) * (1.0 - self.similarity(recon, target)) + L1_WEIGHT * l1
        return 1.0 - self.similarity(recon, target)
