"""Kind ``extractor``: the VITON garment extractor (``models.extractor``): person photo + upper
garment mask -> the flat garment on white, as in VITON-HD's `cloth/`.

Data (`flows.jobs.extractor_data`): the lake's `viton_samples`, subset ``train`` fitted,
``val`` (10% of the train persons, by a seeded hash of the stem) evaluated during training and
used for every choice (keep-best, early stopping, the ablation), ``test`` scored only when asked
(`atelier eval extractor --split test`). Every val image is scored, with two baselines on the
same images: copy-paste (the person's garment pixels cropped and resized into the train clothes'
mean garment box) and the mean train cloth; each figure with its 95% bootstrap interval over
the images and the paired difference to each baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flows.jobs.kinds import Prepared, Recipe
from flows.jobs.options import TrainOptions
from store.files import home_path

SPLIT_RULE = ("train / val = the lake's viton subset (90/10 of the train persons, stable hash of the stem); test = the "
              "test persons with their own cloth; choices on val only, test scored when asked")  # fmt: skip
METRICS = ("ssim", "ms_ssim", "psnr", "l1")
BASELINES = ("copy_paste", "mean_cloth")


@dataclass
class ExtractorOptions(TrainOptions):
    lr: float = 3e-4  # peak AdamW learning rate (the research runs' 3e-4)
    batch_size: int = 16  # persons per step (the research used 32 at 224 px on a GPU)
    encoder: str = "resnet18"  # the UNet's encoder: resnet18 or resnet34
    arch: str = "unet"  # unet, or patchgan (the UNet + a 70x70 PatchGAN discriminator, pix2pix)
    losses: str = "l1"  # '+'-joined reconstruction losses: l1, ssim, perceptual (e.g. l1+perceptual+ssim)
    gan: str = "lsgan"  # patchgan's adversarial loss: lsgan or hinge
    gan_weight: float = 0.01  # weight of the generator's adversarial term next to L1 (pix2pix's 1 : 100)
    height: int = 128  # image height (multiple of 32); VITON-HD is 1024 x 768
    width: int = 96  # image width (multiple of 32)
    weights: str | None = None  # local ImageNet state dict of the encoder (torchvision resnet18/34); None: random init, said in the log
    perceptual_weights: str | None = None  # torchvision vgg16 state dict for the perceptual loss; None: the home's latest resnet model
    keep_best: bool = False  # keep the weights of the best val SSIM instead of the last
    paste_input: bool = True  # the generator also sees the copy-paste baseline (garment crop in the train clothes' mean box): it learns to correct it


def loss_names(opts) -> tuple[str, ...]:
    from models.extractor_train import LOSSES

    names = tuple(n.strip() for n in opts.losses.split("+") if n.strip())
    bad = [n for n in names if n not in LOSSES]
    if bad or not names:
        raise ValueError(f"--losses {opts.losses!r}: combine {', '.join(LOSSES)} with '+', e.g. l1+perceptual+ssim")
    return names


def baselines(train) -> dict:
    """What the baselines need from the train persons: the mean cloth and the mean garment box."""
    from models.extractor_train import garment_box

    return {"mean_cloth": train.cloth.mean(0, keepdim=True), "box": garment_box(train.cloth)}


def prepare(home, opts, log) -> Prepared:
    from flows.jobs.extractor_data import load_subset
    from models.extractor import ExtractorConfig

    ExtractorConfig(encoder=opts.encoder, arch=opts.arch, height=opts.height, width=opts.width)  # validates
    loss_names(opts)
    size = (opts.height, opts.width)
    decoded = {subset: load_subset(home, subset, size) for subset in ("train", "val")}
    for subset, d in decoded.items():
        for s in d.skipped:
            log(f"skipped {subset} person {s['key']}: {s['reason']}")
    train, val = decoded["train"].data, decoded["val"].data
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"no usable viton persons to train on ({len(train)} train, {len(val)} val): "
                         "run `atelier ingest viton` on a release with image/, image-parse-v3/ and cloth/")  # fmt: skip
    skipped = {subset: d.skipped for subset, d in decoded.items()}
    sizes = {"n_train": len(train), "n_val": len(val), "n_skipped": sum(len(s) for s in skipped.values())}
    trained_on = {"dataset": "viton", "table": "viton_samples", **sizes, "split": SPLIT_RULE, "height": opts.height,
                  "width": opts.width, "train_persons": train.keys, "skipped": skipped}  # fmt: skip
    data = {"home": home_path(home), "train": train, "val": val, "baselines": baselines(train), "skipped": skipped}
    return Prepared(data=data, trained_on=trained_on, fingerprint=sizes,
                    describe=f"{len(train)} train / {len(val)} val viton persons ({sizes['n_skipped']} skipped)")  # fmt: skip


def build(opts, prepared, log):
    from models.extractor import ExtractorConfig, GarmentExtractor

    box = prepared.data["baselines"]["box"] if opts.paste_input else None
    model = GarmentExtractor(ExtractorConfig(encoder=opts.encoder, arch=opts.arch, height=opts.height, width=opts.width,
                                             paste_box=box))  # fmt: skip
    if opts.weights is not None:
        loaded = model.load_backbone_weights(opts.weights)
        log(f"encoder weights: {loaded['n_loaded']} tensors of {opts.encoder} from {opts.weights}")
    else:
        log(f"no --weights: the {opts.encoder} encoder starts from random init")
    return model


def feature_net(home: Path, opts, log):
    """The perceptual loss's frozen network: vgg16 from --perceptual-weights, else the trunk of
    the home's latest trained resnet (said as such, never called VGG)."""
    import torch
    from torch import nn

    from models.extractor_train import FeatureNet
    from models.resnet import IMAGENET_MEAN, IMAGENET_STD

    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    if opts.perceptual_weights:
        from models.extractor import load_vgg16_features

        vgg = load_vgg16_features(opts.perceptual_weights)  # ModelFileError naming a file that is not one
        stages = [vgg[:4], vgg[4:9], vgg[9:16]]  # relu1_2, relu2_2, relu3_3
        name = f"vgg16 relu1_2/2_2/3_3 (weights: {opts.perceptual_weights})"
    else:
        from models import load_pretrained
        from store.models import latest_model

        path = latest_model(home, "resnet")  # NoModelError naming `atelier train resnet`
        trunk = load_pretrained(path).trunk
        stages = [nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool, trunk.layer1), trunk.layer2, trunk.layer3]
        name = f"the home's resnet {path.name} trunk, layer1-3 (no --perceptual-weights: not VGG)"

    class Features(nn.Module):
        def __init__(self):
            super().__init__()
            self.stages = nn.ModuleList(stages)
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)

        def forward(self, x):
            out, h = [], (x - self.mean) / self.std
            for stage in self.stages:
                h = stage(h)
                out.append(h)
            return out

    log(f"perceptual loss on {name}")
    return FeatureNet(Features(), name)


