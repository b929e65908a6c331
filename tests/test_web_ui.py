"""The web UI of `atelier api` (issue 16): its pages through FastAPI's test client (filters,
errors, escaping, the Content-Security-Policy), then end to end in a real headless browser
(Debian's chromium driven by playwright) against a real `atelier api` process: search, click
through to neighbours, build an outfit and complete it, the markup item shown as text.

With ATELIER_SCREENSHOTS=<dir> the browser test saves the screenshots the README shows
(`ATELIER_SCREENSHOTS=docs pytest tests/test_web_ui.py`)."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from helpers import XSS_ID, XSS_TITLE, chromium

from flows.api import create_app
from flows.api.ui import CSP
from flows.jobs.analyses import neighbours
from flows.jobs.complete import CompletionModel
from flows.jobs.search import search_text


@pytest.fixture(scope="module")
def client(api_home):
    return TestClient(create_app(api_home))


class _Page(HTMLParser):
    """Tags, attributes and text of a page, and the item ids of its result cards."""

    def __init__(self, html: str):
        super().__init__()
        self.tags, self.attrs, self.text, self.cards, self._in = [], [], [], {}, None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs
        if tag == "div" and dict(attrs).get("id"):
            self._in = dict(attrs)["id"]
        if tag == "figure" and self._in:
            self.cards.setdefault(self._in, []).append(dict(attrs)["data-item"])

    def handle_data(self, data):
        self.text.append(data)


def _page(client, url: str, status: int = 200) -> _Page:
    r = client.get(url)
    assert r.status_code == status, r.text
    assert r.headers["content-security-policy"] == CSP and r.headers["content-type"].startswith("text/html")
    page = _Page(r.text)
    assert "script" not in page.tags and not [a for a, _ in page.attrs if a.startswith("on")]
    return page


def test_search_page_lists_what_the_library_finds_under_its_filters(client, api_home):
    expected = search_text(api_home, "red top", k=8).rows["item_id"].to_pylist()
    assert _page(client, "/?text=red+top&k=8").cards["results"] == expected
    cats = sorted({r["semantic_category"] for r in search_text(api_home, "top", k=50).rows.to_pylist()})
    filtered = _page(client, f"/?text=top&k=50&category={cats[0]}&dataset=polyvore").cards["results"]
    where = f"semantic_category = '{cats[0]}' AND dataset = 'polyvore'"
    assert filtered == search_text(api_home, "top", k=50, where=where).rows["item_id"].to_pylist() and filtered
    browse = _page(client, f"/?space=toy&category={cats[0]}&k=5").cards["results"]
    assert len(browse) == 5 and all(client.get(f"/items/{i}").json()["semantic_category"] == cats[0] for i in browse)


def test_item_page_shows_its_neighbours_and_the_outfit_page_completes(client, api_home, api_outfit):
    items, missing = api_outfit
    page = _page(client, f"/ui/items/{items[0]}?space=toy&k=6")
    assert page.cards["results"] == [r["item_id"] for r in neighbours(api_home, items[0], "toy", k=6, gallery=False).rows]
    expected = CompletionModel(api_home, "umbert").complete(items, missing, k=5, gallery=False)
    url = f"/ui/outfit?outfit={items[0]}&outfit={items[1]}&missing={missing}&k=5"
    page = _page(client, url)
    assert page.cards["outfit"] == items and page.cards["results"] == [r["item_id"] for r in expected.rows]
    scores = [float(t.split()[1]) for t in page.text if t.startswith("score ")]
    assert scores == pytest.approx([1 - r["distance"] for r in expected.rows], abs=1e-3) and scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("url, status, says", [
    ("/ui/items/nope", 404, "unknown item 'nope'"),
    ("/ui/items/{item}?space=nospace", 404, "unknown vector space 'nospace'"),
    ("/?text=red&category=spaceships", 400, "unknown category 'spaceships'"),
    ("/?text=red&dataset=x' OR '1'='1", 400, "unknown dataset"),
    ("/ui/outfit?outfit=nope&missing=shoes", 404, "unknown items in the outfit: nope"),
    ("/ui/outfit?outfit={item}&missing=spaceships", 400, "spaceships"),
    ("/ui/outfit?outfit={item}&missing=shoes&model=wumbert", 503, "atelier train wumbert"),
])  # fmt: skip
def test_bad_input_is_an_error_page_not_a_stack_trace(client, api_outfit, url, status, says):
    page = _page(client, url.format(item=api_outfit[0][0]), status)
    assert says in "".join(page.text)


def test_markup_in_ids_and_titles_is_shown_as_text(client):
    page = _page(client, f"/ui/items/{quote(XSS_ID, safe='')}?space=toy")
    text = "".join(page.text)
    assert XSS_ID in text and XSS_TITLE in text
    assert ("src", f"/items/{quote(XSS_ID, safe='')}/image") in page.attrs
    assert client.get(f"/items/{quote(XSS_ID, safe='')}/image").status_code == 200


def test_a_home_without_vectors_says_what_to_run(tmp_path, sample_root):
    from flows.jobs.ingest import ingest

    home = tmp_path / "home"
    ingest("polyvore", sample_root / "polyvore", home)
    page = _page(TestClient(create_app(home)), "/", 503)
    assert "atelier embed" in "".join(page.text)


def _until(page, condition: str, seconds: float = 10) -> None:
    """Poll ``condition`` (a JS expression) until true (wait_for_function evaluates through eval,
    which the page's CSP forbids)."""
    import time

    deadline = time.monotonic() + seconds
    while not page.evaluate(condition):
        assert time.monotonic() < deadline, f"still false after {seconds} s: {condition}"
        page.wait_for_timeout(100)


def test_in_a_real_browser_search_neighbours_and_complete(served, api_outfit):
    """Search, click a result, switch the space, walk to a neighbour, build the test outfit with
    clicks, ask for its missing category: every page runs no script and loads nothing from
    elsewhere; the markup item's page shows its id and title as text."""
    sync_playwright, exe = chromium()
    items, missing = api_outfit
    shots = Path(os.environ["ATELIER_SCREENSHOTS"]) if os.environ.get("ATELIER_SCREENSHOTS") else None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            dialogs, console, requests = [], [], []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("console", lambda m: console.append(m.text))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(served + "/")
            page.fill("input[name=text]", "red top")
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r"text=red\+top"))
            cards = page.locator("#results figure")
            assert cards.count() == 24
            # the first row's images (the rest load lazily, when scrolled to)
            _until(page, "[...document.images].slice(0, 6).every(i => i.complete && i.naturalWidth > 0)")
            if shots:
                page.screenshot(path=str(shots / "ui_search.png"))
            first = cards.first.get_attribute("data-item")
            cards.first.locator("a.title").click()  # -> its page, neighbours in clip
            page.wait_for_url(re.compile("/ui/items/"))
            assert page.locator("#item-title").count() == 1 and first in page.inner_text("main")
            page.select_option("select[name=space]", "toy")
            page.click("form button[type=submit]")
            page.wait_for_url(re.compile("space=toy"))
            assert page.locator("#results figure").count() == 12
            # build the outfit: the two items' pages, "+ outfit" on each
            page.goto(f"{served}/ui/items/{items[0]}?space=toy")
            page.locator(".item a.add").click()
            page.wait_for_url(re.compile("/ui/outfit"))
            assert page.inner_text("#outfit-link") == "Outfit (1)"
            page.goto(page.url.replace("/ui/outfit", f"/ui/items/{items[1]}"))
            page.locator(".item a.add").click()
            page.wait_for_url(re.compile("/ui/outfit"))
            assert page.locator("#outfit figure").evaluate_all("fs => fs.map(f => f.dataset.item)") == items
            page.select_option("select[name=missing]", missing)
            page.click("form.complete button[type=submit]")
            page.wait_for_url(re.compile("missing="))
            suggestions = page.locator("#results figure")
            assert suggestions.count() == 12 and missing in page.inner_text("#heading")
            assert all(t.startswith(missing) for t in suggestions.locator(".meta").all_inner_texts())
            page.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # the lazy images below the fold
            _until(page, "[...document.images].every(i => i.complete && i.naturalWidth > 0)")
            if shots:
                page.screenshot(path=str(shots / "ui_outfit.png"), full_page=True)
            assert [u for u in requests if not u.startswith(served + "/")] == []  # nothing loaded from elsewhere
            # the item whose id and title are markup, with the CSP switched off: escaping alone keeps it text
            unguarded = browser.new_context(bypass_csp=True).new_page()
            unguarded.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            unguarded.on("console", lambda m: console.append(m.text))
            unguarded.goto(f"{served}/ui/items/{quote(XSS_ID, safe='')}?space=toy")
            unguarded.wait_for_timeout(300)  # time for an onerror handler to fire
            assert unguarded.inner_text("#item-title") == XSS_TITLE and XSS_ID in unguarded.inner_text("main")
            assert dialogs == [] and not [m for m in console if "atelier-xss" in m]
            assert unguarded.evaluate("document.scripts.length") == 0
        finally:
            browser.close()
