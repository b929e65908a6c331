"""Outfit data for umBERT/WumBERT from the lake and the vector store, and their training jobs.

- :func:`load_catalogue`: the Polyvore items of a vector space (ids, vectors, categories).
- :func:`load_outfits`: ``polyvore_outfit_items`` of one variant and split, as item-id lists.
- :func:`outfit_data`: outfits as catalogue rows (:class:`models.outfit_train.OutfitData`);
  items without a vector are dropped and counted, outfits left with under 2 items too.
- :func:`split_sets` / :func:`trained_elsewhere`: digests of a variant's splits, kept in a model's
  ``trained_on``; why a model may not be scored on a variant (another variant, other splits).
- :func:`write_learned_vectors`: WumBERT's learned item vectors as the vector space ``wumbert``, so
  that ``atelier complete --model wumbert`` and ``atelier neighbours --space wumbert`` search them.
  Training is the ``umbert`` / ``wumbert`` kinds (`flows.jobs.kinds.outfit`).

Splits are the release's own: an outfit (set_id) is in exactly one of train/valid/test (checked
here: :func:`check_disjoint_outfits`), and only train outfits ever reach the optimizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store.lake import Lake
from store.sql import query
from store.vectors import UnknownSpaceError, VectorStore, lance_filter

VARIANTS = ("nondisjoint", "disjoint")
WUMBERT_SPACE = "wumbert"


@dataclass
class Catalogue:
    item_ids: list[str]
    index: dict[str, int]  # item_id -> row
    vectors: np.ndarray  # (N, D) float32
    categories: list[str]  # semantic category per row
    space: str
    model_version: str | None  # version of the model that made the space's vectors


def load_catalogue(home: Path | str, space: str, order: list[str] | None = None) -> Catalogue:
    """Every Polyvore item of ``vectors_<space>``, rows in item_id order (``order`` first when
    given: a WumBERT's training catalogue, so its learned rows line up). Raises a clear error
    naming the command to run when the space has no vectors yet."""
    store = VectorStore(home)
    try:
        table = store.read(space, ["item_id", "dataset", "semantic_category", "model_version", "vector"])
    except UnknownSpaceError:
        raise UnknownSpaceError(f"vector space {space!r} has no vectors yet: run `atelier train {space}` and "
                                f"`atelier embed {space} --dataset polyvore` first") from None  # fmt: skip
    polyvore = pc.equal(table["dataset"], "polyvore")
    if not pc.all(polyvore, skip_nulls=False).as_py():
        table = table.filter(polyvore)
    if table.num_rows == 0:
        raise ValueError(f"vector space {space!r} holds no polyvore items: run `atelier embed {space} --dataset polyvore` first")
    perm = _catalogue_order(table["item_id"], order)
    # in Arrow and numpy, no per-row Python objects but the ids and categories the catalogue keeps:
    # a million 128-d items cost their vectors once (one reordered copy), not a Python sort's tuples
    vectors = _vectors_in_order(table["vector"], perm.to_numpy())
    ids = table["item_id"].take(perm).to_pylist()
    coded = pc.dictionary_encode(table["semantic_category"].take(perm)).combine_chunks()
    names = coded.dictionary.to_pylist()
    categories = [names[c] for c in coded.indices.to_numpy(zero_copy_only=False).tolist()]  # one str per category, shared
    versions = pc.unique(table["model_version"].drop_null()).to_pylist()
    del table
    pa.default_memory_pool().release_unused()  # the read's buffers go back now, not at the next allocation
    return Catalogue(ids, {item: i for i, item in enumerate(ids)}, vectors, categories, space, max(versions) if versions else None)


def _catalogue_order(ids: pa.ChunkedArray, order: list[str] | None) -> pa.Array:
    """Row order of a catalogue: the rows of ``order``'s ids first (in that order), then the rest
    by item_id (UTF-8 byte order, which is code-point order: Python's string order)."""
    if not order:
        return pc.sort_indices(ids)
    rank = pc.fill_null(pc.index_in(ids, value_set=pa.array(order, pa.string())), len(order))
    return pc.sort_indices(pa.table({"rank": rank, "item_id": ids}), sort_keys=[("rank", "ascending"), ("item_id", "ascending")])


def _vectors_in_order(column: pa.ChunkedArray, perm: np.ndarray) -> np.ndarray:
    """(N, D) float32 rows ``perm`` of a fixed-size-list vector column, in that order: each chunk
    (a zero-copy view) is scattered to its rows' places, so the one copy made is the result
    (no combined column, no second gathered copy)."""
    dim = column.type.list_size
    out = np.empty((len(perm), dim), dtype=np.float32)
    place = np.empty_like(perm)
    place[perm] = np.arange(len(perm), dtype=perm.dtype)  # where each source row goes
    start = 0
    for chunk in column.chunks:
        flat = chunk.flatten().to_numpy(zero_copy_only=False).reshape(len(chunk), dim)
        out[place[start:start + len(chunk)]] = flat
        start += len(chunk)
    return out


def _require_polyvore(home: Path | str, table: str) -> None:
    if f"polyvore_{table}" not in Lake(home).tables():
        raise FileNotFoundError(f"no polyvore_{table} table in the lake at {Path(home) / 'lake'}: "
                                f"run `atelier ingest polyvore PATH --home {home}` first")  # fmt: skip


def load_outfits(home: Path | str, variant: str, split: str) -> list[tuple[str, list[str]]]:
    """(set_id, item_ids in release order) of every outfit of ``variant``/``split``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: one of {VARIANTS}")
    _require_polyvore(home, "outfit_items")
    rows = query(home, "SELECT set_id, list(item_id ORDER BY \"index\") AS items FROM polyvore_outfit_items "
                       "WHERE variant = $variant AND split = $split GROUP BY set_id ORDER BY set_id",
                 {"variant": variant, "split": split})  # fmt: skip
    return list(zip(rows["set_id"].to_pylist(), rows["items"].to_pylist()))


def check_disjoint_outfits(home: Path | str, variant: str) -> dict[str, int]:
    """Outfits per split; ValueError when a set_id, or the same set of items, is in two splits."""
    seen: dict[str, str] = {}
    by_items: dict[frozenset, str] = {}
    counts = {}
    for split in ("train", "valid", "test"):
        outfits = load_outfits(home, variant, split)
        counts[split] = len(outfits)
        for set_id, items in outfits:
            for key, where in ((set_id, seen), (frozenset(items), by_items)):
                if where.get(key, split) != split:
                    raise ValueError(f"{variant}: outfit {set_id} ({sorted(items)}) is in both {where[key]} and {split}")
                where[key] = split
    return counts


def split_sets(home: Path | str, variant: str) -> dict[str, str]:
    """A digest per split of ``variant``'s outfits (set_ids and their items): what a model was
    trained on, so that an evaluation can tell the lake now holds other splits."""
    _require_polyvore(home, "outfit_items")
    rows = query(home, "SELECT split, md5(string_agg(set_id || ':' || item_id, ',' ORDER BY set_id, \"index\")) AS digest "
                       "FROM polyvore_outfit_items WHERE variant = $variant GROUP BY split ORDER BY split",
                 {"variant": variant})  # fmt: skip
    return dict(zip(rows["split"].to_pylist(), (d[:16] for d in rows["digest"].to_pylist())))


class CrossVariantError(ValueError):
    """A model scored on outfits or questions of another variant or split set than it was trained on."""


def trained_elsewhere(home: Path | str, trained_on: dict, variant: str) -> str | None:
    """Why a model with ``trained_on`` (its metrics.json entry) cannot be scored on ``variant``'s
    held-out outfits and questions without contamination, or None when it can: trained on
    another variant (every disjoint test item is in nondisjoint train outfits), or on other
    splits of it than the lake holds now (re-ingested since: its test outfits may be the
    model's train outfits). Models saved before the digests were kept are compared by counts."""
    was = trained_on.get("variant")
    if was is not None and was != variant:
        return f"trained on {was}, scored on {variant}"
    if trained_on.get("split_sets"):
        if trained_on["split_sets"] != split_sets(home, variant):
            return f"trained on other {variant} splits than the lake holds now (split digests {trained_on['split_sets']})"
    elif trained_on.get("outfits_per_split"):
        now = {split: len(load_outfits(home, variant, split)) for split in trained_on["outfits_per_split"]}
        if now != trained_on["outfits_per_split"]:
            return f"trained on {variant} splits of {trained_on['outfits_per_split']} outfits, the lake holds {now}"
    return None


def describe_trained_on(trained_on: dict) -> str:
    """``variant nondisjoint, split train, space ae, outfits {...}``: a model's trained_on in one line."""
    keys = ("dataset", "variant", "split", "space", "outfits_per_split")
    return "trained_on: " + ", ".join(f"{k} {trained_on[k]}" for k in keys if trained_on.get(k) is not None)


def outfit_data(catalogue: Catalogue, outfits: list[list[str]], categories: tuple[str, ...],
                model_item_ids: list[str] | None = None):  # fmt: skip
    """(OutfitData, counts): outfits as catalogue rows; items without a vector dropped and
    counted, outfits with fewer than 2 items left dropped and counted. ``model_item_ids``: a
    WumBERT's learned rows (items not among them keep their space vectors)."""
    import torch

    from models.outfit_train import OutfitData

    cat_index = {c: i for i, c in enumerate(categories)}
    unknown = sorted({c for c in catalogue.categories if c not in cat_index})
    if unknown:
        raise ValueError(f"categories {unknown} of space {catalogue.space!r} are not in the model's {list(categories)}")
    rows_list, dropped_items, dropped_outfits = [], 0, 0
    for items in outfits:
        rows = [catalogue.index[i] for i in items if i in catalogue.index]
        dropped_items += len(items) - len(rows)
        if len(rows) < 2:
            dropped_outfits += 1
            continue
        rows_list.append(torch.tensor(rows, dtype=torch.long))
    model_rows = None
    if model_item_ids is not None:
        learned = {item: i for i, item in enumerate(model_item_ids)}
        model_rows = torch.tensor([learned.get(i, -1) for i in catalogue.item_ids], dtype=torch.long)
    data = OutfitData(torch.from_numpy(catalogue.vectors), torch.tensor([cat_index[c] for c in catalogue.categories]),
                      rows_list, model_rows)  # fmt: skip
    return data, {"outfits": len(rows_list), "items_without_vector": dropped_items, "outfits_dropped": dropped_outfits}


def write_learned_vectors(home: Path | str, model, catalogue: Catalogue, version: str) -> int:
    """WumBERT's item vectors (space vector + learned delta, normalised) as ``vectors_wumbert``,
    replacing what an earlier version wrote."""
    import torch

    from store.vectors import vector_schema

    store = VectorStore(home)
    source = store.read(catalogue.space, ["item_id", "dataset", "semantic_category", "split", "image_sha1"])
    source = source.filter(pc.equal(source["dataset"], "polyvore"))
    meta = {r["item_id"]: r for r in source.to_pylist()}
    with torch.no_grad():
        vectors = model.item_vectors(torch.from_numpy(catalogue.vectors), torch.arange(len(catalogue.item_ids))).numpy()
    dim = vectors.shape[1]
    rows = pa.table({
        "item_id": catalogue.item_ids,
        "dataset": ["polyvore"] * len(catalogue.item_ids),
        "semantic_category": catalogue.categories,
        "split": [meta[i]["split"] for i in catalogue.item_ids],
        "model": ["wumbert"] * len(catalogue.item_ids),
        "model_version": [version] * len(catalogue.item_ids),
        "image_sha1": [meta[i]["image_sha1"] for i in catalogue.item_ids],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim),
    }, schema=vector_schema(dim))  # fmt: skip
    from flows.jobs.embed_upkeep import embed_lock

    with embed_lock(home, WUMBERT_SPACE):  # one writer per space: another train writing it fails at once
        store.upsert(WUMBERT_SPACE, rows)
        # items an earlier version had, gone since (a LanceDB filter: no bound parameters, the value escaped)
        store.delete(WUMBERT_SPACE, lance_filter("model_version", version, negate=True))
        store.compact(WUMBERT_SPACE)
        store.ensure_indexes(WUMBERT_SPACE)
    return rows.num_rows
