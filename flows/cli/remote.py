"""The CLI's query commands (`search`, `neighbours`, `complete`) through a running `atelier api`
when ``ATELIER_API_URL`` is set: the answer comes back as JSON and is printed as the in-process
result would be, without importing torch or opening the store in the client. An unreachable
service is said once and the command runs in-process instead.

Kept light (the standard library; rich only to print): :func:`main` is the client path of the
`atelier` program (``flows.cli``): with ``ATELIER_API_URL`` set, a plain `atelier search`,
`neighbours` or `complete` command line is asked and printed here without loading typer and the
other commands. Anything else (--help, --debug, a value typer would refuse, any other command)
goes to the typer commands, and so does the answer when it is an error or the service does not
answer: they say it as they always do, from the answer already received (not asked twice).
"""

from __future__ import annotations

import json
import os
import re
from urllib.parse import quote, urlencode, urlsplit

URL_ENV = "ATELIER_API_URL"
TOKEN_ENV = "ATELIER_API_TOKEN"
TIMEOUT_S = 120
SEARCH_MODES = ("vector", "hybrid", "text")
OUTFIT_MODELS = ("umbert", "wumbert")


class ServiceError(ValueError):
    """The service answered with an error (its ``detail``): the same message in-process gives."""


class Unreachable(Exception):
    """No answer from the service (refused, timed out, cut, not HTTP): the name of what happened."""


def api_url() -> str | None:
    return (os.environ.get(URL_ENV) or "").rstrip("/") or None


