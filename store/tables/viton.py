"""VITON-HD: lake tables (built by sql/viton_<table>.sql, in this order).

Missing files are counted per split and folder in `folders`; `sources` has one row per pairs
file (records = lines) and per `<split>/<folder>` (records = referenced files that exist).
"""

from __future__ import annotations

import pyarrow as pa

from store.tables.common import PROBE_SCHEMA, QUARANTINE_SCHEMA, SOURCES_SCHEMA, b, i32, i64, s

STAGING = ["stg_viton_files", "stg_viton_stems", "stg_viton_pairs"]
OPTIONAL: set[str] = set()
TABLES = {
    "pairs": pa.schema(
        [("split", s), ("line_no", i32), ("person", s), ("cloth", s), ("paired", b), ("subset", s),
         ("person_exists", b), ("cloth_exists", b), ("cloth_mask_exists", b)]  # fmt: skip
    ),
    "samples": pa.schema(
        [("split", s), ("subset", s), ("person", s), ("stem", s),
         ("image_path", s), ("image_exists", b), ("image_ok", b), ("width", i32), ("height", i32),
         ("cloth_path", s), ("cloth_exists", b), ("cloth_mask_path", s), ("cloth_mask_exists", b),
         ("parse_path", s), ("parse_exists", b), ("parse_mode", s), ("parse_palette", b), ("upper_clothes_present", b),
         ("parse_agnostic_path", s), ("parse_agnostic_exists", b), ("parse_agnostic_palette", b),
         ("openpose_img_path", s), ("openpose_img_exists", b), ("openpose_json_path", s), ("openpose_json_exists", b),
         ("complete", b)]  # fmt: skip
    ),
    "folders": pa.schema(
        [("split", s), ("folder", s), ("files_expected", i64), ("files_present", i64), ("files_missing", i64),
         ("files_unusable", i64), ("files_in_folder", i64)]  # fmt: skip
    ),
    "image_probes": PROBE_SCHEMA,
    "quarantine": QUARANTINE_SCHEMA,
    "sources": SOURCES_SCHEMA,
}
