"""The embed job: lake rows -> images -> model -> vectors_<space>; skips unchanged rows, records
unreadable images, resumes after a stop without duplicates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from etl.loader import ImageFolderRows
from flows.jobs.embed import (
    NoModelError,
    embed_rows,
    embed_space,
    model_version,
    resolve_model,
    rows_to_embed,
)
from flows.jobs.embed_upkeep import repair_space, space_health, stale_ids
from flows.jobs.ingest import ingest
from models import (
    AutoencoderConfig,
    ConvAutoencoder,
    ResNetConfig,
    ResNetEmbedder,
    embed_batch,
    load_pretrained,
)
from store import VectorStore, query

FAST = {"num_workers": 0, "progress": False, "device": "cpu", "batch_size": 64}


@pytest.fixture(scope="module")
def lake_home(sample_lake) -> Path:
    """The session's sample lake (never modified: tests copy the datasets they need)."""
    return sample_lake


def copy_home(lake_home: Path, tmp_path: Path, datasets=("polyvore", "deepfashion")) -> Path:
    home = tmp_path / "home"
    for d in datasets:
        shutil.copytree(lake_home / "lake" / d, home / "lake" / d)
    return home


def save_resnet(home: Path, version: str = "v1", seed: int = 0) -> Path:
    torch.manual_seed(seed)
    return ResNetEmbedder(ResNetConfig(num_classes=11, image_size=32)).save_pretrained(home / "models" / "resnet" / version)


def save_ae(home: Path, version: str = "v1", seed: int = 0) -> Path:
    torch.manual_seed(seed)
    return ConvAutoencoder(AutoencoderConfig(image_size=32, channels=(8, 16))).save_pretrained(home / "models" / "ae" / version)


def stored(home: Path, space: str):
    return VectorStore(home).table(space).to_arrow().sort_by("item_id")


def test_embed_rows(lake_home, tmp_path):
    rows = embed_rows(lake_home)
    lake = query(lake_home, "select count(*) filter (where image_ok) from polyvore_items").column(0)[0].as_py()
    df = query(lake_home, "select count(*) filter (where image_ok) from deepfashion_attributes").column(0)[0].as_py()
    assert rows.num_rows == lake + df
    assert rows.column_names == ["item_id", "dataset", "semantic_category", "split", "image_path", "image_sha1",
                                 "h5_index", "crop", "text"]
    assert set(rows["dataset"].to_pylist()) == {"polyvore", "deepfashion"}
    poly = embed_rows(lake_home, dataset="polyvore")
    assert poly.num_rows == lake and poly["split"].null_count == lake and poly["semantic_category"].null_count == 0
    deep = embed_rows(lake_home, dataset="deepfashion")
    assert deep.num_rows == df and set(deep["split"].to_pylist()) <= {"train", "val", "test"} and deep["split"].null_count == 0
    with pytest.raises(ValueError, match="cannot embed dataset 'nope'"):
        embed_rows(lake_home, dataset="nope")
    with pytest.raises(ValueError, match="dataset 'deepfashion2' is not in the lake"):
        embed_rows(copy_home(lake_home, tmp_path), dataset="deepfashion2")


def test_embed_rows_only_datasets_in_lake(lake_home, tmp_path):
    home = copy_home(lake_home, tmp_path, datasets=("polyvore",))
    assert set(embed_rows(home)["dataset"].to_pylist()) == {"polyvore"}
    with pytest.raises(ValueError, match="dataset 'deepfashion' is not in the lake"):
        embed_rows(home, dataset="deepfashion")
    with pytest.raises(ValueError, match="nothing to embed"):
        embed_rows(tmp_path / "empty")


