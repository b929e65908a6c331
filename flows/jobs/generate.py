"""`atelier generate`: images for a prompt from the latest (or a named) ``diffusion`` model.

The images are PNGs under ``HOME/generated/<model version>/`` named by a hash of the prompt, the
seed and the image's position (never by the prompt itself: a prompt is untrusted text), with a
contact sheet under ``HOME/reports/`` and a ``manifest.jsonl`` line per image (prompt, seed, index,
model version, path). The same prompt, seed and model give the same images. Each call also
records its images in the lake dataset ``generated`` (`flows.jobs.generated`: table ``images``,
item_id ``<model version>/<hash>_<i>``, one row per image however often it is generated).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

MAX_PROMPT_CHARS = 1000  # longer prompts are refused (the text tower keeps at most its max_length tokens anyway)
MAX_IMAGES = 64  # images per call


@dataclass
class Generation:
    prompt: str
    seed: int
    model: str  # "diffusion v2"
    paths: list[Path] = field(default_factory=list)  # one PNG per image
    contact_sheet: Path | None = None
    n_truncated: int = 0  # 1 when the prompt was longer than the text tower takes (its end was cut)
    max_length: int = 0  # the text tower's token limit
    item_ids: list[str] = field(default_factory=list)  # the images' rows in lake dataset `generated`
    lake_rows: int = 0  # rows of generated_images after this call


def check_prompt(prompt: str) -> str:
    """The prompt stripped; ValueError for an empty or over-long one."""
    text = (prompt or "").strip()
    if not text:
        raise ValueError("the prompt is empty: describe the garment, e.g. \"a woman in a red long-sleeved dress\"")
    if len(text) > MAX_PROMPT_CHARS:
        raise ValueError(f"the prompt is {len(text)} characters long; at most {MAX_PROMPT_CHARS}")
    return text


def load_diffusion(home: Path | str, version: str | None = None):
    from models import default_device
    from models.diffusion_sd import load_text_to_image
    from store.models import latest_model, model_dir

    path = model_dir(home, "diffusion", version) if version else latest_model(home, "diffusion")
    return load_text_to_image(path, device=default_device()), path  # the pixel-space model or a fine-tuned Stable Diffusion


def generate_images(home: Path | str, prompt: str, n: int = 4, steps: int = 25, guidance: float = 3.0, seed: int = 0,
                    version: str | None = None, model=None) -> Generation:  # fmt: skip
    """``n`` images of ``prompt`` (see the module docstring); ``model``: an already loaded (model, path)."""
    from flows.jobs.diffusion_eval import to_image
    from flows.jobs.generated import generated_folder, image_rows, record
    from models.pretrained import write_atomic
    from store.files import home_path, reports_dir

    home = home_path(home)  # an s3:// home stays a URI: its images and contact sheet go to a local folder
    text = check_prompt(prompt)
    if not 1 <= n <= MAX_IMAGES:
        raise ValueError(f"-n must be between 1 and {MAX_IMAGES}, got {n}")
    net, path = model or load_diffusion(home, version)
    encoded = net.encode_prompts([text])  # counts truncation (and refuses what the tokenizer cannot take)
    images = net.generate([text] * n, steps=steps, guidance=guidance, seed=seed)
    key = hashlib.sha1(f"{text}\0{seed}\0{steps}\0{guidance}".encode()).hexdigest()[:12]
    folder = generated_folder(home, path.name)  # resolved; refused when it leads out of the home
    out = Generation(text, seed, f"diffusion {path.name}", n_truncated=encoded.n_truncated, max_length=net.config.max_length)
    lines = []
    for i, img in enumerate(images):
        target = folder / f"{key}_{i}.png"
        write_atomic(target, lambda f, im=to_image(img): im.save(f, format="PNG"))
        out.paths.append(target)
        lines.append(json.dumps({"prompt": text, "seed": seed, "index": i, "steps": steps, "guidance": guidance,
                                 "model_version": path.name, "path": str(target)}))  # fmt: skip
    with open(folder / "manifest.jsonl", "a") as f:
        f.write("".join(line + "\n" for line in lines))
    rows = image_rows(home, out.paths, prompt=text, seed=seed, steps=steps, guidance=guidance, model_version=path.name)
    out.lake_rows, out.item_ids = record(home, rows), rows["item_id"].to_pylist()
    out.contact_sheet = strip(text, images, reports_dir(home) / f"generate_{key}.png")
    return out


def strip(prompt: str, images, target: Path, cell: int = 128) -> Path:
    """A PNG: the prompt (wrapped) above the images side by side."""
    from PIL import Image, ImageDraw

    from flows.jobs.diffusion_eval import to_image, wrap
    from models.pretrained import write_atomic

    lines = wrap(prompt, max(20, len(images) * cell // 7))[:4]
    top = 14 * len(lines) + 8
    sheet = Image.new("RGB", (max(1, len(images)) * cell, top + cell), "white")
    ImageDraw.Draw(sheet).multiline_text((4, 4), "\n".join(lines), fill="black")
    for i, img in enumerate(images):
        tile = to_image(img)
        sheet.paste(tile.resize((cell, cell), Image.NEAREST), (i * cell, top))
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(target, lambda f: sheet.save(f, format="PNG"))
