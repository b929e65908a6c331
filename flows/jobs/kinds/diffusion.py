"""``diffusion``: text-to-image on the Fashion Synthesis captions (`models.diffusion.TextToImage`).

A small pixel-space UNet (diffusers ``UNet2DConditionModel``) cross-attending to the home's latest
``clip`` text tower (frozen; without a clip model, a random text tower over the captions' words,
said in the log and in metrics.json). Splits: the official Synthesis ``train`` split, 90/10 by a
stable hash of the image name into train / val; ``test`` (the official test split) is scored only
by ``atelier eval diffusion --split test``. The last weights are kept; the val denoising loss
(fixed noise and timesteps, so two evaluations are comparable) is logged at each evaluation;
after training the val captions are generated and scored (`flows.jobs.diffusion_eval`).

``--weights DIR``: a local Stable Diffusion checkpoint (diffusers layout) instead, its UNet fine-tuned
in its VAE's latent space with its own text encoder, both frozen (`models.diffusion_sd`); with
``--lora-rank R`` only a LoRA adapter on the UNet's attention trains. ``--inception-weights FILE``:
true FID / KID / IS on Inception-v3 features beside the resnet-feature ones (`models.inception`).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from flows.jobs.diffusion_data import SPLIT_RULE, caption_rows, decode, subset
from flows.jobs.kinds import Prepared, Recipe
from flows.jobs.options import TrainOptions
from store.files import home_path


@dataclass
class DiffusionOptions(TrainOptions):
    steps: int = 1000  # optimizer steps (on the samples the silhouette comes within a few hundred; the caption's colour was not yet shown above chance at 800)
    lr: float = 5e-4  # peak AdamW learning rate (tiny UNet from scratch; fine-tuning a real SD UNet wants ~1e-5)
    batch_size: int = 32  # captioned images per step
    resolution: int = 32  # image side, px (pixel space; the sample images are 128 px)
    text: str = "clip"  # text tower: "clip" = the home's latest clip model (frozen), "random" = a random tower over the captions' words
    prediction: str | None = None  # what the small UNet learns to predict: None = v_prediction (DiffusionConfig's default), or epsilon (the noise; with the cosine schedule it shifted the samples' colours: bench/results/diffusion_quality.json); a --weights checkpoint's scheduler sets its own
    ema: float | None = None  # EMA decay of the UNet weights kept and saved (e.g. 0.999); None: off
    cond_dropout: float = 0.1  # share of captions replaced by the empty condition in training (classifier-free guidance)
    sample_steps: int = 25  # DDIM steps of the images the evaluation generates
    guidance: float = 3.0  # classifier-free guidance scale of those images (1.0: none)
    eval_images: int = 64  # val captions generated and scored after training (all of them when fewer)
    weights: str | None = None  # a local Stable Diffusion checkpoint (diffusers layout): its UNet fine-tuned in latent space, VAE and text encoder frozen, --text ignored; None: the small pixel-space UNet
    lora_rank: int | None = None  # with --weights: train only a LoRA adapter of this rank on the UNet's attention projections (far less memory); None: the whole UNet trains
    inception_weights: str | None = None  # a local Inception-v3 weights file (the FID Inception pt_inception-2015-12-05-6726825d.pth, or a torchvision inception_v3 state dict): true FID / KID / IS of the val images too


@dataclass
class DiffusionEvalOptions:
    inception_weights: str | None = None  # a local Inception-v3 weights file for true FID / KID / IS (see `atelier train diffusion --help`); default: the one the model was trained with, if any


def _prediction(opts) -> dict:
    return {"prediction_type": opts.prediction} if opts.prediction is not None else {}


def prepare(home, opts, log) -> Prepared:
    from models.diffusion import DiffusionConfig

    if opts.lora_rank is not None and (opts.weights is None or opts.lora_rank < 1):
        raise ValueError(f"--lora-rank {opts.lora_rank}: a LoRA rank of at least 1, with --weights (LoRA adapts a pretrained "
                         "Stable Diffusion UNet; the small pixel-space UNet trains whole)")  # fmt: skip
    if opts.weights is not None:
        from models.diffusion_sd import check_sd_base

        if opts.prediction is not None:
            raise ValueError(f"--prediction {opts.prediction}: a Stable Diffusion checkpoint (--weights) keeps its scheduler's "
                             "prediction type; --prediction is for the small pixel-space UNet")  # fmt: skip
        check_sd_base(opts.weights, opts.resolution)  # every file (ModelFileError naming a missing one), the resolution
    else:
        DiffusionConfig(resolution=opts.resolution, **_prediction(opts))  # validates both before any decoding
    if opts.inception_weights is not None:
        from models.inception import load_inception

        log(f"IS / FID / KID also on {load_inception(opts.inception_weights).name}")  # a bad file fails before training
    if opts.text not in ("clip", "random"):
        raise ValueError(f"--text {opts.text!r}: clip (the home's latest clip model) or random")
    rows, data, failed = caption_rows(home, opts.seed), {}, {}
    for split in ("train", "val"):
        images, kept, bad = decode(rows[split], opts.resolution)
        data[split] = {"images": images, "rows": subset(rows[split], kept)}
        failed[split] = bad
        for name, error in bad:
            log(f"skipped {split} image {name}: {error}")
    n_train, n_val = len(data["train"]["images"]), len(data["val"]["images"])
    if n_train < 2 or n_val < 1:
        raise ValueError(f"too few captioned Synthesis images to train on ({n_train} train, {n_val} val): "
                         "run `atelier ingest synthesis PATH` on a release with captions")  # fmt: skip
    clip_path = None
    if opts.text == "clip" and opts.weights is None:
        from store.models import latest_model

        clip_path = latest_model(home, "clip")  # NoModelError naming `atelier train clip` (or use --text random)
    sizes = {"n_train": n_train, "n_val": n_val, "n_skipped": sum(len(b) for b in failed.values())}
    trained_on = {"dataset": "synthesis", "tables": ["synthesis_captions", "synthesis_images"], **sizes, "split": SPLIT_RULE,
                  "resolution": opts.resolution, "text_model": str(clip_path) if clip_path else None,
                  "skipped": {s: [n for n, _ in b] for s, b in failed.items()}}  # fmt: skip
    if opts.weights is not None:
        base = str(Path(opts.weights).resolve())
        trained_on.update(text_model=f"text_encoder of {base}", base_checkpoint=base, lora_rank=opts.lora_rank)
    return Prepared(data={"home": home_path(home), **data, "clip_path": clip_path}, trained_on=trained_on, fingerprint=sizes,
                    describe=f"{n_train} train / {n_val} val Synthesis captions ({sizes['n_skipped']} images skipped)")  # fmt: skip


def build(opts, prepared, log):
    from models.diffusion import DiffusionConfig, TextToImage

    if opts.weights is not None:
        return _build_sd(opts, log)
    config = DiffusionConfig(resolution=opts.resolution, **_prediction(opts))
    clip_path = prepared.data["clip_path"]
    if clip_path is not None:
        from models.clip import ClipEmbedder

        clip = ClipEmbedder.from_pretrained(clip_path)
        log(f"text tower: frozen copy of clip {clip_path.name} ({clip_path})")
        return TextToImage.from_clip(clip, config, f"clip {clip_path.name} ({clip_path})")
    from models.clip_text import WordTokenizer

    tokenizer = WordTokenizer.build(prepared.data["train"]["rows"]["caption"])
    log(f"text tower: random init over a {len(tokenizer)}-word vocabulary (--text random: not a trained clip)")
    return TextToImage.from_tokenizer(tokenizer, config)


def _build_sd(opts, log):
    from models.diffusion_sd import StableDiffusionModel

    model = StableDiffusionModel.from_base(opts.weights, opts.resolution, lora_rank=opts.lora_rank)
    n = model.parameter_counts()
    what = (f"LoRA rank {opts.lora_rank} on its attention projections: {n['trainable']:,} trainable parameters "
            f"({100 * n['trainable'] / n['unet']:.2f}% of the UNet's {n['unet']:,})" if opts.lora_rank
            else f"the whole UNet trains ({n['trainable']:,} parameters)")  # fmt: skip
    log(f"base: Stable Diffusion checkpoint {model.config.base}; {what}; VAE ({n['vae']:,}) and text encoder "
        f"({n['text_encoder']:,}) frozen; {opts.resolution} px images, {opts.resolution // model.vae_scale_factor} px latents")  # fmt: skip
    if opts.text != "clip":
        log("--text does not apply with --weights: the checkpoint's own text encoder is used")
    return model


def val_loss(model, images, captions: list[str], batch_size: int = 64, seed: int = 0) -> float:
    """The mean denoising loss over ``images`` with fixed noise, timesteps and no condition dropout."""
    import torch

    generator, total = torch.Generator().manual_seed(seed), 0.0
    for i in range(0, len(images), batch_size):
        batch = images[i : i + batch_size].float() / 255
        total += model.loss(batch, captions[i : i + batch_size], generator=generator, cond_dropout=0.0).item() * len(batch)
    return total / max(1, len(images))


def train(model, prepared, opts, cfg, checkpoint_dir, log) -> dict:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from models.loop import Task, fit

    tr, val = prepared.data["train"], prepared.data["val"]
    prepared.data["version"] = Path(checkpoint_dir).parent.name if checkpoint_dir else None
    captions = tr["rows"]["caption"]
    loader = DataLoader(TensorDataset(tr["images"], torch.arange(len(captions))), batch_size=min(cfg.batch_size, len(captions)),
                        shuffle=True, drop_last=True)  # fmt: skip
    if opts.ema:
        model.add_ema()  # before fit: a resumed run's checkpoint holds the average too

    def loss(m, batch, device):
        images, idx = batch
        return m.loss(images.to(device).float() / 255, [captions[i] for i in idx.tolist()], cond_dropout=opts.cond_dropout)

    def evaluate(m, device):
        with m.ema_weights() if opts.ema else nullcontext():
            return {"val_loss": val_loss(m, val["images"], val["rows"]["caption"]), "n_images": len(val["images"])}

    task = Task(kind="diffusion", batches=loader, loss=loss, evaluate=evaluate, metric="val_loss", mode="min",
                select="last", describe=lambda e: f"val denoising loss {e['val_loss']:.4f} ({e['n_images']} images)",
                after_step=(lambda m, step: m.update_ema(opts.ema, step)) if opts.ema else None)  # fmt: skip
    metrics = fit(model, task, cfg, checkpoint_dir, log)
    if opts.ema:
        model.keep_ema()  # the saved weights are the average
    return {**metrics, "val": metrics["kept"], "ema": opts.ema, "text_model": model.config.text_model or "random text tower"}


def finish(model, prepared, opts, metrics, log) -> dict:
    """The val captions generated and scored beside the references (`flows.jobs.diffusion_eval`)."""
    from flows.jobs.diffusion_eval import generation_report

    val = prepared.data["val"]
    version = prepared.data.get("version")
    report = generation_report(prepared.data["home"], model, val["images"], val["rows"], n=opts.eval_images,
                               steps=opts.sample_steps, guidance=opts.guidance, seed=opts.seed, log=log,
                               tag=f"{version}_val" if version else None,
                               inception_weights=opts.inception_weights)  # fmt: skip
    out = {"val_scores": report}
    if opts.weights is not None:  # which base, whether LoRA, what trained
        out["base"] = {"checkpoint": model.config.base, "lora_rank": opts.lora_rank, "parameters": model.parameter_counts()}
    return out


def summary(m: dict) -> str:
    from flows.jobs.diffusion_eval import report_summary

    s = m.get("val_scores") or m.get("scores")
    return report_summary(s, m.get("split", "val")) if s else "no scores"


def evaluate(home, path, log, split: str = "val", inception_weights: str | None = None) -> dict:
    """A saved model's images for the captions of ``split`` (val by default; test only when asked),
    scored beside the references; true IS / FID / KID with ``inception_weights`` (default: the file
    the model was trained with, if any)."""
    from flows.jobs.diffusion_eval import generation_report
    from models import default_device
    from models.diffusion_sd import load_text_to_image
    from models.pretrained import read_metrics

    if split not in ("val", "test"):
        raise ValueError(f"the diffusion model is evaluated on val or test, not {split!r}")
    model = load_text_to_image(path, device=default_device())
    opts = (read_metrics(path) or {}).get("options", {})
    rows = caption_rows(home, opts.get("seed", 0))[split]
    images, kept, _ = decode(rows, model.config.resolution)
    if not kept:
        raise ValueError(f"no usable Synthesis {split} image to evaluate on")
    report = generation_report(home, model, images, subset(rows, kept), n=opts.get("eval_images", 64),
                               steps=opts.get("sample_steps", 25), guidance=opts.get("guidance", 3.0),
                               seed=opts.get("seed", 0), log=log, tag=f"{Path(path).name}_{split}",
                               inception_weights=inception_weights or opts.get("inception_weights"))  # fmt: skip
    out = {"split": split, "scores": report}
    out["summary"] = [summary(out)]
    return out


RECIPE = Recipe(
    name="diffusion", help="text-to-image on the Fashion Synthesis captions (a small diffusers UNet, clip's text tower)",
    options=DiffusionOptions, prepare=prepare, build=build, train=train, finish=finish, summary=summary,
    evaluate=evaluate, splits=("val", "test"), eval_options=DiffusionEvalOptions,
    selection="last weights; val (10% of the official train split) denoising loss with fixed noise logged; test "
              "scored only by `atelier eval diffusion --split test`",
    example="--steps 2000 --resolution 32 --ema 0.999",
)  # fmt: skip
