"""The SQL runner: loads `sql/<relation>.sql` by name, builds lake tables from raw relations,
and answers read-only queries over every lake table (`atelier sql`).

Queries over the lake run in a DuckDB sandbox: one statement of a read-only kind (`SELECT`,
`WITH ... SELECT`, `FROM ...`, `VALUES`, `SHOW`, `DESCRIBE`, `SUMMARIZE`, plain `EXPLAIN`), files
readable only under the home's `lake/` and `vectors/` (`allowed_directories` with
`enable_external_access = false`), no extension installed or loaded, configuration locked before
the statement runs. Views are created only for the tables a statement names, so one damaged
table fails only the queries that read it (`DamagedTableError`, naming the file).

DuckDB checks a path as written (normalised), while the OS follows symbolic links: a link inside
the lake that points out of it would open its target's parents to `..`. atelier links only inside
the lake (`lake/<dataset>` -> `lake/.versions/...`); do not link a lake folder elsewhere."""

from __future__ import annotations

import functools
import os
import re
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from store.lake import LAKE_DATASETS, DamagedTableError, Lake
from store.lake_s3 import S3Lake

if TYPE_CHECKING:
    import pyarrow as pa

ALLOWED = "SELECT (also WITH ... SELECT, FROM ..., VALUES, SHOW), DESCRIBE, SUMMARIZE and EXPLAIN without ANALYZE"
SHARED_VIEWS = ("quarantine", "sources")  # one view across datasets over their `<dataset>_<name>` tables
VECTORS = "vectors_"  # view `vectors_<space>` per vector space
# names that list the catalogue (`SHOW TABLES`, `information_schema.tables`, `duckdb_views()`):
# a statement naming one sees every view
CATALOG = re.compile(r"^(show|tables|information_schema|sqlite_master|sqlite_schema|duckdb_\w+|pg_\w+)$")
SANDBOX = {  # set when the connection is made; the file settings follow in _sandbox
    "autoinstall_known_extensions": False, "autoload_known_extensions": False, "allow_community_extensions": False,
    "python_enable_replacements": False,  # only the registered views, never a Python variable by its name
}  # fmt: skip
__all__ = ["ALLOWED", "DamagedTableError", "ReadOnlyError", "SandboxError", "build_dataset", "connect_lake", "fetch",
           "iter_dataset", "lake_views", "load_sql", "query", "run_relation"]  # fmt: skip


@functools.cache
def lake_views() -> frozenset[str]:
    """The declared lake tables as view names ``<dataset>_<table>`` (ingested and derived datasets,
    `store.lake.LAKE_DATASETS`): every table has its relation
    file ``sql/<dataset>_<table>.sql`` (the same names as `store.tables.TABLES`, checked by a test;
    read from the file names so that `atelier sql` does not import pyarrow's schemas)."""
    names = (p.name.removesuffix(".sql") for p in resources.files("sql").iterdir() if p.name.endswith(".sql"))
    return frozenset(n for n in names if any(n.startswith(f"{d}_") for d in LAKE_DATASETS))


class SandboxError(ValueError):
    """`atelier sql` was asked for something outside its sandbox (a file outside the home's lake
    and vectors, a URL, an extension)."""


class ReadOnlyError(SandboxError):
    """`atelier sql` got a statement that is not one read-only statement (it could change something)."""


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


