"""The client path of `atelier search / neighbours / complete` (``ATELIER_API_URL`` set,
`flows.cli.remote.main`): a fresh `atelier` process imports neither torch nor lancedb (nor typer),
sends the requests the typer commands send and prints what they print for the same answers; an
error answer is said by the typer command without asking twice. Against a small stand-in
service (canned JSON answers) on a loopback port; `tests/test_api.py` checks the typer commands
against a real `atelier api` and in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.cli.remote import parse

ROOT = Path(__file__).resolve().parents[1]
ITEM = {"item_id": "111", "semantic_category": "tops", "dataset": "polyvore", "title": "red [striped] top", "text": "red [striped] top",
        "distance": 0.1234, "score": 0.5, "image_url": "/items/111/image"}  # fmt: skip
OTHER = {**ITEM, "item_id": "222", "semantic_category": "shoes", "title": "black boots", "text": "black boots", "distance": 0.25}
ANSWERS = {
    "/search": {"text": "red top", "mode": "vector", "model": "/home/models/clip/v1", "truncated": False, "items": [ITEM, OTHER],
                "timings_ms": {"encode": 1.0, "search": 2.0, "total": 3.0}},
    "/neighbours/111": {"query": ITEM, "space": "toy", "where": None, "items": [OTHER], "gallery": "/home/reports/n.html",
                        "timings_ms": {"total": 1.0}},
    "/complete": {"model": "umbert v1", "space": "toy", "missing": "shoes", "context": [ITEM], "items": [OTHER],
                  "gallery": "/home/reports/c.html", "timings_ms": {"forward": 1.5, "search": 2.5, "total": 4.0}},
}  # fmt: skip


class Service(BaseHTTPRequestHandler):
    """Canned answers; every request recorded (method, path, query, JSON body)."""

    seen: list[tuple] = []

    def _answer(self, body: dict | None) -> None:
        url = urlsplit(self.path)
        self.seen.append((self.command, url.path, sorted(parse_qsl(url.query)), body))
        if body and body.get("items") == ["nope"]:
            status, answer = 404, {"detail": "items not in the catalogue (vector space 'toy'): nope"}
        elif url.path in ANSWERS:
            status, answer = 200, ANSWERS[url.path]
        else:
            status, answer = 404, {"detail": f"unknown path {url.path}"}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if url.path == "/complete":  # one answer in chunks, as a proxy may send it
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(data), 100):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data[i : i + 100]), data[i : i + 100]))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        self._answer(None)

    def do_POST(self):  # noqa: N802
        self._answer(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def service():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Service)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


COMMANDS = [["search", "red top"], ["search", "red top", "-k3", "--mode=hybrid", "--where", "dataset = 'polyvore'"],
            ["neighbours", "111", "--space", "toy", "-k", "4"], ["neighbours", "111", "-s", "toy", "--where", "split = 'test'"],
            ["complete", "--items", "111, 333", "--missing", "shoes", "-k", "5", "--model", "wumbert"]]  # fmt: skip
PROGRAM = ("import atexit, json, sys\n"
           "atexit.register(lambda: sys.stderr.write('\\nMODULES ' + json.dumps(sorted({m.split('.')[0] for m in sys.modules})) + '\\n'))\n"
           "sys.argv = ['atelier', *json.loads(sys.argv[1])]\n"
           "from flows.cli import app\n"
           "sys.exit(app())\n")  # as the console script `atelier` (flows.cli:app) runs  # fmt: skip


def atelier(args: list[str], url: str) -> tuple[int, str, str, set[str]]:
    """`atelier ARGS` in a fresh process: (exit code, stdout, stderr, top-level modules it loaded)."""
    env = {**os.environ, "ATELIER_API_URL": url, "COLUMNS": "200"}
    r = subprocess.run([sys.executable, "-c", PROGRAM, json.dumps(args)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    err, _, modules = r.stderr.rpartition("\nMODULES ")
    return r.returncode, r.stdout, err, set(json.loads(modules))


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_the_client_path_imports_no_torch_or_lancedb_and_prints_what_the_typer_command_prints(service, command, monkeypatch):
    Service.seen.clear()
    code, printed, err, modules = atelier(command, service)
    assert code == 0 and err.strip() == "", err
    assert not modules & {"torch", "lancedb", "lance", "typer", "pyarrow", "polars", "duckdb", "numpy"}, sorted(modules)
    monkeypatch.setenv("ATELIER_API_URL", service)
    typer_run = CliRunner().invoke(app, command, env={"COLUMNS": "200"})  # the typer command (flows/cli/*.py)
    assert typer_run.exit_code == 0, typer_run.output
    assert printed == typer_run.output
    assert len(Service.seen) == 2 and Service.seen[0] == Service.seen[1]  # the same request
    said = " ".join(printed.split())  # a table's title wraps at the table's width
    assert "black boots" in said and "red [striped] top" in said  # markup in a title is printed, not applied


def test_an_error_answer_is_said_by_the_typer_command_and_asked_once(service):
    Service.seen.clear()
    code, printed, err, modules = atelier(["complete", "--items", "nope", "--missing", "shoes"], service)
    assert code == 1 and "error: items not in the catalogue (vector space 'toy'): nope" in " ".join(err.split())
    assert len(Service.seen) == 1 and "torch" not in modules


def test_no_service_is_said_once_then_the_command_runs_in_process(tmp_path):
    code, printed, err, modules = atelier(["neighbours", "111", "--space", "toy", "--home", str(tmp_path / "home")], "http://127.0.0.1:9")
    said = " ".join(err.split())
    assert said.count("does not answer") == 1 and "running in-process" in said
    assert code == 1 and "lancedb" in modules  # in-process: it opened the (empty) store


@pytest.mark.parametrize("argv, expected", [
    (["search", "red top"], ("search", {"text": "red top", "k": 10, "where": None, "mode": "vector"})),
    (["search", "--mode", "text", "red", "-k", "3", "--home", "h"], ("search", {"text": "red", "k": 3, "where": None, "mode": "text", "home": "h"})),
    (["neighbours", "7", "-sresnet", "--k=2"], None),  # typer has no --k: it says so
    (["complete", "--items=a,b", "--missing", "shoes"], ("complete", {"items": "a,b", "missing": "shoes", "k": 10, "model": "umbert"})),
    (["complete", "--items", "a"], None),  # --missing is required: typer says so
    (["search", "red", "--help"], None), (["search", "red", "--debug"], None), (["--debug", "search", "red"], None),
    (["search", "red", "-k", "0"], None), (["search", "red", "-k", "x"], None), (["search", "red", "--mode", "fuzzy"], None),
    (["search", "red", "top"], None), (["search"], None), (["search", "red", "--where", "-1"], None), (["sql", "select 1"], None),
])  # fmt: skip
def test_what_the_client_path_takes_and_what_it_leaves_to_typer(argv, expected):
    assert parse(argv) == expected