def test_embed_store_skip_and_new_version(lake_home, tmp_path):
    home = copy_home(lake_home, tmp_path, datasets=("polyvore",))
    model_dir = save_resnet(home)
    result = embed_space(home, "resnet", **FAST)
    items = query(home, "select item_id, semantic_category, image_sha1 from polyvore_items where image_ok").sort_by("item_id")
    version = model_version("resnet", model_dir)
    assert version.startswith("resnet/v1@")
    assert (result.n_rows, result.n_embedded, result.n_skipped_unchanged, result.n_failed) == (items.num_rows, items.num_rows, 0, 0)
    assert result.model_version == version and result.failures == []

    table = stored(home, "resnet")
    assert table.num_rows == items.num_rows
    assert table.schema.field("vector").type.list_size == 128
    assert table["item_id"].to_pylist() == items["item_id"].to_pylist()
    assert table["semantic_category"].to_pylist() == items["semantic_category"].to_pylist()
    assert table["image_sha1"].to_pylist() == items["image_sha1"].to_pylist()
    assert set(table["dataset"].to_pylist()) == {"polyvore"} and table["split"].null_count == table.num_rows
    assert set(table["model_version"].to_pylist()) == {version} and set(table["model"].to_pylist()) == {"resnet"}

    # the stored vectors are the model's embeddings of those images (recompute a few)
    rows = embed_rows(home).sort_by("item_id")
    pick = [0, 7, rows.num_rows - 1]
    model = load_pretrained(model_dir)
    ds = ImageFolderRows([rows["image_path"][i].as_py() for i in pick], 32)
    expected = embed_batch(model, torch.stack([ds[i]["image"] for i in range(len(pick))]))
    got = np.stack([np.asarray(table["vector"][i].as_py(), np.float32) for i in pick])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)

    report = json.loads((home / "reports" / "embed_resnet.json").read_text())
    assert report["n_embedded"] == items.num_rows and report["model_version"] == version

    # unchanged lake, same model: nothing to do
    again = embed_space(home, "resnet", **FAST)
    assert (again.n_embedded, again.n_skipped_unchanged) == (0, items.num_rows)

    # a new model version re-embeds every row, in place
    v2 = save_resnet(home, "v2", seed=1)
    assert resolve_model(home, "resnet") == v2
    third = embed_space(home, "resnet", **FAST)
    assert third.n_embedded == items.num_rows and third.model_version.startswith("resnet/v2@")
    table = stored(home, "resnet")
    assert table.num_rows == items.num_rows == len(set(table["item_id"].to_pylist()))
    assert set(table["model_version"].to_pylist()) == {third.model_version}


def test_new_ids_are_appended_and_stored_ones_upserted(lake_home, tmp_path, monkeypatch):
    """A space's first embed appends every row (no join against the table); a new model version
    updates the stored rows in place; one row is never written twice."""
    from store import VectorStore

    home = copy_home(lake_home, tmp_path, datasets=("polyvore",))
    save_resnet(home)
    calls = []
    for name in ("append", "upsert"):
        method = getattr(VectorStore, name)
        monkeypatch.setattr(VectorStore, name, lambda self, space, rows, *a, _m=method, _n=name, **k:
                            calls.append((_n, rows.num_rows)) or _m(self, space, rows, *a, **k))  # fmt: skip
    first = embed_space(home, "resnet", **FAST)
    assert {n for n, _ in calls} == {"append"} and sum(r for _, r in calls) == first.n_embedded
    calls.clear()
    save_resnet(home, "v2", seed=1)
    second = embed_space(home, "resnet", **FAST)
    assert {n for n, _ in calls} == {"upsert"} and sum(r for _, r in calls) == second.n_embedded
    table = stored(home, "resnet")
    assert table.num_rows == len(set(table["item_id"].to_pylist())) == first.n_embedded


