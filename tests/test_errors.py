"""Every failure a user can cause ends with one message naming the file and the fix, exit code 1,
no traceback (unless --debug), and no partial file left behind (`flows.cli.errors`).

A full disk is a tiny tmpfs where this process may mount one (root with CAP_SYS_ADMIN), else a
write hook raising what the real writer raises on a full disk (the text was taken from a real
1 MiB tmpfs). A read-only home is a read-only bind mount (root), chmod (not root), else a hook.
``ATELIER_TEST_NO_MOUNT=1`` runs the hooks where mounting works.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import models.pretrained
from flows.cli import app
from store.lake import Lake

runner = CliRunner()
TINY = ["--steps", "2", "--image-size", "32", "--batch-size", "8", "--no-prefect"]
# what LanceDB raised writing to a full 1 MiB tmpfs
LANCE_FULL = ("lance error: LanceError(IO): No space left on device (os error 28), /root/.cargo/registry/src/"
              "index.crates.io-1949cf8c6b5b557f/lance-file-13.0.0/src/writer/structural.rs:191:9")  # fmt: skip


@pytest.fixture
def home(sample_lake, tmp_path) -> Path:
    """A private home holding the sample Polyvore lake (a plain copy: free to damage)."""
    home = tmp_path / "home"
    shutil.copytree(sample_lake / "lake" / "polyvore", home / "lake" / "polyvore")
    return home


def atelier(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def assert_message(res, *names: str | Path) -> str:
    """Exit code 1, no traceback, the message names each of ``names``; returns the output joined
    into one line (rich wraps long lines)."""
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "error:" in text, text
    for name in names:
        assert " ".join(str(name).split()) in text, (name, text)
    return text


def leftovers(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.name.endswith(".tmp")) if folder.exists() else []


def _mount(*args: str) -> bool:
    """`mount ARGS` when this process may mount (ATELIER_TEST_NO_MOUNT=1 tests the hooks instead)."""
    if os.geteuid() != 0 or shutil.which("mount") is None or os.environ.get("ATELIER_TEST_NO_MOUNT"):
        return False
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextmanager
def tiny_disk(folder: Path):
    """A 64 KiB tmpfs on ``folder`` when it can be mounted; yields whether it was."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder))
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=True)


class FullDisk(io.BytesIO):
    """A file on a disk with ``room`` bytes left: the write past it fails with ENOSPC."""

    def __init__(self, path: Path, room: int):
        super().__init__()
        self.path, self.room = path, room
        path.write_bytes(b"")  # the temp file exists, as on a real disk

    def write(self, data) -> int:
        if self.tell() + len(data) > self.room:
            self.path.write_bytes(self.getvalue())  # what reached the disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def fill_disk_for(monkeypatch, suffix: str, room: int = 4096):
    """Writes through `models.pretrained.write_atomic` of files ending in ``suffix`` hit a full disk."""
    real = models.pretrained.open_for_write
    monkeypatch.setattr(models.pretrained, "open_for_write",
                        lambda p: FullDisk(p, room) if str(p).endswith(suffix) else real(p))  # fmt: skip


def test_disk_full_in_train_removes_the_checkpoint_and_names_it(home, monkeypatch):
    with tiny_disk(home / "models") as mounted:
        if not mounted:
            fill_disk_for(monkeypatch, "checkpoint.pt.tmp")
        res = atelier("train", "ae", *TINY, "--home", home)
        text = assert_message(res, "disk full while writing", home / "models" / "ae" / "v1" / "ckpt" / "checkpoint.pt",
                              "free space on")  # fmt: skip
        assert "then run the command again" in text and "The partial file was removed" in text
        assert leftovers(home) == []
        assert not (home / "models" / "ae" / "v1").exists()  # no orphan version: nothing to resume from


def test_disk_full_saving_the_model_says_resume_and_resume_finishes(home, monkeypatch):
    fill_disk_for(monkeypatch, "model.safetensors.tmp")
    res = atelier("train", "ae", *TINY, "--home", home)
    version = home / "models" / "ae" / "v1"
    assert_message(res, f"disk full while writing {version / 'model.safetensors'}", f"atelier train ae --resume --home {home}")
    assert leftovers(home) == [] and not (version / "config.json").exists()  # unfinished, never picked
    monkeypatch.undo()
    res = atelier("train", "ae", *TINY, "--resume", "--home", home)
    assert res.exit_code == 0, res.output
    assert (version / "config.json").exists() and (version / "model.safetensors").exists() and leftovers(home) == []


