"""The image reader for training/embedding: decoded, resized, [0, 1]; bad files reported, not raised."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from etl.loader import ImageFolderRows


def test_batches_of_good_and_broken_images(tmp_path):
    good = tmp_path / "red.jpg"
    Image.new("RGB", (90, 60), (255, 0, 0)).save(good, quality=95)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good.read_bytes()[:100])
    rows = ImageFolderRows([str(good), str(broken), str(tmp_path / "missing.jpg")], size=32, labels=[2, 1, 0])
    batch = next(iter(DataLoader(rows, batch_size=3)))
    assert batch["image"].shape == (3, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["ok"].tolist() == [True, False, False]
    assert batch["label"].tolist() == [2, 1, 0] and batch["index"].tolist() == [0, 1, 2]
    assert batch["error"][0] == "" and "FileNotFoundError" in batch["error"][2] and batch["error"][1]
    red = batch["image"][0].mean(dim=(1, 2)).numpy()
    assert np.allclose(red, [1.0, 0.0, 0.0], atol=0.03)
    assert float(batch["image"][1].abs().sum()) == 0.0


def test_labels_must_match_paths():
    with pytest.raises(ValueError, match="1 paths but 2 labels"):
        ImageFolderRows(["a.jpg"], size=8, labels=[1, 2])
