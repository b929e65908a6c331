"""The queries of a vector space (`VectorStore` inherits them): nearest neighbours with a filter
(`search`), one item's vector (`get_item`), full-text and hybrid search.

`search` runs on the in-process index of the table's current version (`store.vector_index`) and
falls back to LanceDB's search when there is none; full-text search is LanceDB's
(BM25 over the ``text`` column); hybrid search fuses it with `search` by reciprocal rank.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import duckdb
import lancedb
import numpy as np
import pyarrow as pa

from store import vector_index
from store.vector_health import DamagedSpaceError, UnknownSpaceError, lance_filter
from store.vector_health import check_space as _check_space
from store.vector_index import RESULT_COLUMNS

METRIC = "cosine"
RRF_K = 60  # reciprocal rank fusion constant (LanceDB's RRFReranker default)


class VectorSearch:
    """Queries over ``self.table(space)``; the class that mixes this in gives ``uri``, ``table``,
    ``path`` and ``_reading``."""

    def get_vector(self, space: str, item_id: str) -> np.ndarray:
        """The stored vector of ``item_id``; KeyError when it is not in the space."""
        return self.get_item(space, item_id)["vector"]

    def get_item(self, space: str, item_id: str) -> dict:
        """{"vector", "semantic_category"} of ``item_id`` (one read); KeyError when it is not in the space.
        With a current index the row is found by its id there and read by row id (no scan)."""
        index = self._index(space)
        with self._reading(space):
            found = index.position_of(item_id) if index is not None else None
            if found is not None and found < 0:
                raise KeyError(f"item {item_id!r} is not in vector space {space!r}")
            if found is not None:
                ds = vector_index.dataset(self.uri, self.path(space), space)
                data = ds._take_rows([int(index.rowids[found])], columns=["vector", "semantic_category"])
            else:
                data = self.table(space).to_lance().to_table(columns=["vector", "semantic_category"],
                                                              filter=lance_filter("item_id", item_id))  # fmt: skip
        if not data.num_rows:
            raise KeyError(f"item {item_id!r} is not in vector space {space!r}")
        if data.num_rows > 1:
            raise ValueError(f"vector space {space!r} holds {data.num_rows} rows for item {item_id!r} (each item should "
                             f"have one): run `atelier embed {space}` (it removes duplicates) or `atelier doctor --fix`")  # fmt: skip
        vector = data["vector"].combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(-1)
        return {"vector": vector, "semantic_category": data["semantic_category"][0].as_py()}

    def search(self, space: str, vector: Iterable[float], k: int = 10, where: str | None = None,
               exclude: str | Iterable[str] | None = None, nprobes: int | None = None, refine_factor: int | None = None,
               exact: bool = False) -> pa.Table:  # fmt: skip
        """The ``k`` nearest rows to ``vector`` (cosine), nearest first: item_id, dataset,
        semantic_category, split, model, model_version, image_sha1 (text when kept), _distance.

        ``where`` (SQL over the table's columns) is applied inside the search (prefilter), so k
        rows come back whenever k rows match; ``exclude`` leaves that item_id (or those ids)
        out. The search runs on the in-process index of the table's current version
        (`store.vector_index`): ``nprobes`` overrides its calibrated probes, ``exact=True``
        scans every row. Without a current index (the table changed since it was built) LanceDB
        searches exactly (``refine_factor`` applies to a LanceDB vector index, if one exists)."""
        index = self._index(space)
        table = self.table(space) if index is None else None  # LanceDB's search: no current index
        dim = index.params.dim if index is not None else table.schema.field("vector").type.list_size
        query = np.asarray(vector, dtype=np.float32)
        if query.ndim != 1 or query.shape[0] != dim:
            raise ValueError(f"query vector has shape {query.shape}, vector space {space!r} stores dim {dim}")
        if not np.isfinite(query).all():
            raise ValueError("query vector has NaN or infinite values")
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        excluded = [] if exclude is None else [exclude] if isinstance(exclude, str) else list(exclude)
        where = where if where and where.strip() else None
        if index is not None:
            with self._reading(space):
                return self._search_index(space, index, query, k, where, excluded, nprobes, exact)
        clauses = [f"({where})"] if where else []
        if excluded:
            clauses.append(lance_filter("item_id", excluded, negate=True))
        builder = table.search(query, vector_column_name="vector").distance_type(METRIC).limit(k)
        builder = builder.select([*RESULT_COLUMNS, *(["text"] if "text" in table.schema.names else []), "_distance"])
        if clauses:
            if where:
                _validate_where(table, where, query)
            builder = builder.where(" AND ".join(clauses), prefilter=True)
        if exact or not any("vector" in i.columns for i in table.list_indices()):
            builder = builder.bypass_vector_index()
        else:
            builder = builder.nprobes(nprobes or 20).refine_factor(refine_factor or 10)
        with self._reading(space):
            found = builder.to_arrow()
        if found.num_rows == 0 and table.count_rows() == 0:  # checked only then: one call less per search
            raise ValueError(f"vector space {space!r} is empty: nothing to search")
        return found

    def _index(self, space: str):
        """The space's current in-process index (`store.vector_index.current_index`; no LanceDB
        round trip once cached), None without one; `UnknownSpaceError` when there is no space."""
        _check_space(space)
        try:
            with self._reading(space):
                return vector_index.current_index(self.uri, self.path(space), space)
        except (ValueError, OSError) as e:
            if isinstance(e, DamagedSpaceError) or space in self.spaces():
                raise
            raise UnknownSpaceError(f"unknown vector space {space!r}; existing spaces: {self.spaces()}") from None

    def _search_index(self, space, index, query, k, where, excluded, nprobes, exact) -> pa.Table:
        if index.rows == 0:
            raise ValueError(f"vector space {space!r} is empty: nothing to search")
        rows = group = None
        if where:
            group = _category_of(where, index.params.groups)  # the category's own partitions: no filter to evaluate
            if group is None and where not in vector_index.CACHE.space(self.uri, space).masks:
                _validate_where(self.table(space), where, query)
            if group is None:
                rows = vector_index.filter_rows(self.uri, self.path(space), space, index, where)
        positions, scores = index.search(query, k + len(excluded), rows, nprobes, exact, group=group)
        columns = [*RESULT_COLUMNS, *(["text"] if "text" in index.meta.column_names else [])]
        found = index.rows_at(positions, columns)
        keep = [i for i, item in enumerate(found["item_id"]) if item not in excluded][:k] if excluded else None
        result = {c: v if keep is None else [v[i] for i in keep] for c, v in found.items()}
        distance = (1.0 - scores).astype(np.float32)
        result["_distance"] = distance if keep is None else distance[keep]
        return pa.table({c: pa.array(v, pa.float32() if c == "_distance" else pa.string()) for c, v in result.items()})

    def search_hybrid(self, space: str, vector: Iterable[float], text: str, k: int = 10,
                      where: str | None = None) -> pa.Table:  # fmt: skip
        """The ``k`` best rows for a query given as a vector and a text: LanceDB's full-text
        search over the ``text`` column (BM25) and `search` (the calibrated index), each k deep,
        fused by reciprocal rank (RRF, k=60, as LanceDB's `RRFReranker`: 1 / (60 + rank from 0),
        summed). Result columns as `search` plus text and _relevance_score."""
        table = self.table(space)
        if "text" not in table.schema.names:
            raise ValueError(f"vector space {space!r} keeps no item texts: hybrid search needs the clip space")
        if not text or not text.strip():
            raise ValueError("hybrid search needs a non-empty query text")
        by_vector = self.search(space, vector, k=k, where=where)
        by_text = self.search_text(space, text, k=k, where=where)
        rows: dict[str, dict] = {}
        scores: dict[str, float] = {}
        for found in (by_vector, by_text):
            for rank, row in enumerate(found.select([c for c in [*RESULT_COLUMNS, "text"] if c in found.column_names]).to_pylist()):
                rows.setdefault(row["item_id"], row).update({c: v for c, v in row.items() if v is not None})
                scores[row["item_id"]] = scores.get(row["item_id"], 0.0) + 1.0 / (RRF_K + rank)
        best = sorted(scores, key=lambda i: (-scores[i], i))[:k]
        columns = [*RESULT_COLUMNS, "text"]
        out = {c: [rows[i].get(c) for i in best] for c in columns}
        out["_relevance_score"] = [scores[i] for i in best]
        return pa.table({c: pa.array(v, pa.float32() if c == "_relevance_score" else pa.string()) for c, v in out.items()})

    def search_text(self, space: str, text: str, k: int = 10, where: str | None = None) -> pa.Table:
        """The ``k`` rows whose ``text`` best matches ``text`` (LanceDB full-text search, BM25),
        ``where`` validated and applied inside the search as in `search`: item_id, dataset,
        semantic_category, split, text, _score."""
        table = self.table(space)
        if "text" not in table.schema.names:
            raise ValueError(f"vectors_{space} keeps no item texts: re-embed it (atelier embed {space})")
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        builder = table.search(text, query_type="fts").limit(k)
        if where and where.strip():
            _validate_where(table, where, np.zeros(table.schema.field("vector").type.list_size, np.float32))
            builder = builder.where(where, prefilter=True)
        with self._reading(space):
            found = builder.to_arrow()
        return found.select([c for c in ["item_id", "dataset", "semantic_category", "split", "text", "_score"]
                             if c in found.column_names])  # fmt: skip


def _category_of(where: str, categories: Mapping[str, list]) -> str | None:
    """The semantic_category that ``where`` selects when it is exactly one category filter as
    `lance_filter` writes it (the index has that category's partitions), else None."""
    if not where.startswith("semantic_category = "):
        return None
    return next((c for c in categories if c and where == lance_filter("semantic_category", c)), None)  # "": rows without one


def _validate_where(table: lancedb.table.Table, where: str, query: np.ndarray) -> None:
    """Refuse a filter that is not one valid SQL expression over the table's columns, before
    anything runs: DuckDB's parser checks it is one statement, LanceDB plans it (no scan)."""
    try:
        statements = duckdb.extract_statements(f"SELECT 1 FROM t WHERE {where}")
        if len(statements) != 1:
            raise ValueError("more than one statement")
        table.search(query).where(where, prefilter=True).limit(1).explain_plan()
    except Exception as e:  # duckdb.ParserException, lance's RuntimeError/ValueError
        raise ValueError(f"bad where filter {where!r}: {e}") from e
