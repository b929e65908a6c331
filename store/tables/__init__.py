"""Every lake table's schema, declared once (one module per dataset) and checked on write.

Each dataset module declares `STAGING` (the `stg_` views, created first, in order), `TABLES`
(table -> pyarrow schema, built in this order: later tables may read earlier ones) and
`OPTIONAL` (tables built only when their raw relation has rows). Relation `<dataset>_<table>`
is the file `sql/<dataset>_<table>.sql` and the Parquet file `lake/<dataset>/<table>.parquet`.
The derived dataset ``generated`` (no release: `store.lake.DERIVED_DATASETS`) is declared the same way.
"""

from __future__ import annotations

import pyarrow as pa

from store.tables import deepfashion, deepfashion2, generated, polyvore, synthesis, viton

_DATASETS = {"polyvore": polyvore, "deepfashion": deepfashion, "viton": viton, "deepfashion2": deepfashion2, "synthesis": synthesis,
             "generated": generated}  # the last: derived (store.lake.DERIVED_DATASETS), written by atelier itself

STAGING: dict[str, list[str]] = {name: m.STAGING for name, m in _DATASETS.items()}
TABLES: dict[str, dict[str, pa.Schema]] = {name: m.TABLES for name, m in _DATASETS.items()}
OPTIONAL: dict[str, set[str]] = {name: m.OPTIONAL for name, m in _DATASETS.items()}


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
