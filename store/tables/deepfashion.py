"""DeepFashion attributes: lake tables (built by sql/deepfashion_<table>.sql, in this order)."""

from __future__ import annotations

import pyarrow as pa

from store.tables.common import IMAGE_COLUMNS, PROBE_SCHEMA, QUARANTINE_SCHEMA, SOURCES_SCHEMA, b, i8, i32, ints, s

STAGING = ["stg_deepfashion_attributes"]
# the official benchmark lists: built only when the release has them
OPTIONAL = {"attribute_names", "category_names", "image_attributes", "image_categories", "partition"}
TABLES = {
    "attributes": pa.schema(
        [("image_id", s), ("split", s), ("neck", i8), ("sleeve_length", i8), ("pattern", i8),
         ("neck_raw", s), ("neck_missing", b), ("sleeve_length_raw", s), ("sleeve_length_missing", b),
         ("pattern_raw", s), ("pattern_missing", b), *IMAGE_COLUMNS]  # fmt: skip
    ),
    "image_probes": PROBE_SCHEMA,
    "attribute_names": pa.schema([("attribute_id", i32), ("attribute_name", s), ("attribute_type", i8)]),
    "category_names": pa.schema([("category_id", i32), ("category_name", s), ("category_type", i8)]),
    "image_attributes": pa.schema([("image_name", s), ("attribute_ids", ints)]),
    "image_categories": pa.schema([("image_name", s), ("category_id", i32)]),
    "partition": pa.schema([("image_name", s), ("split", s)]),
    "quarantine": QUARANTINE_SCHEMA,
    "sources": SOURCES_SCHEMA,
}
