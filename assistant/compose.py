"""The composer: retrieved passages -> a short answer in which every sentence is a cited source sentence.

Extractive, no LLM, and section-first:
1. the section that answers: of the first passages retrieval returns, the one whose own sentences
   answer the question best (a question-index match counts for it);
2. its relevant sentences, in reading order, so the answer reads as the article does: from the
   best one, every sentence within `answer_score_window` of it, at most `max_sentences`; a short
   section whose question-index entry matched is given whole;
3. a sentence from another section only when it carries what the section lacks: clearly relevant,
   not a repeat, and holding a word of the question the chosen sentences do not;
4. the referral sentence ("see a physiotherapist or GP ...") when it answers the question (when
   to see someone, what to do if it does not improve) and the answer names no clinician yet.
   Every other answer leaves its way to a clinician in the standing advice (`STANDING_ADVICE`)
   that the app, `knee ask` and the JSON show with it: a sentence repeated under every answer
   reads as noise and takes the place of a fact.
Sentences are quoted verbatim and cited; when nothing is relevant enough, the composer abstains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from assistant.retrieve import KnowledgeIndex, expand_query
from assistant.vocabulary import vocabulary
from knee.config import Settings
from knee.models import Citation, Passage
from knee.sparse import tokenize

# A sentence that opens with one of these leans on the sentence before it.
_DANGLING = re.compile(r"^(?:this|that|these|those|it|they|them|such|both|also|however|but|so|then)\b", re.I)
_VOCABULARY = vocabulary()
_CLINICIAN = _VOCABULARY["clinicians"]
REFERRAL_SECTION = "When to see a physiotherapist or GP"
# The question asks when to see someone, or what to do when it does not get better. Who to see is
# read in the question as asked only: a story's "my GP said it's patellofemoral pain, what does that
# mean?" names a clinician without asking for one (five new phrasings in tests/test_assistant.py).
# Pain that is not improving counts anywhere in the message: the referral answers it.
ASKS_WHO = re.compile(
    r"\b(?:see (?:a|the|my|an) \w+|go to (?:a|the|my) \w+|get (?:it |this )?(?:checked|looked at|seen)|doctor|physio\w*|gp|clinician"
    r"|specialist|surgeon|who (?:can|should|do)|when (?:should|do) i (?:see|go|worry)|should i worry|seek help|professional)\b",
    re.I,
)
NOT_IMPROVING = re.compile(
    r"\b(?:not (?:getting )?better|isn't (?:getting )?better|not improving|isn't improving|no better|getting worse|worse)\b",
    re.I,
)
# Sentences that send the reader to emergency or same-day care answer only questions about urgency
# (assistant/vocabulary.yaml, `urgent_care` and `asks_about_urgency`, where it says why).
_URGENT_CARE = _VOCABULARY["urgent_care"]
_ASKS_ABOUT_URGENCY = _VOCABULARY["asks_about_urgency"]
# Words of the knee's world (assistant/vocabulary.yaml, `knee_world`, where it says why): a
# question without any must be closer to a sentence before it is answered.
_ON_TOPIC = _VOCABULARY["knee_world"]
# A sentence that introduces a list ("... the following five findings", "The TREK rule has three
# parts.") says nothing alone: its items follow it into the answer.
_LIST_LEAD = re.compile(
    r"(?:\bthe following\b[^.]*|\b(?:has|have|are|include|includes) (?:two|three|four|five|six|\d) (?:parts|steps|stages|phases|criteria|rules|signs|findings)\b[^.]*)[.:]?$"
    r"|:$",
    re.I,
)
# The share of the question's words (weighted by rarity) a sentence holds, as a bonus to its cosine.
OVERLAP_WEIGHT = 0.12
# A sentence that leans on the one before it ("It ...", "This ...") counts a little less when it
# would be read without it.
DANGLING_PENALTY = 0.06
# Passages considered for the answering section: the first few retrieval returns.
SECTION_CANDIDATES = 3
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
    score: float  # cosine to the question as the query adapter maps it (else `relevance`), plus the overlap bonus


@dataclass
class Composed:
    sentences: list[tuple[str, Passage]]  # each chosen sentence and the passage it is quoted from
    best: float  # the best sentence's score


class Composer:
    def __init__(self, index: KnowledgeIndex, settings: Settings, adapter=None):
        self.index = index
        self.settings = settings
        # The query adapter of the dense search (assistant/query_adapter.py): sentences are ranked
        # by their cosine to the mapped question; the relevance floors stay on the model's own
        # cosine, the scale they were set on. Held out on dev (each item answered with an adapter
        # fitted without its fold, 536 facts): 406 facts held with raw cosines, 412 ranked by the
        # mapped one; 381 with the mapped cosine for the floors too.
        self.adapter = adapter
        self.referral = index.find_section(REFERRAL_SECTION)

    # -- scoring ----------------------------------------------------------------------------

    def _weights(self, question: str) -> tuple[set[str], dict[str, float], float]:
        terms = set(tokenize(expand_query(question)))
        weight = {t: self.index.sparse.idf(t) for t in terms}
        return terms, weight, sum(weight.values()) or 1.0

    def candidates(self, question: str, q: np.ndarray, passages: list[Passage],
                   avoid: re.Pattern | None = None, urgent_ok: bool = False, asked: str | None = None) -> dict[int, list[Candidate]]:
        """Every sentence of every passage, scored against the question, by passage rank; `avoid`:
        sentences it matches are left out (pain placed on another side of the knee); sentences that
        send the reader to emergency or same-day care are left out unless the question asks about
        urgency or `urgent_ok` (the message names a sign of the red-flag table). `asked`: the
        question as asked, without the story `question` may hold: what it asks about urgency
        (session 16: "Doctor reckons it's runner's knee but I cycle. Is that even possible?" got a
        sentence on a blood clot in the calf, "doctor" of its story read as asking whom to see)."""
        terms, weight, total = self._weights(question)
        banks = self.index.banks_for([p.key for p in passages])
        out: dict[int, list[Candidate]] = {}
        seen: set[str] = set()
        urgency_asked = urgent_ok or bool(_ASKS_ABOUT_URGENCY.search(question if asked is None else asked))
        mapped = q if self.adapter is None else self.adapter.apply(q)
        for rank, p in enumerate(passages):
            bank = banks.get(p.key)
            if bank is None or not len(bank.texts):
                continue
            rel = bank.vectors @ q
            ranking = rel if self.adapter is None else bank.vectors @ mapped
            for i, (text, r, rr) in enumerate(zip(bank.texts, rel, ranking)):
                norm = " ".join(text.split()).lower()
                if norm in seen or text.rstrip().endswith("?") or len(text.split()) < 4:
                    continue
                if avoid is not None and avoid.search(text):
                    continue
                if not urgency_asked and _URGENT_CARE.search(text):
                    continue
                seen.add(norm)
                overlap = sum(weight[t] for t in terms & set(tokenize(text))) / total
                score = float(rr) + OVERLAP_WEIGHT * overlap - (DANGLING_PENALTY if _DANGLING.match(text) else 0.0)
                out.setdefault(rank, []).append(Candidate(rank, i, text, bank.vectors[i], float(r), score))
        return out

    # -- choosing ---------------------------------------------------------------------------

    def compose_one(self, question: str, q: np.ndarray, passages: list[Passage], floor: float,
                    max_words: int | None = None, avoid: re.Pattern | None = None, urgent_ok: bool = False,
                    asked: str | None = None) -> Composed | None:
        s = self.settings
        max_words = max_words or s.max_words
        by_passage = self.candidates(question, q, passages, avoid, urgent_ok, asked)
        if not by_passage:
            return None
        best_overall = max(c.score for cs in by_passage.values() for c in cs)
        best_relevance = max(c.relevance for cs in by_passage.values() for c in cs)
        # The question index vouches for a passage when one of its questions is close to the asked
        # one: then a question worded unlike the article's sentences is still answered.
        question_hit = max((p.question_score or 0.0) for p in passages[:SECTION_CANDIDATES]) if passages else 0.0
        if best_relevance < floor and question_hit < s.question_vouch:
            return None

        # 1. The section that answers: the first passage retrieval ranks (it weighs the words, the
        # meaning and the question index together), unless another of the first few is clearly
        # better by its own sentences, its question-index match and its title.
        terms, weight, total = self._weights(question)

        def section_score(rank: int) -> float:
            cs = sorted((c.score for c in by_passage.get(rank, [])), reverse=True)
            if not cs:
                return -1.0
            top2 = cs[:2]
            p = passages[rank]
            title = sum(weight[t] for t in terms & set(tokenize(p.section_label + " " + p.title))) / total
            return (sum(top2) / len(top2) + s.section_question_weight * max(0.0, (p.question_score or 0.0) - 0.5)
                    + s.section_title_weight * title)

        ranks = [r for r in range(min(SECTION_CANDIDATES, len(passages))) if r in by_passage]
        if not ranks:
            return None
        primary = ranks[0]
        for r in ranks[1:]:
            if section_score(r) > section_score(primary) + s.section_switch_margin:
                primary = r
        cands = sorted(by_passage[primary], key=lambda c: c.sentence_idx)
        top = max(c.score for c in cands)
        whole = (passages[primary].question_score or 0.0) >= s.whole_section_match

        # 2. The section, read as written: its sentences in order. A section longer than the budget
        # keeps its most relevant sentences (the best first), still in reading order; sentences
        # far below the best (outside `answer_score_window`) or below the floor are left out
        # unless the question index vouched for the whole section.
        lead = max(cands, key=lambda c: c.score)
        if _LIST_LEAD.search(lead.text):
            pool = [c for c in cands if c.sentence_idx >= lead.sentence_idx]  # a list's lead brings its items
        elif whole:
            pool = list(cands)
        else:
            pool = [c for c in cands if c.score >= top - s.answer_score_window and c.relevance >= floor - s.sentence_floor_margin]
        kept: list[Candidate] = []
        words = 0
        for c in sorted(pool, key=lambda c: (-c.score, c.sentence_idx)):
            n = len(c.text.split())
            if len(kept) >= s.max_sentences or (kept and words + n > max_words):
                continue
            if any(float(c.vector @ x.vector) > s.redundant for x in kept):
                continue
            kept.append(c)
            words += n
        kept.sort(key=lambda c: c.sentence_idx)

        # 3. Another section only for what this one lacks.
        covered = set()
        for c in kept:
            covered |= set(tokenize(c.text))
        asked = {t for t in tokenize(expand_query(question)) if self.index.sparse.idf(t) > 0}
        others = [c for r, cs in by_passage.items() if r != primary for c in cs]
        others.sort(key=lambda c: -c.score)
        added = 0
        for c in others:
            if added >= s.max_other_sentences or len(kept) >= s.max_sentences:
                break
            if c.score < top - s.other_section_margin or c.relevance < floor:
                break
            new_terms = (asked & set(tokenize(c.text))) - covered
            if not new_terms or any(float(c.vector @ x.vector) > s.redundant for x in kept):
                continue
            if words + len(c.text.split()) > max_words:
                continue
            kept.append(c)
            words += len(c.text.split())
            covered |= set(tokenize(c.text))
            added += 1
        out = [(c.text, passages[c.passage_rank]) for c in kept]
        return Composed(out, best_overall)

    def referral_sentence(self) -> tuple[str, Passage] | None:
        if self.referral is None:
            return None
        bank = self.index.banks_for([self.referral.key]).get(self.referral.key)
        return (bank.texts[0], self.referral) if bank and bank.texts else None

    def floor(self, message: str, chat: str = "") -> float:
        """The relevance floor for a question: the lower bar when `message` (the message and the
        query it is searched with) names something of the knee's world, the middle one when only
        `chat` (the earlier turns) does, the higher one otherwise."""
        s = self.settings
        if _ON_TOPIC.search(message):
            return s.min_relevance
        return s.min_relevance_in_chat if _ON_TOPIC.search(chat) else s.min_relevance_off_topic

    def nearest_sentence(self, q: np.ndarray, passages: list[Passage], names: re.Pattern,
                         avoid: re.Pattern | None = None) -> tuple[str, Passage] | None:
        """The sentence of `passages` closest to `q` that holds `names` (a place on the knee, a
        story note's words, an amount), and not `avoid`; None when none is relevant enough."""
        best: tuple[float, str, Passage] | None = None
        banks = self.index.banks_for([p.key for p in passages])
        for p in passages:
            bank = banks.get(p.key)
            if bank is None or not len(bank.texts):
                continue
            for text, r in zip(bank.texts, bank.vectors @ q):
                if not names.search(text) or (avoid is not None and avoid.search(text)) or _DANGLING.match(text):
                    continue
                if r >= self.settings.min_relevance and (best is None or r > best[0]):
                    best = (float(r), text, p)
        return (best[1], best[2]) if best else None

    def compose_many(self, parts: list[tuple[str, np.ndarray, list[Passage], tuple[str, str]]], note: str = "",
                     avoid: re.Pattern | None = None, urgent_ok: bool = False,
                     place_note: tuple[tuple[str, Passage], re.Pattern] | None = None,
                     asked: list[str] | None = None,
                     story_notes: list[tuple[tuple[str, Passage], re.Pattern]] = ()) -> tuple[str, list[Citation]] | None:
        """Answers to up to two questions, one paragraph each, citations numbered across them.
        `avoid`: sentences not to answer with; `place_note`: a sentence on where it hurts and the
        place it names, added as a paragraph of its own when no sentence of the answer names it;
        `asked`: the questions as the person asked them, without their story (default: the
        questions of `parts`); `story_notes`: sentences on what the story tells (a training load
        raised), each added as the place note is, when no sentence of the answer names it."""
        numbers: dict[str, int] = {}
        cited: list[Passage] = []
        paragraphs: list[str] = []

        def cite(p: Passage) -> int:
            if p.id not in numbers:
                numbers[p.id] = len(numbers) + 1
                cited.append(p)
            return numbers[p.id]

        def compose_all(max_words: int | None) -> list[Composed]:
            # Sentences on urgent care are a last resort for a question that does not ask about
            # urgency: used only when nothing else answers it.
            done: list[Composed | None] = []
            for i, (question, q, passages, topic) in enumerate(parts):
                # A later question is answered with what earlier paragraphs have not said: composed
                # on its own it often chose the sentences the first paragraph already holds (two
                # questions about one walk-run plan), and the repeat was then dropped, leaving the
                # second question unanswered.
                said = {text for c in done if c is not None for text, _ in c.sentences}
                av = _AnyOf(avoid, said) if said else avoid
                done.append(self.compose_one(question, q, passages, self.floor(*topic), max_words, av, urgent_ok, asked[i])
                            or (None if urgent_ok else self.compose_one(question, q, passages, self.floor(*topic), max_words, av, True)))
            # Each kept with the question it answers: nothing kept is abstaining, never an empty answer.
            return [(i, c) for i, c in enumerate(done) if c is not None and c.sentences]

        asked = [question for question, *_ in parts] if asked is None else asked
        answered = compose_all(None)
        if not answered:
            return None
        ref = None
        asks_referral = (any(ASKS_WHO.search(question) for question in asked)
                         or any(NOT_IMPROVING.search(question) for question, *_ in parts))
        if asks_referral and not any(_CLINICIAN.search(text) for _, c in answered for text, _ in c.sentences):
            # Asked when to see someone and no clinician named yet: the referral sentence closes the
            # answer, and the answer makes room for it so it stays within `max_words`.
            ref = self.referral_sentence()
            if ref:
                answered = compose_all(max(1, self.settings.max_words - len(ref[0].split()))) or answered
        shown: list[frozenset[str]] = []
        for i, c in answered:
            sentences = list(c.sentences)
            _, q, passages, _ = parts[i]
            for amount in _VOCABULARY.quantities_asked(asked[i]):
                # Asked for an amount the paragraph does not state (`quantities:` in
                # assistant/vocabulary.yaml): the found sentence closest to the question that does.
                if not any(amount.states.search(text) for text, _ in sentences):
                    found = self.nearest_sentence(q, passages, amount.states, avoid)
                    if found is not None and not any(_says_again(_words(found[0]), _words(t)) for t, _ in sentences):
                        sentences.append(found)
            # Two questions answered from the same section would print it twice: a later
            # paragraph keeps only what an earlier one did not say (and goes when nothing is left),
            # whether said in the same words or nearly ("If your knee pain is not getting better
            # after a few weeks, ... see a physiotherapist or GP" in two articles' wordings).
            fresh = [(text, p) for text, p in sentences if not any(_says_again(_words(text), w) for w in shown)]
            shown += [_words(text) for text, _ in fresh]
            if fresh:
                paragraphs.append(" ".join(f"{text} [{cite(p)}]" for text, p in fresh))
        if ref:
            paragraphs[-1] += f" {ref[0]} [{cite(ref[1])}]"
        for (text, p), names in [place_note, *story_notes] if place_note is not None else story_notes:
            if not any(names.search(t) for _, c in answered for t, _ in c.sentences) and not any(_says_again(_words(text), w) for w in shown):
                paragraphs.append(f"{text} [{cite(p)}]")
        if note:
            paragraphs.append(note)
        citations = [
            Citation(n=numbers[p.id], title=p.title, section=p.section_label, source=p.source, text=p.text, references=p.references)
            for p in cited
        ]
        return "\n\n".join(paragraphs), citations


class _AnyOf:
    """An `avoid` that matches what a pattern matches and the sentences already said."""

    def __init__(self, pattern: re.Pattern | None, said: set[str]):
        self.pattern, self.said = pattern, said

    def search(self, text: str) -> bool:
        return text in self.said or bool(self.pattern is not None and self.pattern.search(text))


# A sentence says again what another said when this share of the shorter one's words is in the
# other. Set from the two wordings of the referral sentence (the shorter's words all in the longer),
# then checked over the 827 pairs of sentences from the two paragraphs of every two-question answer
# of runs/answer-v17 (all splits; 2026-11-27): the six pairs at 0.8 or more each said one thing in
# two wordings (a starting dose, the referral, SCFE, hip pain felt in the knee); the highest pair
# saying two things shared 0.74.
SAYS_AGAIN_SHARE = 0.8


def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9']+", text.lower()))


def _says_again(a: frozenset[str], b: frozenset[str]) -> bool:
    shorter = min(len(a), len(b))
    return shorter > 0 and len(a & b) / shorter >= SAYS_AGAIN_SHARE
