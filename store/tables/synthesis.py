"""DeepFashion Fashion Synthesis: lake tables (built by sql/synthesis_<table>.sql, in this order)."""

from __future__ import annotations

import pyarrow as pa

from store.tables.common import PROBE_SCHEMA, QUARANTINE_SCHEMA, SOURCES_SCHEMA, b, i8, i32, ints, s

STAGING = ["stg_synthesis_split_entries", "stg_synthesis_captions"]
OPTIONAL: set[str] = set()
TABLES = {
    "captions": pa.schema(
        [("index", i32), ("name", s), ("caption", s), ("category", i8), ("color", i8), ("gender", i8), ("sleeve", i8),
         ("split", s)]
    ),
    "codes": pa.schema([("index", i32), ("word_codes", ints), ("n_words", i32)]),
    "splits": pa.schema([("split", s), ("position", i32), ("index", i32)]),
    "images": pa.schema([("index", i32), ("name", s), ("h5_path", s), ("captioned", b)]),
    "image_probes": PROBE_SCHEMA,
    "quarantine": QUARANTINE_SCHEMA,
    "sources": SOURCES_SCHEMA,
}
