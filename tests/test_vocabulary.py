"""assistant/vocabulary.yaml, the reviewed topic words: every list compiles, every term of it
matches what it says, and a damaged file is refused with a message that names it."""

from __future__ import annotations

import re

import pytest
import yaml

from assistant.vocabulary import (
    REQUIRED_LISTS,
    VOCABULARY_PATH,
    VocabularyError,
    load_vocabulary_file,
    parse_vocabulary,
    term_regex,
    vocabulary,
)


def _instances(term: str) -> list[str]:
    """Plain texts a term says it matches: each alternative of each slot, optional words left out
    and put in, `word*` as the word itself and with an ending."""
    texts = [""]
    for slot in term.lower().split():
        optional = slot.startswith("[")
        alts = slot.strip("[]").split("/")
        choices = [a[:-1] if a.endswith("*") else a for a in alts] + [a[:-1] + "ing" for a in alts if a.endswith("*")]
        texts = [f"{t} {c}".strip() for t in texts for c in choices] + (texts if optional else [])
    return texts


def test_every_list_compiles_and_the_code_finds_its_lists():
    words = vocabulary()
    assert set(REQUIRED_LISTS) <= set(words.lists)
    assert words.synonyms and all(s.add.strip() for s in words.synonyms)


def test_every_term_matches_what_it_says_inside_a_sentence():
    data = yaml.safe_load(VOCABULARY_PATH.read_text(encoding="utf-8"))
    words = vocabulary()
    for name, terms in data["lists"].items():
        for term in terms:
            for text in _instances(term):
                assert words[name].search(f"so, {text}, really"), (name, term, text)
    for entry in data["synonyms"]:
        pattern = next(s.when for s in words.synonyms if s.add.strip() == entry["add"].strip())
        for term in entry["when"]:
            assert all(pattern.search(f"well {t}?") for t in _instances(term)), (entry, term)


@pytest.mark.parametrize(
    ("name", "matches", "does_not_match"),
    [
        ("knee", ["my knees ache", "the patellar tendon", "is it runner's knee"], ["i kneel a lot", "my hip hurts"]),
        ("medicines", ["can i take ibuprofen", "anti-inflammatories", "which pills"], ["my physio said rest", "pillow"]),
        ("other_body_parts", ["arch of my right foot", "pulled my hamstring", "hip pain"], ["knee pain when running", "shipping"]),
        ("other_knee_care", ["acl reconstruction rehab", "a knee replacement"], ["acl injury risk"]),
        ("named_subjects", ["what about taping", "my x-ray"], ["does it go away"]),
    ],
)
def test_lists_match_whole_words_only(name, matches, does_not_match):
    pattern = vocabulary()[name]
    assert all(pattern.search(t) for t in matches), [t for t in matches if not pattern.search(t)]
    assert not any(pattern.search(t) for t in does_not_match), [t for t in does_not_match if pattern.search(t)]


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("knee", "knee"),
        ("patell*", r"patell\w*"),
        ("arch/arches of my [right/left] foot", r"(?:arch|arches) of my (?:(?:right|left) )?foot"),
        ("acl [ligament]", r"acl(?: ligament)?"),
    ],
)
def test_term_syntax(term, expected):
    assert term_regex(term) == expected
    assert re.compile(expected)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("not a mapping", "expected a mapping"),
        ({"lists": {"knee": []}}, "list 'knee' must be a non-empty list"),
        ({"lists": {"knee": ["kn(ee"]}}, "cannot read"),
        ({"lists": {"knee": ["[only]"]}}, "needs a word that is not optional"),
        ({"lists": {"knee": ["knee"]}}, "missing list(s)"),
    ],
)
def test_a_damaged_vocabulary_is_refused_with_what_is_wrong(data, message):
    with pytest.raises(VocabularyError, match=re.escape(message)):
        parse_vocabulary(data)


