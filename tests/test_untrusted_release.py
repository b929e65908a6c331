"""A release is untrusted input (issue 14): a sample release made malicious — an item id that is
HTML (`<img src=x onerror=...>`), a title that is a script, an item id that climbs out of the
release (`../../../secret/leak`), symlinks in images/ to files outside it — is ingested without
reading, hashing or showing anything outside the release, and its gallery, opened in a real
headless browser (Debian's chromium driven by playwright), runs no script and shows only images
of the release. The other readers' paths (DeepFashion file names, DeepFashion2 annotation files
and Simplicity pattern paths, VITON-HD folders) go through the same check."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import XSS_ID, XSS_TITLE, chromium
from PIL import Image

from etl import RawFormatError, read_polyvore
from flows.jobs.analyses import neighbours, write_gallery
from flows.jobs.embed_sources import READERS, polyvore_rows
from flows.jobs.ingest import ingest
from store import Lake, VectorStore, query
from store.vectors import vector_schema

DOTDOT_ID = "../../../secret/leak"  # images/<id>.jpg names <base>/secret/leak.jpg
LINK_ID = "linked-out"  # images/linked-out.jpg -> <base>/secret/photo.jpg (a real JPEG)
PASSWD_ID = "passwd"  # images/passwd.jpg -> <base>/secret/passwd
OUTSIDE_COLOURS = [(255, 0, 255), (0, 255, 0)]  # the outside JPEGs: plain magenta and green


class Opened:
    """Files opened (Python's audit events) that resolve under ``folder`` while ``watch`` is on."""

    folder: str | None = None
    seen: list[str] = []

    @classmethod
    def hook(cls, event, args):
        if cls.folder and event == "open" and isinstance(args[0], str | bytes | os.PathLike):
            real = os.path.realpath(os.fsdecode(args[0]))
            if real.startswith(cls.folder):
                cls.seen.append(real)


sys.addaudithook(Opened.hook)  # audit hooks cannot be removed: it does nothing while folder is None


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _outside(base: Path) -> dict[str, str]:
    """The secret files outside the release, by name -> sha1."""
    secret = base / "secret"
    secret.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), OUTSIDE_COLOURS[1]).save(secret / "leak.jpg")
    Image.new("RGB", (64, 64), OUTSIDE_COLOURS[0]).save(secret / "photo.jpg")
    (secret / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    return {p.name: _sha1(p) for p in secret.iterdir()}


def _ingest_watched(dataset: str, root: Path, home: Path, secret: Path):
    Opened.folder, Opened.seen = str(secret.resolve()) + "/", []
    try:
        return ingest(dataset, root, home)
    finally:
        Opened.folder = None


def _lake_text(home: Path) -> str:
    """Every value of every lake table, as one text to search."""
    return json.dumps([pq.read_table(p).to_pylist() for p in Lake(home).tables().values()], default=str)


@pytest.fixture(scope="module")
def attacked(sample_root, tmp_path_factory):
    """The sample Polyvore release with the malicious items, ingested."""
    base = tmp_path_factory.mktemp("attack")
    root = Path(shutil.copytree(sample_root / "polyvore", base / "releases" / "polyvore"))
    outside = _outside(base)
    meta_path = root / "polyvore_item_metadata.json"
    meta = json.loads(meta_path.read_text())
    donor_id = sorted(meta)[0]
    meta[XSS_ID] = {**meta[donor_id], "title": XSS_TITLE, "description": XSS_TITLE}
    shutil.copy(root / "images" / f"{donor_id}.jpg", root / "images" / f"{XSS_ID}.jpg")
    meta[DOTDOT_ID] = meta[LINK_ID] = meta[PASSWD_ID] = dict(meta[donor_id])
    (root / "images" / f"{LINK_ID}.jpg").symlink_to(base / "secret" / "photo.jpg")
    (root / "images" / f"{PASSWD_ID}.jpg").symlink_to(base / "secret" / "passwd")
    meta_path.write_text(json.dumps(meta))
    home = base / "home"
    result = _ingest_watched("polyvore", root, home, base / "secret")
    return {"root": root, "home": home, "outside": outside, "result": result, "opened": list(Opened.seen), "donor": donor_id}


def test_paths_out_of_the_release_are_quarantined_unread(attacked):
    home = attacked["home"]
    quarantined = {r["record_key"]: r["reason"] for r in
                   query(home, "select record_key, reason from polyvore_quarantine where source_file = 'images'").to_pylist()}  # fmt: skip
    assert "escapes the release root" in quarantined[f"{DOTDOT_ID}.jpg"]
    assert "symlink out of the release" in quarantined[f"{LINK_ID}.jpg"]
    assert "symlink out of the release" in quarantined[f"{PASSWD_ID}.jpg"]
    items = {r["item_id"]: r for r in query(home, "select item_id, image_ok, image_sha1, width from polyvore_items").to_pylist()}
    for bad in (DOTDOT_ID, LINK_ID, PASSWD_ID):  # kept as records, without an image
        assert items[bad]["image_ok"] is False and items[bad]["image_sha1"] is None and items[bad]["width"] is None
    assert items[XSS_ID]["image_ok"] is True  # a strange id is data, not a reason to drop the item
    assert attacked["opened"] == []  # nothing outside the release was opened
    lake = _lake_text(home)
    assert not [name for name, sha in attacked["outside"].items() if sha in lake]  # nor hashed
    images = [s for s in attacked["result"].sources if s["source_file"] == "images"][0]
    assert images["records_read"] == images["records_kept"] + images["records_quarantined"]
    embedded = set(polyvore_rows(Lake(home))["item_id"].to_pylist())  # what an embed job would read
    assert XSS_ID in embedded and not embedded & {DOTDOT_ID, LINK_ID, PASSWD_ID}


@pytest.fixture(scope="module")
def galleries(attacked):
    """The neighbours gallery of the XSS item (its neighbours: the escaped items and two normal
    ones) and a completion-style gallery whose heading holds the id."""
    home = attacked["home"]
    usable = sorted(query(home, "select item_id from polyvore_items where image_ok")["item_id"].to_pylist())
    normal = [attacked["donor"], [i for i in usable if i.isdigit()][-1]]
    ids = [XSS_ID, DOTDOT_ID, LINK_ID, PASSWD_ID, *normal]
    n = len(ids)
    VectorStore(home).upsert("toy", pa.table({
        "item_id": ids, "dataset": ["polyvore"] * n, "semantic_category": ["tops"] * n, "split": ["train"] * n,
        "model": ["test"] * n, "model_version": ["test/v1"] * n, "image_sha1": [None] * n,
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(np.eye(n, 8, dtype=np.float32).ravel()), 8),
    }, schema=vector_schema(8)))  # fmt: skip
    found = neighbours(home, XSS_ID, "toy", k=n - 1, where="semantic_category = 'tops'")
    assert {r["item_id"] for r in found.rows} == set(ids[1:])
    heading = f"umbert: a {XSS_ID} item for {XSS_TITLE}"
    completion = write_gallery(home / "reports" / "complete_xss.html", "toy", [found.query], found.rows, found.where, heading=heading)
    return {"pages": [found.gallery, completion], "shown": {XSS_ID, *normal}}


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data):
        self.text.append(data)


