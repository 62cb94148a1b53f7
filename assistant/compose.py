"""The composer: retrieved passages -> a short answer in which every sentence is a cited source sentence.

Extractive, no LLM: it ranks the sentences of the retrieved passages against the question (sentence
vectors were embedded at ingest; only the question is embedded now), picks the most direct one
first, adds others that are relevant but not redundant (maximal marginal relevance), and cites each.
Sentences are quoted verbatim, so every claim in an answer is a claim of the knowledge base.
When no sentence is relevant enough it abstains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from assistant.retrieve import KnowledgeIndex, expand_query, tokenize
from knee.config import Settings
from knee.models import Citation, Passage

# A sentence that opens with one of these leans on the sentence before it.
_DANGLING = re.compile(r"^(?:this|that|these|those|it|they|them|such|both|also|however|but|so|then)\b", re.I)
_CLINICIAN = re.compile(r"\b(?:physiotherapists?|physios?|doctors?|gp|clinicians?|emergency department|a&e|urgent care|nhs 111)\b", re.I)
REFERRAL_SECTION = "When to see a physiotherapist or GP"
# Words of the knee's world. A question without any ("is creatine good for sprinters?") must be
# closer to a sentence before it is answered: the corpus says general things about running and
# strength that sound relevant to many questions it does not cover.
_ON_TOPIC = re.compile(
    r"\b(?:knee|kneecap|knee ?cap|patell\w*|pfp|pfps|quad\w*|glute\w*|hips?|calf|calves|thigh|hamstrings?|pain\w*|hurt\w*|ach\w*"
    r"|sore\w*|injur\w*|stairs|squat\w*|lunge\w*|cadence|step rate|stride|insoles?|orthos[ei]s|orthotics?|tap(?:e|ing)|brac(?:e|es|ing)"
    r"|foam|physio\w*|mri|x-?rays?|scans?|surgery|arthroscop\w*|exercis\w*|strength\w*|reps?|sets|consensus|ottawa|itb|iliotibial"
    r"|tendon\w*|menisc\w*|osgood|clicks?|grind\w*|swell\w*|red flags?|warning signs?|downhill|hills?|return to running|runner'?s knee"
    r"|recover\w*|heal\w*|go away|gets? better|prognosis|hill\w*|comeback|return[- ]to[- ]run\w*|back to running|(?:stop|stopping|keep|keeping|carry on|quit|quitting|rest from|break from) running|walk[- ]run|run[- ]walk)\b",
    re.I,
)

# A sentence that introduces a list ("... if any one of the following five findings is present.",
# "The TREK rule has three parts.") says nothing alone: its items follow it into the answer.
_LIST_LEAD = re.compile(
    r"(?:\bthe following\b[^.]*|\b(?:has|have|are|include|includes) (?:two|three|four|five|six|\d) (?:parts|steps|stages|phases|criteria|rules|signs|findings)\b[^.]*)[.:]?$"
    r"|:$",
    re.I,
)
GENERIC_PENALTY = 0.5
LIST_LEAD_MARGIN = 0.05  # a list is given whole only when its lead is clearly the best answer
OVERLAP_WEIGHT = 0.12  # the share of the question's words a sentence has, as a bonus
# Sentences of the passage the best sentence came from continue its answer more often than
# sentences elsewhere that merely sound alike.
SAME_PASSAGE_BONUS = 0.15
MMR_WEIGHT = 0.5
# Above this cosine to a sentence already chosen, a sentence says again what is said. (List-like
# sentences on one subject sit near 0.8 and still carry different facts.)
REDUNDANT = 0.85
ABSTAIN_TEXT = (
    "I'm sorry, my knowledge base does not cover that, so I can't give you a reliable answer. "
    "I can only answer questions about runner's knee (pain around or behind the kneecap). "
    "A physiotherapist or your GP can assess your knee and answer questions like this one."
)


@dataclass
class Candidate:
    passage_rank: int
    sentence_idx: int
    text: str
    vector: np.ndarray
    relevance: float  # cosine to the question
    score: float  # relevance plus small bonuses


class Composer:
    def __init__(self, index: KnowledgeIndex, settings: Settings):
        self.index = index
        self.settings = settings
        self.referral = index.find_section(REFERRAL_SECTION)

    def candidates(self, question: str, q: np.ndarray, passages: list[Passage]) -> list[Candidate]:
        q_terms = set(tokenize(expand_query(question)))
        # Words weighted by their rarity in the corpus: sharing "arthritis" with the question
        # says far more than sharing "knee".
        idf = self.index.bm25.vectorizer.idf
        q_weight = {t: idf.get(t, 0.0) for t in q_terms}
        q_total = sum(q_weight.values()) or 1.0
        out = []
        seen: set[str] = set()
        for rank, p in enumerate(passages):
            bank = self.index.sentences.get(p.key)
            if bank is None or not len(bank.texts):
                continue
            rel = bank.vectors @ q
            generic = bank.generic if bank.generic is not None else np.zeros(len(rel))
            for i, (text, r) in enumerate(zip(bank.texts, rel)):
                norm = " ".join(text.split()).lower()
                if norm in seen or text.rstrip().endswith("?") or len(text.split()) < 4:
                    continue
                seen.add(norm)
                overlap = sum(q_weight[t] for t in q_terms & set(tokenize(text))) / q_total
                score = float(r) + OVERLAP_WEIGHT * overlap + 0.03 / (1 + rank) - GENERIC_PENALTY * float(generic[i])
                if _DANGLING.match(text):
                    score -= 0.06
                out.append(Candidate(rank, i, text, bank.vectors[i], float(r), score))
        out.sort(key=lambda c: -c.score)
        return out

    def select(self, candidates: list[Candidate], max_sentences: int, max_words: int, floor: float) -> list[Candidate]:
        s = self.settings
        if not candidates or candidates[0].relevance < floor:
            return []
        best = candidates[0]
        chosen = [best]
        words = len(best.text.split())
        pool = candidates[1:]
        if _LIST_LEAD.search(best.text) and (not pool or best.score - pool[0].score >= LIST_LEAD_MARGIN):
            # The list's items, in order, as far as the budget goes; they stay right after it.
            items = sorted((c for c in pool if c.passage_rank == best.passage_rank and c.sentence_idx > best.sentence_idx),
                           key=lambda c: c.sentence_idx)
            expected = best.sentence_idx + 1
            for c in items:
                if c.sentence_idx != expected or len(chosen) >= max_sentences or words + len(c.text.split()) > max_words:
                    break
                chosen.append(c)
                words += len(c.text.split())
                expected += 1
            if len(chosen) > 1:
                return chosen
        def continuing(c: Candidate) -> float:
            """A candidate's score as a continuation of the best sentence."""
            return c.score + (SAME_PASSAGE_BONUS if c.passage_rank == best.passage_rank else 0.0)

        while pool and len(chosen) < max_sentences:
            def mmr(c: Candidate) -> float:
                redundancy = max(float(c.vector @ x.vector) for x in chosen)
                return continuing(c) - MMR_WEIGHT * redundancy

            pool.sort(key=mmr, reverse=True)
            nxt = pool.pop(0)
            redundancy = max(float(nxt.vector @ x.vector) for x in chosen)
            if continuing(nxt) < best.score - s.answer_score_window or nxt.relevance < s.min_relevance - 0.04:
                break  # the rest answer something else
            if redundancy > REDUNDANT:
                continue  # says again what is said
            if words + len(nxt.text.split()) > max_words:
                continue
            chosen.append(nxt)
            words += len(nxt.text.split())
        # The most direct sentence first; the others in reading order, so they flow.
        rest = sorted(chosen[1:], key=lambda c: (c.passage_rank, c.sentence_idx))
        return [best] + rest

    def compose(self, question: str, q: np.ndarray, passages: list[Passage], topic_text: str | None = None) -> tuple[str, list[Citation]] | None:
        """The answer Markdown and its citations, or None to abstain. `question` gives the words
        sentences are matched on; `topic_text` (the question with the earlier turns it leans on)
        decides which relevance bar applies."""
        s = self.settings
        floor = s.min_relevance if _ON_TOPIC.search(topic_text or question) else s.min_relevance_off_topic
        referral_words = 0
        referral_text = None
        if self.referral is not None:
            bank = self.index.sentences.get(self.referral.key)
            if bank is not None and bank.texts:
                referral_text = bank.texts[0]
                referral_words = len(referral_text.split())
        chosen = self.select(
            self.candidates(question, q, passages),
            max_sentences=s.max_sentences - (1 if referral_text else 0),
            max_words=s.max_words - referral_words,
            floor=floor,
        )
        if not chosen:
            return None
        numbers: dict[str, int] = {}
        cited: list[Passage] = []
        parts = []

        def cite(p: Passage) -> int:
            if p.id not in numbers:
                numbers[p.id] = len(numbers) + 1
                cited.append(p)
            return numbers[p.id]

        for c in chosen:
            parts.append(f"{c.text} [{cite(passages[c.passage_rank])}]")
        # Every answer leaves a way to a clinician, in the knowledge base's own (cited) words.
        if referral_text and not any(_CLINICIAN.search(c.text) for c in chosen):
            parts.append(f"{referral_text} [{cite(self.referral)}]")
        citations = [
            Citation(n=numbers[p.id], title=p.title, section=p.section_label, source=p.source, text=p.text, references=p.references)
            for p in cited
        ]
        return " ".join(parts), citations
