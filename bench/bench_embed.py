"""Benchmark of the embed job (`flows.jobs.embed.embed_space`) on a sample Polyvore lake.

(a) the whole pipeline, decode -> model -> stored row, in images/s (each DataLoader worker
    setting, fresh vector table each run; the time includes reading the lake rows, loading the
    model, the writes, index check and compaction); also "loop only": first batch to last row
    stored (`EmbedResult.loop_seconds`: without the lake read, model load and compaction);
(b) the same model's forward pass alone (`embed_batch` on pre-decoded tensors, same batch size,
    same number of images);
(c) a re-run on the unchanged lake (everything skipped) against the first run's time.
(a) and (b) are measured alternately (best of ``--repeat``), so that load from other processes
on the machine hits both alike; ``paired_ratio_median`` is the median over repeats of each
pipeline run against the forward pass timed just before it (this 2-core VM's speed drifts by
+-10% between runs, so best-of-each and paired figures are both reported).

    .venv/bin/python bench/bench_embed.py --out bench/results/embed.json --images 2000

``--compare-ref REF`` measures instead the embed job of commit REF (its whole tree, from `git
archive`) against the working tree's, on the same lake and model: alternating subprocesses, each
one fresh embed (vector table removed first) and one re-run on the unchanged lake, timed inside
the process (`EmbedResult.seconds` / `loop_seconds`: no interpreter start or imports). What the
working tree adds per run: the space's lock, the table check, the duplicate and stale-row checks.

    .venv/bin/python bench/bench_embed.py --compare-ref 3293c36 --repeat 6 --out bench/results/embed_before_after.json
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from benchutil import best_of, write_results

from etl.loader import ImageFolderRows
from etl.samples import write_samples
from flows.jobs.embed import embed_rows, embed_space
from flows.jobs.ingest import ingest
from models import (
    ResNetConfig,
    ResNetEmbedder,
    default_device,
    embed_batch,
    load_pretrained,
)

ITEMS_PER_SCALE = 480  # about the Polyvore items the sample generator writes per unit of scale
ROOT = Path(__file__).resolve().parents[1]
# one measurement in a fresh process, with the code of the tree given first on its path
CHILD = """import json, shutil, sys, time
tree, home, batch_size, device = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, tree)
from flows.jobs.embed import embed_space
shutil.rmtree(home + "/vectors", ignore_errors=True)
first = embed_space(home, "resnet", batch_size=batch_size, num_workers=0, device=device, progress=False)
t = time.perf_counter()
again = embed_space(home, "resnet", batch_size=batch_size, num_workers=0, device=device, progress=False)
rerun = time.perf_counter() - t
assert first.n_failed == 0 and again.n_embedded == 0 and again.n_skipped_unchanged == first.n_embedded
added = {}
try:  # what the lock and the checks cost alone (the working tree only), median of 20 calls
    import statistics
    from flows.jobs.embed_upkeep import embed_lock
    from store.vectors import VectorStore
    store = VectorStore(home)
    def lock_cycle():
        with embed_lock(home, "resnet"):
            pass
    for name, fn in {"lock_acquire_release": lock_cycle, "check_table_files": lambda: store.check("resnet"),
                     "keys_scan": lambda: store.keys("resnet"), "duplicates_scan": lambda: store.duplicates("resnet")}.items():
        times = []
        for _ in range(20):
            t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
        added[name] = statistics.median(times)
except ImportError:
    pass
import torch
print(json.dumps({"module": sys.modules["flows.jobs.embed"].__file__, "n": first.n_embedded, "added_s": added, "threads": torch.get_num_threads(),
                  "seconds": first.seconds, "loop_seconds": first.loop_seconds, "rerun_s": rerun}))
