"""Polyvore Outfits: lake tables (built by sql/polyvore_<table>.sql, in this order)."""

from __future__ import annotations

import pyarrow as pa

from store.tables.common import IMAGE_COLUMNS, PROBE_SCHEMA, QUARANTINE_SCHEMA, SOURCES_SCHEMA, i8, i32, s, strs

STAGING = ["stg_polyvore_items", "stg_polyvore_outfit_items", "stg_polyvore_compatibility", "stg_polyvore_fitb"]
OPTIONAL: set[str] = set()
TABLES = {
    "items": pa.schema(
        [("item_id", s), ("semantic_category", s), ("category_id", i32), ("category_name", s), ("title", s),
         ("description", s), ("url_name", s), *IMAGE_COLUMNS]  # fmt: skip
    ),
    "image_probes": PROBE_SCHEMA,
    "outfit_items": pa.schema(
        [("variant", s), ("split", s), ("set_id", s), ("index", i32), ("item_id", s), ("semantic_category", s)]
    ),
    "outfits": pa.schema([("variant", s), ("split", s), ("set_id", s), ("n_items", i32), ("title", s)]),
    "outfits4": pa.schema(
        [("variant", s), ("split", s), ("set_id", s), ("shoes", s), ("tops", s), ("accessories", s), ("bottoms", s)]
    ),
    "compatibility": pa.schema([("variant", s), ("split", s), ("question_id", i32), ("label", i8), ("item_ids", strs)]),
    "fitb": pa.schema(
        [("variant", s), ("split", s), ("question_id", i32), ("set_id", s), ("question_item_ids", strs),
         ("candidate_item_ids", strs), ("answer_position", i32), ("blank_position", i32)]  # fmt: skip
    ),
    "quarantine": QUARANTINE_SCHEMA,
    "sources": SOURCES_SCHEMA,
}
