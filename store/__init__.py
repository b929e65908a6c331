"""store: the only code that opens Parquet, DuckDB and LanceDB.

Public API: the home directory's lake (`Lake`, `default_home`), the SQL runner (`build_dataset`,
`query`, `connect_lake`, `load_sql`) and the declared table schemas (`TABLES`).
"""

from store.lake import DATASETS, Lake, default_home
from store.sql import ReadOnlyError, build_dataset, connect_lake, iter_dataset, load_sql, query
from store.tables import TABLES, SchemaError

__all__ = ["DATASETS", "Lake", "ReadOnlyError", "SchemaError", "TABLES", "build_dataset", "connect_lake",
           "default_home", "iter_dataset", "load_sql", "query"]  # fmt: skip
