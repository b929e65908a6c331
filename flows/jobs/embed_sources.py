"""What the embed job reads from each dataset: one row per embeddable item (the "reader" input).

Every reader returns `ROW_COLUMNS`: item_id, dataset, semantic_category, split, image_path,
image_sha1 (the incremental key: a stored vector is redone only when it changes), h5_index (a
Fashion Synthesis image inside ``G2.h5``), crop (``[x1, y1, x2, y2]`` of a DeepFashion2 item)
and text (the item's own words: Polyvore title, Synthesis caption, DeepFashion2 category;
stored by the ``clip`` space for full-text and hybrid search).

| dataset | items | item_id |
|---|---|---|
| polyvore | items with a usable image | the Polyvore item id |
| deepfashion | attribute images | the file name |
| viton | flat cloth images (upper clothes) | ``<subset>/cloth/<stem>`` |
| deepfashion2 | every item's box crop, and the Simplicity drawings and photos | ``<split>/<image>#item<N>``, ``simplicity/<pattern>/line`` and ``/<k>`` |
| synthesis | images with a usable caption record | the image name of ``nameList`` |

``image_sha1`` is the file's SHA-1 from the probe; for a crop it is SHA-1(file SHA-1 + box),
for a Synthesis image SHA-1(h5 path, size, mtime, index) (the h5 file is read per image, not
hashed whole).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from store import Lake

ROW_COLUMNS = ["item_id", "dataset", "semantic_category", "split", "image_path", "image_sha1", "h5_index", "crop", "text"]
ROW_SCHEMA = pa.schema([(c, pa.string()) for c in ROW_COLUMNS[:6]] + [
    ("h5_index", pa.int32()), ("crop", pa.list_(pa.float32())), ("text", pa.string())])  # fmt: skip
ALL_DATASETS = ("polyvore", "deepfashion", "viton", "deepfashion2", "synthesis")
# DeepFashion2 category_id -> Polyvore semantic category
DF2_SEMANTIC = {1: "tops", 2: "tops", 5: "tops", 6: "tops", 3: "outerwear", 4: "outerwear", 7: "bottoms",
                8: "bottoms", 9: "bottoms", 10: "all-body", 11: "all-body", 12: "all-body", 13: "all-body"}  # fmt: skip


def _ok(table: pa.Table, column: str = "image_ok") -> pa.Table:
    return table.filter(pc.fill_null(table[column], False))


def _rows(**columns) -> pa.Table:
    n = len(columns["item_id"])
    data = {c: columns.get(c, [None] * n) for c in ROW_COLUMNS}
    return pa.table(data, schema=ROW_SCHEMA)


def _sha(*parts) -> str:
    return hashlib.sha1("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def polyvore_rows(lake: Lake) -> pa.Table | None:
    table = lake.read("polyvore", "items")
    if table is None:
        return None
    t = _ok(table)
    n = t.num_rows
    return _rows(item_id=t["item_id"].to_pylist(), dataset=["polyvore"] * n,
                 semantic_category=t["semantic_category"].to_pylist(), image_path=t["image_path"].to_pylist(),
                 image_sha1=t["image_sha1"].to_pylist(), text=t["title"].to_pylist())  # fmt: skip


def deepfashion_rows(lake: Lake) -> pa.Table | None:
    table = lake.read("deepfashion", "attributes")
    if table is None:
        return None
    t = _ok(table)
    n = t.num_rows
    return _rows(item_id=t["image_id"].to_pylist(), dataset=["deepfashion"] * n, split=t["split"].to_pylist(),
                 image_path=t["image_path"].to_pylist(), image_sha1=t["image_sha1"].to_pylist())  # fmt: skip


def viton_rows(lake: Lake) -> pa.Table | None:
    samples, probes = lake.read("viton", "samples"), lake.read("viton", "image_probes")
    if samples is None or probes is None:
        return None
    probe = {r["image_path"]: r for r in _ok(probes).select(["image_path", "image_ok", "image_sha1"]).to_pylist()}
    seen, rows = set(), []
    for r in samples.select(["split", "subset", "stem", "cloth_path"]).to_pylist():
        item_id = f"{r['subset']}/cloth/{r['stem']}"
        if r["cloth_path"] in probe and item_id not in seen:  # a cloth is listed once per pair it is in
            seen.add(item_id)
            rows.append((item_id, r["split"], r["cloth_path"], probe[r["cloth_path"]]["image_sha1"]))
    n = len(rows)
    return _rows(item_id=[r[0] for r in rows], dataset=["viton"] * n, semantic_category=["tops"] * n,
                 split=[r[1] for r in rows], image_path=[r[2] for r in rows], image_sha1=[r[3] for r in rows])  # fmt: skip


def deepfashion2_rows(lake: Lake) -> pa.Table | None:
    items = lake.read("deepfashion2", "items")
    if items is None:
        return None
    t = _ok(items).to_pylist()
    boxes = [[r["bbox_x1"], r["bbox_y1"], r["bbox_x2"], r["bbox_y2"]] for r in t]
    parts = [_rows(item_id=[r["item_id"] for r in t], dataset=["deepfashion2"] * len(t),
                   semantic_category=[DF2_SEMANTIC.get(r["category_id"]) for r in t], split=[r["split"] for r in t],
                   image_path=[r["image_path"] for r in t],
                   image_sha1=[_sha(r["image_sha1"], *b) for r, b in zip(t, boxes)], crop=boxes,
                   text=[r["category_name"] for r in t])]  # fmt: skip
    sketches, probes = lake.read("deepfashion2", "sketches"), lake.read("deepfashion2", "image_probes")
    if sketches is not None and probes is not None:
        sha = dict(zip(*_ok(probes).select(["image_path", "image_sha1"]).to_pydict().values()))
        ids, paths = [], []
        for r in sketches.to_pylist():
            ids.append(f"simplicity/{r['pattern_id']}/line")
            paths.append(r["line_image"])
            for k, path in enumerate(r["other_images"] or [], 1):
                ids.append(f"simplicity/{r['pattern_id']}/{k}")
                paths.append(path)
        keep = [i for i, p in enumerate(paths) if p in sha]
        parts.append(_rows(item_id=[ids[i] for i in keep], dataset=["deepfashion2"] * len(keep),
                           split=["simplicity"] * len(keep), image_path=[paths[i] for i in keep],
                           image_sha1=[sha[paths[i]] for i in keep]))  # fmt: skip
    return pa.concat_tables(parts)


def synthesis_rows(lake: Lake) -> pa.Table | None:
    images, captions = lake.read("synthesis", "images"), lake.read("synthesis", "captions")
    if images is None or captions is None:
        return None
    by_index = {r["index"]: r for r in captions.select(["index", "caption", "split"]).to_pylist()}
    rows = [r for r in _ok(images, "captioned").to_pylist() if r["index"] in by_index]
    stats = {p: os.stat(p) for p in {r["h5_path"] for r in rows} if Path(p).exists()}
    rows = [r for r in rows if r["h5_path"] in stats]
    n = len(rows)
    return _rows(item_id=[r["name"] for r in rows], dataset=["synthesis"] * n,
                 split=[by_index[r["index"]]["split"] for r in rows], image_path=[r["h5_path"] for r in rows],
                 image_sha1=[_sha(r["h5_path"], stats[r["h5_path"]].st_size, stats[r["h5_path"]].st_mtime_ns, r["index"])
                             for r in rows],
                 h5_index=[r["index"] for r in rows], text=[by_index[r["index"]]["caption"] for r in rows])  # fmt: skip


READERS = {"polyvore": polyvore_rows, "deepfashion": deepfashion_rows, "viton": viton_rows,
           "deepfashion2": deepfashion2_rows, "synthesis": synthesis_rows}  # fmt: skip
