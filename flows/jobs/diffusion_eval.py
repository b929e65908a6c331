"""Generated images scored against their prompts and against real images, each figure beside a
reference measured in the same run (`generation_report`).

For ``n`` held-out captions the model generates one image each (seeded). Beside them:

- **real**: the held-out images of the same captions (the ceiling of every reader);
- **shuffled**: the model's images for another held-out caption (the captions rolled by one),
  scored against the original caption: what a reader gives when the image ignores the prompt;
- **untrained**: the same architecture with a random UNet (same text tower, same seed);
- **base** (a fine-tuned Stable Diffusion checkpoint only): the base checkpoint's UNet as it was.

Figures (95% bootstrap intervals over the images):

- FID / KID / IS on features of the home's latest trained ``resnet`` (its embedding layer; IS on
  its category head), named "(atelier-resnet vN features)": never called FID, which is defined on
  Inception features. Generated and untrained vs the real images; the floor is the real images of
  one half against the other half.
- With ``inception_weights`` (a local file, `models.inception`): FID / KID on Inception-v3 pool
  features and IS on its class probabilities, the same sets (``report["inception"]``), named after
  the network: the FID Inception (TF 2015-12-05 weights: the FID of published figures) or a
  torchvision Inception-v3 (not comparable with published FIDs). Beside them, the IS of the real
  images and the real half-vs-half floor.
- CLIP score: 100 x max(cos, 0) between an image and its caption in the home's latest ``clip``
  space (generated, real = ceiling, a random real image = chance).
- Caption faithfulness: how often a reader finds the caption's colour (`garment_colour` on the
  Synthesis palette), sleeve length (the latest ``attributes`` model's sleeve head) and category
  (the majority of the 5 nearest real train images in the resnet space) in the image; for
  generated, real and shuffled images.

A reader whose model the home lacks is left out and named in ``missing``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

K_CATEGORY = 5  # nearest real train images that vote for a generated image's category


def _batches(fn, images, batch_size: int = 64) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([fn(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


def _generate(model, prompts: list[str], steps: int, guidance: float, seed: int, batch_size: int = 32):
    import torch

    out = [model.generate(prompts[i : i + batch_size], steps=steps, guidance=guidance, seed=seed + i)
           for i in range(0, len(prompts), batch_size)]  # fmt: skip
    return torch.cat(out)


def _resize(images, size: int):
    import torch.nn.functional as F

    if images.shape[-1] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _iv(values) -> dict:
    from models.intervals import bootstrap

    return bootstrap(np.asarray(values, dtype=np.float64)).to_dict()


def _latest(home: Path, kind: str):
    from store.models import NoModelError, latest_model

    try:
        return latest_model(home, kind)
    except NoModelError:
        return None


def feature_scores(home: Path, sets: dict, real) -> tuple[dict, dict]:
    """FID / KID / IS on the resnet's features: ({set: {fid, kid, is}}, {"name", "train_features"})."""
    import torch

    from models import load_pretrained
    from models.generation_stats import frechet_distance, inception_score, kernel_distance, with_interval

    path = _latest(home, "resnet")
    if path is None:
        return {}, {}
    net = load_pretrained(path).eval()
    size = net.config.image_size

    def feats(x):
        return net.features(_resize(x, size)).float().numpy()

    def probs(x):
        return torch.softmax(net(_resize(x, size)).float(), 1).numpy()

    real_f = _batches(feats, real)
    half = len(real_f) // 2
    out = {}
    for name, images in sets.items():
        f = _batches(feats, images)
        out[name] = {"fid": with_interval(frechet_distance, f, real_f).to_dict(),
                     "kid": with_interval(kernel_distance, f, real_f).to_dict(),
                     "is": inception_score(_batches(probs, images), splits=min(10, len(images)))[0]}  # fmt: skip
    if half >= 2:
        out["real half vs half (floor)"] = {"fid": frechet_distance(real_f[:half], real_f[half:]),
                                            "kid": kernel_distance(real_f[:half], real_f[half:])}  # fmt: skip
    return out, {"name": f"atelier-resnet {path.name} features", "net": net, "feats": feats}


def clip_scores(home: Path, captions: list[str], sets: dict) -> dict:
    """{set: CLIP score interval} (100 x max(cos, 0) with the caption), or {} without a clip model."""
    from models import load_pretrained

    path = _latest(home, "clip")
    if path is None:
        return {}
    clip = load_pretrained(path).eval()
    import torch

    with torch.no_grad():
        text = clip.embed_text(captions).numpy()
    out = {}
    for name, images in sets.items():
        img = _batches(clip.embed, images)
        out[name] = _iv(100 * np.clip((img * text).sum(1), 0, None))
    return {"model": f"clip {path.name}", "scores": out}


