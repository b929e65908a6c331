"""`atelier api`: every endpoint of the query service through FastAPI's test client, on a small
home (sample Polyvore lake, a toy vector space, a short umBERT and a tiny clip), and every kind of
bad input answered with a clear 4xx / 503 (never a 500)."""

from __future__ import annotations

import json
import shutil

import pytest
from fastapi.testclient import TestClient

from flows.api import create_app
from flows.jobs.analyses import neighbours
from flows.jobs.complete import CompletionModel
from flows.jobs.ingest import ingest
from flows.jobs.search import search_text
from flows.jobs.train import train_model
from store import query


@pytest.fixture(scope="module")
def client(api_home):
    return TestClient(create_app(api_home))


def test_health_lists_spaces_and_models(client):
    body = client.get("/health").json()
    assert body["status"] == "ok" and {"toy", "clip"} <= set(body["spaces"])
    assert body["models"] == {"clip": "v1", "umbert": "v1"}
    paths = client.get("/openapi.json").json()["paths"]  # the docs at /docs are built from it
    assert {"/search", "/complete", "/sql", "/neighbours/{item_id}", "/items/{item_id}", "/health"} <= set(paths)
    assert {"get", "post"} <= set(paths["/search"]) and "text" in json.dumps(paths["/search"]["get"]["parameters"])


def test_search_get_and_post_equal_the_library(client, api_home):
    expected = search_text(api_home, "red top", k=5, where="dataset = 'polyvore'").rows["item_id"].to_pylist()
    got = client.get("/search", params={"text": "red top", "k": 5, "where": "dataset = 'polyvore'"})
    assert got.status_code == 200, got.text
    assert [i["item_id"] for i in got.json()["items"]] == expected
    posted = client.post("/search", json={"text": "red top", "k": 5, "where": "dataset = 'polyvore'"}).json()
    assert [i["item_id"] for i in posted["items"]] == expected and posted["model"].endswith("clip/v1")
    assert all(i["image_url"] == f"/items/{i['item_id']}/image" for i in posted["items"])
    for mode in ("hybrid", "text"):
        r = client.post("/search", json={"text": "red stripes", "mode": mode, "k": 3})
        assert r.status_code == 200 and len(r.json()["items"]) == 3, r.text


def test_neighbours_and_complete_equal_the_library(client, api_home, api_outfit):
    item = api_outfit[0][0]
    expected = [r["item_id"] for r in neighbours(api_home, item, "toy", k=4, gallery=False).rows]
    body = client.get(f"/neighbours/{item}", params={"space": "toy", "k": 4}).json()
    assert body["query"]["item_id"] == item and [i["item_id"] for i in body["items"]] == expected
    items, missing = api_outfit
    expected = [r["item_id"] for r in CompletionModel(api_home, "umbert").complete(items, missing, k=5, gallery=False).rows]
    posted = client.post("/complete", json={"items": items, "missing": missing, "k": 5}).json()
    assert [i["item_id"] for i in posted["items"]] == expected and posted["model"] == "umbert v1"
    assert all(i["semantic_category"] == missing for i in posted["items"])
    got = client.get("/complete", params={"items": ",".join(items), "missing": missing, "k": 5}).json()
    repeated = client.get("/complete", params=[("items", items[0]), ("items", items[1]), ("missing", missing), ("k", "5")]).json()
    assert [i["item_id"] for i in got["items"]] == [i["item_id"] for i in repeated["items"]] == expected


def test_items_image_and_sql(client, api_home):
    row = query(api_home, "SELECT item_id, title, image_path FROM polyvore_items WHERE image_ok LIMIT 1").to_pylist()[0]
    body = client.get(f"/items/{row['item_id']}").json()
    assert body["title"] == row["title"] and body["image_url"] == f"/items/{row['item_id']}/image"
    image = client.get(body["image_url"])
    assert image.status_code == 200 and image.content == open(row["image_path"], "rb").read()
    sql = client.post("/sql", json={"sql": "SELECT count(*) AS n FROM polyvore_items"}).json()
    assert sql["columns"] == ["n"] and sql["rows"][0]["n"] == query(api_home, "SELECT count(*) AS n FROM polyvore_items")["n"][0].as_py()
    limited = client.get("/sql", params={"sql": "SELECT item_id FROM polyvore_items", "limit": 3}).json()
    assert len(limited["rows"]) == 3 and limited["truncated"]


@pytest.mark.parametrize("method, path, kwargs, status, says", [
    ("get", "/items/nope", {}, 404, "unknown item 'nope'"),
    ("get", "/items/nope/image", {}, 404, "unknown item"),
    ("get", "/neighbours/nope", {"params": {"space": "toy"}}, 404, "not in vector space"),
    ("get", "/neighbours/x", {"params": {"space": "nospace"}}, 404, "unknown vector space 'nospace'"),
    ("post", "/search", {"json": {"text": "   "}}, 422, "the search text is empty"),
    ("post", "/search", {"json": {"text": "red", "mode": "fuzzy"}}, 422, "vector"),
    ("post", "/search", {"json": {"text": "red", "where": "1; DROP TABLE x"}}, 400, ""),
    ("post", "/search", {"json": {"text": "red", "k": 0}}, 422, "greater than or equal to 1"),
    ("post", "/search", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "JSON"),
    ("post", "/complete", {"json": {"items": ["nope"], "missing": "shoes"}}, 404, "items not in the catalogue"),
    ("post", "/complete", {"json": {"items": [], "missing": "shoes"}}, 422, "at least 1"),
    ("post", "/complete", {"json": {"items": ["a"], "missing": "shoes", "model": "gpt"}}, 422, "umbert"),
    ("post", "/sql", {"json": {"sql": "COPY polyvore_items TO '/tmp/x.csv'"}}, 400, ""),
    ("post", "/sql", {"json": {"sql": "SELECT * FROM read_text('/etc/passwd')"}}, 400, ""),
    ("post", "/search", {"content": b"{" + b" " * (1 << 20) + b"}", "headers": {"content-type": "application/json"}}, 413, "over"),
])  # fmt: skip
def test_bad_input_is_a_clear_client_error(client, method, path, kwargs, status, says):
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status, r.text
    assert says in json.dumps(r.json())


