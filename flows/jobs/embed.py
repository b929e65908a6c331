"""Embed: lake rows (reader) -> images -> model (embedder) -> `vectors_<space>` (writer).

Plain functions, each callable alone (the CLI calls `embed_space`, a Prefect flow can wrap it):

- `embed_rows(home, dataset, datasets)`: the lake rows to embed, one row per item, from the
  readers of `flows.jobs.embed_sources`: the datasets the space's kind embeds (`Recipe.embeds`:
  Polyvore and DeepFashion for resnet / ae, all five for clip and siamese);
- `resolve_model(home, space, model_dir)`: which model embeds a space (default:
  `store.models.latest_model`, the highest finished `models/<space>/v<N>`); every vector stores
  `store.models.model_version` (`<space>/v<N>@<weights hash>`);
- `rows_to_embed(rows, existing, version)`: the rows whose (image_sha1, model_version) are
  not stored yet (unchanged items are skipped);
- `vector_rows(rows, vectors, ...)`: one `vector_schema` table per batch;
- `BatchWriter`: upserts a few thousand rows at a time in a background thread (the model keeps
  running while LanceDB writes); every flush commits on its own, so a job killed mid-way keeps
  the flushed rows and a re-run embeds only the rest (`merge_insert` on item_id: no duplicates);
- `embed_space(home, space, ...)`: all of it, plus failures (unreadable images are skipped and
  listed, the job goes on), indexes, compaction and `reports/embed_<space>.json`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa

from etl.images import pool_start_method
from flows.jobs.embed_sources import READERS, ROW_COLUMNS
from flows.jobs.kinds import embedding_kinds
from store import Lake
from store.models import NoModelError, model_version

SOURCES = READERS  # dataset -> reader of its embeddable rows (flows.jobs.embed_sources)

DEFAULT_DATASETS = ("polyvore", "deepfashion")  # what embed_rows reads unless told otherwise (a kind says what it embeds: Recipe.embeds)
WRITER_ROWS = 4096  # rows per upsert: one LanceDB commit (version + fragment) each
SPACE_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")



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
        raise ValueError(f"nothing to embed: {what} in the lake at {Path(home) / 'lake'}; ingest it first "
                         f"(atelier ingest {dataset or wanted[0]} PATH)")  # fmt: skip
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


# -- skip / rows -------------------------------------------------------------------------------


def rows_to_embed(rows: pa.Table, existing: Mapping[str, tuple], version: str) -> pa.Table:
    """``rows`` without those whose (image_sha1, model_version) is already stored."""
    if not existing:
        return rows
    keep = [existing.get(i) != (s, version) for i, s in
            zip(rows["item_id"].to_pylist(), rows["image_sha1"].to_pylist())]  # fmt: skip
    return rows.filter(pa.array(keep, pa.bool_()))


def vector_rows(rows: pa.Table, vectors: np.ndarray, model: str, version: str, text: bool = False) -> pa.Table:
    """A `vector_schema(dim, text)` table: ``rows`` (embed columns) + their ``vectors`` (N x dim);
    with ``text``, the rows' text column too."""
    from store.vectors import vector_schema

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    if n != rows.num_rows:
        raise ValueError(f"{rows.num_rows} rows but {n} vectors")
    schema = vector_schema(dim, text=text)
    extra = {"text": rows["text"]} if text else {}
    return pa.table({
        "item_id": rows["item_id"], "dataset": rows["dataset"], "semantic_category": rows["semantic_category"],
        "split": rows["split"], "model": pa.array([model] * n, pa.string()),
        "model_version": pa.array([version] * n, pa.string()), "image_sha1": rows["image_sha1"],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim), **extra,
    }).cast(schema)  # fmt: skip


# -- writer ------------------------------------------------------------------------------------


