"""The web app: a patient chat and a clinician lookup, in Gradio.

This module holds no answer logic. It shows what the assistant returns:
- chat: `assistant.invoke({"question", "history"}) -> Answer`, streamed in, with an escalation banner
  on top, the answer's [n] markers and a numbered, expandable sources list below;
- lookup: `assistant.lookup(query, k, audience, topic) -> [Passage]`, ranked, query terms highlighted,
  each with a citation line to copy;
- like / dislike on an answer appends one JSON line to `settings.feedback_path`.

`knee serve` calls `serve(settings, host, port)`: it builds the index when it is missing or stale,
loads the model and the index once, and runs the app on the local address only (no share link).
"""

from __future__ import annotations

import html
import json
import logging
import re
import signal
import sys
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import knee  # noqa: F401  (telemetry off before gradio is imported)
import gradio as gr
from knee.config import Settings

log = logging.getLogger("knee.ui")

APP_TITLE = "Runner's Knee Assistant"

ERROR_TEXT = (
    "Sorry, something went wrong on my side and I can't answer right now. Please try again in a moment. "
    "If you are worried about your knee, contact a physiotherapist or your GP; "
    "in an emergency, call your local emergency number (999 in the UK, 112 in Europe, 911 in the US)."
)
LOOKUP_EMPTY_TEXT = "Type a few words to search for, for example: <em>hip strengthening</em> or <em>pain monitoring</em>."
LOOKUP_ERROR_TEXT = "Sorry, the search failed: the knowledge base could not be read. Please try again in a moment."
NOTE_MD = (
    "**General information, not a diagnosis.** This assistant answers from a curated, cited knowledge base "
    "about runner's knee (patellofemoral pain). It cannot examine you. For advice about your own knee, see a "
    "physiotherapist or your GP. **In an emergency, call your local emergency number** "
    "(999 in the UK, 112 in Europe, 911 in the US)."
)
EXAMPLES = [
    "Which exercises help runner's knee?",
    "How much pain is OK when running?",
    "How do I get back to running?",
    "What is runner's knee?",
]
AUDIENCE_CHOICES = ["any", "patient", "clinician", "both"]
LEVEL_LABEL = {"emergency": "Emergency: act now", "urgent": "Urgent: see a doctor today"}
STREAM_SECONDS = 0.8  # how long the streamed reveal of an answer takes at most

CSS = """
.knee-banner { border-radius: 8px; padding: 10px 14px; margin: 0 0 10px 0; border: 2px solid; }
.knee-banner-title { font-weight: 700; font-size: 1.05em; letter-spacing: .02em; text-transform: uppercase; }
.knee-banner-action { margin-top: 4px; font-weight: 600; }
.knee-banner-reason { margin-top: 4px; font-size: .95em; }
.knee-banner-emergency { background: #b91c1c !important; border-color: #7f1d1d !important; color: #ffffff !important; }
.knee-banner-emergency * { color: #ffffff !important; }
.knee-banner-urgent { background: #fbbf24 !important; border-color: #b45309 !important; color: #1f1300 !important; }
.knee-banner-urgent * { color: #1f1300 !important; }
.knee-sources { margin-top: 10px; border-top: 1px solid var(--border-color-primary); padding-top: 6px; font-size: .92em; }
.knee-sources-title { font-weight: 700; margin-bottom: 2px; }
.knee-sources ol { margin: 0; padding-left: 0; list-style: none; }
.knee-sources li { margin: 4px 0; }
.knee-sources summary { cursor: pointer; }
.knee-source-meta { color: var(--body-text-color-subdued); font-size: .9em; margin: 4px 0; }
.knee-source-text { border-left: 3px solid var(--border-color-primary); margin: 4px 0 6px 0; padding: 2px 10px; }
.knee-note { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 12px;
             background: var(--background-fill-secondary); font-size: .95em; }
.knee-results .knee-hit { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 14px; margin: 8px 0; }
.knee-results .knee-hit-head { font-weight: 700; }
.knee-results .knee-hit-meta { color: var(--body-text-color-subdued); font-size: .9em; margin: 2px 0 6px 0; }
.knee-results .knee-hit-text { white-space: pre-wrap; line-height: 1.45; }
.knee-results mark { background: #fde68a; color: #1f1300; padding: 0 1px; border-radius: 2px; }
.knee-results .knee-cite { display: flex; gap: 8px; align-items: center; margin-top: 8px; }
.knee-results .knee-cite-text { flex: 1; user-select: all; white-space: normal; font-size: .85em;
                                background: var(--background-fill-secondary); padding: 4px 8px; border-radius: 4px; }
.knee-results .knee-copy { border: 1px solid var(--border-color-primary); border-radius: 4px; padding: 2px 10px;
                           cursor: pointer; background: var(--button-secondary-background-fill); }
.knee-results .knee-message { padding: 8px 0; }
"""

