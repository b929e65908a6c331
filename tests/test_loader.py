"""The image reader for training/embedding: decoded, resized, [0, 1]; bad files reported, not raised."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from etl.loader import ImageFolderRows


@pytest.mark.parametrize("read_ahead", [0, 2])
def test_batches_of_good_and_broken_images(tmp_path, read_ahead):
    good = tmp_path / "red.jpg"
    Image.new("RGB", (90, 60), (255, 0, 0)).save(good, quality=95)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good.read_bytes()[:100])
    rows = ImageFolderRows([str(good), str(broken), str(tmp_path / "missing.jpg")], size=32, labels=[2, 1, 0], read_ahead=read_ahead)
    batch = next(iter(DataLoader(rows, batch_size=3)))
    rows.close()
    assert batch["image"].shape == (3, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["ok"].tolist() == [True, False, False]
    assert batch["label"].tolist() == [2, 1, 0] and batch["index"].tolist() == [0, 1, 2]
    assert batch["error"][0] == "" and "FileNotFoundError" in batch["error"][2] and str(tmp_path / "missing.jpg") in batch["error"][2]
    red = batch["image"][0].mean(dim=(1, 2)).numpy()
    assert np.allclose(red, [1.0, 0.0, 0.0], atol=0.03)
    assert float(batch["image"][1].abs().sum()) == 0.0


def test_labels_must_match_paths():
    with pytest.raises(ValueError, match="1 paths but 2 labels"):
        ImageFolderRows(["a.jpg"], size=8, labels=[1, 2])


@pytest.mark.parametrize("read_ahead", [0, 1])
def test_crops_and_synthesis_h5_images(tmp_path, sample_root, read_ahead):
    from etl.synthesis import synthesis_images

    image = np.zeros((40, 60, 3), np.uint8)
    image[10:30, 20:50] = (0, 0, 255)  # a blue box on black
    path = tmp_path / "scene.png"
    Image.fromarray(image).save(path)
    h5 = sample_root / "synthesis" / "Img" / "G2.h5"
    rows = ImageFolderRows([str(path), str(path), str(h5)], size=16, h5_index=[None, None, 3],
                           crops=[[20, 10, 50, 30], [5, 5, 5, 9], None], read_ahead=read_ahead)  # the box; an empty box; no crop
    items = [rows[i] for i in range(3)]
    rows.close()
    assert items[0]["ok"] and torch.allclose(items[0]["image"][2], torch.ones(16, 16))  # all blue
    assert items[0]["image"][:2].abs().max() == 0
    assert not items[1]["ok"] and "empty bbox" in items[1]["error"]
    want = np.array(Image.fromarray(synthesis_images(h5, [3])[0]).resize((16, 16), Image.BILINEAR))
    assert items[2]["ok"] and np.array_equal((items[2]["image"] * 255).round().byte().permute(1, 2, 0).numpy(), want)


@pytest.mark.parametrize("read_ahead", [0, 4])
def test_a_file_that_is_no_image_is_named_in_its_error(tmp_path, read_ahead):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    rows = ImageFolderRows([str(text)], size=8, read_ahead=read_ahead)
    item = rows[0]
    rows.close()
    assert not item["ok"] and item["error"].startswith("UnidentifiedImageError") and str(text) in item["error"]
