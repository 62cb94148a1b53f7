"""The crisis screen: a net under the red-flag table for thoughts of suicide or self-harm worded in
ways its phrases do not list.

Each round of crisis messages written for testing (sessions 5 and 6) found about half worded in a
way neither the table's phrases nor the learned detector knew ("I've written letters to the people
I love, just in case", "I sat on the bridge railing last night for an hour"). The screen compares
the meaning of each sentence and clause of a message with two banks of sentences: how people say
they are in crisis (assistant/crisis_phrasings.yaml, `crisis`) and harmless sentences (the same
file's `lookalikes`, and every message and clause the learned detector is trained to leave alone).
A unit raises a crisis when it is closer to a crisis phrasing than to any harmless sentence
(margin >= 0) and its score, similarity + margin_weight * margin, reaches min_score: a unit far
closer to a crisis phrasing than to anything harmless needs less similarity ("I've written a note
and put it with my passport for whoever finds it": 0.57, margin 0.26), one that is barely closer
needs more. Both numbers are set by `knee triage screen` on the evaluation's dev split and stored
with the banks' vectors (assistant/data/crisis_screen.npz; the grid and what each setting found
are in assistant/data/crisis_screen_report.json).

Nearest neighbours rather than a classifier: a logistic regression on the same vectors, trained on
the same sentences, raised about three times the false alarms on the dev split's ordinary
questions at the same recall on a set of crisis messages written for testing (session 6, noted in
the issue). A phrasing added to the YAML file is caught at once, and every hit names the phrasing
it resembles, so a reviewer sees why.

Cue words: a unit with none of the file's `cue_words` (alive, die, end, note, tablets, ...) needs
more to raise anything than one with a cue word: the check-in only, at `uncued_score`, a bar above
the cued one's, and at least `uncued_min_words` words; and the assistant gives the screen such a
unit only when the learned detector reads it too (assistant.triage.screened_units: no extra
encoder work). Why: the cue words were the screen's way to keep knee stories quiet, and without
them the dev bar rose so high that recall fell (0.81 -> 0.74 at the same budget); but on the three
crisis sets held out unread in session 9, 14 of the 23 crisis messages that showed no crisis
lines had a unit the screen never read for want of a cue word ("I've given my running shoes
away to a lad at the club", in a wording of ours). `knee triage screen` sets the second bar and
the fewest words with the first bar, within the same budget (evals/crisis_sets/README.md has the
measurements).

Two replies: a whole sentence at or above min_score gets the crisis reply (as if the table had
matched); any unit at or above check_in_score (lower), or a part of a sentence (a clause, or a
piece cut at a comma) at or above min_score, gets the check-in: the answer, with the crisis lines
above it. A part loses the words that may make it harmless ("there's no point in anything | but
walking till my knee heals"), so it never takes the answer's place.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
PHRASINGS_PATH = HERE / "crisis_phrasings.yaml"
BANK_PATH = HERE / "data" / "crisis_screen.npz"
REPORT_PATH = HERE / "data" / "crisis_screen_report.json"
# A unit the screen reads has at least this many words: shorter fragments ("and how do", "last
# night") sat next to crisis phrasings by chance on the dev split (session 6: 3-word units doubled
# the false alarms of 4-word ones at the same recall).
MIN_WORDS = 4
# ... except a whole sentence, which may be as short as "Noose is ready." (session 6: a held-out
# crisis message of two such sentences, "Knee hurts. Noose is ready.", was read by nothing)
MIN_SENTENCE_WORDS = 3
_WORD = re.compile(r"[A-Za-z0-9']+")


class PhrasingsError(ValueError):
    """crisis_phrasings.yaml cannot be used; the message says where and why."""


def _read(path: Path) -> object:
    """The phrasings file's data; one clear error when it cannot be read."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PhrasingsError(f"{path}: cannot read it ({exc})") from exc


def load_phrasings(path: Path = PHRASINGS_PATH) -> tuple[list[str], list[str], list[str]]:
    """(crisis phrasings, their themes, harmless look-alikes), checked."""
    data = _read(path)
    out: dict[str, list[tuple[str, str]]] = {}
    for key in ("crisis", "lookalikes"):
        groups = data.get(key) if isinstance(data, dict) else None
        if not isinstance(groups, list) or not groups:
            raise PhrasingsError(f"{path}: `{key}` must be a list of themes, each with `theme` and `phrasings`")
        items = []
        for n, g in enumerate(groups, start=1):
            if not isinstance(g, dict) or not isinstance(g.get("theme"), str) or not isinstance(g.get("phrasings"), list):
                raise PhrasingsError(f"{path}: `{key}` theme {n} needs `theme` (text) and `phrasings` (a list)")
            for p in g["phrasings"]:
                if not isinstance(p, str) or len(_WORD.findall(p)) < 2:
                    raise PhrasingsError(f"{path}: `{key}` theme {g['theme']!r}: {p!r} is not a phrasing of two or more words")
                items.append((p.strip(), g["theme"]))
        out[key] = items
    return [p for p, _ in out["crisis"]], [t for _, t in out["crisis"]], [p for p, _ in out["lookalikes"]]