def test_disk_full_in_ingest_names_the_file_and_leaves_the_lake_as_it_was(home, sample_root, monkeypatch):
    import pyarrow.parquet as pq

    before = {v: p.read_bytes() for v, p in Lake(home).tables().items()}
    real = pq.write_table

    def full(table, where, *a, **kw):  # pyarrow's own ENOSPC: an OSError without a file name
        real(table.slice(0, 1), where, *a, **kw)
        raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(pq, "write_table", full)
    res = atelier("ingest", "polyvore", sample_root / "polyvore", "--no-prefect", "--home", home)
    assert_message(res, f"disk full while writing {home / 'lake' / '.versions' / 'polyvore'}", "items.parquet", "free space on")
    assert {v: p.read_bytes() for v, p in Lake(home).tables().items()} == before
    assert Lake(home).garbage() == [] and leftovers(home / "lake") == []


def test_disk_full_in_embed(home, monkeypatch):
    from flows.jobs.embed import EmbedResult  # noqa: F401  (the job imports before the mount)
    from models import AutoencoderConfig, ConvAutoencoder

    torch.manual_seed(0)
    ConvAutoencoder(AutoencoderConfig(image_size=32, channels=(8, 16))).save_pretrained(home / "models" / "ae" / "v1")
    with tiny_disk(home / "vectors") as mounted:
        if not mounted:
            import store.vectors

            def full(self, space, rows, *a, **kw):
                raise RuntimeError(LANCE_FULL)

            monkeypatch.setattr(store.vectors.VectorStore, "upsert", full)
        res = atelier("embed", "ae", "--dataset", "polyvore", "--no-prefect", "--home", home)
        text = assert_message(res, f"disk full while writing {home / 'vectors'}", f"free space on {home / 'vectors' if mounted else ''}")
    assert "What was written before is intact" in text  # Lance commits a write whole or not at all


def test_report_written_on_a_full_disk_leaves_no_temp(tmp_path, monkeypatch):
    from store.files import write_text

    target = tmp_path / "reports" / "eval_ae.json"
    with tiny_disk(target.parent) as mounted:
        if not mounted:
            real = Path.write_text

            def full(self, data, *a, **kw):
                real(self, data[:10], *a, **kw)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(Path, "write_text", full)
        with pytest.raises(OSError) as e:
            write_text(target, "x" * 200_000)
        assert e.value.errno == errno.ENOSPC and e.value.filename == str(target)
        assert list(target.parent.iterdir()) == []


@contextmanager
def read_only(home: Path, monkeypatch):
    """``home`` read-only: a read-only bind mount (root), chmod (not root), else a hook making
    every mkdir / temp file under it fail with EROFS. Yields how."""
    if os.geteuid() != 0:
        folders = [home, *(p for p in home.rglob("*") if p.is_dir() and not p.is_symlink())]
        for p in folders:
            p.chmod(0o555)
        try:
            yield "chmod"
        finally:
            for p in folders:
                p.chmod(0o755)
        return
    if _mount("--bind", str(home), str(home)):
        try:
            if _mount("-o", "remount,bind,ro", str(home)):
                yield "mount"
                return
        finally:
            subprocess.run(["umount", "-l", str(home)], check=True)
    real_mkdir = Path.mkdir

    def mkdir(self, *a, **kw):
        if Path(os.path.abspath(self)).is_relative_to(home) and not self.exists():
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *a, **kw)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    yield "hook"


def test_read_only_home(home, monkeypatch):
    with read_only(home, monkeypatch) as how:
        res = atelier("train", "ae", *TINY, "--home", home)
        text = assert_message(res, f"cannot write {home}", "choose another home" if how == "chmod" else "read-only file system",
                              "--home DIR or ATELIER_HOME")  # fmt: skip
    assert "permission denied" in text if how == "chmod" else "is a read-only file system" in text
    assert not (home / "models").exists()


