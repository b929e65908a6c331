"""Kind ``ae``: a conv autoencoder trained with 1 - SSIM (MS-SSIM above 160 px) on Polyvore
item images; its 128-d bottleneck is the ``ae`` space.

Data: as ``resnet`` (`flows.jobs.kinds.resnet.prepare_items`). Baseline: the SSIM of predicting
the per-pixel mean image of the training set. Selection: the last weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from flows.jobs.kinds import Recipe
from flows.jobs.kinds.resnet import EMBEDS, loaders, prepare_items
from flows.jobs.options import ImageOptions


@dataclass
class AutoencoderOptions(ImageOptions):
    loss: str = "ssim"  # "ssim" (1 - SSIM), "ms-ssim" (needs > 160 px), "auto" (by image size) or "ssim+l1"


def prepare(home, opts, log):
    if opts.weights is not None:
        raise ValueError("--weights is for resnet18 trunks; the autoencoder always starts from random init")
    if opts.image_size % 16:
        raise ValueError(f"the autoencoder's image size must be divisible by 16, got {opts.image_size}")
    return prepare_items(home, opts, log, "ae")


def build(opts, prepared, log):
    from models import AutoencoderConfig, ConvAutoencoder

    return ConvAutoencoder(AutoencoderConfig(image_size=opts.image_size, loss=opts.loss))


def train(model, prepared, opts, cfg, checkpoint_dir, log) -> dict:
    from models import train_autoencoder

    train_loader, val_loader = loaders(prepared, opts)
    return train_autoencoder(model, train_loader, val_loader, cfg, checkpoint_dir=checkpoint_dir, log=log)


def summary(m: dict) -> str:
    """The held-out (val) SSIM next to the mean-image baseline, each with its 95% interval."""
    from models.intervals import score_text

    return (f"val SSIM {score_text(m, 'val_ssim')} (mean-image baseline {score_text(m, 'baseline_ssim')}; "
            f"n {m.get('n_val', '?')}, 95% intervals over images)")  # fmt: skip


def evaluate(home, path, log) -> dict:
    """Held-out (val) SSIM of a saved model vs the train mean image, with 95% bootstrap
    intervals over the val images."""
    from models import ConvAutoencoder, default_device, evaluate_autoencoder, read_metrics
    from models.intervals import without_per_item
    from models.train import autoencoder_intervals, mean_image

    metrics = read_metrics(path) or {}
    opts = AutoencoderOptions(**{k: v for k, v in metrics.get("options", {}).items() if k in AutoencoderOptions.__dataclass_fields__})
    model = ConvAutoencoder.from_pretrained(path, device=default_device())
    train_loader, val_loader = loaders(prepare_items(home, opts, log, "ae"), opts)
    device = next(model.parameters()).device
    result = evaluate_autoencoder(model, val_loader, device, mean_image(train_loader, device).cpu())
    out = {"split": "val", **without_per_item(result), "intervals": autoencoder_intervals(result)}
    return {**out, "summary": [summary(out)]}


RECIPE = Recipe(
    name="ae", help="conv autoencoder (1 - SSIM); its 128-d bottleneck is the ae space (Polyvore items)",
    options=AutoencoderOptions, prepare=prepare, build=build, train=train, summary=summary, evaluate=evaluate,
    embeds=EMBEDS, report="precision", selection="last weights (val is the reported held-out split)",
    example="--steps 300 --image-size 64",
)  # fmt: skip
