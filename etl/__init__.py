"""etl: read raw dataset releases into Arrow relations; probe images; generate sample releases.

Nothing here writes to the lake: readers return `dict[str, pyarrow.Table]` of raw relations
that ``store.build_dataset`` turns into lake tables.
"""

from etl.common import RawFormatError, stable_split
from etl.deepfashion import ATTRIBUTE_CLASSES, read_deepfashion
from etl.images import PROBE_SCHEMA, probe_image, probe_images
from etl.polyvore import SPLITS, VARIANTS, read_polyvore

__all__ = ["ATTRIBUTE_CLASSES", "PROBE_SCHEMA", "RawFormatError", "SPLITS", "VARIANTS", "probe_image",
           "probe_images", "read_deepfashion", "read_polyvore", "stable_split"]  # fmt: skip
