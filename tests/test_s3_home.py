"""An object-store home (`--home s3://bucket/prefix`) on a local S3-compatible server (moto):
the pipeline ingest -> embed -> neighbours -> `atelier sql` through the CLI, the lake's commit
(versioned prefix + pointer written last, compare-and-swap), the SQL sandbox, and the bad inputs
(unreachable endpoint, missing credentials, missing bucket) as one-line errors within seconds;
training, completion, evaluation and the query service on such a home."""

from __future__ import annotations

import json
import time

import pytest
import torch
from s3_server import free_port
from typer.testing import CliRunner

from flows.cli import app
from models import AutoencoderConfig, ConvAutoencoder
from store import Lake
from store.lake_s3 import POINTERS, LakeConflictError
from store.models_s3 import upload_model
from store.objectstore import open_home

runner = CliRunner()


def cli(*args: str):
    res = runner.invoke(app, list(args))
    return res.exit_code, res.output


def test_pipeline_on_an_s3_home(sample_root, s3_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory (an "s3:" folder)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code, out = cli("ingest", "polyvore", str(sample_root / "polyvore"), "--home", s3_home, "--no-prefect")
    assert code == 0, out
    s3 = open_home(s3_home)
    pointer = json.loads(s3.get("lake", POINTERS, "polyvore.json")[0])
    assert pointer["tables"]["items"] == 484 and s3.list("lake", ".versions", "polyvore", pointer["version"])
    torch.manual_seed(0)
    local = tmp_path / "ae-v1"
    ConvAutoencoder(AutoencoderConfig(image_size=32, channels=(8, 16))).save_pretrained(local)
    upload_model(local, s3_home, "ae", "v1")
    code, out = cli("embed", "ae", "--home", s3_home, "--no-prefect")
    assert code == 0, out
    report = json.loads(s3.get("reports", "embed_ae.json")[0])
    assert report["n_embedded"] == 484
    code, out = cli("neighbours", "100074259", "--space", "ae", "-k", "3", "--home", s3_home)
    assert code == 0, out
    from flows.jobs.analyses import neighbours

    hits = [r["item_id"] for r in neighbours(s3_home, "100074259", "ae", k=3, gallery=False).rows]
    assert len(hits) == 3 and "100074259" not in hits and all(h in out for h in hits)
    assert (tmp_path / "cache" / "atelier" / "s3").is_dir()  # the gallery: a local page (its images are local)
    code, out = cli("pca", "--space", "ae", "--home", s3_home)
    assert code == 0, out
    assert json.loads(s3.get("reports", "pca_ae.json")[0])["n"] == 484  # the JSON on the store, the plot local
    code, out = cli("sql", "select count(*) as n, count(distinct v.item_id) as d from polyvore_items i join vectors_ae v "
                    "using (item_id)", "--home", s3_home, "--format", "csv")  # fmt: skip
    assert code == 0, out
    assert "484,484" in out.replace(" ", "")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("s3")] == []
    assert s3.list("locks") == []  # the ingest and embed locks were released


def test_sql_on_an_s3_home_stays_in_its_sandbox(sample_root, s3_home):
    from flows.jobs.ingest import ingest
    from store.sql import SandboxError, query

    ingest("polyvore", sample_root / "polyvore", s3_home)
    assert query(s3_home, "select count(*) as n from quarantine")["n"].to_pylist() == [0]
    url = Lake(s3_home).path("polyvore", "items")
    for sql in (f"select * from read_parquet('{url}')", "select * from read_csv('/etc/passwd')"):
        with pytest.raises(SandboxError, match="reads only the home's lake and vectors"):
            query(s3_home, sql)
    from store import DamagedTableError

    bucket, _, key = url[len("s3://"):].partition("/")
    open_home(f"s3://{bucket}").put(key, body=b"not parquet")  # the current items object overwritten
    with pytest.raises(DamagedTableError, match=f"lake table {url} is damaged.*atelier ingest polyvore"):
        query(s3_home, "select count(*) from polyvore_items")
    assert query(s3_home, "select count(*) as n from polyvore_outfits")["n"].to_pylist() == [2640]  # the others still read


def test_lake_commit_on_s3_is_all_or_nothing_and_compare_and_swap(sample_root, s3_home):
    from flows.jobs.ingest import ingest

    ingest("polyvore", sample_root / "polyvore", s3_home)
    lake = Lake(s3_home)
    first = lake.current("polyvore")
    items = lake.read("polyvore", "items")
    tables = {"items": items, "quarantine": lake.read("polyvore", "quarantine")}

    def fail(_):
        raise RuntimeError("killed before the pointer")

    with pytest.raises(RuntimeError, match="killed before the pointer"):
        lake.write_dataset("polyvore", tables, before_commit=fail)
    assert lake.current("polyvore") == first and lake.read("polyvore", "items").num_rows == 484
    assert len(lake.versions("polyvore")) == 1  # the failed version was removed

    def rival(_):  # another writer commits while this one is between its tables and its pointer
        Lake(s3_home).write_dataset("polyvore", {"items": items.slice(0, 10), "quarantine": tables["quarantine"]})

    with pytest.raises(LakeConflictError, match="committed by another writer"):
        lake.write_dataset("polyvore", tables, before_commit=rival)
    assert lake.read("polyvore", "items").num_rows == 10  # the rival's commit stands, not a mix
    assert lake.read("polyvore", "outfits") is None  # its version holds only what it wrote
    s3 = open_home(s3_home)
    s3.put("lake", ".versions", "polyvore", "20260101T000000.0-killed", "items.parquet", body=b"half")  # a killed ingest's
    lake.write_dataset("polyvore", tables)
    assert len(lake.versions("polyvore")) == 2  # the current one and the previous one (readers)
    assert "20260101T000000.0-killed" not in lake.versions("polyvore")


