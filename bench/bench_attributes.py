"""Benchmark of attribute prediction (`flows.jobs.attributes.predict_attributes`) on sample DeepFashion images.

(a) the whole call on a list of image files, in images/s: model load, JPEG decode + resize,
    forward with the three attribute heads, result rows (no CSV / PNG written);
(b) the attribute model's forward alone on the same images pre-decoded to tensors (same batches,
    same channels_last memory layout as the call's decoded images);
(c) the baseline: a bare torchvision resnet18 (random init, its 1000-way fc) forward on the same
    tensors, so (b)/(c) shows what the heads and input normalisation cost and (a)/(c) what
    decoding and the rest of the call add.
The three are measured alternately (best of ``--repeat``) so that machine load hits them alike.
Default config: `AttributeConfig()` (64 px input, neck/sleeve_length/pattern heads), random init.

    .venv/bin/python bench/bench_attributes.py --out bench/results/attributes.json --images 400
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from benchutil import best_of, write_results
from torchvision.models import resnet18

from etl.loader import ImageFolderRows
from etl.samples import write_samples
from flows.jobs.attributes import predict_attributes
from models.attributes import AttributeClassifier, AttributeConfig

IMAGES_PER_SCALE = 400  # DeepFashion images the sample generator writes per unit of scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/attributes.json"))
    parser.add_argument("--images", type=int, default=400, help="predict this many images (sample release scaled up to hold them)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--source-size", type=int, default=128, help="side of the sample JPEGs (decoded, then resized to 64 px)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = args.device

    tmp = Path(tempfile.mkdtemp(prefix="bench_attributes_"))
    try:
        t0 = time.perf_counter()
        scale = max(1, math.ceil(args.images / IMAGES_PER_SCALE))
        write_samples(tmp / "raw", seed=0, scale=scale, image_size=args.source_size, datasets=("deepfashion",))
        paths = sorted((tmp / "raw" / "deepfashion" / "images").glob("*.jpg"))[: args.images]
        n = len(paths)
        torch.manual_seed(0)
        config = AttributeConfig()
        model_dir = AttributeClassifier(config).save_pretrained(tmp / "model")
        print(f"{n} images ({args.source_size} px JPEGs), setup {time.perf_counter() - t0:.1f}s; device {device}",
              file=sys.stderr)  # fmt: skip

        ds = ImageFolderRows([str(p) for p in paths], config.image_size)
        # NHWC in memory (channels_last), the layout predict_attributes hands the model (decoded HWC, permuted)
        images = torch.stack([ds[i]["image"] for i in range(n)]).contiguous(memory_format=torch.channels_last)
        batches = [b.to(device) for b in images.split(args.batch_size)]
        model = AttributeClassifier.from_pretrained(model_dir, device=device)
        bare = resnet18(weights=None).to(device).eval()

        def sync() -> None:
            """Wait for queued CUDA work (no-op on CPU)."""
            if device.startswith("cuda"):
                torch.cuda.synchronize()

        @torch.inference_mode()
        def heads_forward() -> None:
            """(b) the attribute model on every pre-decoded batch."""
            for b in batches:
                model(b)
            sync()

        @torch.inference_mode()
        def bare_forward() -> None:
            """(c) bare resnet18 on the same batches."""
            for b in batches:
                bare(b)
            sync()

        def predict() -> None:
            """(a) the whole predict_attributes call on the files."""
            r = predict_attributes(model_dir, paths, batch_size=args.batch_size, device=device)
            assert len(r.rows) == n and not r.errors, r.errors[:3]

        heads_forward(), bare_forward()  # warm-up
        times: dict[str, list[float]] = {"predict": [], "model_forward": [], "bare_resnet18_forward": []}
        for rep in range(args.repeat):
            for name, fn in (("bare_resnet18_forward", bare_forward), ("model_forward", heads_forward), ("predict", predict)):
                times[name].append(best_of(1, fn))
            print(f"rep {rep}: " + ", ".join(f"{k} {n / v[-1]:.0f} img/s" for k, v in times.items()), file=sys.stderr)
        rate = {k: n / min(v) for k, v in times.items()}
        write_results(args.out, {
            "benchmark": "attributes",
            "device": device,
            "torch_threads": torch.get_num_threads(),
            "images": n,
            "source_image_px": args.source_size,
            "model": f"attributes: resnet18 + heads {config.heads}, random init, {config.image_size} px input",
            "batch_size": args.batch_size,
            "repeat": args.repeat,
            "predict_images_per_s": round(rate["predict"], 1),
            "model_forward_images_per_s": round(rate["model_forward"], 1),
            "baseline_bare_resnet18_forward_images_per_s": round(rate["bare_resnet18_forward"], 1),
            "predict_to_baseline_ratio": round(rate["predict"] / rate["bare_resnet18_forward"], 3),
            "model_forward_to_baseline_ratio": round(rate["model_forward"] / rate["bare_resnet18_forward"], 3),
            "runs_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
        })  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