def test_unknown_category_and_a_category_already_there(client, api_outfit):
    items, missing = api_outfit
    r = client.post("/complete", json={"items": items, "missing": "spaceships"})
    assert r.status_code == 400 and "spaceships" in r.text
    have = client.get(f"/items/{items[0]}").json()["semantic_category"]
    r = client.post("/complete", json={"items": items, "missing": have})
    assert r.status_code == 400 and "already has" in r.text


def test_a_home_without_vectors_or_models_says_what_to_run(tmp_path, sample_root):
    home = tmp_path / "home"
    ingest("polyvore", sample_root / "polyvore", home)
    c = TestClient(create_app(home))
    r = c.get("/search", params={"text": "red"})
    assert r.status_code == 503 and "atelier embed clip" in r.json()["detail"]
    r = c.post("/complete", json={"items": ["a"], "missing": "shoes"})
    assert r.status_code == 503 and "atelier train umbert" in r.json()["detail"]


def test_a_model_replaced_while_queried_answers_with_the_old_or_the_new(api_home, tmp_path, api_outfit):
    """Queries keep coming while `atelier train umbert` lands v2: every one is answered (200) by v1
    or v2, never an error, and once v2 is finished the next query uses it (no restart)."""
    import threading

    home = shutil.copytree(api_home, tmp_path / "home")
    c = TestClient(create_app(home))
    items, missing = api_outfit
    answers, stop = [], threading.Event()

    def ask():
        while not stop.is_set() or len(answers) < 3:
            r = c.post("/complete", json={"items": items, "missing": missing, "k": 3})
            answers.append((r.status_code, r.json().get("model", r.text)))

    asker = threading.Thread(target=ask)
    asker.start()
    try:
        train_model("umbert", home, space="toy", steps=10, eval_every=10, seed=1, log=lambda _: None)
    finally:
        stop.set()
        asker.join(timeout=120)
    assert answers and {status for status, _ in answers} == {200}, answers
    assert {model for _, model in answers} <= {"umbert v1", "umbert v2"} and answers[0][1] == "umbert v1"
    assert c.post("/complete", json={"items": items, "missing": missing}).json()["model"] == "umbert v2"


def test_a_token_guards_every_endpoint_but_health(api_home):
    c = TestClient(create_app(api_home, token="s3cret"))
    assert c.get("/health").status_code == 200
    assert c.get("/sql", params={"sql": "SELECT 1 AS x"}).status_code == 401
    assert c.get("/sql", params={"sql": "SELECT 1 AS x"}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/sql", params={"sql": "SELECT 1 AS x"}, headers={"Authorization": "Bearer s3cret"}).json()["rows"] == [{"x": 1}]


def _raw_status(url: str, target: str) -> int:
    """The status code the server at ``url`` answers to ``GET target``, sent over a bare socket."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
        head = s.recv(64).decode("latin-1")
    return int(head.split()[1])


def test_atelier_api_serves_over_http(served):
    import httpx

    health = httpx.get(served + "/health", timeout=10)
    assert health.status_code == 200 and "clip" in health.json()["spaces"]
    assert 400 <= _raw_status(served, "/search?text=" + "red+" * 50_000) < 500  # a 200 KB request line (httpx refuses)
    assert httpx.get(served + "/health", timeout=10).status_code == 200  # and the service goes on
    r = httpx.post(served + "/sql", json={"sql": "SELECT 41 + 1 AS answer"}, timeout=30)
    assert r.json()["rows"] == [{"answer": 42}]


def _tables(output: str) -> str:
    """The printed result without the timing line (the only part that differs between runs)."""
    return "\n".join(line for line in output.splitlines() if " ms" not in line)


def test_cli_query_commands_through_the_service_print_what_in_process_prints(served, api_home, api_outfit, monkeypatch):
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    items, missing = api_outfit
    commands = [["search", "red top", "-k", "5", "--mode", "hybrid", "--where", "dataset = 'polyvore'"],
                ["search", "red top", "-k", "3"],
                ["neighbours", items[0], "--space", "toy", "-k", "4"],
                ["complete", "--items", ",".join(items), "--missing", missing, "-k", "5"]]  # fmt: skip
    for command in commands:
        monkeypatch.delenv("ATELIER_API_URL", raising=False)
        local = runner.invoke(app, [*command, "--home", str(api_home)], env={"COLUMNS": "200"})
        monkeypatch.setenv("ATELIER_API_URL", served)
        remote = runner.invoke(app, [*command, "--home", str(api_home)], env={"COLUMNS": "200"})
        assert local.exit_code == remote.exit_code == 0, (local.output, remote.output)
        assert _tables(remote.output) == _tables(local.output), command
    bad = runner.invoke(app, ["complete", "--items", "nope", "--missing", "shoes", "--home", str(api_home)])
    assert bad.exit_code == 1 and "items not in the catalogue" in bad.output
    monkeypatch.setenv("ATELIER_API_URL", "http://127.0.0.1:9")  # nothing listens: in-process, said once
    fallback = runner.invoke(app, ["neighbours", items[0], "--space", "toy", "-k", "4", "--home", str(api_home)])
    said = " ".join(fallback.output.split())  # rich wraps at the terminal width
    assert fallback.exit_code == 0 and "does not answer" in said and "running in-process" in said
