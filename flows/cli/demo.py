"""`atelier demo`: the whole pipeline on the embedded sample datasets, with a printed summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import DEFAULT_HOME, Home, NoPrefect, console, fail, out, print_ingest, progress_bar, run_job
from flows.demo.settings import DemoSettings, ResearchSettings

demo_app = typer.Typer(rich_markup_mode="markdown")


@demo_app.command()
def demo(
    home: Home = DEFAULT_HOME,
    seed: Annotated[int, typer.Option(help="Seed of the sample datasets.")] = 0,
    scale: Annotated[int, typer.Option(min=1, help="Size of the sample datasets.")] = 1,
    resnet_steps: Annotated[int, typer.Option(min=1, help="Training steps of the resnet classifier.")] = DemoSettings.resnet_steps,
    ae_steps: Annotated[int, typer.Option(min=1, help="Training steps of the autoencoder.")] = DemoSettings.ae_steps,
    outfit_steps: Annotated[int, typer.Option(min=1, help="Training steps of umBERT and WumBERT.")] = DemoSettings.outfit_steps,
    research_steps: Annotated[int | None, typer.Option(min=1, help="Training steps of clip, attributes, siamese (default 150 each), the extractor (default 60) and diffusion (default 200).")] = None,
    no_prefect: NoPrefect = None,
) -> None:
    """Run everything on the embedded sample datasets and print a summary.

    Writes sample releases of the five datasets to HOME/samples (reused when seed and scale
    match), ingests them into HOME/lake, trains the resnet and ae models briefly (reused when
    already trained with these settings), embeds the images into vectors_resnet and vectors_ae,
    and prints neighbours of one item, the PCA figures' paths and neighbour precision@10 against
    the samples' hidden ground truth, each with its baseline; then trains umBERT and WumBERT on
    the outfits, scores them on the FITB / compatibility questions next to the baselines, and
    completes one held-out outfit; then fine-tunes clip on the captions (held-out R@K before and
    after, vs random), embeds every dataset's items into vectors_clip and searches them by text,
    trains the attribute classifier (per-head accuracy vs majority class) and predicts a few
    held-out images, trains the siamese structure model and scores same-garment-in-another-colour
    retrieval for siamese vs resnet vs clip, trains the VITON garment extractor (val SSIM vs the
    copy-paste and mean-cloth baselines, a contact sheet) and extracts one test person's garment
    with shop the look, trains a small text-to-image model on the Synthesis captions (the val
    captions' colour and category read back from the generated images vs shuffled-prompt chance
    and the real images, resnet-feature FID vs an untrained model, a contact sheet) and generates
    images for one prompt; prints each stage's wall time. With a Prefect server configured (or --prefect)
    it is the flow run `demo` (ingest, train, embed and analyze flows inside it).

    Example: `atelier demo --home ./atelier-home`
    """
    if isinstance(home, str) and home.startswith("s3://"):
        fail(f"atelier demo builds a local home (its sample releases, galleries and generated images are files on this "
             f"machine): run it with --home DIR. On {home}, run the pipeline's commands: atelier ingest, train, embed, "
             "complete, search, api, sql, eval --home s3://...")  # fmt: skip
    settings = {"resnet_steps": resnet_steps, "ae_steps": ae_steps, "outfit_steps": outfit_steps}
    research = {f"{m}_steps": research_steps for m in ("clip", "attribute", "siamese", "extractor", "diffusion")} if research_steps else {}
    def direct() -> dict:
        from etl.samples import sample_image_count
        from flows.demo.run import run_demo

        with progress_bar() as p:
            task = p.add_task("drawing sample images", total=sample_image_count(scale))
            return run_demo(home, seed, scale, DemoSettings(**settings), on_item=lambda: p.advance(task),
                            log=console.print, progress=False, research=ResearchSettings(**research))  # fmt: skip

    result = run_job(no_prefect, direct, "flows.demo.flow:demo_flow", home=str(home), seed=seed, scale=scale, settings=settings, research=research)
    print_demo(Path(home), result)


def print_demo(home: Path, result: dict) -> None:
    """The demo's results: ingest counts, the lake summary, models, vectors, analyses."""
    from flows.cli.models import print_neighbours
    from flows.demo.summary import print_summary

    for ingested in result["ingest"].values():
        print_ingest(ingested)
    print_summary(home, out)
    print_models(result["models"])
    for space, e in result["embed"].items():
        out.print(f"vectors_{space} ({e['model_version']}): {e['n_embedded']} embedded, {e['n_skipped_unchanged']} unchanged, "
                  f"{e['n_failed']} failed")  # fmt: skip
    analysis = result["analyze"]
    for space, found in analysis["neighbours"].items():
        print_neighbours(found, space)
    for space, p in analysis["pca"].items():
        share = ", ".join(f"{v:.1%}" for v in p["explained_variance_ratio"][:2])
        out.print(f"PCA of {space}: PC1, PC2 explain {share}; figure: {p['png_path']}")
    print_quality(analysis["quality"])
    if "outfits" in result:
        print_outfits(result["outfits"])
    if "research" in result:
        print_research(result["research"])
    print_seconds({**result.get("seconds", {}), **result.get("research", {}).get("seconds", {})})
    out.print(f"\nQuery this home warm (search, neighbours, completion in milliseconds): `atelier api --home {home}`, "
              "then open http://127.0.0.1:8765/ in a browser (search, neighbours, outfit builder; API docs at /docs), or set ATELIER_API_URL=http://127.0.0.1:8765 for the CLI's query commands.")  # fmt: skip


