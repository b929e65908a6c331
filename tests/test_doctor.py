"""`atelier doctor [--fix]` on a damaged home: each problem listed (exit 1), `--fix` repairs what
it can without losing work, the next doctor is clean but for what needs the user (a damaged lake
table: ingest again), and clean (exit 0) once that is done."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import torch
from typer.testing import CliRunner

from flows.cli import app
from store.lake import Lake
from store.vectors import VectorStore, vector_schema

runner = CliRunner()


def doctor(home: Path, *flags: str) -> tuple[int, dict]:
    res = runner.invoke(app, ["doctor", "--json", *flags, "--home", str(home)])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    return res.exit_code, json.loads(res.stdout)


def problems(report: dict) -> list[tuple[str, str]]:
    """(what, path relative to the home) of the problems not fixed."""
    home = Path(report["home"])
    return sorted((f["what"], _rel(f["path"], home)) for f in report["findings"] if f["severity"] == "problem" and not f["fixed"])


def _rel(path: str, home: Path) -> str:
    return str(Path(path).relative_to(home)) if Path(path).is_relative_to(home) else path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _vectors(home: Path, items: pa.Table) -> None:
    """vectors_resnet: one row per given item, one of them twice, and one item the lake no longer has."""
    ids = [*items["item_id"].to_pylist(), "gone-from-the-release"]
    n = len(ids)
    rows = pa.table({"item_id": ids, "dataset": ["polyvore"] * n, "semantic_category": ["tops"] * n, "split": ["train"] * n,
                     "model": ["resnet"] * n, "model_version": ["resnet/v1@00000000"] * n,
                     "image_sha1": [*items["image_sha1"].to_pylist(), "0" * 40],
                     "vector": [[float(i), 1.0, 0.0, 0.0] for i in range(n)]}, schema=vector_schema(4))  # fmt: skip
    store = VectorStore(home)
    store.upsert("resnet", rows)
    store.table("resnet").add(rows.slice(0, 1))  # what two unlocked writers left


def damaged_home(sample_lake: Path, tmp_path: Path) -> tuple[Path, dict]:
    from models import AutoencoderConfig, ConvAutoencoder

    home = tmp_path / "home"
    shutil.copytree(sample_lake / "lake" / "polyvore", home / "lake" / "polyvore")
    lake = Lake(home)
    items = lake.read("polyvore", "items")
    _vectors(home, items.filter(pc.field("image_ok")).slice(0, 5))
    fitb = lake.path("polyvore", "fitb")
    fitb.write_bytes(fitb.read_bytes()[: fitb.stat().st_size // 2])  # a truncated table
    finished = ConvAutoencoder(AutoencoderConfig(image_size=32, channels=(8, 16))).save_pretrained(home / "models" / "ae" / "v1")
    resumable = home / "models" / "ae" / "v2" / "ckpt"
    resumable.mkdir(parents=True)
    torch.save({"step": 2, "model": {"w": torch.zeros(2)}}, resumable / "checkpoint.pt")  # a readable checkpoint
    orphan = home / "models" / "resnet" / "v1"
    (orphan / "ckpt").mkdir(parents=True)  # killed before its first checkpoint
    truncated = home / "models" / "resnet" / "v2" / "ckpt"
    truncated.mkdir(parents=True)
    (truncated / "checkpoint.pt").write_bytes(b"PK\x03\x04 killed mid-write")
    leftovers = [home / "lake" / "polyvore" / ".items.0123abcd.tmp", finished / "model.safetensors.tmp",
                 home / "reports" / "eval_ae.json.tmp"]  # fmt: skip
    for p in leftovers:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"partial")
    lock = home / "locks" / "embed-resnet.lock"
    lock.parent.mkdir()
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "started": "2026-01-01T00:00:00Z",
                                "what": "embed resnet"}))  # fmt: skip
    return home, {"fitb": fitb, "finished": finished, "resumable": resumable.parent, "orphans": [orphan, truncated.parent],
                  "leftovers": leftovers, "lock": lock}  # fmt: skip


def test_doctor_lists_fixes_and_then_is_clean(sample_lake, sample_root, tmp_path):
    home, parts = damaged_home(sample_lake, tmp_path)
    code, report = doctor(home)
    assert code == 1
    rel = lambda p: str(p.relative_to(home))  # noqa: E731
    vectors = "vectors/vectors_resnet.lance"
    assert problems(report) == sorted([
        ("leftover", rel(parts["leftovers"][0])), ("leftover", rel(parts["leftovers"][1])), ("leftover", rel(parts["leftovers"][2])),
        ("lake table", rel(parts["fitb"])), ("lock", rel(parts["lock"])),
        ("model", rel(parts["orphans"][0])), ("model", rel(parts["orphans"][1])),
        ("vector space", vectors), ("vector space", vectors),
    ])  # fmt: skip
    found = {(f["what"], _rel(f["path"], home)): f for f in report["findings"]}
    assert "cannot be read as Parquet" in found[("lake table", rel(parts["fitb"]))]["problem"]
    assert "atelier ingest polyvore" in found[("lake table", rel(parts["fitb"]))]["fix"]
    assert "stale lock of embed resnet" in found[("lock", rel(parts["lock"]))]["problem"]
    assert "unreadable checkpoint" in found[("model", rel(parts["orphans"][1]))]["problem"]
    spaces = [f["problem"] for f in report["findings"] if f["what"] == "vector space" and f["severity"] == "problem"]
    assert sorted(spaces) == ["1 vectors of items no longer usable (gone-from-the-release)", "7 rows for 6 item ids: 1 duplicate rows"]
    resumable = found[("model", rel(parts["resumable"]))]
    assert resumable["severity"] == "note" and "atelier train ae --resume" in resumable["fix"]
    assert report["checked"] == {"locks": 1, "leftovers": 3, "lake tables": 9, "model versions": 4, "vector spaces": 1}

    code, fixed = doctor(home, "--fix")
    assert code == 1 and problems(fixed) == [("lake table", rel(parts["fitb"]))]  # a damaged table needs its release
    assert not any(p.exists() for p in [*parts["leftovers"], *parts["orphans"], parts["lock"]])
    assert (parts["finished"] / "model.safetensors").exists() and (parts["resumable"] / "ckpt" / "checkpoint.pt").exists()
    stored = VectorStore(home).read("resnet", ["item_id"])["item_id"].to_pylist()
    assert len(stored) == len(set(stored)) == 5 and "gone-from-the-release" not in stored

    code, again = doctor(home)
    assert code == 1 and problems(again) == [("lake table", rel(parts["fitb"]))]
    assert not any(f["fixed"] for f in again["findings"])

    from flows.jobs.ingest import ingest

    ingest("polyvore", sample_root / "polyvore", home)  # what the fix says
    code, clean = doctor(home)
    assert code == 0 and problems(clean) == []
    res = runner.invoke(app, ["doctor", "--home", str(home)])
    assert res.exit_code == 0 and "note model models/ae/v2" in res.stdout and "no problems left" in res.stdout
    assert not [line for line in res.stdout.splitlines() if line.startswith("problem ")]


def test_doctor_on_no_home_and_a_clean_home(tmp_path):
    res = runner.invoke(app, ["doctor", "--home", str(tmp_path / "nothing")])
    assert res.exit_code == 1 and "no atelier home at" in res.output and "Traceback" not in res.output
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["doctor", "--home", str(tmp_path / "empty")])
    assert res.exit_code == 0 and "no problems found" in res.stdout
