"""Query service benchmark: `atelier api` over HTTP vs the same calls in-process; writes JSON.

    python bench/bench_api.py [--out bench/results/api.json] [--queries 200] [--clients 4]
                              [--per-client 100] [--cli-repeat 7] [--quick]

Two homes are built in a temporary folder:
- demo: the sample Polyvore release (`etl.samples`, seed 0, 64 px images) ingested, a random
  128-d space ``bench`` over its items (as `bench_complete.random_space`), an umBERT trained 30
  steps on it and a tiny clip (10 steps, 32 px) embedded into ``clip`` (as `tests/test_api.py`);
- catalogue: the real Polyvore reference (tests/data/polyvore: 112,491 real item ids and
  categories, the real outfits) ingested as `bench_complete.py` does, the random ``bench`` space
  (the store's index), an umBERT trained a few steps on it, and a ``clip`` space over every item: the
  demo's clip model copied in, random vectors of its dimension plus each item's title in the
  ``text`` column (the store's index + full-text index, as `ensure_indexes` builds them: for random
  vectors its calibration picks the exact scan, see `store.ann_calibrate`). The vectors are random.

For each home a real `atelier api` process (`python -m flows.cli api`) on a free loopback port;
after /health and a warm-up, measured over HTTP with one persistent httpx client, --queries each:
- POST /complete (test outfits: context = outfit minus its last item, missing = its category),
- GET /neighbours/{id} (k=10, space bench),
- GET /search (two words of an item's title; mode vector, and hybrid reported too),
median and p95 client-side latency (ms), the medians of the server's own `timings_ms`, and the
floor: the same calls in this process (`CompletionModel.complete`, `neighbours(..., gallery=False)`,
`search_text`; the service also looks up each answer's titles), the HTTP cost shown as a ratio;
and the steps of `neighbours` timed one by one (vector lookup, ANN search, title lookup, category
lookup). Goals: median <= 50 ms for complete and neighbours, <= 60 ms for search.
Throughput: --clients threads, each its own httpx.Client, --per-client requests each cycling over
the three endpoints: requests/s and errors (must be 0).
CLI through the service: `atelier search`, `neighbours`, `complete` as fresh processes with
ATELIER_API_URL set, alternating with the floor `python -c "import duckdb"` (--cli-repeat
times, median and min; each command's time includes the service's answer, and neighbours /
complete ask for the HTML gallery as the CLI does), ratio to the floor (goal <= 1.5x), next to the
client's start-up alone (its imports, no request); and whether the client path imports torch or lancedb (`python -X importtime`,
every module it loads). The machine is shared: `touch /tmp/bench_running` before a timed run.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from bench_complete import REFERENCE, random_space
from benchutil import random_title_space, write_results

from etl.samples import reference_release, write_samples
from flows.jobs.analyses import item_details, neighbours
from flows.jobs.complete import CompletionModel
from flows.jobs.embed import embed_space
from flows.jobs.ingest import ingest, ingest_polyvore
from flows.jobs.outfits import load_outfits
from flows.jobs.search import encode_text, load_clip, search_text
from flows.jobs.train import train_model
from store import VectorStore, query

SPACE = "bench"
GOALS_MS = {"complete": 50, "neighbours": 50, "search": 60}
CLI_GOAL = 1.5
ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "lancedb", "lance", "polars", "pyarrow", "numpy", "duckdb", "pandas", "transformers", "fastapi", "pydantic", "httpx",
         "typer", "rich")


def quiet(_: str) -> None:
    pass


def build_demo(tmp: Path) -> tuple[Path, dict]:
    t0 = time.perf_counter()
    samples, home = tmp / "samples", tmp / "demo-home"
    write_samples(samples, seed=0, scale=1, image_size=64, datasets=("polyvore",))
    ingest("polyvore", samples / "polyvore", home)
    space = random_space(home)
    train_model("umbert", home, space=SPACE, steps=30, eval_every=30, log=quiet)
    train_model("clip", home, steps=10, image_size=32, batch_size=64, eval_every=10, log=quiet)
    embed_space(home, "clip", progress=False)
    return home, {"items": space["items"], "spaces": {SPACE: "random 128-d", "clip": "the tiny clip's image vectors"},
                  "umbert_steps": 30, "clip_steps": 10, "clip_vectors": VectorStore(home).count("clip"),
                  "build_seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip


def build_catalogue(tmp: Path, demo_home: Path, steps: int) -> tuple[Path, dict]:
    t0 = time.perf_counter()
    root, home = tmp / "reference", tmp / "catalogue-home"
    reference_release(REFERENCE / "reduced_catalogue.csv", REFERENCE / "reduced_compatibility.csv", root, n_images=0)
    ingest_polyvore(root, home)
    space = random_space(home)
    train_model("umbert", home, space=SPACE, steps=steps, eval_every=steps, log=quiet)
    clip_src = max((demo_home / "models" / "clip").glob("v*"), key=lambda p: int(p.name[1:]))
    shutil.copytree(clip_src, home / "models" / "clip" / clip_src.name)
    model, _ = load_clip(home)
    dim = int(encode_text(model, "red top")[0].shape[0])
    items, clip_index_s = random_title_space(home, dim, f"clip/{clip_src.name}", seed=1)
    n = items.num_rows
    return home, {"items": n, "spaces": {SPACE: "random 128-d, store index", "clip": f"random {dim}-d + titles, store index + full-text"},
                  "vectors_are_random": True, "umbert_steps": steps, "bench_index_seconds": round(space["index_seconds"], 1),
                  "clip_index_seconds": round(clip_index_s, 1), "build_seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip


def workload(home: Path, n: int, seed: int = 0) -> dict:
    """n completions (test outfits first), n neighbour ids and n search texts of ``home``."""
    cats = {r["item_id"]: r["semantic_category"] for r in query(home, "SELECT item_id, semantic_category FROM polyvore_items").to_pylist()}
    outfits = [items for split in ("test", "valid", "train") for _, items in load_outfits(home, "nondisjoint", split)]
    complete = []
    for items in outfits:
        context, missing = items[:-1], cats[items[-1]]
        if context and missing not in {cats[i] for i in context}:  # a category already there is a 400
            complete.append((context, missing))
    rng = random.Random(seed)
    ids = sorted(cats)
    titles = [t for t in query(home, "SELECT title FROM polyvore_items WHERE title IS NOT NULL ORDER BY item_id")["title"].to_pylist()
              if len(t.split()) >= 2]  # fmt: skip
    texts = [" ".join(rng.sample(rng.choice(titles).split(), 2)) for _ in range(n)]
    return {"complete": complete[:n], "neighbours": rng.sample(ids, n), "search": texts}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(home: Path):
    """A real `atelier api` process over ``home``: (its URL, start-up seconds)."""
    port = free_port()
    log = open(home.parent / f"api-{port}.log", "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "api", "--home", str(home), "--port", str(port)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        if proc.poll() is not None or time.monotonic() >= deadline:
            raise RuntimeError(f"atelier api did not start: {(home.parent / f'api-{port}.log').read_text()[-3000:]}")
        yield url, time.perf_counter() - t0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def request(client: httpx.Client, endpoint: str, arg, mode: str = "vector") -> httpx.Response:
    if endpoint == "complete":
        context, missing = arg
        return client.post("/complete", json={"items": context, "missing": missing, "k": 10})
    if endpoint == "neighbours":
        return client.get(f"/neighbours/{arg}", params={"space": SPACE, "k": 10})
    return client.get("/search", params={"text": arg, "k": 10, "mode": mode})


def stats(ms: list[float]) -> dict:
    return {"median_ms": round(statistics.median(ms), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def over_http(url: str, work: dict, warmup: int) -> dict:
    out = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for endpoint, mode in (("complete", None), ("neighbours", None), ("search", "vector"), ("search", "hybrid")):
            name = endpoint if mode in (None, "vector") else f"search_{mode}"
            for arg in work[endpoint][:warmup]:
                request(client, endpoint, arg, mode).raise_for_status()
            ms, server = [], {}
            for arg in work[endpoint]:
                t0 = time.perf_counter()
                r = request(client, endpoint, arg, mode)
                ms.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
                for key, v in r.json()["timings_ms"].items():
                    server.setdefault(key, []).append(v)
            out[name] = {**stats(ms), "server_timings_ms_median": {k: round(statistics.median(v), 2) for k, v in server.items()}}
    return out


def in_process(home: Path, work: dict, warmup: int) -> dict:
    model = CompletionModel(home, "umbert")
    calls = {
        "complete": lambda a: model.complete(a[0], a[1], k=10, gallery=False),
        "neighbours": lambda a: neighbours(home, a, SPACE, k=10, gallery=False),
        "search": lambda a: search_text(home, a, k=10, mode="vector"),
        "search_hybrid": lambda a: search_text(home, a, k=10, mode="hybrid"),
    }
    out = {}
    for name, fn in calls.items():
        args = work[name.split("_")[0]]
        for a in args[:warmup]:
            fn(a)
        ms = []
        for a in args:
            t0 = time.perf_counter()
            fn(a)
            ms.append((time.perf_counter() - t0) * 1000)
        out[name] = stats(ms)
    out["neighbours"]["parts_median_ms"] = neighbours_parts(home, work["neighbours"])
    return out


def neighbours_parts(home: Path, ids: list[str]) -> dict:
    """Where `neighbours` spends its time: its steps (`flows.jobs.analyses.neighbours`), timed one by one."""
    store, parts = VectorStore(home), {"get_item": [], "search": [], "item_details": []}
    for item in ids:
        t0 = time.perf_counter()
        row = store.get_item(SPACE, item)
        t1 = time.perf_counter()
        hits = store.search(SPACE, row["vector"], k=10, exclude=item).to_pylist()
        t2 = time.perf_counter()
        item_details(home, [item, *(h["item_id"] for h in hits)])
        t3 = time.perf_counter()
        for key, a, b in (("get_item", t0, t1), ("search", t1, t2), ("item_details", t2, t3)):
            parts[key].append((b - a) * 1000)
    return {k: round(statistics.median(v), 2) for k, v in parts.items()}


def throughput(url: str, work: dict, clients: int, per_client: int) -> dict:
    mix = [("complete", a) for a in work["complete"]], [("neighbours", a) for a in work["neighbours"]], [("search", a) for a in work["search"]]
    calls = [c for triple in zip(*mix) for c in triple]
    errors: list[str] = []
    done = [0] * clients

    def run(i: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            for j in range(per_client):
                endpoint, arg = calls[(i * per_client + j) % len(calls)]
                try:
                    r = request(client, endpoint, arg)
                    if r.status_code != 200:
                        errors.append(f"{endpoint} {r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as e:
                    errors.append(f"{endpoint}: {type(e).__name__}: {e}")
                done[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    return {"clients": clients, "requests": sum(done), "seconds": round(seconds, 2), "requests_per_s": round(sum(done) / seconds, 1),
            "errors": len(errors), "first_errors": errors[:5], "mix": "complete, neighbours, search (vector) in turn"}  # fmt: skip


def wall(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    return time.perf_counter() - t0


def cli_commands(home: Path, work: dict) -> dict[str, list[str]]:
    context, missing = work["complete"][0]
    atelier = [sys.executable, "-m", "flows.cli"]
    return {"atelier search 'red top'": [*atelier, "search", "red top", "--home", str(home)],
            f"atelier neighbours ID --space {SPACE}": [*atelier, "neighbours", work["neighbours"][0], "--space", SPACE, "--home", str(home)],
            "atelier complete --items A,B --missing CAT": [*atelier, "complete", "--items", ",".join(context), "--missing", missing,
                                                             "--home", str(home)]}  # fmt: skip


def client_imports(cmd: list[str], env: dict) -> dict:
    """Every module `cmd` loads (python -X importtime), and which heavy ones among them."""
    r = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    modules = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    tops = {m.split(".")[0] for m in modules}
    return {"modules": len(modules), "imports_torch": "torch" in tops, "imports_lancedb": "lancedb" in tops or "lance" in tops,
            "imports_typer": "typer" in tops, "heavy_imported": sorted(h for h in HEAVY if h in tops)}  # fmt: skip


def cli(url: str, home: Path, work: dict, repeat: int) -> dict:
    env = {**os.environ, "ATELIER_API_URL": url, "COLUMNS": "200"}
    env.pop("ATELIER_HOME", None)
    floor_name = "floor: python -c 'import duckdb'"
    client_name = "client start-up alone: python -c 'import flows.cli.remote, flows.cli.show'"  # no request
    commands = {floor_name: [sys.executable, "-c", "import duckdb"], client_name: [sys.executable, "-c", "import flows.cli.remote, flows.cli.show"],
                **cli_commands(home, work)}  # fmt: skip
    for cmd in commands.values():  # warm the file cache (and check each command succeeds)
        wall(cmd, env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, cmd in commands.items():
            times[name].append(wall(cmd, env))
    floor = statistics.median(times[floor_name])
    out = {"repeat": repeat, "goal_ratio": CLI_GOAL, "service": "the home's running `atelier api` (ATELIER_API_URL)",
           "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE"), "commands": {}}  # set: atelier's own modules compile every run
    for name, t in times.items():
        out["commands"][name] = {"median_s": round(statistics.median(t), 3), "min_s": round(min(t), 3),
                                 "ratio_to_floor": round(statistics.median(t) / floor, 2)}  # fmt: skip
        if name not in (floor_name, client_name):
            out["commands"][name]["met"] = out["commands"][name]["ratio_to_floor"] <= CLI_GOAL
    out["client_imports"] = {name: client_imports(cmd, env) for name, cmd in commands.items() if name not in (floor_name, client_name)}
    out["client_imports_torch_or_lancedb"] = any(v["imports_torch"] or v["imports_lancedb"] for v in out["client_imports"].values())
    return out


def bench_home(name: str, home: Path, info: dict, args) -> dict:
    work = workload(home, args.queries)
    warmup = max(3, args.queries // 20)
    print(f"{name}: serving {home}", file=sys.stderr)
    with served(home) as (url, start_s):
        http = over_http(url, work, warmup)
        tp = throughput(url, work, args.clients, args.per_client)
        cli_result = cli(url, home, work, args.cli_repeat)
    local = in_process(home, work, warmup)
    endpoints = {}
    for key, h in http.items():
        goal = GOALS_MS[key.split("_")[0]]
        endpoints[key] = {**h, "in_process": local[key], "http_over_in_process_median": round(h["median_ms"] / local[key]["median_ms"], 2),
                          "goal_ms": goal, "met": h["median_ms"] <= goal}  # fmt: skip
    return {"home": info, "queries": args.queries, "warmup": warmup, "server_start_s": round(start_s, 2), "endpoints": endpoints,
            "throughput": tp, "cli": cli_result}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/api.json"))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--per-client", type=int, default=100)
    parser.add_argument("--cli-repeat", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20, help="umBERT training steps on the catalogue")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 queries, 10 requests per client, 2 CLI repeats")
    args = parser.parse_args()
    if args.quick:
        args.queries, args.per_client, args.cli_repeat, args.steps = 20, 10, 2, 5
    results = {"benchmark": "api", "quick": args.quick, "goals_ms": GOALS_MS, "cli_goal_ratio": CLI_GOAL, "homes": {}}
    with tempfile.TemporaryDirectory(prefix="bench_api_") as tmp:
        demo, demo_info = build_demo(Path(tmp))
        catalogue, catalogue_info = build_catalogue(Path(tmp), demo, args.steps)
        for name, home, info in (("demo", demo, demo_info), ("catalogue", catalogue, catalogue_info)):
            results["homes"][name] = bench_home(name, home, info, args)
    write_results(args.out, results)
    errors = {name: h["throughput"]["errors"] for name, h in results["homes"].items()}
    assert not any(errors.values()), f"requests failed under concurrency: {errors}"


if __name__ == "__main__":
    main()
