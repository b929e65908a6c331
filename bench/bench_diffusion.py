"""The diffusion model's speed on CPU (every arm on the CPU, also where a GPU is present); writes JSON.

    python bench/bench_diffusion.py [--out bench/results/diffusion.json] [--steps 20] [--resolution 32]

Training: steps/s of ``atelier train diffusion`` (`flows.jobs.train.train_model`: the kind's
loader over the decoded sample Synthesis images, the one loop's schedule and clipping, the
prompts encoded by the frozen text tower each step) against the floor measured in the same run
first: a bare loop over the same model configuration and the same images and captions (encode,
the DDPM loss, backward, AdamW), both after 2 warm-up steps, batch 32 (goal: ratio >= 0.8).
Generation: images/s of `TextToImage.generate` (DDIM, 25 steps, guidance 3: two UNet passes per
step) for 16 prompts, against the bare floor of the same UNet forwards on the same shapes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from benchutil import write_results

ROOT = Path(__file__).resolve().parents[1]


def sample_home(tmp: Path) -> Path:
    from etl.samples import write_samples
    from flows.jobs.ingest import ingest

    write_samples(tmp / "samples", seed=0, scale=1)
    home = tmp / "home"
    ingest("synthesis", tmp / "samples" / "synthesis", home)
    return home


def training(home: Path, steps: int, resolution: int, batch: int = 32) -> dict:
    from flows.jobs.diffusion_data import caption_rows, decode
    from flows.jobs.train import train_model
    from models.clip_text import WordTokenizer
    from models.diffusion import DiffusionConfig, TextToImage

    rows = caption_rows(home)["train"]
    images, kept, _ = decode(rows, resolution)
    captions = [rows["caption"][i] for i in kept]
    torch.manual_seed(0)
    bare = TextToImage.from_tokenizer(WordTokenizer.build(captions), DiffusionConfig(resolution=resolution)).train()
    opt = torch.optim.AdamW(bare.trainable_parameters(), lr=5e-4)
    batches = [(images[i : i + batch], captions[i : i + batch]) for i in range(0, len(captions) - batch + 1, batch)]

    def bare_step(step: int) -> None:
        x, text = batches[step % len(batches)]
        loss = bare.loss(x.float() / 255, text)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for step in range(2):
        bare_step(step)
    t0 = time.perf_counter()
    for step in range(steps):
        bare_step(step)
    bare_sps = steps / (time.perf_counter() - t0)
    m = train_model("diffusion", home, steps=steps + 2, eval_every=steps + 2, batch_size=batch, resolution=resolution,
                    text="random", eval_images=2, sample_steps=2, device="cpu", log=lambda _: None).metrics  # fmt: skip
    loop_sps = m["steps_per_second"]
    return {"resolution": resolution, "batch_size": batch, "steps": steps, "unet_parameters": sum(p.numel() for p in bare.unet.parameters()),
            "loop_steps_per_second": round(loop_sps, 3), "bare_steps_per_second": round(bare_sps, 3),
            "ratio_to_bare": round(loop_sps / bare_sps, 3), "goal_ratio": 0.8, "met": loop_sps / bare_sps >= 0.8,
            "note": "loop steps/s is metrics.json's steps_per_second (training steps only, its first steps included)"}  # fmt: skip


def generation(resolution: int, n: int = 16, steps: int = 25, guidance: float = 3.0) -> dict:
    from models.clip_text import WordTokenizer
    from models.diffusion import DiffusionConfig, TextToImage

    prompts = [f"a woman in a {c} long-sleeved plain dress" for c in ("red", "blue", "green", "black")] * (n // 4)
    torch.manual_seed(0)
    model = TextToImage.from_tokenizer(WordTokenizer.build(prompts), DiffusionConfig(resolution=resolution)).eval()
    model.generate(prompts[:2], steps=2, guidance=guidance)  # warm-up
    t0 = time.perf_counter()
    model.generate(prompts, steps=steps, guidance=guidance)
    gen_s = time.perf_counter() - t0
    cond = model.encode_prompts(prompts).hidden_states
    x, cond2 = torch.randn(2 * n, 3, resolution, resolution), torch.cat([torch.zeros_like(cond), cond])
    with torch.no_grad():
        model.unet(x, torch.tensor(500), encoder_hidden_states=cond2)
        t0 = time.perf_counter()
        for t in range(steps):
            model.unet(x, torch.tensor(999 - 40 * t), encoder_hidden_states=cond2)
    bare_s = time.perf_counter() - t0
    return {"resolution": resolution, "images": n, "sampling_steps": steps, "guidance": guidance,
            "images_per_second": round(n / gen_s, 3), "bare_unet_images_per_second": round(n / bare_s, 3),
            "ratio_to_bare": round(bare_s / gen_s, 3)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "diffusion.json")
    p.add_argument("--steps", type=int, default=20, help="timed training steps of each arm")
    p.add_argument("--resolution", type=int, default=32)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = sample_home(Path(tmp))
        results = {"benchmark": "diffusion", "device": "cpu",
                   "threads": torch.get_num_threads(), "training": training(home, args.steps, args.resolution),
                   "generation": generation(args.resolution)}  # fmt: skip
    write_results(args.out, results)


if __name__ == "__main__":
    main()