# Copy buttons of the lookup results: one delegated listener on the results component.
COPY_JS = """
element.addEventListener('click', async (event) => {
  const button = event.target.closest('.knee-copy');
  if (!button) return;
  const text = button.parentElement.querySelector('.knee-cite-text').textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch (e) {
    const area = document.createElement('textarea');
    area.value = text; document.body.appendChild(area); area.select();
    document.execCommand('copy'); area.remove();
  }
  button.textContent = 'Copied';
  setTimeout(() => { button.textContent = 'Copy'; }, 1500);
});
"""


# --------------------------------------------------------------------------- rendering


def esc(text: Any) -> str:
    return html.escape(str(text or ""), quote=True)


def passage_body(text: str, title: str = "") -> str:
    """The passage without its "Title > Section" heading line (title and section are shown separately)."""
    head, sep, body = (text or "").partition("\n\n")
    if sep and body.strip() and "\n" not in head and (head.startswith(title) if title else " > " in head):
        return body
    return text or ""


def _paragraphs(text: str) -> str:
    """Escaped text as HTML on one line: paragraphs in <p>, single newlines as <br>."""
    parts = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "".join(f"<p>{esc(p).replace(chr(10), '<br>')}</p>" for p in parts)


def banner_html(escalation) -> str:
    level = escalation.level if escalation.level in LEVEL_LABEL else "urgent"
    return (
        f'<div class="knee-banner knee-banner-{level}" role="alert">'
        f'<div class="knee-banner-title">{esc(LEVEL_LABEL[level])}</div>'
        f'<div class="knee-banner-action">{esc(escalation.action)}</div>'
        "</div>"
    )


def sources_html(citations) -> str:
    """The numbered sources of one answer: title and section always visible, the passage expandable."""
    if not citations:
        return ""
    items = []
    for c in citations:
        refs = "; ".join(c.references)
        meta = f"Source: {esc(c.source)}" + (f" &middot; References: {esc(refs)}" if refs else "")
        items.append(
            f'<li class="knee-source"><details>'
            f'<summary><strong>[{int(c.n)}]</strong> {esc(c.title)} &mdash; {esc(c.section)}</summary>'
            f'<div class="knee-source-meta">{meta}</div>'
            f'<div class="knee-source-text">{_paragraphs(passage_body(c.text, c.title))}</div>'
            "</details></li>"
        )
    return f'<div class="knee-sources"><div class="knee-sources-title">Sources</div><ol>{"".join(items)}</ol></div>'


def answer_body(answer) -> str:
    """The answer's Markdown; under an escalation banner, without the paragraph that repeats the action."""
    text = answer.answer or ""
    if answer.escalation is not None:
        first, sep, rest = text.partition("\n\n")
        if sep and answer.escalation.action and answer.escalation.action in first:
            text = rest
    return text.strip()


def reply_parts(answer) -> tuple[str, str, str]:
    banner = banner_html(answer.escalation) if answer.escalation is not None else ""
    return banner, answer_body(answer), sources_html(answer.citations)


def join_reply(banner: str, body: str, sources: str) -> str:
    # HTML blocks must stand alone (blank lines around them) so the Markdown around them still renders.
    return "\n\n".join(part for part in (banner, body, sources) if part)


