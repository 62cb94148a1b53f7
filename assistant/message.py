"""Reading a message for answering: its question(s), and the few facts of its story that matter.

People write stories with the question at the end ("...my knee hurts going downhill and down
stairs. My GP said painkillers. What should I do?"). Retrieving with the whole story pulls in
whatever the story mentions in passing (painkillers, a wedding, the GP); retrieving with "What
should I do?" alone finds nothing. So a message is read as:
- its questions: sentences that ask (a question mark, a question word at the start, or a request
  such as "any advice"), two questions joined by "and" in one sentence counted as two; at most
  MAX_QUESTIONS are answered, and the reply says so when there were more;
- its facts: from the rest, the clauses that tell what the knowledge base can use (a symptom, a
  place on the knee, an activity, how long, what was tried), at most MAX_FACTS, shortest first;
- for each question, a retrieval query: the question, plus the facts when the question alone says
  little ("what should I do?") or the message is a story.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from assistant.scope import _MEDICATION, asking_part
from assistant.vocabulary import vocabulary

MAX_QUESTIONS = 2
MAX_FACTS = 3
MAX_FACT_WORDS = 30
# A question with fewer content words than this leans on the story for what it asks about.
VAGUE_QUESTION_WORDS = 3

# "quick q", "random question", "one more thing": words that announce a question.
_ANNOUNCES_A_QUESTION = r"(?:quick|random|silly|stupid|dumb|one more|another|last) (?:q|qn|question|thing)"
_QUESTION_WORD = re.compile(
    r"^\s*(?:so|and|but|also|ok|okay|well|hi|hello|honestly|basically|anyway|please)?[,\s]*"
    # "anyway quick q how many sets ...", "question: can I ...", "one more thing, should I ..."
    rf"(?:{_ANNOUNCES_A_QUESTION}|question|q)?[:,\s]*"
    r"(?:what|what's|whats|how|how's|why|when|where|which|who|should|shall|is|are|am|was|do|does|did|can|could|would|will"
    r"|have|has|any|anyone|anybody|would|might|may|isn't|aren't|doesn't|don't|won't|can't)\b",
    re.I,
)
# What opens a question without being part of it ("random q, are clams or bridges better?"):
# left out of what is searched, where its words only blur the question.
_OPENER = re.compile(
    rf"^\s*(?:(?:so|and|but|ok|okay|anyway|also)[,\s]+)?(?:{_ANNOUNCES_A_QUESTION}\s*[:,.-]?\s+|(?:question|q)\s*[:,.-]\s*)",
    re.I)
_REQUEST = re.compile(
    r"\b(?:any (?:advice|tips|ideas|help|suggestions|thoughts)|advice (?:please|welcome|needed|appreciated)|help me|please help|help please"
    r"|tell me|let me know|i (?:want|would like|need) to know|i(?:'m| am) wondering|i wonder|recommend|what do you (?:think|reckon|suggest)"
    # A question told as a story ("she wants to know if she should give up hockey", "I'm stuck
    # between resting forever and running through it", "not sure whether to rest"): what is asked.
    r"|(?:wants|wanted|would like|'d like|needs) to know (?:if|whether|how|what|why|when|which)"
    r"|(?:not sure|unsure|undecided) (?:if|whether|what|how|when)|wondering (?:if|whether|what|how|when)"
    r"|(?:can't|cannot|can not|trying to) decide|(?:torn|stuck) between)\b",
    re.I,
)
# What the knowledge base can use from a story: where it hurts, when, with what, for how long,
# what was tried. Words of runner's knee as people tell it.
_FACT_WORDS = vocabulary()["story_facts"]  # assistant/vocabulary.yaml
_KNEE_WORLD = vocabulary()["knee_world"]
_NAMES_THE_KNEE = vocabulary()["knee"]
# What a question that does not name what it asks about is about, in a runner's-knee chat: added to
# a question whose subject is only a pronoun (assistant/pipeline.py, `search_texts`) and to a short
# question whose story names only the knee (`read_message`).
KNEE_SUBJECT = "(runner's knee)"
# What a question asking what to do about it means, read as a question about runner's knee
# (assistant/vocabulary.yaml `asks_what_to_do`).
WHAT_TO_DO_READING = "what can I do about my runner's knee?"
ASKS_WHAT_TO_DO = vocabulary()["asks_what_to_do"]
# "Anything else?" as the whole question. Not in `asks_what_to_do`, which is matched anywhere in a
# question: "is there anything else I should be doing from the start to avoid it?" asks about
# prevention, and read as what to do about runner's knee it got self-management (session 17).
_ONLY_ANYTHING_ELSE = re.compile(r"^\W*(?:(?:is|are) there\s+)?anything else\W*$", re.I)
_SPELL_OUT = vocabulary().spell_out  # abbreviations the embedding model does not know
_CONTENT = re.compile(r"\b[a-z][a-z']{3,}\b", re.I)
_STOP = frozenset(
    """what what's whats how why when where which should would could does doing have been this that with your about
    there their they them then than just really know think want need help tell please advice anything something
    anyone best good okay also still even thing things stuff""".split()
)
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*|\n", re.M)


@dataclass
class Asked:
    question: str  # the question as the person asked it
    query: str  # what retrieval searches with: the question and, when it needs them, the facts


@dataclass
class ReadMessage:
    asked: list[Asked]
    facts: list[str] = field(default_factory=list)
    unanswered: int = 0  # questions beyond MAX_QUESTIONS
    story: bool = False  # the message tells a story around its question(s)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(text) if s.strip()]


def is_question(sentence: str) -> bool:
    s = sentence.strip()
    return s.endswith("?") or bool(_QUESTION_WORD.match(s)) or bool(_REQUEST.search(s))


def content_words(text: str) -> list[str]:
    return [w.lower() for w in _CONTENT.findall(text) if w.lower() not in _STOP]


# A story and its question in one sentence: "my GP mentioned ibuprofen but what exercises should I
# do", "the doctor gave me naproxen but how long until I can run again?". The question starts after
# "but", "so" or "and" at a question word (what, how, which, why), or at a verb that asks (should,
# can, is ...) when the sentence ends with a question mark; what comes before it is story, and
# holds no question of its own. ("... and is loving it.", "... and does gymnastics" are story.)
_ASKS = r"(?:what|how|which|why)"
_ASKS_IF_MARKED = r"(?:should|shall|can|could|is|are|do|does|will|would)"
_EMBEDDED_QUESTION = re.compile(rf"\b(?:but|so|and)\s+(?={_ASKS}\b|{_ASKS_IF_MARKED}\b)", re.I)
_ASKING_WORD = re.compile(rf"\b{_ASKS}\b|\?", re.I)
# The question is split from its story only when it does not lean back on the story: "...gave me
# naproxen but how many can I take a day?" asks about the naproxen (and is refused as a dose
# question), "...so is it safe to run on it?" about what came before.
_LEANS_BACK = re.compile(
    r"\b(?:it|its|it's|them|they|these|those|that|this|ones?|how many|how much|take|taking|dose|doses|dosage|at once|a day|mg)\b",
    re.I)


def split_story(sentence: str) -> list[str]:
    """[story, question] for a sentence that tells something, then asks; else [sentence]."""
    if _QUESTION_WORD.match(sentence):
        return [sentence]  # it opens by asking: "how long, and should I rest?" is one question
    for m in _EMBEDDED_QUESTION.finditer(sentence):
        story, question = sentence[: m.start()].strip(" ,;-"), sentence[m.end():].strip()
        if _ASKING_WORD.search(story):
            return [sentence]  # "...: what do the data show and how robust are they?" asks twice
        if not re.match(_ASKS, question, re.I) and not sentence.rstrip().endswith("?"):
            continue
        if _LEANS_BACK.search(question):
            return [sentence]
        if len(story.split()) >= 3 and content_words(question):
            return [story, question]
    return [sentence]


# Two questions in one sentence: "what exercises should I do, and how long before they help?",
# "should I ice it after runs and what strength work should I do?". Split at "and" (not "or":
# "does it help quickly or only in the long term?" asks one question with two answers) before a
# word that asks, when each half has at least COMPOUND_MIN_WORDS words ("how long, and should I
# rest?" stays whole). Checked on every message of dev and real (2026-11-27): the 19 sentences it
# splits each ask two things. Measured (knee eval, dev and real): dev facts 405 -> 407 of 536,
# real 16 -> 15 of 21 (a story asking "what the problem is and how long I must stop" now gets
# the ITB/front-of-knee passage and the return-to-run plan, not the exercises its gold expects).
_COMPOUND = re.compile(
    r"(?:,\s*|\s+)(?:and|plus)\s+(?:also\s+)?(?=(?:how|what|what's|which|why|when|where|should|shall|can|could|do|does|is|are"
    r"|will|would|am|did)\b)",
    re.I)
COMPOUND_MIN_WORDS = 3


def split_compound(sentence: str) -> list[str]:
    """[first question, second question] for a sentence that asks two things joined by "and"."""
    if not is_question(sentence):
        return [sentence]
    for m in _COMPOUND.finditer(sentence):
        first, second = sentence[: m.start()].strip(" ,;-"), sentence[m.end():].strip()
        if len(first.split()) >= COMPOUND_MIN_WORDS and len(second.split()) >= COMPOUND_MIN_WORDS:
            return [first + "?" if not first.endswith("?") else first, second]
    return [sentence]


def read_message(text: str) -> ReadMessage:
    parts, leans_on = [], {}
    for piece in (piece for s in sentences(text) for piece in split_story(s)):
        halves = split_compound(piece)
        if len(halves) == 2:
            # The second half often leans on the first ("... and how long before THEY help?").
            leans_on[halves[1]] = halves[0]
        parts += halves
    questions = [s for s in parts if is_question(s)]
    rest = [s for s in parts if s not in questions]
    story = len(parts) > 2 or len(text.split()) > 40
    if not questions:
        # No sentence asks: the message is the question (short), or its last sentence is (long).
        if not story:
            return ReadMessage([Asked(_SPELL_OUT(text.strip()), _SPELL_OUT(text.strip()))])
        questions, rest = [parts[-1]], parts[:-1]
    facts = _facts(rest)
    told = [q for q in questions if not _echoes(parts, q)]
    picked = _choose(told or questions)
    # The asking part of each: without its opener ("quick q:") and without an aside that sets
    # something aside ("I know you can't tell me about the pills, but is the sleeve doing anything?"
    # searched for the pills).
    chosen = [asking_part(_OPENER.sub("", q, count=1) or q) for q in picked]
    asked = []
    for original, q in zip(picked, chosen):
        # A question that names nothing of the knee's world ("worth seeing someone yet or just give
        # it time?", "fine to keep going?") asks about the story around it.
        # So does one that points back at what was told ("I wear a sleeve on every run. Is it
        # actually helping my runner's knee or should I ditch it?").
        needs_facts = story or not says_what_it_asks(q) or bool(_REFERS_BACK.search(q))
        # A question too short to say what it asks about ("Is she right?", "which is it??") asks
        # about the sentence just before it ("My wife says the creaking means I'm wearing it out"),
        # whether or not that sentence holds the story's symptom words.
        before = (_antecedent(parts, original) or _topic(parts, original)) if len(content_words(q)) < VAGUE_QUESTION_WORDS else None
        if original in leans_on:
            before, needs_facts = leans_on[original], True
        extra = ([before] if before else []) + [f for f in facts if not before or f not in before]
        if needs_facts and not extra and len(content_words(q)) < VAGUE_QUESTION_WORDS and _NAMES_THE_KNEE.search(" ".join(rest)):
            # A question too short to say what it asks about, after a story that told nothing to
            # search with but its knee and a medicine ("been on co-codamol for my knee but it
            # makes me drowsy. what does the research say I should do first?"): it asks about the
            # knee, as a pronoun-only question does (assistant/pipeline.py, `search_texts`). Alone
            # it matched nothing and was declined. A question that says what it asks ("what
            # should I eat the night before a race?") is left to the relevance floor.
            extra = [KNEE_SUBJECT]
        query = " ".join([q] + extra) if needs_facts and extra else q
        if extra == [KNEE_SUBJECT] and (ASKS_WHAT_TO_DO.search(q) or _ONLY_ANYTHING_ELSE.match(q)):
            # ... and when it asks what to do ("Ibuprofen isn't doing much for my knee. What else
            # is there?", "The painkillers only take the edge off. Anything else?"), it is that
            # question: "what else is there? (runner's knee)" matched the index's "what is
            # runner's knee?" on the name (session 17).
            query = WHAT_TO_DO_READING
        asked.append(Asked(_SPELL_OUT(q), _SPELL_OUT(query)))
    return ReadMessage(asked, facts, max(0, len(told or questions) - len(chosen)), story)


# Words of a question that point back at something told before it. Measured on dev with held-out
# query adapters (session 15): such a question read with the story's facts held 497 facts of 635,
# 494 without (3 answers hold more, 1 fewer: "fed up that my knee is taking forever. will it
# actually get better?" then got the recovery passages before "wait and see").
_REFERS_BACK = re.compile(r"\b(?:it|they|them|these|those|this one|that one)\b", re.I)


def says_what_it_asks(question: str) -> bool:
    """The question names what it asks about on its own: enough content words, one of them of the
    knee's world ("does foam rolling help runner's knee?", not "fine to keep going?")."""
    return len(content_words(question)) >= VAGUE_QUESTION_WORDS and bool(_KNEE_WORLD.search(question))


