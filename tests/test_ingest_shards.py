"""A sharded ingest (`flows.jobs.ingest_shards`): shards that probe slices of the release's
images and a final ingest that reuses their probes give the same lake as one ingest; an image
changed after its shard probed it is probed again; the staging is removed."""

from __future__ import annotations

import os

import pytest

from flows.jobs.ingest import ingest
from flows.jobs.ingest_shards import clear_staging, list_images, probe_shard, shard_bounds, staging_uri
from store import Lake


def _sorted(table, key):
    return table.sort_by(key).to_pylist()


@pytest.mark.parametrize("n, shards", [(0, 3), (7, 3), (10, 1), (5, 8)])
def test_shard_bounds_cover_every_row_once(n, shards):
    bounds = [shard_bounds(n, s, shards) for s in range(shards)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n and all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert max(e - s for s, e in bounds) - min(e - s for s, e in bounds) <= 1
    with pytest.raises(ValueError, match="shard must be in"):
        shard_bounds(n, shards, shards)


def test_sharded_probing_gives_the_lake_of_one_ingest(polyvore_release, tmp_path):
    one = ingest("polyvore", polyvore_release, tmp_path / "one")
    home = tmp_path / "sharded"
    staging = staging_uri(home, "polyvore")
    listed = list_images("polyvore", polyvore_release, home, staging)
    opened = [probe_shard("polyvore", polyvore_release, home, staging, s, 3, workers=1) for s in range(3)]
    assert listed == sum(opened) == one.images_probed  # every image opened once, by one shard
    touched = sorted((polyvore_release / "images").iterdir())[0]
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))  # changed after its shard
    result = ingest("polyvore", polyvore_release, home, staged=(staging, 3))
    assert result.images_probed == 1  # only the changed image is opened again
    for table in ("items", "outfits", "quarantine", "sources"):
        a, b = Lake(tmp_path / "one").read("polyvore", table), Lake(home).read("polyvore", table)
        assert a.num_rows == b.num_rows and _sorted(a, a.column_names[0]) == _sorted(b, b.column_names[0]), table
    clear_staging(staging)
    assert not (home / "staging" / "ingest-polyvore").exists() or not any((home / "staging" / "ingest-polyvore").iterdir())


def test_a_missing_shard_is_named(polyvore_release, tmp_path):
    staging = staging_uri(tmp_path / "h", "polyvore")
    list_images("polyvore", polyvore_release, tmp_path / "h", staging)
    probe_shard("polyvore", polyvore_release, tmp_path / "h", staging, 0, 2, workers=1)
    with pytest.raises(FileNotFoundError, match="shard 1 of 2 wrote no probes"):
        ingest("polyvore", polyvore_release, tmp_path / "h", staged=(staging, 2))
    assert Lake(tmp_path / "h").current("polyvore") is None  # nothing committed


def test_the_ingest_flow_in_shards(polyvore_release, tmp_path, prefect_api):
    from flows.orchestration.pipelines import ingest_flow

    result = ingest_flow("polyvore", str(polyvore_release), str(tmp_path / "h"), shards=3, probe_workers=1)
    assert result["shards"] == 3 and result["rows"]["items"] == 484 and result["images_probed"] == result["images_listed"]
    assert not any((tmp_path / "h" / "staging" / "ingest-polyvore").iterdir())  # the run's staging removed
    with pytest.raises(ValueError, match="shards must be >= 1"):
        ingest_flow("polyvore", str(polyvore_release), str(tmp_path / "h"), shards=0)
