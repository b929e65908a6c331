"""The README's result tables, rendered from the committed files that hold their figures.

    python bench/readme_tables.py            # rewrite every table in README.md from its file
    python bench/readme_tables.py --check    # exit 1 (and show the difference) if one differs

A table in README.md sits between ``<!-- table NAME -->`` and ``<!-- /table -->``; the first line
inside says which file holds its figures and which command regenerates that file. ``TABLES``
maps NAME to (file, command, renderer). ``tests/test_readme_figures.py`` runs ``--check``, so a
README figure cannot drift from its file. Figures are shown as ``value [low, high]`` (95%
interval) or ``value (exact)`` (a baseline without sampling error), as `models.intervals` prints.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models.intervals import Interval, separated

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def iv(d: dict | None) -> str:
    """An interval dict as the reports print it (`models.intervals.Interval`); a value constant over
    the items (low == high == value) is shown as exact; '' when absent."""
    if not d:
        return ""
    i = Interval.from_dict(d)
    return f"{i.value:.3f} (exact)" if i.low == i.high == i.value else str(i)


def apart(a: dict, b: dict) -> bool:
    return separated(Interval.from_dict(a), Interval.from_dict(b))


def verdict(a: dict, b: dict) -> str:
    return "separated" if apart(a, b) else "within the intervals"


def rows(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in body]


# --- bench/results/demo_quality.json (python bench/bench_demo_quality.py) -------------------------


def demo_models(d: dict) -> list[str]:
    r, a = d["models"]["resnet"]["intervals"], d["models"]["ae"]["intervals"]
    n_r, n_a = r["val_accuracy"]["n"], a["val_ssim"]["n"]
    return rows(["model (demo settings)", "held-out metric", "score [95%]", "baseline [95%]", "score vs baseline"], [
        ["`resnet` (random init, 64 px, 40 steps)", f"category accuracy, {n_r} val items", iv(r["val_accuracy"]),
         f"majority class {iv(r['val_majority_baseline'])}", verdict(r["val_accuracy"], r["val_majority_baseline"])],
        ["`ae` (64 px, 100 steps)", f"reconstruction SSIM, {n_a} val items", iv(a["val_ssim"]),
         f"mean training image {iv(a['baseline_ssim'])}", verdict(a["val_ssim"], a["baseline_ssim"])],
    ])  # fmt: skip


NEIGHBOUR_LABELS = {"category": "same category", "sleeve": "same sleeve length (same category)",
                    "pattern": "same pattern (same category)"}  # fmt: skip


def demo_neighbours(d: dict) -> list[str]:
    q = d["neighbour_precision"]
    body = []
    for space, labels in q["spaces"].items():
        for label, r in labels.items():
            if not isinstance(r, dict):
                continue
            p, b = r["intervals"]["precision_at_k"], r["intervals"]["random_baseline"]
            body.append([f"`{space}`", NEIGHBOUR_LABELS.get(label, label), str(r["n_queries"]), iv(p), iv(b), verdict(p, b)])
    return rows(["space", f"neighbours sharing (of {q['k']})", "queries", f"precision@{q['k']} [95%]", "random [95%]", "precision vs random"], body)


def demo_clip(d: dict) -> list[str]:
    m = d["models"]["clip"]
    first, last = m["before"]["intervals"], m["after"]["intervals"]
    n = last["t2i_r1"]["n"]
    body = []
    for way, name in (("t2i", "text -> image"), ("i2t", "image -> text")):
        for k in (1, 5, 10):
            key = f"{way}_r{k}"
            if key in last:
                body.append([f"{name} R@{k}", iv(first.get(key)), iv(last[key]), iv(last[f"random_r{k}"]),
                             verdict(last[key], first[key]) if key in first else ""])  # fmt: skip
    return rows([f"held out (Synthesis test, n {n})", "before fine-tuning (random init)", f"after {m['steps']} steps",
                 "random", "after vs before"], body)  # fmt: skip


def demo_attributes(d: dict) -> list[str]:
    m = d["models"]["attributes"]
    heads, bench = m["test"]["intervals"]["heads"], m["test"]["intervals"]["benchmark"]
    body = []
    for head, r in heads.items():
        body.append([f"{head}", iv(r["accuracy"]), iv(r["majority_accuracy"]), iv(r["balanced_accuracy"]),
                     iv(r["majority_balanced_accuracy"]), verdict(r["accuracy"], r["majority_accuracy"])])  # fmt: skip
    body.append([f"benchmark attributes (mean of {m['test']['benchmark']['n_attributes']})", iv(bench["mean_accuracy"]),
                 f"all negative {iv(bench['all_negative_accuracy'])}", iv(bench["mean_balanced_accuracy"]),
                 iv(bench["all_negative_balanced_accuracy"]), verdict(bench["mean_accuracy"], bench["all_negative_accuracy"])])  # fmt: skip
    n = next(iter(heads.values()))["accuracy"]["n"]
    return rows([f"test ({n} images)", "accuracy [95%]", "majority class", "balanced accuracy [95%]", "majority class", "accuracy vs majority"], body)


STRUCTURE_COLUMNS = {"recolour_r10": "recoloured -> its original, R@10", "recolour_pair_r10": "recoloured -> other photos of the garment, R@10",
                     "photo_r10": "Simplicity photo -> same pattern, R@10", "sketch_r10": "line drawing -> its photos, R@10",
                     "colour_sensitivity": "colour sensitivity (0 = colour-blind)"}  # fmt: skip


SHORT = dict(zip(STRUCTURE_COLUMNS, ("original", "other photos", "photo", "drawing", "sensitivity")))


def demo_structure(d: dict) -> list[str]:
    models = d["structure"]["models"]
    body = []
    for name, s in models.items():
        twin = models.get(f"{name} (untrained)")
        separated_on = [SHORT[c] for c in STRUCTURE_COLUMNS if twin and apart(s["intervals"][c], twin["intervals"][c])]
        body.append([f"`{name}`"] + [iv(s["intervals"].get(c)) for c in STRUCTURE_COLUMNS] + [(", ".join(separated_on) or "none") if twin else ""])
    first = next(iter(models.values()))["intervals"]
    body.append(["random"] + [iv(first.get(f"random_{c}")) for c in STRUCTURE_COLUMNS] + [""])
    return rows(["model (demo)"] + list(STRUCTURE_COLUMNS.values()) + ["separated from its untrained twin on"], body)


# --- bench/results/fitb_samples.json (python bench/bench_fitb.py) ----------------------------------


def fitb(d: dict) -> list[str]:
    body = []
    for variant, v in d["variants"].items():
        test = v["splits"]["test"]
        methods = test["methods"]
        context = next(m for name, m in methods.items() if name.startswith("mean of context"))
        for name, m in methods.items():
            label = re.sub(r" v\d+$", "", name)
            label = {"umbert": "umBERT", "wumbert": "WumBERT"}.get(label, label)
            vs = "" if name == "random" or m is context else verdict(m["fitb_accuracy"], context["fitb_accuracy"])
            body.append([variant, label, iv(m["fitb_accuracy"]), iv(m["compatibility_auc"]), iv(m["hit_at_10"]), vs])
    q = next(iter(d["variants"].values()))["splits"]["test"]["questions"]
    q = next(iter(q.values()))
    return rows(["variant", f"method (test: {q['fitb']} FITB, {q['compatibility']} compatibility questions)",
                 "FITB accuracy [95%]", "compatibility AUC [95%]", "hit@10 [95%]", "FITB vs mean of context"], body)  # fmt: skip


# --- bench/results/structure_scale4.json (python bench/bench_structure.py --scale 4) ---------------


def structure_scale4(d: dict) -> list[str]:
    body = []
    for mode, m in d["modes"].items():
        s = m["structure"]
        separated_on = [SHORT[c] for c in STRUCTURE_COLUMNS if s["vs_untrained"].get(c, {}).get("separated")]
        for which in ("trained", "untrained"):
            body.append([f"`{mode}`" + (" untrained twin" if which == "untrained" else f", {d['settings']['steps']} steps")]
                        + [iv(s[which].get(c)) for c in STRUCTURE_COLUMNS]
                        + [(", ".join(separated_on) or "none") if which == "trained" else ""])  # fmt: skip
    first = next(iter(d["modes"].values()))["structure"]["trained"]
    body.append(["random"] + [f"{first[f'random_{c}']:.3f} (exact)" if f"random_{c}" in first else "" for c in STRUCTURE_COLUMNS] + [""])
    return rows(["siamese mode (scale 4)"] + list(STRUCTURE_COLUMNS.values()) + ["separated from its untrained twin on"], body)


# --- bench/results/extractor_ablation.json (python bench/bench_extractor.py --ablation) ------------


def extractor_ablation(d: dict) -> list[str]:
    """One row per run (val SSIM / PSNR / L1 with intervals, whether the paired difference beats
    each baseline), the best run (chosen on val SSIM) in bold, then the two baselines once."""
    body = []
    for run in d["runs"]:
        m, vs = run["val"]["methods"]["model"], run["val"]["vs_baselines"]
        name = f"**{run['name']}** (best)" if run["name"] == d["best"] else run["name"]
        net = (run["perceptual_net"] or "").split(" (")[0]  # e.g. "the home's resnet v1 trunk, layer1-3"
        body.append([name, iv(m["ssim"]), iv(m["psnr"]), iv(m["l1"]), net,
                     *("better" if vs[b]["ssim"]["better"] else "not shown better" for b in ("copy_paste", "mean_cloth"))])  # fmt: skip
    first = d["runs"][0]["val"]["methods"]
    for b, label in (("copy_paste", "copy-paste baseline"), ("mean_cloth", "mean train cloth baseline")):
        body.append([label, iv(first[b]["ssim"]), iv(first[b]["psnr"]), iv(first[b]["l1"]), "", "", ""])
    n = d["runs"][0]["val"]["n_images"]
    return rows([f"run ({d['steps']} steps, {n} val persons)", "val SSIM [95%]", "PSNR dB [95%]", "L1 [95%]",
                 "perceptual network", "SSIM vs copy-paste (paired)", "SSIM vs mean cloth (paired)"], body)  # fmt: skip


# --- text-to-image reports (flows.jobs.diffusion_eval.generation_report) -----------------------------


def generation_table(report: dict, what: str) -> list[str]:
    """One row per figure of a generation report: generated beside its references, and whether the
    two are apart; a reader that fails on the real images too is marked as saying nothing."""
    from flows.jobs.diffusion_eval import reader_reads

    body = []
    for reader, sets in report["faithfulness"].items():
        reads = reader_reads(sets)
        body.append([f"caption {reader} read back" + ("" if reads else " (the reader fails on real images: says nothing)"),
                     iv(sets["generated"]), iv(sets["shuffled"]), iv(sets["real"]), "",
                     verdict(sets["generated"], sets["shuffled"]) if reads else "n/a"])  # fmt: skip
    feats = report.get("features")
    if feats:
        sc = feats["scores"]
        floor = sc.get("real half vs half (floor)", {}).get("fid")
        body.append([f"FID-style distance to the real images ({feats['name']}; lower is better)", iv(sc["generated"]["fid"]),
                     "", f"{floor:.3f} (real half vs half)" if floor is not None else "", iv(sc["untrained"]["fid"]),
                     "below untrained" if apart(sc["generated"]["fid"], sc["untrained"]["fid"])
                     and sc["generated"]["fid"]["value"] < sc["untrained"]["fid"]["value"] else "within the intervals"])  # fmt: skip
    clip = report.get("clip_score")
    if clip:
        c = clip["scores"]
        body.append([f"CLIP score with the caption ({clip['model']})", iv(c["generated"]), f"{iv(c['random real'])} (a random real image)",
                     iv(c["real"]), "", verdict(c["generated"], c["random real"])])  # fmt: skip
    return rows([f"{what}: {report['n_images']} captions", "generated [95%]", "shuffled prompt (chance)",
                 "real images (the reader on them)", "untrained UNet", "generated vs chance"], body)  # fmt: skip


def demo_diffusion(d: dict) -> list[str]:
    return generation_table(d["models"]["diffusion"]["val_scores"], "demo model, val")


def diffusion_quality(d: dict) -> list[str]:
    """The arms (val), the guidance sweep of the chosen arm (val), then the chosen model on test."""
    def colour(r):
        return r["faithfulness"]["colour"]

    body = []
    for a in d["arms"]:
        fid = a["val"]["features"]["scores"]
        name = f"**{a['name']}** (chosen)" if a["name"] == d.get("chosen_arm") else a["name"]
        body.append([name, iv(colour(a["val"])["generated"]), iv(colour(a["val"])["shuffled"]), iv(colour(a["val"])["real"]),
                     iv(fid["generated"]["fid"]), iv(fid["untrained"]["fid"])])  # fmt: skip
    for g in d.get("guidance", []):
        fid = g["val"]["features"]["scores"]
        chosen = " (chosen)" if g["guidance"] == d.get("chosen_guidance") else ""
        body.append([f"chosen arm, guidance {g['guidance']:g}{chosen}", iv(colour(g["val"])["generated"]),
                     iv(colour(g["val"])["shuffled"]), iv(colour(g["val"])["real"]), iv(fid["generated"]["fid"]),
                     iv(fid["untrained"]["fid"])])  # fmt: skip
    n = d["arms"][0]["val"]["n_images"]
    out = rows([f"run (scale {d['scale']}, val: {n} captions, guidance 3 unless said)", "caption colour read back [95%]",
                "shuffled-prompt chance", "real images (the reader on them)", "FID-style, resnet features (lower: better)",
                "untrained UNet's FID-style"], body)  # fmt: skip
    if "test" in d:
        t = d["test"]
        out += ["", *generation_table(t["report"], f"chosen model ({t['version']}, guidance {t['guidance']:g}), test split")]
    return out


# --- bench/results/scale.json, scale_memory.json (python bench/bench_scale.py) ---------------------


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def scale(d: dict) -> list[str]:
    st, raw, n = d["stages"], d["raw"], d["items"]

    def load(stage: str) -> str:
        return f"{raw[stage]['loadavg_start'][0]:.1f}" if stage in raw else ""

    def rss(stage: str, key: str | None = None) -> str:
        r = st[key or stage]
        workers = f" (+ child processes {r['peak_rss_workers_mb']:,.0f})" if r.get("peak_rss_workers_mb") else ""
        return f"{r['peak_rss_mb']:,.0f}{workers}"

    body = []
    if "ingest" in st:
        r = st["ingest"]
        body.append(["ingest: metadata + outfits (release without its images)", f"{r['seconds']:.2f} s", f"`json.load` of the metadata: {r['floor_seconds']:.2f} s",
                     f"**{r['ratio_to_floor']:.2f}**", f"{r['items_per_s']:,.0f}", rss("ingest"), load("ingest"), f"<= 2.0 ({_met(r['ratio_to_floor'] <= 2.0)})"])
    if "probe" in st:
        r, f = st["probe"], raw["probe_floor"]
        body.append(["image probing (inside the full ingest, 2 processes)", f"{r['seconds']:.1f} s",
                     f"PIL open + full decode + sha1, 1 thread, {f['sample']:,} sampled, scaled: {r['floor_seconds']:.1f} s",
                     f"**{r['ratio_to_floor']:.2f}**", f"{r['items_per_s']:,.0f}", rss("probe"), load("probe"), ""])
    if "embed" in st:
        r = st["embed"]
        body.append(["embed: resnet18, 64 px, batch 64, CPU (first batch to last row stored)", f"{r['seconds']:.0f} s",
                     f"bare forward on pre-decoded tensors, one batch in {raw['embed']['paired_floor_every_batches']} during the run, scaled: {r['floor_seconds']:.0f} s (run apart before: {r['separate_floor_seconds']:.0f} s)",
                     f"throughput **{r['throughput_to_floor']:.3f}**", f"{r['items_per_s']:,.0f}",
                     rss("embed") + (f"; loop alone {r['loop_peak_rss_mb']:,.0f}" if r.get("loop_peak_rss_mb") else ""), load("embed"),
                     f">= 0.8 ({_met(r['throughput_to_floor'] >= 0.8)})"])
        i = st["index"]
        body.append(["index: `ensure_indexes` in the embed job's `finalize_space` (compaction apart: " + f"{i['compact_s']:.1f} s)",
                     f"{i['seconds']:.1f} s", "none", "", "", "(embed's)", "", ""])
    else:
        body.append(["embed, index", "not finished in this run", "", "", "", "", "", ""])
    q = st.get("queries")
    for name, what in (("neighbours", "`neighbours` (k=10)"), ("complete", "`complete` (umBERT, k=10)"), ("search", "`search` (full text over titles)")):
        if not q:
            body.append([what, "not finished in this run", "", "", "", "", "", ""])
            continue
        r = q[name]
        recall = f"; recall@10 vs the scan {r['recall_at_10_vs_scan']:.2f}" if "recall_at_10_vs_scan" in r else ""
        floor = "substring scan of the titles" if name == "search" else "numpy brute-force scan"
        body.append([f"{what}, median of {r['queries']}{recall}", f"{r['median_ms']:.1f} ms", f"{floor}: {r['floor_median_ms']:.2f} ms",
                     f"**{r['ratio_to_floor']:.1f}**", "", f"{q['peak_rss_mb']:,.0f}", load("queries"), ""])
        if "search_only_median_ms" in r:  # the store's part alone: get_item + search, without the title lookup
            body.append(["  its vector part alone (`get_item` + `search`; the rest is reading the titles from the lake)",
                         f"{r['search_only_median_ms']:.2f} ms", f"{floor}: {r['floor_median_ms']:.2f} ms",
                         f"**{r['search_only_ratio_to_floor']:.3f}**", "", "", "", ""])
    return [f"{n:,} items ({raw['release']['real_ids']:,} real Polyvore ids), {raw['release']['outfits']:,} outfits, "
            f"{raw['release']['metadata_mb']:,} MB metadata, {raw['release']['image_mb']:,} MB of {d['image_px']} px JPEGs "
            f"(written in {raw['release']['seconds']:.0f} s).", ""] + rows(
        ["stage", "time", "floor (same run, same data)", "ratio", "items/s", "peak RSS (MiB)", "load (1 min) at start", "target"], body)  # fmt: skip


def scale_memory(d: dict) -> list[str]:
    a, b = d["sizes"]
    body = [[stage, f"{r[f'peak_rss_mb_{a}']:,.0f}", f"{r[f'peak_rss_mb_{b}']:,.0f}", f"{r['bytes_per_added_item']:,.0f}"]
            for stage, r in d["per_stage"].items()]
    out = rows(["stage", f"peak RSS at {a:,} items (MiB)", f"at {b:,} items (MiB)", "bytes per added item"], body)
    if d.get("queries_steps"):
        steps = [[f"queries: {step}", f"+{r[f'added_mb_{a}']:,.0f}", f"+{r[f'added_mb_{b}']:,.0f}", f"{r['bytes_per_added_item']:,.0f}"]
                 for step, r in d["queries_steps"].items()]  # fmt: skip
        out += ["", "The queries stage step by step: the peak each step reached above the RSS it started from (MiB).", ""]
        out += rows(["step", f"at {a:,} items", f"at {b:,} items", "bytes per added item"], steps)
    return out


def scale_queries_memory(d: dict) -> list[str]:
    """The queries stage's memory in two runs of one size (before / after a change)."""
    a, b = d["labels"]
    head = [f"{d['items']:,} items: the queries stage's peak RSS {d['stage_peak_rss_mb'][0]:,.0f} MiB {a}, "
            f"**{d['stage_peak_rss_mb'][1]:,.0f}** MiB {b}; umBERT's setup (20 steps and its two evaluations) "
            f"{d['umbert_train_s'][0]:.0f} s {a}, **{d['umbert_train_s'][1]:.0f}** s {b}."]
    body = [[step, f"+{r['added_mb'][0]:,.0f}", f"+{r['added_mb'][1]:,.0f}", f"{r['peak_rss_mb'][0]:,.0f}", f"{r['peak_rss_mb'][1]:,.0f}"]
            for step, r in d["steps"].items()]  # fmt: skip
    return head + [""] + rows(["step", f"added (MiB), {a}", f"added (MiB), {b}", f"peak RSS (MiB), {a}", f"peak RSS (MiB), {b}"], body)


