"""One Polyvore release of --items items end to end, each stage against its floor; writes JSON.

    .venv/bin/python bench/bench_scale.py --items 1000000 --workdir /tmp/scale --out bench/results/scale.json

Writes a Polyvore-format release (`scale_release.py`: real reference ids, then more in the same
format; metadata plus one 64 px JPEG per item), then runs, each stage in its own process (so its
peak RSS is its own: ``ru_maxrss`` of the process, and of its pool workers separately):

| stage | what runs | floor, measured in the same run on the same data |
|---|---|---|
| ingest | `ingest_polyvore` of the release without its images folder (metadata + outfits) | one `json.load` of the metadata file |
| probe | `ingest_polyvore` of the full release: probing time from its progress callback | single-thread PIL open + full decode + sha1 over a sample, scaled to N |
| embed | `embed_space(home, "resnet")` (random-init resnet18 embedder, 64 px, batch 64): first batch to last | bare forward (`embed_batch`) on pre-decoded tensors, same batch size, over a sample, scaled to N |
| index | `VectorStore.ensure_indexes` as the embed job's `finalize_space` calls it (timed inside) | none |
| queries | `neighbours` (resnet space), `complete` (umBERT trained a few steps on it), `search` (full text over the titles of a ``clip`` space of random vectors) | numpy brute-force scan (a substring scan for text) |

Every stage records seconds, floor seconds, ratio, items/s, peak RSS and the load average; the
JSON is rewritten after each stage (partial results survive). ``--compare OTHER.json`` (a run
at another size) adds peak RSS per item between the two sizes; ``--memory-of SMALL LARGE --out
F`` writes only that comparison, of two finished runs:

    .venv/bin/python bench/bench_scale.py --memory-of bench/results/scale_100k.json bench/results/scale.json \\
        --out bench/results/scale_memory.json

The queries stage alone at scale, without the hour of embedding: stage ``random_space`` ingests
the metadata-only release and writes a ``resnet`` space of random vectors (memory figures only:
random vectors are an index's worst case). ``--queries-memory BEFORE AFTER --out F`` compares
that stage's memory in two such runs of one size (the code before and after a change):

    .venv/bin/python bench/bench_scale.py --items 1000000 --stages release,random_space,queries \\
        --out bench/results/scale_queries_1m.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAGES = ("release", "json_load", "ingest", "probe_floor", "probe", "forward_floor", "embed", "random_space", "queries")
BATCH = 64
IMAGE_SIZE = 64
EVERY = 10  # the embed stage times one bare forward batch (its paired floor) every EVERY batches
SEGMENTS = 10  # ... and reports both rates over each tenth of the run
PARTS = ("decode", "forward", "add", "append")  # the job's parts timed per tenth (stage_embed)


def rss_mb() -> dict:
    """Peak RSS (MiB) of this process and of its largest waited-for child (pool workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"peak_rss_mb": round(me.ru_maxrss / 1024, 1), "peak_rss_workers_mb": round(kids.ru_maxrss / 1024, 1)}


def paths(workdir: Path) -> dict[str, Path]:
    return {"release": workdir / "release", "meta_release": workdir / "release_meta", "home": workdir / "home",
            "meta_home": workdir / "home_meta"}  # fmt: skip


