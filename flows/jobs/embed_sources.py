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
| generated | images `atelier generate` wrote (lake dataset ``generated``) | ``<model version>/<hash>_<i>`` |

``generated`` is embedded only when asked (``atelier embed resnet --dataset generated``): no
kind embeds it by default, so searches over a space return real items unless it was added.

``image_sha1`` is the file's SHA-1 from the probe; for a crop it is SHA-1(file SHA-1 + box),
for a Synthesis image SHA-1(h5 path, size, mtime, index) (the h5 file is read per image, not
hashed whole).

Each dataset's rows are one SQL relation over the lake, `sql/embed_<dataset>.sql`, run by
``store.run_relation`` with its values bound (the DeepFashion2 category mapping; the Synthesis
h5 files' size and mtime, stat here as they are not in the lake). A reader returns None when a
lake table its relation reads is missing (the dataset is not ingested).
"""

from __future__ import annotations

import os

import pyarrow as pa

from store import Lake, run_relation

ROW_COLUMNS = ["item_id", "dataset", "semantic_category", "split", "image_path", "image_sha1", "h5_index", "crop", "text"]
ROW_SCHEMA = pa.schema([(c, pa.string()) for c in ROW_COLUMNS[:6]] + [
    ("h5_index", pa.int32()), ("crop", pa.list_(pa.float32())), ("text", pa.string())])  # fmt: skip
ALL_DATASETS = ("polyvore", "deepfashion", "viton", "deepfashion2", "synthesis")  # the releases
GENERATED = "generated"  # the derived dataset of generated images: embeddable, in no kind's default
# DeepFashion2 category_id -> Polyvore semantic category
DF2_SEMANTIC = {1: "tops", 2: "tops", 5: "tops", 6: "tops", 3: "outerwear", 4: "outerwear", 7: "bottoms",
                8: "bottoms", 9: "bottoms", 10: "all-body", 11: "all-body", 12: "all-body", 13: "all-body"}  # fmt: skip
# the lake tables each dataset's relation (sql/embed_<dataset>.sql) reads
RELATION_TABLES = {"polyvore": ("items",), "deepfashion": ("attributes",), "viton": ("samples", "image_probes"),
                   "deepfashion2": ("items", "image_probes", "sketches"), "synthesis": ("images", "captions"),
                   GENERATED: ("images",)}  # fmt: skip


def relation_rows(lake: Lake, dataset: str, params: dict | None = None) -> pa.Table | None:
    """The rows of `sql/embed_<dataset>.sql` as `ROW_SCHEMA`, or None when a table it reads is
    not in the lake."""
    if not all(lake.exists(dataset, table) for table in RELATION_TABLES[dataset]):
        return None
    return run_relation(lake.home, f"embed_{dataset}", params).cast(ROW_SCHEMA)


def polyvore_rows(lake: Lake) -> pa.Table | None:
    return relation_rows(lake, "polyvore")


def deepfashion_rows(lake: Lake) -> pa.Table | None:
    return relation_rows(lake, "deepfashion")


def viton_rows(lake: Lake) -> pa.Table | None:
    return relation_rows(lake, "viton")


def deepfashion2_rows(lake: Lake) -> pa.Table | None:
    semantic = [{"category_id": k, "semantic_category": v} for k, v in DF2_SEMANTIC.items()]
    return relation_rows(lake, "deepfashion2", {"semantic": semantic})


def synthesis_rows(lake: Lake) -> pa.Table | None:
    if not all(lake.exists("synthesis", table) for table in RELATION_TABLES["synthesis"]):
        return None
    h5_files = []
    for path in run_relation(lake.home, "embed_synthesis_h5_files")["h5_path"].to_pylist():
        try:
            stat = os.stat(path)
        except FileNotFoundError:  # moved or deleted since the ingest: its images are left out
            continue
        h5_files.append({"h5_path": path, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return relation_rows(lake, "synthesis", {"h5_files": h5_files})


def generated_rows(lake: Lake) -> pa.Table | None:
    return relation_rows(lake, GENERATED)


READERS = {"polyvore": polyvore_rows, "deepfashion": deepfashion_rows, "viton": viton_rows,
           "deepfashion2": deepfashion2_rows, "synthesis": synthesis_rows, GENERATED: generated_rows}  # fmt: skip