def scale_embed(d: dict) -> list[str]:
    """The embed stage of a 1M run, per tenth: the job's rate beside its floors, and where its time went."""
    e = d["stages"]["embed"]
    head = [f"embed of {d['items']:,} images: {e['seconds']:.0f} s, {e['items_per_s']:.0f} images/s; paired floor (model) "
            f"{e['floor_seconds']:.0f} s: throughput **{e['throughput_to_floor']:.3f}**"]
    if "read_floor_seconds" in e:
        head[0] += (f"; disk floor (reading the files, {d['raw']['embed']['read_floor_threads']} threads, "
                    f"{d['raw']['embed']['read_floor_sample']:,} sampled, scaled) {e['read_floor_seconds']:.0f} s: "
                    f"throughput **{e['throughput_to_read_floor']:.3f}**; against the slower of the two ({e['true_floor']}): "
                    f"**{e['throughput_to_true_floor']:.3f}**")
    body = [[f"{s['up_to']:,}", f"{s['job_images_per_s']:.0f}", f"{s['floor_images_per_s']:.0f}" if s["floor_images_per_s"] else "",
             f"{s['throughput_to_floor']:.3f}" if s["throughput_to_floor"] else "", f"{s['decode_ms_per_image']:.2f}",
             f"{s['forward_ms_per_image']:.2f}", f"{s['cpu_per_wall']:.2f}", f"{s['blocks_read'] * 512 / 2**20:,.0f}"]
            for s in e.get("segments", [])]  # fmt: skip
    return head + [""] + rows(["images up to", "job images/s", "paired floor images/s", "ratio", "decode ms/image",
                               "forward ms/image", "CPU s per wall s", "MiB read from disk"], body)


