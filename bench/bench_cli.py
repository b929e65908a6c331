"""Start-up cost of the CLI: `atelier --help` and `atelier sql "select 1"` against the floor of a
SQL command, `python -c "import duckdb"` (a fresh interpreter that loads DuckDB and nothing else).

Each command runs in a fresh process, alternately with the floor (so machine load hits both
alike), ``--repeat`` times; medians are reported. Also `atelier sql` on a small lake (a count
over the sample Polyvore items) and `atelier train --help` (which builds every kind's flags).

    .venv/bin/python bench/bench_cli.py            # -> bench/results/cli.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchutil import write_results

ATELIER = [sys.executable, "-c", "from flows.cli import app; app()"]


def wall(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/cli.json"))
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_cli_"))
    env = {**os.environ, "ATELIER_HOME": str(tmp / "empty-home")}
    lake = tmp / "lake-home"
    subprocess.run([*ATELIER, "samples", str(tmp / "samples"), "--seed", "0"], check=True, env=env, capture_output=True)
    subprocess.run([*ATELIER, "ingest", "polyvore", str(tmp / "samples" / "polyvore"), "--home", str(lake), "--no-prefect"],
                   check=True, env=env, capture_output=True)  # fmt: skip
    commands = {
        "floor: python -c 'import duckdb'": [sys.executable, "-c", "import duckdb"],
        "atelier --help": [*ATELIER, "--help"],
        "atelier sql 'select 1'": [*ATELIER, "sql", "select 1"],
        "atelier sql (count over polyvore_items)": [*ATELIER, "sql", "select count(*) from polyvore_items", "--home", str(lake)],
        "atelier train --help": [*ATELIER, "train", "--help"],
    }
    for cmd in commands.values():  # warm the file cache
        wall(cmd, env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, cmd in commands.items():
            times[name].append(wall(cmd, env))
    floor = statistics.median(times["floor: python -c 'import duckdb'"])
    results = {"benchmark": "cli", "cpus": os.cpu_count(), "repeat": args.repeat, "target_ratio": 1.5,
               "commands": {name: {"median_s": round(statistics.median(t), 3), "min_s": round(min(t), 3),
                                   "ratio_to_floor": round(statistics.median(t) / floor, 2)} for name, t in times.items()}}  # fmt: skip
    for name, r in results["commands"].items():
        print(f"{name}: {r['median_s']:.3f} s ({r['ratio_to_floor']:.2f}x the floor)", file=sys.stderr)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
