"""`atelier sql` is a sandbox: one read-only statement, files readable only under the home's lake
and vectors, no extension, configuration locked; one damaged table fails only the queries that
read it, with its file named and re-ingesting suggested."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from store.sql import DamagedTableError, ReadOnlyError, SandboxError, connect_lake, fetch, query


def _copy_lake(sample_lake: Path, home: Path) -> Path:
    """A private copy of the sample lake: polyvore as a folder `lake/polyvore` that is a symbolic
    link to a version folder inside the lake, the other datasets as plain folders."""
    src = sample_lake / "lake"
    for folder in sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")):
        target = home / "lake" / (".versions/polyvore/v1" if folder.name == "polyvore" else folder.name)
        target.mkdir(parents=True)
        for table in folder.resolve().glob("*.parquet"):
            shutil.copyfile(table, target / table.name)
    os.symlink(Path(".versions") / "polyvore" / "v1", home / "lake" / "polyvore")
    return home


@pytest.fixture(scope="module")
def home(sample_lake, tmp_path_factory) -> Path:
    return _copy_lake(sample_lake, tmp_path_factory.mktemp("sandbox") / "home")


def _lake_state(home: Path) -> dict[str, str]:
    """Every file and link under the home (name -> content hash or link target)."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(home):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            key = str(path.relative_to(home))
            if path.is_symlink():
                state[key] = "-> " + os.readlink(path)
            elif path.is_file():
                state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def _n(home: Path, sql: str, params=None) -> int:
    return fetch(home, sql, params)[1][0][0]


ITEMS = "lake/polyvore/items.parquet"


@pytest.mark.parametrize("attack", [
    "EXPLAIN ANALYZE COPY (SELECT * FROM polyvore_items LIMIT 3) TO '{home}/" + ITEMS + "' (FORMAT parquet)",
    "EXPLAIN (ANALYZE) COPY (SELECT * FROM polyvore_items LIMIT 3) TO '{home}/" + ITEMS + "' (FORMAT parquet)",
    "explain /* plain? */ analyse copy (select 1 as item_id) to '{home}/" + ITEMS + "' (format parquet)",
    "COPY (SELECT * FROM polyvore_items LIMIT 3) TO '{home}/" + ITEMS + "' (FORMAT parquet)",
    "EXPLAIN COPY (SELECT 1) TO '{home}/lake/x.csv'",
    "select 1; COPY (SELECT * FROM polyvore_items LIMIT 3) TO '{home}/" + ITEMS + "' (FORMAT parquet)",
    "EXPLAIN ANALYZE INSTALL httpfs",
    "INSTALL httpfs",
    "LOAD httpfs",
    "ATTACH '{home}/lake/x.db' AS x",
    "SET enable_external_access = true",
    "RESET lock_configuration",
    "PRAGMA show_tables",
    "CALL pragma_version()",
    "CHECKPOINT",
    "EXPORT DATABASE '{home}/lake/export'",
])  # fmt: skip
def test_statements_that_write_or_reconfigure_are_refused(home, attack):
    before = _lake_state(home)
    with pytest.raises(ReadOnlyError, match=r"allowed: SELECT .*DESCRIBE, SUMMARIZE and EXPLAIN without ANALYZE"):
        fetch(home, attack.format(home=home))
    with pytest.raises(ReadOnlyError):
        query(home, attack.format(home=home))
    assert _lake_state(home) == before


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    """A readable Parquet file and a secret next to the home, outside it."""
    folder = tmp_path_factory.mktemp("outside")
    pq.write_table(pa.table({"secret": ["s3cr3t"]}), folder / "other.parquet")
    (folder / "secret.csv").write_text("key,value\naws,s3cr3t\n")
    return folder