class BatchWriter:
    """Buffers vector rows and upserts ``rows_per_write`` at a time in one background thread
    (one write in flight; the next batch's embedding overlaps it). `close()` flushes the rest
    and waits; an error in a write is raised by the next `add`/`close`."""

    def __init__(self, store, space: str, rows_per_write: int = WRITER_ROWS):
        self.store, self.space, self.rows_per_write = store, space, rows_per_write
        self.pending: list[pa.Table] = []
        self.n_pending = 0
        self.written = 0
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="embed-writer")
        self.future: Future | None = None

    def add(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.n_pending += table.num_rows
        if self.n_pending >= self.rows_per_write:
            self.flush()

    def flush(self) -> None:
        self._wait()
        if not self.pending:
            return
        table = pa.concat_tables(self.pending)
        self.pending, self.n_pending = [], 0
        self.future = self.pool.submit(self._write, table)

    def _write(self, table: pa.Table) -> None:
        self.store.upsert(self.space, table, batch_size=max(self.rows_per_write, table.num_rows))
        self.written += table.num_rows

    def _wait(self) -> None:
        if self.future is not None:
            future, self.future = self.future, None
            future.result()

    def close(self) -> None:
        try:
            self.flush()
            self._wait()
        finally:
            self.pool.shutdown(wait=True)


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
                on_progress: Callable[[int, int], None] | None = None) -> EmbedResult:  # fmt: skip
    """Embed the lake's images into ``vectors_<space>`` with the space's latest model (or
    ``model_dir``); only rows whose (image_sha1, model_version) are not stored yet.

    Images that cannot be read are skipped and listed in ``failures`` (the job goes on).
    ``stop_after_batches`` stops after that many batches (what is embedded by then is stored:
    the same as a job killed there). At the end: `ensure_indexes`, `compact`, and the result
    written to ``home/reports/embed_<space>.json``. ``on_progress(done, total)`` is called
    after each batch; ``progress`` draws a rich bar on stderr.

    ``shard=(i, n)``: only the rows of shard i of n (`in_shard`: a hash of item_id), so n jobs,
    on one machine or many, embed a space together (LanceDB commits concurrent upserts of
    disjoint rows); a shard leaves indexing and compaction to `finalize_space`, run once after
    all shards, and reports to ``embed_<space>.shard<i>-of-<n>.json``."""
    from store.vectors import VectorStore

    t0 = time.perf_counter()
    model_dir = resolve_model(home, space, model_dir)
    version = model_version(space, model_dir)
    config = _read_config(model_dir)
    recipe = space_recipe(str(config.get("model_type", space)), space)
    if not recipe.embeds:
        raise ValueError(f"model kind {recipe.name!r} does not embed items (embedding kinds: {embedding_kinds()})")
    rows = embed_rows(home, dataset, datasets or recipe.embeds)
    if shard is not None:
        rows = rows.filter(in_shard(rows["item_id"], *shard))
    store = VectorStore(home)
    todo = rows_to_embed(rows, store.existing(space), version)
    device = device or _default_device()
    workers = default_num_workers(device) if num_workers is None else num_workers
    result = EmbedResult(space=space, model_version=version, n_rows=rows.num_rows,
                         n_skipped_unchanged=rows.num_rows - todo.num_rows, n_embedded=0, n_failed=0,
                         model_dir=str(model_dir), dataset=dataset, batch_size=batch_size,
                         num_workers=workers, shard=list(shard) if shard else None)  # fmt: skip

    if todo.num_rows:
        _run(store, space, todo, model_dir, config, version, result, device=device, batch_size=batch_size,
             num_workers=workers, stop_after_batches=stop_after_batches, progress=progress,
             writer_rows=writer_rows, on_progress=on_progress)  # fmt: skip
    if result.n_embedded and shard is None:  # nothing written: the table is as the last run left it
        finalize_space(home, space)
    result.seconds = round(time.perf_counter() - t0, 3)
    result.report_path = str(write_report(home, result))
    return result


def in_shard(item_ids: pa.Array | pa.ChunkedArray, index: int, count: int) -> pa.Array:
    """Mask of the ids in shard ``index`` of ``count`` (first 8 bytes of the id's SHA-1, mod
    count): stable across runs and machines, about equal shard sizes."""
    if not 0 <= index < count:
        raise ValueError(f"shard {index} of {count}: need 0 <= index < count")
    return pa.array([int.from_bytes(hashlib.sha1(str(i).encode()).digest()[:8], "big") % count == index
                     for i in item_ids.to_pylist()], pa.bool_())  # fmt: skip


def finalize_space(home: Path | str, space: str) -> dict:
    """After writes: build the ANN and scalar indexes once the table is big enough, then merge
    fragments and drop old versions. Returns {"rows", "index_built"}."""
    from store.vectors import VectorStore

    store = VectorStore(home)
    built = store.ensure_indexes(space)
    store.compact(space)
    return {"rows": store.count(space), "index_built": built}


def _run(store, space: str, todo: pa.Table, model_dir: Path, config: dict, version: str, result: EmbedResult, *,
         device: str | None, batch_size: int, num_workers: int, stop_after_batches: int | None, progress: bool,
         writer_rows: int, on_progress: Callable[[int, int], None] | None) -> None:  # fmt: skip
    import torch
    from torch.utils.data import DataLoader

    from etl.loader import ImageFolderRows
    from models import embed_batch, load_pretrained

    result.device = device
    size = int(config["image_size"])
    model_name = str(config.get("model_type", space))
    dataset = ImageFolderRows(todo["image_path"].to_pylist(), size=size, h5_index=todo["h5_index"].to_pylist(),
                              crops=todo["crop"].to_pylist())
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
                                       text=space_recipe(model_name, space).text))
            done += len(index)
            if bar:
                bar.update(task, completed=done)
            if on_progress:
                on_progress(done, todo.num_rows)
            if stop_after_batches is not None and n_batch >= stop_after_batches:
                result.stopped_early = done < todo.num_rows
                break
    finally:
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
    """``home/reports/embed_<space>.json`` (written to a temp file, then renamed)."""
    folder = Path(home) / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    suffix = f".shard{result.shard[0]}-of-{result.shard[1]}" if result.shard else ""
    path = folder / f"embed_{result.space}{suffix}.json"
    data = result.to_dict()
    data["report_path"] = str(path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    return path
