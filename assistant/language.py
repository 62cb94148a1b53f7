"""Reading a message the way triage needs it: words, spelling, clauses, what is denied, what is
hypothetical or about people in general, what is in the past, and the ages it mentions.

Everything here is general English, not medical knowledge (that is in red_flags.yaml):
- words are tokens with their place in the original message, so whatever matches can be shown
  to the user in their own words;
- spelling: contractions are written one way ("cant", "can not", "cannot" -> "can't"); a word the
  language model's vocabulary does not know, and that is one edit from a symptom word of the
  red-flag table (two for long words), is read as that word ("swolen" -> "swollen"). A word the
  model knows is never changed, so "looked" never becomes "locked";
- clauses end at sentence punctuation, at contrast words ("but", "although"), and where a new
  subject starts ("..., my knee is", "never had this before my knee is hot"): a negation reaches
  only to the end of its own clause, and only a few words;
- phrases that start with a negation word but deny nothing ("not gonna lie", "no clue what
  happened", "never had this before", "without any reason") are not negations;
- a sentence that asks about people in general, or a hypothetical ("what if", "if I ever", "what
  are the signs of"), describes nobody's symptom.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

# --------------------------------------------------------------------------- words

# Words (with inner hyphens and apostrophes), numbers (apart from the letters after them: "6kg",
# "3am", "14yo"), and single other characters.
_TOKEN = re.compile(r"[A-Za-z]+(?:[-'\u2019][A-Za-z]+)*|\d+(?:[.,]\d+)?|[^\sA-Za-z0-9]")
# "'s" after a word of the red-flag table is split off ("knee's swollen", "my son's knee"), so
# "knee" matches "knee" ("runner's" stays whole); these words keep theirs: the table writes them so.
_KEEP_S = frozenset("it's he's she's that's what's there's let's who's here's where's".split())
# Plurals of body words read as the singular: the table writes "knee", "leg".
_SINGULAR = {"knees": "knee", "kneecaps": "kneecap", "legs": "leg", "toes": "toe", "hips": "hip", "thighs": "thigh",
             "calves": "calf", "calfs": "calf", "foots": "foot", "shins": "shin", "ankles": "ankle"}
_SENTENCE_END = frozenset(".!?;\n\u2026")

# One way of writing each contraction: the table's phrases use these forms.
_CONTRACTIONS = {
    "cant": "can't", "cannot": "can't", "couldnt": "couldn't", "dont": "don't", "doesnt": "doesn't",
    "didnt": "didn't", "isnt": "isn't", "wasnt": "wasn't", "arent": "aren't", "werent": "weren't",
    "havent": "haven't", "hasnt": "hasn't", "hadnt": "hadn't", "wont": "won't", "wouldnt": "wouldn't",
    "shouldnt": "shouldn't", "im": "i'm", "ive": "i've", "youre": "you're", "hes": "he's", "shes": "she's",
    "thats": "that's", "whats": "what's", "theres": "there's", "u": "you", "ur": "your", "n": "and",
    "&": "and", "bc": "because", "cuz": "because", "coz": "because", "cos": "because", "tho": "though",
    "thru": "through", "wanna": "want to", "gonna": "going to", "gotta": "got to", "kinda": "kind of",
    "dunno": "don't know", "idk": "i don't know", "ppl": "people", "pls": "please", "plz": "please",
    "yrs": "years", "yr": "year", "hrs": "hours", "hr": "hour", "mins": "minutes", "wk": "week",
    "wks": "weeks",
}
_PAIRS = {
    ("can", "not"): "can't", ("could", "not"): "couldn't", ("will", "not"): "won't", ("do", "not"): "don't",
    ("does", "not"): "doesn't", ("did", "not"): "didn't", ("is", "not"): "isn't", ("was", "not"): "wasn't",
    ("are", "not"): "aren't", ("have", "not"): "haven't", ("has", "not"): "hasn't", ("would", "not"): "wouldn't",
    ("i", "am"): "i'm",
}


@dataclass(frozen=True)
class Token:
    text: str  # normalised
    start: int  # span in the original message
    end: int


def _split(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def tokens_of(text: str, corrector: "Speller | None" = None) -> list[Token]:
    """The message as normalised tokens, each knowing where it was in the original."""
    raw = []
    for word, start, end in _split(text):
        low = word.lower().replace("\u2019", "'")
        if low.endswith("'s") and low not in _KEEP_S and corrector is not None and low[:-2] in corrector.split_s:
            stem = low[:-2]
            raw.append(Token(_SINGULAR.get(stem, stem), start, end - 2))
            raw.append(Token("'s", end - 2, end))
            continue
        mapped = _CONTRACTIONS.get(low, low)
        mapped = _SINGULAR.get(mapped, mapped)
        for piece in mapped.split(" "):
            raw.append(Token(piece, start, end))
    tokens: list[Token] = []
    i = 0
    while i < len(raw):
        if i + 1 < len(raw) and (raw[i].text, raw[i + 1].text) in _PAIRS:
            tokens.append(Token(_PAIRS[(raw[i].text, raw[i + 1].text)], raw[i].start, raw[i + 1].end))
            i += 2
            continue
        tok = raw[i]
        if corrector is not None:
            fixed = corrector.correct(tok.text)
            if fixed != tok.text:
                tok = Token(fixed, tok.start, tok.end)
        tokens.append(tok)
        i += 1
    # A line break ends a sentence (people write stories and lists line by line): a "." token
    # stands where the original text breaks a line.
    out: list[Token] = []
    for j, tok in enumerate(tokens):
        if j and "\n" in text[tokens[j - 1].end : tok.start] and out and out[-1].text not in _SENTENCE_END:
            out.append(Token(".", tokens[j - 1].end, tokens[j - 1].end))
        out.append(tok)
    return out


# --------------------------------------------------------------------------- spelling


def _edit_distance(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance (a transposition is one edit), stopping past `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2, prev = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if prev2 is not None and i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


# Shorter words are never corrected: among 4-letter words a single edit turns too many ordinary
# abbreviations into symptom words ("tues" -> "toes").
MIN_TYPO_LENGTH = 5


class Speller:
    """Reads a misspelt symptom word as the word meant, and nothing else.

    `known`: every word that is a word (an English word list, the embedding model's vocabulary, the
    knowledge base's words, the table's words): never changed. `targets`: the words of the red-flag table a typo may
    stand for (a prefix such as "injur*" stands for the known words it starts: injury, injured ...).
    `spellings`: the table's list of everyday misspellings and shorthand ("nite" -> "night"),
    applied first. Otherwise a word is changed only when it is unknown, at least MIN_TYPO_LENGTH
    letters long (4-letter words: only a swap of two neighbouring letters, "wlak"), and one target
    with the same first letter is nearest: one edit away, or two for words of 8 letters or more. A
    tie is broken for a missing letter, then an extra one, over a changed one ("chils" -> "chills",
    not "child"; "lockd" -> "locked"); a tie that remains leaves the word alone.
    """

    def __init__(self, known: frozenset[str], targets: frozenset[str], prefixes: frozenset[str] = frozenset(),
                 spellings: dict[str, str] | None = None):
        long_prefixes = tuple(p for p in prefixes if len(p) >= 4)  # one C-level startswith a word, not one a prefix
        expanded = set(targets) | ({w for w in known if w.startswith(long_prefixes)} if long_prefixes else set())
        self.known = known | targets
        self.prefixes = tuple(sorted(prefixes))  # a word that starts with one is what the table means
        self.spellings = dict(spellings or {})
        self.targets = sorted(t for t in expanded if len(t) >= 4 and t.isalpha())
        self.split_s = frozenset(targets) | frozenset(_SINGULAR)  # words whose "'s" is split off
        self._cache: dict[str, str] = {}

    def is_known(self, word: str) -> bool:
        """A word, or an inflection of one ("crunches", "limped", "swelling")."""
        if word in self.known or word.startswith(self.prefixes):
            return True
        for suffix in ("es", "s", "ed", "ing", "ly", "er", "est"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                stem = word[: -len(suffix)]
                if stem in self.known or stem + "e" in self.known or (len(stem) > 3 and stem[-1] == stem[-2] and stem[:-1] in self.known):
                    return True
        return False

    def correct(self, word: str) -> str:
        if word in self.spellings:
            return self.spellings[word]
        if word in self._cache:
            return self._cache[word]
        fixed = word
        if len(word) >= 4 and word.isalpha() and not self.is_known(word):
            fixed = self._nearest(word)
        if len(self._cache) < 50_000:
            self._cache[word] = fixed
        return fixed

    def _nearest(self, word: str) -> str:
        if len(word) < MIN_TYPO_LENGTH:
            swaps = [t for t in self.targets if len(t) == len(word) and t[0] == word[0] and sorted(t) == sorted(word)
                     and _edit_distance(word, t, 1) == 1]
            return swaps[0] if len(swaps) == 1 else word
        limit = 1 if len(word) < 8 else 2
        scored = []
        for t in self.targets:
            if t[0] != word[0] or abs(len(t) - len(word)) > limit:
                continue
            d = _edit_distance(word, t, limit)
            if d <= limit:
                # Ties: a letter left out (the target is longer) before a letter too many, before a
                # letter changed: quick typing drops letters most.
                kind = 0 if len(t) > len(word) else 1 if len(t) < len(word) else 2
                scored.append((d, kind, t))
        if not scored:
            return word
        scored.sort()
        best = [x for x in scored if x[:2] == scored[0][:2]]
        return best[0][2] if len(best) == 1 else word


# A word of pyspellchecker's list counts as a real word from this count up. The list holds rare and
# archaic words that are also everyday typos of symptom words ("straiten" 50, for "straighten");
# common words sit far above (crutch 950, crunch 2,980), and the embedding model's 24,000-word
# vocabulary guards the common words anyway.
MIN_WORD_COUNT = 100


# The words above, written once to a plain file that ships with the code: reading and filtering the
# package's 160,000-word JSON took 0.5 s of every cold `knee ask` (measured 2026-11-27: 526 ms against
# 25 ms for the file). `python -m assistant.language` writes it again from the installed package;
# tests/test_triage.py checks the file is what the pinned pyspellchecker gives.
ENGLISH_WORDS_PATH = Path(__file__).parent / "data" / "english_words.txt"


def derive_english_words() -> frozenset[str]:
    """The English words of pyspellchecker's frequency list seen at least MIN_WORD_COUNT times:
    real words, which the speller never changes. Empty if the list cannot be read."""
    import gzip
    import json as _json
    import os

    try:
        import spellchecker

        path = os.path.join(os.path.dirname(spellchecker.__file__), "resources", "en.json.gz")
        with gzip.open(path) as f:
            return frozenset(w for w, n in _json.loads(f.read()).items() if w.isalpha() and n >= MIN_WORD_COUNT)
    except (ImportError, OSError, ValueError):
        return frozenset()


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """`derive_english_words()`, read from the file written from it (derived again if the file is
    missing: the model's vocabulary still guards when neither can be read)."""
    try:
        return frozenset(ENGLISH_WORDS_PATH.read_text(encoding="utf-8").split())
    except OSError:
        return derive_english_words()


def write_english_words() -> int:
    words = sorted(derive_english_words())
    ENGLISH_WORDS_PATH.write_text("\n".join(words) + "\n", encoding="utf-8")
    return len(words)


def english_share(words: list[str]) -> float | None:
    """The share of these (lower-case) words that are English words; None when there is nothing to
    judge by (no words, or the word list cannot be read)."""
    known = english_words()
    if not words or not known:
        return None
    return sum(w in known for w in words) / len(words)


@lru_cache(maxsize=4)
def model_vocabulary(model_path: str) -> frozenset[str]:
    """Whole words of the embedding model's WordPiece vocabulary (about 24,000 English words)."""
    path = Path(model_path) / "vocab.txt"
    try:
        words = path.read_text(encoding="utf-8").split("\n")
    except OSError:
        return frozenset()
    return frozenset(w for w in words if w.isalpha() and not w.startswith("##"))


# --------------------------------------------------------------------------- clauses

_CONTRAST = frozenset("but although though however whereas yet except apart anyway anyways btw also plus".split())
_SUBJECTS = frozenset(
    "i i'm i've i'd i'll my it it's he she he's she's his her they they're their we we're our there there's now then "
    "the this that these those".split()
)
_PRONOUNS = frozenset("i he she they we".split())
_POSSESSIVES = frozenset("my his her our their the your".split())
# Words that, two or three words after "my" / "the", show that a new clause has started
# ("... before my knee is hot").
_VERBS = frozenset(
    """is was are were has had have feels felt looks looked looking keeps kept went goes got gets getting started starts
    swelled swells swelling swollen hurts hurt hurting aches ached locked locks locking gave gives giving won't can't isn't
    wasn't became becomes turned turns popped pops seems seemed went stays stayed ballooned blew buckled buckles collapsed
    collapses is's""".split()
)
_PRONOUN_VERBS = frozenset(
    """have had fell felt heard think thought got feel get want wanted can't couldn't was am just also now really then did
    tripped twisted landed noticed woke went started keep keeps kept cannot can could tried try took take need needed
    hurt hurts landed jumped ran run slipped crashed collided""".split()
)
_LEADS_INTO_CLAUSE = frozenset("and so then that if when because as since until after before though although where while".split())


def clause_ids(tokens: list[Token]) -> list[int]:
    """The clause each token belongs to (numbered from 0)."""
    ids: list[int] = []
    clause = 0
    words = [t.text for t in tokens]
    n = len(words)
    for i, w in enumerate(words):
        boundary = False
        if i > 0:
            prev = words[i - 1]
            nxt = words[i + 1] if i + 1 < n else ""
            if prev in _SENTENCE_END or prev in (":", "-", "\u2013", "\u2014", "/"):
                boundary = True
            elif w in _CONTRAST:
                boundary = True
            elif prev == "," and (w in _SUBJECTS or w in ("and", "so", "also", "plus")):
                boundary = True
            elif w in ("and", "so", "then") and (nxt in _SUBJECTS or nxt == "now"):
                boundary = True
            elif w in _POSSESSIVES and prev not in _LEADS_INTO_CLAUSE and prev not in _SUBJECTS and not _is_preposition(prev):
                if any(words[j] in _VERBS for j in range(i + 2, min(i + 4, n))):
                    boundary = True
            elif w in _PRONOUNS and prev not in _LEADS_INTO_CLAUSE and prev not in _SUBJECTS and nxt in _PRONOUN_VERBS:
                boundary = True
        if boundary:
            clause += 1
        ids.append(clause)
    return ids


_PREPOSITIONS = frozenset("of in on at to for with from by about into onto over under above below behind near around".split())


def _is_preposition(word: str) -> bool:
    return word in _PREPOSITIONS


def sentence_ids(tokens: list[Token]) -> list[int]:
    ids, sentence = [], 0
    for i, t in enumerate(tokens):
        if i > 0 and tokens[i - 1].text in _SENTENCE_END:
            sentence += 1
        ids.append(sentence)
    return ids


# --------------------------------------------------------------------------- negation

_NEGATION_CUES = frozenset(
    """no not never without none nor neither nothing don't doesn't didn't isn't wasn't aren't weren't haven't
    hasn't hadn't shouldn't denies denied deny zero""".split()
)
# Multi-word cues.
_NEGATION_PHRASES = ("free of", "ruled out", "absence of", "lack of", "nothing like", "rather than", "instead of")
# Phrases that begin with a negation word and deny nothing that follows them.
PSEUDO_NEGATIONS = (
    "not gonna lie", "not going to lie", "no lie", "not lying", "no clue", "no idea", "not sure", "not certain",
    "not to mention", "not only", "no doubt", "no joke", "nothing but", "prob nothing", "probably nothing", "likely nothing",
    "nothing serious", "nothing much", "no biggie", "no worries", "not joking", "not kidding", "no kidding", "no big deal",
    "never had this", "never had that", "never had anything like", "never had pain like", "never felt anything like",
    "never been this", "never been so", "never seen it this", "never seen it like", "no reason", "for no reason",
    "without any reason", "without reason", "without warning", "without any warning", "no warning", "not long ago",
    "not long after", "no matter", "not just", "if not", "not that", "don't know", "didn't know", "no one",
    "nobody", "not much better", "not getting better", "not improving", "didn't help", "doesn't help", "not helping",
    "didn't work", "doesn't work", "isn't working", "not working", "hasn't gone down", "hasn't gone", "not gone down",
    "won't go down", "not going down", "isn't going down", "hasn't settled", "not settled", "not settling",
    "doesn't go down", "didn't go down", "no better", "not better", "no improvement", "never went down",
    "never settled", "never gone", "no end", "not normal", "isn't normal", "doesn't feel right", "don't feel right",
    "not right", "doesn't look right", "not look right", "no longer", "not any more", "not anymore",
    "no pain relief", "nothing helps", "nothing works", "not even", "can't not", "didn't stop", "not stopping",
    "doesn't stop", "won't stop", "not a joke", "not exaggerating", "no exaggeration", "without much",
    "without any force", "without force", "without any cause", "without cause", "without a reason",
)
# "never ... before" (within this many words) says "this is the first time", and denies nothing:
# "never hurt my knee before, jarred it ..." still tells of an injury.
NEVER_BEFORE_REACH = 6
NEGATION_REACH = 6  # words after a negation cue that it can deny (within its clause)


def cue_at(reading: "Reading", i: int) -> bool:
    """Is token i a negation cue that denies something (not one of PSEUDO_NEGATIONS)?"""
    words = [t.text for t in reading.tokens]
    if words[i] not in _NEGATION_CUES:
        return False
    for p in PSEUDO_NEGATIONS:
        parts = p.split(" ")
        for k in range(len(parts)):
            if parts[k] == words[i] and words[i - k : i - k + len(parts)] == parts:
                return False
    return not (words[i] == "never" and "before" in words[i + 1 : i + 1 + NEVER_BEFORE_REACH])


def negation_sources(tokens: list[Token], clauses: list[int]) -> list[int | None]:
    """For each token: the index of the negation cue that denies it (a cue before it in its clause,
    within NEGATION_REACH words), or None."""
    words = [t.text for t in tokens]
    n = len(words)
    flags: list[int | None] = [None] * n
    joined_from = lambda i, k: " ".join(words[i : i + k])  # noqa: E731
    for i, w in enumerate(words):
        cue_len = 0
        if w in _NEGATION_CUES:
            cue_len = 1
        else:
            for phrase in _NEGATION_PHRASES:
                k = phrase.count(" ") + 1
                if joined_from(i, k) == phrase:
                    cue_len = k
                    break
        if not cue_len:
            continue
        if any(joined_from(i, p.count(" ") + 1) == p for p in PSEUDO_NEGATIONS if p.split(" ", 1)[0] == w):
            continue
        if w == "never" and "before" in words[i + 1 : i + 1 + NEVER_BEFORE_REACH]:
            continue
        # A cue one word into a pseudo-negation ("for no reason", "i don't know"): also none.
        if i > 0 and any(joined_from(i - 1, p.count(" ") + 1) == p for p in PSEUDO_NEGATIONS if p.split(" ", 1)[0] == words[i - 1]):
            continue
        for j in range(i + cue_len, min(n, i + cue_len + NEGATION_REACH)):
            if clauses[j] != clauses[i]:
                break
            if flags[j] is None:
                flags[j] = i
    return flags


# --------------------------------------------------------------------------- past, hypothetical, general

_HISTORICAL = re.compile(
    r"\b(?:\d+|a|one|two|three|four|five|six|seven|eight|nine|ten|a few|few|many|several|some|couple of|a couple of)"
    r" (?:years?|decades?) (?:ago|back)\b|\bwhen (?:i|he|she|my \w+|his \w+|her \w+) was (?:a |little|young|younger|at school|in school|\d+|a kid|a child|a teen|a teenager)"
    r"|\bas a (?:kid|child|teen|teenager|boy|girl)\b|\bback in (?:19|20)\d\d\b|\blast year\b|\blast season\b"
    # "in the past", but not "in the past few days" (a recent report); decades ("back in the 90s")
    r"|\bin the past\b(?! (?:\d+|few|couple|two|three|four|five|six|24|48|week|weeks|day|days|hour|hours|month|fortnight|night)\b)"
    # (tokens: "90s" is read as "90 s", "'90s" as "' 90 s")
    r"|\bin the (?:19|20)[0-9]0 s\b|\bback in the (?:' )?(?:[0-9]0 s|nineties|eighties|seventies|sixties|noughties)\b"
    r"|\bused to\b|\bpreviously\b|\byears back\b|\bin (?:19|20)\d\d\b|\bas a youngster\b|\bwhen i was younger\b|\bin my (?:teens|twenties|20s)\b"
)
# Words that bring a dated clause back to the present ("it locked years ago and again now") ... but
# not "fine now", which closes a story ("my coach fainted at a race years ago and is fine now"),
# nor the "now" of an age ("when I was 14 (I'm 32 now)", "she's now 17": red-flag set L).
# A recent moment does too: "had knee surgery 2 years ago, can't put any weight on it since I fell
# this morning" is one clause (no subject after the comma), and its red flag was read as past and
# missed (session 14; so was a knee swollen after a twist "yesterday" beside a repair "5 years ago").
# Checked on the red-flag and crisis sets: no item changes. (A bare "years ago" as a date, and a
# question after a comma as a clause of its own, were tried too: each changes the clauses the learned
# detector trains on, and the retrained model gave three false crisis replies on the crisis sets.)
_NOW = re.compile(r"\b(?:again|today|since then|this time|yesterday|tonight|this (?:morning|afternoon|evening|week)"
                  r"|last (?:night|week)|right now|at the moment|just now|earlier|(?:\d+|a|an|one|two|three|a few|few|a couple of) (?:hours?|days?) ago)\b|(?<!fine )(?<!ok )(?<!okay )(?<!well )(?<!better )(?<!good )(?<!healthy )(?<![0-9] )\bnow\b(?! [0-9])(?! aged)")
_HYPOTHETICAL = re.compile(
    r"\b(?:what if|if ever|if i ever|if you ever|if they ever|if he ever|if she ever|if it ever|if my knee ever|in case|suppose|supposing"
    r"|imagine|hypothetically|should i ever|should it ever|let's say|if someone|if someones|if somebody|if somebodys|if anyone|if a |if an |if your|if you"
    r"|what happens if|what happens when|what would happen|what do you do if|what should you do|what do people do|what should someone"
    r"|how do you know|how would i know|how do i know if|how can i tell if|how would you know|how can you tell)\b"
)
# Wording that asks about people or red flags in general. A sentence without it, even a question
# without "I" or "my" ("calf swollen and hot, what could it be?"), is someone's own report: people
# drop their pronouns.
_GENERAL_FRAMING = re.compile(
    r"\b(?:signs? of|symptoms? of|warning signs?|red flags?|difference between|mistaken for|confused with|what does it mean"
    r"|what counts as|count as|counts as|treated as|considered|classed as|in general|generally|typically|usually"
    r"|what are the|which symptoms|which signs|when should (?:you|someone|people|a)|when does|how serious|how urgent|how common"
    r"|what causes|why do|why does|why is|can a |can an |could a |could an |someone|somebody|anyone|people|runners|a runner"
    r"|the ottawa|ottawa knee|criteria|guidelines?)\b"
)
# A story from a programme, a podcast or an article about someone else ("Watching a hospital drama
# last night, a marathon runner collapsed with chest pain"; red-flag set H, session 9): nobody the
# writer describes. Both are needed, and the sentence must not be personal: "watching telly, knee
# suddenly went hot" (pronouns dropped) stays a report.
_MEDIA = re.compile(
    r"\b(?:tv|telly|television|drama|film|movie|documentary|podcast|series|episode|soap|programme|program|novel|article"
    r"|news|youtube|video|netflix|documentaries|podcasts)\b"
)
_SOMEONE_ELSE = re.compile(
    r"\b(?:a|an|the|this|one|some) (?:[a-z-]+ )?(?:runner|man|woman|guy|girl|boy|lady|bloke|athlete|player|character"
    r"|patient|person|marathoner|cyclist|footballer|presenter|host|actor|actress|contestant|triathlete|sprinter)\b"
)
# Words that place a description at a moment: a report, not a general question.
_REPORT_TIME = re.compile(
    r"\b(?:since|yesterday|today|tonight|this (?:morning|afternoon|evening|week)|last (?:night|week)|right now|at the moment"
    r"|for (?:\d+|a|an|two|three|four|five|a few|several) (?:hours?|days?|weeks?|months?)|(?:\d+|a|two|three) (?:hours?|days?|weeks?) ago)\b"
)
_QUESTION_START = frozenset("what when how why should is are do does can could would will which who where any anyone".split())
# Words that make a sentence about someone in particular: the writer, or someone they know.
_PERSONAL = frozenset("i i'm i've i'd i'll me my mine myself we we're our us he he's she she's his her him hers herself himself".split())
# People: about someone in particular after "my", "our", "his" ... ("my son"), in general after "a"
# ("when a teenager has knee pain").
_PEOPLE = frozenset(
    """son daughter mum mom dad husband wife partner boyfriend girlfriend friend kid brother sister grandson granddaughter
    grandma grandpa nan gran granny grandad nephew niece boy girl child children toddler baby teenager teen""".split()
)


def _positions(ids: list[int]) -> dict[int, list[int]]:
    """Each id -> the positions where it occurs, in order."""
    positions: dict[int, list[int]] = {}
    for i, x in enumerate(ids):
        positions.setdefault(x, []).append(i)
    return positions


@dataclass
class Reading:
    """A message read for triage."""

    text: str  # the original message
    tokens: list[Token]
    clauses: list[int]
    sentences: list[int]
    negated_by: list[int | None]  # per token: the negation cue that denies it
    past: set[int] = field(default_factory=set)  # clause ids about the past
    hypothetical: set[int] = field(default_factory=set)  # sentence ids that describe nobody's symptom
    general: set[int] = field(default_factory=set)  # ... of them, those about people in general (no one in particular)
    ambiguous: set[int] = field(default_factory=set)  # sentence ids with "if" about oneself: read as a report
    joined: str = ""  # the normalised tokens, each followed by one space
    offsets: list[int] = field(default_factory=list)  # start of each token in `joined`

    def clause_tokens(self, clause: int) -> list[int]:
        """The indices of the clause's tokens, in order."""
        return self._by_clause.get(clause, [])

    def sentence_tokens(self, sentence: int) -> list[int]:
        """The indices of the sentence's tokens, in order."""
        return self._by_sentence.get(sentence, [])

    # Grouped once per reading: scanning every token for each clause made a long message
    # quadratic (20,000 characters: 2 s of a 4 s triage, profiled).
    @cached_property
    def _by_clause(self) -> dict[int, list[int]]:
        return _positions(self.clauses)

    @cached_property
    def _by_sentence(self) -> dict[int, list[int]]:
        return _positions(self.sentences)

    def token_at(self, char: int) -> int:
        """Index of the token that covers position `char` of `joined`."""
        lo, hi = 0, len(self.offsets) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.offsets[mid] <= char:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def original(self, first: int, last: int) -> str:
        """The user's own words from token `first` to token `last`."""
        return self.text[self.tokens[first].start : self.tokens[last].end]

    def clause_text(self, clause: int) -> str:
        idx = [i for i in self.clause_tokens(clause) if self.tokens[i].text not in _SENTENCE_END]
        return self.original(idx[0], idx[-1]) if idx else ""

    def sentence_text(self, sentence: int) -> str:
        idx = self.sentence_tokens(sentence)
        return self.original(idx[0], idx[-1]) if idx else ""


def read(text: str, speller: Speller | None = None) -> Reading:
    tokens = tokens_of(text, speller)
    clauses = clause_ids(tokens)
    sentences = sentence_ids(tokens)
    negated = negation_sources(tokens, clauses)
    offsets, parts, pos = [], [], 0
    for t in tokens:
        offsets.append(pos)
        parts.append(t.text)
        pos += len(t.text) + 1
    joined = " ".join(parts) + " "  # each token followed by a space: see assistant.redflags.phrase_regex
    reading = Reading(text, tokens, clauses, sentences, negated, joined=joined, offsets=offsets)
    # Clauses about the past.
    for c in set(clauses):
        idx = reading.clause_tokens(c)
        clause_joined = " ".join(tokens[i].text for i in idx)
        if _HISTORICAL.search(clause_joined) and not _NOW.search(clause_joined):
            reading.past.add(c)
    # A time clause put first dates the rest of its sentence: "When I was 19 I twisted my knee and
    # it swelled up massively" (red-flag set H, session 9), up to a clause that says "now" or "again".
    for c in sorted(reading.past):
        idx = reading.clause_tokens(c)
        if not idx or tokens[idx[0]].text not in ("when", "back") or idx[0] != reading.sentence_tokens(sentences[idx[0]])[0]:
            continue
        for later in sorted({clauses[i] for i in reading.sentence_tokens(sentences[idx[0]])} - set(range(c + 1))):
            later_joined = " ".join(tokens[i].text for i in reading.clause_tokens(later))
            if _NOW.search(later_joined):
                break
            reading.past.add(later)
    # Sentences that describe nobody's symptom: hypothetical, or general questions.
    for s in set(sentences):
        idx = reading.sentence_tokens(s)
        words = [tokens[i].text for i in idx]
        sentence_joined = " ".join(words)
        is_question = words[-1] == "?" or words[0] in _QUESTION_START
        personal = any(w in _PERSONAL for w in words) or any(
            w in _PEOPLE and k > 0 and words[k - 1] not in ("a", "an", "any", "some", "every") for k, w in enumerate(words))
        # About nobody in particular: general wording, or a question that opens with its question
        # word ("what does a dislocated kneecap look like?") and tells of no moment ("since
        # yesterday"). A description with a question after it ("calf swollen since the flight,
        # what could it be?") is someone's own report, pronouns or not.
        asks_in_general = is_question and words[0] in _QUESTION_START and not _REPORT_TIME.search(sentence_joined)
        told_of_others = _MEDIA.search(sentence_joined) is not None and _SOMEONE_ELSE.search(sentence_joined) is not None
        if not personal and (_GENERAL_FRAMING.search(sentence_joined) or asks_in_general or told_of_others):
            reading.hypothetical.add(s)
            reading.general.add(s)
        elif _HYPOTHETICAL.search(sentence_joined):
            reading.hypothetical.add(s)
        elif personal and is_question and re.search(r"\bif\b", sentence_joined):
            # "what should I do if my knee is hot and swollen?": read as a report (safety first),
            # and the reply says so.
            reading.ambiguous.add(s)
    return reading


# --------------------------------------------------------------------------- ages

_UNITS_AFTER = r"(?!\s*(?:k|km|kms|mi|miles?|min|mins|minutes?|sec|secs|seconds?|weeks?|wks?|days?|kg|kgs|kilos?|lbs?|pounds|stone|st|%|x|times|hours?|hrs?|months?|mths?|sessions?|runs?|reps?|sets?|percent|degrees?|km/h|mph|bpm|steps?|spm|cm|mm|m|ft|feet|inches?|years? into|/10|out of))"
_AGE_PATTERNS = [
    re.compile(r"\b(\d{1,3})\s*(?:-|\s)?\s*(?:years?|yrs?|yr|year)\s*(?:-|\s)?\s*old\b"),
    re.compile(r"\b(\d{1,3})\s*(?:yo|y ?/ ?o|y \. o|yos)\b"),
    re.compile(r"\baged?\s+(\d{1,3})\b"),
    re.compile(r"\bi'm\s+(\d{1,3})\b" + _UNITS_AFTER),
    re.compile(r"\b(?:he|she|they)(?:'s|\s+is|\s+are)\s+(\d{1,3})\b" + _UNITS_AFTER),
    re.compile(r"\b(?:son|daughter|boy|girl|kid|child|nephew|niece|grandson|granddaughter|stepson|stepdaughter|brother|sister"
               r"|mum|mom|mother|dad|father|husband|wife|partner|friend|nan|nana|gran|granny|grandma|grandpa|grandad|granddad|grandmother"
               r"|grandfather|teammate|neighbour|neighbor)\s*(?:[(,]|is|was|'s|who is|who's|aged)?\s*(\d{1,3})\s*[),]?(?=\s|$|[.,;!?)])" + _UNITS_AFTER),
    re.compile(r"\bturned\s+(\d{1,3})\b" + _UNITS_AFTER),
    re.compile(r"\b(\d{1,3})(?:st|nd|rd|th)\s+birthday\b"),
    re.compile(r"\bin (?:my|his|her) (?:early |mid |late )?(\d)0s\b"),
]
_SCHOOL_YEAR = re.compile(r"\b(?:in\s+)?year\s+(\d{1,2})\b(?!\s*(?:of|old|ago|into|running))")
_GRADE = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)\s+grade(?:r)?\b")
_UNDER = re.compile(r"\b(?:under[- ]?|u) ?(\d{1,2}) ?s?\b")