def stream_reply(answer) -> Iterator[str]:
    """The reply as growing text: the banner at once, the answer a few words at a time, then the sources."""
    banner, body, sources = reply_parts(answer)
    tokens = re.findall(r"\S+\s*", body)
    steps = max(1, min(12, len(tokens) // 4))
    per_step = max(1, -(-len(tokens) // steps))
    pause = STREAM_SECONDS / steps
    for i in range(per_step, len(tokens), per_step):
        yield join_reply(banner, "".join(tokens[:i]).rstrip(), "")
        time.sleep(pause)
    yield join_reply(banner, body, sources)


_BANNER_BLOCK = re.compile(r'<div class="knee-banner[^"]*".*?</div></div>', re.S)
_SOURCES_BLOCK = re.compile(r'<div class="knee-sources">.*</ol></div>', re.S)


def plain_reply(content: str) -> str:
    """A reply as shown, back to the assistant's answer text (for the history passed to the assistant)."""
    return _SOURCES_BLOCK.sub("", _BANNER_BLOCK.sub("", content)).strip()


def message_text(content: Any) -> str:
    """The text of a chat message's content in any of Gradio's shapes (str, parts list, dict)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        if content.get("type") == "text" or "text" in content:
            return str(content.get("text") or "")
        return ""
    if isinstance(content, (list, tuple)):
        return "\n".join(t for t in (message_text(c) for c in content) if t)
    return str(getattr(content, "text", "") or "")


def history_for_assistant(history: Any) -> list[dict[str, str]]:
    turns = []
    for m in history or []:
        role = m.get("role") if isinstance(m, dict) else getattr(m, "role", None)
        content = m.get("content") if isinstance(m, dict) else getattr(m, "content", None)
        meta = (m.get("metadata") if isinstance(m, dict) else getattr(m, "metadata", None)) or {}
        if role not in ("user", "assistant") or meta.get("title"):
            continue
        text = message_text(content)
        if role == "assistant":
            text = plain_reply(text)
        if text.strip():
            turns.append({"role": role, "content": text})
    return turns


# --------------------------------------------------------------------------- user text as text

_MD_SPECIAL = "\\`*_[]!#~|$"
_ENTITY = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_UNENTITY = {v: k for k, v in _ENTITY.items()}


def shown_user_text(text: str) -> str:
    """What the user typed, made inert for the chat's Markdown+HTML renderer: HTML characters become
    entities and Markdown punctuation is backslash-escaped, so it shows exactly as typed and runs nothing.
    `typed_user_text` is its exact inverse."""
    text = re.sub(r"[&<>]", lambda m: _ENTITY[m.group(0)], text)
    return re.sub("([" + re.escape(_MD_SPECIAL) + "])", r"\\\1", text)


def typed_user_text(shown: str) -> str:
    text = re.sub(r"\\([" + re.escape(_MD_SPECIAL) + "])", r"\1", shown)
    return re.sub(r"&(?:amp|lt|gt);", lambda m: _UNENTITY[m.group(0)], text)


def _map_user_text(message: Any, fn) -> Any:
    """A copy of one chat message with `fn` applied to the text of a user message (any of Gradio's shapes)."""

    def content(c):
        if isinstance(c, str):
            return fn(c)
        if isinstance(c, dict) and c.get("type", "text") == "text" and isinstance(c.get("text"), str):
            return {**c, "text": fn(c["text"])}
        if isinstance(c, list):
            return [content(x) for x in c]
        return c

    if isinstance(message, dict):
        return {**message, "content": content(message.get("content"))} if message.get("role") == "user" else message
    if isinstance(message, gr.ChatMessage) and message.role == "user":
        return gr.ChatMessage(role="user", content=content(message.content), metadata=message.metadata, options=message.options)
    return message


class SafeChatbot(gr.Chatbot):
    """`gr.Chatbot` that shows user messages as plain text (see `shown_user_text`); the server side
    (the history the chat function gets) keeps the text exactly as typed."""

    is_template = True  # rendered by the frontend's ordinary Chatbot

    def preprocess(self, payload):
        return [_map_user_text(m, typed_user_text) for m in super().preprocess(payload)]

    def postprocess(self, value):
        if value:
            value = [_map_user_text(m, shown_user_text) for m in value]
        return super().postprocess(value)


# --------------------------------------------------------------------------- lookup rendering

_STOP = set(
    "a an the and or of to in on for with at by from is are was were be been it its this that these those "
    "what which how when why who whom do does did can could should would will my your our i you we they "
    "me about into than then there here not no yes any all some".split()
)


def query_terms(query: str) -> list[str]:
    """Words of the query worth highlighting, reduced to a simple stem (strength|ening, run|ning)."""
    terms = []
    for word in re.findall(r"[A-Za-z][A-Za-z'-]*|\d+", query.lower()):
        word = word.strip("'-")
        if len(word) < 3 or word in _STOP:
            continue
        stem = word
        if len(word) > 5:
            stem = word[:-5] if word.endswith("ening") and len(word) >= 10 else re.sub(r"(?:ing|ed|es|s)$", "", word)
        elif len(word) >= 4 and word.endswith("s") and not word.endswith("ss"):
            stem = word[:-1]  # knees -> knee, hips -> hip
        stem = stem if len(stem) >= 3 else word
        if stem not in terms:
            terms.append(stem)
    return terms


def highlight(text: str, terms: list[str]) -> str:
    """HTML of `text`, escaped, with words starting with a query term wrapped in <mark>.
    Matching runs on the raw text and every piece is escaped on its own, so a term can never
    match inside an HTML entity or tag."""
    if not terms:
        return esc(text)
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)) + r")[\w'-]*", re.I)
    out, last = [], 0
    for m in pattern.finditer(text):
        out.append(esc(text[last : m.start()]))
        out.append(f"<mark>{esc(m.group(0))}</mark>")
        last = m.end()
    out.append(esc(text[last:]))
    return "".join(out)


def citation_line(p) -> str:
    line = f"{p.title} \u2014 {p.section_label}. Source: {p.source}."
    if p.references:
        line += " References: " + "; ".join(p.references) + "."
    return line


def lookup_html(passages, query: str) -> str:
    if not passages:
        return '<div class="knee-results"><div class="knee-message">No passages match these words and filters.</div></div>'
    terms = query_terms(query)
    hits = []
    for rank, p in enumerate(passages, start=1):
        cosine = "" if p.dense is None else f" &middot; cosine {p.dense:.3f}"
        topics = ", ".join(p.topics) or "-"
        hits.append(
            f'<div class="knee-hit" data-rank="{rank}">'
            f'<div class="knee-hit-head">{rank}. {esc(p.title)} &mdash; {esc(p.section_label)}</div>'
            f'<div class="knee-hit-meta">Source: {esc(p.source)} &middot; audience: {esc(p.audience)} &middot; '
            f'topics: {esc(topics)} &middot; score {p.score:.4f}{cosine}</div>'
            f'<div class="knee-hit-text">{highlight(passage_body(p.text, p.title), terms)}</div>'
            f'<div class="knee-cite"><code class="knee-cite-text">{esc(citation_line(p))}</code>'
            f'<button class="knee-copy" type="button">Copy</button></div>'
            "</div>"
        )
    return f'<div class="knee-results"><div class="knee-count">{len(passages)} passage(s), best first</div>{"".join(hits)}</div>'


def message_html(text: str) -> str:
    return f'<div class="knee-results"><div class="knee-message">{text}</div></div>'


# --------------------------------------------------------------------------- feedback


def feedback_record(question: str, answer_text: str, citations, rating: str) -> dict[str, Any]:
    return {
        "question": question,
        "answer": answer_text,
        "citations": [{"n": c.n, "title": c.title, "section": c.section, "source": c.source} for c in citations],
        "rating": rating,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


_feedback_lock = threading.Lock()


def append_feedback(path: Path, record: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with _feedback_lock, path.open("a", encoding="utf-8") as f:
        f.write(line)


class _Replies:
    """Recent answers by (question, reply as shown), so a like can record the structured citations.
    Bounded; holds nothing the feedback record does not."""

    def __init__(self, size: int = 2048):
        self.size = size
        self._items: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(question: str, shown: str) -> tuple[str, str]:
        # Whitespace-insensitive: the chat component tidies indentation on the way to the browser.
        return " ".join(question.split()), " ".join(shown.split())

    def put(self, question: str, shown: str, answer) -> None:
        key = self._key(question, shown)
        with self._lock:
            self._items[key] = answer
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get(self, question: str, shown: str):
        with self._lock:
            return self._items.get(self._key(question, shown))


# --------------------------------------------------------------------------- the app


def theme():
    # System fonts only: nothing is fetched from a font service.
    return gr.themes.Default(
        primary_hue="blue",
        font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"],
    )


def launch_kwargs() -> dict[str, Any]:
    """What `launch()` needs besides host and port (theme and CSS moved there in Gradio 6)."""
    return {"theme": theme(), "css": CSS, "footer_links": ["api", "settings"], "share": False}


def build_app(assistant, settings: Settings) -> gr.Blocks:
    replies = _Replies()
    try:
        topics = list(assistant.index.topics())
    except Exception:  # the lookup still works without the topic list
        log.exception("could not list topics")
        topics = []

    def chat(message, history):
        question = message_text(message)
        try:
            answer = assistant.invoke({"question": question, "history": history_for_assistant(history)})
        except Exception:
            log.exception("the assistant failed")
            yield ERROR_TEXT
            return
        shown = ""
        try:
            for shown in stream_reply(answer):
                yield shown
        finally:
            if shown:
                replies.put(question, shown, answer)

    def on_like(history, data: gr.LikeData):
        if data.liked is True or data.liked == "Like":
            rating = "like"
        elif data.liked is False or data.liked == "Dislike":
            rating = "dislike"
        else:  # feedback withdrawn or an option we do not offer
            return
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        history = list(history or [])
        if not isinstance(index, int) or not (0 <= index < len(history)):
            return
        shown = message_text(history[index].get("content"))
        question = ""
        for m in reversed(history[:index]):
            if m.get("role") == "user":
                question = message_text(m.get("content"))
                break
        answer = replies.get(question, shown)
        if answer is not None:
            record = feedback_record(question, answer.answer, answer.citations, rating)
        else:  # e.g. an answer given before a restart: the text as shown, without the citation details
            record = feedback_record(question, plain_reply(shown), [], rating)
        try:
            append_feedback(settings.feedback_path, record)
        except OSError:
            log.exception("could not write feedback")
            gr.Warning("Sorry, your feedback could not be saved.")
            return
        gr.Info("Thank you for your feedback.")

    def lookup(query: str, audience: str = "any", topic: str = "any", k: float = 8) -> str:
        query = query or ""
        if not query.strip():
            return message_html(LOOKUP_EMPTY_TEXT)
        try:
            k = max(1, min(50, int(k or 8)))
        except (TypeError, ValueError):
            k = 8
        audience = None if audience in (None, "", "any") else audience
        topic = None if topic in (None, "", "any") else topic
        try:
            passages = assistant.lookup(query, k=k, audience=audience, topic=topic)
        except ValueError:
            return message_html(LOOKUP_EMPTY_TEXT)
        except Exception:
            log.exception("lookup failed")
            return message_html(LOOKUP_ERROR_TEXT)
        return lookup_html(passages, query)

    with gr.Blocks(title=APP_TITLE, analytics_enabled=False) as demo:
        gr.Markdown(f"# {APP_TITLE}")
        with gr.Tabs():
            with gr.Tab("Ask (patients)", id="chat"):
                chatbot = SafeChatbot(
                    elem_id="knee-chat",
                    height=520,
                    feedback_options=("Like", "Dislike"),
                    sanitize_html=True,
                    allow_tags=False,
                    render_markdown=True,
                    buttons=[],  # the per-message copy would copy the HTML source of a reply
                    placeholder="Ask a question about runner's knee (pain at the front of the knee).",
                    label="Chat",
                    show_label=False,
                )
                gr.ChatInterface(
                    chat,
                    chatbot=chatbot,
                    textbox=gr.Textbox(
                        placeholder="Type your question about runner's knee...", elem_id="knee-question", submit_btn=True
                    ),
                    examples=EXAMPLES,
                    run_examples_on_click=True,
                    cache_examples=False,
                    api_name="chat",
                    api_description="Ask the assistant; returns the reply as shown (Markdown with [n] markers and HTML sources).",
                    fill_height=False,
                    autofocus=False,
                )
                chatbot.like(on_like, [chatbot], None, api_visibility="undocumented")
                gr.Markdown(NOTE_MD, elem_classes=["knee-note"], elem_id="knee-note")
            with gr.Tab("Lookup (clinicians)", id="lookup"):
                gr.Markdown("Search the knowledge base. Passages are ranked best first; query words are highlighted.")
                with gr.Row():
                    query = gr.Textbox(label="Search", placeholder="e.g. hip strengthening", elem_id="knee-lookup-query", scale=3)
                    audience = gr.Dropdown(AUDIENCE_CHOICES, value="any", label="Audience", elem_id="knee-lookup-audience", scale=1)
                    topic = gr.Dropdown(["any", *topics], value="any", label="Topic", elem_id="knee-lookup-topic", scale=1)
                    k = gr.Slider(1, 20, value=8, step=1, label="Passages", elem_id="knee-lookup-k", scale=1)
                search = gr.Button("Search", variant="primary", elem_id="knee-lookup-button")
                results = gr.HTML(elem_id="knee-lookup-results", js_on_load=COPY_JS)
                gr.on(
                    [search.click, query.submit],
                    lookup,
                    [query, audience, topic, k],
                    results,
                    api_name="lookup",
                    api_description="Clinician lookup: ranked passages as HTML (query, audience, topic, k).",
                )
    return demo


# --------------------------------------------------------------------------- serve


def ensure_index(settings: Settings) -> int:
    """Build or refresh the index when it is missing or stale. 0 when there is an index to load."""
    from ingest.pipeline import Ingestor, stale_files
    from knee.store import Manifest

    stale = stale_files([settings.corpus_dir], settings)
    empty = not Manifest(settings.manifest_path).entries()
    if not stale and not empty:
        return 0
    what = "missing" if empty else f"out of date ({len(stale)} article(s) new or changed)"
    print(f"The knowledge index in {settings.db_dir} is {what}: building it from {settings.corpus_dir} ...", flush=True)
    report = Ingestor(settings).run([settings.corpus_dir], progress=True)
    print(report.summary(), flush=True)
    for error in report.errors:
        print(f"knee serve: {error}", file=sys.stderr, flush=True)
    return 0


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860) -> int:
    """Run the app until Ctrl-C (or SIGTERM). Returns an exit code."""
    from assistant.pipeline import load_assistant

    def _stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop) if threading.current_thread() is threading.main_thread() else None
    demo = None
    running = False
    try:
        ensure_index(settings)
        print("Loading the model and the knowledge index ...", flush=True)
        assistant = load_assistant(settings)
        demo = build_app(assistant, settings)
        demo.queue(default_concurrency_limit=2, max_size=64)
        try:
            demo.launch(
                server_name=host,
                server_port=port,
                prevent_thread_lock=True,
                quiet=True,
                show_error=False,
                inbrowser=False,
                **launch_kwargs(),
            )
        except OSError as exc:
            print(f"knee serve: cannot listen on {host}:{port}: {exc}", file=sys.stderr, flush=True)
            return 1
        running = True
        shown_host = "127.0.0.1" if host in ("", "0.0.0.0") else f"[{host}]" if ":" in host else host
        print(f"{APP_TITLE} is running at http://{shown_host}:{port}", flush=True)
        if shown_host != host:
            print(f"(listening on all interfaces: {host}:{port})", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nStopping ...", flush=True)
        if demo is not None:
            try:
                demo.close()
            except Exception:  # already closing
                pass
        print(f"{APP_TITLE} stopped.", flush=True)
        return 0 if running else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
