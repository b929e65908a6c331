"""Two `atelier embed` of one space started together (issue 14: 968 rows for 484 items, then
"query vector has shape (256,)"): one runs, the other stops at once naming it; the space ends
with rows == distinct item_id == usable images. Also the CLI's messages for a damaged space
and `--rebuild`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from flows.cli import app
from models import AutoencoderConfig, ConvAutoencoder, ResNetConfig, ResNetEmbedder
from store import VectorStore, query

ROOT = Path(__file__).resolve().parents[1]
# each process imports everything first (as a started command would have), then waits for the
# start signal and runs the `atelier` command line: both reach the lock within milliseconds
RUNNER = """
import sys, time
from pathlib import Path
import lancedb, torch  # noqa: F401
import flows.jobs.embed  # noqa: F401
from flows.cli import app
print("ready", flush=True)
while not Path(sys.argv[1]).exists():
    time.sleep(0.002)
app(sys.argv[2:], prog_name="atelier")
"""


@pytest.fixture
def polyvore_home(sample_lake, tmp_path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(sample_lake / "lake" / "polyvore", home / "lake" / "polyvore")
    return home


def usable_ids(home: Path) -> list[str]:
    return query(home, "select item_id from polyvore_items where image_ok")["item_id"].to_pylist()


def start(home: Path, go: Path, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-c", RUNNER, str(go), "embed", *args, "--home", str(home), "--no-prefect"]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("trial", [0, *(pytest.param(i, marks=pytest.mark.slow) for i in (1, 2, 3))])
def test_two_embeds_at_once_one_runs_the_other_says_so(polyvore_home, tmp_path, trial):
    torch.manual_seed(trial)
    ResNetEmbedder(ResNetConfig(num_classes=11, image_size=32)).save_pretrained(polyvore_home / "models" / "resnet" / "v1")
    go = tmp_path / "go"
    procs = [start(polyvore_home, go, "resnet") for _ in range(2)]
    try:
        for p in procs:
            if p.stdout.readline().strip() != "ready":
                p.wait(timeout=60)
                pytest.fail(f"the embed process did not start: {p.stderr.read()}")
        go.touch()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:  # each process's output and the moment it ended
            outs = list(pool.map(lambda p: (*p.communicate(timeout=300), p.returncode, time.perf_counter() - t0), procs))
    finally:
        for p in procs:
            p.kill()
    ok = [o for o in outs if o[2] == 0]
    refused = [o for o in outs if o[2] != 0]
    assert len(ok) == 1 and len(refused) == 1, outs
    (ok_out, _, _, ok_seconds), (_, err, code, refused_seconds) = ok[0], refused[0]
    winner = procs[outs.index(ok[0])].pid
    assert code == 1 and "Traceback" not in err
    assert f"embed resnet is already running (pid {winner} on " in " ".join(err.split())
    assert refused_seconds < ok_seconds  # refused at once, not after the other finished
    n = len(usable_ids(polyvore_home))
    assert f"{n} embedded, 0 unchanged" in ok_out
    ids = VectorStore(polyvore_home).read("resnet", ["item_id"])["item_id"].to_pylist()
    assert len(ids) == len(set(ids)) == n and set(ids) == set(usable_ids(polyvore_home))
    assert not list((polyvore_home / "locks").iterdir())  # the lock went with its holder


def test_cli_damaged_space_message_then_rebuild(polyvore_home):
    torch.manual_seed(0)
    ConvAutoencoder(AutoencoderConfig(image_size=32, channels=(8, 16))).save_pretrained(polyvore_home / "models" / "ae" / "v1")
    runner = CliRunner()
    args = ["embed", "ae", "--home", str(polyvore_home), "--no-prefect"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    n = len(usable_ids(polyvore_home))
    next((polyvore_home / "vectors" / "vectors_ae.lance" / "data").glob("*.lance")).unlink()
    damaged = runner.invoke(app, args)
    text = " ".join(damaged.output.split())
    assert damaged.exit_code == 1 and damaged.exception is None or isinstance(damaged.exception, SystemExit)
    assert "vectors/vectors_ae.lance" in text and "atelier embed ae --rebuild" in text and "Traceback" not in text
    rebuilt = runner.invoke(app, [*args, "--rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert f"rebuilt, {n} embedded, 0 unchanged, 0 failed" in " ".join(rebuilt.output.split())
    assert VectorStore(polyvore_home).count("ae") == n


def test_embed_flow_holds_the_lock_and_prunes_before_its_shards(polyvore_home, prefect_api):
    """The Prefect path: the flow holds ``embed-<space>`` around its shards, and with several
    shards removes stale vectors before them."""
    import pyarrow.compute as pc
    from test_embed import rewrite_lake

    from flows.orchestration.pipelines import embed_flow
    from store.locks import LockHeld, lock

    torch.manual_seed(0)
    ConvAutoencoder(AutoencoderConfig(image_size=32, channels=(8, 16))).save_pretrained(polyvore_home / "models" / "ae" / "v1")
    with lock(polyvore_home, "embed-ae", "embed ae"), pytest.raises(LockHeld, match="embed ae is already running"):
        embed_flow("ae", str(polyvore_home), shards=2)
    n = len(usable_ids(polyvore_home))
    assert embed_flow("ae", str(polyvore_home), shards=2)["n_embedded"] == n
    broken = usable_ids(polyvore_home)[0]
    rewrite_lake(polyvore_home, "polyvore", "items", lambda t: t.filter(pc.not_equal(t["item_id"], broken)))
    again = embed_flow("ae", str(polyvore_home), shards=2)
    assert (again["n_stale_removed"], again["stale_ids"], again["n_embedded"], again["finalize"]["rows"]) == (1, [broken], 0, n - 1)


def test_learned_vectors_are_written_under_the_space_lock(tmp_path):
    """WumBERT's training writes ``vectors_wumbert``: it too is one writer at a time."""
    import numpy as np
    import pyarrow as pa

    from flows.jobs.outfits import Catalogue, load_catalogue, write_learned_vectors
    from store.locks import LockHeld, held_locks, lock

    home, ids = tmp_path / "home", ["a", "b", "c"]
    VectorStore(home).upsert("toy", pa.table({
        "item_id": ids, "dataset": ["polyvore"] * 3, "semantic_category": ["tops", "shoes", "bags"], "split": [None] * 3,
        "model": ["toy"] * 3, "model_version": ["t1"] * 3, "image_sha1": ids,
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(np.eye(3, 4, dtype=np.float32).reshape(-1)), 4)}))  # fmt: skip
    catalogue = load_catalogue(home, "toy")
    assert isinstance(catalogue, Catalogue)

    class Model:  # what write_learned_vectors asks of a WumBERT
        def item_vectors(self, vectors, index):
            return vectors[index] * 2

    with lock(home, "embed-wumbert", "embed wumbert"), pytest.raises(LockHeld, match="embed wumbert is already running"):
        write_learned_vectors(home, Model(), catalogue, "v1")
    assert "wumbert" not in VectorStore(home).spaces()
    assert write_learned_vectors(home, Model(), catalogue, "v1") == 3 and held_locks(home) == []
