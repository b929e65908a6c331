"""Generated images (`atelier generate`, `/generate`): the derived dataset ``generated``.

Not ingested from a release: each generation adds its images to ``images`` (built by
sql/generated_images.sql from the previous rows and the new ones, one row per ``item_id``).
``item_id`` is ``<model version>/<hash>_<i>`` (the PNG ``HOME/generated/<model version>/<hash>_<i>.png``,
the hash of prompt, seed, steps and guidance), so generating the same prompt, seed and model
again replaces its rows instead of adding new ones. The image columns come from probing the
PNG with the home as its root (a path that resolves outside the home is never recorded usable).
"""

from __future__ import annotations

import pyarrow as pa

from store.tables.common import IMAGE_COLUMNS, f32, i32, i64, s

STAGING: list[str] = []
OPTIONAL: set[str] = set()
TABLES = {
    "images": pa.schema(
        [("item_id", s), ("prompt", s), ("seed", i64), ("index", i32), ("steps", i32), ("guidance", f32),
         ("model_version", s), ("created_at", pa.timestamp("us", tz="UTC")), *IMAGE_COLUMNS]
    ),
}
