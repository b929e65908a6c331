"""Schedules: atelier.toml -> checked entries -> Prefect deployments; bad configs name the key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.orchestration.pipelines import ingest_and_embed_flow
from flows.orchestration.schedule import ScheduleError, build_deployments, load_schedule, next_runs

GOOD = """
[ingest.polyvore]
path = "raw/polyvore"
cron = "0 2 * * *"
embed = ["resnet", "ae"]

[ingest.viton]
path = "/data/viton-hd"
cron = "30 */6 * * 1-5"
timezone = "Europe/Paris"
"""


def write(tmp_path, text: str):
    path = tmp_path / "atelier.toml"
    path.write_text(text)
    return path


def test_a_config_becomes_one_deployment_per_dataset(tmp_path):
    entries = load_schedule(write(tmp_path, GOOD))
    assert [(e.dataset, e.cron, e.timezone, e.embed) for e in entries] == [
        ("polyvore", "0 2 * * *", "UTC", ["resnet", "ae"]), ("viton", "30 */6 * * 1-5", "Europe/Paris", [])]
    assert entries[0].path == (tmp_path / "raw" / "polyvore").resolve()  # relative to the config file
    assert next_runs(entries[0], 2, after=datetime(2026, 1, 1, 3, 0, tzinfo=UTC)) == [
        datetime(2026, 1, 2, 2, 0, tzinfo=UTC), datetime(2026, 1, 3, 2, 0, tzinfo=UTC)]
    deployments = build_deployments(entries, tmp_path / "home")
    assert [d.name for d in deployments] == ["ingest-polyvore", "ingest-viton"]
    first = deployments[0]
    assert first.parameters == {"dataset": "polyvore", "raw_dir": str(entries[0].path),
                                "home": str((tmp_path / "home").resolve()), "spaces": ["resnet", "ae"]}
    assert first.schedules[0].schedule.cron == "0 2 * * *"
    assert deployments[1].schedules[0].schedule.timezone == "Europe/Paris"


@pytest.mark.parametrize("text, message", [
    ('[ingest.foo]\npath = "x"\ncron = "0 2 * * *"\n', r"\[ingest.foo\]: unknown dataset 'foo'"),
    ('[ingest.polyvore]\npath = "x"\ncron = "0 25 * * *"\n', r"ingest.polyvore.cron / timezone: '0 25 \* \* \*'"),
    ('[ingest.polyvore]\npath = "x"\ncron = "every day"\n', r"ingest.polyvore.cron"),
    ('[ingest.polyvore]\npath = "x"\ncron = "0 2 * * *"\ntimezone = "Mars/Olympus"\n', r"ingest.polyvore.cron / timezone"),
    ('[ingest.polyvore]\ncron = "0 2 * * *"\n', r"ingest.polyvore.path is missing"),
    ('[ingest.polyvore]\npath = "x"\ncron = "0 2 * * *"\nembed = "resnet"\n', r"ingest.polyvore.embed must be a list"),
    ('[ingest.polyvore]\npath = "x"\ncron = "0 2 * * *"\nwhen = 3\n', r"\[ingest.polyvore\]: unknown key\(s\) \['when'\]"),
    ('[ingest.polyvore\npath = "x"\n', r"not valid TOML"),
    ('[embed.resnet]\ncron = "0 2 * * *"\n', r"unknown top-level key\(s\) \['embed'\]"),
])  # fmt: skip
def test_bad_configs_name_the_key(tmp_path, text, message):
    with pytest.raises(ScheduleError, match=message):
        load_schedule(write(tmp_path, text))


def test_serve_dry_run_shows_the_deployments_and_rejects_bad_configs(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["serve", "--config", str(write(tmp_path, GOOD)), "--dry-run", "--home", str(tmp_path)])
    output = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert "ingest-polyvore" in output and "Europe/Paris" in output and "(missing now)" in output
    res = runner.invoke(app, ["serve", "--home", str(tmp_path / "nowhere"), "--dry-run"])
    assert res.exit_code == 1 and "no schedule config" in res.output


def test_the_scheduled_flow_ingests_then_embeds_only_spaces_with_a_model(polyvore_release, tmp_path, prefect_api):
    (entry,) = load_schedule(write(tmp_path, f'[ingest.polyvore]\npath = "{polyvore_release}"\ncron = "0 2 * * *"\nembed = ["resnet"]\n'))
    (deployment,) = build_deployments([entry], tmp_path / "home")
    result = ingest_and_embed_flow(**deployment.parameters)
    assert result["ingest"]["rows"]["items"] == 484 and not result["ingest"]["cached"]
    assert "atelier train resnet" in result["embed"]["resnet"]["skipped"]
    again = ingest_and_embed_flow(**deployment.parameters)
    assert again["ingest"]["cached"]  # the release did not change: nothing re-ingested
