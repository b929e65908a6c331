"""What a job command costs with and without Prefect; writes JSON.

    .venv/bin/python bench/bench_first_run.py [--scale 20] [--repeat 3] [--out bench/results/first_run.json]

One `atelier ingest polyvore` of a sample release (--scale times the 484 sample items), each a
fresh home, each a new process (as a user runs it), timed from start to exit:
- direct: `--no-prefect` (the default when no Prefect server is configured);
- temporary server, cold: `--prefect` with a new PREFECT_HOME (the first command on a fresh
  machine: the server migrates its database first);
- temporary server, warm: `--prefect` with a PREFECT_HOME that has run one before;
- running server: `--prefect` with PREFECT_API_URL pointing at a server started before the clock
  (the default when one is configured).
The floor is the bare interpreter start-up plus the library call in-process (`ingest()`), best
of --repeat.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchutil import write_results


def _env(prefect_home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, "PREFECT_HOME": str(prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **extra}


def _ingest(release: Path, work: Path, env: dict[str, str], flag: str) -> tuple[float, str]:
    home = Path(tempfile.mkdtemp(dir=work))
    cmd = [sys.executable, "-m", "flows.cli", "ingest", "polyvore", str(release), "--home", str(home), flag]
    t0 = time.perf_counter()
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if run.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{run.stderr}")
    shutil.rmtree(home)
    how = "fell back to direct" if "running ingest directly" in run.stderr else "flow run" if "flow run" in run.stderr else "direct"
    return seconds, how


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/first_run.json"))
    args = parser.parse_args()

    from etl.samples import write_samples
    from flows.jobs.ingest import ingest

    work = Path(tempfile.mkdtemp(prefix="atelier-bench-first-run-"))
    try:
        write_samples(work / "samples", seed=0, scale=args.scale, image_size=64, datasets=("polyvore",))
        release = work / "samples" / "polyvore"
        t0 = time.perf_counter()
        items = ingest("polyvore", release, work / "warmup-home").rows["items"]  # also warms the page cache
        in_process = []
        for _ in range(args.repeat):
            shutil.rmtree(work / "floor-home", ignore_errors=True)
            t0 = time.perf_counter()
            ingest("polyvore", release, work / "floor-home")
            in_process.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        interpreter = time.perf_counter() - t0
        results: dict[str, dict] = {}

        def record(name: str, runs: list[tuple[float, str]]) -> None:
            results[name] = {"seconds": [round(s, 2) for s, _ in runs], "best_s": round(min(s for s, _ in runs), 2),
                             "how": sorted({h for _, h in runs})}  # fmt: skip
            print(f"{name}: best {results[name]['best_s']} s of {results[name]['seconds']} ({results[name]['how']})")

        record("direct (--no-prefect)", [_ingest(release, work, _env(work / "ph-direct"), "--no-prefect") for _ in range(args.repeat)])
        record("temporary server, cold (fresh PREFECT_HOME)",
               [_ingest(release, work, _env(work / f"ph-cold-{i}"), "--prefect") for i in range(args.repeat)])
        record("temporary server, warm", [_ingest(release, work, _env(work / "ph-cold-0"), "--prefect") for _ in range(args.repeat)])
        from prefect.settings import PREFECT_API_URL
        from prefect.testing.utilities import prefect_test_harness

        with prefect_test_harness(server_startup_timeout=180):
            env = _env(work / "ph-running", PREFECT_API_URL=PREFECT_API_URL.value())
            record("running server (PREFECT_API_URL)", [_ingest(release, work, env, "--prefect") for _ in range(args.repeat)])
        floor = min(in_process) + interpreter
        for r in results.values():
            r["ratio_to_floor"] = round(r["best_s"] / floor, 2)
        write_results(args.out, {
            "what": "atelier ingest polyvore of a sample release, a new process and a fresh home per run, best of repeat",
            "items": items, "scale": args.scale, "repeat": args.repeat,
            "floor_s": {"ingest() in-process": round(min(in_process), 2), "python start-up": round(interpreter, 2),
                        "sum": round(floor, 2)},
            "runs": results,
        })  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