def faithfulness(home: Path, rows: dict, sets: dict, features: dict) -> dict:
    """{reader: {set: share of images showing the caption's value (interval)}}."""
    import torch

    from etl.samples.synthesis import COLOURS
    from models import load_pretrained
    from models.generation_stats import garment_colour

    out: dict = {}
    colours = [COLOURS[c - 1][0] if c and 1 <= c <= len(COLOURS) else None for c in rows["color"]]
    out["colour"] = {name: _iv([garment_colour(img.permute(1, 2, 0).numpy(), COLOURS) == want
                                for img, want in zip(images, colours)]) for name, images in sets.items()}  # fmt: skip
    path = _latest(home, "attributes")
    if path is not None:
        model = load_pretrained(path).eval()
        size = getattr(model.config, "image_size", 64)
        with torch.no_grad():
            read = {name: _batches(lambda x: model(_resize(x, size))["sleeve_length"].argmax(1).numpy(), images)
                    for name, images in sets.items()}  # fmt: skip
        want = np.asarray(rows["sleeve"]) - 1  # Synthesis sleeve_ 1-4 = the DeepFashion sleeve_length classes 0-3
        out["sleeve"] = {name: _iv(r == want) for name, r in read.items()}
    train_f = features.get("train_features")
    if train_f is not None:
        feats, train_cat = features["feats"], np.asarray(features["train_category"])
        bank = torch.nn.functional.normalize(torch.from_numpy(train_f), dim=1)
        want = np.asarray(rows["category"])

        def category(images):
            q = torch.nn.functional.normalize(torch.from_numpy(_batches(feats, images)), dim=1)
            top = (q @ bank.T).topk(min(K_CATEGORY, len(bank)), dim=1).indices.numpy()
            return np.array([np.bincount(train_cat[t]).argmax() for t in top])

        out["category"] = {name: _iv(category(images) == want) for name, images in sets.items()}
    return out


def generation_report(home: Path | str, model, real_images, rows: dict, n: int = 64, steps: int = 25,
                      guidance: float = 3.0, seed: int = 0, log: Callable[[str], None] = print,
                      tag: str | None = None, inception_weights: str | None = None) -> dict:  # fmt: skip
    """Generate for the first ``n`` captions of ``rows`` (with ``real_images``, uint8) and score
    them (see the module docstring); a contact sheet under reports/ when ``tag`` is given; true
    FID / KID / IS with ``inception_weights`` (a local Inception-v3 file)."""
    import copy

    import torch

    from models.diffusion import build_unet
    from store.files import home_path, reports_dir

    home = home_path(home)  # an s3:// home stays a URI (its contact sheet: a local folder, reports_dir)
    n = min(n, len(rows["caption"]))
    rows = {k: v[:n] for k, v in rows.items()}
    captions = rows["caption"]
    real = real_images[:n].float() / 255
    torch.manual_seed(seed)
    if hasattr(model, "untrained_copy"):  # a Stable Diffusion model: a random UNet, its VAE and text encoder shared
        untrained = model.untrained_copy()
    else:
        untrained = copy.deepcopy(model)
        untrained.unet = build_unet(model.config).to(model.device)
    shuffled_prompts = captions[1:] + captions[:1]
    sets = {"generated": _generate(model, captions, steps, guidance, seed),
            "untrained": _generate(untrained, captions, steps, guidance, seed),
            "shuffled": _generate(model, shuffled_prompts, steps, guidance, seed)}  # fmt: skip
    if hasattr(model, "base_copy"):  # a fine-tuned Stable Diffusion checkpoint: its base before fine-tuning
        sets["base"] = _generate(model.base_copy(), captions, steps, guidance, seed)
    distributions = {k: v for k, v in sets.items() if k != "shuffled"}  # what FID / KID / IS compare with the real images
    report: dict = {"n_images": n, "sample_steps": steps, "guidance": guidance, "seed": seed, "missing": []}
    scores, features = feature_scores(home, distributions, real)
    if scores:
        report["features"] = {"name": features["name"], "scores": scores}
        # the neighbours at the generated images' resolution (blurred alike), at most the resnet's input (memory)
        train = _train_bank(home, min(model.config.resolution, features["net"].config.image_size), seed)
        if train is not None:
            features["train_features"] = _batches(features["feats"], train[0].float() / 255)
            features["train_category"] = train[1]
    else:
        report["missing"].append("resnet (FID / KID / IS-style scores and the category reader): `atelier train resnet`")
    if inception_weights:
        report["inception"] = inception_scores(inception_weights, distributions, real)
    clip = clip_scores(home, captions, {"generated": sets["generated"], "real": real, "random real": real.roll(1, 0)})
    if clip:
        report["clip_score"] = clip
    else:
        report["missing"].append("clip (CLIP score): `atelier train clip`")
    report["faithfulness"] = faithfulness(home, rows, {"generated": sets["generated"], "real": real,
                                                       "shuffled": sets["shuffled"]}, features)  # fmt: skip
    if "sleeve" not in report["faithfulness"]:
        report["missing"].append("attributes (the sleeve reader): `atelier train attributes`")
    if tag:
        report["contact_sheet"] = str(contact_sheet(captions, sets["generated"], real, reports_dir(home) / f"diffusion_{tag}.png"))
        log(f"contact sheet (prompt | generated | real): {report['contact_sheet']}")
    log(report_summary(report, "val"))
    return report


