"""The research models' training jobs behind one call: ``clip``, ``attributes``, ``siamese``.

`run_training(name, home, **options)` calls the job (`flows.jobs.clip.train_clip_job`,
`flows.jobs.attributes.train_attributes`, `flows.jobs.siamese.train_siamese`) and returns the JSON-ready
{name, version, path, metrics, reused}; `summary(name, metrics)` is the one line the CLI and the
demo print: the held-out score next to its baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

JOBS = ("clip", "attributes", "siamese")


def _job(name: str) -> Callable:
    if name == "clip":
        from flows.jobs.clip import train_clip_job

        return train_clip_job
    if name == "attributes":
        from flows.jobs.attributes import train_attributes

        return train_attributes
    if name == "siamese":
        from flows.jobs.siamese import train_siamese

        return train_siamese
    raise ValueError(f"unknown training job {name!r}; expected one of {JOBS}")


def run_training(name: str, home: Path | str, log: Callable[[str], None] = print, **options) -> dict:
    """Train ``name`` with ``options`` (None values dropped: the job's defaults apply)."""
    options = {k: v for k, v in options.items() if v is not None}
    run = _job(name)(home, log=log, **options)
    return {"name": name, "version": run.version, "path": str(run.path), "metrics": run.metrics, "reused": False}


def summary(name: str, metrics: dict) -> str:
    """The held-out score with its baseline, one line."""
    if name == "clip":
        b, a = metrics["before"], metrics["after"]
        return (f"held-out text->image R@1 {b['t2i_r1']:.3f} -> {a['t2i_r1']:.3f}, R@10 {b['t2i_r10']:.3f} -> "
                f"{a['t2i_r10']:.3f}; image->text R@1 {a['i2t_r1']:.3f} (random R@1 {a['random_r1']:.3f}, "
                f"R@10 {a['random_r10']:.3f}; n {a['n']})")  # fmt: skip
    if name == "attributes":
        parts = []
        for head, splits in metrics["heads"].items():
            s = splits.get("test") or splits.get("val")
            if head == "benchmark":
                parts.append(f"benchmark attributes mean acc {s['mean_accuracy']:.3f} (all negative "
                             f"{s['all_negative_accuracy']:.3f}), balanced {s['mean_balanced_accuracy']:.3f} "
                             f"({s['all_negative_balanced_accuracy']:.3f})")  # fmt: skip
                continue
            parts.append(f"{head} acc {s['accuracy']:.3f} (majority {s['majority_accuracy']:.3f}), balanced "
                         f"{s['balanced_accuracy']:.3f} ({s['majority_balanced_accuracy']:.3f})")  # fmt: skip
        return "test: " + "; ".join(parts)
    if name == "siamese":
        b, a = metrics["before"], metrics["after"]
        return (f"{metrics.get('mode')}: held-out pair retrieval R@1 {b['r1']:.3f} -> {a['r1']:.3f}, R@10 {b['r10']:.3f} "
                f"-> {a['r10']:.3f} (random {a['random_r1']:.3f} / {a['random_r10']:.3f}; {a['n_pairs']} pairs)")  # fmt: skip
    raise ValueError(f"unknown training job {name!r}")
