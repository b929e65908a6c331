"""The jobs that make images, on an object-store home: training the extractor and the diffusion
model (their data: the lake's rows in the store, the images local files), `atelier extract`,
`embed --source extracted`'s garments and `atelier generate`. Their images, contact sheets and
galleries go to the home's local cache folder (`store.files.local_dir`); the rows that name them
(the lake dataset ``generated``) go to the store."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from flows.cli import app
from flows.jobs.extract import extracted_rows
from store import query
from store.models_s3 import finished_versions
from store.objectstore import cache_dir, open_home

TINY_DIFFUSION = ["--steps", "2", "--eval-every", "2", "--batch-size", "8", "--resolution", "16", "--text", "random",
                  "--eval-images", "4", "--sample-steps", "2"]  # fmt: skip
TINY_EXTRACTOR = ["--steps", "2", "--eval-every", "2", "--batch-size", "4", "--height", "64", "--width", "64"]


def cli(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, (args, res.output)
    return " ".join(res.output.split())


def test_extract_and_generate_on_an_s3_home(sample_root, s3_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    local = cache_dir(open_home(s3_home))  # ~/.cache/atelier/s3/<bucket>/<prefix>
    for dataset in ("viton", "synthesis"):
        cli("ingest", dataset, str(sample_root / dataset), "--home", s3_home, "--no-prefect")
    cli("train", "extractor", *TINY_EXTRACTOR, "--home", s3_home, "--no-prefect")
    cli("train", "diffusion", *TINY_DIFFUSION, "--home", s3_home, "--no-prefect")
    assert finished_versions(s3_home, "extractor") == ["v1"] and finished_versions(s3_home, "diffusion") == ["v1"]
    assert list((local / "reports").glob("extractor_v1_val_contact.png"))  # the kind's contact sheet: a local page

    person = query(s3_home, "select image_path, parse_path from viton_samples where subset = 'test' order by person limit 1").to_pylist()[0]
    out = cli("extract", person["image_path"], "--home", s3_home)
    assert person["parse_path"] in out.replace(" ", "")  # the parse map recorded in the store's lake
    assert (local / "reports" / f"extract_{Path(person['image_path']).stem}.png").is_file()

    rows = extracted_rows(s3_home, log=lambda _: None)
    paths = [Path(p) for p in rows["image_path"].to_pylist()]
    assert rows.num_rows > 0 and all(p.is_file() and p.is_relative_to(local / "derived" / "extracted" / "v1") for p in paths)

    out = cli("generate", "a red dress", "-n", "2", "--steps", "2", "--home", s3_home)
    assert "diffusion v1: 2 images of 'a red dress'" in out
    images = query(s3_home, "select image_path, image_ok from generated_images order by item_id").to_pylist()
    assert len(images) == 2 and all(r["image_ok"] and Path(r["image_path"]).is_relative_to(local / "generated" / "v1") for r in images)
    assert list((local / "reports").glob("generate_*.png"))  # the contact sheet
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("s3")] == []  # no local "s3:" folder made on the way
