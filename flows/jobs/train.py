"""Training jobs: lake rows -> DataLoaders -> ``models`` training loops -> ``<home>/models/<name>/<version>/``.

Plain functions (the CLI ``atelier train resnet|ae`` and the Prefect ``train`` flow call them):

- :func:`training_items`: polyvore items with a usable image and a seeded train/val split;
- :func:`train_resnet`: the ``resnet`` category classifier / 128-d embedder;
- :func:`train_ae`: the ``ae`` conv autoencoder (1 - SSIM);
- :func:`latest_model`: the newest finished version of a model.

The split is ``etl.common.stable_split(item_id, seed, fractions=(0.8, 0.2))`` (a SHA-1 hash of
``"<seed>:<item_id>"``), with ``val`` (and ``test``, which these fractions never produce) as the
held-out set: order independent, the same item lands in the same split on every run and every
machine, and adding items never moves the old ones.

Every version directory holds ``config.json``, ``model.safetensors`` and ``metrics.json``
(the loop's metrics plus ``trained_on``: dataset, split sizes, classes, split seed, and
``weights``: the local trunk weights or ``"random init"``). While training, ``<version>/ckpt/
checkpoint.pt`` is written at every evaluation; calling again with the same ``version`` resumes
from it. It is removed once the model is saved (``keep_checkpoint=True`` keeps it). On CPU a
run is deterministic for a given seed (the model init, the data order and dropout are seeded).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from etl.common import stable_split
from store.lake import Lake
from store.sql import query

MODEL_NAMES = ("resnet", "ae")
SPLIT_FRACTIONS = (0.8, 0.2)  # train / val of the hash split (no test share)
_VERSION = re.compile(r"^v(\d+)$")


@dataclass
class TrainResult:
    name: str  # "resnet" or "ae"
    version: str  # "v1", "v2", ...
    path: Path  # <home>/models/<name>/<version>
    metrics: dict  # what metrics.json holds
    model: object = field(default=None, repr=False, compare=False)  # the trained nn.Module (eval mode, CPU or the training device)


# ----------------------------------------------------------------------------- data


def training_items(home: Path | str, dataset: str = "polyvore", seed: int = 0) -> pa.Table:
    """Rows of ``polyvore_items`` with ``image_ok``: item_id, semantic_category, image_path and
    split (``train``/``val``: seeded hash of item_id, 80/20), ordered by item_id.

    Raises FileNotFoundError (naming the lake and the ingest command) when the lake has no such table.
    """
    if dataset != "polyvore":
        raise ValueError(f"training reads polyvore items only (got dataset {dataset!r})")
    lake = Lake(home)
    if f"{dataset}_items" not in lake.tables():
        raise FileNotFoundError(
            f"no {dataset}_items table in the lake at {Path(home) / 'lake'}: "
            f"run `atelier ingest {dataset} PATH --home {home}` first"
        )
    table = query(
        home,
        f"SELECT item_id, semantic_category, image_path FROM {dataset}_items "
        "WHERE image_ok AND image_path IS NOT NULL AND semantic_category IS NOT NULL ORDER BY item_id",
    )
    splits = ["train" if stable_split(str(i), seed, fractions=SPLIT_FRACTIONS) == "train" else "val"
              for i in table.column("item_id").to_pylist()]
    return table.append_column("split", pa.array(splits, pa.string()))


def _collate(batch: list[dict]):
    """(images, labels) of the items whose image decoded; unreadable images are dropped."""
    import torch

    good = [b for b in batch if b["ok"]]
    if not good:
        size = batch[0]["image"].shape
        return torch.zeros((0, *size)), torch.zeros((0,), dtype=torch.long)
    return torch.stack([b["image"] for b in good]), torch.tensor([b["label"] for b in good], dtype=torch.long)


def _loaders(items: pa.Table, classes: list[str], image_size: int, batch_size: int, num_workers: int):
    from torch.utils.data import DataLoader

    from etl.loader import ImageFolderRows

    index = {c: i for i, c in enumerate(classes)}
    out = {}
    for split in ("train", "val"):
        rows = items.filter(pc.equal(items.column("split"), split))
        if rows.num_rows == 0:
            raise ValueError(f"the {split} split is empty ({items.num_rows} usable items in all): ingest more items")
        data = ImageFolderRows(rows.column("image_path").to_pylist(), image_size,
                               [index[c] for c in rows.column("semantic_category").to_pylist()])
        out[split] = DataLoader(data, batch_size=batch_size if split == "train" else max(batch_size, 64),
                                shuffle=split == "train",
                                drop_last=split == "train" and rows.num_rows > batch_size,
                                num_workers=num_workers, collate_fn=_collate,
                                persistent_workers=num_workers > 0)
    return out["train"], out["val"]


# ----------------------------------------------------------------------------- versions


def _versions(root: Path) -> list[tuple[int, Path]]:
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _VERSION.match(p.name))]
    return sorted(found)


def next_version(home: Path | str, name: str) -> str:
    """``v<N+1>`` where N is the highest existing ``v<N>`` under ``home/models/name`` (``v1`` when none).
    Directories of unfinished runs count too, so they are never overwritten."""
    versions = _versions(Path(home) / "models" / name)
    return f"v{versions[-1][0] + 1 if versions else 1}"


def latest_model(home: Path | str, name: str) -> Path:
    """The highest ``v<N>`` directory of ``home/models/name`` that has a ``config.json``."""
    root = Path(home) / "models" / name
    for _, path in reversed(_versions(root)):
        if (path / "config.json").exists():
            return path
    raise FileNotFoundError(f"no trained {name!r} model under {root}: run `atelier train {name} --home {home}` first")


# ----------------------------------------------------------------------------- jobs


def _prepare(home, name, dataset, seed, version, log):
    items = training_items(home, dataset, seed=seed)
    if items.num_rows == 0:
        raise ValueError(f"no {dataset} item with a usable image in the lake at {Path(home) / 'lake'}")
    version = version or next_version(home, name)
    out = Path(home) / "models" / name / version
    if (out / "config.json").exists():
        raise FileExistsError(f"{out} already holds a trained model: pick another --version")
    counts = pc.value_counts(items.column("split")).to_pylist()
    sizes = {c["values"]: c["counts"] for c in counts}
    log(f"{name} {version}: {sizes.get('train', 0)} train / {sizes.get('val', 0)} val {dataset} items -> {out}")
    return items, version, out, sizes


def _train_config(steps, lr, batch_size, seed, eval_every, warmup_steps, device):
    from models import TrainConfig

    kwargs = {} if device is None else {"device": device}
    return TrainConfig(
        steps=steps, lr=lr, min_lr=lr / 10, batch_size=batch_size, seed=seed,
        warmup_steps=warmup_steps if warmup_steps is not None else max(1, min(100, steps // 10)),
        eval_every=eval_every if eval_every is not None else max(1, min(200, steps)), **kwargs,
    )


def _finish(name, version, out, model, metrics, keep_checkpoint, log) -> TrainResult:
    model.eval()
    model.save_pretrained(out, metrics=metrics)
    if not keep_checkpoint:
        shutil.rmtree(out / "ckpt", ignore_errors=True)
    log(f"saved {name} {version} to {out}")
    return TrainResult(name, version, out, metrics, model)


def train_resnet(home: Path | str, *, steps: int = 300, image_size: int = 64, batch_size: int = 32,
                 lr: float = 1e-3, seed: int = 0, weights: Path | str | None = None, version: str | None = None,
                 num_workers: int = 0, dataset: str = "polyvore", eval_every: int | None = None,
                 warmup_steps: int | None = None, device: str | None = None, keep_checkpoint: bool = False,
                 log: Callable[[str], None] = print) -> TrainResult:
    """Train the ``resnet`` category classifier on the lake's items; save it under
    ``home/models/resnet/<version>`` (default: the next free ``v<N>``).

    Classes are the semantic categories of the usable items, sorted (11 on the sample data, 4 on
    the reduced real catalogue); the list is saved in ``metrics.json`` (``classes``). ``weights``:
    a local torchvision resnet18 state_dict (.safetensors / .pth) for the trunk; without it the
    trunk starts from random init (logged, and recorded as ``"weights": "random init"``).
    """
    import torch

    from models import ResNetConfig, ResNetEmbedder, train_classifier

    items, version, out, sizes = _prepare(home, "resnet", dataset, seed, version, log)
    classes = sorted(set(items.column("semantic_category").to_pylist()))
    if len(classes) < 2:
        raise ValueError(f"need at least 2 categories to train a classifier, the lake has {classes}")
    torch.manual_seed(seed)  # model init
    model = ResNetEmbedder(ResNetConfig(num_classes=len(classes), image_size=image_size))
    if weights is not None:
        loaded = model.load_backbone_weights(weights)
        log(f"trunk weights: {loaded['n_loaded']} tensors from {weights}")
    else:
        log("no --weights: the resnet18 trunk starts from random init")
    train_loader, val_loader = _loaders(items, classes, image_size, batch_size, num_workers)
    cfg = _train_config(steps, lr, batch_size, seed, eval_every, warmup_steps, device)
    metrics = train_classifier(model, train_loader, val_loader, cfg, checkpoint_dir=out / "ckpt", log=log)
    metrics.update(
        classes=classes,
        weights=str(weights) if weights is not None else "random init",
        trained_on={"dataset": dataset, "table": f"{dataset}_items", "n_train": sizes.get("train", 0),
                    "n_val": sizes.get("val", 0), "classes": classes, "split_seed": seed,
                    "split": "stable_split(item_id, seed, (0.8, 0.2)); val = held out", "image_size": image_size},
    )
    majority = metrics["val_majority_class"]
    metrics["val_majority_class_name"] = classes[majority] if 0 <= majority < len(classes) else None
    log(f"val accuracy {metrics['val_accuracy']:.3f} vs majority class {metrics['val_majority_baseline']:.3f}")
    return _finish("resnet", version, out, model, metrics, keep_checkpoint, log)


def train_ae(home: Path | str, *, steps: int = 300, image_size: int = 64, batch_size: int = 32,
             lr: float = 1e-3, seed: int = 0, version: str | None = None, num_workers: int = 0,
             dataset: str = "polyvore", loss: str = "ssim", eval_every: int | None = None,
             warmup_steps: int | None = None, device: str | None = None, keep_checkpoint: bool = False,
             log: Callable[[str], None] = print) -> TrainResult:
    """Train the ``ae`` conv autoencoder (1 - SSIM; ``loss="ms-ssim"`` above 160 px) on the lake's
    item images; save it under ``home/models/ae/<version>``. ``image_size`` must be divisible by 16.
    ``metrics.json`` has ``val_ssim`` and ``baseline_ssim`` (predicting the train mean image)."""
    import torch

    from models import AutoencoderConfig, ConvAutoencoder, train_autoencoder

    items, version, out, sizes = _prepare(home, "ae", dataset, seed, version, log)
    classes = sorted(set(items.column("semantic_category").to_pylist()))
    torch.manual_seed(seed)
    model = ConvAutoencoder(AutoencoderConfig(image_size=image_size, loss=loss))
    train_loader, val_loader = _loaders(items, classes, image_size, batch_size, num_workers)
    cfg = _train_config(steps, lr, batch_size, seed, eval_every, warmup_steps, device)
    metrics = train_autoencoder(model, train_loader, val_loader, cfg, checkpoint_dir=out / "ckpt", log=log)
    metrics.update(
        weights="random init",
        trained_on={"dataset": dataset, "table": f"{dataset}_items", "n_train": sizes.get("train", 0),
                    "n_val": sizes.get("val", 0), "classes": classes, "split_seed": seed,
                    "split": "stable_split(item_id, seed, (0.8, 0.2)); val = held out", "image_size": image_size},
    )
    log(f"val SSIM {metrics['val_ssim']:.3f} vs mean image {metrics['baseline_ssim']:.3f}")
    return _finish("ae", version, out, model, metrics, keep_checkpoint, log)
