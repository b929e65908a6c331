"""Images of lake rows as tensors, for training and embedding jobs (the "reader" stage).

`ImageFolderRows(paths, size)` is a torch Dataset: item i is the image at paths[i], decoded,
converted to RGB, resized to size x size and scaled to [0, 1] (float32, C x H x W). A file that
cannot be decoded does not raise: its item has ok = False and the error text, so one bad image
never stops a batch; callers skip and record it. torch is imported lazily (etl stays light).

Two more kinds of image reference, per row (`load_ref`): ``h5_index`` (a Fashion Synthesis
image: row ``h5_index`` (1-based) of the ``G2.h5`` at the path, mean added back) and ``crop``
(``[x1, y1, x2, y2]``: that box of the image, e.g. a DeepFashion2 item; an empty box is an error).

``read_ahead=N``: the files of the next N items are read by background threads while the
current one is decoded (`etl.read_ahead`: the embed job's reader, where most of a million files
come from the disk, not the page cache).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image, UnidentifiedImageError


def _open(path: str, data: bytes | None) -> Image.Image:
    """The image at ``path``, from ``data`` (its bytes, read ahead) when given; errors name the path."""
    if data is None:
        return Image.open(path)
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UnidentifiedImageError(f"cannot identify image file {path!r}") from None


def load_image(path: str, size: int, data: bytes | None = None) -> np.ndarray:
    """uint8 H x W x 3 array of the image resized to size x size (raises on a bad file);
    ``data``: the file's bytes, already read."""
    with _open(path, data) as im:
        if im.format == "JPEG":
            im.draft("RGB", (size, size))  # decode at reduced scale when the file is much larger
        return np.array(im.convert("RGB").resize((size, size), Image.BILINEAR))  # a writable copy


def load_ref(path: str, size: int, h5_index: int | None = None, crop=None, data: bytes | None = None) -> np.ndarray:
    """uint8 size x size x 3 array of one image reference (raises on a bad file or an empty crop);
    ``data``: the file's bytes, already read (not for an ``h5_index`` row)."""
    if h5_index is not None:
        from etl.synthesis import synthesis_images

        pixels = synthesis_images(path, [int(h5_index)])[0]
        return np.array(Image.fromarray(pixels).resize((size, size), Image.BILINEAR))
    if crop is None:
        return load_image(path, size, data)
    from etl.deepfashion2_crops import crop_box

    with _open(path, data) as im:
        im = im.convert("RGB")
        box = crop_box(crop, *im.size)
        return np.array(im.crop(box).resize((size, size), Image.BILINEAR))


def _dataset_base():
    try:
        from torch.utils.data import Dataset
    except ImportError as e:  # pragma: no cover - torch is a dependency; this names the fix
        raise ImportError("atelier's training and embedding jobs need torch: pip install torch torchvision") from e
    return Dataset


def _values(values, optional: bool = True):
    """A column as the dataset keeps it: an Arrow array stays Arrow (one Python object per item
    only while it is read: a million paths cost their bytes, not a million strings), None for
    an ``optional`` column whose every value is null; anything else becomes a list."""
    if values is None:
        return None
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        return None if optional and values.null_count == len(values) else values
    return list(values)


def _at(values, i: int):
    return values[i].as_py() if isinstance(values, pa.Array) else values[i]


class ImageFolderRows(_dataset_base()):
    """Dataset over image paths (and optional integer labels, h5 rows, crops): lists, or Arrow
    arrays (kept as Arrow, see `_values`)."""

    def __init__(self, paths: Sequence[str], size: int, labels: Sequence[int] | None = None,
                 h5_index: Sequence[int | None] | None = None, crops: Sequence | None = None, read_ahead: int = 0):
        for name, values in (("labels", labels), ("h5_index", h5_index), ("crops", crops)):
            if values is not None and len(values) != len(paths):
                raise ValueError(f"{len(paths)} paths but {len(values)} {name}")
        self.paths, self.size = _values(paths, optional=False), size
        self.labels = _values(labels)
        self.h5_index = _values(h5_index)
        self.crops = _values(crops)
        self.read_ahead = read_ahead  # items whose files are read ahead (0: none)
        self._ahead = None  # its ReadAhead, made in the process that reads (not pickled to workers)

    def __len__(self) -> int:
        return len(self.paths)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_ahead": None}

    def _path_to_read(self, i: int) -> str | None:
        """The file read ahead for item i (an h5 row reads one row of a large file itself: None)."""
        return _at(self.paths, i) if self.h5_index is None or _at(self.h5_index, i) is None else None

    def _bytes(self, i: int) -> bytes | None:
        if not self.read_ahead:
            return None
        if self._ahead is None:
            from etl.read_ahead import ReadAhead

            self._ahead = ReadAhead(self._path_to_read, len(self), self.read_ahead)
        return self._ahead.get(i)

    def close(self) -> None:
        """Stop the read-ahead threads, if any."""
        if self._ahead is not None:
            self._ahead.close()
            self._ahead = None

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        label = _at(self.labels, i) if self.labels is not None else -1
        try:
            pixels = load_ref(_at(self.paths, i), self.size, _at(self.h5_index, i) if self.h5_index is not None else None,
                              _at(self.crops, i) if self.crops is not None else None, self._bytes(i))  # fmt: skip
            error = ""
        except Exception as e:  # a broken file: reported in the item, never raised
            pixels = np.zeros((self.size, self.size, 3), np.uint8)
            error = f"{type(e).__name__}: {e}"
        image = torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255)
        return {"image": image, "label": label, "index": i, "ok": not error, "error": error}
