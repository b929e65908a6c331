"""Training throughput of the one loop (``models.loop.fit``) for every model kind, against the
per-kind loops it replaced and a bare loop floor; writes ``bench/results/train_throughput.json``.

Each kind trains a tiny model on synthetic tensors (batch sizes as the real jobs: 32 images, 64
outfits) through its public ``train_*`` function, on CPU, with evaluations at step 0 and at the
end only and no checkpoint directory. Steps per second count the optimizer steps only: the time
inside the kind's evaluation functions (and the autoencoder's mean image) is taken out of the
call's wall time, the same way under both trees.

- ``new``: this tree. ``old``: ``--compare-ref`` (default: the parent of the commit that added
  ``models/loop.py``), checked out with ``git worktree add`` in a temporary folder. The same
  worker (this file, ``--worker``) runs in a subprocess with ``PYTHONPATH`` at each tree in turn
  (old, new; new, old; old, new ... ``--rounds`` times), so machine load falls on both alike; steps/s
  are the medians over the rounds, ratios the medians of each round's ratio.
- ``bare``: the same model and batches, pre-built in a list, through plain forward, loss,
  backward and ``AdamW.step`` (no schedule, clipping, logging or evaluation), timed in the
  ``new`` workers after their loops.
- ``identical_to_old``: the first round's final weights, evaluations and loss curve of old and
  new compared exactly (same seeds, CPU): the port changed no result.

Each worker runs torch on ``--threads`` threads (default 1: on a shared 2-core machine two
threads contend and the figures scatter). Usage: ``python bench/bench_train.py [--compare-ref REF]
[--rounds 3] [--steps 5] [--threads 1]``; 5 to 9 minutes on 2 cores, with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("classifier", "autoencoder", "clip", "siamese", "attributes", "outfit")
OUT = ROOT / "bench" / "results" / "train_throughput.json"
IMAGE_BATCH, OUTFIT_BATCH, SIZE = 32, 64, 32
# timed steps = --steps x this: the fast kinds run more steps, so that each timed run lasts a
# second or more and the loop's fixed costs (setup, the keep-best copy) weigh as in a real run
SCALE = {"classifier": 1, "autoencoder": 10, "clip": 3, "siamese": 1, "attributes": 1, "outfit": 20}


# ----------------------------------------------------------------------------- worker (runs under either tree)


@dataclass
class Case:
    model: object  # () -> a freshly seeded model
    train: object  # (model, cfg) -> metrics, through the tree's public train function
    module: object  # the module whose evaluation functions are timed out
    excluded: tuple  # names of those functions
    batches: object  # (n) -> n batches, pre-built, for the bare loop
    loss: object  # (model, batch) -> loss, for the bare loop


def _images(n: int, seed: int):
    import torch

    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _labels(n: int, k: int, seed: int):
    import torch

    return torch.randint(0, k, (n,), generator=torch.Generator().manual_seed(seed))


def _seeded(make):
    import torch

    def model():
        torch.manual_seed(0)
        return make()

    return model


def _loader_batches(dataset, n: int):
    from torch.utils.data import DataLoader

    out = []
    while len(out) < n:
        out.extend(DataLoader(dataset, batch_size=IMAGE_BATCH, shuffle=True))
    return out[:n]


def case(kind: str) -> Case:
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, Dataset, TensorDataset

    if kind in ("classifier", "autoencoder"):
        import models.train as mod
        from models import AutoencoderConfig, ConvAutoencoder, ResNetConfig, ResNetEmbedder

        if kind == "classifier":
            train = TensorDataset(_images(256, 1), _labels(256, 4, 2))
            val = TensorDataset(_images(32, 3), _labels(32, 4, 4))
            return Case(_seeded(lambda: ResNetEmbedder(ResNetConfig(num_classes=4, embedding_dim=32, image_size=SIZE))),
                        lambda m, cfg: mod.train_classifier(m, DataLoader(train, IMAGE_BATCH, shuffle=True),
                                                            DataLoader(val, IMAGE_BATCH), cfg),
                        mod, ("evaluate_classifier",), lambda n: _loader_batches(train, n),
                        lambda m, b: F.cross_entropy(m(b[0]), b[1]))  # fmt: skip
        train, val = TensorDataset(_images(256, 1)), TensorDataset(_images(32, 3))
        return Case(_seeded(lambda: ConvAutoencoder(AutoencoderConfig(image_size=SIZE, embedding_dim=32, channels=(16, 32, 64)))),
                    lambda m, cfg: mod.train_autoencoder(m, DataLoader(train, IMAGE_BATCH, shuffle=True),
                                                         DataLoader(val, IMAGE_BATCH), cfg),
                    mod, ("evaluate_autoencoder", "mean_image"), lambda n: _loader_batches(train, n),
                    lambda m, b: m.loss(m(b[0]), b[0]))  # fmt: skip

    if kind == "clip":
        import models.clip_train as mod
        from models import ClipConfig, ClipEmbedder
        from models.clip import clip_loss
        from models.clip_text import WordTokenizer

        words = "red blue green black white long short striped floral dress top skirt coat shirt".split()
        g = torch.Generator().manual_seed(5)
        captions = [" ".join(words[int(i)] for i in torch.randint(len(words), (6,), generator=g)) for _ in range(288)]

        class Pairs(Dataset):
            def __init__(self, images, texts):
                self.images, self.texts = images, texts

            def __len__(self):
                return len(self.texts)

            def __getitem__(self, i):
                return self.images[i], self.texts[i]

        train, val = Pairs(_images(256, 1), captions[:256]), Pairs(_images(32, 3), captions[256:])
        tokenizer = WordTokenizer.build(captions)
        config = ClipConfig(vocab_size=len(tokenizer), image_size=SIZE, vision_layers=2, text_layers=2, max_length=16)
        return Case(_seeded(lambda: ClipEmbedder(config, tokenizer)),
                    lambda m, cfg: mod.train_clip(m, DataLoader(train, IMAGE_BATCH, shuffle=True), DataLoader(val, IMAGE_BATCH), cfg),
                    mod, ("evaluate_clip",), lambda n: _loader_batches(train, n),
                    lambda m, b: clip_loss(m(b[0], m.tokenize(list(b[1])))))  # fmt: skip

    if kind == "siamese":
        import models.siamese_train as mod
        from models import SiameseConfig, SiameseEncoder
        from models.siamese import PairSet, siamese_loss

        def pairs(n: int, seed: int) -> PairSet:
            groups = _labels(n, n // 2, seed)
            return PairSet((_images(n, seed) * 255).to(torch.uint8), (_images(n, seed + 1) * 255).to(torch.uint8),
                           groups, groups.clone(), torch.stack([torch.arange(n), torch.arange(n)], 1))  # fmt: skip

        train, val = pairs(256, 1), pairs(32, 3)
        return Case(_seeded(lambda: SiameseEncoder(SiameseConfig(mode="sketch", embedding_dim=32, image_size=SIZE))),
                    lambda m, cfg: mod.train_siamese_model(m, train, val, cfg),
                    mod, ("evaluate_pairs",), lambda n: _loader_batches(mod.PairDataset(train), n),
                    lambda m, b: siamese_loss(m(b[0], b[1]), b[2]))  # fmt: skip

    if kind == "attributes":
        import models.attributes_train as mod
        from models import AttributeClassifier, AttributeConfig

        class Labelled(Dataset):
            def __init__(self, n, seed):
                self.x, self.neck, self.sleeve = _images(n, seed), _labels(n, 4, seed + 1), _labels(n, 3, seed + 2)

            def __len__(self):
                return len(self.x)

            def __getitem__(self, i):
                return self.x[i], {"neck": self.neck[i], "sleeve": self.sleeve[i]}

        train, val = Labelled(256, 1), Labelled(32, 5)
        config = AttributeConfig(heads={"neck": 4, "sleeve": 3}, image_size=SIZE, missing_class=False)
        return Case(_seeded(lambda: AttributeClassifier(config)),
                    lambda m, cfg: mod.train_attribute_classifier(m, DataLoader(train, IMAGE_BATCH, shuffle=True),
                                                                  DataLoader(val, IMAGE_BATCH), cfg),
                    mod, ("evaluate_attributes",), lambda n: _loader_batches(train, n),
                    lambda m, b: mod.attribute_loss(m(b[0]), b[1])[0])  # fmt: skip

    import models.outfit_train as mod
    from models import OutfitConfig, UmBERT
    from models.outfit import contrastive_loss

    gen = torch.Generator().manual_seed(9)
    styles, item_style = torch.randn(20, 32, generator=gen), torch.randint(20, (400,), generator=gen)
    vectors = styles[item_style] + 0.5 * torch.randn(400, 32, generator=gen)  # items near their style
    categories = torch.arange(400) % 4

    def data(n_outfits: int, seed: int):
        """Outfits of 2-4 items (one per category) of one style: a masked item is predictable."""
        g, outfits = torch.Generator().manual_seed(seed), []
        while len(outfits) < n_outfits:
            style, k = int(torch.randint(20, (1,), generator=g)), int(torch.randint(2, 5, (1,), generator=g))
            rows = [((item_style == style) & (categories == c)).nonzero().flatten() for c in range(k)]
            rows = [int(r[torch.randint(len(r), (1,), generator=g)]) for r in rows if len(r)]
            if len(rows) >= 2:
                outfits.append(torch.tensor(rows))
        return mod.OutfitData(vectors, categories, outfits)

    train, val = data(512, 1), data(64, 2)
    config = OutfitConfig(item_dim=32, categories=("a", "b", "c", "d"), d_model=64, n_heads=4, ff_dim=128)

    def batches(n: int):
        g = torch.Generator().manual_seed(3)
        out = []
        for _ in range(n):
            pick = torch.randint(len(train.outfits), (OUTFIT_BATCH,), generator=g).tolist()
            outfits = [train.outfits[i] for i in pick]
            slots = torch.tensor([int(torch.randint(len(o), (1,), generator=g)) for o in outfits])
            out.append(mod.outfit_batch(train, outfits, slots))
        return out

    def loss(m, b):
        pred = m(b["vectors"], b["categories"], b["masked"], b["padding"], None)
        return contrastive_loss(pred, m.item_vectors(b["vectors"]), b["masked"], b["categories"], b["padding"], b["rows"],
                                m.config.temperature)  # fmt: skip

    return Case(_seeded(lambda: UmBERT(config)), lambda m, cfg: mod.train_outfit_model(m, train, val, cfg),
                mod, ("evaluate_outfits",), batches, loss)  # fmt: skip


def _config(steps: int, batch_size: int):
    from models.train import TrainConfig  # in both trees

    return TrainConfig(steps=steps, lr=1e-3, min_lr=1e-4, warmup_steps=2, batch_size=batch_size, seed=0, device="cpu",
                       eval_every=steps)  # fmt: skip


def time_loop(c: Case, steps: int, batch_size: int) -> tuple[float, dict, object]:
    """(train seconds, metrics, model) of one ``steps`` run: the call's wall time less the time
    inside the excluded (evaluation) functions."""
    spent = [0.0]
    originals = {name: getattr(c.module, name) for name in c.excluded}

    def timed(fn):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - t

        return wrapper

    for name, fn in originals.items():
        setattr(c.module, name, timed(fn))
    try:
        model = c.model()
        t = time.perf_counter()
        metrics = c.train(model, _config(steps, batch_size))
        wall = time.perf_counter() - t
    finally:
        for name, fn in originals.items():
            setattr(c.module, name, fn)
    return wall - spent[0], metrics, model


def time_bare(c: Case, steps: int) -> float:
    """Seconds of ``steps`` plain steps (after 2 untimed) on pre-built batches."""
    import torch

    model = c.model()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = c.batches(steps + 2)
    for i, batch in enumerate(batches):
        if i == 2:
            t = time.perf_counter()
        loss = c.loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - t


def worker(args) -> None:
    import torch

    import models

    torch.set_num_threads(args.threads)
    if not Path(models.__file__).resolve().is_relative_to(Path(args.tree).resolve()):
        raise SystemExit(f"imported {models.__file__}, not from {args.tree}: check PYTHONPATH")
    out = {"models_file": models.__file__, "kinds": {}}
    kinds = args.kinds.split(",")
    for kind in kinds:  # every loop first, so that old and new workers time them in the same state
        c = case(kind)
        batch = OUTFIT_BATCH if kind == "outfit" else IMAGE_BATCH
        steps = args.steps * SCALE[kind]
        time_loop(c, 1, batch)  # warm-up: allocator, lazy imports, first evaluation
        seconds, metrics, model = time_loop(c, steps, batch)
        out["kinds"][kind] = {"steps": steps, "loop_steps_per_s": steps / seconds, "loop_seconds": seconds,
                              "reported_train_seconds": metrics.get("train_seconds")}  # fmt: skip
        if args.dump:
            torch.save({"state": {k: v.clone() for k, v in model.state_dict().items()},
                        "evals": metrics["evals"], "curve": metrics.get("train_loss_curve")},
                       Path(args.dump) / f"{kind}.pt")  # fmt: skip
    for kind in kinds if args.bare else ():
        steps = out["kinds"][kind]["steps"]
        out["kinds"][kind]["bare_steps_per_s"] = steps / time_bare(case(kind), steps)
    Path(args.json_out).write_text(json.dumps(out))


# ----------------------------------------------------------------------------- driver


def default_ref() -> str:
    added = subprocess.run(["git", "log", "--diff-filter=A", "--format=%H", "--", "models/loop.py"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    return f"{added[-1]}^" if added else "HEAD"


def run_worker(tree: Path, kinds: list[str], steps: int, threads: int, bare: bool, dump: Path | None, tmp: Path) -> dict:
    out = tmp / "worker.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--tree", str(tree), "--kinds", ",".join(kinds),
           "--steps", str(steps), "--threads", str(threads), "--json-out", str(out)]  # fmt: skip
    if bare:
        cmd.append("--bare")
    if dump is not None:
        dump.mkdir(parents=True, exist_ok=True)
        cmd += ["--dump", str(dump)]
    env = {**os.environ, "PYTHONPATH": str(tree), "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run(cmd, env=env, check=True, cwd=tmp)
    return json.loads(out.read_text())


def identical(old: Path, new: Path, kind: str) -> bool:
    import torch

    a, b = torch.load(old / f"{kind}.pt", weights_only=True), torch.load(new / f"{kind}.pt", weights_only=True)
    same_weights = a["state"].keys() == b["state"].keys() and all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])
    same_curve = a["curve"] is None or b["curve"] is None or a["curve"] == b["curve"]  # the old outfit loop had none
    return same_weights and a["evals"] == b["evals"] and same_curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare-ref", default=None, help="git ref of the previous loops (default: before models/loop.py)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps per run (x SCALE[kind])")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each worker (1: steadiest on a shared machine)")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dump", help=argparse.SUPPRESS)
    parser.add_argument("--json-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    from benchutil import write_results

    ref = args.compare_ref or default_ref()
    sha = subprocess.run(["git", "rev-parse", ref], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    kinds = args.kinds.split(",")
    rows: dict[str, dict[str, list]] = {k: {"old": [], "new": [], "bare": []} for k in kinds}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp_name:
        tmp = Path(tmp_name)
        old_tree = tmp / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old_tree), sha], cwd=ROOT, check=True, capture_output=True)
        try:
            for r in range(args.rounds):
                order = (("old", old_tree), ("new", ROOT))
                for side, tree in order if r % 2 == 0 else order[::-1]:  # old, new / new, old / ...
                    dump = tmp / f"dump_{side}" if r == 0 else None
                    out = run_worker(tree, kinds, args.steps, args.threads, side == "new", dump, tmp)
                    for kind, row in out["kinds"].items():
                        rows[kind][side].append(row["loop_steps_per_s"])
                        if side == "new":
                            rows[kind]["bare"].append(row["bare_steps_per_s"])
                    print(f"round {r + 1}/{args.rounds} {side}: " + ", ".join(
                        f"{k} {row['loop_steps_per_s']:.2f}" for k, row in out["kinds"].items()), flush=True)  # fmt: skip
            same = {k: identical(tmp / "dump_old", tmp / "dump_new", k) for k in kinds}
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT, check=False)

    results = {}
    for kind in kinds:
        r = rows[kind]
        new, old, bare = (statistics.median(r[s]) for s in ("new", "old", "bare"))
        # ratios within a round (old and new back to back, bare in the new worker), then the median:
        # the machine's load drifts between rounds, less within one
        to_old = statistics.median(n / o for n, o in zip(r["new"], r["old"]))
        to_bare = statistics.median(n / b for n, b in zip(r["new"], r["bare"]))
        results[kind] = {"new_steps_per_s": round(new, 3), "old_steps_per_s": round(old, 3),
                         "new_to_old_ratio": round(to_old, 3), "bare_steps_per_s": round(bare, 3),
                         "new_to_bare_ratio": round(to_bare, 3), "identical_to_old": same[kind],
                         "rounds": {s: [round(v, 3) for v in rows[kind][s]] for s in ("new", "old", "bare")}}  # fmt: skip
    write_results(args.out, {
        "benchmark": "training throughput, optimizer steps per second (evaluation time excluded), CPU",
        "compare_ref": ref, "compare_sha": sha, "rounds": args.rounds,
        "steps_per_run": {k: args.steps * SCALE[k] for k in kinds},
        "batch_sizes": {"images": IMAGE_BATCH, "outfits": OUTFIT_BATCH}, "image_size": SIZE,
        "threads": args.threads, "seconds": round(time.perf_counter() - t0, 1),
        "kinds": results,
    })  # fmt: skip


if __name__ == "__main__":
    main()
