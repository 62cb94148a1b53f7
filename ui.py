"""The web app: a patient chat and a clinician lookup, in Gradio.

This module holds no answer logic. It shows what the assistant returns:
- chat: `assistant.invoke({"question", "history"}) -> Answer`, streamed in, with an escalation banner
  on top (what to do now, and why: the user's words that raised it, highlighted), the answer's [n]
  markers and a numbered, expandable sources list below;
- lookup: `assistant.lookup(query, k, audience, topic) -> [Passage]`, ranked, query terms highlighted,
  each with a citation line to copy;
- like / dislike on an answer appends one JSON line to `settings.feedback_path` (locked across
  threads and processes).

Everything shown is HTML this module builds, with every piece of text escaped: the chat renders no
Markdown (`render_markdown=False`), so text from ingested documents, from the user, or from a client
that sends its own history can never become an element, a link or a request. The only markup is
the code's own: banners, bold headings of an escalation, [n] markers, the sources list.

Serving (measured, see SERVING below): the assistant's synchronous work runs in worker threads
behind a priority gate (red flags first), never on the event loop; the reply is streamed by an async
generator that sleeps without holding a thread; what a client sends is bounded before any work.

`knee serve` calls `serve(settings, host, port)`: it builds the index when it is missing or stale,
loads the model and the index once, and runs the app on the local address only (no share link).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import html
import itertools
import json
import logging
import math
import os
import re
import secrets
import signal
import sys
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import knee  # noqa: F401  (telemetry off before gradio is imported)
import anyio
import gradio as gr
from gradio.components.chatbot import ChatbotDataMessages, Message, TextMessage
from knee.config import ConfigError, Settings

try:  # POSIX: feedback appends are locked across processes too
    import fcntl
except ImportError:  # pragma: no cover - Windows: the in-process lock only
    fcntl = None

log = logging.getLogger("knee.ui")

# Gradio recomputes a pandas summary of up to 10,000 recorded events after every event (for a
# monitoring page this app does not enable): ~9 ms of server CPU a request after a few hundred
# events here (98 -> 89 ms), growing with the events kept. Read when a Blocks' queue is created.
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000000")
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")

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
CRISIS_LABEL = "Please get support now"

# --------------------------------------------------------------------------- serving parameters
#
# SERVING: how these numbers were chosen. Measured on the 2-core reference machine (shared: load
# average 3-6 from other work during the runs) with `make load` (evals/load.py; users asking back
# to back, 1 in 10 a red flag) and in-process timings; details in the README's "Serving" section.
# - assistant.invoke alone: ~32 ms of CPU a question, ~56 ms with 3 earlier user turns. 1, 2, 4 or
#   8 threads gave the same throughput (the GIL) and identical answers (thread-safe in practice; a
#   test compares). Under load, beside Gradio's own work, the server used ~100 ms of CPU an answer.
#   COMPUTE_SLOTS 1 vs 2: 8.6 vs 9.1 answers/s at 50 users (noise); 2 uses a second core when free.
# - The reply is streamed by an async generator: asyncio.sleep holds no thread, so a queue slot
#   costs an open stream, not a worker. The old 2 workers sleeping 0.8 s a reply gave 2.2 answers/s
#   and refused 14 of 80 simultaneous red flags; now 8.3 answers/s and none refused (same pipeline,
#   same machine). CONCURRENCY is above the largest burst measured (100 users, 80 red flags at
#   once), so nobody waits in Gradio's FIFO; Gradio also caps running events at launch's
#   `max_threads` (default 40: 11.8 vs 16.8 answers/s with 128). The CPU is then shared by
#   PriorityGate, red flags first (red-flag p95 at 50 users: 2.4 s vs 7.6 s for all). QUEUE_SIZE
#   bounds what waits beyond that (memory), generously.
# - STREAM_CHUNKS/STREAM_SECONDS: the first chunk (banner and first words) goes out as soon as the
#   answer is ready; 2 vs 4 chunks made no measurable difference (14.4 vs 14.1 answers/s), so 4
#   chunks over 0.3 s keep the typed-out feel (the old reveal: 12 chunks over 0.8 s).
COMPUTE_SLOTS = 2
CONCURRENCY = 128
QUEUE_SIZE = 1024
STREAM_CHUNKS = 4
STREAM_SECONDS = 0.3

# What a client may send, bounded before any work (a browser's chat never comes near these).
MAX_MESSAGE_CHARS = 4_000  # the message passed on (the assistant answers at most 2,000 and says so)
HISTORY_MESSAGES = 60  # chat messages kept from what a client sends (30 exchanges)
HISTORY_MESSAGE_CHARS = 40_000  # per message (a reply as shown, sources included, is ~2-15 k)
HISTORY_CHARS = 400_000  # all messages together, the most recent kept
ASSISTANT_TURNS = 6  # messages of the chat passed to the assistant (3 exchanges)
ASSISTANT_TURN_CHARS = 2_000  # each
SCREEN_CHARS = 400  # how much of a message the quick red-flag screen reads (to order the work)

# HTTP: the app needs no uploads at all; Gradio's upload route is kept but small and same-origin.
MAX_UPLOAD_BYTES = 1_000_000
MAX_BODY_BYTES = 16_000_000  # any request body (a 10 MB history is answered, bounded; beyond: 413)
TRIM_ABOVE_BYTES = 256_000  # JSON bodies above this are read and bounded before Gradio sees them
STOP_SECONDS = 4.0  # after Ctrl-C / SIGTERM the process is gone within this, whatever is in flight

CSS = """
.knee-banner { border-radius: 8px; padding: 10px 14px; margin: 0 0 10px 0; border: 2px solid; }
.knee-banner-title { font-weight: 700; font-size: 1.05em; letter-spacing: .02em; text-transform: uppercase; }
.knee-banner-action { margin-top: 4px; font-weight: 600; }
.knee-banner-why, .knee-banner-note { margin-top: 6px; font-size: .95em; }
.knee-banner-emergency { background: #b91c1c !important; border-color: #7f1d1d !important; color: #ffffff !important; }
.knee-banner-emergency * { color: #ffffff !important; }
.knee-banner-urgent { background: #fbbf24 !important; border-color: #b45309 !important; color: #1f1300 !important; }
.knee-banner-urgent * { color: #1f1300 !important; }
.knee-banner mark, .knee-banner-emergency mark, .knee-banner-urgent mark {
    background: #fef08a !important; color: #1f1300 !important; padding: 0 3px; border-radius: 3px; font-weight: 600; }
.knee-answer p { margin: 0 0 8px 0; }
.knee-ref { font-weight: 600; white-space: nowrap; }
.knee-checkin { border-radius: 8px; padding: 10px 14px; margin: 0 0 10px 0; border: 2px solid #1d4ed8; background: #eff6ff !important; color: #0b1b3f !important; }
.knee-checkin * { color: #0b1b3f !important; }
.knee-notice { margin-top: 6px; font-size: .92em; font-style: italic; color: var(--body-text-color-subdued); }
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
#
# Every function here returns HTML in which all text is escaped; the only elements are the ones
# written below. Nothing is interpreted as Markdown anywhere in the chat.


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


_MARKER = r"\[\d{1,3}\]"
_HEADING = re.compile(r"\*\*([^*\n]{1,80})\*\*\s*")


def inline_html(text: str, phrases=(), markers=()) -> str:
    """`text` escaped; each of `phrases` (the user's own words) wrapped in <mark>, and each [n]
    whose n is one of `markers` (the answer's citations) in a span. Matching runs on the raw text
    and every piece is escaped on its own, so nothing can match inside an entity or a tag."""
    wanted = sorted({p for p in phrases if isinstance(p, str) and p.strip()}, key=len, reverse=True)
    pattern = re.compile("|".join([re.escape(p) for p in wanted] + [_MARKER]))
    marks = set(wanted)
    out, last = [], 0
    for m in pattern.finditer(text):
        token = m.group(0)
        if token in marks:
            piece = f"<mark>{esc(token)}</mark>"
        elif token.startswith("[") and int(token[1:-1]) in markers:
            piece = f'<span class="knee-ref">{token}</span>'
        else:
            continue
        out.append(esc(text[last : m.start()]))
        out.append(piece)
        last = m.end()
    out.append(esc(text[last:]))
    return "".join(out).replace("\n", "<br>")


def text_html(text: str, markers=(), headings: bool = False, phrases=()) -> str:
    """Paragraphs of plain text as HTML. With `headings` (code-written replies only: escalations),
    a paragraph's leading **Heading** is shown bold; nowhere else is any Markdown interpreted."""
    out = []
    for para in re.split(r"\n\s*\n", text or ""):
        para = para.strip()
        if not para:
            continue
        head = ""
        m = _HEADING.match(para) if headings else None
        if m:
            head, para = f"<strong>{esc(m.group(1))}</strong> ", para[m.end() :]
        out.append(f"<p>{head}{inline_html(para, phrases, markers)}</p>")
    return "".join(out)


def _why_fallback(escalation) -> str:
    quoted = "; ".join(f"\u201c{t}\u201d" for t in escalation.triggers[:3])
    said = f" ({quoted})" if quoted else ""
    return f"you described {escalation.reason}{said}. {escalation.why}".strip()


def banner_html(escalation, why: str | None = None, markers=()) -> str:
    """The escalation banner: level, what to do now, why (the words of the user that raised it
    highlighted) and any note about earlier turns."""
    level = escalation.level if escalation.level in LEVEL_LABEL else "urgent"
    title = CRISIS_LABEL if getattr(escalation, "crisis", False) else LEVEL_LABEL[level]
    triggers = tuple(getattr(escalation, "triggers", ()) or ())
    why = _why_fallback(escalation) if why is None else why
    note = getattr(escalation, "note", "") or ""
    return (
        f'<div class="knee-banner knee-banner-{level}" role="alert">'
        f'<div class="knee-banner-title">{esc(title)}</div>'
        f'<div class="knee-banner-action">{esc(escalation.action)}</div>'
        + (f'<div class="knee-banner-why"><strong>Why:</strong> {inline_html(why, triggers, markers)}</div>' if why else "")
        + (f'<div class="knee-banner-note">{inline_html(note, triggers, markers)}</div>' if note else "")
        + "</div>"
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


def escalation_split(answer) -> tuple[str | None, str]:
    """(the "Why" paragraph's text, the rest of the reply) of an escalation: the paragraphs that
    repeat the action, the why and the note go to the banner."""
    e = answer.escalation
    why, rest = None, []
    for para in re.split(r"\n\s*\n", answer.answer or ""):
        para = para.strip()
        if not para:
            continue
        if e.action and e.action in para:
            continue
        if why is None and para.startswith("**Why:**"):
            why = para[len("**Why:**") :].strip()
            continue
        if e.note and para == e.note.strip():
            continue
        rest.append(para)
    return why, "\n\n".join(rest)


def answer_body(answer) -> str:
    """The answer's text; under an escalation banner, without what the banner shows."""
    if answer.escalation is not None:
        return escalation_split(answer)[1]
    return (answer.answer or "").strip()


def reply_parts(answer) -> tuple[str, str, str, frozenset, bool]:
    """(banner HTML, body text, sources HTML, citation numbers, whether the body is code-written)."""
    markers = frozenset(int(c.n) for c in answer.citations)
    banner = ""
    if answer.escalation is not None:
        why, _ = escalation_split(answer)
        banner = banner_html(answer.escalation, why, markers)
    check_in = getattr(answer, "check_in", None)
    if isinstance(check_in, str) and check_in.strip():
        # The crisis screen's check-in, above the answer (assistant/crisis_phrasings.yaml): a
        # calm box, not the red banner, since the answer follows it.
        banner += f'<div class="knee-checkin" role="note">{esc(check_in)}</div>'

    # Headings are shown bold only in replies the code writes (escalations); an answer's sentences
    # come from the knowledge base and are shown exactly as written.
    return banner, answer_body(answer), sources_html(answer.citations), markers, answer.behavior == "escalate"


def join_reply(banner: str, body_html: str, sources: str) -> str:
    body = f'<div class="knee-answer">{body_html}</div>' if body_html else ""
    return "".join(part for part in (banner, body, sources) if part)


_TOKENS = re.compile(r"\*\*[^*\n]{1,80}\*\*\s*|\S+\s*")


def stream_reply(answer, chunks: int = STREAM_CHUNKS) -> Iterator[str]:
    """The reply as growing HTML: the banner and the first words at once, then more of the answer,
    then all of it with its sources. At most `chunks` steps; a short reply, and an escalation (what
    to do now must not be typed out), come whole."""
    banner, body, sources, markers, headings = reply_parts(answer)
    tokens = _TOKENS.findall(body)
    steps = 1 if answer.escalation is not None else max(1, min(chunks, len(tokens) // 6 + 1))
    for i in range(1, steps):
        cut = math.ceil(len(tokens) * i / steps)
        yield join_reply(banner, text_html("".join(tokens[:cut]).rstrip(), markers, headings), "")
    notice = getattr(answer, "notice", None)  # e.g. "You asked several questions; I answered ..."
    notice_html = f'<div class="knee-notice">{esc(notice)}</div>' if isinstance(notice, str) and notice.strip() else ""
    yield join_reply(banner, text_html(body, markers, headings), notice_html + sources)


_ANSWER_DIV = re.compile(r'<div class="knee-answer">(.*?)</div>', re.S)


def plain_reply(content: str) -> str:
    """A reply as shown, back to its answer text (for the history passed to the assistant)."""
    content = content or ""
    m = _ANSWER_DIV.search(content)
    if m:
        body = m.group(1)
    elif "knee-banner" in content or "knee-sources" in content:
        body = ""
    else:
        body = content  # a plain message (the error text)
    body = re.sub(r"</p>\s*<p>", "\n\n", body)
    body = re.sub(r"<br\s*/?>", "\n", body)
    return html.unescape(re.sub(r"<[^>]*>", "", body)).strip()


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


# --------------------------------------------------------------------------- bounds


def bound_chat_payload(payload):
    """A chat as a client sent it, bounded before anything else reads it: the most recent
    HISTORY_MESSAGES text messages, each cut to HISTORY_MESSAGE_CHARS, HISTORY_CHARS in all.
    Files, components, options and metadata are dropped: this app sends none."""
    if payload is None or not isinstance(payload, ChatbotDataMessages):
        return payload
    kept: list[Message] = []
    total = 0
    for m in reversed(payload.root):
        if len(kept) >= HISTORY_MESSAGES or total >= HISTORY_CHARS:
            break
        if m.role not in ("user", "assistant"):
            continue
        text = "\n".join(c.text for c in m.content if isinstance(c, TextMessage))
        if not text:
            continue
        text = text[: min(HISTORY_MESSAGE_CHARS, HISTORY_CHARS - total)]
        total += len(text)
        kept.append(Message(role=m.role, content=[TextMessage(text=text)]))
    return ChatbotDataMessages(root=kept[::-1])


def history_for_assistant(history: Any) -> list[dict[str, str]]:
    """The last ASSISTANT_TURNS messages of the chat as {"role", "content"} text, each cut to
    ASSISTANT_TURN_CHARS; anything else in `history` is ignored."""
    if not isinstance(history, (list, tuple)):
        return []
    turns: list[dict[str, str]] = []
    for m in reversed(history):
        if len(turns) >= ASSISTANT_TURNS:
            break
        role = m.get("role") if isinstance(m, dict) else getattr(m, "role", None)
        content = m.get("content") if isinstance(m, dict) else getattr(m, "content", None)
        meta = (m.get("metadata") if isinstance(m, dict) else getattr(m, "metadata", None)) or {}
        if role not in ("user", "assistant") or (isinstance(meta, dict) and meta.get("title")):
            continue
        text = message_text(content)[:HISTORY_MESSAGE_CHARS]
        if role == "assistant":
            text = plain_reply(text)
        text = text[:ASSISTANT_TURN_CHARS]
        if text.strip():
            turns.append({"role": role, "content": text})
    return turns[::-1]


# --------------------------------------------------------------------------- user text as text

_ENTITY = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_UNENTITY = {v: k for k, v in _ENTITY.items()}


def shown_user_text(text: str) -> str:
    """What the user typed, as HTML that shows exactly that (the chat renders HTML, never Markdown):
    HTML characters become entities, newlines <br>. `typed_user_text` is its exact inverse."""
    return re.sub(r"[&<>]", lambda m: _ENTITY[m.group(0)], text).replace("\n", "<br>")


def typed_user_text(shown: str) -> str:
    text = shown.replace("<br>", "\n")
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
    """`gr.Chatbot` that bounds what a client sends (see `bound_chat_payload`) and shows user
    messages as plain text (see `shown_user_text`); the server side (the history the chat function
    gets) keeps the text exactly as typed."""

    is_template = True  # rendered by the frontend's ordinary Chatbot

    def preprocess(self, payload):
        return [_map_user_text(m, typed_user_text) for m in super().preprocess(bound_chat_payload(payload))]

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
    """Append one JSON line. Locked within the process (threads) and, with an OS-level lock on the
    file (flock), across processes: several `knee serve` behind a load balancer may share one
    feedback file and their lines never interleave. The line is written with one write() call."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    with _feedback_lock:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(data)
            while view:  # a short write (rare, e.g. a full disk half way) goes on where it stopped
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)  # closing releases the flock


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


# --------------------------------------------------------------------------- compute off the event loop

FIRST, NORMAL = 0, 1


class PriorityGate:
    """At most `slots` holders at a time; waiters are let in by (priority, arrival). Lives on one
    event loop (Gradio's): no locks needed."""

    def __init__(self, slots: int):
        self.slots = slots
        self.busy = 0
        self._waiting: list[tuple[int, int, asyncio.Future]] = []
        self._seq = itertools.count()

    @property
    def crowded(self) -> bool:
        return self.busy >= self.slots

    @contextlib.asynccontextmanager
    async def hold(self, priority: int = NORMAL):
        if self.busy < self.slots and not self._waiting:
            self.busy += 1
        else:
            future = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (priority, next(self._seq), future))
            try:
                await future  # the slot is handed over: `busy` already counts it
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._release()  # handed over, then cancelled: pass it on
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiting:
            _, _, future = heapq.heappop(self._waiting)
            if not future.done():  # skip waiters that gave up
                future.set_result(None)
                return
        self.busy -= 1


class Compute:
    """The assistant's synchronous CPU work, in worker threads (never on the event loop), at most
    COMPUTE_SLOTS at a time, red flags first: when the gate is crowded, a quick rules-only screen of
    the message (~2 ms, on the event loop) puts red flags and crises at the head of the line."""

    def __init__(self, assistant, slots: int = COMPUTE_SLOTS):
        self.assistant = assistant
        self.gate = PriorityGate(slots)
        self.threads = anyio.CapacityLimiter(slots)

    async def run(self, fn, *args, priority: int = NORMAL):
        async with self.gate.hold(priority):
            return await anyio.to_thread.run_sync(fn, *args, limiter=self.threads)

    def screen(self, question: str) -> bool:
        """True when the start of the message looks like a red flag to the triage's rules. Orders
        the work only: every message still gets the assistant's full triage, history included."""
        triage = getattr(self.assistant, "triage", None)
        if triage is None:
            return False
        try:
            return triage.check(question[:SCREEN_CHARS], []).escalation is not None
        except Exception:  # the screen is an optimisation; the assistant's own triage decides
            log.debug("red-flag screen failed", exc_info=True)
            return False

    async def answer(self, question: str, turns: list[dict[str, str]]):
        # Only when others are waiting: a thread hop would cost more than the screen itself.
        priority = FIRST if self.gate.crowded and self.screen(question) else NORMAL
        return await self.run(self.assistant.invoke, {"question": question, "history": turns}, priority=priority)


# --------------------------------------------------------------------------- HTTP hardening

_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_UPLOAD_PATH = re.compile(r"/upload/?$")


def content_security_policy(nonce: str | None = None) -> str:
    """Everything from this server only; scripts only the page's own (a per-response nonce on its
    inline scripts, and what they load: 'strict-dynamic'); 'unsafe-eval' because Gradio runs a
    component's js_on_load with Function(); no framing by any site."""
    scripts = f"'self' 'nonce-{nonce}' 'strict-dynamic' 'unsafe-eval'" if nonce else "'self'"
    return (
        "default-src 'self'; "
        f"script-src {scripts}; "
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; font-src 'self' data:; media-src 'self' data: blob:; "
        "connect-src 'self'; worker-src 'self' blob:; frame-src 'self'; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )


SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


def _cross_origin(headers) -> bool:
    """A browser request sent by a page of another origin (other scheme, host or port)."""
    origin = headers.get("origin")
    if origin is None:
        return False  # not sent by a browser page (gradio_client, curl) or a same-origin GET
    netloc = urlsplit(origin).netloc.lower() if origin != "null" else ""
    hosts = {h.strip().lower() for h in (headers.get("host", ""), headers.get("x-forwarded-host", "")) if h.strip()}
    return not netloc or netloc not in hosts


try:  # Gradio's own JSON library: a 10 MB body parses in a few ms on the event loop
    import orjson

    _json_loads, _json_dumps = orjson.loads, orjson.dumps
except ImportError:  # pragma: no cover
    _json_loads = json.loads

    def _json_dumps(obj: Any) -> bytes:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def _bound_text(value: Any, limit: int) -> tuple[Any, int]:
    """(value with every string in it cut to `limit`, characters kept): a message's content in any
    of Gradio's shapes (a string, a list of parts, a part)."""
    if isinstance(value, str):
        return value[:limit], min(len(value), limit)
    if isinstance(value, list):
        out, n = [], 0
        for v in value[:8]:  # a message has one or two parts
            v, k = _bound_text(v, limit)
            out.append(v)
            n += k
        return out, n
    if isinstance(value, dict):
        out, n = {}, 0
        for k, v in list(value.items())[:16]:
            out[k], m = _bound_text(v, limit)
            n += m
        return out, n
    return value, 0


def bound_request_data(payload: Any) -> bool:
    """Bound, in place, the inputs of a Gradio request as a client sent them (`{"data": [...]}`):
    a chat (a list of {"role", ...} messages) to its most recent HISTORY_MESSAGES messages of at
    most HISTORY_MESSAGE_CHARS each and HISTORY_CHARS in all; any other string to
    HISTORY_MESSAGE_CHARS. True when something was cut. Runs before Gradio reads the body, so a
    10 MB chat costs what a normal one does."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        return False
    changed = False
    for i, item in enumerate(data):
        if isinstance(item, str) and len(item) > HISTORY_MESSAGE_CHARS:
            data[i], changed = item[:HISTORY_MESSAGE_CHARS], True
        elif isinstance(item, list) and item and all(isinstance(m, dict) and "role" in m for m in item[-3:]):
            kept, total = [], 0
            for m in reversed(item):
                if len(kept) >= HISTORY_MESSAGES or total >= HISTORY_CHARS:
                    break
                if not isinstance(m, dict):
                    continue
                content, n = _bound_text(m.get("content"), min(HISTORY_MESSAGE_CHARS, HISTORY_CHARS - total))
                total += n
                kept.append({k: v for k, v in {**m, "content": content}.items() if k in ("role", "content", "metadata", "options")})
            kept.reverse()
            if len(kept) != len(item) or total >= HISTORY_CHARS or kept != item:
                data[i], changed = kept, True
    return changed


class GuardMiddleware:
    """ASGI middleware in front of Gradio: security headers on every response (a nonce for the
    page's inline scripts), no state-changing request from another origin (403), request bodies
    bounded (413: uploads to MAX_UPLOAD_BYTES, anything else to MAX_BODY_BYTES), and a large JSON
    request's chat and strings cut to what the app reads (`bound_request_data`) before Gradio
    parses, validates and copies it."""

    def __init__(self, app, max_upload: int = MAX_UPLOAD_BYTES, max_body: int = MAX_BODY_BYTES):
        self.app = app
        self.max_upload = max_upload
        self.max_body = max_body

    async def _refuse(self, send, status: int, text: str) -> None:
        headers = [(k.encode(), v.encode()) for k, v in {**SECURITY_HEADERS, "content-security-policy": content_security_policy()}.items()]
        body = text.encode()
        headers += [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.datastructures import Headers, MutableHeaders

        headers = Headers(scope=scope)
        method = scope.get("method", "GET").upper()
        upload = bool(_UPLOAD_PATH.search(scope.get("path", "")))
        if method not in _SAFE_METHODS and _cross_origin(headers):
            await self._refuse(send, 403, "Cross-origin requests are not accepted.")
            return
        limit = self.max_upload if upload else self.max_body
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self._refuse(send, 413, f"Request body too large (at most {limit:,} bytes).")
            return
        big_json = (length is not None and int(length) > TRIM_ABOVE_BYTES and not upload
                    and "json" in headers.get("content-type", ""))
        if method in _BODY_METHODS and (length is None or big_json):
            # Read here (a body without a length is counted as it comes), then hand it on.
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > limit:
                    await self._refuse(send, 413, f"Request body too large (at most {limit:,} bytes).")
                    return
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            if big_json:
                try:
                    payload = _json_loads(body)
                    if bound_request_data(payload):
                        body = _json_dumps(payload)
                except (ValueError, TypeError, RecursionError):
                    pass  # not ours to judge: Gradio answers a bad body itself
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"]
                                          if k.lower() not in (b"content-length", b"transfer-encoding")]
                     + [(b"content-length", str(len(body)).encode())]}
            replay = [{"type": "http.request", "body": body, "more_body": False}]

            async def receive_once():
                return replay.pop() if replay else await receive()

            receive = receive_once

        nonce = ""  # made for a page only (os.urandom is slow on some VMs: ~0.7 ms here)
        page: dict[str, Any] = {}

        async def send_with_headers(message):
            nonlocal nonce
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for k, v in SECURITY_HEADERS.items():
                    out[k] = v
                is_page = out.get("content-type", "").startswith("text/html")
                nonce = secrets.token_urlsafe(18) if is_page else ""
                out["content-security-policy"] = content_security_policy(nonce or None)
                if is_page:  # hold the page back to put the nonce on its inline scripts
                    page["start"], page["body"] = message, []
                    return
                await send(message)
            elif message["type"] == "http.response.body" and "start" in page:
                page["body"].append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = re.sub(rb"<script(?=[\s>])", b'<script nonce="' + nonce.encode() + b'"', b"".join(page["body"]))
                start = page.pop("start")
                MutableHeaders(scope=start)["content-length"] = str(len(body))
                await send(start)
                await send({"type": "http.response.body", "body": body})
            else:
                await send(message)

        await self.app(scope, receive, send_with_headers)


def auth_from_env(environ: dict[str, str] | None = None) -> tuple[str, str] | None:
    """Login for deployments that are not public: KNEE_AUTH_USER and KNEE_AUTH_PASSWORD, both or
    neither (there is no default password)."""
    environ = os.environ if environ is None else environ
    user, password = environ.get("KNEE_AUTH_USER", ""), environ.get("KNEE_AUTH_PASSWORD", "")
    if not user and not password:
        return None
    if not user or not password:
        raise ConfigError("set both KNEE_AUTH_USER and KNEE_AUTH_PASSWORD to require a login, or neither")
    return user, password


# --------------------------------------------------------------------------- the app


def theme():
    # System fonts only: nothing is fetched from a font service.
    return gr.themes.Default(
        primary_hue="blue",
        font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"],
    )


def launch_kwargs(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """What `launch()` needs besides host and port: theme and CSS (moved there in Gradio 6), the
    HTTP guard, the upload limit, CORS kept strict, and a login when the environment asks for one."""
    from starlette.middleware import Middleware

    kwargs: dict[str, Any] = {
        "theme": theme(),
        "css": CSS,
        "footer_links": ["api", "settings"],
        "share": False,
        "max_file_size": MAX_UPLOAD_BYTES,
        # Gradio runs at most `max_threads` events at once across all functions (default 40),
        # whatever the queue's concurrency; raised to it so the measured concurrency holds.
        "max_threads": CONCURRENCY,
        "strict_cors": True,
        "ssr_mode": False,
        "mcp_server": False,
        "app_kwargs": {"middleware": [Middleware(GuardMiddleware)]},  # a new dict each time: Gradio adds to it
    }
    auth = auth_from_env(environ)
    if auth is not None:
        kwargs["auth"] = auth
        kwargs["auth_message"] = f"{APP_TITLE}: please log in."
    return kwargs


def configure_queue(demo: gr.Blocks) -> gr.Blocks:
    """The queue as measured (see SERVING at the top of this module)."""
    return demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)


def build_app(assistant, settings: Settings) -> gr.Blocks:
    replies = _Replies()
    compute = Compute(assistant)
    try:
        topics = list(assistant.index.topics())
    except Exception:  # the lookup still works without the topic list
        log.exception("could not list topics")
        topics = []

    async def chat(message, history):
        question = message_text(message)[:MAX_MESSAGE_CHARS]
        turns = history_for_assistant(history)
        try:
            answer = await compute.answer(question, turns)
        except Exception:
            log.exception("the assistant failed")
            yield ERROR_TEXT
            return
        shown = ""
        try:
            for i, shown in enumerate(stream_reply(answer)):
                if i:
                    await asyncio.sleep(STREAM_SECONDS / max(1, STREAM_CHUNKS - 1))
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
            record = feedback_record(question[:ASSISTANT_TURN_CHARS], plain_reply(shown)[:ASSISTANT_TURN_CHARS], [], rating)
        try:
            append_feedback(settings.feedback_path, record)
        except OSError:
            log.exception("could not write feedback")
            gr.Warning("Sorry, your feedback could not be saved.")
            return
        gr.Info("Thank you for your feedback.")

    async def lookup(query: str, audience: str = "any", topic: str = "any", k: float = 8) -> str:
        query = (query if isinstance(query, str) else "")[:MAX_MESSAGE_CHARS]
        if not query.strip():
            return message_html(LOOKUP_EMPTY_TEXT)
        try:
            k = max(1, min(50, int(k or 8)))
        except (TypeError, ValueError):
            k = 8
        audience = None if audience in (None, "", "any") else audience
        topic = None if topic in (None, "", "any") else topic
        try:
            passages = await compute.run(lambda: assistant.lookup(query, k=k, audience=audience, topic=topic))
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
                    sanitize_html=True,  # a second line of defence: our HTML has nothing it removes
                    allow_tags=False,
                    render_markdown=False,  # replies are HTML built here, every text escaped
                    latex_delimiters=[],  # no "$$...$$" from a source rendered as LaTeX
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
                    api_description="Ask the assistant; returns the reply as shown (HTML: banner, answer with [n] markers, sources).",
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


def warm_up() -> None:
    """Pay one-off costs at start, not on the first user's request: Gradio switches matplotlib's
    backend around every direct (unqueued) event, and the first import of matplotlib took 1.5 s
    here, on the event loop, holding every other request. `serve` runs it in a thread as soon as
    it listens (ready 1 s sooner)."""
    with contextlib.suppress(Exception):
        import matplotlib

        matplotlib.get_backend()


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _exit_now(code: int) -> None:
    """The last resort of a stop: whatever still runs (a stream, a thread the interpreter would
    wait for), the process ends now, with `code`, and never in the middle of a feedback line."""
    _feedback_lock.acquire(timeout=1.0)
    _flush()
    os._exit(code)


def _close(demo: gr.Blocks, seconds: float) -> bool:
    """demo.close() within `seconds` (it waits for open connections); True when it finished."""
    closer = threading.Thread(target=lambda: demo.close(verbose=False), name="knee-close", daemon=True)
    closer.start()
    closer.join(seconds)
    return not closer.is_alive()


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860) -> int:
    """Run the app until Ctrl-C (SIGINT) or SIGTERM. From the main thread (`knee serve`), a stop
    ends the process with exit code 0 (130 when it was still starting), however many requests are
    in flight or queued, within STOP_SECONDS; elsewhere it returns the code."""
    from assistant.pipeline import load_assistant

    main = threading.current_thread() is threading.main_thread()

    def _stop(signum, frame):
        # One stop is enough: a second Ctrl-C while stopping changes nothing.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    demo = None
    running = stopping = False
    try:
        kwargs = launch_kwargs()  # a bad login setting stops us before anything is loaded
        ensure_index(settings)
        print("Loading the model and the knowledge index ...", flush=True)
        assistant = load_assistant(settings)
        assistant.triage  # noqa: B018  (the red-flag table loads before we listen, not on a first message)
        demo = build_app(assistant, settings)
        configure_queue(demo)
        try:
            demo.launch(
                server_name=host,
                server_port=port,
                prevent_thread_lock=True,
                quiet=True,
                show_error=False,
                inbrowser=False,
                **kwargs,
            )
        except OSError as exc:
            print(f"knee serve: cannot listen on {host}:{port}: {exc}", file=sys.stderr, flush=True)
            return 1
        running = True
        # Matplotlib's import (0.6 s) while the server already answers: a person's first request
        # comes seconds later, after the page has loaded, and would wait for it only at the import lock.
        threading.Thread(target=warm_up, name="knee-warm-up", daemon=True).start()
        with contextlib.suppress(AttributeError):
            # uvicorn otherwise waits for every open connection (a reply stream) before it stops.
            demo.server.config.timeout_graceful_shutdown = 0.5
        shown_host = "127.0.0.1" if host in ("", "0.0.0.0") else f"[{host}]" if ":" in host else host
        print(f"{APP_TITLE} is running at http://{shown_host}:{port}", flush=True)
        if shown_host != host:
            print(f"(listening on all interfaces: {host}:{port})", flush=True)
        if "auth" in kwargs:
            print("Login required (KNEE_AUTH_USER / KNEE_AUTH_PASSWORD).", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        stopping = True  # the signals stay ignored until the process is gone
        code = 0 if running else 130
        started = time.monotonic()
        print("\nStopping ...", flush=True)
        # Requests cut short by the stop are not errors worth a traceback on the way out.
        for name in ("uvicorn.error", "uvicorn", "gradio"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        if main:
            # Whatever hangs below (open streams, threads the interpreter joins at exit), the
            # process is gone STOP_SECONDS after the signal, with this exit code.
            deadline = threading.Timer(STOP_SECONDS, _exit_now, args=(code,))
            deadline.daemon = True  # it must not itself keep the process alive
            deadline.start()
        if demo is not None:
            _close(demo, max(0.5, STOP_SECONDS - 2.0 - (time.monotonic() - started)))
        print(f"{APP_TITLE} stopped.", flush=True)
        if main:
            # Leave now: the interpreter's own teardown waited ~2 s here for worker threads still
            # finishing a computation, and nothing of ours needs it (feedback lines are written
            # whole, under the lock _exit_now takes; the store is only read).
            _exit_now(code)
        return code
    finally:
        if not stopping:
            for s, handler in previous.items():
                with contextlib.suppress(Exception):
                    signal.signal(s, handler)
