"""The web app, end to end: `knee serve` in a subprocess on the real corpus index, driven by headless
Chromium (Playwright) and by `gradio_client`. Nothing is mocked.

Screenshots of the browser tests go to artifacts/screenshots/<test>.png (git-ignored)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import REPO_ROOT, free_port, wait_for_http

SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ANSWER_TIMEOUT = 30_000  # ms; an answer takes well under a second once the app is up


# --------------------------------------------------------------------------- the app


@pytest.fixture(scope="module")
def app(corpus_settings, tmp_path_factory):
    """`knee serve` on a free port, on the session's corpus index; stopped with Ctrl-C (SIGINT) after."""
    port = free_port()
    data_dir = tmp_path_factory.mktemp("ui-data")
    logs = tmp_path_factory.mktemp("ui-logs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEE_")}
    env.update(
        KNEE_DB=str(corpus_settings.db_dir),
        KNEE_COLLECTION=corpus_settings.collection,
        KNEE_CORPUS=str(corpus_settings.corpus_dir),
        KNEE_MODEL=corpus_settings.model_path,
        KNEE_DATA=str(data_dir),
        PYTHONUNBUFFERED="1",
    )
    out_path, err_path = logs / "serve.out", logs / "serve.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "knee.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 150
        while "is running at" not in out_path.read_text():
            if proc.poll() is not None:
                pytest.fail(f"knee serve exited with {proc.returncode}:\n{out_path.read_text()}\n{err_path.read_text()}")
            if time.time() > deadline:
                pytest.fail(f"knee serve did not start:\n{out_path.read_text()}\n{err_path.read_text()}")
            time.sleep(0.3)
        wait_for_http(url, timeout=30)
        yield {
            "url": url,
            "stdout": out_path,
            "stderr": err_path,
            "feedback": replace(corpus_settings, data_dir=data_dir).feedback_path,
        }
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    # Ctrl-C stops it cleanly: exit code 0, no traceback.
    assert proc.returncode == 0, err_path.read_text()
    assert "Traceback" not in err_path.read_text(), err_path.read_text()
    assert "stopped" in out_path.read_text()


def test_serve_prints_local_address(app):
    out = app["stdout"].read_text()
    assert f"Runner's Knee Assistant is running at {app['url']}" in out
    assert "gradio.live" not in out  # no share link


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser, app, request):
    """A fresh page (its own session, so its own chat) on the app; screenshot at the end of the test.
    Records dialogs and every request, to check that nothing runs and nothing goes out."""
    context = browser.new_context(viewport={"width": 1200, "height": 1100})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app["url"])
    pg = context.new_page()
    pg.dialogs = []
    pg.requests = []

    def on_dialog(dialog):
        pg.dialogs.append(dialog.message)
        dialog.dismiss()

    pg.on("dialog", on_dialog)
    pg.on("request", lambda r: pg.requests.append(r.url))
    pg.goto(app["url"], wait_until="load")
    pg.locator("#knee-question textarea").wait_for(timeout=30_000)
    yield pg
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def ask(page, question: str, example: bool = False):
    """Send a question (typed, or by clicking the example question) and wait for its complete reply;
    returns the reply's locator."""
    bots = page.locator("[data-testid=bot]")
    before = bots.count()
    if example:
        page.get_by_role("button", name=question).click()
    else:
        box = page.locator("#knee-question textarea")
        box.fill(question)
        box.press("Enter")
    reply = bots.nth(before)
    reply.wait_for(timeout=ANSWER_TIMEOUT)
    # The reply streams in; it is complete when the text box is usable again.
    page.wait_for_function(
        "() => { const t = document.querySelector('#knee-question textarea'); return t && !t.disabled; }",
        timeout=ANSWER_TIMEOUT,
    )
    page.wait_for_timeout(300)
    return reply


