"""`atelier extract` and "shop the look" (issue 17): the garment of a person photo through the
CLI, the query service's `/extract` and the web UI's upload page, each searching the clip space;
bad uploads answered with a clear 4xx naming the upload, never a temporary file."""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from flows.api import create_app
from flows.cli import app
from flows.jobs.extract import extract_garment, shop_the_look
from flows.jobs.ingest import ingest
from flows.jobs.train import train_model
from store import query


@pytest.fixture(scope="module")
def shop_home(api_home, sample_root, tmp_path_factory):
    """The API home (Polyvore, clip space) plus the VITON samples and a tiny extractor."""
    home = Path(shutil.copytree(api_home, tmp_path_factory.mktemp("shop") / "home"))
    ingest("viton", sample_root / "viton", home)
    train_model("extractor", home, steps=2, eval_every=2, batch_size=4, height=64, width=64, log=lambda _: None)
    return home


@pytest.fixture(scope="module")
def person(shop_home):
    return query(shop_home, "select image_path, parse_path from viton_samples where subset = 'test' order by person limit 1").to_pylist()[0]


def test_cli_extracts_and_shops_the_look(shop_home, person, tmp_path):
    target = tmp_path / "garment.png"
    r = CliRunner().invoke(app, ["extract", person["image_path"], "--out", str(target), "--search", "clip", "-k", "4",
                                 "--where", "dataset = 'polyvore'", "--home", str(shop_home)])  # fmt: skip
    assert r.exit_code == 0, r.output
    with Image.open(target) as im:
        assert im.size == (64, 64) and im.mode == "RGB"
    assert person["parse_path"] in r.output.replace("\n", "")  # the lake's parse map of that person
    library = shop_the_look(shop_home, extract_garment(shop_home, person["image_path"], out=tmp_path / "again.png"), "clip", k=4,
                            where="dataset = 'polyvore'", gallery=False)  # fmt: skip
    assert len(library.rows) == 4 and all(row["item_id"] in r.output for row in library.rows)
    assert "gallery:" in r.output and (shop_home / "reports" / "shop_garment_clip.html").exists()


def test_cli_without_a_parse_map_says_what_to_give(shop_home, tmp_path):
    photo = tmp_path / "me.jpg"
    Image.new("RGB", (96, 128), "white").save(photo)
    r = CliRunner().invoke(app, ["extract", str(photo), "--home", str(shop_home)])
    assert r.exit_code != 0 and "--parse" in r.output and "me.jpg" in r.output


def _files(person) -> dict:
    return {"image": ("p.jpg", open(person["image_path"], "rb").read(), "image/jpeg"),
            "parse": ("p.png", open(person["parse_path"], "rb").read(), "image/png")}  # fmt: skip


def test_service_extract_and_the_upload_page(shop_home, person):
    c = TestClient(create_app(shop_home))
    r = c.post("/extract", files=_files(person), data={"space": "clip", "k": "3"})
    assert r.status_code == 200, r.text
    body = r.json()
    with Image.open(io.BytesIO(base64.b64decode(body["garment"].split(",", 1)[1]))) as im:
        assert im.size == (64, 64)
    assert body["model"] == "extractor v1" and body["space"] == "clip" and len(body["items"]) == 3
    page = c.post("/ui/extract", files=_files(person), data={"space": "clip", "k": "5"})
    assert page.status_code == 200 and 'id="garment" src="data:image/png;base64,' in page.text
    assert page.text.count('<figure class="card') == 1 + 5 and "<script" not in page.text
    assert c.get("/ui/extract").status_code == 200


@pytest.mark.parametrize("change, status, says", [
    ({"parse": ("p.png", b"not an image", "image/png")}, 400, "the uploaded parse map"),
    ({"image": ("p.jpg", b"\xff\xd8\xff" + b"0" * 50, "image/jpeg")}, 400, "the uploaded image"),
    ({"rgb_parse": True}, 400, "not palette"),
    ({"space": "nospace"}, 404, "unknown vector space 'nospace'"),
])  # fmt: skip
def test_bad_uploads_are_clear_client_errors(shop_home, person, change, status, says):
    files, data = _files(person), {"space": "clip"}
    if change.pop("rgb_parse", False):
        buf = io.BytesIO()
        with Image.open(person["parse_path"]) as im:
            im.convert("RGB").save(buf, "PNG")
        files["parse"] = ("p.png", buf.getvalue(), "image/png")
    if "space" in change:
        data["space"] = change.pop("space")
    files.update(change)
    r = TestClient(create_app(shop_home)).post("/extract", files=files, data=data)
    assert r.status_code == status, r.text
    assert says in r.json()["detail"] and "atelier-extract-" not in r.json()["detail"]


def test_extracted_garments_are_embedded_beside_the_clothes_and_compared(shop_home, tmp_path):
    from flows.jobs.embed import embed_space
    from flows.jobs.extract import extracted_vs_cloth
    from store import VectorStore

    home = Path(shutil.copytree(shop_home, tmp_path / "home"))
    embed_space(home, "clip", dataset="viton", progress=False)
    result = embed_space(home, "clip", source="extracted", progress=False)
    persons = query(home, "select count(*) as n from viton_samples where complete").to_pylist()[0]["n"]
    assert result.n_embedded == persons and result.n_stale_removed == 0
    keys = VectorStore(home).keys("clip").to_pylist()
    extracted = {k["item_id"] for k in keys if k["dataset"] == "viton_extracted"}
    clothes = {k["item_id"] for k in keys if k["dataset"] == "viton"}
    assert len(extracted) == persons and {i.replace("/extracted/", "/cloth/") for i in extracted} <= clothes
    again = embed_space(home, "clip", progress=False)  # a lake embed leaves the extracted garments alone
    assert again.n_stale_removed == 0 and len(VectorStore(home).keys("clip")) == len(keys)
    assert embed_space(home, "clip", source="extracted", progress=False).n_embedded == 0  # same extractor, same PNGs: unchanged
    report = extracted_vs_cloth(home, "clip")
    assert report["n_persons"] == persons and {"low", "high"} <= set(report["own_cloth_cosine"])
    assert report["r1_random"]["value"] == pytest.approx(1 / persons)


def test_embed_source_extracted_command(shop_home, tmp_path):
    from flows.jobs.embed import embed_space

    home = Path(shutil.copytree(shop_home, tmp_path / "home"))
    embed_space(home, "clip", dataset="viton", progress=False)
    r = CliRunner().invoke(app, ["embed", "clip", "--source", "extracted", "--home", str(home)])
    assert r.exit_code == 0, r.output
    output = " ".join(r.output.split())
    assert "extracted garments embedded" in output and "vs a random cloth" in output and "R@1 of the own cloth" in output
    assert (home / "reports" / "extracted_vs_cloth_clip.json").exists()
    bad = CliRunner().invoke(app, ["embed", "clip", "--source", "extracted", "--workers", "2", "--home", str(home)])
    assert bad.exit_code != 0 and "in this process" in bad.output
