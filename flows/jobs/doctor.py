"""`atelier doctor`: check a home, and with ``fix`` repair what can be repaired without losing work.

Each check returns :class:`Finding` s (what, path, problem, fix, fixed, severity); a ``problem``
that is not ``fixed`` makes the doctor fail, a ``note`` only informs. In order:

1. locks (`store.locks`): a stale lock (its holder is gone) is removed; a live one is a note.
2. leftovers (`store.lake_health.temp_files`): ``*.tmp`` files under lake/, models/, reports/
   and unfinished or superseded lake versions, removed (under the dataset's ingest lock; never
   in a version directory a live training run holds).
3. lake tables (`store.lake_health`): each Parquet footer opened and the rows compared with the
   commit's manifest; each dataset's ``sources`` recounted against its tables. A damaged or
   inconsistent table cannot be repaired here: the fix is to ingest the release again.
4. model versions (`store.models.check_version`): a finished model whose files cannot be read is
   a problem (never deleted: train it again or delete it yourself); an unfinished run with a
   readable checkpoint is a note (``atelier train KIND --resume`` continues it: hours of training
   may be in it, so it is kept); an orphan (unfinished, no readable checkpoint: nothing can use
   or resume it) is removed.
5. vector spaces (`flows.jobs.embed_upkeep`): a damaged space is dropped (its vectors are derived
   data: ``atelier embed SPACE`` writes them again); duplicate item_ids and stale vectors (items
   no longer usable) are deleted under the space's embed lock; usable items without a vector are
   a note.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from store import lake_health
from store.lake import DATASETS, LAKE_DATASETS, rewrite_hint
from store.locks import LockHeld, clear_stale, held_locks, lock
from store.models import all_versions, check_version


@dataclass
class Finding:
    what: str  # "lock", "leftover", "lake table", "model", "vector space"
    path: str
    problem: str
    fix: str  # what --fix does, or what the user has to do
    fixed: bool = False
    severity: str = "problem"  # "problem": fails the doctor until fixed; "note": for information

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Checkup:
    home: Path
    findings: list[Finding] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)  # area -> how many things were checked

    @property
    def problems(self) -> list[Finding]:
        """The problems that remain (not fixed)."""
        return [f for f in self.findings if f.severity == "problem" and not f.fixed]

    def to_dict(self) -> dict:
        return {"home": str(self.home), "checked": self.checked, "findings": [f.to_dict() for f in self.findings],
                "problems": len(self.problems)}  # fmt: skip


def _train_lock_name(path: Path) -> str:
    """The lock a training run of version directory ``path`` holds (`flows.jobs.train.train_lock`)."""
    return f"train-{path.parent.name}-{path.name.lower()}"


def _locked(home: Path, name: str, fn) -> str | None:
    """Run ``fn()`` holding lock ``name``; the holder's description when another process holds it."""
    try:
        with lock(home, name, "atelier doctor --fix"):
            fn()
    except LockHeld as e:
        return e.info.what
    return None


def check_locks(home: Path, fix: bool) -> tuple[list[Finding], int]:
    found, infos = [], held_locks(home)
    removed = {str(p) for p in clear_stale(home)} if fix else set()
    for info in infos:
        holder = f"{info.what} (pid {info.pid} on {info.host or '?'}, since {info.started})"
        if info.stale:
            found.append(Finding("lock", str(info.path), f"stale lock of {holder}: its holder is gone",
                                 "remove it (--fix)", str(info.path) in removed))  # fmt: skip
        else:
            found.append(Finding("lock", str(info.path), f"held by {holder}", "wait for it to finish", severity="note"))
    return found, len(infos)


def _lake_lock(home: Path, path: Path) -> str | None:
    """The ingest lock guarding a leftover under lake/ (None elsewhere)."""
    parts = path.relative_to(home).parts
    if parts[0] != "lake" or len(parts) < 2:
        return None
    name = parts[2] if parts[1] == ".versions" and len(parts) > 2 else parts[1].lstrip(".").split(".")[0]
    return f"ingest-{name}" if name in LAKE_DATASETS else None


def check_leftovers(home: Path, fix: bool, live: set[str]) -> tuple[list[Finding], int]:
    found, leftovers = [], lake_health.temp_files(home)
    for path in leftovers:
        finding = Finding("leftover", str(path), "left by a killed or failed write", "remove it (--fix)")
        found.append(finding)
        rel = path.relative_to(home).parts
        if rel[0] == "models" and len(rel) > 3 and f"train-{rel[1]}-{rel[2].lower()}" in live:
            finding.severity, finding.problem = "note", "a running training run is writing it"
            continue
        if not fix:
            continue
        name = _lake_lock(home, path)
        holder = _locked(home, name, lambda p=path: lake_health.remove_temp_file(p)) if name else None
        if name is None:
            lake_health.remove_temp_file(path)
        if holder:
            finding.fix = f"left alone: {holder} is running; run the doctor again once it ends"
        finding.fixed = not path.exists() and not path.is_symlink()
    return found, len(leftovers)


def check_lake(home: Path) -> tuple[list[Finding], int]:
    found, checks = [], lake_health.check_tables(home)
    for c in checks:
        if c.problem:
            found.append(Finding("lake table", str(c.path), c.problem, _reingest(home, c.dataset)))
    for dataset in sorted({c.dataset for c in checks}):
        readable = {c.view: c.path for c in checks if c.dataset == dataset and c.problem is None}
        sources = next((c.path for c in checks if c.view == f"{dataset}_sources"), None)
        for mismatch in lake_health.sources_mismatches(home, dataset, readable):
            found.append(Finding("lake table", str(sources), f"not consistent with its sources: {mismatch}", _reingest(home, dataset)))
    return found, len(checks)


