"""The red-flag table (assistant/red_flags.yaml), loaded, checked and compiled.

The table is data a clinician reviews: rows (id, level, reason, why, sources, the section of the
knowledge base to cite, who it applies to, the context it needs, the concept combinations that
raise it, example phrasings and harmless look-alikes) and the concept vocabulary (the words people
use for each symptom). This module reads it, says exactly what is wrong with it when something is,
and turns each concept's phrases into one regular expression over a message as
`assistant.language` normalises it. `assistant.triage` interprets the rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

TABLE_PATH = Path(__file__).resolve().parent / "red_flags.yaml"
LEVELS = ("crisis", "emergency", "urgent")
LEVEL_RANK = {"crisis": 3, "emergency": 2, "urgent": 1}
# Concepts the code computes itself besides the table's phrases (ages written as numbers).
CONTEXT_CONCEPTS = ("injury", "child", "age55")
MIN_EXAMPLES, MIN_LOOKALIKES = 15, 10


class TableError(ValueError):
    """The red-flag table cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Row:
    id: str
    level: str
    reason: str
    why: str
    sources: tuple[str, ...]
    kb_section: str
    min_age: int | None
    max_age: int | None
    needs: tuple[str, ...]
    otherwise: str | None
    lines: tuple[tuple[str, ...], ...]
    examples: tuple[str, ...]
    lookalikes: tuple[str, ...]
    model_cues: tuple[str, ...] = ()  # words (or "word*" prefixes) a clause needs before the model may raise the row
    model_needs: tuple[str, ...] = ()  # concepts the conversation must hold before the model may raise the row
    needs_any_time: bool = False  # `needs` may be met by a mention dated years back ("years ago I fell")
    # where a cue word is not a cue ("my watch is dead"): the words a match covers do not count
    model_cues_unless: re.Pattern | None = None

    @property
    def crisis(self) -> bool:
        return self.level == "crisis"

    @property
    def escalation_level(self) -> str:
        """The level an escalation reports: a crisis is handled as an emergency."""
        return "emergency" if self.level == "crisis" else self.level

    @property
    def for_children(self) -> bool:
        return self.max_age is not None and self.max_age <= 17


@dataclass
class Concept:
    name: str
    means: str
    phrases: tuple[str, ...]  # with word groups substituted
    pattern: re.Pattern
    unless: re.Pattern | None  # cancels a match it overlaps ("locked out")
    unless_in_clause: re.Pattern | None  # cancels a match anywhere in its clause ("... on the hill reps")
    knee_only: bool = False
    current_only: bool = False
    # a phrase may run over a sentence's end where it writes the end out ("knee gone . me next $"):
    # two short sentences that only together say it. `~` never crosses a full stop, so only such
    # phrases do.
    across_sentences: bool = False
    anchor: str | None = None  # "knee": counted only in a sentence that names the knee, leg or a bone
    implies: tuple[str, ...] = ()  # concepts this one also stands for
    implies_unless: re.Pattern | None = None  # ... except in a message that says so ("no injury")


@dataclass
class Table:
    rows: tuple[Row, ...]
    concepts: dict[str, Concept]
    actions: dict[str, str]
    words: frozenset[str] = field(default_factory=frozenset)  # every literal word of every phrase
    prefixes: frozenset[str] = field(default_factory=frozenset)  # every "word*" of every phrase, without "*"
    spellings: dict[str, str] = field(default_factory=dict)  # everyday misspelling -> the word meant

    def row(self, row_id: str) -> Row:
        return self.by_id[row_id]

    @property
    def by_id(self) -> dict[str, Row]:
        return {r.id: r for r in self.rows}


# --------------------------------------------------------------------------- phrases

# `~`: up to GAP_WORDS tokens; commas may fall inside (people list symptoms: "calf is tender, hot
# and swollen"), other punctuation may not, and neither may a contrast word (see CONTRAST).
GAP_WORDS = 6
CONTRAST = ("but", "although", "though", "however", "whereas", "except", "yet")
_GAP = r"(?:(?!(?:" + "|".join(CONTRAST) + r") )[^ .;:!?]+ ){0," + str(GAP_WORDS) + "}"


