"""The lake dataset ``generated``: the images `atelier generate` (and the service's `/generate`)
writes, as rows of ``lake/generated/images.parquet`` (view ``generated_images``).

Each generation commits one new version of the dataset (`store.Lake.write_dataset`: checked
against `store.tables.generated`, one atomic rename) holding the previous rows plus its own,
one row per ``item_id`` (``<model version>/<hash>_<i>``, `sql/generated_images.sql`): the same
prompt, seed, steps, guidance and model generated again replace their rows, never add more.
The commit holds the dataset's lock ``ingest-generated`` (`store.locks`), as an ingest holds
its dataset's; a writer that finds it held waits up to `LOCK_WAIT_S` (a commit takes
milliseconds), then fails naming the holder.

The images are probed (`etl.probe_images`) with ``HOME/generated`` as their root: a file that
resolves outside it (a link swapped in) is recorded unusable and never embedded nor served.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

DATASET = "generated"
FOLDER = "generated"  # HOME/generated/<model version>/<hash>_<i>.png
LOCK_WAIT_S = 60.0


def generated_folder(home: Path | str, version: str) -> Path:
    """``HOME/generated/<version>`` (created; an object-store home's: a local folder,
    `store.files.local_dir`), resolved; ValueError when it resolves outside the home's
    ``generated`` (a link put in its place): no image is written through it."""
    from store.files import local_dir

    base = local_dir(home)
    base.mkdir(parents=True, exist_ok=True)
    inside = base.resolve() / FOLDER  # the home resolved, not its generated folder: a link there leads out
    folder = base / FOLDER / version
    for step in (None, "made"):  # checked before it is made (nothing is created through a link) and after
        if step:
            folder.mkdir(parents=True, exist_ok=True)
        real = folder.resolve()
        if not real.is_relative_to(inside):
            raise ValueError(f"{folder} resolves to {real}, outside the home's {inside}: not writing images there")
    return real


def image_rows(home: Path | str, paths: Sequence[Path], *, prompt: str, seed: int, steps: int, guidance: float,
               model_version: str) -> pa.Table:  # fmt: skip
    """The rows of one generation's PNGs (``paths``, in image order), probed inside ``HOME/generated``."""
    import etl
    from store.files import local_dir
    from store.tables import TABLES

    probes, _ = etl.probe_images([str(p) for p in paths], root=local_dir(home).resolve() / FOLDER)
    probed = {r["image_path"]: r for r in probes.to_pylist()}
    created = datetime.now(timezone.utc)
    rows = []
    for i, path in enumerate(paths):
        probe = probed.get(str(path), {})
        rows.append({"item_id": f"{model_version}/{Path(path).stem}", "prompt": prompt, "seed": seed, "index": i,
                     "steps": steps, "guidance": guidance, "model_version": model_version, "created_at": created,
                     "image_path": str(path), "image_ok": bool(probe.get("image_ok")), "width": probe.get("width"),
                     "height": probe.get("height"), "image_sha1": probe.get("image_sha1")})  # fmt: skip
    return pa.Table.from_pylist(rows, schema=TABLES[DATASET]["images"])


def record(home: Path | str, rows: pa.Table, wait_s: float = LOCK_WAIT_S) -> int:
    """Commit the current rows plus ``rows`` as the dataset's next version (see the module
    docstring); returns the rows it holds."""
    from store import Lake, iter_dataset
    from store.tables import TABLES

    lake = Lake(home)
    with _dataset_lock(home, wait_s):
        previous = lake.read(DATASET, "images")  # DamagedTableError naming the file and the fix
        if previous is None:
            previous = TABLES[DATASET]["images"].empty_table()
        inputs = {"raw_generated_images": rows, "raw_generated_previous": previous}
        written: dict[str, pa.Table] = {}
        lake.write_dataset(DATASET, iter_dataset(DATASET, inputs), before_commit=written.update)
    return written["images"].num_rows


@contextlib.contextmanager
def _dataset_lock(home: Path | str, wait_s: float) -> Iterator[None]:
    """Hold the lock ``ingest-generated``, waiting up to ``wait_s`` while another writer holds it."""
    from store.locks import LockHeld, lock

    deadline = time.monotonic() + wait_s
    with contextlib.ExitStack() as stack:
        while True:
            try:
                stack.enter_context(lock(home, f"ingest-{DATASET}", "generate (lake/generated)"))
                break
            except LockHeld:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
        yield


@functools.lru_cache(maxsize=4)
def _embedder(space: str, model_dir: str, mtime_ns: int):
    """(the model, its model_version), loaded once per version."""
    from models import default_device, load_pretrained
    from store.models import model_version

    return load_pretrained(model_dir, device=default_device()), model_version(space, model_dir)


def embed_paths(home: Path | str, space: str, paths: Sequence[Path | str]):
    """(vectors of the images at ``paths`` in ``space``: float32 (n, dim), the model_version
    that made them), by the space's latest model (kept loaded per version) with the embed job's
    own decoding and resize (`etl.loader.ImageFolderRows`), so a generated image's query vector
    is the vector `atelier embed SPACE --dataset generated` stores for it."""
    import torch

    from etl.loader import ImageFolderRows
    from flows.jobs import kinds
    from models import embed_batch
    from store.models import latest_model

    if space not in kinds.embedding_kinds():
        raise ValueError(f"space {space!r} does not embed images; one of {', '.join(kinds.embedding_kinds())}")
    model_dir = latest_model(home, space)  # NoModelError naming `atelier train SPACE`
    model, version = _embedder(space, str(model_dir), (model_dir / "config.json").stat().st_mtime_ns)
    rows = ImageFolderRows([str(p) for p in paths], size=int(model.config.image_size))
    items = [rows[i] for i in range(len(rows))]
    bad = [(str(paths[i]), it["error"]) for i, it in enumerate(items) if not it["ok"]]
    if bad:
        raise ValueError(f"cannot read generated image {bad[0][0]}: {bad[0][1]}")
    return embed_batch(model, torch.stack([it["image"] for it in items])), version