def _is_outside_image(data_uri: str) -> bool:
    import base64
    import io

    with Image.open(io.BytesIO(base64.b64decode(data_uri.split(",", 1)[1]))) as im:
        mean = np.asarray(im.convert("RGB"), np.float32).reshape(-1, 3).mean(0)
    return any(np.abs(mean - c).max() < 30 for c in OUTSIDE_COLOURS)


def test_gallery_html_is_escaped_and_shows_only_release_images(galleries):
    """The pages as text: no markup from the release, images only data: URIs of release files."""
    for page in galleries["pages"]:
        parsed = _Tags()
        parsed.feed(page.read_text())
        assert "script" not in parsed.tags and not [a for a, _ in parsed.attrs if a.startswith("on")]
        assert XSS_ID in "".join(parsed.text) and XSS_TITLE in "".join(parsed.text)  # shown as text
        srcs = [v for a, v in parsed.attrs if a == "src"]
        assert srcs and all(s.startswith("data:image/jpeg;base64,") for s in srcs)
        assert not [s for s in srcs if _is_outside_image(s)]
        alts = {v for a, v in parsed.attrs if a == "alt"}
        assert alts <= galleries["shown"]


def test_galleries_in_a_real_browser_run_no_script_and_load_nothing(galleries):
    sync_playwright, exe = chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        try:
            for page_path in galleries["pages"]:
                page = browser.new_page()
                dialogs, console, requests = [], [], []
                page.on("dialog", lambda d, seen=dialogs: (seen.append(d.message), d.dismiss()))
                page.on("console", lambda m, seen=console: seen.append(m.text))
                page.on("request", lambda r, seen=requests: seen.append(r.url))
                page.goto(page_path.as_uri(), wait_until="load")
                page.wait_for_timeout(300)  # time for an onerror handler to fire
                assert dialogs == [] and not [m for m in console if "atelier-xss" in m]
                assert page.evaluate("document.scripts.length") == 0
                assert XSS_ID in page.inner_text("h1") or XSS_ID in page.inner_text("body")
                images = page.evaluate("[...document.images].map(i => [i.getAttribute('src'), i.alt, i.naturalWidth])")
                assert images and all(src.startswith("data:image/jpeg;base64,") and width > 0 for src, _, width in images)
                assert {alt for _, alt, _ in images} <= galleries["shown"]
                assert not [src for src, _, _ in images if _is_outside_image(src)]
                assert [u for u in requests if not u.startswith("data:")] == [page_path.as_uri()]  # nothing else loaded
                page.close()
        finally:
            browser.close()