def _word_regex(item: str) -> str:
    """One word slot: "word", "word*" or alternatives "a/b/c" (each may end with *)."""
    alternatives = []
    for alt in item.split("/"):
        if not alt:
            raise ValueError(f"empty alternative in {item!r}")
        alternatives.append(re.escape(alt[:-1]) + r"[^ ]*" if alt.endswith("*") else re.escape(alt))
    return alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"


def _slots(phrase: str) -> list[tuple[str, str]]:
    """The phrase as slots: ("word", "a/b"), ("optional", "a/b"), ("group", "a b|c"), ("gap", "")."""
    slots: list[tuple[str, str]] = []
    text = phrase.lower().strip()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == " ":
            i += 1
        elif ch == "(":
            j = text.find(")", i)
            if j < 0:
                raise ValueError(f"unclosed ( in {phrase!r}")
            if "(" in text[i + 1 : j] or "[" in text[i + 1 : j]:
                # A group inside a group was read as literal brackets and silently matched nothing
                # (two phrases of session 7 and 8 did); spell each alternative out instead.
                raise ValueError(f"a group cannot hold another group or an optional word (write each alternative in full): {phrase!r}")
            slots.append(("group", text[i + 1 : j]))
            i = j + 1
        elif ch == "[":
            j = text.find("]", i)
            if j < 0:
                raise ValueError(f"unclosed [ in {phrase!r}")
            if "|" in text[i + 1 : j] or "(" in text[i + 1 : j]:
                # "[last|final]" was read as one literal word and matched nothing (session 8)
                raise ValueError(f"optional words are separated by / inside [ ]: {phrase!r}")
            slots.append(("optional", text[i + 1 : j].strip()))
            i = j + 1
        else:
            j = i
            while j < len(text) and text[j] not in " ([":
                j += 1
            word = text[i:j]
            slots.append(("gap", "") if word == "~" else ("word", word))
            i = j
    if not slots or slots[0][0] == "gap" or slots[-1][0] == "gap":
        raise ValueError(f"a phrase cannot start or end with ~: {phrase!r}")
    return slots


def substitute_groups(phrase: str, groups: dict[str, str]) -> str:
    """`{name}` in a phrase stands for a word group of the table ("{cannot} walk"): as a group of
    its own, or, inside parentheses, as more alternatives of that group ("({kneecap}|knee)")."""
    out, depth, i = [], 0, 0
    while i < len(phrase):
        ch = phrase[i]
        if ch == "{":
            j = phrase.find("}", i)
            name = phrase[i + 1 : j] if j > 0 else ""
            if name not in groups:
                raise ValueError(f"unknown word group {{{name}}} in {phrase!r} (groups: {', '.join(sorted(groups))})")
            out.append(groups[name] if depth else "(" + groups[name] + ")")
            i = j + 1
            continue
        depth += ch == "("
        depth -= ch == ")"
        out.append(ch)
        i += 1
    return "".join(out)


# `$`: where a clause ends: a punctuation token, a closing quote (words reported: she said she's
# 'going to make it all stop') or the end of the message ("I give up on life $": not "I give up on
# living room workouts"). Written as a word of its own or as an alternative.
END = "$"
_END = "(?:[.;:!?,'\"\u201c\u201d\u2018\u2019] |$)"


# Every phrase's expression starts with this "at a word's start" test; said once in front of the
# alternation instead of once per phrase, the same matches compile about 25% faster (0.39 -> 0.29 s
# for the whole table, measured 2026-11-27: part of every cold `knee ask`).
_AT_WORD_START = r"(?<![^ ])"


def phrase_regex(phrase: str) -> str:
    """A phrase of the table as a regular expression over normalised tokens joined by single
    spaces (and ending with one): words match whole tokens; `word*` a token starting so; `a/b` either
    word; `(a b|c)` either sequence; `[a/b]` optionally; `~` up to GAP_WORDS other tokens; `$` the
    end of a clause."""
    return _AT_WORD_START + _phrase_body(phrase)


