"""`atelier extract`: the garment a person wears, flat on white (the latest ``extractor`` model),
and "shop the look": that garment embedded into a space and its nearest catalogue items.

The garment mask comes from the person's parse map (palette LIP labels 5/6/7): ``parse`` given,
or, for a person image the lake holds (`viton_samples`), its own parse map. The extracted garment
is written as a PNG; with ``space`` it is embedded by that space's latest model (the same
resize as the embedding jobs: ``size x size``) and searched with ``where`` inside the search,
then shown in an HTML gallery (the garment as the query card).
"""

from __future__ import annotations

import functools
import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from flows.jobs.extractor_data import person_example
from store import query
from store.files import local_dir, reports_dir


@dataclass
class Extraction:
    garment: Image.Image  # the extracted garment, RGB, at the model's size
    path: Path | None  # the PNG written (None when not written)
    model: str  # "extractor v3"
    parse: str  # the parse map the mask came from
    space: str | None = None  # the space searched (shop the look)
    rows: list[dict] = field(default_factory=list)  # nearest items: item_id, semantic_category, title, distance, image_path
    where: str | None = None
    gallery: Path | None = None
    timings_ms: dict = field(default_factory=dict)


def lake_parse(home: Path | str, person: Path | str) -> str | None:
    """The parse map the lake records for a VITON person image (matched by its real path), or None."""
    try:
        rows = query(home, "select parse_path from viton_samples where image_path = ? and parse_exists limit 1",
                     [os.path.realpath(person)]).to_pylist()  # fmt: skip
    except Exception:  # noqa: BLE001 - no viton table in this home: there is no recorded parse map
        return None
    return rows[0]["parse_path"] if rows else None


def load_extractor(home: Path | str, version: str | None = None):
    from models import default_device
    from models.extractor import GarmentExtractor
    from store.models import latest_model, model_dir

    path = model_dir(home, "extractor", version) if version else latest_model(home, "extractor")
    return GarmentExtractor.from_pretrained(path, device=default_device()), path


def extract_garment(home: Path | str, person: Path | str, parse: Path | str | None = None, out: Path | str | None = None,
                    version: str | None = None, model=None) -> Extraction:  # fmt: skip
    """The garment ``person`` wears (see the module docstring); written to ``out`` (default
    ``<home>/reports/extract_<name>.png``)."""
    import torch

    t0 = time.perf_counter()
    parse = parse or lake_parse(home, person)
    if parse is None:
        raise ValueError(f"{person}: no parse map given and none recorded in the lake for this image: "
                         "give --parse PARSE_PNG (a palette LIP parse map of the same image)")  # fmt: skip
    if model is None:
        model, path = load_extractor(home, version)
    else:
        path = Path(getattr(model, "path", "extractor"))
    size = (model.config.height, model.config.width)
    pixels, mask = person_example(str(person), str(parse), size)  # ParseModeError / EmptyMaskError / size mismatch name the file
    t1 = time.perf_counter()
    device = next(model.parameters()).device
    with torch.inference_mode():
        x = torch.from_numpy(pixels).permute(2, 0, 1).float()[None].to(device) / 255
        m = torch.from_numpy(mask).float()[None, None].to(device)
        y = model(x, m)[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    garment = Image.fromarray((y * 255).round().astype(np.uint8), "RGB")
    t2 = time.perf_counter()
    target = Path(out) if out else reports_dir(home) / f"extract_{_safe(Path(person).stem)}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    garment.save(target)
    return Extraction(garment, target, f"extractor {path.name}", str(parse),
                      timings_ms={"decode": (t1 - t0) * 1000, "forward": (t2 - t1) * 1000})  # fmt: skip


@functools.lru_cache(maxsize=4)
def _space_model(model_dir: str, mtime_ns: int):
    from models import default_device, load_pretrained

    return load_pretrained(model_dir, device=default_device())


def embed_image(home: Path | str, space: str, image: Image.Image) -> np.ndarray:
    """One image's vector in ``space`` (its latest model, kept loaded per version; the embedding
    jobs' resize)."""
    import torch

    from models import embed_batch
    from store.models import latest_model

    model_dir = latest_model(home, space)  # NoModelError naming `atelier train SPACE`
    model = _space_model(str(model_dir), (model_dir / "config.json").stat().st_mtime_ns)
    size = int(model.config.image_size)
    pixels = np.array(image.convert("RGB").resize((size, size), Image.BILINEAR))
    return embed_batch(model, torch.from_numpy(pixels).permute(2, 0, 1).float()[None] / 255)[0]


def shop_the_look(home: Path | str, extraction: Extraction, space: str, k: int = 10, where: str | None = None,
                  gallery: bool = True) -> Extraction:  # fmt: skip
    """The ``k`` items of ``space`` nearest to the extracted garment, ``where`` applied inside the
    search; with ``gallery`` an HTML page under reports/ (the garment as the query)."""
    from flows.jobs.analyses import item_details, write_gallery
    from store import VectorStore

    t0 = time.perf_counter()
    vector = embed_image(home, space, extraction.garment)
    hits = VectorStore(home).search(space, vector, k=k, where=where).to_pylist()
    details = item_details(home, [h["item_id"] for h in hits])
    extraction.rows = [{"item_id": h["item_id"], "semantic_category": h["semantic_category"], "distance": float(h["_distance"]),
                        **{f: details.get(h["item_id"], {}).get(f) for f in ("title", "image_path")}} for h in hits]  # fmt: skip
    extraction.space, extraction.where = space, where
    extraction.timings_ms["search"] = (time.perf_counter() - t0) * 1000
    if gallery:
        query_card = {"item_id": f"extracted garment ({extraction.model})", "semantic_category": "extracted",
                      "title": Path(extraction.path).name if extraction.path else "", "image_path": str(extraction.path)}  # fmt: skip
        name = _safe(Path(extraction.path).stem if extraction.path else "extract")
        extraction.gallery = write_gallery(reports_dir(home) / f"shop_{name}_{space}.html", space, query_card, extraction.rows,
                                           where, heading=f"Shop the look: items of {space} nearest to the extracted garment")  # fmt: skip
    return extraction


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:80]


