"""A dataset's tables become visible together: a kill at any point of a commit (by a test hook in
a child process, not by timing) leaves the old or the new tables, never a mix, and the next
commit cleans up what the killed one left."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from store import DamagedTableError, Lake
from store.lake import VERSIONS

# one generation = `sources` and `quarantine` with n rows each: a mix of generations is visible
MAKE = textwrap.dedent("""
    import pyarrow as pa
    from store.tables import TABLES

    def generation(n):
        schema = TABLES["polyvore"]
        sources = [{"dataset": "polyvore", "source_file": f"f{i}.json", "records_read": 1, "records_kept": 0,
                    "records_quarantined": 1} for i in range(n)]
        quarantine = [{"dataset": "polyvore", "source_file": f"f{i}.json", "record_key": str(i), "reason": "bad",
                       "raw": "{}"} for i in range(n)]
        return {"sources": pa.Table.from_pylist(sources, schema=schema["sources"]),
                "items": schema["items"].empty_table(),
                "quarantine": pa.Table.from_pylist(quarantine, schema=schema["quarantine"])}
""")
namespace: dict = {}
exec(MAKE, namespace)
generation = namespace["generation"]

KILL = MAKE + textwrap.dedent("""
    import os, sys
    import store.lake
    from store import Lake

    home, where, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
    seen = []

    def step(name):
        seen.append(name)
        if seen.count(where) == nth:
            os._exit(9)  # as a kill -9: no cleanup runs

    store.lake._step = step
    Lake(home).write_dataset("polyvore", generation(5))
    sys.exit(3)  # the hook never fired
""")

STEPS = [("table written", 1), ("table written", 2), ("table written", 3), ("version written", 1), ("committed", 1)]


def _generation_seen(home: Path) -> set[int]:
    lake = Lake(home)
    return {lake.read("polyvore", "sources").num_rows, lake.read("polyvore", "quarantine").num_rows}


def _kill_during_commit(home: Path, where: str, nth: int) -> None:
    result = subprocess.run([sys.executable, "-c", KILL, str(home), where, str(nth)], capture_output=True, text=True)
    assert result.returncode == 9, result.stderr


@pytest.mark.parametrize(("where", "nth"), STEPS)
def test_a_kill_at_any_step_leaves_old_or_new_tables_never_a_mix(tmp_path, where, nth):
    home = tmp_path / "home"
    Lake(home).write_dataset("polyvore", generation(2))
    _kill_during_commit(home, where, nth)
    expected = {5} if where == "committed" else {2}
    assert _generation_seen(home) == expected
    assert set(Lake(home).tables()) == {"polyvore_sources", "polyvore_items", "polyvore_quarantine"}
    # the next commit removes what the killed one left: only the current and previous versions remain
    Lake(home).write_dataset("polyvore", generation(3))
    assert _generation_seen(home) == {3}
    lake = Lake(home)
    versions = lake.versions("polyvore")
    assert len(versions) == 2 and versions[-1] == lake.current("polyvore")
    assert lake.garbage("polyvore", keep=versions[0]) == []
    assert not list((home / "lake").glob(".*.link"))


def test_a_legacy_plain_folder_is_read_then_moved_under_versions_by_the_next_commit(tmp_path):
    home = tmp_path / "home"
    folder = home / "lake" / "polyvore"
    folder.mkdir(parents=True)
    for name, table in generation(2).items():
        pq.write_table(table, folder / f"{name}.parquet")
    assert _generation_seen(home) == {2}
    # killed between moving the plain folder away and pointing at the new version: repaired on read
    _kill_during_commit(home, "legacy moved", 1)
    assert not (home / "lake" / "polyvore").exists()
    assert _generation_seen(home) == {5}
    assert (home / "lake" / "polyvore").is_symlink()
    # a clean migration
    shutil.rmtree(home)
    folder.mkdir(parents=True)
    for name, table in generation(2).items():
        pq.write_table(table, folder / f"{name}.parquet")
    Lake(home).write_dataset("polyvore", generation(4))
    assert _generation_seen(home) == {4}
    assert (home / "lake" / "polyvore").resolve().parent == home.resolve() / "lake" / VERSIONS / "polyvore"


def test_paths_under_the_pointer_stay_valid_for_outside_readers(tmp_path):
    home = tmp_path / "home"
    Lake(home).write_dataset("polyvore", generation(2))
    assert pq.read_table(home / "lake" / "polyvore" / "sources.parquet").num_rows == 2
    tables = Lake(home).tables()
    assert tables["polyvore_sources"].parent == Lake(home).current("polyvore")


def test_a_damaged_table_is_named_and_a_damaged_probe_cache_costs_only_a_reprobe(sample_root, tmp_path, caplog):
    from flows.jobs.ingest import ingest

    home = tmp_path / "home"
    first = ingest("polyvore", sample_root / "polyvore", home)
    probes = Lake(home).path("polyvore", "image_probes")
    data = probes.read_bytes()
    probes.resolve().write_bytes(data[: len(data) // 2])  # truncated in place
    with pytest.raises(DamagedTableError, match=r"image_probes\.parquet is damaged .*atelier ingest polyvore"):
        Lake(home).read("polyvore", "image_probes")
    again = ingest("polyvore", sample_root / "polyvore", home)
    assert again.images_probed == first.images_probed > 0  # probed again instead of failing
    assert again.rows == first.rows
    assert "probing every image again" in caplog.text
    assert isinstance(Lake(home).read("polyvore", "image_probes"), pa.Table)


def test_a_pointer_removed_by_a_user_stays_removed_and_the_next_commit_cleans_up(tmp_path):
    home = tmp_path / "home"
    Lake(home).write_dataset("polyvore", generation(2))
    (home / "lake" / "polyvore").unlink()
    assert Lake(home).read("polyvore", "sources") is None and Lake(home).tables() == {}
    Lake(home).write_dataset("polyvore", generation(3))
    assert _generation_seen(home) == {3} and len(Lake(home).versions("polyvore")) == 1
