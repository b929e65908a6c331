"""Generated images as first-class data: the lake dataset ``generated`` (rows per image, no
duplicates when generated again, `atelier sql`), embedding it, neighbours of a generated item,
the service's `/generate` (images + nearest real items) and `/ui/generate` (the prompt escaped).

One small home per module: the sample Synthesis (captions for a tiny diffusion model) and
Polyvore (the real items) releases, a random resnet embedding the Polyvore items."""

from __future__ import annotations

import json
import shutil
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from helpers import one_torch_thread
from typer.testing import CliRunner

from flows.api import create_app
from flows.cli import app
from flows.jobs.embed import embed_space
from flows.jobs.generate import generate_images, load_diffusion
from flows.jobs.ingest import ingest
from flows.jobs.train import train_model
from store import Lake, VectorStore, query

one_thread = pytest.fixture(scope="module", autouse=True)(one_torch_thread)
FAST = {"num_workers": 0, "progress": False, "device": "cpu"}
TINY = {"steps": 3, "eval_every": 3, "batch_size": 8, "resolution": 16, "text": "random", "eval_images": 6, "sample_steps": 3}
XSS = "<script>alert(1)</script> a red dress"


@pytest.fixture(scope="module")
def gen_home(sample_root, tmp_path_factory):
    import torch

    from models import ResNetConfig, ResNetEmbedder

    home = tmp_path_factory.mktemp("generated") / "home"
    ingest("synthesis", sample_root / "synthesis", home)
    ingest("polyvore", sample_root / "polyvore", home)
    train_model("diffusion", home, **TINY, log=lambda _: None)
    torch.manual_seed(0)
    ResNetEmbedder(ResNetConfig(num_classes=11, image_size=32)).save_pretrained(home / "models" / "resnet" / "v1")
    embed_space(home, "resnet", **FAST)
    return home


@pytest.fixture(scope="module")
def client(gen_home):
    return TestClient(create_app(gen_home))


def _rows(home):
    return query(home, "SELECT count(*) AS n, count(DISTINCT item_id) AS ids FROM generated_images").to_pylist()[0]


def test_generating_again_adds_no_rows_and_sql_sees_them(gen_home):
    before = _rows(gen_home)["n"] if Lake(gen_home).exists("generated", "images") else 0
    a = generate_images(gen_home, "a red long-sleeved dress", n=2, steps=2, seed=11)
    b = generate_images(gen_home, "a red long-sleeved dress", n=2, steps=2, seed=11)
    assert a.item_ids == b.item_ids == [f"v1/{p.stem}" for p in a.paths] and a.lake_rows == b.lake_rows == before + 2
    c = generate_images(gen_home, "a red long-sleeved dress", n=3, steps=2, seed=12)
    assert c.lake_rows == before + 5 and _rows(gen_home) == {"n": before + 5, "ids": before + 5}
    row = query(gen_home, "SELECT * FROM generated_images WHERE item_id = ?", [a.item_ids[1]]).to_pylist()[0]
    assert (row["prompt"], row["seed"], row["index"], row["steps"], row["model_version"]) == ("a red long-sleeved dress", 11, 1, 2, "v1")
    assert row["image_ok"] and row["image_path"] == str(a.paths[1]) and row["width"] == 16 and row["created_at"] is not None
    assert len(Lake(gen_home).versions("generated")) == 2  # the current version and the one before it
    assert not (gen_home / "locks" / "ingest-generated.lock").exists()
    res = CliRunner().invoke(app, ["sql", "SELECT count(*) AS n FROM generated_images", "--format", "json", "--home", str(gen_home)])
    assert res.exit_code == 0 and json.loads(res.output) == [{"n": before + 5}], res.output
    res = CliRunner().invoke(app, ["generate", "a blue top", "-n", "1", "--steps", "1", "--home", str(gen_home)])
    assert res.exit_code == 0 and f"generated_images holds {before + 6} rows" in " ".join(res.output.split()), res.output


def test_generated_is_derived_not_ingested(gen_home):
    from flows.jobs.doctor import check_lake
    from store.lake import DATASETS, DERIVED_DATASETS

    assert "generated" in DERIVED_DATASETS and "generated" not in DATASETS
    with pytest.raises(ValueError, match="unknown dataset 'generated'"):
        ingest("generated", gen_home, gen_home)
    assert CliRunner().invoke(app, ["ingest", "generated", str(gen_home), "--home", str(gen_home)]).exit_code != 0
    generate_images(gen_home, "a white top", n=1, steps=1)
    findings, checked = check_lake(gen_home)
    assert findings == [] and checked >= 1


def test_paths_outside_the_home_are_refused(gen_home, tmp_path):
    from flows.jobs.generated import image_rows, record

    outside = tmp_path / "outside"
    outside.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    (home / "generated").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="outside the home"):
        generate_images(home, "a red dress", n=1, steps=1, model=load_diffusion(gen_home))
    assert not list(outside.iterdir())
    # a row naming a file outside HOME/generated is recorded unusable: never embedded nor served
    image = next((gen_home / "generated" / "v1").glob("*.png"))
    stray = shutil.copy(image, outside / "stray.png")
    rows = image_rows(gen_home, [stray], prompt="stray", seed=0, steps=1, guidance=1.0, model_version="v1")
    assert rows["image_ok"].to_pylist() == [False]
    home2 = tmp_path / "home2"
    record(home2, rows)
    assert query(home2, "SELECT image_ok FROM generated_images")["image_ok"].to_pylist() == [False]
    r = TestClient(create_app(home2)).get(f"/items/{quote(rows['item_id'][0].as_py(), safe='')}/image")
    assert r.status_code == 404 and "no usable image" in r.text


