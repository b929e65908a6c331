"""store: the only code that opens Parquet, DuckDB and LanceDB.

Public API: the home directory's lake (`Lake`, `default_home`), the SQL runner (`build_dataset`,
`query` and `run_relation`, values as bound parameters; `connect_lake`, `load_sql`), the
declared table schemas (`TABLES`) and the vector store (`VectorStore`, `vector_schema`:
`<home>/vectors`, one LanceDB table per embedding space; imported on first use, as
`import lancedb` takes over a second).
"""

from store.lake import DATASETS, Lake, default_home
from store.sql import ReadOnlyError, build_dataset, connect_lake, iter_dataset, load_sql, query, run_relation
from store.tables import TABLES, SchemaError

__all__ = ["DATASETS", "TABLES", "Lake", "ReadOnlyError", "SchemaError", "UnknownSpaceError", "VectorStore",
           "build_dataset", "connect_lake", "default_home", "iter_dataset", "load_sql", "query",
           "run_relation", "vector_schema"]  # fmt: skip


_LAZY = {"UnknownSpaceError", "VectorStore", "vector_schema"}


def __getattr__(name: str):
    if name in _LAZY:
        from store import vectors

        return getattr(vectors, name)
    raise AttributeError(f"module 'store' has no attribute {name!r}")