def _reingest(home: Path, dataset: str) -> str:
    if dataset not in DATASETS:  # derived: no release to ingest
        return rewrite_hint(dataset)
    return f"ingest the release again: `atelier ingest {dataset} <release folder> --home {home}` (rewrites every {dataset} table)"


def check_models(home: Path, fix: bool, live: set[str]) -> tuple[list[Finding], int]:
    from flows.jobs.train import resumable_version

    found, versions = [], all_versions(home)
    for path in versions:
        kind, version = path.parent.name, path.name
        if _train_lock_name(path) in live:
            found.append(Finding("model", str(path), "a training run is writing it", "wait for it to finish", severity="note"))
            continue
        c = check_version(path)
        if c.state == "finished" and c.problem:
            found.append(Finding("model", str(path), c.problem, f"train it again (`atelier train {kind} --home {home}`) "
                                                                 f"or delete {path}; a finished model is never deleted here"))  # fmt: skip
        elif c.state == "finished" and not c.has_metrics:
            found.append(Finding("model", str(path), "no metrics.json (saved outside `atelier train`?)",
                                 "nothing to do: it loads, its scores are unknown", severity="note"))  # fmt: skip
        elif c.state == "resumable":
            how = "--resume" if resumable_version(home, kind) == version else f"--version {version}"
            found.append(Finding("model", str(path), "unfinished training run (killed?) with a checkpoint; never used as the "
                                                     "latest model", f"continue it: `atelier train {kind} {how} --home {home}` "
                                                     "(same options), or delete it", severity="note"))  # fmt: skip
        elif c.state == "orphan":
            problem = f"unfinished training run with {'an unreadable checkpoint: ' + c.problem if c.problem else 'no checkpoint'}"
            finding = Finding("model", str(path), f"{problem}; never used, cannot be resumed", "remove it (--fix)")
            found.append(finding)
            if fix:
                holder = _locked(home, _train_lock_name(path), lambda p=path: shutil.rmtree(p, ignore_errors=True))
                finding.fixed = not path.exists()
                if holder:
                    finding.fix = f"left alone: {holder} is running"
    return found, len(versions)


def check_vectors(home: Path, fix: bool) -> tuple[list[Finding], int]:
    if not (home / "vectors").is_dir():
        return [], 0
    from flows.jobs.embed_upkeep import embed_lock, repair_space, space_health
    from store.vectors import VectorStore

    store = VectorStore(home)
    found, spaces = [], store.spaces()
    for space in spaces:
        h = space_health(home, space)
        if h.damaged:
            finding = Finding("vector space", h.path, h.damaged, f"drop it (--fix), then `atelier embed {space} --home {home}` "
                                                                  "embeds every item again")  # fmt: skip
            found.append(finding)
            if fix:
                try:
                    with embed_lock(home, space):
                        store.drop(space)
                    finding.fixed = True
                except LockHeld as e:
                    finding.fix = f"left alone: {e.info.what} is running"
            continue
        problems = []
        if h.duplicates:
            problems.append(Finding("vector space", h.path, f"{h.rows} rows for {h.rows - h.duplicates} item ids: "
                                                            f"{h.duplicates} duplicate rows", "delete the duplicates (--fix)"))  # fmt: skip
        if h.stale_ids:
            ids = ", ".join(h.stale_ids[:3]) + (", ..." if len(h.stale_ids) > 3 else "")
            problems.append(Finding("vector space", h.path, f"{len(h.stale_ids)} vectors of items no longer usable ({ids})",
                                    "delete them (--fix)"))  # fmt: skip
        found += problems
        if problems and fix:
            try:
                repair_space(home, space)
                for p in problems:
                    p.fixed = True
            except LockHeld as e:
                for p in problems:
                    p.fix = f"left alone: {e.info.what} is running"
        if h.missing:
            found.append(Finding("vector space", h.path, f"{h.missing} of {h.usable} usable items have no vector",
                                 f"`atelier embed {space} --home {home}` embeds them", severity="note"))  # fmt: skip
    return found, len(spaces)


def doctor(home: Path | str, fix: bool = False) -> Checkup:
    """Check ``home`` (and with ``fix`` repair it); see the module docstring."""
    if isinstance(home, str) and home.startswith("s3://"):
        from store.objectstore import ObjectStoreError

        raise ObjectStoreError(f"atelier doctor checks homes on a file system, not the object store {home}: there a stale lock "
                         "is taken over once its heartbeat is 60 s old and a killed ingest's version is removed by the "
                         "next ingest of its dataset (README: Object-store homes)")  # fmt: skip
    home = Path(home)
    if not home.is_dir():
        raise FileNotFoundError(f"no atelier home at {home} (nothing to check): give one with --home or ATELIER_HOME")
    out = Checkup(home)
    for area, run in (("locks", lambda: check_locks(home, fix)),
                      ("leftovers", lambda: check_leftovers(home, fix, _live(home))),
                      ("lake tables", lambda: check_lake(home)),
                      ("model versions", lambda: check_models(home, fix, _live(home))),
                      ("vector spaces", lambda: check_vectors(home, fix))):  # fmt: skip
        found, n = run()
        out.findings += found
        out.checked[area] = n
    return out


def _live(home: Path) -> set[str]:
    return {info.name for info in held_locks(home) if not info.stale}


__all__ = ["Checkup", "Finding", "check_lake", "check_leftovers", "check_locks", "check_models", "check_vectors", "doctor"]