def inception_scores(weights: str, sets: dict, real) -> dict:
    """FID / KID (pool features) and IS (class probabilities) of each set vs ``real`` on the Inception-v3
    of the local file ``weights`` (`models.inception`), with the real images' IS and half-vs-half floor."""
    import torch

    from models import default_device
    from models.generation_stats import frechet_distance, inception_score, kernel_distance, with_interval
    from models.inception import load_inception

    net = load_inception(weights).to(default_device())

    def run(images, batch_size: int = 32):
        with torch.no_grad():
            out = [net(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
        return torch.cat([o[0] for o in out]).cpu().numpy(), torch.cat([o[1] for o in out]).cpu().numpy()

    real_f, real_p = run(real)
    scores: dict = {}
    for name, images in sets.items():
        f, p = run(images)
        scores[name] = {"fid": with_interval(frechet_distance, f, real_f).to_dict(),
                        "kid": with_interval(kernel_distance, f, real_f).to_dict(),
                        "is": inception_score(p, splits=min(10, len(p)))[0]}  # fmt: skip
    scores["real"] = {"is": inception_score(real_p, splits=min(10, len(real_p)))[0]}
    half = len(real_f) // 2
    if half >= 2:
        scores["real half vs half (floor)"] = {"fid": frechet_distance(real_f[:half], real_f[half:]),
                                               "kid": kernel_distance(real_f[:half], real_f[half:])}  # fmt: skip
    return {"name": net.name, "kind": net.kind, "weights": str(weights), "n_images": len(real_f), "scores": scores}


def _train_bank(home: Path, size: int, seed: int):
    """(uint8 images, category codes) of the train captions: the category reader's neighbours."""
    from flows.jobs.diffusion_data import caption_rows, decode

    rows = caption_rows(home, seed)["train"]
    images, kept, _ = decode(rows, size)
    return (images, [rows["category"][i] for i in kept]) if kept else None


def contact_sheet(captions: list[str], generated, real, target: Path, n: int = 8) -> Path:
    """A PNG, one row per caption: the caption | the generated image | the real image."""
    from PIL import Image, ImageDraw

    from models.pretrained import write_atomic

    n, cell, text_w = min(n, len(captions)), 96, 320
    sheet = Image.new("RGB", (text_w + 2 * cell, n * cell), "white")
    draw = ImageDraw.Draw(sheet)
    for i in range(n):
        draw.multiline_text((4, i * cell + 4), "\n".join(wrap(captions[i], 44)), fill="black")
        for j, img in enumerate((generated[i], real[i])):
            tile = to_image(img).resize((cell, cell))
            sheet.paste(tile, (text_w + j * cell, i * cell))
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, lambda f: sheet.save(f, format="PNG"))
    return target


def to_image(image):
    """A (3, H, W) float tensor in [0, 1] as an RGB PIL image (8-bit, rounded)."""
    from PIL import Image

    return Image.fromarray((image.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8))


def wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line] if line else lines


def report_summary(report: dict, split: str = "val") -> str:
    """One line: colour faithfulness generated vs shuffled vs real, and the feature distance."""
    from models.intervals import Interval

    def s(d):
        return str(Interval.from_dict(d))

    parts = []
    colour = report.get("faithfulness", {}).get("colour")
    if colour:
        parts.append(f"caption colour shown: generated {s(colour['generated'])} vs shuffled-prompt chance "
                     f"{s(colour['shuffled'])}, real {s(colour['real'])}")  # fmt: skip
    feats = report.get("features")
    if feats:
        sc = feats["scores"]
        parts.append(f"FID ({feats['name']}) {s(sc['generated']['fid'])} vs untrained {s(sc['untrained']['fid'])}")
    inc = report.get("inception")
    if inc:
        sc = inc["scores"]
        base = f", base {s(sc['base']['fid'])}" if "base" in sc else ""
        parts.append(f"FID ({inc['name']}) {s(sc['generated']['fid'])} vs untrained {s(sc['untrained']['fid'])}{base}, "
                     f"IS {sc['generated']['is']:.2f} (real {sc['real']['is']:.2f})")  # fmt: skip
    return f"{split}, {report['n_images']} captions: " + "; ".join(parts)


def reader_reads(sets: dict) -> bool:
    """Whether a faithfulness reader reads the real images at all: its ceiling (real) is above its
    chance (shuffled), intervals apart. A reader that fails this says nothing about generated images
    (e.g. the attribute model's sleeve head, trained on DeepFashion product photos, on Synthesis
    figures): reports show it, marked."""
    from models.intervals import Interval, separated

    real, chance = Interval.from_dict(sets["real"]), Interval.from_dict(sets["shuffled"])
    return real.value > chance.value and separated(real, chance)
