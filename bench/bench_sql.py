"""Latency of `atelier sql` before and after the sandbox (one read-only statement, files only under
the home, no extensions, configuration locked, views only for the tables a statement names).

"before" is `store/sql.py` as of commit 3293c36 (every view made up front, no sandbox), "after" the
working tree's; both are loaded from copies in a temp folder and run against the same sample lake
(all five sample datasets, seed 0) with the same `store.lake`. Measured:

- in-process `store.sql.fetch(home, sql)` for a few statements (median of ``--repeat`` calls,
  before and after alternating so that machine load hits both alike);
- `connect_lake(home)` with every view (the sandbox's own cost, views made the same way), and the
  bare sandbox: an empty `duckdb.connect()` vs one with the sandbox's settings and lock;
- the CLI, `atelier sql STATEMENT --home LAKE` in a fresh process (the module swapped in by the
  process's first lines, both variants alike), ``--cli-repeat`` alternating runs.

    .venv/bin/python bench/bench_sql.py            # -> bench/results/sql.json
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchutil import write_results

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "3293c36"
STATEMENTS = {
    "count": "select count(*) from polyvore_items",
    "group by": "select semantic_category, count(*) as n from polyvore_items group by 1 order by 1",
    "join": "select o.split, count(*) as n from polyvore_outfit_items o join polyvore_items i using (item_id) group by 1",
    "quarantine view": "select dataset, count(*) as n from quarantine group by 1",
    "select 1": "select 1",
}
CLI = """import importlib.util, sys
spec = importlib.util.spec_from_file_location("store.sql", sys.argv.pop(1))
mod = importlib.util.module_from_spec(spec); sys.modules["store.sql"] = mod; spec.loader.exec_module(mod)
from flows.cli import app; app()"""


def load(path: Path):
    """``path`` as the module `store.sql` (registered while it runs, then removed again)."""
    spec = importlib.util.spec_from_file_location("store.sql", path)
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("store.sql")
    sys.modules["store.sql"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is not None:
            sys.modules["store.sql"] = saved
    return module


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compare(before, after, repeat: int) -> dict:
    """Median seconds of ``before()`` and ``after()``, alternating, and their ratio."""
    before(), after()  # warm caches
    tb, ta = [], []
    for _ in range(repeat):
        tb.append(timed(before))
        ta.append(timed(after))
    mb, ma = statistics.median(tb), statistics.median(ta)
    return {"before_median_ms": round(mb * 1e3, 2), "after_median_ms": round(ma * 1e3, 2), "before_min_ms": round(min(tb) * 1e3, 2),
            "after_min_ms": round(min(ta) * 1e3, 2), "ratio_after_to_before": round(ma / mb, 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/sql.json"))
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--cli-repeat", type=int, default=15)
    args = parser.parse_args()
    from etl.samples import SAMPLE_DATASETS, write_samples
    from flows.jobs.ingest import ingest

    tmp = Path(tempfile.mkdtemp(prefix="bench_sql_"))
    variants = {"before": tmp / "sql_before.py", "after": tmp / "sql_after.py"}
    variants["before"].write_bytes(subprocess.run(["git", "show", f"{BEFORE}:store/sql.py"], cwd=ROOT, check=True,
                                                  capture_output=True).stdout)  # fmt: skip
    variants["after"].write_bytes((ROOT / "store" / "sql.py").read_bytes())
    before, after = load(variants["before"]), load(variants["after"])
    write_samples(tmp / "samples", seed=0, scale=1, image_size=64)
    home = tmp / "home"
    for dataset in SAMPLE_DATASETS:
        ingest(dataset, tmp / "samples" / dataset, home)
    n_tables = len(after.Lake(home).tables())

    results: dict = {"benchmark": "sql", "before": f"{BEFORE}:store/sql.py", "cpus": os.cpu_count(), "lake_tables": n_tables,
                     "repeat": args.repeat, "cli_repeat": args.cli_repeat, "target_ratio": 1.05, "fetch": {}}  # fmt: skip
    for name, sql in STATEMENTS.items():
        assert before.fetch(home, sql) == after.fetch(home, sql), name  # same answer
        results["fetch"][name] = compare(lambda s=sql: before.fetch(home, s), lambda s=sql: after.fetch(home, s), args.repeat)
        print(f"fetch {name}: {results['fetch'][name]}", file=sys.stderr)

    def all_views(module):
        return lambda: module.connect_lake(home, vectors=False).close()

    results["connect_lake_every_view"] = compare(all_views(before), all_views(after), args.repeat)
    print(f"connect_lake: {results['connect_lake_every_view']}", file=sys.stderr)
    import duckdb

    lake, paths = after.Lake(home), list(after.Lake(home).tables().values())

    def sandboxed():
        con = duckdb.connect(config={**after.SANDBOX, "temp_directory": after._temp_directory()})
        after._sandbox(con, lake, paths)
        con.execute("set lock_configuration = true")
        con.close()

    results["bare_connection"] = compare(lambda: duckdb.connect().close(), sandboxed, args.repeat * 5)
    print(f"bare connection: {results['bare_connection']}", file=sys.stderr)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results["cli"] = {}
    for name in ("count", "join"):
        def cli(variant: str, sql: str = STATEMENTS[name]):
            return lambda: subprocess.run([sys.executable, "-c", CLI, str(variants[variant]), "sql", sql, "--home", str(home)],
                                          check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp)  # fmt: skip

        results["cli"][name] = compare(cli("before"), cli("after"), args.cli_repeat)
        print(f"cli {name}: {results['cli'][name]}", file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
