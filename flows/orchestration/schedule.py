"""Schedules: `atelier serve` reads `<home>/atelier.toml` and serves one Prefect deployment per
dataset, each running `ingest-and-embed` on its cron schedule.

```toml
[ingest.polyvore]              # a dataset of store.DATASETS
path = "/data/polyvore_outfits"  # the release (relative: to this file's folder)
cron = "0 2 * * *"             # when (Prefect's cron syntax), in `timezone` (default UTC)
embed = ["resnet", "ae"]       # spaces to embed after the ingest (optional)
```

A scheduled run re-ingests only when the release's files changed (the ingest task is cached on
their fingerprint: a new, changed or removed file is picked up by the next run) and then embeds
only new or changed images. Every problem is reported with the key it is in.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

CONFIG_NAME = "atelier.toml"
ENTRY_KEYS = {"path", "cron", "embed", "timezone"}
SPACE_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")


class ScheduleError(ValueError):
    """A schedule config that cannot be served (the message names the file and the key)."""


@dataclass(frozen=True)
class ScheduleEntry:
    dataset: str  # a dataset of store.DATASETS
    path: Path  # the raw release, absolute
    cron: str  # cron expression
    timezone: str = "UTC"  # the cron's time zone
    embed: list[str] = field(default_factory=list)  # spaces embedded after the ingest

    @property
    def name(self) -> str:
        """The deployment's name."""
        return f"ingest-{self.dataset}"


def default_config_path(home: Path | str) -> Path:
    """``<home>/atelier.toml``; an object-store home has no local file: ScheduleError saying to
    give --config (a local file: it names the release folders this machine ingests)."""
    if isinstance(home, str) and home.startswith("s3://"):
        raise ScheduleError(f"{home} is an object store: give the schedule as a local file, --config ./{CONFIG_NAME} "
                            "(its release paths are folders on this machine)")  # fmt: skip
    return Path(home) / CONFIG_NAME


def load_schedule(path: Path | str) -> list[ScheduleEntry]:
    """Read and check a schedule config; ScheduleError naming the key of the first problem."""
    from prefect.client.schemas.schedules import CronSchedule

    from store import DATASETS

    path = Path(path)
    if not path.is_file():
        raise ScheduleError(f"{path}: no schedule config (write one: see `atelier serve --help`)")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ScheduleError(f"{path}: not valid TOML: {e}") from e
    unknown = sorted(set(data) - {"ingest"})
    if unknown:
        raise ScheduleError(f"{path}: unknown top-level key(s) {unknown}; expected [ingest.<dataset>] tables")
    tables = data.get("ingest", {})
    if not isinstance(tables, dict) or not tables:
        raise ScheduleError(f"{path}: no [ingest.<dataset>] table: nothing to schedule")
    entries = []
    for dataset, entry in tables.items():
        key = f"ingest.{dataset}"
        if dataset not in DATASETS:
            raise ScheduleError(f"{path}: [{key}]: unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
        if not isinstance(entry, dict):
            raise ScheduleError(f"{path}: {key} must be a table with path and cron")
        extra = sorted(set(entry) - ENTRY_KEYS)
        if extra:
            raise ScheduleError(f"{path}: [{key}]: unknown key(s) {extra}; allowed: {sorted(ENTRY_KEYS)}")
        for required in ("path", "cron"):
            if not isinstance(entry.get(required), str) or not entry[required].strip():
                raise ScheduleError(f"{path}: {key}.{required} is missing (a string is required)")
        timezone = entry.get("timezone", "UTC")
        try:
            CronSchedule(cron=entry["cron"], timezone=timezone)
        except ValueError as e:  # pydantic's ValidationError is a ValueError
            first = str(e).splitlines()[2].strip() if len(str(e).splitlines()) > 2 else str(e)
            raise ScheduleError(f"{path}: {key}.cron / timezone: {entry['cron']!r} ({timezone}): {first}") from e
        spaces = entry.get("embed", [])
        if not isinstance(spaces, list) or not all(isinstance(s, str) and SPACE_RE.match(s) for s in spaces):
            raise ScheduleError(f"{path}: {key}.embed must be a list of space names like [\"resnet\", \"ae\"], got {spaces!r}")
        raw = Path(entry["path"]).expanduser()
        entries.append(ScheduleEntry(dataset, raw if raw.is_absolute() else (path.parent / raw).resolve(),
                                     entry["cron"], timezone, list(spaces)))  # fmt: skip
    return entries


def next_runs(entry: ScheduleEntry, n: int = 1, after: datetime | None = None) -> list[datetime]:
    """The next ``n`` times the entry's cron fires after ``after`` (default: now), in its time zone."""
    from zoneinfo import ZoneInfo

    from cronsim import CronSim

    start = (after or datetime.now(UTC)).astimezone(ZoneInfo(entry.timezone))
    it = CronSim(entry.cron, start)
    return [next(it) for _ in range(n)]


def build_deployments(entries: list[ScheduleEntry], home: Path | str) -> list:
    """One Prefect deployment per entry: `ingest_and_embed_flow` on the entry's cron schedule."""
    from prefect.client.schemas.schedules import CronSchedule

    from flows.orchestration.pipelines import ingest_and_embed_flow

    return [
        ingest_and_embed_flow.to_deployment(
            name=e.name, schedule=CronSchedule(cron=e.cron, timezone=e.timezone),
            parameters={"dataset": e.dataset, "raw_dir": str(e.path), "home": _home_param(home), "spaces": e.embed},
            description=f"ingest {e.dataset} from {e.path}, then embed it into {e.embed or 'no space'}",
            tags=["atelier", e.dataset],
        )
        for e in entries
    ]  # fmt: skip


def _home_param(home: Path | str) -> str:
    """The home as a deployment parameter: an object-store URI as given, a folder absolute."""
    return home if isinstance(home, str) and home.startswith("s3://") else str(Path(home).resolve())


def serve_schedule(config: Path | str, home: Path | str) -> None:  # pragma: no cover - blocks until stopped
    """Serve the deployments of ``config`` until interrupted (runs them on schedule, in this process)."""
    from prefect import serve

    serve(*build_deployments(load_schedule(config), home))
