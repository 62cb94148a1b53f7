"""The assistant: {question, history} -> `Answer`, as a LangChain Runnable.

message -> check input -> safety triage -> (escalate | refuse) or resolve follow-up -> retrieve
-> compose (or abstain). Each text is embedded once per question (`VectorCache`): the learned
red-flag detector, retrieval, the FAQ match and sentence ranking share the vectors.
"""

from __future__ import annotations

import re
import time
import unicodedata
from typing import Any

import numpy as np
from langchain_core.runnables import Runnable, RunnableConfig

from assistant.compose import ABSTAIN_TEXT, Composer
from assistant.retrieve import HybridRetriever, KnowledgeIndex
from assistant.scope import REFUSALS
from assistant.triage import Triage, escalation_markdown
from knee.config import Settings
from knee.encoder import get_encoder
from knee.models import Answer, Citation
from knee.store import StoreError, open_store

EMPTY_TEXT = "Please type a question about runner's knee, for example: \"Which exercises help runner's knee?\""
UNREADABLE_TEXT = (
    "I couldn't read that message. Please type your question in words, for example: "
    "\"How much pain is OK when running?\""
)
TOO_LONG_TEXT = (
    "Your message is too long for me to answer well ({n:,} characters). Please ask one question at a time, "
    "in under {limit:,} characters. If you have any worrying symptoms, such as a knee that is hot and swollen "
    "with a fever, or you cannot put weight on your leg, see a doctor."
)
NOT_ENGLISH_TEXT = (
    "I'm sorry, I can only answer in English, because my knowledge base is written in English. "
    "If this is an emergency, call your local emergency number (112 in Europe, 999 in the UK, 911 in the US)."
)
STORE_DOWN_TEXT = (
    "Sorry, I can't reach my knowledge base right now, so I can't answer. Please try again in a moment. "
    "If you are worried about your knee, contact a physiotherapist or your GP."
)

# Follow-ups lean on an earlier turn: "how many reps of those?", "and for the calves?".
_FOLLOW_UP = re.compile(
    r"\b(?:those|these|them|that|this|it|its|they|their|ones?|the same|such|above|what about|how about|and for|also)\b"
    r"|^(?:and|or|but|so|also|what about|how about|why|how (?:many|often|long|much))\b",
    re.I,
)
_MARKUP = re.compile(r"<\s*/?\s*[a-zA-Z][^>]*>|[{};=]{1}\s*\w*\s*[{};=(]")
_ENGLISH = re.compile(
    r"\b(?:the|a|an|is|are|my|i|it|to|of|and|in|what|how|when|why|can|do|does|should|knee|run|running|pain|you|for|with|on)\b", re.I
)


def clean_message(text: Any) -> tuple[str | None, str | None]:
    """(cleaned text, refusal key) for raw user input of any kind."""
    if text is None:
        return None, "empty"
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        text = str(text)
    # Control characters and replacement characters are junk; keep ordinary whitespace.
    cleaned = "".join(
        ch if ch in "\n\t" or (unicodedata.category(ch)[0] != "C" and ch != "\ufffd") else " " for ch in text
    )
    cleaned = re.sub(r"[ \t]+", " ", cleaned).strip()
    if not cleaned:
        return None, "empty"
    letters = sum(ch.isalpha() for ch in cleaned)
    if letters < 2 or letters < 0.3 * len(cleaned.replace(" ", "")):
        return None, "unreadable"
    return cleaned, None


def looks_english(text: str) -> bool:
    sample = text[:2000]
    latin = sum(ch.isascii() and ch.isalpha() for ch in sample)
    letters = max(sum(ch.isalpha() for ch in sample), 1)
    if latin / letters < 0.6:
        return False
    words = re.findall(r"[a-zA-Z']+", sample)
    if len(words) <= 3:
        return True  # too short to judge: "knee pain?" is English enough
    return len(_ENGLISH.findall(sample)) / len(words) >= 0.12


def user_turns(history: Any) -> list[str]:
    turns = []
    for item in history or []:
        if isinstance(item, dict):
            role, content = item.get("role"), item.get("content")
        elif isinstance(item, (list, tuple)) and len(item) == 2:  # (user, assistant) pairs
            role, content = "user", item[0]
        else:
            role, content = getattr(item, "role", None), getattr(item, "content", None)
        if role == "user" and isinstance(content, str) and content.strip():
            turns.append(content.strip())
    return turns


