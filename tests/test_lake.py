"""The lake: schemas checked on write, all-or-nothing replacement of a dataset's tables."""

from __future__ import annotations

import pyarrow as pa
import pytest

from flows.jobs.ingest import CountMismatchError, check_counts
from store import Lake, SchemaError
from store.tables import TABLES


def _sources(read: int, kept: int, quarantined: int) -> pa.Table:
    return pa.Table.from_pylist([{"dataset": "polyvore", "source_file": "f.json", "records_read": read,
                                  "records_kept": kept, "records_quarantined": quarantined}], schema=TABLES["polyvore"]["sources"])  # fmt: skip


def test_schema_is_checked_on_write(tmp_path):
    lake = Lake(tmp_path)
    with pytest.raises(SchemaError, match=r"polyvore.sources: columns missing \['records_quarantined'\]"):
        lake.write_dataset("polyvore", {"sources": _sources(1, 1, 0).drop_columns(["records_quarantined"])})
    bad = _sources(1, 1, 0).set_column(2, "records_read", pa.array(["many"]))
    with pytest.raises(SchemaError, match="polyvore.sources"):
        lake.write_dataset("polyvore", {"sources": bad})
    assert not list(tmp_path.rglob("*.parquet")) and not list(tmp_path.rglob("*.tmp"))


def test_failed_commit_keeps_previous_tables_and_leaves_no_temp_files(tmp_path):
    lake = Lake(tmp_path)
    lake.write_dataset("polyvore", {"sources": _sources(2, 2, 0)})
    before = lake.path("polyvore", "sources").read_bytes()

    def lost_records(tables):
        check_counts(tables["sources"])

    with pytest.raises(CountMismatchError, match="f.json: read 3, kept 1, quarantined 1"):
        lake.write_dataset("polyvore", {"sources": _sources(3, 1, 1)}, before_commit=lost_records)
    assert lake.path("polyvore", "sources").read_bytes() == before
    assert not list(tmp_path.rglob("*.tmp"))


def test_tables_listed_as_views(tmp_path):
    lake = Lake(tmp_path)
    lake.write_dataset("polyvore", {"sources": _sources(1, 1, 0)})
    assert list(lake.tables()) == ["polyvore_sources"]
    with pytest.raises(ValueError, match="unknown dataset"):
        lake.write_dataset("nope", {})