def train(model, prepared, opts, cfg, checkpoint_dir, log) -> dict:
    from models.extractor_train import train_extractor_model

    names = loss_names(opts)
    features = feature_net(prepared.data.get("home"), opts, log) if "perceptual" in names else None
    return train_extractor_model(model, prepared.data["train"], prepared.data["val"], cfg, losses=names, features=features,
                                 gan=opts.gan, gan_weight=opts.gan_weight, keep_best=opts.keep_best,
                                 checkpoint_dir=checkpoint_dir, log=log)  # fmt: skip


def score(model, data, base: dict, device, seed: int = 0) -> dict:
    """The model and both baselines on every image of ``data``: mean of each metric with its 95%
    interval, and the paired differences model - baseline (SSIM, PSNR, L1)."""
    from models.extractor_train import copy_paste, image_scores, predict
    from models.intervals import bootstrap, paired_difference, separated

    per = {"model": image_scores(predict(model, data, device), data.cloth),
           "copy_paste": image_scores(copy_paste(data.person, data.mask, base["box"]), data.cloth),
           "mean_cloth": image_scores(base["mean_cloth"].expand_as(data.cloth), data.cloth)}  # fmt: skip
    out = {"n_images": len(data), "methods": {}, "vs_baselines": {}}
    for method, scores in per.items():
        out["methods"][method] = {metric: bootstrap(values, seed=seed).to_dict() for metric, values in scores.items()}
    for baseline in BASELINES:
        diffs = {}
        for metric in ("ssim", "psnr", "l1"):
            d = paired_difference(per["model"][metric], per[baseline][metric], seed=seed)
            diffs[metric] = {**d.to_dict(), "better": (d.low > 0) if metric != "l1" else (d.high < 0)}
        ssim_model = out["methods"]["model"]["ssim"]
        diffs["ssim_intervals_separated"] = separated(*(_iv(x) for x in (ssim_model, out["methods"][baseline]["ssim"])))
        out["vs_baselines"][baseline] = diffs
    return out