# A stretch of a message that says what is NOT the case ("no swelling", "never injured it",
# "I'm not limping") describes nothing to look up: left in, its words pull in exactly the passages
# the user ruled out (injuries, limps). Stretches end at punctuation, a dash or a contrast word.
_STRETCH_END = re.compile(r"[,;.!?\n]|\s[-\u2013\u2014]\s|\b(?:but|just|only|so|and(?= i\b))\b", re.I)
_NEGATED_START = re.compile(
    r"^\s*(?:no|not|never|without|nothing|none|neither|nor|isn't|aren't|wasn't|don't|doesn't|didn't|haven't|hasn't"
    r"|(?:i|it|he|she|there)(?:'s| is| was| am|'m)? (?:not|never|no)|(?:i|he|she|it) (?:don't|doesn't|didn't|can't|haven't|hasn't)"
    r"|(?:i|he|she|it) (?:have|has|had) (?:no|not|never)|(?:my|his|her|the) \w+ (?:isn't|is not|wasn't|doesn't|hasn't|has not|never))\b",
    re.I,
)


def without_negated(text: str) -> str:
    """The message less the stretches that deny something; the message itself if little is left."""
    kept, start, dropped = [], 0, False
    for m in list(_STRETCH_END.finditer(text)) + [None]:
        end = m.start() if m else len(text)
        stretch = text[start:end]
        if stretch.strip():
            if _NEGATED_START.match(stretch):
                dropped = True
            else:
                kept.append(stretch.strip())
        if m:
            start = m.end()
    rest = " ".join(kept)
    return rest if dropped and len(re.findall(r"[a-zA-Z']+", rest)) >= 3 else text


def resolve_follow_up(question: str, earlier: list[str], turns: int) -> str:
    """The retrieval query: the question, with the earlier user turns it leans on."""
    if not earlier:
        return question
    content_words = [w for w in re.findall(r"[a-zA-Z']+", question) if len(w) > 3]
    if _FOLLOW_UP.search(question) or len(content_words) <= 3:
        return " ".join(earlier[-turns:] + [question])
    return question


