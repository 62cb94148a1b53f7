"""Typed boundary objects passed between the stages.

ingest -> `Chunk` -> store -> `Passage` -> compose -> `Answer` (with `Citation`s or an `Escalation`)

The metadata keys a chunk carries in Chroma are defined here once (`Chunk.metadata`,
`Passage.from_document`), so the writer and the reader of the store cannot drift apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Behavior = Literal["answer", "escalate", "refuse"]
Level = Literal["emergency", "urgent"]


@dataclass(frozen=True)
class Chunk:
    """One embedded unit of an article: a heading line plus whole sentences of one section."""

    key: str  # stable: "<doc_id>:<position>:<hash of text>"
    text: str  # what is embedded and shown as the passage: "Title > Section" line, blank line, body
    sentences: tuple[str, ...]  # the body's sentences, each a verbatim substring of `text`
    doc_id: str
    title: str
    section: str  # section path, " > " between levels; "" for the opening paragraph
    source: str  # path of the article (relative to the repository when inside it)
    audience: str
    topics: tuple[str, ...] = ()
    position: int = 0
    references: tuple[str, ...] = ()  # full citations of the sources this section's facts come from
    question: str | None = None  # set for an FAQ entry
    # The questions the section answers (its question index entries; on the section's first chunk).
    questions: tuple[str, ...] = ()

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "chunk_key": self.key,
            "doc_id": self.doc_id,
            "title": self.title,
            "section": self.section,
            "source": self.source,
            "audience": self.audience,
            "position": self.position,
        }
        # Chroma accepts no empty lists and no None values: such keys are left out.
        if self.topics:
            meta["topics"] = list(self.topics)
        if self.references:
            meta["references"] = list(self.references)
        if self.question:
            meta["question"] = self.question
        if self.questions:
            meta["questions"] = list(self.questions)
        return meta


@dataclass
class Passage:
    """A chunk as retrieval returns it, with how it was found."""

    id: str  # the store's id (the indexing API's content hash)
    key: str
    text: str
    doc_id: str
    title: str
    section: str
    source: str
    audience: str
    topics: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    question: str | None = None
    position: int = 0
    questions: tuple[str, ...] = ()  # the questions its section answers (shown in the lookup)
    score: float = 0.0  # fused score (reciprocal rank fusion)
    dense: float | None = None  # cosine similarity to the query, when the dense search found it
    lexical_rank: int | None = None  # rank in the BM25 list, when BM25 found it
    matched_question: str | None = None  # the indexed question of its section nearest the asked one
    question_score: float | None = None  # that question's cosine to the asked one

    @classmethod
    def from_document(cls, doc: Any) -> "Passage":
        m = doc.metadata or {}
        return cls(
            id=str(doc.id),
            key=str(m.get("chunk_key", doc.id)),
            text=doc.page_content,
            doc_id=str(m.get("doc_id", "")),
            title=str(m.get("title", "")),
            section=str(m.get("section", "")),
            source=str(m.get("source", "")),
            audience=str(m.get("audience", "both")),
            topics=tuple(m.get("topics") or ()),
            references=tuple(m.get("references") or ()),
            question=m.get("question"),
            position=int(m.get("position", 0)),
            questions=tuple(str(q) for q in (m.get("questions") or ())),
        )

    @property
    def section_label(self) -> str:
        return self.section or "Overview"

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "section": self.section_label,
            "source": self.source,
            "audience": self.audience,
            "topics": list(self.topics),
            "references": list(self.references),
            "questions": list(self.questions),
            "score": round(self.score, 6),
            "dense": None if self.dense is None else round(self.dense, 4),
            "text": self.text,
        }


@dataclass(frozen=True)
class Citation:
    n: int
    title: str
    section: str
    source: str
    text: str  # the cited passage, whole
    references: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["references"] = list(self.references)
        return d


@dataclass(frozen=True)
class Escalation:
    level: Level
    reason: str  # what in the message raised it, in plain words
    action: str  # what to do now
    rule: str  # id of the red-flag row (assistant/red_flags.yaml)
    source: str  # where the row and its level come from
    crisis: bool = False  # thoughts of suicide or self-harm: the crisis reply, before any other level
    triggers: tuple[str, ...] = ()  # the words of the conversation that raised it, as the user wrote them
    why: str = ""  # why it matters, in plain words
    note: str = ""  # e.g. "you mentioned a fever earlier", when an earlier turn completes the picture

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["triggers"] = list(self.triggers)
        return d


# Shown with every answer (in the app under the chat, after `knee ask`, and as "advice" in the
# JSON): the answer's way to a clinician. It is the product's own words, not a knowledge-base
# sentence, so it carries no citation; the composer adds the cited referral sentence only when the
# question asks when to see someone (issue 10: the same closing sentence under every answer hid
# the facts people asked for).
STANDING_ADVICE = (
    "General information from our runner's knee knowledge base, not a diagnosis. "
    "A physiotherapist or GP can examine your knee and advise you."
)


@dataclass
class Answer:
    question: str
    behavior: Behavior
    answer: str  # Markdown; every sentence of an "answer" carries [n] markers
    citations: list[Citation] = field(default_factory=list)
    escalation: Escalation | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    # Why the assistant refused or abstained ("out_of_scope", "medication", "prompt_injection",
    # "unrelated", "no_relevant_passage", "invalid_input", "not_english", "store_unavailable");
    # None for answers.
    refusal: str | None = None
    # A word about the answer itself, shown after it (not a sentence of the knowledge base): e.g.
    # which of several questions were answered.
    notice: str | None = None
    # The crisis screen's check-in (assistant/crisis_phrasings.yaml): shown above the answer when a
    # clause of the message was near a crisis phrasing, but not near enough for the crisis reply.
    check_in: str | None = None

    def to_json(self, id: Any = None) -> dict[str, Any]:
        """The `knee ask --json` / `--batch` record; other tools read exactly these keys."""
        record: dict[str, Any] = {}
        if id is not None:
            record["id"] = id
        record.update(
            {
                "question": self.question,
                "behavior": self.behavior,
                "escalation": self.escalation.to_json() if self.escalation else None,
                "answer": self.answer,
                "citations": [c.to_json() for c in self.citations],
                "refusal": self.refusal,
                "notice": self.notice,
                "check_in": self.check_in,
                "advice": STANDING_ADVICE,
                "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            }
        )
        return record