def test_a_broken_file_names_its_path(tmp_path):
    path = tmp_path / "vocabulary.yaml"
    path.write_text("lists: [unclosed\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match="not valid YAML") as caught:
        load_vocabulary_file(path)
    assert str(path) in str(caught.value)
    with pytest.raises(VocabularyError, match="cannot read"):
        load_vocabulary_file(tmp_path / "missing.yaml")


def test_abbreviations_are_spelled_out_once():
    from assistant.vocabulary import vocabulary

    v = vocabulary()
    assert v.spell_out("Is dry needling any good for PFP?") == "Is dry needling any good for PFP (patellofemoral pain)?"
    assert v.spell_out("patellofemoral pain (PFP) in runners") == "patellofemoral pain (PFP) in runners"
    assert v.spell_out("a pfp question") == "a pfp (patellofemoral pain) question"


@pytest.mark.parametrize("text, places", [
    ("sharp pain on the outer side of my right knee", ["outer"]),
    ("it's not inwards, it's outwards", ["outer"]),  # a denied place does not count
    ("it didn't hurt on the outside, only at the front of the kneecap", []),  # denied with "didn't" (session 13)
    ("my knee hurts on the inside after long runs", ["inner"]),
    ("an ache behind my left knee", ["back"]),
    ("pain behind the kneecap on stairs", ["front"]),  # behind the kneecap is the front of the knee
    ("I ran outside and my knee hurts", []),  # a bare "outside" is no place on the knee
])
def test_where_it_hurts(text, places):
    assert vocabulary().places_in(text) == places


@pytest.mark.parametrize("places, message", [
    ({"outer": {"terms": ["outer side"], "note": "nowhere", "search": "x"}}, "go together"),
    ({"outer": {"terms": ["outer side"], "unlike": ["inner"]}}, "other places"),
    ({"outer": {"terms": []}}, "terms"),
])
def test_a_damaged_place_is_refused(places, message):
    from assistant.vocabulary import VOCABULARY_PATH, VocabularyError, parse_vocabulary
    from knee.yamltext import load_file

    data = load_file(VOCABULARY_PATH, "the vocabulary")
    data["places"] = places
    with pytest.raises(VocabularyError, match=message):
        parse_vocabulary(data)


@pytest.mark.parametrize("text, fires", [
    ("I pushed this up to 10km recently", True),
    ("went from three runs a week to five", True),
    ("I doubled my long run in one go", True),
    ("I haven't upped my mileage at all", False),  # denied
    ("the pain increased after the run", False),  # a bare "increase" is no training load
    ("when can I start running again?", False),  # planned, not told
    ("it only aches on longer runs", False),  # when it hurts, not a change
])
def test_a_raised_training_load_in_a_story(text, fires):
    assert bool(vocabulary().story_notes_in(text)) is fires


@pytest.mark.parametrize("notes", [
    {"load": {"terms": ["upped my mileage"], "search": "x"}},
    {"load": {"terms": [], "search": "x", "names": ["too quickly"]}},
    {"load": {"terms": ["upped my mileage"], "search": "", "names": ["too quickly"]}},
])
def test_a_damaged_story_note_is_refused(notes):
    from assistant.vocabulary import VOCABULARY_PATH, VocabularyError, parse_vocabulary
    from knee.yamltext import load_file

    data = load_file(VOCABULARY_PATH, "the vocabulary")
    data["story_notes"] = notes
    with pytest.raises(VocabularyError, match="story note"):
        parse_vocabulary(data)


@pytest.mark.parametrize("text, numbers", [
    ("3 sets of 8\u201310 repetitions", True),
    ("2 to 3 times per week", True),
    ("three sets", True),
    ("sets of exercises", False),
])
def test_a_number_slot_matches_numbers_and_ranges(text, numbers):
    from assistant.vocabulary import compile_terms

    assert bool(compile_terms(["# sets/times"]).search(text) or compile_terms(["sets of #"]).search(text)) is numbers


def test_a_damaged_quantity_is_refused():
    from assistant.vocabulary import VOCABULARY_PATH, VocabularyError, parse_vocabulary
    from knee.yamltext import load_file

    data = load_file(VOCABULARY_PATH, "the vocabulary")
    data["quantities"] = {"sets": {"asks": ["how many sets"]}}
    with pytest.raises(VocabularyError, match="quantity 'sets'"):
        parse_vocabulary(data)


def test_the_condition_is_named_as_the_articles_name_it():
    v = vocabulary()
    assert v.with_condition_name("Which activities typically provoke patellofemoral pain?") == \
        "Which activities typically provoke runner's knee?"
    assert v.with_condition_name(v.spell_out("is PFPS permanent?")) == "is runner's knee permanent?"
    assert v.with_condition_name("patellofemoral pain syndrome in teenagers") == "runner's knee in teenagers"
    # other names of the joint are left alone: only the condition's names change
    assert v.with_condition_name("what is the patellofemoral joint?") == "what is the patellofemoral joint?"


@pytest.mark.parametrize("data", [
    {"name": "runner's knee"},
    {"name": "", "others": ["pfp"]},
    {"name": "runner's knee", "others": ["kn(ee"]},
])
def test_damaged_condition_names_are_refused(data):
    good = yaml.safe_load(VOCABULARY_PATH.read_text(encoding="utf-8"))
    with pytest.raises(VocabularyError, match="condition_names"):
        parse_vocabulary({**good, "condition_names": data})
