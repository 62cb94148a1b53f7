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

from conftest import REPO_ROOT, free_port, run_knee, wait_for_http

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


@pytest.mark.browser
def test_red_flag_banner_says_why_with_the_users_words_highlighted(page, assistant):
    """Issue 9: the banner's "Why" line quotes the words of the message that raised the escalation,
    highlighted, and escaped (the user's own markup shows as text)."""
    question = "My calf is <b>swollen</b> and I'm short of breath"
    expected = assistant.invoke({"question": question, "history": []}).escalation
    assert expected is not None and expected.triggers, "the message must raise a red flag"
    reply = ask(page, question)
    banner = reply.locator(".knee-banner")
    banner.wait_for(timeout=ANSWER_TIMEOUT)
    why = banner.locator(".knee-banner-why")
    assert why.inner_text().startswith("Why:")
    marked = why.locator("mark").all_inner_texts()
    assert set(marked) == set(expected.triggers), (marked, expected.triggers)
    # The user's <b> is text, inside the highlight: no element came from the message.
    assert any("<b>" in m for m in marked) == any("<b>" in t for t in expected.triggers)
    assert banner.locator("b").count() == 0 and reply.locator("mark b, b").count() == 0
    assert _background(why.locator("mark").first) != _background(banner)  # visible against the banner
    # The why is not repeated under the banner.
    assert "Why:" not in reply.locator(".knee-answer").inner_text()


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

    for typed in [*XSS_PAYLOADS, "a \\*b* [x](javascript:y) &lt; $$x$$ `c` ~~d~~ |e| #f", "How many reps?",
                  "two\nlines <br> &amp;"]:
        shown = ui.shown_user_text(typed)
        assert "<" not in shown.replace("<br>", "") and ">" not in shown.replace("<br>", "")
        assert ui.typed_user_text(shown) == typed


def test_reply_html_shows_every_text_as_text():
    """Rendering of a reply: text from the knowledge base (and the user's words in an escalation)
    is escaped wherever it goes; only the code's own markup (banner, bold headings of an
    escalation, [n] markers of the answer's citations, the sources list) is HTML."""
    import ui
    from knee.models import Answer, Citation, Escalation

    hostile = 'See [x](http://evil.example) ![](http://evil.example/i.png) <img src=x> &lt;img src=y&gt; javascript:alert(1) **b** $$x$$ [1] [7]'
    cite = Citation(n=1, title='T <img src=x> [t](http://evil.example)', section="S **s**", source="s.md",
                    text="T > S\n\n" + hostile, references=("R <script>1</script>",))
    shown = list(ui.stream_reply(Answer("q", "answer", hostile, [cite])))[-1]
    for tag in ("<img", "<a ", "<script", "<strong>b", "<em"):
        assert tag not in shown, tag
    assert "&lt;img src=x&gt;" in shown and "&amp;lt;img src=y&amp;gt;" in shown  # shows "&lt;img src=y&gt;"
    assert "[x](http://evil.example)" in shown and "**b**" in shown and "$$x$$" in shown
    assert '<span class="knee-ref">[1]</span>' in shown  # a marker of this answer's citation
    assert "[7]" in shown and '<span class="knee-ref">[7]</span>' not in shown  # not a citation: text
    assert ui.plain_reply(shown) == hostile

    esc = Escalation(level="urgent", reason="a locked knee", action="See a doctor <b>today</b>.", rule="r", source="s",
                     triggers=("knee <i>locks</i>",), why="It can be a torn cartilage.", note="")
    text = "**Urgent: see a doctor today.** See a doctor <b>today</b>.\n\n**Why:** you described a locked knee (\u201cknee <i>locks</i>\u201d). It can be a torn cartilage. [1]\n\nPlease stop running."
    chunks = list(ui.stream_reply(Answer("q", "escalate", text, [cite], esc)))
    assert len(chunks) == 1  # what to do now is never typed out
    html = chunks[0]
    assert html.startswith('<div class="knee-banner knee-banner-urgent"')
    assert "<mark>knee &lt;i&gt;locks&lt;/i&gt;</mark>" in html and "<i>" not in html and "<b>" not in html
    assert html.count("Why:") == 1 and "Please stop running." in html


def test_answer_streams_in_growing_chunks():
    import ui
    from knee.models import Answer, Citation

    body = " ".join(f"Sentence {i} about knees is here." for i in range(12)) + " [1]"
    cite = Citation(n=1, title="T", section="S", source="s.md", text="T > S\n\nbody")
    chunks = list(ui.stream_reply(Answer("q", "answer", body, [cite])))
    assert 2 <= len(chunks) <= ui.STREAM_CHUNKS
    texts = [ui.plain_reply(c) for c in chunks]
    assert texts[-1] == body
    assert all(body.startswith(t) and len(t) < len(u) for t, u in zip(texts, texts[1:]))
    assert "knee-sources" in chunks[-1] and not any("knee-sources" in c for c in chunks[:-1])