def _iv(d: dict):
    from models.intervals import Interval

    return Interval.from_dict(d)


def finish(model, prepared, opts, metrics, log) -> dict:
    """Every val image scored once more for the kept weights, beside the baselines (val is the
    selection split: these are validation figures; test waits for `atelier eval --split test`)."""
    device = next(model.parameters()).device
    return {"val_scores": score(model, prepared.data["val"], prepared.data["baselines"], device, opts.seed)}


def summary(m: dict) -> str:
    s = m.get("val_scores") or m.get("scores")
    if not s:
        return "no scores"
    methods = s["methods"]

    def ssim(method):
        return str(_iv(methods[method]["ssim"]))

    verdict = ", ".join(f"{b.replace('_', '-')}: {'better (paired 95% interval above 0)' if s['vs_baselines'][b]['ssim']['better'] else 'not shown better'}"
                        for b in BASELINES)  # fmt: skip
    return (f"{m.get('split', 'val')} SSIM {ssim('model')} vs copy-paste {ssim('copy_paste')}, mean cloth "
            f"{ssim('mean_cloth')} ({s['n_images']} images, 95% intervals); {verdict}")  # fmt: skip


def contact_sheet(model, data, base: dict, target: Path, n: int = 8, device="cpu") -> Path:
    """A PNG, one row per person (the first ``n`` of ``data``): person | mask | prediction |
    truth | copy-paste baseline."""
    import numpy as np
    from PIL import Image, ImageDraw

    from models.extractor_train import copy_paste, predict
    from models.pretrained import write_atomic

    n = min(n, len(data))
    sub = type(data)(data.person[:n], data.mask[:n], data.cloth[:n], data.keys[:n])
    columns = [sub.person, sub.mask.expand(-1, 3, -1, -1), predict(model, sub, device), sub.cloth, copy_paste(sub.person, sub.mask, base["box"])]
    h, w = sub.person.shape[-2:]
    head = 16
    sheet = Image.new("RGB", (w * len(columns), head + h * n), "white")
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(("person", "mask", "prediction", "truth", "copy-paste")):
        draw.text((c * w + 3, 2), title, fill="black")
    for r in range(n):
        for c, images in enumerate(columns):
            pixels = (images[r].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            sheet.paste(Image.fromarray(pixels), (c * w, head + r * h))
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(target, lambda f: sheet.save(f, "PNG"))


def after_save(home, model, prepared, version, log) -> None:
    from store.files import reports_dir

    target = reports_dir(home) / f"extractor_{version}_val_contact.png"
    contact_sheet(model, prepared.data["val"], prepared.data["baselines"], target, device=next(model.parameters()).device)
    log(f"contact sheet (person | mask | prediction | truth | copy-paste, val persons): {target}")


def evaluate(home, path, log, split: str = "val") -> dict:
    """A saved extractor on every person of ``split`` (val by default; test only when asked),
    beside the copy-paste and mean-cloth baselines (from the train persons), with a contact sheet."""
    from flows.jobs.extractor_data import load_subset
    from models import default_device
    from models.extractor import GarmentExtractor
    from store.files import reports_dir

    if split not in ("val", "test"):
        raise ValueError(f"the extractor is evaluated on val or test, not {split!r}")
    model = GarmentExtractor.from_pretrained(path, device=default_device())
    size = (model.config.height, model.config.width)
    train, held = load_subset(home, "train", size), load_subset(home, split, size)
    if len(held.data) == 0:
        raise ValueError(f"no usable viton {split} person to evaluate on")
    base = baselines(train.data)
    out = {"split": split, "scores": score(model, held.data, base, default_device()), "skipped": held.skipped}
    target = reports_dir(home) / f"extractor_{Path(path).name}_{split}_contact.png"
    out["contact_sheet"] = str(contact_sheet(model, held.data, base, target, device=default_device()))
    out["summary"] = [summary(out)]
    return out


RECIPE = Recipe(
    name="extractor", help="VITON garment extractor: person photo + garment mask -> the flat garment (UNet, optional PatchGAN)",
    options=ExtractorOptions, prepare=prepare, build=build, train=train, finish=finish, summary=summary,
    evaluate=evaluate, after_save=after_save, splits=("val", "test"),
    selection="val persons (10% of the train persons): last weights, or with --keep-best the best val SSIM; "
              "test scored only by `atelier eval extractor --split test`",
    example="--losses l1+ssim --steps 300",
)  # fmt: skip