@dataclass(frozen=True)
class ReadmeTable:
    source: str  # the committed file holding the figures, relative to the repository root
    command: str  # the command that regenerates it
    render: Callable[[dict], list[str]]


DEMO = ("bench/results/demo_quality.json", "python bench/bench_demo_quality.py")
TABLES = {
    "demo-models": ReadmeTable(*DEMO, demo_models),
    "demo-neighbours": ReadmeTable(*DEMO, demo_neighbours),
    "demo-clip": ReadmeTable(*DEMO, demo_clip),
    "demo-attributes": ReadmeTable(*DEMO, demo_attributes),
    "demo-structure": ReadmeTable(*DEMO, demo_structure),
    "fitb": ReadmeTable("bench/results/fitb_samples.json", "python bench/bench_fitb.py", fitb),
    "structure-scale4": ReadmeTable("bench/results/structure_scale4.json", "python bench/bench_structure.py --scale 4",
                                    structure_scale4),
    "demo-diffusion": ReadmeTable(*DEMO, demo_diffusion),
    "diffusion-quality": ReadmeTable("bench/results/diffusion_quality.json", "python bench/bench_diffusion_quality.py",
                                     diffusion_quality),
    "extractor-ablation": ReadmeTable("bench/results/extractor_ablation.json", "python bench/bench_extractor.py --ablation",
                                      extractor_ablation),
    "scale": ReadmeTable("bench/results/scale.json", "python bench/bench_scale.py --items 1000000 --workdir /tmp/scale", scale),
    "scale-100k": ReadmeTable("bench/results/scale_100k.json", "python bench/bench_scale.py --items 100000 --workdir /tmp/scale100k "
                              "--out bench/results/scale_100k.json", scale),
    "scale-memory": ReadmeTable("bench/results/scale_memory.json", "python bench/bench_scale.py --memory-of "
                                "bench/results/scale_100k.json bench/results/scale.json --out bench/results/scale_memory.json", scale_memory),
    "scale-queries-memory": ReadmeTable("bench/results/scale_queries_memory_1m.json", "python bench/bench_scale.py --queries-memory "
                                        "bench/results/scale_queries_1m_before.json bench/results/scale_queries_1m.json --labels "
                                        "before,after --out bench/results/scale_queries_memory_1m.json  # the two runs: see the text",
                                        scale_queries_memory),
    "scale-queries-growth": ReadmeTable("bench/results/scale_queries_growth.json", "python bench/bench_scale.py --memory-of "
                                        "bench/results/scale_queries_100k.json bench/results/scale_queries_1m.json "
                                        "--out bench/results/scale_queries_growth.json", scale_memory),
    "scale-embed-before": ReadmeTable("bench/results/scale_embed_1m_before.json", "python bench/bench_scale.py --items 1000000 "
                                      "--workdir /tmp/scale --keep --stages release,json_load,ingest,probe,forward_floor,embed "
                                      "--out bench/results/scale_embed_1m_before.json  # at 054e5d7: no read-ahead", scale_embed),
    "scale-embed": ReadmeTable("bench/results/scale_embed_1m.json", "python bench/bench_scale.py --items 1000000 --workdir /tmp/scale "
                               "--keep --stages embed --out bench/results/scale_embed_1m.json  # on the release above, page cache dropped first",
                               scale_embed),
}  # fmt: skip