def sample(n: int, k: int) -> list[int]:
    """``k`` item numbers spread evenly over ``n``."""
    return list(range(0, n, max(1, n // k)))[:k]


# -- the stages (each runs in a child process: `--stage NAME`) ----------------------------------


def stage_release(p: dict, n: int) -> dict:
    from scale_release import write_release

    shutil.rmtree(p["release"], ignore_errors=True)
    t0 = time.perf_counter()
    counts = write_release(p["release"], n, IMAGE_SIZE, on_progress=_progress("release"))
    seconds = time.perf_counter() - t0
    meta = p["meta_release"]  # the same metadata and outfits, no images: the metadata-only ingest
    shutil.rmtree(meta, ignore_errors=True)
    (meta / "nondisjoint").mkdir(parents=True)
    os.link(p["release"] / "polyvore_item_metadata.json", meta / "polyvore_item_metadata.json")
    for f in (p["release"] / "nondisjoint").iterdir():
        os.link(f, meta / "nondisjoint" / f.name)
    return {"seconds": seconds, **counts}


def stage_json_load(p: dict, n: int) -> dict:
    t0 = time.perf_counter()
    with open(p["release"] / "polyvore_item_metadata.json") as f:
        data = json.load(f)
    seconds = time.perf_counter() - t0
    assert len(data) == n, len(data)
    return {"seconds": seconds}


def stage_ingest(p: dict, n: int) -> dict:
    from flows.jobs.ingest import ingest_polyvore

    shutil.rmtree(p["meta_home"], ignore_errors=True)
    t0 = time.perf_counter()
    result = ingest_polyvore(p["meta_release"], p["meta_home"], variants=("nondisjoint",))
    seconds = time.perf_counter() - t0
    assert result.rows["items"] == n, result.rows
    shutil.rmtree(p["meta_home"], ignore_errors=True)
    return {"seconds": seconds, "rows": result.rows}


def stage_probe_floor(p: dict, n: int, k: int = 20_000) -> dict:
    import hashlib

    from PIL import Image
    from scale_release import item_ids, reference

    ids, _ = item_ids(n, *reference()[:2])
    chosen = [str(p["release"] / "images" / f"{ids[i]}.jpg") for i in sample(n, k)]
    t0 = time.perf_counter()
    for path in chosen:
        with open(path, "rb") as f:
            hashlib.sha1(f.read()).hexdigest()
        with Image.open(path) as im:
            im.load()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds * n / len(chosen), "sample": len(chosen), "sample_seconds": seconds,
            "what": "single-thread PIL open + full decode + sha1 of each file, over a sample spread over the release, scaled to N"}  # fmt: skip


def stage_probe(p: dict, n: int) -> dict:
    from flows.jobs.ingest import ingest_polyvore

    shutil.rmtree(p["home"], ignore_errors=True)
    marks: list[float] = []
    show = _progress("probe")

    def on_progress(done: int, total: int) -> None:
        marks.append(time.perf_counter())
        show(done, total)

    t0 = time.perf_counter()
    result = ingest_polyvore(p["release"], p["home"], variants=("nondisjoint",), on_progress=on_progress)
    seconds = time.perf_counter() - t0
    assert result.rows["items"] == n and result.images_probed == n, (result.rows, result.images_probed)
    probe_s = marks[-1] - marks[0]
    return {"seconds": probe_s, "ingest_with_images_s": seconds, "ingest_without_probe_s": seconds - probe_s,
            "images_probed": result.images_probed}  # fmt: skip


def _model(p: dict) -> Path:
    """The random-init resnet18 embedder (64 px, 128-d) the embed stage uses, saved once."""
    import torch

    from models import ResNetConfig, ResNetEmbedder

    out = p["home"] / "models" / "resnet" / "v1"
    if not (out / "config.json").exists():
        torch.manual_seed(0)
        ResNetEmbedder(ResNetConfig(num_classes=11, image_size=IMAGE_SIZE)).save_pretrained(out)
    return out


def stage_forward_floor(p: dict, n: int, k: int = 4096) -> dict:
    import torch

    from etl.loader import ImageFolderRows
    from flows.jobs.embed import embed_rows
    from models import embed_batch, load_pretrained

    model = load_pretrained(_model(p), device="cpu")
    image_paths = embed_rows(p["home"], "polyvore")["image_path"]
    chosen = [image_paths[i].as_py() for i in sample(n, k)]
    ds = ImageFolderRows(chosen, IMAGE_SIZE)
    batches = list(torch.stack([ds[i]["image"] for i in range(len(chosen))]).split(BATCH))
    embed_batch(model, batches[0])  # warm-up
    t0 = time.perf_counter()
    for b in batches:
        embed_batch(model, b)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds * n / len(chosen), "sample": len(chosen), "sample_seconds": seconds, "torch_threads": torch.get_num_threads(),
            "what": f"bare forward (embed_batch) on pre-decoded tensors, batch {BATCH}, over a sample, scaled to N"}  # fmt: skip


def stage_embed(p: dict, n: int) -> dict:
    import flows.jobs.embed as embed_job
    import flows.jobs.embed_upkeep as upkeep
    from store.vectors import VectorStore

    _model(p)
    shutil.rmtree(p["home"] / "vectors", ignore_errors=True)
    timed: dict[str, float] = {}

    def timer(name, fn):
        def wrapped(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                timed[name] = timed.get(name, 0.0) + time.perf_counter() - t
        return wrapped

    # measurement hooks only: the same functions, timed (finalize_space is imported by name into the job)
    embed_job.finalize_space = timer("finalize", upkeep.finalize_space)
    VectorStore.ensure_indexes = timer("ensure_indexes", VectorStore.ensure_indexes)
    VectorStore.compact = timer("compact", VectorStore.compact)
    # where the loop's time goes, per tenth: decode (the loader's items), forward (the job's
    # embed_batch), add (the writer's main-thread side, waits for the previous write included),
    # append (the writer thread's LanceDB commits, overlapping the rest)
    import etl.loader
    import models
    from flows.jobs.embed_write import BatchWriter

    etl.loader.ImageFolderRows.__getitem__ = timer("decode", etl.loader.ImageFolderRows.__getitem__)
    models.embed_batch, job_forward = timer("forward", models.embed_batch), models.embed_batch
    BatchWriter.add = timer("add", BatchWriter.add)
    VectorStore.append = timer("append", VectorStore.append)
    # the paired floor: every EVERY-th batch, the bare forward of one pre-decoded batch of the
    # same images, in this process, so that it sees the same machine load as the job around it
    import torch

    from etl.loader import ImageFolderRows
    from models import load_pretrained

    embed_batch = job_forward  # the floor's forward, not counted in the job's
    floor_model = load_pretrained(_model(p), device="cpu")
    read_floor = _read_floor(p, n)
    with os.scandir(p["release"] / "images") as entries:  # the first BATCH files listed (no listing of all N held)
        first = [e.path for _, e in zip(range(BATCH), entries)]
    floor_batch = torch.stack([ImageFolderRows(first, IMAGE_SIZE)[i]["image"] for i in range(len(first))])
    embed_batch(floor_model, floor_batch)  # warm-up
    paired = {"seconds": 0.0, "images": 0, "callback_s": 0.0, "calls": 0, "segments": []}
    show = _progress("embed")
    started = time.perf_counter()

    def on_progress(done: int, total: int) -> None:
        t = time.perf_counter()
        paired["calls"] += 1
        if paired["calls"] % EVERY == 1:
            embed_batch(floor_model, floor_batch)
            paired["seconds"] += time.perf_counter() - t
            paired["images"] += BATCH
        if done * SEGMENTS // total > len(paired["segments"]):  # cumulative figures at each 1/SEGMENTS of the run
            use = resource.getrusage(resource.RUSAGE_SELF)
            paired["segments"].append({"done": done, "job_s": round(t - started - paired["callback_s"], 3),
                                       "floor_s": round(paired["seconds"], 3), "floor_images": paired["images"],
                                       "cpu_s": round(use.ru_utime + use.ru_stime, 3), "inblock": use.ru_inblock,
                                       **{k: round(timed.get(k, 0.0), 3) for k in PARTS}})  # fmt: skip
        show(done, total)
        if done >= total:  # the loop's own peak (finalize_space's compaction and index build come after)
            paired["loop_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        paired["callback_s"] += time.perf_counter() - t

    t0 = time.perf_counter()
    r = embed_job.embed_space(p["home"], "resnet", batch_size=BATCH, num_workers=0, device="cpu", progress=False, on_progress=on_progress)
    seconds = time.perf_counter() - t0 - paired["callback_s"]
    assert r.n_embedded == n and r.n_failed == 0, (r.n_embedded, r.n_failed)
    loop = r.loop_seconds - paired["callback_s"]
    return {"seconds": loop, "embed_space_s": seconds, **read_floor, "before_loop_s": seconds - loop - timed["finalize"],
            "paired_floor_seconds": paired["seconds"] * n / paired["images"], "paired_floor_images": paired["images"],
            "paired_floor_every_batches": EVERY, "segments": _segment_rates(paired["segments"]), "finalize_s": timed["finalize"], "loop_peak_rss_mb": paired.get("loop_peak_rss_mb"),
            "index_s": timed["ensure_indexes"], "compact_s": timed.get("compact", 0.0), "embedded": r.n_embedded}  # fmt: skip


def _read_floor(p: dict, n: int, k: int = 8192) -> dict:
    """The disk's floor: reading (no decoding) a sample of the files spread over the release with
    the job's read-ahead threads, scaled to N. Taken before the run, so those files are read here
    first; files the page cache holds read faster, which makes this floor lower, never higher."""
    from concurrent.futures import ThreadPoolExecutor

    from etl.read_ahead import READ_THREADS, read_bytes
    from flows.jobs.embed import embed_rows

    paths = embed_rows(p["home"], "polyvore")["image_path"]
    chosen = [paths[i].as_py() for i in sample(n, k)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(READ_THREADS) as pool:
        size = sum(len(b) for b in pool.map(read_bytes, chosen))
    seconds = time.perf_counter() - t0
    return {"read_floor_seconds": seconds * n / len(chosen), "read_floor_sample": len(chosen), "read_floor_sample_s": seconds,
            "read_floor_mb": round(size / 2**20, 1), "read_floor_threads": READ_THREADS}  # fmt: skip


def _segment_rates(marks: list[dict]) -> list[dict]:
    """Per stretch between two marks: the job's images/s and the paired floor's, and their ratio
    (a job whose cost grows with the table shows a falling ratio; a machine that slows, both rates)."""
    out, prev = [], {"done": 0, "job_s": 0.0, "floor_s": 0.0, "floor_images": 0}
    for m in marks:
        job = (m["done"] - prev["done"]) / max(m["job_s"] - prev["job_s"], 1e-9)
        floor_images, floor_s = m["floor_images"] - prev["floor_images"], m["floor_s"] - prev["floor_s"]
        floor = floor_images / floor_s if floor_s > 0 else None
        parts = {f"{k}_ms_per_image": round(1000 * (m[k] - prev.get(k, 0.0)) / (m["done"] - prev["done"]), 3)
                 for k in PARTS if k in m}  # fmt: skip
        if "cpu_s" in m:  # process CPU seconds per wall second of the stretch (paired floor and callbacks included)
            parts["cpu_per_wall"] = round((m["cpu_s"] - prev.get("cpu_s", 0.0)) / max(m["job_s"] - prev["job_s"], 1e-9), 3)
            parts["blocks_read"] = m["inblock"] - prev.get("inblock", 0)
        out.append({"up_to": m["done"], "job_images_per_s": round(job, 1), "floor_images_per_s": round(floor, 1) if floor else None,
                    "throughput_to_floor": round(job / floor, 3) if floor else None, **parts})  # fmt: skip
        prev = m
    return out


def _true_floor(e: dict) -> dict:
    """The job's floor is the slower of the model (paired bare forward) and the disk (reading the
    files alone): against which one the job is measured, and its throughput ratio to it."""
    if "read_floor_seconds" not in e:
        return {}
    floor = max(e["paired_floor_seconds"], e["read_floor_seconds"])
    return {"read_floor_seconds": round(e["read_floor_seconds"], 3), "throughput_to_read_floor": round(e["read_floor_seconds"] / e["seconds"], 3),
            "true_floor": "disk (reading the files)" if e["read_floor_seconds"] > e["paired_floor_seconds"] else "model (bare forward)",
            "true_floor_seconds": round(floor, 3), "throughput_to_true_floor": round(floor / e["seconds"], 3)}  # fmt: skip


def stage_random_space(p: dict, n: int) -> dict:
    """Instead of probe + embed, for a run of the queries stage alone (its memory at scale without
    the hour of embedding): the metadata-only release ingested into the home and a ``resnet``
    space of random 128-d vectors (seeded) over every item, written and indexed by the store
    (`benchutil.random_title_space`, without titles). Its search figures are those of random
    vectors (the worst case for an index), not of the embedded images: memory only."""
    from benchutil import random_title_space

    from flows.jobs.ingest import ingest_polyvore

    shutil.rmtree(p["home"], ignore_errors=True)
    t0 = time.perf_counter()
    ingest_polyvore(p["meta_release"], p["home"], variants=("nondisjoint",))
    _, index_s = random_title_space(p["home"], dim=128, model_version="random/v1", seed=0, space="resnet", titles=False)
    return {"seconds": time.perf_counter() - t0, "index_s": index_s,
            "what": "metadata-only ingest + a resnet space of random vectors (no images probed, nothing embedded)"}  # fmt: skip


def stage_queries(p: dict, n: int, q: int = 30) -> dict:
    from scale_queries import run_queries

    return run_queries(p["home"], n, q)


def _progress(label: str):
    """A progress printer for stderr: a line every 5% with rate and ETA."""
    state = {"t0": time.perf_counter(), "next": 0.0}

    def show(done: int, total: int) -> None:
        if total and (done >= total or done / total >= state["next"]):
            state["next"] = done / total + 0.05
            el = time.perf_counter() - state["t0"]
            rate = done / el if el else 0.0
            eta = (total - done) / rate if rate else float("nan")
            print(f"  {label}: {done}/{total} ({100 * done / total:.0f}%), {rate:.0f}/s, {el:.0f}s elapsed, ETA {eta:.0f}s",
                  file=sys.stderr, flush=True)  # fmt: skip

    return show


def child(stage: str, workdir: Path, n: int) -> None:
    load = os.getloadavg()
    out = globals()[f"stage_{stage}"](paths(workdir), n)
    out.update(rss_mb(), loadavg_start=[round(x, 2) for x in load], loadavg_end=[round(x, 2) for x in os.getloadavg()])
    if out.get("memory"):  # the queries stage resets the kernel's peak per step: the stage's is the largest step's
        out["peak_rss_mb"] = max(out["peak_rss_mb"], *(s["peak_rss_mb"] for s in out["memory"].values()))
    print("RESULT " + json.dumps(out), flush=True)


# -- the parent: runs the stages, writes the JSON after each ------------------------------------


def run_stage(stage: str, workdir: Path, n: int) -> dict:
    cmd = [sys.executable, str(Path(__file__)), "--stage", stage, "--workdir", str(workdir), "--items", str(n)]
    print(f"[{time.strftime('%H:%M:%S')}] stage {stage} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=HERE.parent)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"stage {stage} failed (exit {proc.returncode}); its output:\n{proc.stdout[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def summarise(n: int, raw: dict) -> dict:
    """Per stage: seconds, floor, ratio, items/s, peak RSS (from the raw stage results)."""

    def row(stage: str, floor: str | None, target: str | None = None, **extra) -> dict:
        s = raw[stage]
        out = {"seconds": round(s["seconds"], 3), "items_per_s": round(n / s["seconds"], 1)}
        if floor and floor in raw:
            out.update(floor_seconds=round(raw[floor]["seconds"], 3), ratio_to_floor=round(s["seconds"] / raw[floor]["seconds"], 3))
        if target:
            out["target"] = target
        return {**out, "peak_rss_mb": s["peak_rss_mb"], "peak_rss_workers_mb": s["peak_rss_workers_mb"], **extra}

    st: dict = {}
    if "ingest" in raw:
        st["ingest"] = row("ingest", "json_load", "ratio_to_floor <= 2.0 (within 2x of json.load)")
    if "probe" in raw:
        st["probe"] = row("probe", "probe_floor", None, ingest_with_images_s=round(raw["probe"]["ingest_with_images_s"], 3),
                          ingest_without_probe_s=round(raw["probe"]["ingest_without_probe_s"], 3))  # fmt: skip
    if "embed" in raw and "forward_floor" in raw:
        e = raw["embed"]
        st["embed"] = row("embed", None, "throughput_to_floor >= 0.8 (paired floor)", embed_space_s=round(e["embed_space_s"], 3),
                          before_loop_s=round(e["before_loop_s"], 3))  # fmt: skip
        st["embed"].update(floor_seconds=round(e["paired_floor_seconds"], 3), ratio_to_floor=round(e["seconds"] / e["paired_floor_seconds"], 3),
                           throughput_to_floor=round(e["paired_floor_seconds"] / e["seconds"], 3),
                           floor="bare forward of one pre-decoded batch every %d batches of the run, scaled to N" % e["paired_floor_every_batches"],
                           separate_floor_seconds=round(raw["forward_floor"]["seconds"], 3),
                           throughput_to_separate_floor=round(raw["forward_floor"]["seconds"] / e["seconds"], 3),
                           **({"segments": e["segments"]} if e.get("segments") else {}),
                           **_true_floor(e),
                           loop_peak_rss_mb=e.get("loop_peak_rss_mb"))  # fmt: skip
        st["index"] = {"seconds": round(e["index_s"], 3), "floor_seconds": None, "finalize_s": round(e["finalize_s"], 3),
                       "compact_s": round(e["compact_s"], 3), "note": "ensure_indexes inside the embed job's finalize_space; no floor",
                       "peak_rss_mb": e["peak_rss_mb"]}  # fmt: skip
    if "queries" in raw:
        st["queries"] = {k: v for k, v in raw["queries"].items() if k not in ("loadavg_start", "loadavg_end")}
    return st


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/atelier_scale"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/scale.json"))
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset (a later stage needs the earlier ones' files)")
    ap.add_argument("--compare", type=Path, default=None, help="a results JSON at another --items: adds RSS growth per item")
    ap.add_argument("--keep", action="store_true", help="keep the workdir (default: removed at the end)")
    ap.add_argument("--memory-of", type=Path, nargs=2, default=None, metavar=("SMALL.json", "LARGE.json"),
                    help="only write --out: peak RSS per stage of two finished runs and the growth per added item")
    ap.add_argument("--queries-memory", type=Path, nargs=2, default=None, metavar=("BEFORE.json", "AFTER.json"),
                    help="only write --out: the queries stage's memory, step by step, in two runs of one size (before/after a change)")
    ap.add_argument("--labels", default="before,after", help="the two runs' names for --queries-memory")
    ap.add_argument("--stage", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    if args.stage:
        return child(args.stage, args.workdir, args.items)
    from benchutil import write_results
    from scale_queries import memory_before_after, memory_growth

    if args.queries_memory:
        before, after = (json.loads(f.read_text()) for f in args.queries_memory)
        return write_results(args.out, {"benchmark": "scale queries memory", "files": [str(f) for f in args.queries_memory],
                                        **memory_before_after(before, after, tuple(args.labels.split(",")))})  # fmt: skip
    if args.memory_of:
        small, large = (json.loads(f.read_text()) for f in args.memory_of)
        return write_results(args.out, {"benchmark": "scale memory", "files": [str(f) for f in args.memory_of],
                                        **memory_growth(small, large)})  # fmt: skip

    args.workdir.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    raw: dict = previous.get("raw", {}) if previous.get("items") == args.items else {}
    wanted = args.stages.split(",")
    for name in wanted:
        if name not in STAGES:
            raise SystemExit(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    t_start = time.perf_counter()
    try:
        for stage in STAGES:
            if stage not in wanted:
                continue
            raw[stage] = run_stage(stage, args.workdir, args.items)
            results = {"benchmark": "scale", "items": args.items, "command": " ".join(["bench/bench_scale.py", *sys.argv[1:]]),
                       "image_px": IMAGE_SIZE, "batch_size": BATCH, "stages": summarise(args.items, raw), "raw": raw,
                       "wall_s": round(time.perf_counter() - t_start, 1)}  # fmt: skip
            if args.compare:
                results["memory"] = memory_growth(json.loads(args.compare.read_text()), results)
            write_results(args.out, results)
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
