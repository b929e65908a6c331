"""The scale benchmark's pieces: the release writer, the bounded (streaming) probing and the
Arrow-backed embed dataset, and (slow) the whole `bench/bench_scale.py` at 200 items."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

import etl.images as images
from etl import probe_images
from etl.loader import ImageFolderRows
from etl.polyvore import read_polyvore

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import scale_release  # noqa: E402


def test_new_ids_follow_the_real_ones_with_the_real_category_mix():
    ids, cats = scale_release.item_ids(5, ["7", "42"], ["tops", "shoes"])
    assert ids == ["7", "42", "100", "101", "102"] and cats == ["tops", "shoes", "tops", "shoes", "tops"]
    assert scale_release.item_ids(1, ["7", "42"], ["tops", "shoes"]) == (["7"], ["tops"])


def test_release_is_a_valid_polyvore_release_with_one_small_unique_image_per_item(tmp_path):
    counts = scale_release.write_release(tmp_path / "r", 300, image_size=64, workers=2)
    raw = read_polyvore(tmp_path / "r", variants=("nondisjoint",))
    items = raw["raw_polyvore_items"]
    assert counts["items"] == items.num_rows == 300 and raw["raw_polyvore_quarantine"].num_rows == 0
    meta = json.loads((tmp_path / "r" / "polyvore_item_metadata.json").read_text())
    assert {"title", "url_name", "description", "catgeories", "related", "category_id", "semantic_category"} <= set(next(iter(meta.values())))
    files = sorted((tmp_path / "r" / "images").iterdir())
    assert [f.stem for f in files] == sorted(items["item_id"].to_pylist())
    assert len({f.read_bytes() for f in files}) == 300  # every image its own file content
    with Image.open(files[0]) as im:
        assert im.size == (64, 64) and im.format == "JPEG"
    outfit_items = raw["raw_polyvore_outfit_items"]["item_id"].to_pylist()
    assert counts["outfits"] > 0 and set(outfit_items) <= set(meta)


def _jpegs(folder: Path, n: int) -> list[str]:
    folder.mkdir()
    paths = []
    for i in range(n):
        Image.new("RGB", (8 + i % 5, 8), (i % 256, 0, 0)).save(folder / f"{i:03d}.jpg")
        paths.append(str(folder / f"{i:03d}.jpg"))
    return paths


def test_probing_in_small_slices_equals_one_slice_and_reports_progress(tmp_path, monkeypatch):
    paths = _jpegs(tmp_path / "images", 50)
    (tmp_path / "images" / "bad.jpg").write_bytes(b"not a jpeg")
    whole, n = probe_images([*paths, str(tmp_path / "images" / "bad.jpg"), str(tmp_path / "missing.jpg")], root=tmp_path, workers=1)
    assert n == 51 and whole.num_rows == 51 and whole["image_path"].to_pylist() == sorted(whole["image_path"].to_pylist())
    monkeypatch.setattr(images, "CHUNK_ROWS", 7)
    monkeypatch.setattr(images, "SLICE", 5)
    seen = []
    sliced, n = probe_images([*paths, str(tmp_path / "images" / "bad.jpg"), str(tmp_path / "missing.jpg")], root=tmp_path,
                             workers=2, min_parallel=10, on_progress=lambda done, total: seen.append(done))  # fmt: skip
    assert n == 51 and sliced.equals(whole)
    assert seen[0] == 0 and seen[-1] == 51 and seen == sorted(seen) and len(seen) > 5
    again, n = probe_images(paths, root=tmp_path, previous=whole, workers=1)  # unchanged files: reused, none opened
    assert n == 0 and again.equals(whole.filter(pa.compute.is_in(whole["image_path"], pa.array(paths))))


def test_bounded_map_keeps_at_most_in_flight_jobs_submitted():
    from concurrent.futures import ThreadPoolExecutor

    submitted, peak = [], []

    def jobs():
        for i in range(20):
            submitted.append(i)
            yield i

    with ThreadPoolExecutor(2) as pool:
        out = []
        for r in images._bounded_map(pool, lambda x: x * 2, jobs(), 3):
            peak.append(len(submitted) - len(out))
            out.append(r)
    assert out == [2 * i for i in range(20)] and max(peak) <= 3 + 1  # in flight, plus the result being handed back


def test_image_rows_from_arrow_columns_equal_rows_from_lists(tmp_path):
    paths = _jpegs(tmp_path / "images", 4)
    from_lists = ImageFolderRows(paths, 8, h5_index=[None] * 4, crops=[None, [0, 0, 4, 4], None, None])
    from_arrow = ImageFolderRows(pa.chunked_array([pa.array(paths[:2]), pa.array(paths[2:])]), 8,
                                 h5_index=pa.nulls(4, pa.int32()), crops=pa.array([None, [0, 0, 4, 4], None, None], pa.list_(pa.float32())))  # fmt: skip
    assert from_arrow.h5_index is None and isinstance(from_arrow.paths, pa.Array) and len(from_arrow) == 4
    for i in range(4):
        a, b = from_lists[i], from_arrow[i]
        assert a["ok"] and b["ok"] and np.array_equal(a["image"].numpy(), b["image"].numpy())


@pytest.mark.slow
def test_the_whole_scale_bench_at_200_items(tmp_path):
    out = tmp_path / "scale.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "bench_scale.py"), "--items", "200", "--workdir", str(tmp_path / "w"),
                    "--out", str(out)], cwd=ROOT, check=True, capture_output=True, text=True, timeout=900)  # fmt: skip
    result = json.loads(out.read_text())
    stages = result["stages"]
    assert set(stages) == {"ingest", "probe", "embed", "index", "queries"}
    for name in ("ingest", "probe", "embed"):
        assert stages[name]["seconds"] > 0 and stages[name]["floor_seconds"] > 0 and stages[name]["peak_rss_mb"] > 0
    assert stages["embed"]["throughput_to_floor"] > 0 and result["raw"]["embed"]["embedded"] == 200
    segments = stages["embed"]["segments"]  # the job's and the floor's rates over stretches of the run
    assert segments and segments[-1]["up_to"] == 200 and all(s["job_images_per_s"] > 0 for s in segments)
    for q in ("neighbours", "complete", "search"):
        assert stages["queries"][q]["median_ms"] > 0 and stages["queries"][q]["floor_median_ms"] > 0
    assert stages["queries"]["neighbours"]["recall_at_10_vs_scan"] > 0.5
    steps = stages["queries"]["memory"]
    assert set(steps) == {"scan_copy", "neighbours", "umbert_train", "complete", "clip_space_setup", "search"}
    assert all(0 < s["start_rss_mb"] <= s["peak_rss_mb"] and s["end_rss_mb"] <= s["peak_rss_mb"] for s in steps.values())
    assert not (tmp_path / "w").exists()  # the workdir is removed at the end


def test_memory_growth_per_stage_and_per_queries_step():
    from scale_queries import memory_growth

    def run(n, peak, step_peak):
        return {"items": n, "raw": {"embed": {"peak_rss_mb": peak},
                                    "queries": {"peak_rss_mb": peak, "memory": {"umbert_train": {"start_rss_mb": 500.0, "peak_rss_mb": step_peak}}}}}  # fmt: skip

    got = memory_growth(run(1_000_000, 2000.0, 1500.0), run(100_000, 1000.0, 600.0))  # either order
    assert got["sizes"] == [100_000, 1_000_000]
    assert got["per_stage"]["embed"]["bytes_per_added_item"] == pytest.approx(1000 * 2**20 / 900_000, abs=0.1)
    step = got["queries_steps"]["umbert_train"]
    assert (step["added_mb_100000"], step["added_mb_1000000"]) == (100.0, 1000.0)
    assert step["bytes_per_added_item"] == pytest.approx(900 * 2**20 / 900_000, abs=0.1)
    with pytest.raises(ValueError, match="compare two sizes"):
        memory_growth(run(5, 1.0, 1.0), run(5, 1.0, 1.0))