def _before(parts: list[str], question: str) -> str | None:
    """The last sentence before `question` that says something: "I said I'd ask.", "I told him
    I'd check." (fewer content words than a question needs to say what it asks) are passed over."""
    i = parts.index(question) if question in parts else -1
    for before in reversed(parts[:max(0, i)]):
        if len(content_words(before)) >= VAGUE_QUESTION_WORDS:
            return before
    return None


def _antecedent(parts: list[str], question: str) -> str | None:
    """The sentence a short question asks about, when it tells something (no question of its own,
    no medicine: "the painkillers don't fix anything" would pull in the medicines passages) and is
    of a length to search with."""
    before = _before(parts, question)
    if before is None or is_question(before) or _MEDICATION.search(before.lower()) or not 3 <= len(before.split()) <= MAX_FACT_WORDS:
        return None
    # A sentence with the story's symptom or activity words is among the facts already, clause by
    # clause; whole, it also brings what the clauses leave out ("I can walk on it fine and put all
    # my weight on it" pulled in the cannot-bear-weight passages). Measured on dev (in-process, 328
    # answer items): every such sentence added 403 facts held of 536, only those without 401, none
    # 399 (398 before this change); the first lost two answers the others kept.
    if _FACT_WORDS.search(before):
        return None
    return before