def load_check_in(path: Path = PHRASINGS_PATH) -> str:
    """The check-in's wording, with its {quote} and {crisis_lines} places."""
    data = _read(path)
    text = data.get("check_in") if isinstance(data, dict) else None
    if not isinstance(text, str) or "{quote}" not in text or "{crisis_lines}" not in text:
        raise PhrasingsError(f"{path}: `check_in` must be a text with {{quote}} and {{crisis_lines}} in it")
    return " ".join(text.split())


def load_cue_words(path: Path = PHRASINGS_PATH) -> re.Pattern:
    """One pattern for the `cue_words` of the phrasings file (a clause must hold one)."""
    data = _read(path)
    cues = data.get("cue_words") if isinstance(data, dict) else None
    if not isinstance(cues, list) or not cues or not all(isinstance(c, str) and c.strip() for c in cues):
        raise PhrasingsError(f"{path}: `cue_words` must be a list of words or phrases")
    parts = []
    for c in sorted({c.strip().lower() for c in cues}, key=lambda c: (-len(c), c)):  # longest first, then a fixed order
        body = r"\s+".join(re.escape(w) for w in c.rstrip("*").split())
        parts.append(body + (r"\w*" if c.endswith("*") else ""))
    return re.compile(r"(?<![\w'])(?:" + "|".join(parts) + r")(?![\w'])", re.I)


def phrasings_hash(path: Path = PHRASINGS_PATH) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def decision_score(similarity, margin, margin_weight: float):
    return similarity + margin_weight * margin


def passes(similarity, margin, whole, bar: float, margin_weight: float, whole_only: bool = False):
    """Per unit, whether it reaches a bar: closer to a crisis phrasing than to anything harmless,
    its score at or above the bar, and (`whole_only`, for the full reply) a whole sentence. The one
    rule, for the screen and for `knee triage screen`'s grid alike."""
    ok = (margin >= 0) & (decision_score(similarity, margin, margin_weight) >= bar)
    return ok & whole if whole_only else ok


def check_in_bars(cued, n_words, cued_bar: float, uncued_bar: float | None, uncued_min_words: int) -> np.ndarray:
    """Per unit, the check-in's bar: `cued_bar` for a unit with a cue word; `uncued_bar` for one
    without, when it has at least `uncued_min_words` words; otherwise none (infinity). The one
    rule, for the screen and for `knee triage screen`'s grid alike."""
    without = np.where(np.asarray(n_words) >= uncued_min_words, np.inf if uncued_bar is None else uncued_bar, np.inf)
    return np.where(np.asarray(cued, dtype=bool), cued_bar, without)


def words(text: str) -> int:
    return len(_WORD.findall(text))


@dataclass(frozen=True)
class ScreenHit:
    unit: str  # the clause or sentence, in the user's words
    similarity: float  # to the nearest crisis phrasing
    margin: float  # over the nearest harmless sentence
    phrasing: str  # the crisis phrasing it is most like
    harmless: str  # the harmless sentence it is most like
    sure: bool = True  # at or above the full reply's bar; False: at or above the check-in's only