def test_client_history_is_bounded_before_any_work():
    import ui
    from gradio.components.chatbot import ChatbotDataMessages

    huge = [{"role": "user" if i % 2 == 0 else "assistant", "content": [{"type": "text", "text": "x" * 100_000}]}
            for i in range(500)]
    payload = {"data": [huge, "y" * 10_000_000], "fn_index": 1}
    assert ui.bound_request_data(payload)
    kept = payload["data"][0]
    assert len(kept) <= ui.HISTORY_MESSAGES and kept[-1] == {**huge[-1], "content": [{"type": "text", "text": "x" * ui.HISTORY_MESSAGE_CHARS}]}
    assert sum(len(m["content"][0]["text"]) for m in kept) <= ui.HISTORY_CHARS
    assert len(payload["data"][1]) == ui.HISTORY_MESSAGE_CHARS
    small = {"data": [[{"role": "user", "content": "hi"}], "question"]}
    assert not ui.bound_request_data(small)  # a normal request is left as it is

    parsed = ChatbotDataMessages.model_validate(huge + [{"role": "user", "content": [{"type": "file", "file": {"path": "/etc/passwd"}}]}])
    bounded = ui.bound_chat_payload(parsed)
    assert len(bounded.root) <= ui.HISTORY_MESSAGES
    assert all(c.type == "text" for m in bounded.root for c in m.content)  # no file from a client's history
    turns = ui.history_for_assistant([{"role": "user", "content": "z" * 50_000}] * 100 + [{"role": "tool", "content": "t"}, 7, None])
    assert len(turns) == ui.ASSISTANT_TURNS and all(len(t["content"]) <= ui.ASSISTANT_TURN_CHARS for t in turns)
    assert ui.history_for_assistant(12345) == [] and ui.history_for_assistant({"role": "user"}) == []


def test_priority_gate_lets_red_flags_in_first():
    import asyncio
    import threading

    import ui

    async def scenario():
        gate = ui.PriorityGate(1)
        order = []
        release = asyncio.Event()

        async def holder():
            async with gate.hold():
                await release.wait()

        async def waiter(name, priority):
            async with gate.hold(priority):
                order.append(name)

        first = asyncio.create_task(holder())
        await asyncio.sleep(0)
        tasks = [asyncio.create_task(waiter(f"ordinary {i}", ui.NORMAL)) for i in range(3)]
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(waiter("red flag", ui.FIRST)))
        gone = asyncio.create_task(waiter("gave up", ui.NORMAL))
        await asyncio.sleep(0)
        gone.cancel()  # a waiter that gives up never blocks the line
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(first, *tasks)
        return order, gate.busy

    result = []  # run in a thread of its own: the test process may already run an event loop
    worker = threading.Thread(target=lambda: result.append(asyncio.run(scenario())))
    worker.start()
    worker.join(30)
    order, busy = result[0]
    assert order == ["red flag", "ordinary 0", "ordinary 1", "ordinary 2"]
    assert busy == 0


APPEND_LINES = """
import sys, ui
path, worker = sys.argv[1], int(sys.argv[2])
for i in range(150):
    ui.append_feedback(path, {"worker": worker, "i": i, "pad": str(worker) * 200_000})
"""


def test_feedback_appends_from_several_processes_never_interleave(tmp_path):
    """Two `knee serve` behind a load balancer may share one feedback file: lines larger than any
    write buffer, appended from several processes at once, each come out whole (flock)."""
    path = tmp_path / "feedback.jsonl"
    procs = [subprocess.Popen([sys.executable, "-c", APPEND_LINES, str(path), str(w)], cwd=REPO_ROOT) for w in range(3)]
    for p in procs:
        assert p.wait(timeout=180) == 0
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 450
    records = [json.loads(line) for line in lines]  # a torn or interleaved line would not parse
    for w in range(3):
        mine = [r for r in records if r["worker"] == w]
        assert [r["i"] for r in mine] == list(range(150)) and all(r["pad"] == str(w) * 200_000 for r in mine)


# --------------------------------------------------------------------------- HTTP hardening


