"""Every lake table's schema, declared once and checked on write, with the SQL that builds it.

A dataset's tables are built in the order listed here (later tables read earlier ones); the
`stg_` views listed in STAGING are created first. Relation `<dataset>_<table>` is the file
`sql/<dataset>_<table>.sql` and the Parquet file `lake/<dataset>/<table>.parquet`.
"""

from __future__ import annotations

import pyarrow as pa

from etl.common import QUARANTINE_SCHEMA
from etl.images import PROBE_SCHEMA

s, i8, i32, i64, b, f32 = pa.string(), pa.int8(), pa.int32(), pa.int64(), pa.bool_(), pa.float32()
strs = pa.list_(s)
ints = pa.list_(i32)

SOURCES_SCHEMA = pa.schema(
    [("dataset", s), ("source_file", s), ("records_read", i64), ("records_kept", i64), ("records_quarantined", i64)]
)
IMAGE_COLUMNS = [("image_path", s), ("image_ok", b), ("width", i32), ("height", i32), ("image_sha1", s)]

STAGING: dict[str, list[str]] = {
    "polyvore": ["stg_polyvore_items", "stg_polyvore_outfit_items", "stg_polyvore_compatibility", "stg_polyvore_fitb"],
    "deepfashion": ["stg_deepfashion_attributes"],
}

TABLES: dict[str, dict[str, pa.Schema]] = {
    "polyvore": {
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
        "compatibility": pa.schema(
            [("variant", s), ("split", s), ("question_id", i32), ("label", i8), ("item_ids", strs)]
        ),
        "fitb": pa.schema(
            [("variant", s), ("split", s), ("question_id", i32), ("set_id", s), ("question_item_ids", strs),
             ("candidate_item_ids", strs), ("answer_position", i32), ("blank_position", i32)]  # fmt: skip
        ),
        "quarantine": QUARANTINE_SCHEMA,
        "sources": SOURCES_SCHEMA,
    },
    "deepfashion": {
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
    },
}

# tables built only when the release has their raw files (DeepFashion's official benchmark lists)
OPTIONAL: dict[str, set[str]] = {
    "deepfashion": {"attribute_names", "category_names", "image_attributes", "image_categories", "partition"},
}


class SchemaError(ValueError):
    """A table does not match its declared schema."""


def conform(dataset: str, table: str, data: pa.Table) -> pa.Table:
    """Check ``data`` against the declared schema of ``dataset.table`` and cast to it."""
    schema = TABLES[dataset][table]
    missing = [n for n in schema.names if n not in data.column_names]
    extra = [n for n in data.column_names if n not in schema.names]
    if missing or extra:
        raise SchemaError(f"{dataset}.{table}: columns missing {missing}, unexpected {extra}")
    try:
        return data.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise SchemaError(f"{dataset}.{table}: {e}") from e
