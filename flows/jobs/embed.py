"""Embed: lake rows (reader) -> images -> model (embedder) -> `vectors_<space>` (writer).

Plain functions, each callable alone (the CLI calls `embed_space`, a Prefect flow can wrap it):

- `embed_rows(home, dataset, datasets)`: the lake rows to embed, one row per item, from the
  readers of `flows.jobs.embed_sources`: the datasets the space's kind embeds (`Recipe.embeds`:
  Polyvore and DeepFashion for resnet / ae, all five for clip and siamese);
- `resolve_model(home, space, model_dir)`: which model embeds a space (default:
  `store.models.latest_model`, the highest finished `models/<space>/v<N>`); every vector stores
  `store.models.model_version` (`<space>/v<N>@<weights hash>`);
- `flows.jobs.embed_write`: which rows to embed (`rows_to_embed`: unchanged items skipped),
  their vector rows (`vector_rows`), the background writer (`BatchWriter`);
- `flows.jobs.embed_upkeep`: the space's lock (`embed_lock`), pruning before the writes
  (duplicate item_ids, stale rows of items no longer usable, a damaged table refused),
  `finalize_space` after them (rows == distinct item_id checked, indexes, compaction);
- `embed_space(home, space, ...)`: all of it, under the lock, plus failures (unreadable images
  are skipped and listed, the job goes on) and `reports/embed_<space>.json`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from etl.images import pool_start_method
from flows.jobs.embed_sources import GENERATED, READERS, ROW_COLUMNS
from flows.jobs.embed_upkeep import covered_datasets, embed_lock, existing_of, finalize_space, prune
from flows.jobs.embed_write import WRITER_ROWS, BatchWriter, rows_to_embed, vector_rows
from flows.jobs.kinds import embedding_kinds
from store import Lake
from store.files import report_path, write_text
from store.models import NoModelError, model_version

SOURCES = READERS  # dataset -> reader of its embeddable rows (flows.jobs.embed_sources)

READ_AHEAD_BATCHES = 2  # batches of files read ahead by threads when the loader has no workers (etl.read_ahead)
DEFAULT_DATASETS = ("polyvore", "deepfashion")  # what embed_rows reads unless told otherwise (a kind says what it embeds: Recipe.embeds)
SPACE_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")
__all__ = ["BatchWriter", "EmbedResult", "NoModelError", "WRITER_ROWS", "embed_rows", "embed_space", "finalize_space",
           "in_shard", "model_version", "prune_space", "resolve_model", "rows_to_embed", "vector_rows", "write_report"]  # fmt: skip


@dataclasses.dataclass
class EmbedResult:
    space: str
    model_version: str
    n_rows: int  # lake rows considered (image_ok items of the selected datasets)
    n_skipped_unchanged: int  # same image_sha1 and model_version already stored
    n_embedded: int  # rows written this run
    n_failed: int  # images that could not be read (listed in failures)
    failures: list[dict] = dataclasses.field(default_factory=list)  # {item_id, image_path, error}
    seconds: float = 0.0  # the whole call
    loop_seconds: float = 0.0  # first batch -> last row stored (no lake read, model load, compaction)
    model_dir: str = ""
    dataset: str | None = None
    device: str = ""
    batch_size: int = 0
    num_workers: int = 0
    stopped_early: bool = False  # stop_after_batches cut the run short
    shard: list[int] | None = None  # [index, count] when the run embedded one shard
    report_path: str = ""
    rebuilt: bool = False  # --rebuild: the space was dropped first
    n_duplicates_removed: int = 0  # extra rows of an item_id, removed (before and after the writes)
    n_stale_removed: int = 0  # rows of items no longer usable (image unusable, item gone), removed
    stale_ids: list[str] = dataclasses.field(default_factory=list)  # the first 100 of them

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# -- reader ------------------------------------------------------------------------------------


def embed_rows(home: Path | str, dataset: str | None = None, datasets: tuple[str, ...] | None = None) -> pa.Table:
    """The lake rows to embed (`flows.jobs.embed_sources`: one reader per dataset), of the datasets
    present in the lake among ``datasets`` (default `DEFAULT_DATASETS`); ``dataset`` keeps one.
    Sorted by dataset, item_id. ValueError for an unknown dataset or one not ingested."""
    wanted = [dataset] if dataset else list(datasets or DEFAULT_DATASETS)
    for name in wanted:
        if name not in SOURCES:
            raise ValueError(f"cannot embed dataset {name!r}; embeddable datasets: {sorted(SOURCES)}")
    lake = Lake(home)
    parts = [t for t in (SOURCES[name](lake) for name in wanted) if t is not None]
    if not parts:
        what = f"dataset {dataset!r} is not" if dataset else f"none of {sorted(wanted)} is"
        first = "generate images first (atelier generate PROMPT)" if wanted == [GENERATED] else \
            f"ingest it first (atelier ingest {dataset or wanted[0]} PATH)"
        raise ValueError(f"nothing to embed: {what} in the lake at {Path(home) / 'lake'}; {first}")
    rows = pa.concat_tables(parts).select(ROW_COLUMNS)
    return rows.sort_by([("dataset", "ascending"), ("item_id", "ascending")])


# -- model -------------------------------------------------------------------------------------


def resolve_model(home: Path | str, space: str, model_dir: Path | str | None = None) -> Path:
    """``model_dir`` (checked), else the latest ``home/models/<space>/v<N>``; clear errors otherwise."""
    from flows.jobs import kinds
    from store.models import latest_model, models_root, trained_models

    if not isinstance(space, str) or not SPACE_RE.match(space):
        raise ValueError(f"bad embedding space {space!r}: use lower-case letters, digits and _")
    if model_dir is not None:
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise NoModelError(f"{model_dir} is not a model directory (no config.json)")
        return model_dir
    try:
        return latest_model(home, space)
    except FileNotFoundError:
        pass
    root, trained = models_root(home), trained_models(home)
    if space not in kinds.embedding_kinds() and not (root / space).is_dir():
        raise ValueError(f"unknown embedding space {space!r}: no model family {root / space}; "
                         f"embedding kinds: {kinds.embedding_kinds()}; trained models: {trained}")  # fmt: skip
    raise NoModelError(f"no model for space {space!r}: no {root / space}/v<N> with a config.json "
                       f"(train one first: atelier train {space}; trained models: {trained})")  # fmt: skip


def space_recipe(model_type: str, space: str):
    """The registered kind that made a model (by its config's model_type, else the space's name)."""
    from flows.jobs import kinds

    for name in (model_type, space):
        if name in kinds.names():
            return kinds.get(name)
    raise ValueError(f"model type {model_type!r} of space {space!r} is not a registered model kind ({', '.join(kinds.names())})")


def _read_config(model_dir: Path) -> dict:
    return json.loads((model_dir / "config.json").read_text())


# -- the job -----------------------------------------------------------------------------------


def _progress(total: int, enabled: bool):
    """A rich progress bar on stderr (a no-op object when disabled or nothing to do)."""
    if not enabled or total == 0:
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), transient=False)  # fmt: skip


def embed_space(home: Path | str, space: str, *, model_dir: Path | str | None = None, dataset: str | None = None,
                datasets: tuple[str, ...] | None = None, batch_size: int = 64, num_workers: int | None = None, device: str | None = None,
                stop_after_batches: int | None = None, progress: bool = True,
                writer_rows: int = WRITER_ROWS, shard: tuple[int, int] | None = None,
                on_progress: Callable[[int, int], None] | None = None, rebuild: bool = False,
                locked: bool = False, source: str = "lake") -> EmbedResult:  # fmt: skip
    """Embed the lake's images into ``vectors_<space>`` with the space's latest model (or
    ``model_dir``); only rows whose (image_sha1, model_version) are not stored yet.

    One embed of a space at a time: the job holds the lock ``embed-<space>`` (`embed_lock`) for
    its whole run, and a second one fails at once with `LockHeld` (``locked``: the caller holds
    it, as the embed flow does). Before embedding, `prune`: a damaged table raises
    `DamagedSpaceError` (``rebuild`` drops the space first: everything is embedded again),
    duplicate item_ids and the rows of items no longer usable (within the datasets read:
    ``dataset``, else the kind's) are removed and counted.

    Images that cannot be read are skipped and listed in ``failures`` (the job goes on).
    ``stop_after_batches`` stops after that many batches (what is embedded by then is stored:
    the same as a job killed there). At the end, when anything changed: `finalize_space` (rows
    == distinct item_id checked, indexes, compaction); the result is written to
    ``home/reports/embed_<space>.json``. ``on_progress(done, total)`` is called after each
    batch; ``progress`` draws a rich bar on stderr.

    ``shard=(i, n)``: only the rows of shard i of n (`in_shard`: a hash of item_id), so n jobs,
    on one machine or many, embed a space together (LanceDB commits concurrent upserts of
    disjoint rows); a shard takes no lock and prunes nothing (the embed flow does both around
    its shards), leaves `finalize_space` to be run once after all shards, and reports to
    ``embed_<space>.shard<i>-of-<n>.json``.

    ``source="extracted"``: instead of the lake's images, the garment of every VITON person as
    the latest extractor takes it out (`flows.jobs.extract.extracted_rows`: dataset
    ``viton_extracted``, item_id ``<subset>/extracted/<stem>``); only those rows are pruned."""
    from store.vectors import VectorStore

    t0 = time.perf_counter()
    model_dir, version, config, recipe = _space_model(home, space, model_dir)
    if shard is not None and rebuild:
        raise ValueError("rebuild a space in one job (or the embed flow), not per shard")
    with contextlib.nullcontext() if locked or shard is not None else embed_lock(home, space):
        store = VectorStore(home)
        rebuilt = rebuild and store.drop(space)
        if source == "extracted":
            from flows.jobs.extract import EXTRACTED_DATASET, extracted_rows

            if dataset not in (None, "viton"):
                raise ValueError(f"--source extracted embeds VITON persons' garments, not dataset {dataset!r}")
            rows, covered = extracted_rows(home), [EXTRACTED_DATASET]
        elif source == "lake":
            wanted = [dataset] if dataset else list(datasets or recipe.embeds)
            rows = embed_rows(home, dataset, tuple(wanted))
            covered = covered_datasets(home, wanted)
        else:
            raise ValueError(f"unknown embed source {source!r}: lake or extracted")
        if shard is None:
            pruned = prune(store, space, rows, covered, version)
            existing = existing_of(pruned.keys)
        else:
            rows = rows.filter(in_shard(rows["item_id"], *shard))
            existing = store.existing(space)
        todo = rows_to_embed(rows, existing, version)
        device = device or _default_device()
        workers = default_num_workers(device) if num_workers is None else num_workers
        result = EmbedResult(space=space, model_version=version, n_rows=rows.num_rows,
                             n_skipped_unchanged=rows.num_rows - todo.num_rows, n_embedded=0, n_failed=0,
                             model_dir=str(model_dir), dataset=dataset, batch_size=batch_size,
                             num_workers=workers, shard=list(shard) if shard else None, rebuilt=bool(rebuilt))  # fmt: skip
        if shard is None:
            result.n_duplicates_removed, result.n_stale_removed = pruned.duplicates_removed, pruned.stale_removed
            result.stale_ids = pruned.stale_ids
        if todo.num_rows:
            _run(store, space, todo, _new_ids(todo, existing), model_dir, config, version, result, device=device, batch_size=batch_size,
                 num_workers=workers, stop_after_batches=stop_after_batches, progress=progress,
                 writer_rows=writer_rows, on_progress=on_progress)  # fmt: skip
        if shard is None and (result.n_embedded or result.n_stale_removed or result.n_duplicates_removed):
            result.n_duplicates_removed += finalize_space(home, space)["duplicates_removed"]
    result.seconds = round(time.perf_counter() - t0, 3)
    result.report_path = str(write_report(home, result))
    return result


def prune_space(home: Path | str, space: str, *, dataset: str | None = None, rebuild: bool = False) -> dict:
    """What `embed_space` does before embedding, for the embed flow to run once before its
    shards (the caller holds the space's lock): with ``rebuild`` drop the space; else check it
    and remove duplicate item_ids and stale rows (`prune`). Returns {"rebuilt",
    "n_duplicates_removed", "n_stale_removed", "stale_ids"}."""
    from store.vectors import VectorStore

    model_dir, version, _, recipe = _space_model(home, space, None)
    store = VectorStore(home)
    if rebuild:
        return {"rebuilt": store.drop(space), "n_duplicates_removed": 0, "n_stale_removed": 0, "stale_ids": []}
    wanted = [dataset] if dataset else list(recipe.embeds)
    pruned = prune(store, space, embed_rows(home, dataset, tuple(wanted)), covered_datasets(home, wanted), version)
    return {"rebuilt": False, "n_duplicates_removed": pruned.duplicates_removed,
            "n_stale_removed": pruned.stale_removed, "stale_ids": pruned.stale_ids}  # fmt: skip


def _space_model(home: Path | str, space: str, model_dir: Path | str | None) -> tuple[Path, str, dict, object]:
    """(model dir, model_version, config, recipe) of the model that embeds ``space``."""
    model_dir = resolve_model(home, space, model_dir)
    config = _read_config(model_dir)
    recipe = space_recipe(str(config.get("model_type", space)), space)
    if not recipe.embeds:
        raise ValueError(f"model kind {recipe.name!r} does not embed items (embedding kinds: {embedding_kinds()})")
    return model_dir, model_version(space, model_dir), config, recipe


def in_shard(item_ids: pa.Array | pa.ChunkedArray, index: int, count: int) -> pa.Array:
    """Mask of the ids in shard ``index`` of ``count`` (first 8 bytes of the id's SHA-1, mod
    count): stable across runs and machines, about equal shard sizes."""
    if not 0 <= index < count:
        raise ValueError(f"shard {index} of {count}: need 0 <= index < count")
    return pa.array([int.from_bytes(hashlib.sha1(str(i).encode()).digest()[:8], "big") % count == index
                     for i in item_ids.to_pylist()], pa.bool_())  # fmt: skip


def _new_ids(todo: pa.Table, existing: dict) -> np.ndarray:
    """Per row of ``todo``: whether the space holds no row of its item_id (appended, not upserted)."""
    if not existing:
        return np.ones(todo.num_rows, bool)
    return np.fromiter((i not in existing for i in todo["item_id"].to_pylist()), bool, todo.num_rows)


def _run(store, space: str, todo: pa.Table, new: np.ndarray, model_dir: Path, config: dict, version: str, result: EmbedResult, *,
         device: str | None, batch_size: int, num_workers: int, stop_after_batches: int | None, progress: bool,
         writer_rows: int, on_progress: Callable[[int, int], None] | None) -> None:  # fmt: skip
    import torch
    from torch.utils.data import DataLoader

    from etl.loader import ImageFolderRows
    from models import embed_batch, load_pretrained

    result.device = device
    if any(c.num_chunks > 1 for c in todo.columns):  # a take from many chunks concatenates them first: 5-7 ms a batch at 1M rows
        todo = todo.combine_chunks()
    size = int(config["image_size"])
    model_name = str(config.get("model_type", space))
    # Arrow columns, not Python lists: the dataset holds a million rows as their bytes; without
    # workers, threads read the next batches' files while this one is embedded (etl.read_ahead)
    dataset = ImageFolderRows(todo["image_path"], size=size, h5_index=todo["h5_index"], crops=todo["crop"],
                              read_ahead=READ_AHEAD_BATCHES * batch_size if num_workers == 0 else 0)  # fmt: skip
    # workers are not forked from this process once LanceDB's runtime is loaded (not fork-safe):
    # a forkserver starts them; they begin decoding while the model loads
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=torch.device(device).type == "cuda", drop_last=False,
                        multiprocessing_context=pool_start_method() if num_workers else None,
                        persistent_workers=False)  # fmt: skip
    batches = iter(loader)
    model = load_pretrained(model_dir, device=device)
    if int(model.config.image_size) != size:  # pragma: no cover - config.json is what built the model
        raise ValueError(f"{model_dir}: image_size {model.config.image_size} != config.json's {size}")
    writer = BatchWriter(store, space, writer_rows)
    bar = _progress(todo.num_rows, progress)
    task = bar.add_task("embed", total=todo.num_rows) if bar else None
    done = 0
    if bar:
        bar.start()
    loop_start = time.perf_counter()
    try:
        for n_batch, batch in enumerate(batches, 1):
            index = batch["index"].numpy()
            ok = batch["ok"].numpy().astype(bool)
            for pos in np.flatnonzero(~ok):
                row = todo.slice(int(index[pos]), 1).select(["item_id", "image_path"]).to_pylist()[0]
                result.failures.append({**row, "error": batch["error"][pos]})
            if ok.any():
                images = batch["image"] if ok.all() else batch["image"][torch.from_numpy(ok)]
                vectors = embed_batch(model, images)
                writer.add(vector_rows(todo.take(pa.array(index[ok])), vectors, model_name, version,
                                       text=space_recipe(model_name, space).text), new[index[ok]])  # fmt: skip
            done += len(index)
            if bar:
                bar.update(task, completed=done)
            if on_progress:
                on_progress(done, todo.num_rows)
            if stop_after_batches is not None and n_batch >= stop_after_batches:
                result.stopped_early = done < todo.num_rows
                break
    finally:
        dataset.close()
        if bar:
            bar.stop()
        try:
            writer.close()  # flush what was embedded, also when interrupted
        finally:
            result.n_embedded = writer.written
            result.n_failed = len(result.failures)
            result.loop_seconds = round(time.perf_counter() - loop_start, 3)


def _default_device() -> str:
    from models import default_device

    return default_device()


def default_num_workers(device: str) -> int:
    """DataLoader workers: none on CPU (decoding a sample image costs ~0.2 ms, ~10% of its
    forward pass, and workers would take cores from the model: 2 workers measured slower than
    decoding in-process on 2 cores), up to 8 where a GPU runs the model."""
    return min(8, os.cpu_count() or 1) if device.startswith("cuda") else 0


def write_report(home: Path | str, result: EmbedResult) -> Path:
    """``home/reports/embed_<space>.json`` (written to a temp file, then renamed; on an s3 home one PUT)."""
    suffix = f".shard{result.shard[0]}-of-{result.shard[1]}" if result.shard else ""
    path = report_path(home, f"embed_{result.space}{suffix}.json")
    data = result.to_dict()
    data["report_path"] = str(path)
    write_text(path, json.dumps(data, indent=2) + "\n")
    return path
