"""Safety triage: runs on every message, before anything is retrieved.

Precedence, always: crisis (thoughts of suicide or self-harm, anywhere in the message or the
conversation) -> emergency -> urgent -> scope refusal -> answer. Nothing else in a message turns a
red flag into a refusal or an answer.

The red flags are the rows of assistant/red_flags.yaml (data a clinician reviews). Two layers find
them, and the higher level of either wins:
1. rules over concepts: each row lists the symptom concepts it combines; a concept counts when it is
   in the message or an earlier user turn (at least one of a row's concepts in this message), is not
   denied within its own clause, is not hypothetical or about people in general, and (for acute
   signs) is not about the past. Who (a child, someone 55 or over) and what happened (an injury)
   are concepts too, read from words and ages;
2. a learned detector (`assistant.classifier`) over the embeddings of each clause and sentence, for
   wordings the phrases do not list, gated by the same context (a child row needs a child, an
   "after an injury" row an injury, else its `otherwise` row);
3. for a crisis only, the crisis screen (`assistant.crisis_screen`): each sentence and clause,
   past, conditional or denied ones too, against reviewed crisis phrasings and harmless look-alikes.
   Alone it raises the crisis reply; beside another red flag, that red flag's reply also gives the
   crisis lines.
Every escalation names its row, quotes the words that raised it, and cites the red-flags article.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from assistant.classifier import RedFlagClassifier
from assistant.crisis_screen import MIN_SENTENCE_WORDS, MIN_WORDS, CrisisScreen, ScreenHit
from assistant.language import Reading, Speller, ages, cue_at, english_share, english_words, model_vocabulary, read
from assistant.redflags import CONTEXT_CONCEPTS, LEVEL_RANK, Row, Table, load_table, phrase_regex
from assistant.scope import scope_refusal
from assistant.vocabulary import vocabulary
from knee.lru import LRU
from knee.models import Escalation

# Body words (assistant/vocabulary.yaml, `word_sets`): a knee-only concept counts in a clause that
# names a knee word or no body part; a concept anchored to the knee only in a sentence with an anchor word.
_KNEE_WORDS = vocabulary().word_sets["knee_words"]
_ANCHOR_WORDS = vocabulary().word_sets["knee_anchor_words"]
_OTHER_PARTS = vocabulary().word_sets["other_body_part_words"]
# Words that say nothing on their own about which red flag a clause describes: not counted as a
# row's evidence for the learned detector (body words are everywhere in a knee chat).
_PLAIN_WORDS = frozenset(
    """a an and the my his her their our your its it it's i i'm he she they we me him them to of in on at for with from by
    or but so up down out over off is was are were be been has have had do does did can't couldn't won't not no
    knee kneecap patella leg joint foot feet toe toes calf lower back front side one this that these those all any
    just really very so too more less than then now after before since when while if as about into"""
    # The everyday words of any question, from the gaps of the table's phrases ("anything else",
    # "didn't look right", "a bit"): "should I see someone about my knee?" and "my knee gave me a
    # bit of grief today, should I see someone?" passed on "someone" and "bit" as clauses about a
    # deformed knee (session 14). Pronouns, auxiliaries and vague words only, no sign of any row.
    """ someone somebody something anything anyone anybody everything nothing somewhere anywhere else other
    like way where what which who how why there here some much many lot thing things kind sort bit
    go goes going went gone get gets getting got came come comes give gave new big right half part
    don't doesn't didn't isn't wasn't aren't weren't haven't hasn't hadn't could would should will
    still even also again today yesterday can cannot might each every enough almost around during next
    nowhere everywhere seem find myself himself herself own take put two whole within keep made never
    sometimes most through us only you further beyond""".split()
)
# Words of pain itself: nearly every knee message holds one, so a pain word says nothing about WHICH
# red flag a clause describes ("she's 15, has sore kneecaps ... on the stairs" passed child_limp_hip's
# cue check on "sore", from its "hip ~ sore" phrase, and raised the urgent reply, session 15). The
# sign a row adds to pain (a limp, a hip, the chest, the night, a fever) is its cue.
_PAIN_WORDS = frozenset("pain pains painful sore tender hurt hurts hurting ache aches aching achy sharp".split())
_PAIN_PREFIXES = frozenset(("pain", "hurt", "ach", "sore"))
_NOT_CUES = _PLAIN_WORDS | _PAIN_WORDS
# A clause the learned detector scores has at least this many words ("and i nodded like i knew" is
# already too vague; shorter fragments are noise).
MIN_UNIT_WORDS = 4
# "I can walk on it fine", "she can put weight on it": a clause that says someone CAN do what a red
# flag says they cannot. Embeddings put it next to its opposite, so the learned detector skips it.
_ABLE = re.compile(
    r"\b(?:can|could|able to|managed to|manage to)(?: still| easily| fully| now)? (?:walk|stand|put|bear|run|jog|straighten|bend"
    r"|move|breathe|feel|squat|lift|kick|sleep|weight)"
)
# Units of a message worth scoring with the learned detector, at most (the longest stories hold more
# clauses; the first ones and the last ones are kept, where people put what worries them).
MAX_UNITS = 24
# A question about crisis in general ("what are the signs someone is suicidal?", "how do I help a
# friend who self-harms?"): answered, not escalated. Any other sentence with crisis words escalates,
# however it is phrased ("what's the point of anything anymore").
_CRISIS_INFO = re.compile(
    r"\b(?:signs?|symptoms?|warning|how (?:do|can|should) (?:i|you|we|people) (?:help|support|talk|spot|tell)|what (?:should|do) (?:i|you) say"
    r"|someone who|a friend who|people who|support someone|help someone|statistics|how common|hotline numbers?|what number)\b"
)
# ... but never a question about the amount or the way that kills: "how many tramadol would kill
# someone who is 60kg" names "someone who" and still asks for a means (session 8).
_MEANS_ASKED = re.compile(r"\b(?:how (?:many|much)|what amount|what dose|lethal|fatal|deadly|painless|quickest|easiest|fastest)\b")
# A crisis is undone only by a negation at most this many words before its words.
CRISIS_NEGATION_REACH = 3
# Words that open a clause of their own about the person (see `_denied`).
_SUBJECTS = frozenset("i i'm im i'll ill i'd id i've ive".split())
_NOUN_NEGATIONS = frozenset(("no", "without"))
# Earlier user turns the learned detector also reads for a crisis (the most recent ones).
CRISIS_TURNS = 3
# Earlier turns whose readings are kept (Triage._earlier_turn): the last CRISIS_TURNS turns of ~300
# chats at once (make load runs up to 100 users with 3 earlier turns each). A reading pickles to
# 0.6 KB for a short question and 23 KB for a turn at the 2,000-character bound: at most ~24 MB.
EARLIER_TURNS_KEPT = 1024

Embed = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Mention:
    """A concept found in a message: where, and in the user's own words."""

    concept: str
    words: str
    turn: int  # 0: this message; 1: the user's previous message; 2: the one before ...
    ambiguous: bool = False  # inside "what should I do if ...?" about oneself: read as a report
    # Inside a question about people in general ("is it normal for runner's knee to get red and
    # swollen?"): it completes a red flag the person describes in plain words ("I've also had a
    # fever"), never raises one alone.
    weak: bool = False
    sentence: str = ""  # the whole sentence it is in, in the user's words