def connect_lake(home: Path | str, vectors: bool = True, sql: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB sandboxed to the home (see the module docstring), configuration locked,
    with a view per lake table (`<dataset>_<table>`), the views `quarantine` and `sources` across
    datasets, and (``vectors``) a view per vector space (`vectors_<space>`, the Lance dataset read
    through Arrow). Given the statement ``sql``, only the views it names (and the parts of
    `quarantine` / `sources`) are made, unless it lists the catalogue (`SHOW TABLES`, ...).

    A lake table whose file cannot be read as Parquet is a `DamagedTableError` naming it."""
    return _open(home, vectors, sql)[0]


def _open(home: Path | str, vectors: bool, sql: str | None) -> tuple[duckdb.DuckDBPyConnection, dict[str, Path]]:
    """`connect_lake`, and the lake tables it made views of (name -> file)."""
    lake = Lake(home)
    # view names are identifiers, not parameters: only the declared tables get one
    tables = {view: path for view, path in lake.tables().items() if view in lake_views()}
    words = _words(sql) if sql is not None else None
    wanted = set(tables) if words is None else _wanted(words, tables)
    if words is not None and (any(CATALOG.match(w) for w in words) or ("describe" in words and not wanted)):
        wanted = set(tables)  # the statement lists the catalogue: every view
    spaces: list[tuple[str, object]] = []
    remote = isinstance(lake, S3Lake)
    if vectors and (remote or (Path(home) / "vectors").exists()) and (words is None or any(w.startswith(VECTORS) for w in words)):
        # lancedb takes a second to import: only when needed
        from store.vectors import VectorStore

        store = VectorStore(home)
        spaces = [(f"{VECTORS}{s}", store) for s in store.spaces() if words is None or f"{VECTORS}{s}" in words]
    con = duckdb.connect(config={**SANDBOX, "temp_directory": _temp_directory()})
    try:
        _sandbox(con, lake, tables.values())
        for view in sorted(wanted):
            try:
                if remote:  # an Arrow dataset over S3, scanned by pyarrow: DuckDB itself reaches no URL
                    con.register(view, _s3_dataset(lake, tables[view]))
                else:
                    con.read_parquet(str(tables[view])).create_view(view)  # the path is an argument, never SQL text
            except (duckdb.Error, OSError, ValueError) as e:
                shown = f"s3://{tables[view]}" if remote else tables[view]
                raise DamagedTableError(shown, _dataset(view), _first_line(e)) from e
        for shared in SHARED_VIEWS:
            parts = sorted(v for v in wanted if v.endswith(f"_{shared}"))
            if parts and (words is None or shared in words or len(wanted) == len(tables)):
                con.execute(f"create view {shared} as " + " union all by name ".join(f"select * from {v}" for v in parts))
        for view, store in spaces:
            con.register(view, store.table(view.removeprefix(VECTORS)).to_lance())
        con.execute("set lock_configuration = true")  # no SET can undo the sandbox
    except BaseException:
        con.close()
        raise
    return con, {view: tables[view] for view in wanted}


Params = Sequence[object] | Mapping[str, object] | None


def query(home: Path | str, sql: str, params: Params = None) -> pa.Table:
    """Run one read-only statement against the lake, sandboxed; anything else is refused.

    Values reach the statement only as bound parameters: ``params`` is a list for `?`
    placeholders or a dict for `$name` ones, handed to DuckDB as they are (never formatted
    into the text).
    """
    return _run(home, sql, params, lambda con: con.sql(sql, params=params).to_arrow_table())


def fetch(home: Path | str, sql: str, params: Params = None) -> tuple[list[str], list[tuple]]:
    """`query` without Arrow: (column names, rows as tuples of Python values). What `atelier sql`
    prints; the vector spaces are opened only when the statement names one (``vectors_...``)."""

    def run(con: duckdb.DuckDBPyConnection) -> tuple[list[str], list[tuple]]:
        cursor = con.execute(sql, params) if params is not None else con.execute(sql)
        return [d[0] for d in cursor.description], cursor.fetchall()

    return _run(home, sql, params, run)


def run_relation(home: Path | str, relation: str, params: Params = None) -> pa.Table:
    """The rows of the read-only relation `sql/<relation>.sql` over the lake's tables (views
    `<dataset>_<table>`, no vector tables), its values bound from ``params`` (`$name` in the
    file, a dict here), in the same sandbox as `query`. A lake table it reads that is missing is
    DuckDB's CatalogException."""
    sql = load_sql(relation)
    return _run(home, sql, params, lambda con: con.sql(sql, params=params).to_arrow_table(), vectors=False)


def _run(home: Path | str, sql: str, params: Params, run, vectors: bool = True):
    """Check ``sql``, open the sandbox with the views it names, ``run(con)``; DuckDB's refusals
    and a table that fails while being read become messages that say what to do."""
    _check_read_only(sql)
    con, used = _open(home, vectors, sql)
    try:
        return run(con)
    except duckdb.PermissionException as e:
        raise SandboxError(_outside(e, home)) from e
    except duckdb.Error as e:
        view = _damaged(con, used, e)
        if view is None:
            raise
        raise DamagedTableError(used[view], _dataset(view), _first_line(e)) from e
    finally:
        con.close()


def _damaged(con: duckdb.DuckDBPyConnection, used: Mapping[str, Path], e: duckdb.Error) -> str | None:
    """The lake table that made a statement fail, if one did: the one the error names, else (an
    error that is not the statement's own: not a parser, binder, catalogue or data error) the
    first of the tables it read that cannot be read through. Runs only after a failure."""
    named = [view for view, path in used.items() if str(path) in str(e)]
    if named or (isinstance(e, (duckdb.ProgrammingError, duckdb.DataError)) and not isinstance(e, duckdb.InvalidInputException)):
        return next(iter(named), None)
    for view in sorted(used):
        try:
            for _ in con.execute(f"select * from {view}").fetch_record_batch():  # view names are identifiers
                pass
        except duckdb.Error:
            return view
    return None


def _check_read_only(sql: str) -> None:
    """Refuse anything but one statement of a read-only kind (`ALLOWED`); `EXPLAIN ANALYZE` runs
    its statement, so only a plain `EXPLAIN` of a read-only statement passes."""
    statements = duckdb.extract_statements(sql)
    if len(statements) != 1:
        raise ReadOnlyError(f"atelier sql runs one statement at a time, got {len(statements)}; allowed: {ALLOWED}")
    kind = statements[0].type.name
    if kind == "EXPLAIN":
        inner = _explained(sql)
        if inner is None:
            raise ReadOnlyError(f"atelier sql is read-only: EXPLAIN ANALYZE runs its statement and is refused; allowed: {ALLOWED}")
        if [s.type.name for s in duckdb.extract_statements(inner)] == ["SELECT"]:
            return
        kind, sql = "EXPLAIN", inner
    if kind != "SELECT":
        word = next(iter(_tokens(sql)), (kind, 0))[0].upper()  # what the user wrote (INSTALL is DuckDB's LOAD kind)
        raise ReadOnlyError(f"atelier sql is read-only: {'EXPLAIN ' if kind == 'EXPLAIN' else ''}{word} statements are "
                            f"refused; allowed: {ALLOWED}")  # fmt: skip


