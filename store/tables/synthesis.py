"""synthesis: lake tables (built by sql/synthesis_<table>.sql, in this order). Being written (issue 3)."""

from __future__ import annotations

import pyarrow as pa

STAGING: list[str] = []
OPTIONAL: set[str] = set()
TABLES: dict[str, pa.Schema] = {}
