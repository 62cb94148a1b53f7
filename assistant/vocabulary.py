"""The topic words of assistant/vocabulary.yaml (data a clinician reviews), loaded, checked and
compiled into patterns; the code that uses them (scope, composer, pipeline, message reading,
retrieval) holds only general English.

A term is words one space apart; in any slot `a/b` is either word, `word*` a word starting so,
`[a/b]` an optional word, `#` a number ("3", "2.5", "8-10", "8–10", "2 to 3", "three"). A list
matches when any of its terms appears as whole words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from knee.yamltext import YamlFileError, load_file

VOCABULARY_PATH = Path(__file__).resolve().parent / "vocabulary.yaml"
# The lists the code asks for: a file without one of them is refused when it loads, not on the
# first message that needs it.
REQUIRED_LISTS = (
    "knee", "runners_knee", "medicines", "care_not_medicine", "other_body_parts", "other_conditions",
    "other_knee_care", "diagnosed_knee_conditions", "knee_world", "clinicians", "named_subjects", "story_facts",
)
REQUIRED_WORD_SETS = ("knee_words", "knee_anchor_words", "other_body_part_words")
_SLOT_CHARS = re.compile(r"^[a-z0-9'&\-/*]+$")


class VocabularyError(ValueError):
    """The vocabulary file is missing, not YAML, or has a list or term that cannot be compiled."""


# `#` in a term: a number, a range of numbers, or a small number in words.
_NUMBER = (r"(?:\d+(?:\.\d+)?(?:\s*(?:-|\u2013|to)\s*\d+(?:\.\d+)?)?"
           r"|one|two|three|four|five|six|seven|eight|nine|ten|twelve|twenty|thirty)")


def _slot_regex(slot: str, term: str) -> str:
    if slot == "#":
        return _NUMBER
    if not _SLOT_CHARS.match(slot) or any(not alt or "*" in alt[:-1] for alt in slot.split("/")):
        raise VocabularyError(f"term {term!r}: cannot read {slot!r} (words, a/b, word*, [optional])")
    alternatives = [re.escape(a[:-1]) + r"\w*" if a.endswith("*") else re.escape(a) for a in slot.split("/")]
    return alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"


def term_regex(term: str) -> str:
    """One term as a regular expression (without the word boundaries around it)."""
    if not isinstance(term, str) or not term.strip():
        raise VocabularyError(f"a term must be text, not {term!r}")
    slots = term.lower().split()
    if all(s.startswith("[") for s in slots):
        raise VocabularyError(f"term {term!r}: a term needs a word that is not optional")
    out = ""
    for i, slot in enumerate(slots):
        last = i == len(slots) - 1
        if slot.startswith("[") or slot.endswith("]"):
            if not (slot.startswith("[") and slot.endswith("]")):
                raise VocabularyError(f"term {term!r}: unclosed [ ] in {slot!r}")
            inner = _slot_regex(slot[1:-1], term)
            # The optional word takes its space with it: before the next word, or after the last.
            out = out[:-1] + f"(?: {inner})?" if last else out + f"(?:{inner} )?"
        else:
            out += _slot_regex(slot, term) + ("" if last else " ")
    return out


def compile_terms(terms: list[str]) -> re.Pattern[str]:
    """The terms as one pattern, each matched as whole words; its `.pattern` can be part of a larger one."""
    return re.compile(r"\b(?:" + "|".join(term_regex(t) for t in terms) + r")\b", re.I)


@dataclass(frozen=True)
class Synonym:
    when: re.Pattern[str]
    add: str


@dataclass(frozen=True)
class Abbreviation:
    pattern: re.Pattern[str]  # the abbreviation as a whole word, any case
    meaning: str


@dataclass(frozen=True)
class Place:
    """A place on the knee where pain is felt (`places:` in the vocabulary file)."""

    name: str
    pattern: re.Pattern[str]
    unlike: tuple[str, ...]  # places a sentence answering about this one must not name
    note: str | None  # the place the note sentence names (None: no note)
    search: str | None  # what finds the note sentence


@dataclass(frozen=True)
class StoryNote:
    """Something a story tells that the knowledge base has a sentence on, though the question may
    not ask it (`story_notes:` in the vocabulary file): a training load raised before the pain."""

    name: str
    pattern: re.Pattern[str]  # what the story says
    search: str  # what finds the note sentence
    names: re.Pattern[str]  # a note sentence holds one of these (and an answer that does needs none)


@dataclass(frozen=True)
class Quantity:
    """A kind of amount a question can ask for (`quantities:` in the vocabulary file): sets and
    repetitions, how often."""

    name: str
    asks: re.Pattern[str]  # a question asking for it
    states: re.Pattern[str]  # a sentence stating it


# A place said with a denial just before it ("it's not inwards") is not where it hurts.
_DENIED_BEFORE = re.compile(r"\b(?:not|no|never|isn't|aren't|wasn't|doesn't|don't|didn't|haven't|hasn't|hadn't)\W+(?:\w+\W+)?$", re.I)


@dataclass(frozen=True)
class Vocabulary:
    lists: dict[str, re.Pattern[str]]
    synonyms: tuple[Synonym, ...]
    word_sets: dict[str, frozenset[str]]
    abbreviations: tuple[Abbreviation, ...] = ()
    places: tuple[Place, ...] = ()
    story_notes: tuple[StoryNote, ...] = ()
    quantities: tuple[Quantity, ...] = ()
    condition_name: str | None = None  # `condition_names:` in the vocabulary file
    other_condition_names: re.Pattern[str] | None = None

    def with_condition_name(self, text: str) -> str:
        """The text with the condition's other names replaced by the knowledge base's own
        ("which activities provoke patellofemoral pain?" -> "... provoke runner's knee?"); a name
        spelled out beside its abbreviation ("PFP (patellofemoral pain)") becomes the name once."""
        if self.other_condition_names is None or self.condition_name is None:
            return text
        name = self.condition_name
        named = self.other_condition_names.sub(name, text)
        return re.sub(rf"\b{re.escape(name)} \({re.escape(name)}\)", name, named, flags=re.I)

    def quantities_asked(self, question: str) -> list[Quantity]:
        """The amounts a question asks for, in the order of `quantities:`."""
        return [q for q in self.quantities if q.asks.search(question)]

    def story_notes_in(self, text: str) -> list[StoryNote]:
        """The story notes a text calls for, in the order of `story_notes:`; one said only after
        "not" ("I haven't upped my mileage") is left out."""
        return [n for n in self.story_notes
                if any(not _DENIED_BEFORE.search(text[max(0, m.start() - 25):m.start()]) for m in n.pattern.finditer(text))]

    def places_in(self, text: str) -> list[str]:
        """The places on the knee a text says the pain is, in the order of `places:`; a place
        named only after "not" ("not inwards") is left out."""
        found = []
        for place in self.places:
            if any(not _DENIED_BEFORE.search(text[max(0, m.start() - 25):m.start()]) for m in place.pattern.finditer(text)):
                found.append(place.name)
        return found

    def place(self, name: str) -> Place:
        return next(p for p in self.places if p.name == name)

    def __getitem__(self, name: str) -> re.Pattern[str]:
        return self.lists[name]

    def spell_out(self, text: str) -> str:
        """The text with each abbreviation followed by its meaning ("PFP" -> "PFP (patellofemoral
        pain)"), unless the meaning is already there: the embedding model does not know them. Kept
        beside the abbreviation, which BM25 matches in the articles: replaced by its meaning, dev
        held 391 facts of 536, against 396 this way and 397 without spelling out (which abstained
        on "is dry needling any good for PFP?")."""
        for a in self.abbreviations:
            if a.meaning.lower() not in text.lower():
                text = a.pattern.sub(lambda m: f"{m.group(0)} ({a.meaning})", text)
        return text


def parse_vocabulary(data: Any) -> Vocabulary:
    if not isinstance(data, dict) or not isinstance(data.get("lists"), dict):
        raise VocabularyError("expected a mapping with `lists:`, `synonyms:` and `word_sets:`")
    lists: dict[str, re.Pattern[str]] = {}
    for name, terms in data["lists"].items():
        if not isinstance(terms, list) or not terms:
            raise VocabularyError(f"list {name!r} must be a non-empty list of terms")
        try:
            lists[str(name)] = compile_terms(terms)
        except VocabularyError as exc:
            raise VocabularyError(f"list {name!r}: {exc}") from None
    missing = [n for n in REQUIRED_LISTS if n not in lists]
    if missing:
        raise VocabularyError(f"missing list(s): {', '.join(missing)}")
    synonyms = []
    for i, entry in enumerate(data.get("synonyms") or [], 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("when"), list) or not entry["when"] \
                or not isinstance(entry.get("add"), str) or not entry["add"].strip():
            raise VocabularyError(f"synonym {i}: expected `when:` (a list of terms) and `add:` (words)")
        try:
            synonyms.append(Synonym(when=compile_terms(entry["when"]), add=" " + entry["add"].strip()))
        except VocabularyError as exc:
            raise VocabularyError(f"synonym {i}: {exc}") from None
    word_sets: dict[str, frozenset[str]] = {}
    for name, words in (data.get("word_sets") or {}).items():
        if not isinstance(words, list) or not words or not all(isinstance(w, str) and w.strip() and " " not in w.strip() for w in words):
            raise VocabularyError(f"word set {name!r} must be a non-empty list of single words")
        word_sets[str(name)] = frozenset(w.strip().lower() for w in words)
    missing = [n for n in REQUIRED_WORD_SETS if n not in word_sets]
    if missing:
        raise VocabularyError(f"missing word set(s): {', '.join(missing)}")
    abbreviations = []
    for abbr, meaning in (data.get("abbreviations") or {}).items():
        if not isinstance(abbr, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9&]*", abbr) or not isinstance(meaning, str) or not meaning.strip():
            raise VocabularyError(f"abbreviation {abbr!r}: expected `ABBR: its meaning in words`")
        abbreviations.append(Abbreviation(re.compile(rf"\b{re.escape(abbr)}\b", re.I), meaning.strip()))
    places = _parse_places(data.get("places") or {})
    names = data.get("condition_names")
    if names is not None and not (isinstance(names, dict) and isinstance(names.get("name"), str) and names["name"].strip()
                                  and isinstance(names.get("others"), list) and names["others"]):
        raise VocabularyError("condition_names: expected `name:` (the articles' name) and `others:` (a list of terms)")
    try:
        others = compile_terms(names["others"]) if names else None
    except VocabularyError as exc:
        raise VocabularyError(f"condition_names: {exc}") from None
    return Vocabulary(lists=lists, synonyms=tuple(synonyms), word_sets=word_sets, abbreviations=tuple(abbreviations),
                      places=places, story_notes=_parse_story_notes(data.get("story_notes") or {}),
                      quantities=_parse_quantities(data.get("quantities") or {}),
                      condition_name=names["name"].strip() if names else None, other_condition_names=others)


def _parse_quantities(spec: Any) -> tuple[Quantity, ...]:
    if not isinstance(spec, dict):
        raise VocabularyError("quantities: expected a mapping of names to `asks:` and `states:`")
    out = []
    for name, entry in spec.items():
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), list) and entry[k] for k in ("asks", "states")):
            raise VocabularyError(f"quantity {name!r}: expected `asks:` and `states:` (non-empty lists of terms)")
        try:
            out.append(Quantity(str(name), compile_terms(entry["asks"]), compile_terms(entry["states"])))
        except VocabularyError as exc:
            raise VocabularyError(f"quantity {name!r}: {exc}") from None
    return tuple(out)


def _parse_story_notes(spec: Any) -> tuple[StoryNote, ...]:
    if not isinstance(spec, dict):
        raise VocabularyError("story_notes: expected a mapping of names to `terms:`, `search:` and `names:`")
    notes = []
    for name, entry in spec.items():
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), list) and entry[k] for k in ("terms", "names")) \
                or not isinstance(entry.get("search"), str) or not entry["search"].strip():
            raise VocabularyError(f"story note {name!r}: expected `terms:` and `names:` (non-empty lists of terms) and `search:` (words)")
        try:
            notes.append(StoryNote(str(name), compile_terms(entry["terms"]), entry["search"].strip(), compile_terms(entry["names"])))
        except VocabularyError as exc:
            raise VocabularyError(f"story note {name!r}: {exc}") from None
    return tuple(notes)


def _parse_places(spec: Any) -> tuple[Place, ...]:
    if not isinstance(spec, dict):
        raise VocabularyError("places: expected a mapping of place names to `terms:`, `unlike:`, `note:` and `search:`")
    places = []
    for name, entry in spec.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("terms"), list) or not entry["terms"]:
            raise VocabularyError(f"place {name!r}: expected `terms:` (a non-empty list of terms)")
        unlike, note, search = entry.get("unlike") or [], entry.get("note"), entry.get("search")
        if not isinstance(unlike, list) or any(u not in spec for u in unlike):
            raise VocabularyError(f"place {name!r}: `unlike:` must list other places ({', '.join(map(str, spec))})")
        if (note is None) != (search is None) or (note is not None and (note not in spec or not isinstance(search, str) or not search.strip())):
            raise VocabularyError(f"place {name!r}: `note:` (a place) and `search:` (words) go together")
        try:
            pattern = compile_terms(entry["terms"])
        except VocabularyError as exc:
            raise VocabularyError(f"place {name!r}: {exc}") from None
        places.append(Place(str(name), pattern, tuple(map(str, unlike)), note, search.strip() if search else None))
    return tuple(places)


def load_vocabulary_file(path: Path) -> Vocabulary:
    try:
        data = load_file(path, "the vocabulary")
    except YamlFileError as exc:
        raise VocabularyError(str(exc)) from None
    try:
        return parse_vocabulary(data)
    except VocabularyError as exc:
        raise VocabularyError(f"{path}: {exc}") from None


@lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    """The reviewed vocabulary, compiled once per process."""
    return load_vocabulary_file(VOCABULARY_PATH)
