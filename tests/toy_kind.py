"""A toy model kind, registered by a test: the README's "Adding a model kind" example, run.

One module = one kind: an options dataclass, a model (config dataclass + PretrainedMixin, so it
saves and loads like every model), and a Recipe whose ``train`` hands a ``models.loop.Task``
(batches, loss, evaluation, selection) to the one training loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from flows.jobs.items import item_loaders, split_sizes, training_items
from flows.jobs.kinds import Prepared, Recipe
from flows.jobs.options import ImageOptions
from models.loop import Task, fit
from models.pretrained import PretrainedMixin


@dataclass
class ToyConfig:
    n_classes: int = 11  # semantic categories
    image_size: int = 16  # input side, px
    dim: int = 8  # embedding width


class ToyEmbedder(PretrainedMixin, nn.Module):
    model_type = "toy"
    config_class = ToyConfig

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.trunk = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, config.dim))
        self.head = nn.Linear(config.dim, config.n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # what `atelier embed toy` stores
        return F.normalize(self.trunk(x), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


@dataclass
class ToyOptions(ImageOptions):
    steps: int = 20  # optimizer steps
    image_size: int = 16  # input side, px


def prepare(home, opts, log) -> Prepared:
    items = training_items(home, seed=opts.seed)
    sizes = split_sizes(items)
    classes = sorted(set(items["semantic_category"].to_pylist()))
    return Prepared(data={"items": items, "classes": classes}, trained_on={"table": "polyvore_items", **sizes},
                    describe=f"{sizes['train']} train / {sizes['val']} val items", fingerprint=sizes)


def build(opts, prepared, log):
    return ToyEmbedder(ToyConfig(n_classes=len(prepared.data["classes"]), image_size=opts.image_size))


@torch.no_grad()
def accuracy(model, device, loader) -> dict:
    hits = n = 0
    for images, labels in loader:
        hits += (model(images.to(device)).argmax(1).cpu() == labels).sum().item()
        n += len(labels)
    return {"val_accuracy": hits / n, "n_val": n}


def train(model, prepared, opts, cfg, checkpoint_dir, log) -> dict:
    train_loader, val_loader = item_loaders(prepared.data["items"], prepared.data["classes"], opts.image_size, opts.batch_size)
    task = Task(kind="toy", batches=train_loader, metric="val_accuracy", mode="max", select="best",
                loss=lambda m, batch, device: F.cross_entropy(m(batch[0].to(device)), batch[1].to(device)),
                evaluate=lambda m, device: accuracy(m, device, val_loader))  # fmt: skip
    return fit(model, task, cfg, checkpoint_dir=checkpoint_dir, log=log)


def evaluate(home, path, log) -> dict:
    model = ToyEmbedder.from_pretrained(path)
    prepared = prepare(home, ToyOptions(), log)
    _, val_loader = item_loaders(prepared.data["items"], prepared.data["classes"], model.config.image_size, 64)
    return accuracy(model, torch.device("cpu"), val_loader)


RECIPE = Recipe(
    name="toy", help="a toy category classifier (README example)", options=ToyOptions, prepare=prepare, build=build,
    train=train, evaluate=evaluate, summary=lambda m: f"val accuracy {m['kept']['val_accuracy']:.3f}",
    embeds=("polyvore",), selection="best val accuracy", example="--steps 20",
)