EXTRACTED_DATASET = "viton_extracted"  # the dataset value of extracted garments in a space (no lake embed prunes it)


def extracted_rows(home: Path | str, version: str | None = None, batch_size: int = 16, log=print):
    """The garment of every usable VITON person, extracted by the latest (or ``version``)
    extractor into ``<home>/derived/extracted/<version>/<subset>/<stem>.png``, as embed rows
    (`flows.jobs.embed_sources.ROW_COLUMNS`): item_id ``<subset>/extracted/<stem>``, dataset
    ``viton_extracted``, image_sha1 the PNG's SHA-1. Persons that cannot be used are skipped
    and logged (`flows.jobs.extractor_data.load_subset`)."""
    import hashlib

    import pyarrow as pa
    import torch

    from flows.jobs.embed_sources import ROW_SCHEMA
    from flows.jobs.extractor_data import SUBSETS, load_subset
    from models.extractor_train import predict

    model, path = load_extractor(home, version)
    size = (model.config.height, model.config.width)
    folder = local_dir(home, "derived", "extracted", path.name)  # an object-store home's: a local folder
    rows = []
    device = next(model.parameters()).device
    for subset in SUBSETS:
        decoded = load_subset(home, subset, size)
        for s in decoded.skipped:
            log(f"extract: skipped {s['key']}: {s['reason']}")
        garments = predict(model, decoded.data, device, batch_size) if len(decoded.data) else torch.empty(0)
        for key, garment in zip(decoded.data.keys, garments):
            split, person = key.split("/", 1)
            stem = Path(person).stem
            image = Image.fromarray((garment.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), "RGB")
            data = png_bytes(image)
            target = folder / subset / f"{stem}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            rows.append({"item_id": f"{subset}/extracted/{stem}", "dataset": EXTRACTED_DATASET, "semantic_category": "tops",
                         "split": split, "image_path": str(target), "image_sha1": hashlib.sha1(data).hexdigest(),
                         "h5_index": None, "crop": None, "text": None})  # fmt: skip
    if not rows:
        raise ValueError("no usable viton person to extract a garment from: ingest viton first")
    log(f"extracted {len(rows)} garments with extractor {path.name} into {folder}")
    return pa.Table.from_pylist(rows, schema=ROW_SCHEMA)


def extracted_vs_cloth(home: Path | str, space: str, seed: int = 0) -> dict:
    """Cosine between each person's extracted garment and its own flat cloth in ``space``, next
    to the mean cosine to the other persons' clothes (the random-cloth baseline), with 95%
    bootstrap intervals over the persons and R@1 (the own cloth nearest among all clothes)."""
    from models.intervals import bootstrap, exact, paired_difference
    from store import VectorStore

    table = VectorStore(home).table(space).to_lance().to_table(columns=["item_id", "vector"]).to_pylist()
    vectors = {r["item_id"]: np.asarray(r["vector"], np.float32) for r in table}
    pairs = sorted(k.replace("/extracted/", "/cloth/") for k in vectors if "/extracted/" in k)
    pairs = [c for c in pairs if c in vectors]
    if not pairs:
        raise ValueError(f"vectors_{space} holds no extracted garment with its cloth: run `atelier embed {space} --dataset viton` "
                         f"and `atelier embed {space} --source extracted`")  # fmt: skip
    ext = np.stack([vectors[c.replace("/cloth/", "/extracted/")] for c in pairs])
    cloth = np.stack([vectors[c] for c in pairs])
    ext /= np.linalg.norm(ext, axis=1, keepdims=True)
    cloth /= np.linalg.norm(cloth, axis=1, keepdims=True)
    sims = ext @ cloth.T
    own = np.diag(sims)
    n = len(pairs)
    others = (sims.sum(1) - own) / max(n - 1, 1)
    hits = (sims.argmax(1) == np.arange(n)).astype(float)
    return {"space": space, "n_persons": n,
            "own_cloth_cosine": bootstrap(own, seed=seed).to_dict(), "random_cloth_cosine": bootstrap(others, seed=seed).to_dict(),
            "own_minus_random": paired_difference(own, others, seed=seed).to_dict(),
            "r1_own_cloth": bootstrap(hits, seed=seed).to_dict(), "r1_random": exact(1 / n, n).to_dict()}  # fmt: skip


def write_extracted_report(home: Path | str, space: str) -> tuple[dict, Path]:
    """`extracted_vs_cloth` written to ``<home>/reports/extracted_vs_cloth_<space>.json``, with
    its figures as text (value [95% interval])."""
    import json

    from models.intervals import Interval
    from store.files import report_path, write_text

    report = extracted_vs_cloth(home, space)
    for key, name in (("own_cloth_cosine", "own_text"), ("random_cloth_cosine", "random_text"), ("r1_own_cloth", "r1_text")):
        report[name] = str(Interval.from_dict(report[key]))
    target = report_path(home, f"extracted_vs_cloth_{space}.json")
    write_text(target, json.dumps(report, indent=2) + "\n")
    return report, target