def test_security_headers_on_page_and_api_responses(app):
    import httpx

    page = httpx.get(app["url"] + "/", timeout=30)
    api = httpx.get(app["url"] + "/gradio_api/info", timeout=30)
    posted = httpx.post(app["url"] + "/gradio_api/call/lookup", json={"data": ["hip", "any", "any", 3]}, timeout=30)
    for r in (page, api, posted):
        assert r.status_code == 200, r.text[:200]
        h = r.headers
        assert h["x-frame-options"] == "DENY"
        assert h["x-content-type-options"] == "nosniff"
        assert h["referrer-policy"] in ("no-referrer", "same-origin")
        csp = h["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "img-src 'self' data: blob:" in csp
        assert "http:" not in csp.replace("data:", "") and "*" not in csp  # nothing from other hosts
    nonce = re.search(r"'nonce-([^']+)'", page.headers["content-security-policy"]).group(1)
    scripts = re.findall(r"<script\b[^>]*>", page.text)
    assert scripts and all(f'nonce="{nonce}"' in s for s in scripts)  # the page's own scripts, and only they


def test_cross_origin_and_oversize_uploads_are_refused(app):
    import httpx

    import ui

    url = app["url"] + "/gradio_api/upload"
    assert httpx.post(url, files={"files": ("a.txt", b"hello")}, timeout=30).status_code == 200  # same origin, small
    foreign = httpx.post(url, files={"files": ("a.txt", b"hello")}, headers={"Origin": "http://evil.example"}, timeout=30)
    assert foreign.status_code == 403
    assert httpx.post(app["url"] + "/gradio_api/call/chat", json={"data": ["hi"]}, headers={"Origin": "null"},
                      timeout=30).status_code == 403  # nor any other request that changes something
    big = httpx.post(url, files={"files": ("big.bin", b"0" * (ui.MAX_UPLOAD_BYTES + 1))}, timeout=30)
    assert big.status_code == 413

    def chunked():  # no Content-Length: counted as it comes
        yield b'--b\r\nContent-Disposition: form-data; name="files"; filename="c.bin"\r\n\r\n'
        for _ in range(ui.MAX_UPLOAD_BYTES // 65536 + 2):
            yield b"0" * 65536
        yield b"\r\n--b--\r\n"

    assert httpx.post(url, content=chunked(), headers={"content-type": "multipart/form-data; boundary=b"},
                      timeout=30).status_code == 413


@pytest.mark.browser
def test_login_is_asked_when_the_auth_variables_are_set(browser, corpus_settings, tmp_path):
    import httpx

    import ui
    from knee.config import ConfigError

    with pytest.raises(ConfigError):
        ui.launch_kwargs({"KNEE_AUTH_USER": "clinic"})  # never a default password
    assert "auth" not in ui.launch_kwargs({})
    kwargs = ui.launch_kwargs({"KNEE_AUTH_USER": "clinic", "KNEE_AUTH_PASSWORD": "test-only-password"})
    demo = ui.configure_queue(ui.build_app(None, replace(corpus_settings, data_dir=tmp_path)))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **kwargs)
    url = f"http://127.0.0.1:{port}"
    try:
        assert httpx.get(url + "/config", timeout=30).status_code == 401  # nothing without a login
        context = browser.new_context()
        pg = context.new_page()
        pg.goto(url, wait_until="load")
        password = pg.locator("input[type=password]")
        password.wait_for(timeout=30_000)
        assert pg.locator("#knee-question textarea").count() == 0
        pg.locator("input[type=text], input:not([type])").first.fill("clinic")
        password.fill("wrong")
        pg.get_by_role("button", name="Login").click()
        pg.wait_for_timeout(1000)
        assert pg.locator("#knee-question textarea").count() == 0
        pg.locator("input[type=text], input:not([type])").first.fill("clinic")
        password.fill("test-only-password")
        pg.get_by_role("button", name="Login").click()
        pg.locator("#knee-question textarea").wait_for(timeout=30_000)
        context.close()
    finally:
        demo.close()


# --------------------------------------------------------------------------- hostile sources

HOSTILE_ARTICLE = """---
title: "Zebra drills <img src=x onerror=alert(1)> [guide](http://evil.example/title)"
slug: zebra-drills
audience: patient
topics: [exercise, strength]
sources:
  - key: EVIL
    citation: "Evil <script>window.__xss=1</script> ![](http://evil.example/cite.png) [site](javascript:alert(3))"
last_reviewed: 2026-11-25
---

# Zebra drills <img src=x onerror=alert(1)> [guide](http://evil.example/title)

Zebra drills are a made-up knee exercise used only to test how the assistant shows sources.

## Zebra drills and runner's knee <b>[more](javascript:alert(2))</b>

Zebra drills for runner's knee are explained in [the zebra guide](http://evil.example/guide) and shown in ![zebra](http://evil.example/zebra.png) pictures.
Zebra drills for runner's knee list the raw tag <img src=http://evil.example/raw.png onerror=window.__xss=1> and the escaped tag &lt;img src=http://evil.example/escaped.png&gt; as plain words.
Zebra drills for runner's knee link to <a href="javascript:window.__xss=1">a script link</a> and to javascript:alert(5) as text.
Zebra drills for runner's knee keep **bold stars**, `code ticks` and $$x^2$$ dollars as written.

<!-- refs: EVIL -->
<!-- questions:
- what are zebra drills for runner's knee?
- where are zebra drills for runner's knee explained?
-->
"""
HOSTILE_QUESTION = "Where are zebra drills for runner's knee explained?"


@pytest.fixture(scope="module")
def hostile_app(tmp_path_factory):
    """A store of its own holding one hostile article (`knee ingest FILE --db DIR`), served."""
    from evals.serving import ServeProcess

    root = tmp_path_factory.mktemp("hostile")
    articles = root / "articles"
    articles.mkdir()
    article = articles / "zebra-drills.md"
    article.write_text(HOSTILE_ARTICLE, encoding="utf-8")
    db = root / "db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEE_")}
    ingested = run_knee("ingest", str(article), "--db", str(db), "--json", env=env)
    assert ingested.returncode == 0, ingested.stderr
    asked = run_knee("ask", HOSTILE_QUESTION, "--db", str(db), "--json", env=env)
    assert asked.returncode == 0, asked.stderr
    expected = json.loads(asked.stdout)
    assert expected["behavior"] == "answer" and "evil.example" in expected["answer"] + json.dumps(expected["citations"]), expected
    server = ServeProcess(env={"KNEE_DB": str(db), "KNEE_CORPUS": str(articles), "KNEE_DATA": str(root / "data")},
                          logs=root / "logs", inherit_knee_env=False).start()
    try:
        yield {"url": server.url, "expected": expected}
    finally:
        server.stop()
    assert server.returncode == 0, server.stderr()