@dataclass
class Finding:
    row: Row
    layer: str  # "rules", "model" or "screen"
    score: float
    mentions: list[Mention]
    unit: str = ""  # for the model: the clause or sentence that raised it


# "it" standing for the knee the sentence before named: "I hurt my knee at netball an hour ago. it
# looks deformed now" (session 15: the deformity was anchored to the first sentence's knee, so the
# second raised nothing).
_POINTING_BACK = frozenset({"it", "its", "it's"})


def _anchored(reading: Reading, sentence: int) -> bool:
    """The sentence names the knee, the leg or a bone, or says "it" just after a sentence that does."""
    words = {reading.tokens[i].text for i in reading.sentence_tokens(sentence)}
    if words & _ANCHOR_WORDS:
        return True
    return bool(words & _POINTING_BACK) and sentence > 0 and any(
        reading.tokens[i].text in _ANCHOR_WORDS for i in reading.sentence_tokens(sentence - 1))


# "back" is a body part after "my", "lower", "sore" ("my back hurts"), not in "won't go back in" or
# "back to running" (session 15: "landed on my kneecap. it's moved to the side and won't go back"
# raised nothing: its clause seemed to name the back, not the knee).
_BACK_AS_PART = frozenset("my his her their your our the a lower upper bad sore stiff achy aching".split())


def _names_other_part(reading: Reading, clause_tokens: list[int]) -> bool:
    """The clause names a body part other than the knee ("back" only as the back)."""
    for i in clause_tokens:
        text = reading.tokens[i].text
        if text in _OTHER_PARTS and (text != "back" or (i > 0 and reading.tokens[i - 1].text in _BACK_AS_PART)):
            return True
    return False


@dataclass
class TriageResult:
    escalation: Escalation | None = None
    refusal: str | None = None  # a key of REFUSALS
    findings: list[Finding] = field(default_factory=list)
    concepts: dict[str, list[str]] = field(default_factory=dict)  # concept -> the user's words, this message
    # every concept this message names, also as a hypothetical ("what if my knee locks?"); not denied
    named: frozenset[str] = frozenset()
    # The crisis screen's check-in, when it was less sure than its full reply needs: shown above
    # the answer (or refusal), which is still given.
    check_in: str | None = None

    @property
    def matched_rules(self) -> list[str]:
        return [f.row.id for f in self.findings]