@pytest.mark.parametrize("attack", [
    "select * from read_csv('/etc/passwd')",
    "select * from read_text('/etc/passwd')",
    "select * from read_blob('/etc/passwd')",
    "select * from glob('/*')",
    "select * from read_csv('{outside}/secret.csv')",
    "select * from '{outside}/other.parquet'",
    "select * from read_parquet('{home}/lake/polyvore/../../../../{outside_name}/other.parquet')",
    "select * from read_parquet('{home}/lakeside/other.parquet')",
    "describe select * from read_csv('{outside}/secret.csv')",
    "summarize select * from read_csv('/etc/passwd')",
    "select * from 'http://127.0.0.1:9/items.parquet'",
    "select * from read_csv('s3://bucket/secret.csv')",
])  # fmt: skip
def test_files_outside_the_home_and_urls_are_unreachable(home, outside, attack):
    before = _lake_state(home)
    sql = attack.format(home=home, outside=outside, outside_name=os.path.relpath(outside, home.parent.parent))
    with pytest.raises(SandboxError, match=r"reads only the home's lake and vectors .* is outside them"):
        fetch(home, sql)
    assert _lake_state(home) == before


def test_configuration_is_locked(home):
    """Even a statement the check let through could not undo the sandbox: the connection is locked."""
    con = connect_lake(home, vectors=False, sql="select 1")
    try:
        for setting in ("enable_external_access = true", "allowed_directories = ['/']", "autoload_known_extensions = true",
                        "lock_configuration = false", "temp_directory = '/tmp'"):  # fmt: skip
            with pytest.raises(duckdb.InvalidInputException, match="configuration has been locked"):
                con.execute(f"set {setting}")
        with pytest.raises(duckdb.Error, match="getenv"):  # no environment variables (credentials) either
            con.execute("select getenv('HOME')")
        spill = con.execute("select current_setting('temp_directory')").fetchone()[0]
        assert not Path(spill).exists() and Path(spill).is_absolute() and Path.cwd() not in Path(spill).parents
    finally:
        con.close()


@pytest.mark.parametrize("sql", [
    "select count(*) from polyvore_items",
    "with t as (select item_id from polyvore_items) select count(*) from t",
    "from polyvore_items select count(*)",
    "select count(*) from query_table('polyvore_items')",
    "select count(*) from read_parquet('{home}/" + ITEMS + "')",
    "select count(*) from '{home}/lake/.versions/polyvore/v1/items.parquet'",
    "select count(*) from read_parquet('{home}/lake/*/items.parquet') where filename like '%polyvore%'",
    "select count(*) from polyvore_items where item_id = ?",
])  # fmt: skip
def test_reading_the_lake_works(home, sql):
    n = pq.read_metadata(home / ITEMS).num_rows
    if "?" in sql:
        item_id = fetch(home, "select min(item_id) from polyvore_items")[1][0][0]
        assert _n(home, sql, [item_id]) == 1
    else:
        assert _n(home, sql.format(home=home)) == n > 0


def test_describe_summarize_explain_show(home):
    columns = pq.read_schema(home / ITEMS).names
    assert [r[0] for r in fetch(home, "describe polyvore_items")[1]] == columns
    assert [r[0] for r in fetch(home, "summarize polyvore_items")[1]] == columns
    for explain in ("explain select count(*) from polyvore_items", "EXPLAIN (FORMAT json) select * from polyvore_fitb",
                    "explain (select 1) union (select 2)"):  # fmt: skip
        names, rows = fetch(home, explain)
        assert names == ["explain_key", "explain_value"] and rows
    views = {r[0] for r in fetch(home, "show tables")[1]}
    assert {"polyvore_items", "deepfashion_attributes", "quarantine", "sources"} <= views
    listed = {r[0] for r in fetch(home, "select view_name from duckdb_views() where not internal")[1]}
    assert listed == views


def test_views_only_for_the_tables_a_statement_names(home):
    def views(sql: str) -> set[str]:
        con = connect_lake(home, sql=sql)
        try:
            return {r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()}
        finally:
            con.close()

    assert views("select * from polyvore_items i join Polyvore_Outfits o on true") == {"polyvore_items", "polyvore_outfits"}
    parts = {f"{p.parent.name}_quarantine" for p in (home / "lake").glob("*/quarantine.parquet")}
    assert len(parts) > 1 and views("select * from quarantine") == parts | {"quarantine"}
    assert views('select 1 as n -- from polyvore_fitb') == set()
    assert views('select * from "polyvore_fitb"') == {"polyvore_fitb"}
    assert {"polyvore_fitb", "viton_pairs", "quarantine", "sources"} <= views("show tables")


