"""Health of a home's lake and leftovers, for `atelier doctor` (nothing here changes a file but
`remove_temp_files`).

- `check_tables(home)`: every lake table's Parquet footer opened (a truncated or overwritten file
  is damaged: its rows unknown), its rows compared with the commit's manifest (`_manifest.json`).
- `sources_mismatches(home, dataset, rows)`: the dataset's ``sources`` table against the tables
  it describes. The records kept per source file are counted again over the current tables by
  the very SQL that counted them at ingest (the ``kept`` part of ``sql/<dataset>_sources.sql``;
  the parts that read raw relations, not kept in the lake, are skipped), and the quarantined
  records against the ``quarantine`` table; read = kept + quarantined is checked too.
- `temp_files(home)`: what killed or failed writes left: ``*.tmp`` files under ``lake/``,
  ``models/`` and ``reports/``, and the lake's unfinished or superseded versions (`Lake.garbage`;
  the version the last commit replaced is kept, as the lake itself keeps it).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from store.lake import LAKE_DATASETS, MANIFEST, Lake
from store.sql import load_sql

TEMP_FOLDERS = ("lake", "models", "reports")
BRANCH_RELATIONS = re.compile(r"\b(?:from|join)\s+([a-z_][a-z0-9_]*)", re.IGNORECASE)


@dataclass
class TableCheck:
    view: str  # <dataset>_<table>
    dataset: str
    table: str
    path: Path
    rows: int | None = None  # from the Parquet footer; None when it cannot be read
    problem: str | None = None  # why it cannot be read, or how it disagrees with its manifest


def _first_line(e: BaseException) -> str:
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return text if len(text) <= 200 else text[:197] + "..."


def footer_rows(path: Path) -> int:
    """Rows recorded in a Parquet file's footer (reads the footer only)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def _manifest(path: Path) -> dict:
    try:
        return json.loads((path.parent / MANIFEST).read_text()).get("rows", {})
    except (OSError, ValueError, AttributeError):
        return {}


def check_tables(home: Path | str) -> list[TableCheck]:
    """Every lake table (`Lake.tables`), footer opened, rows compared with its manifest."""
    out = []
    for view, path in Lake(home).tables().items():
        dataset = next(d for d in sorted(LAKE_DATASETS, key=len, reverse=True) if view.startswith(f"{d}_"))
        check = TableCheck(view, dataset, view[len(dataset) + 1:], Path(path))
        try:
            check.rows = footer_rows(check.path)
        except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
            check.problem = f"cannot be read as Parquet ({_first_line(e)})"
        else:
            recorded = _manifest(check.path).get(check.table)
            if recorded is not None and recorded != check.rows:
                check.problem = f"holds {check.rows} rows, its ingest wrote {recorded} (replaced after the commit?)"
        out.append(check)
    return out


def _kept_branches(dataset: str) -> list[str]:
    """The SELECTs of the ``kept`` CTE of ``sql/<dataset>_sources.sql``, one per UNION ALL part."""
    sql = load_sql(f"{dataset}_sources")
    m = re.search(r"\bkept\s+as\s*\(", sql, re.IGNORECASE)
    if m is None:
        return []
    depth, start = 1, m.end()
    for i in range(start, len(sql)):
        depth += {"(": 1, ")": -1}.get(sql[i], 0)
        if depth == 0:
            body = sql[start:i]
            break
    else:
        return []
    parts, level, last = [], 0, 0
    for i, ch in enumerate(body):
        level += {"(": 1, ")": -1}.get(ch, 0)
        if level == 0 and body[i:i + 9].lower() == "union all":
            parts.append(body[last:i])
            last = i + 9
    return [p.strip() for p in [*parts, body[last:]] if p.strip()]


def sources_mismatches(home: Path | str, dataset: str, tables: dict[str, Path]) -> list[str]:
    """How the dataset's ``sources`` disagrees with its tables (``tables``: the readable ones,
    ``<dataset>_<table>`` -> path); an empty list when it agrees (or records nothing to check)."""
    import duckdb

    if f"{dataset}_sources" not in tables:
        return []
    con = duckdb.connect()
    try:
        for view, path in tables.items():
            con.read_parquet(str(path)).create_view(view)  # the path is an argument, never SQL text
        sources = {r[0]: r[1:] for r in con.execute(f"select source_file, records_read, records_kept, records_quarantined "
                                                     f"from {dataset}_sources").fetchall()}  # fmt: skip
        out = [f"sources: {f} read {r} != kept {k} + quarantined {q}" for f, (r, k, q) in sources.items() if r != k + q]
        for branch in _kept_branches(dataset):
            used = {n.lower() for n in BRANCH_RELATIONS.findall(branch)}
            if not used or not used <= set(tables):
                continue  # reads a raw relation (not kept in the lake) or a table that is damaged
            for source_file, n in con.execute(branch).fetchall():
                recorded = sources.get(source_file, (None, None, None))[1]
                if recorded is not None and recorded != n:
                    out.append(f"{source_file}: {', '.join(sorted(used))} now hold {n} kept records, sources says {recorded}")
        if f"{dataset}_quarantine" in tables:
            counted = dict(con.execute(f"select source_file, count(*) from {dataset}_quarantine group by 1").fetchall())
            for source_file, (_, _, q) in sources.items():
                if counted.get(source_file, 0) != q:
                    out.append(f"{source_file}: quarantine holds {counted.get(source_file, 0)} records, sources says {q}")
        return out
    finally:
        con.close()


def temp_files(home: Path | str) -> list[Path]:
    """Leftovers of killed or failed writes (see the module docstring), sorted."""
    home = Path(home)
    found = {p for folder in TEMP_FOLDERS if (home / folder).is_dir() for p in (home / folder).rglob("*.tmp")}
    lake = Lake(home)
    if lake.root.is_dir():
        for dataset in LAKE_DATASETS:
            found |= set(lake.garbage(dataset, keep=previous_version(lake, dataset)))
    return sorted(found)


def previous_version(lake: Lake, dataset: str) -> Path | None:
    """The version a commit replaced, which the lake keeps until the next commit (for readers
    that opened it just before the swap): the newest complete one (manifest written) that is
    not current, else a legacy folder moved there by the first commit. Not a leftover."""
    current = lake.current(dataset)
    others = [v for v in lake.versions(dataset) if v.resolve() != current]
    complete = [v for v in others if (v / MANIFEST).is_file()]
    if complete:
        return max(complete, key=lambda v: (v / MANIFEST).stat().st_mtime_ns)
    legacy = [v for v in others if v.name.startswith("legacy-")]
    return max(legacy, key=lambda v: v.stat().st_mtime_ns) if legacy else None


def remove_temp_file(path: Path) -> None:
    """Remove one of `temp_files` (a file, a link or a whole unfinished lake version)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


__all__ = ["TableCheck", "check_tables", "footer_rows", "remove_temp_file", "sources_mismatches", "temp_files"]