def _tokens(sql: str) -> list[tuple[str, int]]:
    """(text, offset) of each token of ``sql`` but comments (DuckDB's tokenizer: nothing is bound or run)."""
    tokens = duckdb.tokenize(sql)
    ends = [start for start, _ in tokens[1:]] + [len(sql)]
    return [(sql[start:end].strip(), start) for (start, kind), end in zip(tokens, ends) if kind != duckdb.token_type.comment]


_ANALYZE = ("analyze", "analyse")
_QUERY_START = ("select", "with", "from", "values", "table", "(", "pivot", "unpivot", "describe", "show", "summarize")


def _explained(sql: str) -> str | None:
    """The statement an EXPLAIN explains, or None when EXPLAIN would run it (`EXPLAIN ANALYZE`,
    `EXPLAIN (ANALYZE, ...)`)."""
    rest = [(text.lower(), start) for text, start in _tokens(sql)][1:]  # after EXPLAIN
    if rest and rest[0][0] in _ANALYZE:
        return None
    if len(rest) > 1 and rest[0][0] == "(" and rest[1][0] not in _QUERY_START:  # an option list, not a subquery
        depth = 0
        for i, (word, _) in enumerate(rest):
            if word in _ANALYZE:
                return None
            depth += {"(": 1, ")": -1}.get(word, 0)
            if depth == 0:
                rest = rest[i + 1:]
                break
    return sql[rest[0][1]:] if rest else ""


_WORD = re.compile(r"[a-z_][a-z0-9_]*")


def _words(sql: str) -> set[str]:
    """Every name-like word of ``sql`` outside comments, lower-cased (identifiers, quoted or not,
    and the words in string constants, e.g. ``query_table('polyvore_items')``)."""
    return {w for text, _ in _tokens(sql) for w in _WORD.findall(text.lower())}


def _wanted(words: set[str], tables: Mapping[str, Path]) -> set[str]:
    """The lake views a statement needs: those it names, and the parts of the shared views it names."""
    wanted = {v for v in tables if v in words}
    for shared in SHARED_VIEWS:
        if shared in words:
            wanted |= {v for v in tables if v.endswith(f"_{shared}")}
    return wanted


def _s3_dataset(lake, path: str):
    """The lake table ``bucket/key`` of an object-store home as a pyarrow dataset (its footer read
    now: a damaged table fails here, named)."""
    import pyarrow.dataset as pads

    return pads.dataset(path, filesystem=lake.s3.fs, format="parquet")


def _sandbox(con: duckdb.DuckDBPyConnection, lake: Lake, paths) -> None:
    """Files readable only under the home's lake and vectors (as given and resolved, and the
    folders the lake's tables resolve to), nothing else reachable (no other file, URL or extension).
    An object-store home: no local file at all (its tables are registered Arrow datasets)."""
    if isinstance(lake, S3Lake):
        con.execute("set enable_external_access = false")
        return
    dirs = set()
    for root in (lake.root, lake.home / "vectors"):
        dirs |= {os.path.abspath(root), os.path.realpath(root)}
    dirs |= {os.path.dirname(p) for p in map(str, paths)}
    con.execute("set allowed_directories = ?", [sorted(d.rstrip(os.sep) + os.sep for d in dirs)])
    con.execute("set enable_external_access = false")


def _temp_directory() -> str:
    """Where DuckDB spills (only if a query outgrows memory): a fresh name, made by DuckDB on first
    use and removed on close; it is readable by the statement, so never an existing folder (the
    default `./.tmp` is the user's working directory's)."""
    return os.path.join(tempfile.gettempdir(), f"atelier-sql-{uuid.uuid4().hex}")


def _outside(e: duckdb.Error, home: Path | str) -> str:
    where = re.search(r'Cannot access (?:file|directory) "(.*)"', str(e))
    what = f"{where.group(1)!r} is outside them" if where else _first_line(e)
    if isinstance(home, str) and home.startswith("s3://"):
        return (f"atelier sql reads only the home's lake and vectors ({home}): {what}; other files, URLs and "
                "extensions are not reachable")  # fmt: skip
    lake = Lake(os.path.abspath(home))
    return (f"atelier sql reads only the home's lake and vectors ({lake.root}, {lake.home / 'vectors'}): {what}; "
            "other files, URLs and extensions are not reachable")  # fmt: skip


def _dataset(view: str) -> str:
    return next(d for d in LAKE_DATASETS if view.startswith(f"{d}_"))


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