def test_shared_views_span_datasets(home):
    """`quarantine` and `sources` union every dataset's table, made only when named."""
    by_dataset = dict(fetch(home, "select dataset, count(*) from quarantine group by 1")[1])
    assert by_dataset == {"deepfashion": pq.read_metadata(home / "lake/deepfashion/quarantine.parquet").num_rows}
    expected = sum(pq.read_metadata(p).num_rows for p in home.glob("lake/*/sources.parquet"))
    assert _n(home, "select count(*) from sources") == expected > 0


def test_a_damaged_table_fails_only_the_queries_that_read_it(home, tmp_path):
    """A truncated table is named with the fix (ingest again), exit 1 and no traceback from the
    CLI; queries that do not read it work."""
    from flows.cli.commands import app

    damaged = _copy_lake(home, tmp_path / "home")
    fitb = damaged / "lake/polyvore/fitb.parquet"
    fitb.write_bytes(fitb.read_bytes()[: fitb.stat().st_size // 2])
    (damaged / "lake/deepfashion/quarantine.parquet").write_bytes(b"PAR1 not parquet")
    runner = CliRunner()
    for sql in ("select count(*) from polyvore_fitb", "select count(*) from quarantine", "describe polyvore_fitb"):
        res = runner.invoke(app, ["sql", sql, "--home", str(damaged)])
        text = "".join(res.output.split())  # the console wraps long paths
        assert res.exit_code == 1 and "Traceback" not in res.output, res.output
        dataset, table = ("polyvore", "fitb") if "fitb" in sql else ("deepfashion", "quarantine")
        assert f"/{table}.parquet" in text and "damaged" in text and f"atelieringest{dataset}" in text, res.output
    with pytest.raises(DamagedTableError) as e:
        fetch(damaged, "select * from polyvore_fitb")
    assert e.value.dataset == "polyvore" and e.value.path.name == "fitb.parquet" and isinstance(e.value, ValueError)
    res = runner.invoke(app, ["sql", "select count(*) as n from polyvore_items", "--format", "json", "--home", str(damaged)])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == f'[{{"n": {pq.read_metadata(home / ITEMS).num_rows}}}]'
    assert _n(damaged, "select count(*) from polyvore_quarantine") == 0


def test_a_table_damaged_inside_is_named_too(home, tmp_path):
    """A table whose footer reads but whose data does not fails when read, still named."""
    damaged = _copy_lake(home, tmp_path / "home")
    items = damaged / ITEMS
    data = bytearray(items.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little")
    data[4 : len(data) - footer - 8] = b"\xff" * (len(data) - footer - 12)  # every page, not the footer
    items.write_bytes(bytes(data))
    assert _n(damaged, "select count(*) from polyvore_outfits") > 0
    with pytest.raises(DamagedTableError, match=r"items\.parquet.*atelier ingest polyvore"):
        fetch(damaged, "select sum(length(title)) from polyvore_items")


def test_vectors_are_readable(home, tmp_path):
    """A vector space is a view `vectors_<space>` in the same sandbox."""
    import numpy as np

    from store.vectors import VectorStore

    vec_home = tmp_path / "home"
    (vec_home / "lake").mkdir(parents=True)
    os.symlink(home / "lake" / "polyvore", vec_home / "lake" / "polyvore")
    ids = [r[0] for r in fetch(home, "select item_id from polyvore_items order by item_id limit 5")[1]]
    VectorStore(vec_home).upsert("tiny", pa.table({
        "item_id": ids, "dataset": ["polyvore"] * 5, "semantic_category": ["tops"] * 5, "split": ["train"] * 5,
        "model": ["m"] * 5, "model_version": ["1"] * 5, "image_sha1": ids,
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(np.ones(20, np.float32)), 4),
    }))  # fmt: skip
    sql = "select count(*) from vectors_tiny v join polyvore_items i using (item_id)"
    assert _n(vec_home, sql) == 5
    with pytest.raises(SandboxError):
        fetch(vec_home, "select * from read_csv('/etc/passwd') join vectors_tiny on true")
