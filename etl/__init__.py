"""etl: read raw dataset releases into Arrow relations; probe images; generate sample releases.

Nothing here writes to the lake: readers return `dict[str, pyarrow.Table]` of raw relations
that ``store.build_dataset`` turns into lake tables.
"""

from etl.common import RawFormatError, stable_split
from etl.deepfashion import ATTRIBUTE_CLASSES, read_deepfashion
from etl.deepfashion2 import read_deepfashion2
from etl.deepfashion2_crops import MODES as CROP_MODES
from etl.deepfashion2_crops import item_crop
from etl.images import PROBE_SCHEMA, probe_image, probe_images
from etl.polyvore import SPLITS, VARIANTS, read_polyvore
from etl.synthesis import read_synthesis, synthesis_images, synthesis_segmentations
from etl.viton import read_viton
from etl.viton_crops import EmptyMaskError, ParseModeError, upper_clothes_crop, upper_clothes_crops, upper_clothes_mask

__all__ = ["ATTRIBUTE_CLASSES", "CROP_MODES", "EmptyMaskError", "PROBE_SCHEMA", "ParseModeError", "RawFormatError",
           "SPLITS", "VARIANTS", "item_crop", "probe_image", "probe_images", "read_deepfashion", "read_deepfashion2",
           "read_polyvore", "read_synthesis", "read_viton", "stable_split", "synthesis_images", "synthesis_segmentations",
           "upper_clothes_crop", "upper_clothes_crops", "upper_clothes_mask"]  # fmt: skip