class VectorCache:
    """The embeddings of one question's texts: each text is embedded once, in one batch per call."""

    def __init__(self, embed):
        self.embed = embed
        self.vectors: dict[str, np.ndarray] = {}

    def many(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        if missing:
            for t, v in zip(missing, self.embed(missing)):
                self.vectors[t] = v
        return np.asarray([self.vectors[t] for t in texts], dtype=np.float32).reshape(len(texts), -1)

    def one(self, text: str) -> np.ndarray:
        return self.many([text])[0]


class Assistant(Runnable[dict, Answer]):
    """Runnable: `invoke({"question": str, "history": [{"role", "content"}, ...]}) -> Answer`."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = open_store(settings, create=False)
        self.index = KnowledgeIndex(self.store, settings)
        # Questions are embedded with the NumPy port of the model (knee.encoder): the same vectors
        # as the sentence-transformers model that embedded the knowledge base, without its imports.
        self.embeddings = self.store.embeddings  # the LangChain embeddings of the store (ingest side)
        self.encoder = get_encoder(settings.model_path)
        self._embed = self.encoder.encode
        self.retriever = HybridRetriever(index=self.index, embed_query=self.embed_one, settings=settings)
        self.triage = Triage(model_path=settings.model_path, extra_words=self.index.vocabulary)
        self.composer = Composer(self.index, settings)
        self.embed_one("warm up")  # the first encode pays one-off costs; do it at start, not on a user

    def embed_one(self, text: str) -> np.ndarray:
        return self._embed([text])[0]

    # -- Runnable -------------------------------------------------------------------------

    def invoke(self, input: dict | str, config: RunnableConfig | None = None, **kwargs: Any) -> Answer:
        if isinstance(input, dict):
            return self.answer(input.get("question"), input.get("history"))
        return self.answer(input, None)

    # -- the pipeline ---------------------------------------------------------------------

    def answer(self, question: Any, history: Any = None) -> Answer:
        started = time.perf_counter()
        timings: dict[str, float] = {}
        text, problem = clean_message(question)
        shown = text if text is not None else (question if isinstance(question, str) else "")
        if problem:
            return self._finish(Answer(shown[:500], "refuse", EMPTY_TEXT if problem == "empty" else UNREADABLE_TEXT, refusal="invalid_input"), started, timings)

        earlier = user_turns(history)
        too_long = len(text) > self.settings.max_question_chars

        # Safety first, on the whole message however long, and on the earlier turns.
        t0 = time.perf_counter()
        head = text[: self.settings.max_question_chars]
        asked = without_negated(head)
        vectors = VectorCache(self._embed)
        verdict = self.triage.check(text, earlier, embed=vectors.many)
        timings["triage"] = (time.perf_counter() - t0) * 1000

        if verdict.escalation:
            esc = verdict.escalation
            citations = self._escalation_citation(esc)
            md = escalation_markdown(esc, f" [{citations[0].n}]" if citations else "")
            return self._finish(Answer(text[:2000], "escalate", md, citations, esc), started, timings)
        t1 = time.perf_counter()
        q_vec = vectors.one(asked)
        timings["embed"] = (time.perf_counter() - t1) * 1000
        if too_long:
            msg = TOO_LONG_TEXT.format(n=len(text), limit=self.settings.max_question_chars)
            return self._finish(Answer(text[:2000], "refuse", msg, refusal="invalid_input"), started, timings)
        if not looks_english(text):
            # Markup or code with no words of a question in it is unreadable, not another language.
            if _MARKUP.search(text) and not _ENGLISH.search(_MARKUP.sub(" ", text)):
                return self._finish(Answer(text, "refuse", UNREADABLE_TEXT, refusal="invalid_input"), started, timings)
            return self._finish(Answer(text, "refuse", NOT_ENGLISH_TEXT, refusal="not_english"), started, timings)
        if verdict.refusal:
            return self._finish(Answer(text, "refuse", REFUSALS[verdict.refusal], refusal=verdict.refusal), started, timings)

        query = resolve_follow_up(asked, earlier, self.settings.history_turns)
        compose_vec = q_vec
        if query != asked:
            # Search and rank with the blend of the question and the question with its earlier
            # turns, so that "how many reps of those?" finds reps among the exercise passages.
            t2 = time.perf_counter()
            blend = q_vec + self.embed_one(query)
            compose_vec = q_vec = blend / np.linalg.norm(blend)
            timings["embed"] += (time.perf_counter() - t2) * 1000
        t3 = time.perf_counter()
        try:
            passages = self.retriever.search(query, query_vector=q_vec, timings=timings)
        except Exception:
            return self._finish(Answer(text, "refuse", STORE_DOWN_TEXT, refusal="store_unavailable"), started, timings)
        timings["retrieve"] = (time.perf_counter() - t3) * 1000
        t4 = time.perf_counter()
        composed = self.composer.compose(asked, compose_vec, passages, topic_text=f"{query} {text}")
        timings["compose"] = (time.perf_counter() - t4) * 1000
        if composed is None:
            return self._finish(Answer(text, "refuse", ABSTAIN_TEXT, refusal="no_relevant_passage"), started, timings)
        md, citations = composed
        return self._finish(Answer(text, "answer", md, citations), started, timings)

    def _escalation_citation(self, escalation) -> list[Citation]:
        """The knowledge base's passage on this red flag: the section the row names, or failing
        that (a corpus of one's own), the nearest red-flag passage."""
        row = self.triage.table.row(escalation.rule)
        p = self.index.find_section(row.kb_section) if row.kb_section else None
        if p is None:
            try:
                hits = self.retriever.search(escalation.reason, k=1, topic="red-flags")
            except Exception:
                hits = []
            p = hits[0] if hits else None
        if p is None:
            return []
        return [Citation(n=1, title=p.title, section=p.section_label, source=p.source, text=p.text, references=p.references)]

    @staticmethod
    def _finish(answer: Answer, started: float, timings: dict[str, float]) -> Answer:
        timings["total"] = (time.perf_counter() - started) * 1000
        answer.timings_ms = {"total": timings.pop("total"), **timings}
        return answer

    # -- lookup ---------------------------------------------------------------------------

    def lookup(self, query: str, k: int = 8, audience: str | None = None, topic: str | None = None):
        text, problem = clean_message(query)
        if problem:
            raise ValueError("type a few words to search for")
        return self.retriever.search(text[: self.settings.max_question_chars], k=k, audience=audience, topic=topic)


def load_assistant(settings: Settings) -> Assistant:
    try:
        return Assistant(settings)
    except StoreError:
        raise
    except Exception as exc:  # the store opened but could not be read
        raise StoreError(f"cannot load the index: {exc}") from exc