BLOCK = re.compile(r"(<!-- table (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def render(name: str) -> str:
    """The block's text for table ``name``: its source line and the table."""
    t = TABLES[name]
    if not (ROOT / t.source).exists():
        raise SystemExit(f"README.md table {name!r}: {t.source} is missing; make it with `{t.command}`")
    data = json.loads((ROOT / t.source).read_text())
    return f"*Figures: `{t.source}`, made by `{t.command}`.*\n\n" + "\n".join(t.render(data)) + "\n"


def rendered(text: str) -> tuple[str, list[str]]:
    """``text`` with every table block re-rendered, and the names of the blocks found."""
    names = []

    def sub(m: re.Match) -> str:
        if m.group("name") not in TABLES:
            raise SystemExit(f"README.md: unknown table {m.group('name')!r} (known: {', '.join(TABLES)})")
        names.append(m.group("name"))
        return m.group(1) + render(m.group("name")) + m.group(4)

    return BLOCK.sub(sub, text), names


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only compare; exit 1 when a table differs from its file")
    args = p.parse_args(argv)
    text = README.read_text()
    new, names = rendered(text)
    missing = sorted(set(TABLES) - set(names))
    if args.check:
        if new != text:
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True), "README.md", "rendered"))
            return 1
        if missing:
            print(f"README.md has no block for: {', '.join(missing)}")
            return 1
        print(f"README.md: {len(names)} tables equal their files")
        return 0
    README.write_text(new)
    print(f"README.md: {len(names)} tables rendered" + (f"; no block for {', '.join(missing)}" if missing else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