def _same_text(a: str) -> str:
    return " ".join(a.split())


@pytest.mark.browser
def test_hostile_source_is_shown_as_text_and_requests_nothing(browser, hostile_app):
    """A source's raw and escaped HTML, Markdown links and images and javascript: URLs come out as
    the text they are, in the answer, the sources and the lookup; the page asks no other host."""
    from urllib.parse import urlsplit

    expected = hostile_app["expected"]
    context = browser.new_context(viewport={"width": 1200, "height": 1400})
    outside = []

    def only_this_server(route):
        url = route.request.url
        if url.startswith(("data:", "blob:")) or urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", only_this_server)
    pg = context.new_page()
    pg.dialogs = []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    try:
        pg.goto(hostile_app["url"], wait_until="load")
        pg.locator("#knee-question textarea").wait_for(timeout=30_000)
        reply = ask(pg, HOSTILE_QUESTION)
        reply.locator(".knee-sources").wait_for(timeout=ANSWER_TIMEOUT)
        # The answer: exactly the assistant's text, as text.
        shown = reply.locator(".knee-answer").inner_text()
        assert _same_text(shown) == _same_text(expected["answer"])
        for literal in ("&lt;img src=http://evil.example/escaped.png&gt;", "javascript:alert(5)", "$$x^2$$"):
            if literal in expected["answer"]:
                assert literal in shown, literal
        # The sources: titles, sections, references and passages as text.
        for summary in reply.locator("li.knee-source summary").all():
            summary.click()
        sources = reply.locator(".knee-sources").inner_text()
        for c in expected["citations"]:
            assert _same_text(f"[{c['n']}] {c['title']} \u2014 {c['section']}") in _same_text(sources)
            for ref in c["references"]:
                assert _same_text(ref) in _same_text(sources)
        title = expected["citations"][0]["title"]
        assert "<" not in title or "<img" not in title or "<img src=x onerror=alert(1)>" in sources  # raw tag as text
        # No element in the reply that the knowledge base's text could have made.
        assert reply.locator("img, a, script, iframe, object, embed, svg image, [src], [href], [onerror], .katex").count() == 0
        # The lookup shows the same passages as text too.
        pg.get_by_role("tab", name="Lookup (clinicians)").click()
        pg.locator("#knee-lookup-query textarea, #knee-lookup-query input").first.fill("zebra drills")
        pg.locator("#knee-lookup-button").click()
        hits = pg.locator("#knee-lookup-results .knee-hit")
        hits.first.wait_for(timeout=ANSWER_TIMEOUT)
        results = pg.locator("#knee-lookup-results")
        assert _same_text(title) in _same_text(results.inner_text())
        assert results.locator("img, a, script, iframe, [src], [href], [onerror]").count() == 0
        pg.wait_for_timeout(500)
        assert pg.evaluate("typeof window.__xss") == "undefined"
        assert pg.dialogs == []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(SCREENSHOTS / "test_hostile_source_is_shown_as_text.png"), full_page=True)
    finally:
        context.close()
    assert outside == [], outside  # nothing was requested from any other host