def _phrase_body(phrase: str) -> str:
    """`phrase_regex` without its leading word-start test."""
    out = ""
    for kind, item in _slots(phrase):
        if kind == "gap":
            out += _GAP
        elif kind == "optional":
            out += "(?:" + _word_regex(item) + " )?"
        elif kind == "group":
            alts = [_END if alt.strip() == END else " ".join(_word_regex(w) for w in alt.split()) + " "
                    for alt in item.split("|")]
            if not all(a.strip() for a in alts):
                raise ValueError(f"empty alternative in ({item}) of {phrase!r}")
            out += "(?:" + "|".join(alts) + ")"
        elif item == END:
            out += _END
        else:
            out += _word_regex(item) + " "
    # Every token of the phrase is followed by its space (the joined message ends with one too), so
    # a phrase ends at a word's end whether or not its last item is optional.
    return out


def _phrase_list(name: str, spec: dict, key: str, groups: dict[str, str], required: bool = False) -> list[str]:
    value = spec.get(key) or []
    if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value) or (required and not value):
        raise TableError(f"concept {name!r}: {key} must be a {'non-empty ' if required else ''}list of text")
    try:
        return [substitute_groups(p, groups) for p in value]
    except ValueError as exc:
        raise TableError(f"concept {name!r}: {key}: {exc}") from None


def _alternation(name: str, key: str, phrases: list[str]) -> re.Pattern | None:
    if not phrases:
        return None
    try:
        return re.compile(_AT_WORD_START + "(?:" + "|".join(_phrase_body(p) for p in phrases) + ")")
    except ValueError as exc:
        raise TableError(f"concept {name!r}: {key}: {exc}") from None


def compile_concept(name: str, spec: Any, groups: dict[str, str] | None = None) -> Concept:
    if not isinstance(spec, dict):
        raise TableError(f"concept {name!r}: expected a mapping with means and phrases")
    groups = groups or {}
    phrases = _phrase_list(name, spec, "phrases", groups, required=True)
    unless = _phrase_list(name, spec, "unless", groups)
    unless_in_clause = _phrase_list(name, spec, "unless_in_clause", groups)
    return Concept(
        name=name,
        means=str(spec.get("means", name)),
        phrases=tuple(phrases),
        pattern=_alternation(name, "phrases", phrases),
        unless=_alternation(name, "unless", unless),
        unless_in_clause=_alternation(name, "unless_in_clause", unless_in_clause),
        knee_only=bool(spec.get("knee_only", False)),
        current_only=bool(spec.get("current_only", False)),
        across_sentences=bool(spec.get("across_sentences", False)),
        anchor=spec.get("anchor"),
        implies=tuple(spec.get("implies") or ()),
        implies_unless=_alternation(name, "implies_unless", _phrase_list(name, spec, "implies_unless", groups)),
    )


def _literal_words(phrases: list[str]) -> tuple[set[str], set[str]]:
    """(the phrases' words, the prefixes of their `word*` items)."""
    words: set[str] = set()
    prefixes: set[str] = set()
    for p in phrases:
        for raw in re.split(r"[\s\[\]()|]+", p.lower()):
            for alt in raw.split("/"):
                if alt.endswith("*"):
                    if alt[:-1].isalpha():
                        prefixes.add(alt[:-1])
                elif alt.isalpha():
                    words.add(alt)
    return words, prefixes


# --------------------------------------------------------------------------- the table