def test_a_held_lock_is_waited_for_then_named(gen_home, tmp_path):
    from flows.jobs.generated import image_rows, record
    from store.locks import LockHeld, lock

    image = next((gen_home / "generated" / "v1").glob("*.png"))
    rows = image_rows(gen_home, [image], prompt="x", seed=0, steps=1, guidance=1.0, model_version="v1")
    with lock(tmp_path, "ingest-generated", "generate (another one)"), pytest.raises(LockHeld, match="another one"):
        record(tmp_path, rows, wait_s=0.3)
    assert record(tmp_path, rows) == 1


def test_embed_generated_and_neighbours_of_a_generated_item(gen_home):
    found = generate_images(gen_home, "a green short-sleeved top", n=2, steps=2, seed=21)
    res = CliRunner().invoke(app, ["embed", "resnet", "--dataset", "generated", "--no-prefect", "--home", str(gen_home)])
    assert res.exit_code == 0, res.output
    vectors = VectorStore(gen_home).read("resnet", ["item_id", "dataset"]).to_pylist()
    generated = {r["item_id"] for r in vectors if r["dataset"] == "generated"}
    assert set(found.item_ids) <= generated and len(generated) == _rows(gen_home)["n"]
    res = CliRunner().invoke(app, ["neighbours", found.item_ids[0], "--space", "resnet", "-k", "3", "--home", str(gen_home)],
                             env={"COLUMNS": "200"})  # fmt: skip
    assert res.exit_code == 0 and found.item_ids[1] in res.output, res.output
    # the default embed (the kind's release datasets) leaves the generated vectors alone
    embed_space(gen_home, "resnet", **FAST)
    assert generated <= {r["item_id"] for r in VectorStore(gen_home).read("resnet", ["item_id"]).to_pylist()}


def test_generate_endpoint_returns_images_and_nearest_real_items(client, gen_home):
    body = {"prompt": "a red long-sleeved dress", "n": 2, "steps": 2, "seed": 31, "k": 3}
    r = client.post("/generate", json=body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["model"] == "diffusion v1" and got["space"] == "resnet" and got["space_model"].startswith("resnet/v1@")
    assert len(got["images"]) == 2 and got["note"] is None
    for image in got["images"]:
        assert len(image["nearest"]) == 3 and {i["dataset"] for i in image["nearest"]} == {"polyvore"}
        assert all(i["image_url"] and i["title"] for i in image["nearest"])
        png = client.get(image["image_url"])
        path = query(gen_home, "SELECT image_path FROM generated_images WHERE item_id = ?", [image["item_id"]])["image_path"][0].as_py()
        assert png.status_code == 200 and png.content == open(path, "rb").read()
        item = client.get(f"/items/{image['item_id']}")  # an id with a '/', unquoted
        assert item.status_code == 200 and item.json()["title"] == body["prompt"]
    again = client.get("/generate", params=body).json()  # the same images, no new rows
    assert [i["item_id"] for i in again["images"]] == [i["item_id"] for i in got["images"]] and again["lake_rows"] == got["lake_rows"]
    embed_space(gen_home, "resnet", dataset="generated", **FAST)
    first = quote(got["images"][0]["item_id"], safe="")
    near = client.get(f"/neighbours/{first}", params={"space": "resnet", "k": 2})
    assert near.status_code == 200 and near.json()["query"]["item_id"] == got["images"][0]["item_id"], near.text
    assert client.get(f"/ui/items/{first}").status_code == 200


@pytest.mark.parametrize("body, status, says", [
    ({"prompt": "   "}, 422, "the prompt is empty"),
    ({"prompt": "x" * 1001}, 422, "at most 1000"),
    ({"prompt": "red", "n": 9}, 422, "less than or equal to 8"),
    ({"prompt": "red", "space": "nospace"}, 503, "atelier embed nospace"),
])  # fmt: skip
def test_generate_bad_input(client, body, status, says):
    r = client.post("/generate", json=body)
    assert r.status_code == status and says in r.text, r.text


def test_ui_generate_escapes_the_prompt(client):
    page = client.get("/ui/generate", params={"prompt": XSS, "n": 1, "seed": 2, "k": 2})
    assert page.status_code == 200, page.text
    assert "<script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt; a red dress" in page.text
    assert "script-src" not in page.headers["content-security-policy"] and "default-src 'none'" in page.headers["content-security-policy"]
    assert page.text.count('class="item generated"') == 1 and "/ui/items/v1%2F" in page.text and "nearest real items" in page.text
    form = client.get("/ui/generate")
    assert form.status_code == 200 and 'name="prompt"' in form.text and 'href="/ui/generate"' in client.get("/").text
    bad = client.get("/ui/generate", params={"prompt": "x", "space": "nospace"})
    assert bad.status_code == 503 and "atelier embed nospace" in bad.text


def test_without_a_diffusion_model_503_names_the_command(gen_home, tmp_path):
    home = shutil.copytree(gen_home, tmp_path / "home", ignore=lambda folder, names: ["diffusion"] if folder.endswith("models") else [])
    c = TestClient(create_app(home))
    r = c.post("/generate", json={"prompt": "a red dress"})
    assert r.status_code == 503 and "atelier train diffusion" in r.json()["detail"]
    page = c.get("/ui/generate", params={"prompt": "a red dress"})
    assert page.status_code == 503 and "atelier train diffusion" in page.text
