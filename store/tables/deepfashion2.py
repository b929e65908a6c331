"""DeepFashion2 + Simplicity sketches: lake tables (built by sql/deepfashion2_<table>.sql, in this order).

`items.item_id` is `<split>/<image_id>#item<item_no>` (image ids restart at 000001 in each
split); the bounding box is four float32 columns (pixel edges as annotated, x2/y2 exclusive in
the samples); `pairs` has one row per positive group (split, pair_id, style > 0) with its shop
and user item ids.
"""

from __future__ import annotations

import pyarrow as pa

from store.tables.common import (
    IMAGE_COLUMNS,
    PROBE_SCHEMA,
    QUARANTINE_SCHEMA,
    SOURCES_SCHEMA,
    b,
    f32,
    i32,
    i64,
    s,
    strs,
)

STAGING = ["stg_deepfashion2_items", "stg_deepfashion2_images", "stg_deepfashion2_sketch_images"]
OPTIONAL: set[str] = set()
TABLES = {
    "items": pa.schema(
        [("item_id", s), ("image_id", s), ("split", s), ("item_no", i32), ("pair_id", i64), ("source", s),
         ("style", i32), ("category_id", i32), ("category_name", s),
         ("bbox_x1", f32), ("bbox_y1", f32), ("bbox_x2", f32), ("bbox_y2", f32),
         ("n_landmarks", i32), ("landmarks", pa.list_(f32)), ("segmentation", pa.list_(pa.list_(f32))),
         ("n_polygons", i32), ("occlusion", i32), ("scale", i32), ("viewpoint", i32), ("zoom_in", i32),
         *IMAGE_COLUMNS]
    ),
    "image_probes": PROBE_SCHEMA,
    "pairs": pa.schema(
        [("split", s), ("pair_id", i64), ("style", i32), ("category_id", i32), ("n_shop", i32), ("n_user", i32),
         ("shop_item_ids", strs), ("user_item_ids", strs)]
    ),
    "sketches": pa.schema(
        [("pattern_id", s), ("line_image", s), ("line_image_ok", b), ("other_images", strs),
         ("other_images_ok", pa.list_(b)), ("n_other_images", i32)]
    ),
    "quarantine": QUARANTINE_SCHEMA,
    "sources": SOURCES_SCHEMA,
}