def test_unreachable_endpoint_is_a_one_line_error_within_seconds(s3_home, monkeypatch):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    t0 = time.perf_counter()
    code, out = cli("sql", "select 1", "--home", s3_home)
    assert time.perf_counter() - t0 < 20
    assert code == 1 and f"cannot reach the object store at {endpoint}" in out and s3_home in out
    assert len(out.strip().splitlines()) == 1 and "Traceback" not in out


def test_missing_credentials_are_a_one_line_error(s3_home, monkeypatch, tmp_path):
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    code, out = cli("ingest", "polyvore", str(tmp_path), "--home", s3_home, "--no-prefect")
    assert code == 1 and "no credentials for the object-store home" in out and "AWS_ACCESS_KEY_ID" in out
    assert len(out.strip().splitlines()) == 1


def test_missing_bucket_and_bad_endpoint_are_one_line_errors(s3_endpoint, s3_home, monkeypatch):
    code, out = cli("sql", "select 1", "--home", "s3://no-such-bucket-atelier/home")
    assert code == 1 and "bucket 'no-such-bucket-atelier' does not exist at " + s3_endpoint in out
    assert len(out.strip().splitlines()) == 1
    monkeypatch.setenv("ATELIER_HOME", "s3://no-such-bucket-atelier/home")  # the home from the environment
    code, out = cli("sql", "select 1")
    assert code == 1 and "bucket 'no-such-bucket-atelier' does not exist" in out
    monkeypatch.delenv("ATELIER_HOME")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "127.0.0.1:9000")
    code, out = cli("sql", "select 1", "--home", s3_home)
    assert code == 1 and "bad AWS_ENDPOINT_URL '127.0.0.1:9000'" in out
    code, out = cli("sql", "select 1", "--home", "s3://B/x")
    assert code == 1 and "bad object-store home 's3://B/x'" in out


def test_commands_not_made_for_an_object_store_say_so(s3_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = cli("doctor", "--home", s3_home)
    assert code == 1 and "atelier doctor checks homes on a file system" in out and len(out.strip().splitlines()) == 1
    code, out = cli("demo", "--home", s3_home)
    assert code == 1 and "atelier demo builds a local home" in out
    code, out = cli("serve", "--dry-run", "--home", s3_home)  # the schedule names local folders: a local file
    assert code == 1 and "give the schedule as a local file, --config" in out
    assert list(tmp_path.iterdir()) == []  # no local "s3:" folder made on the way


def test_train_complete_eval_and_api_on_an_s3_home(sample_root, s3_home, tmp_path, monkeypatch):
    """Training uploads a finished version to the store; completion, evaluation and the service read it there."""
    from fastapi.testclient import TestClient

    from flows.api import create_app
    from store.models_s3 import finished_versions

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for args in (("ingest", "polyvore", str(sample_root / "polyvore")), ("train", "ae", "--steps", "1"), ("embed", "ae"),
                 ("train", "umbert", "--steps", "2"), ("train", "ae", "--steps", "1")):  # fmt: skip
        code, out = cli(*args, "--home", s3_home, "--no-prefect")
        assert code == 0, (args, out)
    assert finished_versions(s3_home, "ae") == ["v1", "v2"] and finished_versions(s3_home, "umbert") == ["v1"]
    assert not list((tmp_path / "cache").rglob("train/*/v*"))  # the local staging of each run is gone
    code, out = cli("complete", "--items", "100074259", "--missing", "shoes", "-k", "3", "--home", s3_home)
    assert code == 0 and "lavender gradient aviators" in " ".join(out.split()) and "sneakers" in out, out  # titles read from the store's lake
    assert list((tmp_path / "cache").rglob("complete_umbert_100074259_shoes.html"))  # the gallery: a local page
    code, out = cli("eval", "umbert", "--version", "v1", "--home", s3_home, "--no-prefect")
    assert code == 0, out
    assert json.loads(open_home(s3_home).get("reports", "eval_umbert.json")[0])["version"] == "v1"
    with TestClient(create_app(s3_home)) as client:
        answer = client.get("/complete", params={"items": "100074259", "missing": "shoes", "k": 2})
        assert answer.status_code == 200 and len(answer.json()["items"]) == 2
        assert client.get("/health").json()["models"] == {"ae": "v2", "umbert": "v1"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("s3")] == []


@pytest.fixture
def silent_and_html_servers():
    """A TCP port that accepts connections and never answers, and an HTTP server that is not S3."""
    import http.server
    import socket
    import threading

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = b"<html><body>not an object store</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    page = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=page.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{silent.getsockname()[1]}", f"http://127.0.0.1:{page.server_address[1]}"
    page.shutdown()
    silent.close()


def test_an_endpoint_that_is_not_s3_fails_in_seconds(s3_home, silent_and_html_servers, monkeypatch):
    silent, html = silent_and_html_servers
    monkeypatch.setenv("AWS_ENDPOINT_URL", silent)
    t0 = time.perf_counter()
    code, out = cli("sql", "select 1", "--home", s3_home)
    assert time.perf_counter() - t0 < 20
    assert code == 1 and f"the object store at {silent} accepted a connection but did not answer" in out
    monkeypatch.setenv("AWS_ENDPOINT_URL", html)
    code, out = cli("sql", "select 1", "--home", s3_home)
    assert code == 1 and html in out and "S3-compatible server" in out and len(out.strip().splitlines()) == 1
