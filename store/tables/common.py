"""Column sets shared by several datasets' tables."""

from __future__ import annotations

import pyarrow as pa

from etl.common import QUARANTINE_SCHEMA
from etl.images import PROBE_SCHEMA

s, i8, i16, i32, i64, b, f32 = pa.string(), pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.bool_(), pa.float32()
strs = pa.list_(s)
ints = pa.list_(i32)

# per source file: records_read = records_kept + records_quarantined (every dataset has one)
SOURCES_SCHEMA = pa.schema(
    [("dataset", s), ("source_file", s), ("records_read", i64), ("records_kept", i64), ("records_quarantined", i64)]
)
# the probe of a record's image, joined onto the record
IMAGE_COLUMNS = [("image_path", s), ("image_ok", b), ("width", i32), ("height", i32), ("image_sha1", s)]

__all__ = ["IMAGE_COLUMNS", "PROBE_SCHEMA", "QUARANTINE_SCHEMA", "SOURCES_SCHEMA", "b", "f32", "i16", "i32", "i64", "i8",
           "ints", "s", "strs"]  # fmt: skip