def print_seconds(seconds: dict[str, float]) -> None:
    """Where the demo's time went, one figure per stage (absent under Prefect: its UI has them)."""
    if seconds:
        out.print("Stage wall times: " + ", ".join(f"{stage} {s:.0f} s" for stage, s in seconds.items()) + f" (total {sum(seconds.values()):.0f} s)")


def print_models(models: dict[str, dict]) -> None:
    """One line per model: how it came to be and its held-out score next to its baseline."""
    from flows.jobs import kinds

    for name, m in models.items():
        metrics, how = m["metrics"], "reused" if m["reused"] else "trained"
        out.print(f"{name} {m['version']} ({how}, {metrics['steps']} steps, {metrics.get('weights', 'random init')}): "
                  f"{kinds.get(name).summary(metrics)}")  # fmt: skip


def print_quality(report: dict) -> None:
    """Neighbour precision@k per space and attribute, against picking neighbours at random."""
    from models.intervals import Interval, separated

    t = Table("space", "neighbours share", "among", "queries", f"precision@{report['k']} [95%]", "random [95%]", "difference",
              title="Neighbour precision vs random (held-out sample items; hidden ground truth; 95% bootstrap intervals "
                    "over queries)", title_justify="left")  # fmt: skip
    for space, attributes in report["spaces"].items():
        for attribute, r in attributes.items():
            if not isinstance(r, dict):  # n_items, n_with_truth
                continue
            shown = [f"{r['precision_at_k']:.3f}", f"{r['random_baseline']:.3f}", ""]
            if "intervals" in r:  # a report written before intervals has none
                a, b = (Interval.from_dict(r["intervals"][key]) for key in ("precision_at_k", "random_baseline"))
                shown = [str(a), str(b), "separated" if separated(a, b) else "within the intervals"]
            t.add_row(space, attribute, "same category" if r.get("within") else "all items", str(r["n_queries"]), *shown)
    out.print(t)


def print_outfits(stage: dict) -> None:
    """umBERT / WumBERT: how they were trained, the FITB report, one completion."""
    from flows.cli.outfits import print_completion, print_fitb

    print_models(stage["models"])
    print_fitb(stage["fitb"])
    print_completion(stage["completion"])


def print_research(stage: dict) -> None:
    """clip, attributes, siamese and the extractor: each model's held-out score with its baseline and its query."""
    print_models({name: part["model"] for name, part in stage.items() if name != "seconds"})
    clip = stage["clip"]
    e = clip["embed"]
    out.print(f"vectors_clip: {e['n_embedded']} embedded, {e['n_skipped_unchanged']} unchanged (every dataset's items)")
    for mode, rows in clip["search"].items():
        found = "; ".join(f"{r['item_id']} ({r['text']})" for r in rows)
        out.print(f"search {clip['query']!r} ({mode}, Polyvore): {found}")
    out.print(f"PCA of clip: {clip['pca']['png_path']}")
    a = stage["attributes"]
    out.print(f"predict-attributes on {a['predicted']} held-out images: {a['csv']}, {a['image']}")
    structure = stage["siamese"]["structure"]
    out.print(f"structure retrieval (same garment in another colour) and colour sensitivity: {structure.get('json_path', '')}")
    for line in structure.get("lines", []):
        out.print(f"  {line}")
    extractor = stage.get("extractor")
    if extractor:
        out.print(f"extractor contact sheet (person | mask | prediction | truth | copy-paste): {extractor['contact_sheet']}")
        if extractor.get("extracted"):
            out.print(f"atelier extract {extractor['extracted']['person']} -> {extractor['extracted']['garment']}")
        if extractor.get("shop"):
            shop = extractor["shop"]
            out.print(f"shop the look in {shop['space']} (Polyvore): {', '.join(shop['items'])}; gallery: {shop['gallery']}")
    diffusion = stage.get("diffusion")
    if diffusion:
        print_generation(diffusion)


def print_generation(part: dict) -> None:
    """The text-to-image model's val scores, each beside its references, and its images."""
    from flows.jobs.diffusion_eval import reader_reads
    from models.intervals import Interval

    report = part["model"]["metrics"].get("val_scores") or {}
    t = Table(title=f"text-to-image: {report.get('n_images', 0)} val captions generated and read back")
    for column in ("figure", "generated", "shuffled prompt (chance)", "real images", "untrained model"):
        t.add_column(column)
    for reader, sets in report.get("faithfulness", {}).items():
        label = f"caption {reader} shown" + ("" if reader_reads(sets) else " (reader fails on real images too: says nothing)")
        t.add_row(label, *(str(Interval.from_dict(sets[k])) if k in sets else "" for k in ("generated", "shuffled", "real")), "")
    feats = report.get("features")
    if feats:
        sc = feats["scores"]
        floor = sc.get("real half vs half (floor)", {}).get("fid")
        t.add_row(f"FID ({feats['name']}; lower is better)", str(Interval.from_dict(sc["generated"]["fid"])), "",
                  f"{floor:.3f} (half vs half)" if floor is not None else "", str(Interval.from_dict(sc["untrained"]["fid"])))  # fmt: skip
    clip = report.get("clip_score")
    if clip:
        c = clip["scores"]
        t.add_row(f"CLIP score ({clip['model']})", str(Interval.from_dict(c["generated"])),
                  f"{Interval.from_dict(c['random real'])} (a random real image)", str(Interval.from_dict(c["real"])), "")  # fmt: skip
    out.print(t)
    out.print(f"diffusion contact sheet (caption | generated | real): {part['contact_sheet']}")
    made = part.get("generated")
    if made:
        out.print(f"atelier generate {made['prompt']!r} -> {made['sheet']}")
