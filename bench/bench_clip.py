"""CLIP benchmark: image embedding throughput and text search latency at the real reference
scale; writes JSON.

    python bench/bench_clip.py [--out bench/results/clip.json] [--queries 100] [--images 512]

Measured in one run (CPU unless a GPU is present):
- image embedding throughput (images/s, `embed_batch`: inference mode, float32 on CPU) of the
  demo's from-scratch CLIP (64 px, ViT 4 x 128) and of a ViT-B/32-sized CLIP (224 px, random
  init: the size of `openai/clip-vit-base-patch32`), next to the resnet18 embedder on the same
  images at the same sides (the baseline);
- text search at the real reference scale: the 112,491 real Polyvore ids and categories
  (tests/data/polyvore) with their titles, random 128-d vectors (the store's calibrated
  index and the full-text index, built by `ensure_indexes`); per query: the text encode, the
  ANN vector search (and the same search exact, with recall@10 of ANN vs exact), the hybrid
  search (full-text + vector, rank fusion) and the full-text search alone: median and p95 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from benchutil import random_title_space, write_results

from etl.samples import reference_release
from flows.jobs.ingest import ingest_polyvore
from models import ClipConfig, ClipEmbedder, ResNetConfig, ResNetEmbedder, embed_batch
from models.clip_text import WordTokenizer
from store import VectorStore

REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "data" / "polyvore"
DIM = 128


def throughput(model, images: torch.Tensor, batch: int = 64) -> float:
    embed_batch(model, images[:batch])  # warm-up
    t0 = time.perf_counter()
    for start in range(0, len(images), batch):
        embed_batch(model, images[start:start + batch])
    return len(images) / (time.perf_counter() - t0)


def image_throughput(n: int) -> dict:
    torch.manual_seed(0)
    tok = WordTokenizer.build(["a red top"])
    out = {}
    for name, clip_cfg, side, count in (
        ("demo_clip_64px", ClipConfig(vocab_size=len(tok)), 64, n),
        ("vit_b32_clip_224px", ClipConfig(vocab_size=49408, image_size=224, patch_size=32, vision_width=768, vision_layers=12,
                                          text_width=512, text_layers=12, heads=8, max_length=77, projection_dim=512), 224, max(64, n // 8)),
    ):  # fmt: skip
        images = torch.rand(count, 3, side, side)
        clip = ClipEmbedder(clip_cfg, tok).eval()
        resnet = ResNetEmbedder(ResNetConfig(num_classes=4, image_size=side)).eval()
        c, r = throughput(clip, images), throughput(resnet, images)
        out[name] = {"images": count, "side": side, "clip_images_per_s": round(c, 1), "resnet18_images_per_s": round(r, 1),
                     "clip_vs_resnet18": round(c / r, 3)}  # fmt: skip
        print(name, out[name])
    return out


def text_search(n_queries: int) -> dict:
    from flows.jobs.search import encode_text

    with tempfile.TemporaryDirectory() as tmp:
        root, home = Path(tmp) / "release", Path(tmp) / "home"
        reference_release(REFERENCE / "reduced_catalogue.csv", REFERENCE / "reduced_compatibility.csv", root, n_images=0)
        ingest_polyvore(root, home)
        items, index_s = random_title_space(home, DIM, "bench/v1", seed=0)
        store = VectorStore(home)
        n = items.num_rows
        titles = items["title"].to_pylist()
        tok = WordTokenizer.build(titles)
        model = ClipEmbedder(ClipConfig(vocab_size=len(tok)), tok).eval()
        rng = random.Random(0)
        queries = [" ".join(rng.sample(titles[rng.randrange(n)].split(), 2)) for _ in range(n_queries)]
        timing = {"encode": [], "vector_ann": [], "vector_exact": [], "hybrid": [], "fulltext": []}
        recalls = []
        for q in queries:
            t = time.perf_counter(); vec, _ = encode_text(model, q); timing["encode"].append(time.perf_counter() - t)  # noqa: E702
            t = time.perf_counter(); ann = store.search("clip", vec, k=10); timing["vector_ann"].append(time.perf_counter() - t)  # noqa: E702
            t = time.perf_counter(); exact = store.search("clip", vec, k=10, exact=True); timing["vector_exact"].append(time.perf_counter() - t)  # noqa: E702
            t = time.perf_counter(); store.search_hybrid("clip", vec, q, k=10); timing["hybrid"].append(time.perf_counter() - t)  # noqa: E702
            t = time.perf_counter()
            store.table("clip").search(q, query_type="fts").limit(10).to_arrow()
            timing["fulltext"].append(time.perf_counter() - t)
            recalls.append(len(set(ann["item_id"].to_pylist()) & set(exact["item_id"].to_pylist())) / 10)
        stats = {k: {"median_ms": round(statistics.median(v) * 1000, 2), "p95_ms": round(np.percentile(v, 95) * 1000, 2)}
                 for k, v in timing.items()}  # fmt: skip
        med = {k: statistics.median(v) for k, v in timing.items()}
        return {"items": n, "queries": n_queries, "index_seconds": round(index_s, 1), **stats,
                "recall_at_10_ann_vs_exact": round(float(np.mean(recalls)), 4),
                "ann_vs_exact_search": round(med["vector_ann"] / med["vector_exact"], 3),
                "encode_plus_ann_median_ms": round((med["encode"] + med["vector_ann"]) * 1000, 2),
                "encode_plus_hybrid_median_ms": round((med["encode"] + med["hybrid"]) * 1000, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "clip.json")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--images", type=int, default=512)
    args = parser.parse_args()
    write_results(args.out, {"torch_threads": torch.get_num_threads(), "image_embedding": image_throughput(args.images),
                             "text_search": text_search(args.queries)})  # fmt: skip


if __name__ == "__main__":
    main()