def _query_value(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def request(url: str, method: str, path: str, params: dict | None = None, json_body: dict | None = None) -> dict:
    """The JSON answer of ``method url+path``; `ServiceError` with the service's ``detail`` on a
    4xx / 5xx, `Unreachable` when no HTTP answer comes. HTTP/1.1 over a socket, one request per
    connection: `http.client` imports the email package, a sixth of a query command's time."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Unreachable("UnsupportedProtocol")
    target = (parts.path or "") + path + (f"?{urlencode({k: _query_value(v) for k, v in params.items()})}" if params else "")
    headers = {"Host": parts.netloc.rpartition("@")[2], "Accept": "application/json", "Connection": "close"}
    token = os.environ.get(TOKEN_ENV)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = b""
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    if body or method in ("POST", "PUT", "PATCH"):
        headers["Content-Length"] = str(len(body))
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    try:
        status, data = _exchange(parts, head.encode("latin-1") + body)
    except OSError as e:  # refused, timed out, reset, TLS, name resolution
        raise Unreachable(type(e).__name__) from e
    except (ValueError, IndexError) as e:  # not an HTTP answer
        raise Unreachable(f"RemoteProtocolError: {e}") from e
    if status >= 400:
        try:
            detail = json.loads(data).get("detail")
        except (ValueError, AttributeError):
            detail = data.decode(errors="replace")
        raise ServiceError(detail if isinstance(detail, str) else f"{status}: {detail}")
    try:
        return json.loads(data)
    except ValueError as e:
        raise Unreachable(f"RemoteProtocolError: the answer is not JSON ({e})") from e


def _exchange(parts, message: bytes) -> tuple[int, bytes]:
    """Send ``message`` to ``parts``' host, read the answer to the end: (status, body)."""
    import socket

    https = parts.scheme == "https"
    sock = socket.create_connection((parts.hostname, parts.port or (443 if https else 80)), timeout=TIMEOUT_S)
    try:
        if https:
            import ssl

            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
        sock.sendall(message)
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    finally:
        sock.close()
    head, _, data = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, status = lines[0].split(" ", 2)[:2]
    if not version.startswith("HTTP/"):
        raise ValueError(f"status line {lines[0][:80]!r}")
    fields = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    if "chunked" in fields.get("transfer-encoding", "").lower():
        data = _dechunk(data)
    elif "content-length" in fields:
        data = data[: int(fields["content-length"])]
    return int(status), data


def _dechunk(data: bytes) -> bytes:
    """The body of a chunked transfer encoding."""
    out, i = [], 0
    while True:
        j = data.index(b"\r\n", i)
        size = int(data[i:j].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(data[j + 2 : j + 2 + size])
        i = j + 2 + size + 2


# -- the requests of the three commands (one definition for `main` and the typer commands) ---------


def search_call(text: str, k: int, where: str | None, mode: str) -> tuple[str, str, dict]:
    return "POST", "/search", {"json": {"text": text, "k": k, "where": where, "mode": mode}}


def neighbours_call(item: str, space: str, k: int, where: str | None) -> tuple[str, str, dict]:
    return "GET", f"/neighbours/{quote(item, safe='')}", {"params": {"space": space, "k": k, "gallery": True, **({"where": where} if where else {})}}


def complete_call(ids: list[str], missing: str, k: int, model: str) -> tuple[str, str, dict]:
    return "POST", "/complete", {"json": {"items": ids, "missing": missing, "k": k, "model": model, "gallery": True}}


_handed_over: tuple[tuple, object] | None = None  # (request, its answer or error) from `main` to the typer command


def _key(url: str, method: str, path: str, kwargs: dict) -> tuple:
    return url, method, path, json.dumps(kwargs, sort_keys=True, default=str)


def call(method: str, path: str, **kwargs) -> dict | None:
    """The service's JSON answer, None when no service is configured or it cannot be reached
    (then the caller runs in-process); `ServiceError` with its message on a 4xx / 5xx.
    ``kwargs``: ``params`` (query) and / or ``json`` (body)."""
    global _handed_over
    url = api_url()
    if url is None:
        return None
    key = _key(url, method, path, kwargs)
    handed, _handed_over = _handed_over, None
    try:
        if handed is not None and handed[0] == key:  # `main` asked already: its answer, not a second request
            if isinstance(handed[1], Exception):
                raise handed[1]
            return handed[1]
        return request(url, method, path, kwargs.get("params"), kwargs.get("json"))
    except Unreachable as e:
        from flows.cli.show import console

        console.print(f"[yellow]{URL_ENV}={url} does not answer ({e}): running in-process[/yellow]")
        return None


# -- answers as the in-process results -------------------------------------------------------


def _row(item: dict) -> dict:
    return {"item_id": item["item_id"], "semantic_category": item.get("semantic_category"), "title": item.get("title"),
            "dataset": item.get("dataset"), "text": item.get("text"), "distance": item.get("distance"),
            "score": item.get("score"), "image_path": None}  # fmt: skip


def search_result(body: dict, mode: str) -> dict:
    """A /search answer as `flows.cli.show.print_search`'s arguments (each row with its mode's score)."""
    from flows.cli.show import SCORE

    score = SCORE[mode]
    rows = [{**i, score: i["distance"] if score == "distance" else i["score"]} for i in body["items"]]
    return {"rows": rows, "truncated": body["truncated"], "model_dir": body["model"]}


def neighbours_result(body: dict) -> dict:
    """A /neighbours answer as `flows.jobs.analyses.Neighbours` (as a dict)."""
    return {"query": _row(body["query"]), "rows": [_row(i) for i in body["items"]], "where": body["where"],
            "gallery": body.get("gallery")}  # fmt: skip


def completion_result(body: dict) -> dict:
    """A /complete answer as `flows.jobs.complete.Completion` (as a dict)."""
    return {"items": [_row(i) for i in body["context"]], "missing": body["missing"], "rows": [_row(i) for i in body["items"]],
            "model": body["model"], "space": body["space"], "gallery": body.get("gallery"), "timings_ms": body["timings_ms"]}  # fmt: skip


# -- the client path ---------------------------------------------------------------------------

# command -> (positional argument or None, {option spelling: name}, {name: default}); the typer
# commands' own parameters (flows/cli/search.py, models.py, outfits.py); `--home` is taken and
# not used (the service has its home)
COMMANDS = {
    "search": ("text", {"-k": "k", "--where": "where", "--mode": "mode", "--home": "home"}, {"k": 10, "where": None, "mode": "vector"}),
    "neighbours": ("item", {"--space": "space", "-s": "space", "-k": "k", "--where": "where", "--home": "home"},
                   {"space": "resnet", "k": 10, "where": None}),
    "complete": (None, {"--items": "items", "--missing": "missing", "-k": "k", "--model": "model", "--home": "home"},
                 {"k": 10, "model": "umbert"}),
}  # fmt: skip


def parse(argv: list[str]) -> tuple[str, dict] | None:
    """(command, its values) of a plain query command line, None for anything else (typer's)."""
    if not argv or argv[0] not in COMMANDS:
        return None
    command, (positional, options, defaults) = argv[0], COMMANDS[argv[0]]
    values, args, i = dict(defaults), [], 1
    while i < len(argv):
        token = argv[i]
        if token.startswith("--") and "=" in token:
            name, value = token.split("=", 1)
        elif token.startswith("-") and len(token) > 2 and not token.startswith("--"):
            name, value = token[:2], token[2:]  # -k5, -sresnet
        elif token.startswith("-"):
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                return None
            name, value = token, argv[i + 1]
            i += 1
        else:
            args.append(token)
            i += 1
            continue
        if name not in options:
            return None  # --help, --debug, a misspelling: typer says it
        values[options[name]] = value
        i += 1
    if len(args) != (positional is not None):
        return None
    if positional:
        values[positional] = args[0]
    if not re.fullmatch(r"[0-9]+", str(values["k"])) or int(values["k"]) < 1:
        return None
    values["k"] = int(values["k"])
    if values.get("mode", "vector") not in SEARCH_MODES or values.get("model", "umbert") not in OUTFIT_MODELS:
        return None
    if command == "complete" and not ("items" in values and "missing" in values):
        return None
    return command, values


def main(argv: list[str]) -> int | None:
    """Run ``argv`` (the `atelier` command line, without the program) against the service in
    ``ATELIER_API_URL`` and print the answer as the typer command does: 0. None when the typer
    command should run instead (no service configured, a command line this does not take, an
    error answer or no answer, handed over with the request so it is not asked twice)."""
    global _handed_over
    url = api_url()
    parsed = parse(argv) if url else None
    if parsed is None:
        return None
    command, v = parsed
    if command == "search":
        method, path, kwargs = search_call(v["text"], v["k"], v["where"], v["mode"])
    elif command == "neighbours":
        method, path, kwargs = neighbours_call(v["item"], v["space"], v["k"], v["where"])
    else:
        ids = [i.strip() for i in v["items"].split(",") if i.strip()]
        method, path, kwargs = complete_call(ids, v["missing"], v["k"], v["model"])
    try:
        body = request(url, method, path, kwargs.get("params"), kwargs.get("json"))
    except (ServiceError, Unreachable) as e:
        _handed_over = (_key(url, method, path, kwargs), e)
        return None
    from flows.cli.show import print_completion, print_neighbours, print_search

    if command == "search":
        print_search(v["text"], v["mode"], **search_result(body, v["mode"]))
    elif command == "neighbours":
        print_neighbours(neighbours_result(body), v["space"])
    else:
        print_completion(completion_result(body))
    return 0
