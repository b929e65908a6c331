"""Polyvore items with a usable image, split for training (``resnet``, ``ae``, ``clip`` titles).

The split is ``etl.common.stable_split(item_id, seed, fractions=(0.8, 0.2))`` (a SHA-1 hash of
``"<seed>:<item_id>"``), with ``val`` as the held-out set: order independent, the same item
lands in the same split on every run and every machine, and adding items never moves the old ones.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from etl.common import stable_split
from store.lake import Lake
from store.sql import query

SPLIT_FRACTIONS = (0.8, 0.2)  # train / val of the hash split (no test share)
SPLIT_RULE = "stable_split(item_id, seed, (0.8, 0.2)); val = held out"


def item_split(item_ids: list[str], seed: int) -> list[str]:
    """``train`` / ``val`` of each item id under the hash split."""
    return ["train" if stable_split(str(i), seed, fractions=SPLIT_FRACTIONS) == "train" else "val" for i in item_ids]


def training_items(home: Path | str, seed: int = 0) -> pa.Table:
    """Rows of ``polyvore_items`` with ``image_ok``: item_id, semantic_category, image_path and
    split (``train``/``val``: seeded hash of item_id, 80/20), ordered by item_id.

    Raises FileNotFoundError (naming the lake and the ingest command) when the lake has no such table.
    """
    if "polyvore_items" not in Lake(home).tables():
        raise FileNotFoundError(f"no polyvore_items table in the lake at {Path(home) / 'lake'}: "
                                f"run `atelier ingest polyvore PATH --home {home}` first")  # fmt: skip
    table = query(home, "SELECT item_id, semantic_category, image_path FROM polyvore_items "
                        "WHERE image_ok AND image_path IS NOT NULL AND semantic_category IS NOT NULL ORDER BY item_id")  # fmt: skip
    return table.append_column("split", pa.array(item_split(table.column("item_id").to_pylist(), seed), pa.string()))


def held_out_items(home: Path | str, seed: int = 0) -> list[str]:
    """The Polyvore items the resnet / ae models did not train on (the ``val`` split)."""
    items = training_items(home, seed=seed)
    return [i for i, s in zip(items["item_id"].to_pylist(), items["split"].to_pylist()) if s == "val"]


def query_item(home: Path | str, space: str, category: str = "tops", seed: int = 0) -> str:
    """A default query item for a space: the first (by item_id) held-out Polyvore item of
    ``category`` that the space holds."""
    from store import VectorStore

    table = VectorStore(home).read(space, ["item_id", "dataset", "semantic_category"])
    held_out = set(held_out_items(home, seed))
    rows = sorted(r["item_id"] for r in table.to_pylist()
                  if r["dataset"] == "polyvore" and r["semantic_category"] == category and r["item_id"] in held_out)  # fmt: skip
    if not rows:
        raise ValueError(f"no held-out Polyvore {category} item in vectors_{space}: give the query item")
    return rows[0]


def split_sizes(table: pa.Table) -> dict[str, int]:
    return {c["values"]: c["counts"] for c in pc.value_counts(table.column("split")).to_pylist()} if table.num_rows else {}


def _collate(batch: list[dict]):
    """(images, labels) of the items whose image decoded; unreadable images are dropped."""
    import torch

    good = [b for b in batch if b["ok"]]
    if not good:
        return torch.zeros((0, *batch[0]["image"].shape)), torch.zeros((0,), dtype=torch.long)
    return torch.stack([b["image"] for b in good]), torch.tensor([b["label"] for b in good], dtype=torch.long)


def item_loaders(items: pa.Table, classes: list[str], image_size: int, batch_size: int, num_workers: int = 0):
    """(train, val) DataLoaders of (images, category index) over ``items``."""
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
                                shuffle=split == "train", drop_last=split == "train" and rows.num_rows > batch_size,
                                num_workers=num_workers, collate_fn=_collate, persistent_workers=num_workers > 0)  # fmt: skip
    return out["train"], out["val"]