def ages(joined: str) -> list[tuple[int, int]]:
    """(age in years, position in `joined`) of the ages a normalised message mentions."""
    found: list[tuple[int, int]] = []
    for pattern in _AGE_PATTERNS:
        for m in pattern.finditer(joined):
            age = int(m.group(1))
            if pattern.pattern.startswith(r"\bin (?:my|his|her)"):
                age *= 10
            if 1 <= age <= 110:
                found.append((age, m.start()))
    for m in _SCHOOL_YEAR.finditer(joined):
        year = int(m.group(1))
        if 1 <= year <= 13 and re.search(r"\b(?:school|pupil|student|class|form|gcse|sixth|teacher|son|daughter|kid|child|he|she|boy|girl|lad|lass|his|her)\b", joined):
            found.append((year + 5, m.start()))
    for m in _GRADE.finditer(joined):
        found.append((int(m.group(1)) + 5, m.start()))
    for m in _UNDER.finditer(joined):
        n = int(m.group(1))
        if 6 <= n <= 18 and re.search(r"\b(?:team|squad|football|soccer|rugby|netball|hockey|club|league|academy|match|game|coach)\b", joined):
            found.append((n - 1, m.start()))
    return found


if __name__ == "__main__":  # python -m assistant.language: write assistant/data/english_words.txt again
    print(f"{write_english_words()} words -> {ENGLISH_WORDS_PATH}")