@pytest.mark.browser
def test_chat_answer_lists_its_sources(page, app):
    reply = ask(page, "Which exercises help runner's knee?", example=True)  # an example question, clicked
    assert page.locator("[data-testid=user]").all_inner_texts() == ["Which exercises help runner's knee?"]
    sources = reply.locator(".knee-sources")
    sources.wait_for(timeout=ANSWER_TIMEOUT)
    text = reply.inner_text()
    assert "[1]" in text
    first = sources.locator("li.knee-source").first
    summary = first.locator("summary")
    assert summary.inner_text().startswith("[1]")
    title = summary.inner_text()[3:].split("\u2014")[0].strip()
    assert title, summary.inner_text()
    # Every [n] marker in the answer has its numbered source.
    body = text.split("Sources")[0]
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", body)}
    listed = {int(re.match(r"\[(\d+)\]", t).group(1)) for t in sources.locator("li.knee-source summary").all_inner_texts()}
    assert markers and markers <= listed, (markers, listed)
    # The cited passage is there, collapsed, and opens on click.
    passage = first.locator(".knee-source-text")
    assert not passage.is_visible()
    summary.click()
    passage.wait_for(state="visible")
    assert len(passage.inner_text()) > 40
    # The note under the chat: not a diagnosis, and how to reach a clinician.
    note = page.locator("#knee-note")
    assert note.is_visible()
    assert "not a diagnosis" in note.inner_text()
    assert "physiotherapist" in note.inner_text() and "emergency" in note.inner_text()
    # Nothing was fetched from anywhere but the app (no fonts, CDNs or analytics).
    outside = [u for u in page.requests if not u.startswith(app["url"]) and not u.startswith(("data:", "blob:"))]
    assert not outside, outside


def _background(locator) -> str:
    return locator.evaluate("e => getComputedStyle(e).backgroundColor")


@pytest.mark.browser
def test_red_flag_shows_emergency_banner(page):
    urgent = ask(page, "My knee keeps locking and I can't straighten it")
    amber = urgent.locator(".knee-banner-urgent")
    amber.wait_for(timeout=ANSWER_TIMEOUT)
    assert "urgent" in amber.locator(".knee-banner-title").inner_text().lower()
    assert _background(amber) == "rgb(251, 191, 36)"  # amber
    assert urgent.locator(".knee-banner-emergency").count() == 0
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    urgent.screenshot(path=str(SCREENSHOTS / "test_red_flag_shows_emergency_banner-urgent.png"))

    reply = ask(page, "My calf is swollen and I'm short of breath")
    banner = reply.locator(".knee-banner-emergency")
    banner.wait_for(timeout=ANSWER_TIMEOUT)
    assert banner.is_visible()
    assert "emergency" in banner.locator(".knee-banner-title").inner_text().lower()
    assert "emergency" in banner.locator(".knee-banner-action").inner_text().lower()  # what to do now
    assert _background(banner) == "rgb(185, 28, 28)"  # red
    # The banner is the top of the reply.
    assert reply.locator(".message-content > .md > *").first.get_attribute("class").startswith("knee-banner")


def _choose(page, elem_id: str, preferred: list[str]) -> str:
    """Pick the first of `preferred` that a Gradio dropdown offers; returns the choice."""
    page.locator(f"#{elem_id} input").click()
    options = page.locator(f"#{elem_id} [role=option]")
    options.first.wait_for()
    offered = options.evaluate_all("els => els.map(e => e.getAttribute('aria-label'))")
    choice = next((c for c in preferred if c in offered), None)
    assert choice, f"none of {preferred} in {offered}"
    page.locator(f"#{elem_id} [role=option][aria-label='{choice}']").click()
    page.wait_for_function(
        "([id, v]) => document.querySelector(`#${id} input`).value === v", arg=[elem_id, choice]
    )
    return choice


TOPIC_CHOICES = ["strength", "exercise", "hip-knee", "treatment"]