# A topic named on its own just before the question ("KT tape. does it actually do anything?",
# "Orthotics. do they help?"): at most this many words, one of them of the knee's world.
TOPIC_MAX_WORDS = 3


def _topic(parts: list[str], question: str) -> str | None:
    """The fragment just before a short question that names what it asks about, when the fragment
    is a topic of the knowledge base (session 11: "KT tape. does it actually do anything?" was
    searched as "does it actually do anything? (runner's knee)" and answered about exercise)."""
    i = parts.index(question) if question in parts else -1
    if i < 1:
        return None
    before = parts[i - 1].strip()
    if is_question(before) or not 1 <= len(before.split()) <= TOPIC_MAX_WORDS or _MEDICATION.search(before.lower()):
        return None
    return before if _KNEE_WORLD.search(_SPELL_OUT(before)) else None


def _echoes(parts: list[str], question: str) -> bool:
    """A short question that asks for an opinion on a question just told ("she wants to know if she
    should give up hockey. I said I'd ask. what do you reckon?"): answered by answering that one."""
    if len(content_words(question)) >= VAGUE_QUESTION_WORDS:
        return False
    before = _before(parts, question)
    return before is not None and bool(_REQUEST.search(before)) and not before.rstrip().endswith("?")


def _clauses(sentence: str) -> list[str]:
    """A sentence's clauses; one longer than MAX_FACT_WORDS is cut again at "and", "when" ...
    ("Few weeks ago my left knee started aching behind the kneecap after my long run and it creaks
    like an old door when I squat down to pick up my son": 31 words, the story's symptom, place and
    activity, and once left out whole for its length)."""
    out = []
    for c in re.split(r"[,;:]\s+|\s+-\s+|\s+(?:but|and then|although|because)\s+", sentence):
        if len(c.split()) > MAX_FACT_WORDS:
            out += re.split(r"\s+(?:and|when|while|whenever|so|which|then)\s+", c)
        else:
            out.append(c)
    return out


