"""etl: read raw dataset releases into Arrow relations; probe images; generate sample releases.

Nothing here writes to the lake: readers return `dict[str, pyarrow.Table]` of raw relations
that ``store.build_dataset`` turns into lake tables.
"""

import importlib

# public name -> the module that defines it (imported on first use: the readers pull in scipy,
# h5py and PIL, which `atelier --help` does not need)
_PUBLIC = {
    "RawFormatError": "etl.common", "stable_split": "etl.common",
    "ATTRIBUTE_CLASSES": "etl.deepfashion", "read_deepfashion": "etl.deepfashion",
    "read_deepfashion2": "etl.deepfashion2",
    "CROP_MODES": ("etl.deepfashion2_crops", "MODES"), "item_crop": "etl.deepfashion2_crops",
    "PROBE_SCHEMA": "etl.images", "probe_image": "etl.images", "probe_images": "etl.images",
    "SPLITS": "etl.polyvore", "VARIANTS": "etl.polyvore", "read_polyvore": "etl.polyvore",
    "read_synthesis": "etl.synthesis", "synthesis_images": "etl.synthesis", "synthesis_segmentations": "etl.synthesis",
    "read_viton": "etl.viton",
    "EmptyMaskError": "etl.viton_crops", "ParseModeError": "etl.viton_crops", "upper_clothes_crop": "etl.viton_crops",
    "upper_clothes_crops": "etl.viton_crops", "upper_clothes_mask": "etl.viton_crops",
}  # fmt: skip


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'etl' has no attribute {name!r}")
    module, attr = _PUBLIC[name] if isinstance(_PUBLIC[name], tuple) else (_PUBLIC[name], name)
    return getattr(importlib.import_module(module), attr)


__all__ = ["ATTRIBUTE_CLASSES", "CROP_MODES", "EmptyMaskError", "PROBE_SCHEMA", "ParseModeError", "RawFormatError",
           "SPLITS", "VARIANTS", "item_crop", "probe_image", "probe_images", "read_deepfashion", "read_deepfashion2",
           "read_polyvore", "read_synthesis", "read_viton", "stable_split", "synthesis_images", "synthesis_segmentations",
           "upper_clothes_crop", "upper_clothes_crops", "upper_clothes_mask"]  # fmt: skip