def test_other_readers_paths_stay_inside_the_release(sample_root, tmp_path):
    """DeepFashion file names, DeepFashion2 annotation files and Simplicity pattern paths,
    VITON-HD cloth images: out of the release -> quarantined with the reason, never read."""
    base = tmp_path / "a"
    releases = base / "b"
    outside = _outside(base)
    secret = base / "secret"
    # DeepFashion: a file name that climbs out, and a symlink in images/
    df = Path(shutil.copytree(sample_root / "deepfashion", releases / "deepfashion"))
    with open(df / "attributes.csv", "a") as f:
        f.write("../../../secret/leak.jpg,1,1,1\nlinked.jpg,1,1,1\n")
    (df / "images" / "linked.jpg").symlink_to(secret / "photo.jpg")
    # DeepFashion2: an annotation file that is a symlink out, Simplicity paths absolute and '..'
    df2 = Path(shutil.copytree(sample_root / "deepfashion2", releases / "deepfashion2"))
    (secret / "anno.json").write_text(json.dumps({"source": "shop", "pair_id": 1, "item1": {"category_name": "SECRET-ANNO"}}))
    (df2 / "train" / "annos" / "999999.json").symlink_to(secret / "anno.json")
    (df2 / "simplicity" / "patterns" / "9001.json").write_text(json.dumps(
        {"line_image": str(secret / "photo.jpg"), "other_images": ["../../../secret/leak.jpg", "../../../secret/passwd"]}))
    # VITON-HD: a cloth image replaced by a symlink out
    viton = Path(shutil.copytree(sample_root / "viton", releases / "viton"))
    cloth = sorted((viton / "train" / "cloth").iterdir())[0]
    cloth.unlink()
    cloth.symlink_to(secret / "photo.jpg")
    home = tmp_path / "home"
    for dataset, root in (("deepfashion", df), ("deepfashion2", df2), ("viton", viton)):
        _ingest_watched(dataset, root, home, secret)
        assert Opened.seen == [], dataset
    reasons = {(r["dataset"], r["record_key"]): r["reason"] for r in query(home, "select * from quarantine").to_pylist()}
    assert "escapes the release root" in reasons["deepfashion", "../../../secret/leak.jpg"]
    assert "symlink out of the release" in reasons["deepfashion", "linked.jpg"]
    assert reasons["deepfashion2", "999999.json"] == "symlink out of the release"
    simplicity = {k: v for (d, k), v in reasons.items() if d == "deepfashion2" and "secret" in k}
    assert len(simplicity) == 3 and all("escapes the release root" in v for v in simplicity.values())
    assert "symlink out of the release" in reasons["viton", cloth.name]
    lake = _lake_text(home)
    assert "SECRET-ANNO" not in lake and not [name for name, sha in outside.items() if sha in lake]
    for dataset, root in (("deepfashion", df), ("deepfashion2", df2), ("viton", viton)):  # what an embed job would read
        paths = READERS[dataset](Lake(home))["image_path"].to_pylist()
        assert paths and all(os.path.realpath(p).startswith(f"{root.resolve()}/") for p in paths), dataset


def test_a_release_file_linked_out_of_the_release_stops_the_ingest_naming_it(sample_root, tmp_path):
    root = Path(shutil.copytree(sample_root / "polyvore", tmp_path / "release" / "polyvore"))
    meta = root / "polyvore_item_metadata.json"
    shutil.move(meta, tmp_path / "elsewhere.json")
    meta.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(RawFormatError, match="polyvore_item_metadata.json: symlink out of the release"):
        read_polyvore(root)