def _facts(rest: list[str]) -> list[str]:
    clauses = []
    for s in rest:
        for c in _clauses(s):
            words = c.split()
            hits = len(_FACT_WORDS.findall(c))
            # A medicine the story mentions ("my GP said take ibuprofen") is not what is asked: it
            # would pull the answer to the painkiller passages.
            if _MEDICATION.search(c.lower()):
                # ... but what the story does besides ("Ditched the painkillers and I'm going to
                # run through the pain instead") is told in the part without it.
                parts = [p for p in re.split(r"\s+(?:and|so)\s+", c) if not _MEDICATION.search(p.lower())]
                if len(parts) != 1:
                    continue
                c, words = parts[0], parts[0].split()
                hits = len(_FACT_WORDS.findall(c))
            if hits and 3 <= len(words) <= MAX_FACT_WORDS:
                clauses.append((-hits, len(words), c.strip()))
    clauses.sort()
    return [c for _, _, c in clauses[:MAX_FACTS]]


def _choose(questions: list[str]) -> list[str]:
    """At most MAX_QUESTIONS, in the order asked; a question that asks something (content words)
    before one that only asks for help ("what should I do?"); the same question twice once."""
    seen, unique = set(), []
    for q in questions:
        key = " ".join(sorted(set(content_words(q))))
        if key not in seen:
            seen.add(key)
            unique.append(q)
    if len(unique) <= MAX_QUESTIONS:
        return unique
    ranked = sorted(range(len(unique)), key=lambda i: (-min(len(content_words(unique[i])), 6), -i))
    keep = sorted(ranked[:MAX_QUESTIONS])
    return [unique[i] for i in keep]