def test_truncated_model_file_is_named(home):
    from models import AutoencoderConfig, ConvAutoencoder

    path = ConvAutoencoder(AutoencoderConfig(image_size=32, channels=(8, 16))).save_pretrained(home / "models" / "ae" / "v1")
    weights = path / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)
    res = atelier("embed", "ae", "--dataset", "polyvore", "--no-prefect", "--home", home)
    assert_message(res, weights, "damaged or incomplete", f"atelier train ae --home {home}", f"or delete {path}")


def test_pickle_with_code_as_weights_is_refused_without_torchs_advice(home, tmp_path):
    marker = tmp_path / "the pickle ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "resnet18.pth"
    torch.save({"conv1.weight": Payload()}, evil)
    res = atelier("train", "resnet", *TINY, "--weights", evil, "--home", home)
    text = assert_message(res, evil, "not a weights file atelier can load safely", "torch.save(model.state_dict(), PATH)")
    assert "weights_only" not in text and not marker.exists()
    assert not (home / "models" / "resnet").exists() or not any((home / "models" / "resnet").iterdir())


def test_clip_weights_damaged_or_a_pickle_are_named(tmp_path):
    from test_clip import tiny_checkpoint

    from models.clip import ClipEmbedder
    from models.pretrained import ModelFileError

    marker = tmp_path / "the pickle ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    folder = tiny_checkpoint(tmp_path / "clip")
    weights = folder / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)
    with pytest.raises(ModelFileError, match="damaged or incomplete weights") as e:
        ClipEmbedder.from_checkpoint(folder)
    assert e.value.path == weights
    weights.unlink()
    torch.save({"text_projection.weight": Payload()}, folder / "pytorch_model.bin")
    with pytest.raises(ModelFileError, match="not weights atelier can load safely") as e:
        ClipEmbedder.from_checkpoint(folder)
    assert e.value.path == folder / "pytorch_model.bin" and "weights_only" not in str(e.value) and not marker.exists()


def test_truncated_lake_table_then_train_is_a_short_message(home):
    items = Lake(home).path("polyvore", "items")
    os.truncate(items, items.stat().st_size // 2)
    res = atelier("train", "resnet", *TINY, "--home", home)
    assert_message(res, items, "is damaged", "atelier ingest polyvore")
    assert len(res.output.strip().splitlines()) <= 8, res.output
    assert leftovers(home) == [] and not any((home / "models").rglob("v*"))
    res = atelier("--debug", "train", "resnet", *TINY, "--home", home)  # the traceback, then the message
    assert res.exit_code == 1 and "Traceback" in res.output and "DamagedTableError" in res.output
    assert " ".join(str(items).split()) in " ".join(res.output.split())


def test_damaged_checkpoint_on_resume_is_named(home):
    ckpt = home / "models" / "ae" / "v1" / "ckpt" / "checkpoint.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"PK\x03\x04 half a zip")
    res = atelier("train", "ae", *TINY, "--resume", "--home", home)
    text = assert_message(res, ckpt, "damaged or incomplete checkpoint", f"delete {ckpt.parent}", "atelier doctor --fix")
    assert "weights_only" not in text


def test_debug_anywhere_and_env(home, monkeypatch):
    items = Lake(home).path("polyvore", "items")
    os.truncate(items, 10)
    res = atelier("train", "resnet", *TINY, "--home", home, "--debug")
    assert res.exit_code == 1 and "Traceback" in res.output
    monkeypatch.setenv("ATELIER_DEBUG", "1")
    res = atelier("train", "resnet", *TINY, "--home", home)
    assert res.exit_code == 1 and "Traceback" in res.output


def test_a_bug_keeps_its_traceback(home, monkeypatch):
    import flows.jobs.train

    def bug(*a, **kw):
        raise ZeroDivisionError("a bug, not a user error")

    monkeypatch.setattr(flows.jobs.train, "_train", bug)
    res = atelier("train", "ae", *TINY, "--home", home)
    assert isinstance(res.exception, ZeroDivisionError)  # not turned into a message: CliRunner caught it
