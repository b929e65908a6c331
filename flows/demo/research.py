"""The demo's research-model stage: clip, the attribute classifier, the siamese structure model, the
VITON garment extractor and the text-to-image model.

`research_stage(home, settings)` trains each (or reuses the latest version when it was trained
with the same settings on the same lake rows), embeds ``vectors_clip`` and ``vectors_siamese``
(every dataset's items), and runs one query of each kind:

- clip: held-out R@K before / after fine-tuning vs random, a text search (vector and hybrid),
  the PCA of the clip space;
- attributes: per-head test accuracy and balanced accuracy vs the majority class, and
  ``predict-attributes`` on a few held-out images (CSV in the research format + labelled PNG);
- siamese: same-garment-in-another-colour recall@10 and colour-sensitivity of siamese vs resnet
  vs clip (reports/structure.json + PNG);
- extractor: val SSIM / PSNR / L1 beside the copy-paste and mean-cloth baselines, the contact
  sheet, and "shop the look" for one test person (its garment searched in the resnet space);
- diffusion: the val captions generated and scored (caption colour / category read back vs the
  shuffled-prompt chance and the real images' ceiling, resnet-feature FID vs an untrained UNet,
  CLIP score), their contact sheet, and `atelier generate` for one prompt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from flows.demo.settings import ResearchSettings
from flows.jobs.train import train_or_reuse

DEMO_QUERY = "long sleeve red striped top"
DEMO_PROMPT = "a woman in a red long-sleeved plain dress"


@contextmanager
def timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    """Record the wall time of the ``with`` block as ``seconds[stage]`` (rounded to 0.1 s)."""
    t0 = time.perf_counter()
    yield
    seconds[stage] = round(time.perf_counter() - t0, 1)


def _train(home: Path | str, kind: str, s: ResearchSettings, log: Callable[[str], None]) -> dict:
    return train_or_reuse(kind, home, log=log, **s.options(kind)).to_dict()


def clip_part(home: Path | str, s: ResearchSettings, log: Callable[[str], None]) -> dict:
    from flows.jobs.analyses import pca
    from flows.jobs.embed import embed_space
    from flows.jobs.search import search_text

    model = _train(home, "clip", s, log)
    embedded = embed_space(home, "clip", progress=False).to_dict()
    searches = {}
    for mode in ("vector", "hybrid"):
        found = search_text(home, DEMO_QUERY, k=s.k, mode=mode, where="dataset = 'polyvore'")
        searches[mode] = found.rows.select(["item_id", "dataset", "semantic_category", "text"]).to_pylist()
    return {"model": model, "embed": embedded, "query": DEMO_QUERY, "search": searches,
            "pca": asdict(pca(home, "clip"))}  # fmt: skip


def attributes_part(home: Path | str, s: ResearchSettings, log: Callable[[str], None]) -> dict:
    from flows.jobs.attributes import predict_attributes
    from flows.jobs.kinds.attributes import attribute_rows

    model = _train(home, "attributes", s, log)
    rows, _ = attribute_rows(home)
    test = [p for p, sp in zip(rows["image_path"].to_pylist(), rows["split"].to_pylist()) if sp == "test"][:8]
    reports = Path(home) / "reports"
    predicted = predict_attributes(model["path"], test, out_csv=reports / "attributes_demo.csv",
                                   out_image=reports / "attributes_demo.png")  # fmt: skip
    return {"model": model, "predicted": len(predicted.rows), "csv": str(predicted.csv_path),
            "image": str(predicted.image_path)}  # fmt: skip


def siamese_part(home: Path | str, s: ResearchSettings, log: Callable[[str], None]) -> dict:
    from flows.evaluation.structure import evaluate_structure
    from flows.jobs.embed import embed_space
    from store.models import NoModelError, latest_model

    model = _train(home, "siamese", s, log)
    embedded = embed_space(home, "siamese", progress=False).to_dict()
    spaces = {"siamese": model["path"]}
    for other in ("resnet", "clip"):
        try:
            spaces[other] = str(latest_model(home, other))
        except NoModelError:
            pass
    return {"model": model, "embed": embedded, "structure": evaluate_structure(home, spaces)}


def extractor_part(home: Path | str, s: ResearchSettings, log: Callable[[str], None]) -> dict:
    from flows.jobs.extract import extract_garment, shop_the_look
    from store import query
    from store.models import NoModelError, latest_model

    model = _train(home, "extractor", s, log)
    sheet = Path(home) / "reports" / f"extractor_{model['version']}_val_contact.png"
    out = {"model": model, "contact_sheet": str(sheet)}
    person = query(home, "select image_path from viton_samples where subset = 'test' and complete order by person limit 1").to_pylist()
    if person:
        found = extract_garment(home, person[0]["image_path"])
        out["extracted"] = {"person": person[0]["image_path"], "garment": str(found.path)}
        try:
            latest_model(home, "resnet")
            shop_the_look(home, found, "resnet", k=s.k, where="dataset = 'polyvore'")
            out["shop"] = {"space": "resnet", "items": [r["item_id"] for r in found.rows], "gallery": str(found.gallery)}
        except NoModelError:
            pass
    return out


def diffusion_part(home: Path | str, s: ResearchSettings, log: Callable[[str], None]) -> dict:
    from flows.jobs.generate import generate_images

    model = _train(home, "diffusion", s, log)
    made = generate_images(home, DEMO_PROMPT, n=4, seed=s.seed, version=model["version"])
    return {"model": model, "contact_sheet": str(Path(home) / "reports" / f"diffusion_{model['version']}_val.png"),
            "generated": {"prompt": DEMO_PROMPT, "paths": [str(p) for p in made.paths], "sheet": str(made.contact_sheet)}}  # fmt: skip


def research_stage(home: Path | str, settings: ResearchSettings = ResearchSettings(),
                   log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """clip, attributes, siamese, the extractor and diffusion (see the module docstring): one entry each,
    and ``seconds``: each part's wall time."""
    out: dict = {"seconds": {}}
    for name, part in (("clip", clip_part), ("attributes", attributes_part), ("siamese", siamese_part),
                       ("extractor", extractor_part), ("diffusion", diffusion_part)):  # fmt: skip
        with timed(out["seconds"], name):
            out[name] = part(home, settings, log)
    return out