@pytest.mark.browser
def test_lookup_ranks_and_highlights(page):
    page.get_by_role("tab", name="Lookup (clinicians)").click()
    page.locator("#knee-lookup-query textarea, #knee-lookup-query input").first.fill("hip strengthening exercises")
    audience = _choose(page, "knee-lookup-audience", ["clinician"])
    topic = _choose(page, "knee-lookup-topic", TOPIC_CHOICES)
    page.locator("#knee-lookup-button").click()
    hits = page.locator("#knee-lookup-results .knee-hit")
    hits.first.wait_for(timeout=ANSWER_TIMEOUT)
    assert hits.count() >= 1
    heads = hits.locator(".knee-hit-head").all_inner_texts()
    assert [h.split(".")[0] for h in heads] == [str(i) for i in range(1, len(heads) + 1)]  # ranked 1..n
    scores = []
    for meta in hits.locator(".knee-hit-meta").all_inner_texts():
        assert "Source:" in meta
        assert re.search(r"audience: (\w+)", meta).group(1) in (audience, "both")  # the filters held
        assert topic in meta.split("topics:")[1]
        scores.append(float(re.search(r"score ([0-9.]+)", meta).group(1)))
    assert scores == sorted(scores, reverse=True)
    marks = page.locator("#knee-lookup-results .knee-hit-text mark")
    assert marks.count() >= 1
    assert {m.lower()[:3] for m in marks.all_inner_texts()} <= {"hip", "str", "exe"}
    # The citation line can be copied.
    cite = hits.first.locator(".knee-cite-text").inner_text()
    assert "Source:" in cite and "\u2014" in cite
    hits.first.locator(".knee-copy").click()
    page.wait_for_function("() => document.querySelector('.knee-copy').textContent === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == cite


XSS_PAYLOADS = ['<script>window.__xss=1</script>', '<img src=x onerror="window.__xss=1">']


@pytest.mark.browser
def test_user_html_is_shown_as_text_and_runs_nothing(page):
    for payload in XSS_PAYLOADS:
        ask(page, payload)
    page.wait_for_timeout(500)
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.dialogs == []
    shown = page.locator("[data-testid=user]").all_inner_texts()
    assert [s.strip() for s in shown] == XSS_PAYLOADS  # shown exactly as typed, as text
    assert page.locator("[data-testid=user] img, [data-testid=user] script").count() == 0


def _feedback_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.browser
def test_like_appends_feedback_line(page, app):
    question = "How much pain is OK when running?"
    reply = ask(page, question)
    before = len(_feedback_lines(app["feedback"]))
    row = page.locator(".message-buttons-left").last
    row.locator("button[aria-label='Like']").click()
    deadline = time.time() + 15
    while len(_feedback_lines(app["feedback"])) <= before and time.time() < deadline:
        time.sleep(0.2)
    lines = _feedback_lines(app["feedback"])
    assert len(lines) == before + 1, lines
    record = lines[-1]
    assert set(record) == {"question", "answer", "citations", "rating", "time"}
    assert record["question"] == question
    assert record["rating"] == "like"
    assert record["answer"] and record["answer"].split("[")[0].strip()[:30] in reply.inner_text()
    for c in record["citations"]:
        assert set(c) == {"n", "title", "section", "source"}
    when = datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
    assert when.utcoffset().total_seconds() == 0
    assert abs((datetime.now(timezone.utc) - when).total_seconds()) < 120
    assert "Thank you for your feedback" in page.locator("[data-testid=toast-body]").first.inner_text()


# --------------------------------------------------------------------------- API


def test_gradio_client_chat_and_lookup(app):
    from gradio_client import Client

    client = Client(app["url"], verbose=False)
    reply = client.predict("What is runner's knee?", api_name="/chat")
    assert isinstance(reply, str) and "[1]" in reply
    assert 'class="knee-sources"' in reply

    html = client.predict("kneecap pain running", "patient", "any", 4, api_name="/lookup")
    assert html.count('class="knee-hit"') >= 1 and html.count('class="knee-hit"') <= 4
    assert "<mark>" in html and 'data-rank="1"' in html
    assert "Type a few words" in client.predict("   ", "any", "any", 4, api_name="/lookup")
    # k may be left out (default 8)
    html = client.predict("pain during running", "any", "any", api_name="/lookup")
    assert 1 <= html.count('class="knee-hit"') <= 8


def test_assistant_failure_shows_friendly_message(corpus_settings, tmp_path):
    """A broken assistant (here: none at all) gives a friendly message in chat and lookup, no traceback."""
    import ui
    from gradio_client import Client

    demo = ui.build_app(None, replace(corpus_settings, data_dir=tmp_path))
    demo.queue(default_concurrency_limit=2, max_size=64)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **ui.launch_kwargs())
    try:
        client = Client(f"http://127.0.0.1:{port}", verbose=False)
        reply = client.predict("What is runner's knee?", api_name="/chat")
        assert reply == ui.ERROR_TEXT and "Traceback" not in reply
        assert client.predict("hip", "any", "any", 4, api_name="/lookup") == ui.message_html(ui.LOOKUP_ERROR_TEXT)
    finally:
        demo.close()


# --------------------------------------------------------------------------- rendering helpers


def test_highlight_escapes_first_and_marks_whole_words():
    import ui

    text = 'Hip <b>strength</b> & "hips" amp; strengthening'
    out = ui.highlight(text, ui.query_terms("hip strengthening amp"))
    assert "<b>" not in out and "&lt;b&gt;" in out and "&amp;" in out and "&quot;" in out
    assert "<mark>Hip</mark>" in out and "<mark>hips</mark>" in out and "<mark>strengthening</mark>" in out
    assert "&<mark>" not in out  # a term never matches inside an entity


def test_user_text_round_trips_and_is_inert():
    import ui

    for typed in [*XSS_PAYLOADS, "a \\*b* [x](javascript:y) &lt; $$x$$ `c` ~~d~~ |e| #f", "How many reps?"]:
        shown = ui.shown_user_text(typed)
        assert "<" not in shown and ">" not in shown
        assert ui.typed_user_text(shown) == typed
