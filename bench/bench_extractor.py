"""The garment extractor's benchmark and ablation; writes JSON.

    python bench/bench_extractor.py [--out bench/results/extractor.json] [--steps 20]
    python bench/bench_extractor.py --ablation [--ablation-steps 100] [--out bench/results/extractor_ablation.json]

Throughput (default): training images/s of ``atelier train extractor``'s loop (``models.loop.fit``
through ``train_extractor_model``: schedule, clipping, the kind's loss) against the floor measured
in the same run (first, after 2 warm-up steps), a bare loop over the same model and pre-built
batches (one forward, L1 (+ the GAN terms for patchgan), backward, AdamW step); both at 128 x 96, batch 16, for ``unet`` and ``patchgan`` (goal: ratio >= 0.8).
Latency: `extract_garment` on one sample VITON person with the model loaded (decode + forward +
PNG) and the whole `atelier extract` command as a subprocess (process start, imports, load).

Ablation (``--ablation``): on the sample VITON release (scale 1: ~90 train / ~10 val persons),
one run per setting like the research's (the file is rewritten after each run; 1.5-7 min per
run on 2 cores, ~21 min in all) (resnet18 / resnet34 encoder x L1, L1 + perceptual,
L1 + perceptual + SSIM, then PatchGAN), each ``--ablation-steps`` steps, scored on every val
person beside the copy-paste and mean-cloth baselines with 95% intervals; the best run is chosen
on val SSIM. The perceptual network is the sample home's own resnet (trained here for a few
steps: there are no VGG weights offline), as each run's metrics say. The test split is not used.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from benchutil import write_results

ROOT = Path(__file__).resolve().parents[1]
RUNS = [  # (name, options): the research's grid, then the PatchGAN
    ("resnet18 L1", {"encoder": "resnet18", "losses": "l1"}),
    ("resnet18 L1+perceptual", {"encoder": "resnet18", "losses": "l1+perceptual"}),
    ("resnet18 L1+perceptual+SSIM", {"encoder": "resnet18", "losses": "l1+perceptual+ssim"}),
    ("resnet34 L1", {"encoder": "resnet34", "losses": "l1"}),
    ("resnet34 L1+perceptual", {"encoder": "resnet34", "losses": "l1+perceptual"}),
    ("resnet34 L1+perceptual+SSIM", {"encoder": "resnet34", "losses": "l1+perceptual+ssim"}),
    ("resnet18 L1 + PatchGAN", {"encoder": "resnet18", "losses": "l1", "arch": "patchgan"}),
]


def throughput(arch: str, steps: int, batch: int = 16, size=(128, 96)) -> dict:
    import torch.nn.functional as F

    from models.extractor import ExtractorConfig, GarmentExtractor
    from models.extractor_train import ExtractorData, train_extractor_model
    from models.loop import TrainConfig

    g = torch.Generator().manual_seed(0)
    n = batch * 4
    data = ExtractorData(torch.rand(n, 3, *size, generator=g), (torch.rand(n, 1, *size, generator=g) > 0.5).float(),
                         torch.rand(n, 3, *size, generator=g), [str(i) for i in range(n)])  # fmt: skip
    val = ExtractorData(data.person[:2], data.mask[:2], data.cloth[:2], data.keys[:2])
    config = ExtractorConfig(arch=arch, height=size[0], width=size[1], paste_box=(0.1, 0.1, 0.9, 0.9))
    torch.manual_seed(0)
    bare = GarmentExtractor(config).train()
    opt = torch.optim.AdamW(bare.parameters(), lr=3e-4)
    batches = [(data.person[i : i + batch], data.mask[i : i + batch], data.cloth[i : i + batch]) for i in range(0, n, batch)]

    def bare_step(step: int) -> None:
        from models.extractor_train import gan_terms

        person, mask, cloth = batches[step % len(batches)]
        fake = bare(person, mask)
        loss = F.l1_loss(fake, cloth)
        if bare.discriminator is not None:  # the same adversarial work as the loop: both networks' terms
            d_loss, g_loss = gan_terms(bare.discriminator, person, mask, fake, cloth, "lsgan")
            loss = loss + 0.01 * g_loss + d_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for step in range(2):  # warm-up, as the loop's first steps
        bare_step(step)
    t0 = time.perf_counter()
    for step in range(steps):
        bare_step(step)
    bare_ips = steps * batch / (time.perf_counter() - t0)
    torch.manual_seed(0)
    model = GarmentExtractor(config)
    cfg = TrainConfig(steps=steps, batch_size=batch, eval_every=steps, warmup_steps=1, device="cpu")
    metrics = train_extractor_model(model, data, val, cfg, losses=("l1",))
    loop_ips = steps * batch / metrics["train_seconds"]
    return {"arch": arch, "steps": steps, "batch_size": batch, "size": list(size), "loop_images_per_second": round(loop_ips, 2),
            "bare_images_per_second": round(bare_ips, 2), "ratio_to_bare": round(loop_ips / bare_ips, 3), "goal_ratio": 0.8,
            "met": loop_ips / bare_ips >= 0.8}  # fmt: skip


def sample_home(tmp: Path, resnet: bool) -> Path:
    from etl.samples import write_samples
    from flows.jobs.ingest import ingest
    from flows.jobs.train import train_model

    write_samples(tmp / "samples", seed=0, scale=1)
    home = tmp / "home"
    ingest("viton", tmp / "samples" / "viton", home)
    if resnet:  # the perceptual loss's network (no VGG weights offline)
        ingest("polyvore", tmp / "samples" / "polyvore", home)
        train_model("resnet", home, steps=100, log=lambda _: None)
    return home


def latency(home: Path, repeat: int = 15) -> dict:
    from flows.jobs.extract import extract_garment, load_extractor
    from flows.jobs.train import train_model
    from store import query

    train_model("extractor", home, steps=2, eval_every=2, batch_size=4, log=lambda _: None)
    row = query(home, "select image_path, parse_path from viton_samples where subset = 'test' order by person limit 1").to_pylist()[0]
    model, _ = load_extractor(home)
    out = home / "reports" / "bench_extract.png"
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        extract_garment(home, row["image_path"], row["parse_path"], out=out, model=model)
        times.append((time.perf_counter() - t0) * 1000)
    cli = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "flows.cli", "extract", row["image_path"], "--out", str(out), "--home", str(home)],
                       check=True, capture_output=True)  # fmt: skip
        cli.append(time.perf_counter() - t0)
    return {"warm_median_ms": round(statistics.median(times), 2), "warm_p95_ms": round(sorted(times)[int(0.95 * (len(times) - 1))], 2),
            "cli_median_s": round(statistics.median(cli), 3), "cli_min_s": round(min(cli), 3)}  # fmt: skip


def ablation(home: Path, steps: int, out: Path) -> dict:
    """Every run of RUNS; the results file is rewritten after each run (a run cut short keeps the
    finished ones, ``complete`` false)."""
    from flows.jobs.train import train_model

    runs = []
    result = {"benchmark": "extractor_ablation", "steps": steps, "split": "val (every val person); the test split is not used"}
    for name, options in RUNS:
        t0 = time.perf_counter()
        r = train_model("extractor", home, steps=steps, eval_every=steps, log=print, **options)
        m = r.metrics
        runs.append({"name": name, "options": options, "version": r.version, "seconds": round(time.perf_counter() - t0, 1),
                     "perceptual_net": m.get("perceptual_net"), "val": m["val_scores"]})  # fmt: skip
        best = max(runs, key=lambda r: r["val"]["methods"]["model"]["ssim"]["value"])
        result.update(runs=runs, best=best["name"], complete=len(runs) == len(RUNS))
        write_results(out, result)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path)
    p.add_argument("--steps", type=int, default=20, help="steps of each throughput measurement")
    p.add_argument("--ablation", action="store_true")
    p.add_argument("--ablation-steps", type=int, default=100)
    args = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        if args.ablation:
            out = args.out or ROOT / "bench" / "results" / "extractor_ablation.json"
            ablation(sample_home(Path(tmp), resnet=True), args.ablation_steps, out)
            return
        else:
            results = {"benchmark": "extractor", "throughput": [throughput(a, args.steps) for a in ("unet", "patchgan")],
                       "extract_latency": latency(sample_home(Path(tmp), resnet=False))}  # fmt: skip
            out = args.out or ROOT / "bench" / "results" / "extractor.json"
    write_results(out, results)


if __name__ == "__main__":
    main()