def _text(row_id: str, spec: dict, key: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value.strip():
        raise TableError(f"row {row_id!r}: {key} must be text")
    return " ".join(value.split())


def parse_table(data: Any, check_counts: bool = True) -> Table:
    if not isinstance(data, dict):
        raise TableError("the table must be a mapping with actions, rows and concepts")
    actions = data.get("actions")
    if not isinstance(actions, dict) or set(actions) != set(LEVELS):
        raise TableError(f"actions must give the text for each level: {', '.join(LEVELS)}")
    concepts_spec = data.get("concepts")
    if not isinstance(concepts_spec, dict) or not concepts_spec:
        raise TableError("concepts must be a mapping of concept names to their phrases")
    groups = data.get("word_groups") or {}
    if not isinstance(groups, dict) or not all(isinstance(v, list) and v for v in groups.values()):
        raise TableError("word_groups must map each name to a list of words or word sequences")
    group_text = {str(k): "|".join(str(x) for x in v) for k, v in groups.items()}
    concepts = {name: compile_concept(name, spec, group_text) for name, spec in concepts_spec.items()}
    rows_spec = data.get("rows")
    if not isinstance(rows_spec, list) or not rows_spec:
        raise TableError("rows must be a non-empty list")
    rows: list[Row] = []
    seen: set[str] = set()
    for n, spec in enumerate(rows_spec, start=1):
        if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
            raise TableError(f"row {n}: expected a mapping with an id")
        rid = spec["id"]
        if rid in seen:
            raise TableError(f"row {rid!r} appears twice")
        seen.add(rid)
        level = spec.get("level")
        if level not in LEVELS:
            raise TableError(f"row {rid!r}: level must be one of {', '.join(LEVELS)} (got {level!r})")
        applies = spec.get("applies_to", "anyone")
        min_age = max_age = None
        if isinstance(applies, dict):
            min_age, max_age = applies.get("min_age"), applies.get("max_age")
            if not all(isinstance(a, int) or a is None for a in (min_age, max_age)):
                raise TableError(f"row {rid!r}: applies_to ages must be whole numbers")
        elif applies != "anyone":
            raise TableError(f"row {rid!r}: applies_to must be 'anyone' or {{min_age, max_age}}")
        needs = tuple(spec.get("needs") or ())
        if any(x not in ("injury",) for x in needs):
            raise TableError(f"row {rid!r}: needs may only hold 'injury'")
        lines = spec.get("concepts")
        if not isinstance(lines, list) or not lines or not all(isinstance(line, list) and line for line in lines):
            raise TableError(f"row {rid!r}: concepts must be a list of concept lists, e.g. [[hot_red, fever]]")
        for line in lines:
            for c in line:
                if c not in concepts:
                    raise TableError(f"row {rid!r}: unknown concept {c!r} (defined: {', '.join(sorted(concepts))})")
        sources = spec.get("sources")
        if not isinstance(sources, list) or not sources:
            raise TableError(f"row {rid!r}: sources must name where the row and its level come from")
        examples = tuple(str(e) for e in spec.get("examples") or ())
        lookalikes = tuple(str(e) for e in spec.get("lookalikes") or ())
        if check_counts and (len(examples) < MIN_EXAMPLES or len(lookalikes) < MIN_LOOKALIKES):
            raise TableError(f"row {rid!r}: needs at least {MIN_EXAMPLES} examples and {MIN_LOOKALIKES} look-alikes "
                             f"(has {len(examples)} and {len(lookalikes)})")
        rows.append(
            Row(
                id=rid, level=level, reason=_text(rid, spec, "reason"), why=_text(rid, spec, "why"),
                sources=tuple(str(s) for s in sources), kb_section=_text(rid, spec, "kb_section"),
                min_age=min_age, max_age=max_age, needs=needs, otherwise=spec.get("otherwise"),
                lines=tuple(tuple(line) for line in lines), examples=examples, lookalikes=lookalikes,
                model_cues=tuple(str(c).lower() for c in spec.get("model_cues") or ()),
                model_needs=tuple(str(c) for c in spec.get("model_needs") or ()),
                needs_any_time=bool(spec.get("needs_any_time", False)),
                model_cues_unless=_alternation(rid, "model_cues_unless",
                                               _phrase_list(rid, spec, "model_cues_unless", group_text)),
            )
        )
    ids = {r.id for r in rows}
    for r in rows:
        if r.otherwise is not None and r.otherwise not in ids:
            raise TableError(f"row {r.id!r}: otherwise names an unknown row {r.otherwise!r}")
    words, prefixes = set(), set()
    for concept in concepts.values():
        w, p = _literal_words(list(concept.phrases))
        words |= w
        prefixes |= p
    spellings = data.get("spellings") or {}
    if not isinstance(spellings, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in spellings.items()):
        raise TableError("spellings must map each misspelling to the word meant")
    spellings = {k.lower(): v.lower() for k, v in spellings.items()}
    return Table(tuple(rows), concepts, {k: " ".join(str(v).split()) for k, v in actions.items()}, frozenset(words),
                 frozenset(prefixes), spellings)


@lru_cache(maxsize=2)
def load_table(path: str | Path = TABLE_PATH) -> Table:
    from knee.yamltext import YamlFileError, load_file

    try:
        data = load_file(path, "the red-flag table")
    except YamlFileError as exc:
        raise TableError(str(exc)) from None
    try:
        return parse_table(data)
    except TableError as exc:
        raise TableError(f"{path}: {exc}") from None
