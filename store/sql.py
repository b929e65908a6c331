"""The SQL runner: loads `sql/<relation>.sql` by name, builds lake tables from raw relations,
and answers read-only queries over every lake table (`atelier sql`)."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from store.lake import DATASETS, Lake

if TYPE_CHECKING:
    import pyarrow as pa

READ_ONLY_STATEMENTS = {"SELECT", "EXPLAIN", "PRAGMA"}


@functools.cache
def lake_views() -> frozenset[str]:
    """The declared lake tables as view names ``<dataset>_<table>``: every table has its relation
    file ``sql/<dataset>_<table>.sql`` (the same names as `store.tables.TABLES`, checked by a test;
    read from the file names so that `atelier sql` does not import pyarrow's schemas)."""
    names = (p.name.removesuffix(".sql") for p in resources.files("sql").iterdir() if p.name.endswith(".sql"))
    return frozenset(n for n in names if any(n.startswith(f"{d}_") for d in DATASETS))


class ReadOnlyError(ValueError):
    """`atelier sql` got a statement that would change something."""


def load_sql(relation: str) -> str:
    """The text of `sql/<relation>.sql`."""
    path = resources.files("sql").joinpath(f"{relation}.sql")
    if not path.is_file():
        raise FileNotFoundError(f"no SQL file for relation {relation!r} (looked for sql/{relation}.sql)")
    return path.read_text("utf-8")


def iter_dataset(dataset: str, inputs: Mapping[str, pa.Table]) -> Iterator[tuple[str, pa.Table]]:
    """Run a dataset's SQL over the raw relations from ``etl``: stg views, then each table in
    declared order, yielded as soon as it is computed (so writing can overlap computing).

    Optional tables whose raw relation is empty (the file was not in the release) are skipped.
    """
    from store.tables import OPTIONAL, STAGING, TABLES

    con = duckdb.connect()
    try:
        for name, table in inputs.items():
            con.register(name, table)
        for view in STAGING.get(dataset, []):
            con.execute(f"create view {view} as {load_sql(view)}")
        for table in TABLES[dataset]:
            relation = f"{dataset}_{table}"
            if table in OPTIONAL.get(dataset, set()) and not inputs[f"raw_{relation}"].num_rows:
                continue
            result = con.sql(load_sql(relation)).to_arrow_table()
            con.register(relation, result)  # later relations read the result, zero-copy
            yield table, result
    finally:
        con.close()


def build_dataset(dataset: str, inputs: Mapping[str, pa.Table]) -> dict[str, pa.Table]:
    """All of a dataset's tables (see iter_dataset), as a dict."""
    return dict(iter_dataset(dataset, inputs))


def connect_lake(home: Path | str, vectors: bool = True) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per lake table (`<dataset>_<table>`), the views
    `quarantine` and `sources` across datasets, and (``vectors``) a view per vector space
    (`vectors_<space>`, the Lance dataset read through Arrow)."""
    con = duckdb.connect()
    # view names are identifiers, not parameters: only the declared tables get one
    tables = {view: path for view, path in Lake(home).tables().items() if view in lake_views()}
    for view, path in tables.items():
        con.read_parquet(str(path)).create_view(view)  # the path is an argument, never SQL text
    for shared in ("quarantine", "sources"):  # one view across datasets
        parts = [v for v in tables if v.endswith(f"_{shared}")]
        if parts:
            con.execute(f"create view {shared} as " + " union all by name ".join(f"select * from {v}" for v in parts))
    if vectors and (Path(home) / "vectors").exists():
        # lancedb takes a second to import: only when needed
        from store.vectors import VectorStore

        vectors = VectorStore(home)
        for space in vectors.spaces():
            con.register(f"vectors_{space}", vectors.table(space).to_lance())
    return con


Params = Sequence[object] | Mapping[str, object] | None


def query(home: Path | str, sql: str, params: Params = None) -> pa.Table:
    """Run one read-only statement against the lake; anything that writes is refused.

    Values reach the statement only as bound parameters: ``params`` is a list for `?`
    placeholders or a dict for `$name` ones, handed to DuckDB as they are (never formatted
    into the text).
    """
    _check_read_only(sql)
    con = connect_lake(home)
    try:
        return con.sql(sql, params=params).to_arrow_table()
    finally:
        con.close()


def fetch(home: Path | str, sql: str, params: Params = None) -> tuple[list[str], list[tuple]]:
    """`query` without Arrow: (column names, rows as tuples of Python values). What `atelier sql`
    prints; the vector spaces are opened only when the statement names one (``vectors_...``)."""
    _check_read_only(sql)
    con = connect_lake(home, vectors="vectors_" in sql.lower())
    try:
        cursor = con.execute(sql, params) if params is not None else con.execute(sql)
        return [d[0] for d in cursor.description], cursor.fetchall()
    finally:
        con.close()


def run_relation(home: Path | str, relation: str, params: Params = None) -> pa.Table:
    """The rows of the read-only relation `sql/<relation>.sql` over the lake's tables (views
    `<dataset>_<table>`, no vector tables), its values bound from ``params`` (`$name` in the
    file, a dict here). A lake table it reads that is missing is DuckDB's CatalogException."""
    sql = load_sql(relation)
    _check_read_only(sql)
    con = connect_lake(home, vectors=False)
    try:
        return con.sql(sql, params=params).to_arrow_table()
    finally:
        con.close()


def _check_read_only(sql: str) -> None:
    statements = duckdb.extract_statements(sql)
    if len(statements) != 1:
        raise ReadOnlyError(f"expected one SQL statement, got {len(statements)}")
    kind = statements[0].type.name
    if kind not in READ_ONLY_STATEMENTS:
        raise ReadOnlyError(f"atelier sql is read-only: {kind} statements are refused")