"""


def compare(ref: str, home: Path, n: int, args, device: str, tmp: Path) -> None:
    """The embed job of ``ref`` vs the working tree's, alternating subprocesses (see the docstring)."""
    before = tmp / "before"
    before.mkdir()
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
    sha = subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    trees = {"before": before, "after": ROOT}
    runs: dict[str, list[dict]] = {k: [] for k in trees}
    for rep in range(args.repeat):
        for name in (("before", "after") if rep % 2 == 0 else ("after", "before")):  # alternate who goes first
            out = subprocess.run([sys.executable, "-c", CHILD, str(trees[name]), str(home), str(args.batch_size), device],
                                 cwd=trees[name], check=True, capture_output=True, text=True)  # fmt: skip
            run = json.loads(out.stdout.strip().splitlines()[-1])
            assert run["module"].startswith(str(trees[name])) and run["n"] == n, run
            runs[name].append(run)
            print(f"rep {rep} {name}: {n / run['seconds']:.0f} img/s, loop {n / run['loop_seconds']:.0f} img/s, "
                  f"re-run {run['rerun_s'] * 1000:.0f} ms", file=sys.stderr)  # fmt: skip

    def figures(name: str) -> dict:
        seconds = [r["seconds"] for r in runs[name]]
        return {"images_per_s_median": round(n / statistics.median(seconds), 1), "images_per_s_best": round(n / min(seconds), 1),
                "loop_images_per_s_median": round(n / statistics.median(r["loop_seconds"] for r in runs[name]), 1),
                "rerun_unchanged_s_median": round(statistics.median(r["rerun_s"] for r in runs[name]), 4),
                "runs_s": [round(x, 3) for x in seconds], "rerun_s": [round(r["rerun_s"], 4) for r in runs[name]]}  # fmt: skip

    result = {name: figures(name) for name in trees}
    b, a = result["before"], result["after"]
    added_ms = {k: round(1000 * statistics.median(r["added_s"][k] for r in runs["after"]), 2) for k in runs["after"][0]["added_s"]}
    write_results(args.out, {
        "benchmark": "embed before/after", "before": f"{ref} ({sha})", "after": "working tree", "device": device,
        "images": n, "model": f"resnet18 embedder, random init, {args.image_size} px input, 128-d",
        "batch_size": args.batch_size, "repeat": args.repeat, "torch_threads": runs["after"][0]["threads"], **result,
        "after_to_before_throughput_median": round(a["images_per_s_median"] / b["images_per_s_median"], 3),
        "after_to_before_throughput_best": round(a["images_per_s_best"] / b["images_per_s_best"], 3),
        "after_to_before_rerun_median": round(a["rerun_unchanged_s_median"] / b["rerun_unchanged_s_median"], 3),
        "added_steps_ms_median": added_ms,
        "added_steps_fraction_of_a_run": round(sum(added_ms.values()) / 1000 / statistics.median(a["runs_s"]), 5),
        "target": "throughput within 5% (ratio >= 0.95)",
    })  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/embed.json"))
    parser.add_argument("--images", type=int, default=2000, help="at least this many images in the lake")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=64, help="the model's input side")
    parser.add_argument("--source-size", type=int, default=128, help="side of the sample JPEGs (decoded, then resized)")
    parser.add_argument("--workers", default="0", help="DataLoader num_workers settings to try, e.g. 0,2 (workers start from a forkserver: +2-3 s here)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default=None)
    parser.add_argument("--compare-ref", default=None, help="git ref: its embed job against the working tree's (alternating processes)")
    args = parser.parse_args()
    device = args.device or default_device()
    workers = [int(w) for w in args.workers.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="bench_embed_"))
    try:
        scale = max(1, math.ceil(args.images / ITEMS_PER_SCALE))
        t0 = time.perf_counter()
        write_samples(tmp / "raw", seed=0, scale=scale, image_size=args.source_size, datasets=("polyvore",))
        home = tmp / "home"
        ingest("polyvore", tmp / "raw" / "polyvore", home)
        setup_s = time.perf_counter() - t0
        rows = embed_rows(home)
        n = rows.num_rows
        torch.manual_seed(0)
        model_dir = ResNetEmbedder(ResNetConfig(num_classes=11, image_size=args.image_size)).save_pretrained(
            home / "models" / "resnet" / "v1")
        print(f"lake: {n} images (scale {scale}, {args.source_size} px JPEGs), setup {setup_s:.1f}s; device {device}",
              file=sys.stderr)  # fmt: skip
        if args.compare_ref:
            return compare(args.compare_ref, home, n, args, device, tmp)

        # (b) forward only: the same images, pre-decoded, in batches of the same size
        model = load_pretrained(model_dir, device=device)
        ds = ImageFolderRows(rows["image_path"].to_pylist(), args.image_size)
        images = torch.stack([ds[i]["image"] for i in range(n)])
        batches = list(images.split(args.batch_size))
        if device.startswith("cuda"):
            batches = [b.pin_memory() for b in batches]
        embed_batch(model, batches[0])  # warm-up

        def forward() -> None:
            for b in batches:
                embed_batch(model, b)
            if device.startswith("cuda"):
                torch.cuda.synchronize()

        loop_s: dict[int, list[float]] = {w: [] for w in workers}

        def pipeline(w: int) -> float:
            shutil.rmtree(home / "vectors", ignore_errors=True)
            r = embed_space(home, "resnet", batch_size=args.batch_size, num_workers=w, device=device, progress=False)
            assert r.n_embedded == n and r.n_failed == 0, r
            loop_s.setdefault(w, []).append(r.loop_seconds)
            return r.seconds

        forward_s: list[float] = []
        pipeline_s: dict[int, list[float]] = {w: [] for w in workers}
        for rep in range(args.repeat):  # alternate, so machine load hits both alike
            for w in workers:
                forward_s.append(best_of(1, forward))
                pipeline_s[w].append(pipeline(w))
                print(f"rep {rep} workers {w}: forward {n / forward_s[-1]:.0f} img/s, "
                      f"pipeline {n / pipeline_s[w][-1]:.0f} img/s", file=sys.stderr)  # fmt: skip

        best_w = min(workers, key=lambda w: min(pipeline_s[w]))
        # leave the table as the best setting's full run wrote it, then (c) re-run: all skipped
        first_s = pipeline(best_w)
        t = time.perf_counter()
        again = embed_space(home, "resnet", batch_size=args.batch_size, num_workers=best_w, device=device, progress=False)
        rerun_s = time.perf_counter() - t
        assert again.n_embedded == 0 and again.n_skipped_unchanged == n, again

        fwd = n / min(forward_s)
        # each pipeline run against the forward pass measured just before it (same machine state)
        paired = {w: [forward_s[rep * len(workers) + i] / pipeline_s[w][rep] for rep in range(args.repeat)]
                  for i, w in enumerate(workers)}  # fmt: skip
        per_setting = {str(w): {"pipeline_images_per_s": round(n / min(s), 1), "ratio_to_forward": round(n / min(s) / fwd, 3),
                                "paired_ratio_median": round(statistics.median(paired[w]), 3),
                                "loop_only_ratio_to_forward": round(n / min(loop_s[w]) / fwd, 3),
                                "runs_s": [round(x, 3) for x in s]} for w, s in pipeline_s.items()}  # fmt: skip
        write_results(args.out, {
            "benchmark": "embed",
            "device": device,
            "torch_threads": torch.get_num_threads(),
            "images": n,
            "source_image_px": args.source_size,
            "model": f"resnet18 embedder, random init, {args.image_size} px input, 128-d",
            "batch_size": args.batch_size,
            "repeat": args.repeat,
            "forward_only_images_per_s": round(fwd, 1),
            "forward_runs_s": [round(x, 3) for x in forward_s],
            "pipeline_by_num_workers": per_setting,
            "best_num_workers": best_w,
            "pipeline_images_per_s": per_setting[str(best_w)]["pipeline_images_per_s"],
            "pipeline_to_forward_ratio": per_setting[str(best_w)]["ratio_to_forward"],
            "pipeline_to_forward_target": 0.8,
            "paired_ratio_median": per_setting[str(best_w)]["paired_ratio_median"],
            "loop_only_to_forward_ratio": per_setting[str(best_w)]["loop_only_ratio_to_forward"],
            "first_run_s": round(first_s, 3),
            "rerun_unchanged_s": round(rerun_s, 3),
            "rerun_fraction_of_first": round(rerun_s / first_s, 4),
            "rerun_target": 0.05,
        })  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