def test_corrupt_image_is_recorded_and_skipped(polyvore_release, tmp_path):
    home = tmp_path / "home"
    ingest("polyvore", polyvore_release, home)
    save_ae(home)
    rows = embed_rows(home).sort_by("item_id")
    zero, truncated = rows["image_path"][3].as_py(), rows["image_path"][10].as_py()
    Path(zero).write_bytes(b"")  # corrupted after ingest: the lake still says image_ok
    data = Path(truncated).read_bytes()
    Path(truncated).write_bytes(data[: len(data) // 3])

    result = embed_space(home, "ae", **FAST)
    bad = {rows["item_id"][3].as_py(), rows["item_id"][10].as_py()}
    assert result.n_failed == 2 and {f["item_id"] for f in result.failures} == bad
    assert {f["image_path"] for f in result.failures} == {zero, truncated}
    assert all(f["error"] for f in result.failures)
    assert result.n_embedded == rows.num_rows - 2
    ids = set(stored(home, "ae")["item_id"].to_pylist())
    assert len(ids) == rows.num_rows - 2 and not ids & bad
    report = json.loads((home / "reports" / "embed_ae.json").read_text())
    assert report["n_failed"] == 2 and {f["item_id"] for f in report["failures"]} == bad

    # a re-run tries only the failed rows again
    again = embed_space(home, "ae", **FAST)
    assert (again.n_skipped_unchanged, again.n_failed, again.n_embedded) == (rows.num_rows - 2, 2, 0)


def test_stop_then_resume_no_duplicates(lake_home, tmp_path):
    home = copy_home(lake_home, tmp_path)
    save_ae(home)
    first = embed_space(home, "ae", stop_after_batches=1, writer_rows=16, **{**FAST, "batch_size": 32})
    assert first.stopped_early and first.n_embedded == 32
    assert VectorStore(home).count("ae") == 32
    rest = embed_space(home, "ae", **FAST)
    n = embed_rows(home).num_rows
    assert rest.n_skipped_unchanged == 32 and rest.n_embedded == n - 32
    table = stored(home, "ae")
    assert table.num_rows == n == len(set(table["item_id"].to_pylist()))
    assert table.schema.field("vector").type.list_size == 128


def test_dataset_filter(lake_home, tmp_path):
    home = copy_home(lake_home, tmp_path)
    save_ae(home)
    result = embed_space(home, "ae", dataset="deepfashion", **FAST)
    deep = embed_rows(home, dataset="deepfashion")
    assert result.n_rows == result.n_embedded == deep.num_rows and result.dataset == "deepfashion"
    table = stored(home, "ae")
    assert set(table["dataset"].to_pylist()) == {"deepfashion"}
    assert sorted(table["split"].to_pylist()) == sorted(deep["split"].to_pylist())


def test_unknown_space_and_missing_model(lake_home, tmp_path):
    home = copy_home(lake_home, tmp_path, datasets=("polyvore",))
    with pytest.raises(ValueError, match="unknown embedding space 'nope'"):
        embed_space(home, "nope", **FAST)
    with pytest.raises(NoModelError, match="no model for space 'resnet'.*atelier train resnet"):
        embed_space(home, "resnet", **FAST)
    with pytest.raises(NoModelError, match="no config.json"):
        embed_space(home, "resnet", model_dir=tmp_path / "nowhere", **FAST)
    with pytest.raises(ValueError, match="bad embedding space"):
        embed_space(home, "Bad Space", **FAST)
    (home / "models" / "resnet" / "v3").mkdir(parents=True)  # a version folder without config.json
    with pytest.raises(NoModelError):
        resolve_model(home, "resnet")
    assert not (home / "vectors").exists() or VectorStore(home).spaces() == []


def test_rows_to_embed_compares_sha1_and_version(lake_home):
    rows = embed_rows(lake_home, dataset="polyvore").slice(0, 3)
    ids, sha = rows["item_id"].to_pylist(), rows["image_sha1"].to_pylist()
    existing = {ids[0]: (sha[0], "m/v1"), ids[1]: ("other", "m/v1"), ids[2]: (sha[2], "m/v0")}
    assert rows_to_embed(rows, existing, "m/v1")["item_id"].to_pylist() == ids[1:]
    assert rows_to_embed(rows, {}, "m/v1").num_rows == 3


def test_dataloader_workers_give_the_same_vectors(lake_home, tmp_path):
    """Workers decode in other processes (started by a forkserver: this process has LanceDB's
    runtime loaded, which is not fork-safe), and the stored vectors equal the in-process run's."""
    import warnings

    home = copy_home(lake_home, tmp_path, datasets=("polyvore",))
    save_resnet(home)
    embed_space(home, "resnet", **FAST)
    expected = stored(home, "resnet")
    shutil.rmtree(home / "vectors")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*fork")
        result = embed_space(home, "resnet", **{**FAST, "num_workers": 2})
    assert result.num_workers == 2 and result.n_embedded == expected.num_rows
    got = stored(home, "resnet")
    assert got["item_id"].equals(expected["item_id"])
    np.testing.assert_allclose(np.stack(got["vector"].to_numpy(zero_copy_only=False)),
                               np.stack(expected["vector"].to_numpy(zero_copy_only=False)), atol=1e-5)


def test_shards_together_equal_one_run(lake_home, tmp_path):
    from flows.jobs.embed import finalize_space, in_shard

    home = copy_home(lake_home, tmp_path, datasets=("polyvore",))
    save_ae(home)
    whole = embed_space(home, "ae", **FAST)
    expected = stored(home, "ae")
    shutil.rmtree(home / "vectors")
    parts = [embed_space(home, "ae", shard=(i, 3), **FAST) for i in range(3)]
    assert sum(p.n_embedded for p in parts) == whole.n_embedded and all(p.n_embedded > 0 for p in parts)
    assert (home / "reports" / "embed_ae.shard2-of-3.json").exists()
    assert finalize_space(home, "ae") == {"rows": whole.n_embedded, "index_built": False, "duplicates_removed": 0}
    got = stored(home, "ae")
    assert got["item_id"].equals(expected["item_id"])
    np.testing.assert_allclose(np.stack(got["vector"].to_numpy(zero_copy_only=False)),
                               np.stack(expected["vector"].to_numpy(zero_copy_only=False)), atol=1e-6)
    ids = expected["item_id"]
    masks = [np.asarray(in_shard(ids, i, 3)) for i in range(3)]
    assert (sum(m.astype(int) for m in masks) == 1).all()  # every item in exactly one shard
    with pytest.raises(ValueError, match="shard 3 of 3"):
        in_shard(ids, 3, 3)


# -- upkeep: duplicates, stale vectors, damaged tables (flows.jobs.embed_upkeep) ----------------


def rewrite_lake(home: Path, dataset: str, table: str, change) -> None:
    """Commit the dataset's tables again with ``change(table) -> table`` applied to one of them
    (what a re-ingest of a changed release does to the lake)."""
    from store import Lake

    lake = Lake(home)
    names = [n[len(dataset) + 1:] for n in lake.tables() if n.startswith(f"{dataset}_")]
    lake.write_dataset(dataset, {n: change(lake.read(dataset, n)) if n == table else lake.read(dataset, n) for n in names})


def test_duplicate_is_repaired_by_the_next_embed(lake_home, tmp_path):
    """An item_id stored twice (what two unlocked writers left) breaks the item's neighbours
    with a message; the next embed keeps the current row and says how many it removed."""
    home = copy_home(lake_home, tmp_path, datasets=("polyvore",))
    save_ae(home)
    first = embed_space(home, "ae", **FAST)
    store = VectorStore(home)
    rows = store.read("ae").sort_by("item_id")
    item = rows["item_id"][5].as_py()
    kept = store.get_vector("ae", item)
    old = rows.slice(5, 1).to_pylist()[0] | {"model_version": "ae/v0@old", "vector": [0.5] * 128}
    store.table("ae").add(pa.Table.from_pylist([old], schema=rows.schema))
    assert store.duplicates("ae") == 1
    with pytest.raises(ValueError, match=f"holds 2 rows for item '{item}'.*atelier embed ae"):
        store.get_vector("ae", item)

    again = embed_space(home, "ae", **FAST)
    assert (again.n_duplicates_removed, again.n_embedded, again.n_skipped_unchanged) == (1, 0, first.n_embedded)
    table = stored(home, "ae")
    assert table.num_rows == len(set(table["item_id"].to_pylist())) == first.n_embedded
    np.testing.assert_array_equal(store.get_vector("ae", item), kept)  # the current row was kept
    assert json.loads((home / "reports" / "embed_ae.json").read_text())["n_duplicates_removed"] == 1

    store.table("ae").add(pa.Table.from_pylist([old], schema=rows.schema))  # what `atelier doctor` sees and fixes
    health = space_health(home, "ae")
    assert (health.rows, health.duplicates, health.stale_ids, health.usable, health.missing) == (first.n_embedded + 1, 1, [], first.n_embedded, 0)
    assert repair_space(home, "ae") == {"duplicates_removed": 1, "stale_removed": 0} and space_health(home, "ae").ok


def test_stale_vectors_are_deleted_within_the_embedded_datasets(lake_home, tmp_path):
    """Items whose image became unusable or that left the release lose their vectors on the
    next embed; ``dataset`` limits the clean-up to that dataset."""
    import pyarrow.compute as pc

    home = copy_home(lake_home, tmp_path)
    save_ae(home)
    first = embed_space(home, "ae", **FAST)
    poly, deep = embed_rows(home, dataset="polyvore"), embed_rows(home, dataset="deepfashion")
    assert first.n_embedded == poly.num_rows + deep.num_rows and first.n_stale_removed == 0
    broken, removed = poly["item_id"][0].as_py(), poly["item_id"][1].as_py()
    deep_broken = deep["item_id"][0].as_py()

    def break_image(column, ids):
        return lambda t: t.set_column(t.schema.get_field_index("image_ok"), "image_ok",
                                      pc.and_(t["image_ok"], pc.invert(pc.is_in(t[column], pa.array(ids)))))  # fmt: skip

    rewrite_lake(home, "polyvore", "items", lambda t: break_image("item_id", [broken])(t).filter(pc.not_equal(t["item_id"], removed)))
    rewrite_lake(home, "deepfashion", "attributes", break_image("image_id", [deep_broken]))

    assert stale_ids(home, "ae") == sorted([broken, removed, deep_broken])
    only_poly = embed_space(home, "ae", dataset="polyvore", **FAST)
    assert (only_poly.n_stale_removed, only_poly.stale_ids, only_poly.n_embedded) == (2, sorted([broken, removed]), 0)
    ids = set(stored(home, "ae")["item_id"].to_pylist())
    assert broken not in ids and removed not in ids and deep_broken in ids  # other datasets untouched
    report = json.loads((home / "reports" / "embed_ae.json").read_text())
    assert report["n_stale_removed"] == 2 and report["stale_ids"] == sorted([broken, removed])

    every = embed_space(home, "ae", **FAST)
    assert (every.n_stale_removed, every.stale_ids) == (1, [deep_broken])
    table = stored(home, "ae")
    usable = embed_rows(home)["item_id"].to_pylist()
    assert table.num_rows == len(set(table["item_id"].to_pylist())) == len(usable) == first.n_embedded - 3
    assert set(table["item_id"].to_pylist()) == set(usable)


def test_damaged_space_names_its_folder_and_rebuild_recovers(lake_home, tmp_path):
    from store.vectors import DamagedSpaceError

    home = copy_home(lake_home, tmp_path, datasets=("polyvore",))
    save_ae(home)
    first = embed_space(home, "ae", **FAST)
    folder = home / "vectors" / "vectors_ae.lance"
    next((folder / "data").glob("*.lance")).unlink()  # a lost data file
    message = r"vector space 'ae' is damaged: .*vectors/vectors_ae\.lance: data file .* is missing.*atelier embed ae --rebuild"
    with pytest.raises(DamagedSpaceError, match=message):
        embed_space(home, "ae", **FAST)
    with pytest.raises(DamagedSpaceError, match=message):  # a search says the same
        VectorStore(home).search("ae", np.ones(128), k=3)
    rebuilt = embed_space(home, "ae", rebuild=True, **FAST)
    assert rebuilt.rebuilt and rebuilt.n_embedded == first.n_embedded
    VectorStore(home).check("ae")
    assert stored(home, "ae").num_rows == first.n_embedded