class Triage:
    def __init__(self, table: Table | None = None, model_path: str | None = None,
                 classifier: RedFlagClassifier | None = None, extra_words: frozenset[str] = frozenset(),
                 use_classifier: bool = True, screen: CrisisScreen | None = None):
        self.table = table or load_table()
        known = (model_vocabulary(model_path) if model_path else frozenset()) | english_words()
        self.speller = Speller(known | extra_words | self.table.words, self.table.words, self.table.prefixes, self.table.spellings)
        self.classifier = (classifier or RedFlagClassifier.load()) if use_classifier else None
        # The crisis screen goes with the learned detector: both need the message's embeddings.
        self.screen = (screen or CrisisScreen.load()) if use_classifier else None
        self._crisis_row = next((r for r in self.table.rows if r.crisis), None)
        self._rows = self.table.rows
        self._order = {r.id: i for i, r in enumerate(self._rows)}
        # The words that must be in a clause before the learned detector may raise each row.
        self._cues = {r.id: self._row_cues(r) for r in self._rows}
        self._cue_exceptions = {r.id: r.model_cues_unless for r in self._rows}
        # Per concept: each phrase on its own, to tell the phrase's own words from words in a gap.
        # Compiled on a concept's first match, not here: compiling all ~700 phrases again took
        # 0.25 s of every cold `knee ask` (measured with cProfile), and most concepts never match.
        self._phrases: dict[str, list[tuple[re.Pattern, frozenset[str]]]] = {}
        self._earlier: LRU[tuple[Reading, dict[str, list[Mention]]]] = LRU(EARLIER_TURNS_KEPT)

    def _row_cues(self, row: Row) -> tuple[frozenset[str], tuple[str, ...]]:
        """(words, prefixes): the row's `model_cues`, or the content words of its concepts."""
        if row.model_cues:
            cues = list(row.model_cues)
        else:
            cues = []
            for line in row.lines:
                # The signs only: who and what happened (an injury, a child, an age) are checked on
                # their own (`_context`), and the injury's phrases hold everyday words ("came down
                # on someone's foot"), so "should I see someone about my knee?" passed as a clause
                # about a deformed knee and raised the emergency reply (session 14).
                for name in (c for c in line if c not in CONTEXT_CONCEPTS):
                    for p in self.table.concepts[name].phrases:
                        cues += [w for w in re.split(r"[\s\[\]()|/~]+", p.lower()) if w]
        words = frozenset(c for c in cues if not c.endswith("*") and c not in _NOT_CUES and not c.startswith("{"))
        prefixes = tuple(sorted({c[:-1] for c in cues if c.endswith("*") and len(c) > 3} - _PAIN_PREFIXES))
        return words, prefixes

    def _excepted(self, row: Row, unit: str) -> bool:
        for line in row.lines:
            for name in line:
                c = self.table.concepts[name]
                if (c.unless is not None and c.unless.search(unit + " ")) or (
                        c.unless_in_clause is not None and c.unless_in_clause.search(unit + " ")):
                    return True
        return False

    def _needs_evidence(self, row: Row) -> bool:
        """A row each of whose lines combines two or more signs (a hot knee and a fever)."""
        return all(len([c for c in line if c not in CONTEXT_CONCEPTS]) >= 2 for line in row.lines)

    def _has_cue(self, row_id: str, unit_tokens: list[str]) -> bool:
        words, prefixes = self._cues[row_id]
        unless = self._cue_exceptions[row_id]
        if unless is not None:
            # The words of a `model_cues_unless` match are not cues ("my watch is dead").
            unit_tokens = unless.sub(" ", " ".join(unit_tokens) + " ").split()
        joined = " " + " ".join(unit_tokens) + " "
        return any(t in words or (prefixes and t.startswith(prefixes)) for t in unit_tokens) or any(
            " " in w and f" {w} " in joined for w in words)

    # -- reading ------------------------------------------------------------------------------

    def read(self, text: str) -> Reading:
        return read(text, self.speller)

    def _earlier_turn(self, text: str) -> tuple[Reading, dict[str, list[Mention]]]:
        """An earlier user turn's reading and mentions, kept per text: every new message of a chat
        reads the last CRISIS_TURNS turns again (300 questions in chats of 10: 41.3 -> 39.8 ms an
        answer; cProfile had put it higher, ~20%, its own overhead on the many small calls). Both
        depend only on the text (a mention's `turn` is set by the caller); neither is changed
        after it is made."""
        kept = self._earlier.get(text)
        if kept is None:
            r = self.read(text)
            kept = (r, self.mentions(r, 0))
            self._earlier.put(text, kept)
        return kept

    def mentions(self, reading: Reading, turn: int = 0, hypothetical: set[str] | None = None,
                 past: set[str] | None = None, denied: set[str] | None = None) -> dict[str, list[Mention]]:
        """The concepts a message states, as a report about someone now; `hypothetical` collects
        those it names only as a hypothetical, `past` the `current_only` ones it dates years back,
        `denied` those it names only to deny them ("it isn't swollen or warm")."""
        found: dict[str, list[Mention]] = {}
        joined = reading.joined
        clause_words_of: dict[int, set[str]] = {}
        for name, concept in self.table.concepts.items():
            unless: list | None = None  # the exceptions' places, found once per concept
            for m in _matches(concept.pattern, joined, reading):
                if any(not x.weak for x in found.get(name, ())):
                    # A concept stated plainly once is stated: later mentions change neither the
                    # findings nor the mention shown (the first plain one). Without this stop a
                    # message repeating "chest pain" for 20,000 characters took 20 s to read.
                    break
                first, last = reading.token_at(m.start()), reading.token_at(max(m.end() - 1, m.start()))
                sentence = reading.sentences[first]
                if reading.sentences[last] != sentence and not concept.across_sentences:
                    continue
                general = sentence in reading.general
                if sentence in reading.hypothetical and not general and name != "crisis":
                    if hypothetical is not None and not self._denied(name, reading, first, last, m.group(0)):
                        hypothetical.add(name)
                    continue  # "what if my knee ever locks?" describes nothing yet
                if general and name == "crisis" and _CRISIS_INFO.search(said := reading.sentence_text(sentence).lower()) \
                        and not _MEANS_ASKED.search(said):
                    continue  # "what are the signs someone is suicidal?": a question, answered
                # (a crisis is never explained away as a hypothetical about oneself)
                clause = reading.clauses[first]
                if concept.current_only and clause in reading.past:
                    if past is not None and not self._denied(name, reading, first, last, m.group(0)):
                        past.add(name)
                        past.update(concept.implies)
                    continue
                if self._denied(name, reading, first, last, m.group(0)):
                    if denied is not None:
                        denied.add(name)
                    continue
                clause_tokens = reading.clause_tokens(clause)
                clause_words = clause_words_of.get(clause)
                if clause_words is None:
                    clause_words = clause_words_of[clause] = {reading.tokens[i].text for i in clause_tokens}
                if (concept.knee_only and clause_words & _OTHER_PARTS and not clause_words & _KNEE_WORDS
                        and _names_other_part(reading, clause_tokens)):
                    continue
                if concept.anchor and not _anchored(reading, sentence):
                    continue
                if concept.unless is not None and unless is None:
                    unless = [(u.start(), u.end()) for u in _matches(concept.unless, joined, reading)]
                if unless and any(
                        start < m.end() and m.start() < end and not _denied_at(reading, start)
                        for start, end in unless):
                    continue  # an exception overlaps the words ("locked out", "collapsed on the sofa")
                if concept.unless_in_clause is not None and self._exception_in_clause(concept, reading, clause_tokens):
                    continue
                if name == "child" and _adult_age_near(reading, first, last):
                    continue
                found.setdefault(name, []).append(
                    Mention(name, reading.original(first, last), turn, sentence in reading.ambiguous, weak=general,
                            sentence=reading.sentence_text(sentence)[:200]))
        # A concept that implies another ("a pop" is an injury event) counts as that one too.
        for name, concept in self.table.concepts.items():
            if concept.implies_unless is not None and concept.implies_unless.search(joined + " "):
                continue  # "heard a pop standing up from the sofa ... no injury": a pop, not an injury
            for implied in concept.implies:
                for m in found.get(name, []):
                    found.setdefault(implied, []).append(Mention(implied, m.words, turn, m.ambiguous, m.weak, m.sentence))
        # Ages written as numbers (not in a hypothetical or general sentence).
        for age, pos in ages(joined):
            i = reading.token_at(pos)
            if reading.sentences[i] in reading.hypothetical:
                continue
            words = reading.original(i, min(i + 3, len(reading.tokens) - 1))
            if age <= 17:
                found.setdefault("child", []).append(Mention("child", words, turn))
            elif age >= 55:
                found.setdefault("age55", []).append(Mention("age55", words, turn))
        return found

    @staticmethod
    def _exception_in_clause(concept, reading: Reading, clause_tokens: list[int]) -> bool:
        """An `unless_in_clause` phrase in the clause, not itself denied ("lost weight without
        dieting" still tells of weight loss)."""
        if not clause_tokens:
            return False
        start = reading.offsets[clause_tokens[0]]
        text = " ".join(reading.tokens[i].text for i in clause_tokens) + " "
        return any(not _denied_at(reading, start + u.start()) for u in concept.unless_in_clause.finditer(text))

    def _denied(self, name: str, reading: Reading, first: int, last: int, matched: str) -> bool:
        """A concept is denied when a negation before it reaches it, or when a negation word sits
        in a gap of the phrase ("calf is not swollen"); a negation word that is part of the phrase
        itself ("don't want to be alive") denies nothing."""
        own = set()
        if name not in self._phrases:  # a race compiles it twice, harmlessly
            self._phrases[name] = [(re.compile(phrase_regex(p)), _phrase_words(p)) for p in self.table.concepts[name].phrases]
        for regex, words in self._phrases[name]:
            if regex.fullmatch(matched):
                own = words
                break
        span = range(first, last + 1)
        cue = reading.negated_by
        if name == "crisis":
            # Only a negation right before the words undoes a crisis ("I'm not suicidal", "not
            # having any thoughts of harming myself"), never one further away.
            # A new subject between them ends the negation's reach, and so does a comma after a
            # "no" or "without", which negate a noun: "if this knee doesn't heal I'm going to end
            # it", "no future without running, might as well be dead" negate the healing and the
            # running, not the plan or the wish ("I'm not, honestly, suicidal" stays denied). The
            # subject may be the phrase's own first word: "if the knee doesn't heal I'll just walk
            # into the sea".
            return any(cue_at(reading, i) and reading.tokens[i].text not in own and reading.clauses[i] == reading.clauses[first]
                       and not any(reading.tokens[j].text in _SUBJECTS
                                   or (reading.tokens[j].text in ",;:" and reading.tokens[i].text in _NOUN_NEGATIONS)
                                   for j in range(i + 1, first + 1))
                       for i in range(max(0, first - CRISIS_NEGATION_REACH), first))
        for i in span:
            c = cue[i]
            if c is None:
                continue
            if c < first:
                return True
            if first <= c <= last and reading.tokens[c].text not in own:
                return True
        return False

    # -- the check ----------------------------------------------------------------------------

    def check(self, message: str, history_user_turns: list[str] | None = None, embed: Embed | None = None,
              reading: Reading | None = None) -> TriageResult:
        reading = reading or self.read(message)
        hypothetical: set[str] = set()
        past: set[str] = set()
        denied: set[str] = set()
        current = self.mentions(reading, 0, hypothetical, past, denied)
        earlier: dict[str, list[Mention]] = {}
        earlier_readings = []
        for back, turn in enumerate(reversed(history_user_turns or []), start=1):
            r, said = self._earlier_turn(turn)
            earlier_readings.append(r)
            for name, ms in said.items():
                earlier.setdefault(name, []).extend(dataclasses.replace(m, turn=back) for m in ms if not m.weak)
        earlier = {k: v for k, v in earlier.items() if v}
        present = set(current) | set(earlier)
        findings = self._rule_findings(current, earlier, present, past)
        # What the crisis screen will read, embedded in the model's pass: one encoder call instead
        # of two (a second call cost more than its tokens: session 10, 601 dev messages in-process).
        screen_units_ = self._screen_units(reading, earlier_readings) if self.screen is not None and embed is not None else []
        if self.classifier is not None and embed is not None:
            # The model adds what the rules missed; where the rules found a red flag, their row and
            # level stand (the model's choice between similar rows is less sure), except a crisis.
            model = self._model_findings(reading, earlier_readings, present, current, earlier, embed, denied - present,
                                         also=[u[0] for u in screen_units_])
            findings += [f for f in model if f.row.crisis or not findings]
        screened: ScreenHit | None = None
        if self.screen is not None and embed is not None and self._crisis_row is not None and not any(f.row.crisis for f in findings):
            screened = self._screen(screen_units_, embed)
            if screened is not None and screened.sure and not findings:
                findings.append(Finding(self._crisis_row, "screen", screened.margin, [], screened.unit))
        result = TriageResult(findings=findings, concepts={k: [m.words for m in v] for k, v in current.items()},
                              named=frozenset(current) | frozenset(hypothetical))
        if findings:
            best = max(findings, key=lambda f: (LEVEL_RANK[f.row.level], f.layer == "rules", f.score, -self._order[f.row.id]))
            result.escalation = self._escalation(best)
            if screened is not None and not best.row.crisis:
                # Another red flag's reply, and the crisis lines with it: the screen is less sure
                # than the table, so it does not take the place of a red flag the person described.
                # At the check-in's bar too (session 10: a roommate found unconscious by an empty
                # bottle of her antidepressants got the fainting row's reply and no crisis lines;
                # an answer would have had them above it).
                also = f"You also wrote \u201c{screened.unit}\u201d. If you are having thoughts of suicide or self-harm: {self.table.actions['crisis']}"
                result.escalation = dataclasses.replace(result.escalation, note=" ".join(x for x in (result.escalation.note, also) if x))
            return result
        if screened is not None:
            result.check_in = self.check_in_text(screened.unit)
        result.refusal = scope_refusal(reading.joined)
        return result

    def check_in_text(self, unit: str) -> str:
        """The check-in shown above an answer (assistant/crisis_phrasings.yaml, `check_in`)."""
        return self.screen.check_in.format(quote=f"\u201c{unit}\u201d", crisis_lines=self.table.actions["crisis"])

    def _rule_findings(self, current, earlier, present, past: set[str] = frozenset()) -> list[Finding]:
        out = []
        for row in self._rows:
            # A row whose context may lie years back (`needs_any_time`: a knee that gives way now,
            # after an old injury) takes it from the past too; its signs must still be current.
            context = self._context(row, present | past if row.needs_any_time else present)
            if context is None:
                continue
            for line in row.lines:
                if not all(c in present for c in line):
                    continue
                wanted = set(line) | set(context)
                strong_now = any(any(not m.weak for m in current.get(c, [])) for c in wanted)
                if (row.crisis and any(c in present for c in line)) or strong_now:
                    mentions = [_best(current.get(c), earlier.get(c)) for c in list(line) + list(context)]
                    out.append(Finding(row, "rules", 1.0, [m for m in mentions if m is not None]))
                    break
        return out

    def _context(self, row: Row, present: set[str]) -> list[str] | None:
        """The context concepts a row needs, when all are present; None when one is missing."""
        needed = list(row.needs) + (["child"] if row.for_children else [])
        return needed if all(c in present for c in needed) else None

    def _model_findings(self, reading, earlier_readings, present, current, earlier, embed: Embed,
                        denied: set[str] = frozenset(), also: list[str] = ()) -> list[Finding]:
        """`also`: texts a later step will embed, embedded in the same pass."""
        units = model_units(reading)
        if len(units) > MAX_UNITS:
            units = units[: MAX_UNITS // 2] + units[-MAX_UNITS // 2 :]
        n_current = len(units)
        for r in earlier_readings[:CRISIS_TURNS]:
            units += [u for u in model_units(r) if u not in units]
        if not units:
            return []
        texts = [u[0] for u in units]
        vectors = embed(texts + [t for t in also if t not in texts])[: len(texts)]
        out: list[Finding] = []
        for d in self.classifier.detect(texts, vectors):
            row = self.table.row(d.row)
            k = texts.index(d.unit)
            if k >= n_current and not row.crisis:
                continue  # an earlier turn's own red flag was answered when it was sent
            if not self._has_cue(row.id, units[k][1]):
                continue  # nothing in the clause is about this red flag: the model is off topic
            if self._excepted(row, " ".join(units[k][1])):
                continue  # the table's own exceptions for this red flag are in the clause (hill reps, lol)
            if row.model_needs and not all(c in present for c in row.model_needs):
                continue
            if self._needs_evidence(row):
                if not any(c in present for line in row.lines for c in line):
                    continue  # a red flag made of two signs needs one of them in plain words
                if all(any(c in denied for c in line) for line in row.lines):
                    # ... and the model does not stand in for a sign the message denies: "a cold and
                    # a bit of a temperature ... my knee isn't swollen or warm" (red-flag set H)
                    continue
            context = self._context(row, present)
            if context is None and row.needs and row.otherwise:
                row = self.table.row(row.otherwise)
                context = self._context(row, present)
            if context is None:
                continue
            mentions = [m for c in context for m in (current.get(c) or earlier.get(c))[:1]]
            out.append(Finding(row, "model", d.probability, mentions, d.unit))
        return out

    def _screen_units(self, reading: Reading, earlier_readings: list[Reading]) -> list[tuple[str, bool]]:
        units = screened_units(reading, self.screen)
        for r in earlier_readings[:CRISIS_TURNS]:
            units += [u for u in screened_units(r, self.screen) if u not in units]
        if len(units) > 2 * MAX_UNITS:
            units = units[:MAX_UNITS] + units[-MAX_UNITS:]
        return units

    def _screen(self, units: list[tuple[str, bool]], embed: Embed) -> ScreenHit | None:
        if not units:
            return None
        texts = [u[0] for u in units]
        return self.screen.screen(texts, embed(texts), whole=[u[1] for u in units])

    def _escalation(self, finding: Finding) -> Escalation:
        row = finding.row
        triggers = [m.words for m in finding.mentions]
        if finding.layer in ("model", "screen") and finding.unit:
            triggers = [finding.unit] + [t for t in triggers if t not in finding.unit]
        elif row.crisis:
            # The person's own sentence, not a fragment of it: "what you wrote (...)" reads as respect.
            triggers = [m.sentence or m.words for m in finding.mentions]
        notes = []
        earlier = [m for m in finding.mentions if m.turn > 0]
        if earlier:
            said = ", ".join(f"\u201c{m.words}\u201d" for m in earlier)
            notes.append(f"You mentioned {said} earlier in our conversation.")
        if any(m.ambiguous for m in finding.mentions):
            notes.append("You asked what to do if this happens: if it is happening now, please act on this advice.")
        return Escalation(
            level=row.escalation_level,
            reason=row.reason,
            action=self.table.actions[row.level],
            rule=row.id,
            source="; ".join(row.sources),
            crisis=row.crisis,
            triggers=tuple(dict.fromkeys(t for t in triggers if t)),
            why=row.why,
            note=" ".join(notes),
        )


# The learned detector reads a unit only when at least this share of its words are English words
# (after spelling correction): it was trained on English clauses and reads nothing in a string of
# unknown tokens, while embedding one costs up to ~0.2 s (a 2,000-character run of junk: the
# slowest fuzz examples). Half: typo-heavy messages ("my kneee is swolen n hot, cnt walk") keep
# well above it once corrected; junk and other languages fall far below. The rules read every unit.
ENGLISH_SHARE = 0.5


def mostly_english(tokens: list[str]) -> bool:
    share = english_share([t for t in tokens if t.isalpha()])
    return share is None or share >= ENGLISH_SHARE  # nothing to judge by: the model reads it


def screen_units(reading: Reading) -> list[tuple[str, bool]]:
    """What the crisis screen reads: each sentence and each clause of a message, in the user's
    words, and whether it is a whole sentence (True) or a part
    of one: a clause, or a piece cut at a comma or a subordinate turn (False: a part raises the
    check-in at most, since the words cut off may be what makes it harmless: "i want to sleep
    forever | after that long run lol", "there's no point in anything | but walking").
    Unlike the learned detector's units, past, conditional and denied ones are kept: "I sat on the
    bridge railing last night", "if it doesn't heal I'll end it" are crises, and the harmless bank
    holds the denials ("I'm not suicidal, just fed up"). Questions about crisis in general ("what
    are the signs someone is suicidal?") are left out, as the rules leave them."""
    out: dict[str, bool] = {}
    for s in sorted(set(reading.sentences)):
        idx = [i for i in reading.sentence_tokens(s) if reading.tokens[i].text not in ".!?;"]
        if not idx:
            continue
        spans = [idx]
        clauses = sorted({reading.clauses[i] for i in idx})
        if len(clauses) > 1:
            spans += [[i for i in idx if reading.clauses[i] == c] for c in clauses]
        for span in list(spans):
            spans += _subordinate_parts(reading, span)
        for n, span in enumerate(spans):  # the first is the sentence; its clauses are parts too
            tokens = [reading.tokens[i].text for i in span]
            least = MIN_SENTENCE_WORDS if n == 0 else MIN_WORDS
            if sum(t.isalnum() or "'" in t for t in tokens) < least or not mostly_english(tokens):
                continue
            if _CRISIS_INFO.search(" ".join(tokens)):
                continue
            # (the screen's `reads` counts the words of the text itself as well)
            text = reading.original(span[0], span[-1])
            out[text] = out.get(text, False) or n == 0
    return list(out.items())


# Where a clause turns into a subordinate one ("scratching my legs till they bleed | whenever the
# knee flares up", "I take a razor to my ankle | each time it swells"): the screen also reads each
# side on its own, because a knee clause beside a crisis one pulls the whole towards the harmless
# knee messages of the bank.
_SUBORDINATORS = frozenset("whenever because since when while after before if every each so".split())
_SUBORDINATE_OPENERS = frozenset("i i'm i've i'd i'll my it it's he she they we the this that time".split())


def _subordinate_parts(reading: Reading, span: list[int]) -> list[list[int]]:
    """The two sides of each subordinate turn in a span, and its comma-separated pieces ("knee's
    wrecked, season's done, honestly ready to check out permanently")."""
    toks = [reading.tokens[i].text for i in span]
    out = []
    for k in range(1, len(span) - 1):
        if toks[k] in _SUBORDINATORS and toks[k + 1] in _SUBORDINATE_OPENERS:
            out += [span[:k], span[k:]]
    commas = [k for k, t in enumerate(toks) if t == ","]
    if commas:
        bounds = [-1] + commas + [len(span)]
        out += [span[a + 1:b] for a, b in zip(bounds, bounds[1:]) if b - a > 1]
    return out


def screened_units(reading: Reading, screen: CrisisScreen) -> list[tuple[str, bool]]:
    """The units of `screen_units` the crisis screen reads: those with a cue word, and those
    without one that the learned detector reads too (`model_units`), in the detector's wording (a
    whole sentence with its closing mark), so their vectors are the ones already computed for it.
    Why only those: reading every unit without a cue word (session 10) cost 60% more tokens through
    the encoder and 25-50% more time a message (601 dev messages, in-process), for 0.854 instead
    of 0.841 of the calibration's crisis messages; the detector's units leave out what is past,
    denied or hypothetical, and the cued units still read those."""
    detector = [t for t, _ in model_units(reading)]
    wording = {t: t for t in detector} | {t.rstrip(".!?;").rstrip(): t for t in detector}
    out: list[tuple[str, bool]] = []
    for unit, whole in screen_units(reading):
        if not screen.reads(unit, whole):
            continue
        if screen.cued(unit):
            out.append((unit, whole))
        elif unit in wording and (wording[unit], whole) not in out:
            out.append((wording[unit], whole))
    return out


def model_units(reading: Reading) -> list[tuple[str, list[str]]]:
    """What the learned detector scores: each sentence and each clause of a message (in the user's
    words, with its normalised tokens) that describes someone now: not hypothetical or general, not
    in the past, no denial in it (embeddings barely tell "my knee is hot" from "my knee isn't hot";
    the rules handle denials), and at least MIN_UNIT_WORDS words long."""
    out: list[tuple[str, list[str]]] = []
    spans: list[list[int]] = []
    for s in sorted(set(reading.sentences)):
        if s in reading.hypothetical:
            continue
        idx = reading.sentence_tokens(s)
        spans.append(idx)
        clauses = sorted({reading.clauses[i] for i in idx})
        if len(clauses) > 1:
            spans += [[i for i in idx if reading.clauses[i] == c] for c in clauses]
    seen = set()
    for n, idx in enumerate(spans):
        whole = idx
        idx = [i for i in idx if reading.tokens[i].text not in ".!?;"]
        if not idx:
            continue
        if len(whole) > len(idx) and whole[-1] == idx[-1] + 1 and len(set(reading.sentences[i] for i in whole)) == 1:
            idx_text_end = whole[-1]  # a whole sentence keeps its closing mark: the same text as the question
        else:
            idx_text_end = idx[-1]
        tokens = [reading.tokens[i].text for i in idx]
        if sum(t.isalnum() or "'" in t for t in tokens) < MIN_UNIT_WORDS:
            continue
        if not mostly_english(tokens):
            continue
        if any(reading.negated_by[i] is not None for i in idx) or any(reading.clauses[i] in reading.past for i in idx):
            continue
        if _ABLE.search(" ".join(tokens)):
            continue
        text = reading.original(idx[0], idx_text_end)
        if text not in seen:
            seen.add(text)
            out.append((text, tokens))
    return out


def _phrase_words(p: str) -> frozenset[str]:
    return frozenset(w.rstrip("*") for w in re.split(r"[\s\[\]()|/~]+", p.lower()) if w)


def _matches(pattern: re.Pattern, joined: str, reading: Reading):
    """Every place a concept's phrases match, trying again from each next word: a match that is
    later rejected (denied, say) must not hide a shorter one inside it ("knee isn't stable, it goes
    out" also holds "it goes out")."""
    pos, seen = 0, set()
    while pos < len(joined):
        m = pattern.search(joined, pos)
        if m is None:
            return
        if m.span() not in seen:
            seen.add(m.span())
            yield m
        nxt = joined.find(" ", m.start()) + 1  # the next token
        if nxt <= 0:
            return
        pos = nxt


def _best(now: list[Mention] | None, before: list[Mention] | None) -> Mention | None:
    """The mention to show for a concept: from this message in plain words first."""
    ordered = sorted(now or [], key=lambda m: m.weak) + list(before or [])
    return ordered[0] if ordered else None


def _denied_at(reading: Reading, char: int) -> bool:
    """Is the token at position `char` of the joined message denied by a negation before it?"""
    return reading.negated_by[reading.token_at(char)] is not None


def _adult_age_near(reading: Reading, first: int, last: int) -> bool:
    """"my son (25)", "my 30 year old daughter": a child word that names an adult."""
    lo, hi = max(0, first - 4), min(len(reading.tokens) - 1, last + 4)
    window = " ".join(t.text for t in reading.tokens[lo : hi + 1])
    found = ages(window)
    return bool(found) and all(a >= 18 for a, _ in found)


# --------------------------------------------------------------------------- the reply


def escalation_markdown(escalation: Escalation, marker: str = "") -> str:
    """The reply to a red flag: what to do now and why, in the knowledge base's cited words; no
    exercise advice. `marker` (" [1]") cites the red-flags article's section on this row."""
    quoted = "; ".join(f"\u201c{t}\u201d" for t in escalation.triggers[:3])
    note = f"\n\n{escalation.note}" if escalation.note else ""
    if escalation.crisis:
        return (
            f"**You deserve support right now.** {escalation.action}\n\n"
            f"**Why:** what you wrote ({quoted}) sounds like thoughts of suicide or self-harm. {escalation.why}{marker}"
            f"{note}\n\nYou do not have to face this alone, and talking to someone now can help. "
            "Your knee questions can wait until you are safe."
        )
    heading = "Emergency" if escalation.level == "emergency" else "Urgent: see a doctor today"
    said = f" ({quoted})" if quoted else ""
    return (
        f"**{heading}.** {escalation.action}\n\n"
        f"**Why:** you described {escalation.reason}{said}. {escalation.why}{marker}{note}\n\n"
        "Please stop running and exercising until a doctor has checked you. "
        "This is not a diagnosis; a clinician needs to examine you."
    )