class CrisisScreen:
    def __init__(self, crisis: list[str], crisis_vectors: np.ndarray, harmless: list[str], harmless_vectors: np.ndarray,
                 min_score: float, margin_weight: float, meta: dict | None = None, check_in_score: float | None = None,
                 uncued_score: float | None = None, uncued_min_words: int = MIN_WORDS):
        self.crisis, self.harmless = list(crisis), list(harmless)
        self.crisis_vectors = np.asarray(crisis_vectors, dtype=np.float32)
        self.harmless_vectors = np.asarray(harmless_vectors, dtype=np.float32)
        self.min_score, self.margin_weight = float(min_score), float(margin_weight)
        self.meta = meta or {}
        # The cue words' pattern and the check-in's wording, as built (stored with the bank: reading
        # the YAML file again cost ~90 ms, at every start and at a process's first check-in).
        self.cues = re.compile(self.meta["cue_pattern"], re.I) if self.meta.get("cue_pattern") else load_cue_words()
        self.check_in = self.meta.get("check_in") or load_check_in()
        # the check-in's bar (lower); None: no check-in
        self.check_in_score = min(float(check_in_score), self.min_score) if check_in_score is not None else self.min_score
        # the check-in's bar for a unit without a cue word; None: such units are not read
        self.uncued_score = float(uncued_score) if uncued_score is not None and np.isfinite(uncued_score) else None
        # ... and the fewest words it must have (a short fragment without a cue word is vague:
        # "fine to keep going", "i dont want stop")
        self.uncued_min_words = int(uncued_min_words)

    @classmethod
    def load(cls, path: Path = BANK_PATH) -> "CrisisScreen | None":
        """The committed screen, or None when there is none."""
        if not Path(path).is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            uncued = float(z["uncued_score"]) if "uncued_score" in z.files else None  # (a bank built before session 10)
            uncued_words = int(z["uncued_min_words"]) if "uncued_min_words" in z.files else MIN_WORDS
            return cls(list(z["crisis"]), z["crisis_vectors"], list(z["harmless"]), z["harmless_vectors"],
                       float(z["min_score"]), float(z["margin_weight"]), meta, float(z["check_in_score"]), uncued, uncued_words)

    def save(self, path: Path = BANK_PATH) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # float16 halves the file (the vectors are unit length; cosines move by < 0.001)
        np.savez_compressed(path, crisis=np.array(self.crisis), crisis_vectors=self.crisis_vectors.astype(np.float16),
                            harmless=np.array(self.harmless), harmless_vectors=self.harmless_vectors.astype(np.float16),
                            min_score=np.array(self.min_score), margin_weight=np.array(self.margin_weight),
                            check_in_score=np.array(self.check_in_score),
                            uncued_score=np.array(np.inf if self.uncued_score is None else self.uncued_score),
                            uncued_min_words=np.array(self.uncued_min_words),
                            meta=np.array(json.dumps(self.meta, sort_keys=True)))

    def cued(self, unit: str) -> bool:
        """Whether a cue word is in the unit."""
        return self.cues.search(unit.replace("\u2019", "'")) is not None

    def reads(self, unit: str, sentence: bool = False) -> bool:
        """Whether the screen reads this unit: long enough, and a cue word in it or a bar for
        units without one."""
        n = words(unit)
        if n < (MIN_SENTENCE_WORDS if sentence else MIN_WORDS):
            return False
        # (Triage reads a unit without a cue word only when the learned detector reads it too:
        # assistant.triage.screened_units says why.)
        return self.cued(unit) or (self.uncued_score is not None and n >= self.uncued_min_words)

    def scores(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per unit: similarity to the nearest crisis phrasing, to the nearest harmless sentence,
        and their indices."""
        v = np.asarray(vectors, dtype=np.float32)
        to_crisis = v @ self.crisis_vectors.T
        to_harmless = v @ self.harmless_vectors.T
        ic, ih = to_crisis.argmax(1), to_harmless.argmax(1)
        rows = np.arange(len(v))
        return to_crisis[rows, ic], to_harmless[rows, ih], ic, ih

    def screen(self, units: list[str], vectors: np.ndarray, whole: list[bool] | None = None) -> ScreenHit | None:
        """The unit most like a crisis phrasing, when one passes the check-in's bar; `sure` when a
        whole sentence or clause (`whole`, default all) passes the full reply's bar."""
        flags = [True] * len(units) if whole is None else [bool(w) for w in whole]
        keep = [i for i, u in enumerate(units) if self.reads(u, flags[i])]
        if not keep:
            return None
        c, h, ic, ih = self.scores(np.asarray(vectors)[keep])
        margin = c - h
        score = decision_score(c, margin, self.margin_weight)
        cued = np.array([self.cued(units[i]) for i in keep])
        is_whole = np.array([flags[i] for i in keep])
        bar = check_in_bars(cued, [words(units[i]) for i in keep], self.check_in_score, self.uncued_score, self.uncued_min_words)
        ok = passes(c, margin, is_whole, bar, self.margin_weight)
        if not ok.any():
            return None
        # the full reply: a whole sentence with a cue word (a unit without one raises the check-in at most)
        sure = passes(c, margin, is_whole & cued, self.min_score, self.margin_weight, whole_only=True)
        k = int(np.argmax(np.where(sure if sure.any() else ok, score, -np.inf)))
        return ScreenHit(units[keep[k]], float(c[k]), float(margin[k]), self.crisis[int(ic[k])], self.harmless[int(ih[k])],
                         sure=bool(sure.any()))
