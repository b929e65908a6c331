"""`atelier sql`: every lake table as a view, one quarantine view, read-only; the SQL files."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from store import DATASETS, TABLES, ReadOnlyError, load_sql, query
from store.tables import STAGING


@pytest.fixture(scope="module")
def lake_home(sample_lake):
    return sample_lake  # read only


def test_every_table_is_a_view(lake_home):
    views = set(query(lake_home, "select view_name from duckdb_views() where not internal").column("view_name").to_pylist())
    for dataset in DATASETS:  # the ingested ones (generated_images: tests/test_generated.py)
        for table in TABLES[dataset]:
            assert f"{dataset}_{table}" in views
    assert "quarantine" in views


def test_quarantine_view_spans_datasets(lake_home):
    rows = query(lake_home, "select dataset, count(*) as n from quarantine group by 1").to_pylist()
    assert {r["dataset"] for r in rows} == {"deepfashion"}  # the sample's duplicated filename
    cols = query(lake_home, "select * from quarantine limit 0").column_names
    assert cols == ["dataset", "source_file", "record_key", "reason", "raw"]


@pytest.mark.parametrize("statement", [
    "create table x as select 1",
    "copy (select 1) to 'x.csv'",
    "drop view polyvore_items",
    "select 1; select 2",
    "attach 'other.db'",
])  # fmt: skip
def test_writes_are_refused(lake_home, statement):
    with pytest.raises(ReadOnlyError):
        query(lake_home, statement)


def test_every_relation_has_its_sql_file():
    for dataset, tables in TABLES.items():
        for name in [*STAGING[dataset], *(f"{dataset}_{t}" for t in tables)]:
            text = load_sql(name)
            assert "select" in text.lower()
    with pytest.raises(FileNotFoundError, match="no_such"):
        load_sql("no_such")


def test_cli_formats(lake_home):
    from flows.cli import app

    runner = CliRunner()
    sql = "select semantic_category, count(*) as n from polyvore_items group by 1 order by 1"
    res = runner.invoke(app, ["sql", sql, "--format", "json", "--home", str(lake_home)])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == 11 and sum(r["n"] for r in rows) == query(lake_home, "select count(*) n from polyvore_items")["n"][0].as_py()
    res = runner.invoke(app, ["sql", sql, "--format", "csv", "--home", str(lake_home)])
    assert res.exit_code == 0 and res.stdout.splitlines()[0] == '"semantic_category","n"'
    res = runner.invoke(app, ["sql", "delete from polyvore_items", "--home", str(lake_home)])
    assert res.exit_code == 1 and "read-only" in res.output
    res = runner.invoke(app, ["sql", "select * from no_such_table", "--home", str(lake_home)])
    assert res.exit_code == 1 and "no_such_table" in res.output


def test_values_are_bound_parameters(lake_home):
    """A value reaches the statement only as a bound parameter: quotes in it are matched literally."""
    sql = "select count(*) as n from polyvore_items where item_id = ?"
    assert query(lake_home, sql, ["x' OR '1'='1"])["n"][0].as_py() == 0
    item_id = query(lake_home, "select min(item_id) as i from polyvore_items")["i"][0].as_py()
    assert query(lake_home, sql, [item_id])["n"][0].as_py() == 1
    named = "select count(*) as n from polyvore_items where item_id = $item or list_contains($ids, item_id)"
    assert query(lake_home, named, {"item": "x' OR '1'='1", "ids": ["' or 1=1 --"]})["n"][0].as_py() == 0
    assert query(lake_home, named, {"item": "none", "ids": [item_id, "x'"]})["n"][0].as_py() == 1
    with pytest.raises(ReadOnlyError):
        query(lake_home, "delete from polyvore_items where item_id = ?", [item_id])


def test_paths_and_names_from_disk_are_not_sql_text(lake_home, tmp_path):
    """A home whose path holds a quote works; a Parquet file that is not a declared table gets no view."""
    import shutil

    home = tmp_path / "it's a home"
    shutil.copytree(lake_home / "lake" / "polyvore", home / "lake" / "polyvore")
    shutil.copy(home / "lake" / "polyvore" / "items.parquet", home / "lake" / "polyvore" / "x; drop view y.parquet")
    n = query(home, "select count(*) as n from polyvore_items")["n"][0].as_py()
    assert n == query(lake_home, "select count(*) as n from polyvore_items")["n"][0].as_py()
    views = set(query(home, "select view_name from duckdb_views() where not internal")["view_name"].to_pylist())
    assert views == {f"polyvore_{t}" for t in TABLES["polyvore"]} | {"quarantine", "sources"}


def test_lake_views_are_the_declared_tables():
    from store.sql import lake_views
    from store.tables import TABLES

    assert lake_views() == {f"{dataset}_{table}" for dataset, tables in TABLES.items() for table in tables}
