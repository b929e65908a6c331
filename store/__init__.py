"""store: the only code that opens Parquet, DuckDB and LanceDB.

Public API: the home directory's lake (`Lake`, `default_home`), the SQL runner (`build_dataset`,
`query` and `run_relation`, values as bound parameters, sandboxed; `connect_lake`, `load_sql`), the
declared table schemas (`TABLES`) and the vector store (`VectorStore`, `vector_schema`:
`<home>/vectors`, one LanceDB table per embedding space; imported on first use, as
`import lancedb` takes over a second).
"""

import importlib

# public name -> its module, imported on first use (duckdb, pyarrow and lancedb load only when needed)
_PUBLIC = {
    "DATASETS": "store.lake", "DERIVED_DATASETS": "store.lake", "LAKE_DATASETS": "store.lake", "DamagedTableError": "store.lake", "Lake": "store.lake", "default_home": "store.lake",
    "ReadOnlyError": "store.sql", "build_dataset": "store.sql", "connect_lake": "store.sql", "iter_dataset": "store.sql",
    "SandboxError": "store.sql", "load_sql": "store.sql", "query": "store.sql", "run_relation": "store.sql",
    "TABLES": "store.tables", "SchemaError": "store.tables",
    "UnknownSpaceError": "store.vectors", "VectorStore": "store.vectors", "vector_schema": "store.vectors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'store' has no attribute {name!r}")
