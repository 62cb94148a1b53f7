"""`knee triage train`: fit the learned red-flag detector and report how well it does.

Data (none of it from an evaluation split):
- every example phrasing of every row of assistant/red_flags.yaml (label: the row), and every
  look-alike (label: none);
- assistant/data/triage_train.jsonl: messages written as people write them, each labelled with a
  row or "none" (ordinary questions, harmless uses of red-flag words, denials, general questions).
Features: the sentence embedding the assistant computes anyway (knee.encoder).
Model: multinomial logistic regression (scikit-learn), classes "none" and every row.

How the two settings are chosen, deterministically (fixed folds, seed 0), on this data only:
- C (inverse regularisation): the value of C_GRID with the lowest cross-validated log loss;
- the threshold on P(red flag) = 1 - P(none): the value at which, cross-validated, FALSE_ALARM_TARGET
  of the "none" messages would be flagged. Those messages are hard on purpose (look-alikes, denials,
  general questions about red flags); the rules before the model catch the plain wordings, so the
  model is held to few false alarms and adds recall on wordings the rules lack.
The report (per-row cross-validated precision and recall, the settings, the data's counts and
hash) is written beside the model: assistant/data/triage_model_report.json.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from assistant.classifier import DATA_DIR, MODEL_PATH, NONE, RedFlagClassifier
from assistant.redflags import load_table

TRAIN_PATH = DATA_DIR / "triage_train.jsonl"
REPORT_PATH = DATA_DIR / "triage_model_report.json"
C_GRID = (4.0, 16.0, 32.0, 64.0, 128.0, 256.0)
FOLDS = 5
FALSE_ALARM_TARGET = 0.02  # of the (hard) "none" messages, flagged by the model (cross-validated)
# A crisis has its own, lower bar on P(crisis row): a false alarm there costs a warm reply with the
# crisis lines, a miss can cost a life. The bar is where cross-validated recall of the crisis
# messages reaches CRISIS_RECALL_TARGET.
CRISIS_RECALL_TARGET = 0.90
# ... but never below an even chance: below it, the crisis class answers for any sentence about
# someone's feelings ("parkrun is basically my whole social life"), seen on the dev split.
CRISIS_FLOOR = 0.5


def training_data(train_path: Path = TRAIN_PATH) -> tuple[list[str], list[str], dict]:
    table = load_table()
    texts: list[str] = []
    labels: list[str] = []
    origin = {"table_examples": 0, "table_lookalikes": 0, "train_file": 0, "clauses_of_none_messages": 0}
    for row in table.rows:
        for e in row.examples:
            texts.append(e)
            labels.append(row.id)
            origin["table_examples"] += 1
        for e in row.lookalikes:
            texts.append(e)
            labels.append(NONE)
            origin["table_lookalikes"] += 1
    rows = {r.id for r in table.rows}
    with open(train_path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            item = json.loads(line)
            label = item["label"]
            if label != NONE and label not in rows:
                raise ValueError(f"{train_path}:{n}: label {label!r} is not a row of the table or 'none'")
            texts.append(item["text"])
            labels.append(label)
            origin["train_file"] += 1
    # The detector scores each clause and sentence of a message, not only whole messages: the
    # clauses of a message with no red flag are no red flag either, and are what it must learn to
    # leave alone ("What should I do?", "I've taken a couple here and there"). A red-flag
    # message's clauses are not added: only some of them carry the red flag.
    from assistant.triage import Triage, model_units

    reader = Triage(use_classifier=False)
    units = 0
    for t, label in list(zip(texts, labels)):
        if label != NONE:
            continue
        for unit, _tokens in model_units(reader.read(t)):
            if unit.strip() != t.strip():
                texts.append(unit)
                labels.append(NONE)
                units += 1
    origin["clauses_of_none_messages"] = units
    # The same text twice (after case and spacing) counts once, with its first label.
    seen: dict[str, int] = {}
    keep = []
    for i, t in enumerate(texts):
        key = " ".join(t.lower().split())
        if key not in seen:
            seen[key] = i
            keep.append(i)
    return [texts[i] for i in keep], [labels[i] for i in keep], origin


def _cv_probabilities(X, y, classes, C: float, folds):
    from sklearn.linear_model import LogisticRegression

    probs = np.zeros((len(y), len(classes)))
    for train, test in folds:
        model = LogisticRegression(C=C, max_iter=3000, class_weight="balanced")
        model.fit(X[train], y[train])
        p = model.predict_proba(X[test])
        # A fold may lack a class: place its columns by class.
        for j, c in enumerate(model.classes_):
            probs[test, classes.index(c)] = p[:, j]
    return probs


def train(model_path: Path = MODEL_PATH, report_path: Path = REPORT_PATH, settings=None, progress=print) -> dict:
    """Train on one thread: scikit-learn's loss sums over OpenMP threads in whatever order they
    finish, and with the weak regularisation chosen here two fits of the same data stopped up to
    2.5 apart in a weight (two runs, this machine); one thread gives the same model every time."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _train(model_path, report_path, settings, progress)


def _train(model_path: Path, report_path: Path, settings, progress) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from knee.config import load_settings
    from knee.encoder import get_encoder

    started = time.perf_counter()
    settings = settings or load_settings()
    texts, labels, origin = training_data()
    progress(f"triage train: {len(texts)} messages ({sum(l != NONE for l in labels)} with a red flag); embedding them ...")
    X = get_encoder(settings.model_path).encode(texts)
    y = np.array(labels)
    classes = [NONE] + [r.id for r in load_table().rows]
    folds = list(StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=0).split(X, y))

    best_c, best_loss, best_probs = None, float("inf"), None
    index = np.array([classes.index(v) for v in y])
    for C in C_GRID:
        probs = _cv_probabilities(X, y, classes, C, folds)
        loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), index], 1e-12, 1.0))))
        progress(f"  C={C:<5} cross-validated log loss {loss:.4f}")
        if loss < best_loss:
            best_c, best_loss, best_probs = C, loss, probs
    flag = 1.0 - best_probs[:, 0]
    positive = y != NONE
    threshold = round(float(np.quantile(flag[~positive], 1.0 - FALSE_ALARM_TARGET)), 4)
    crisis_rows = [r.id for r in load_table().rows if r.crisis]
    crisis_threshold = 1.0
    if crisis_rows:
        c = classes.index(crisis_rows[0])
        is_crisis = y == crisis_rows[0]
        crisis_threshold = round(max(CRISIS_FLOOR, float(np.quantile(best_probs[is_crisis, c], 1.0 - CRISIS_RECALL_TARGET))), 4)
    predicted = np.where(flag >= threshold, np.array(classes)[np.argmax(np.where(np.arange(len(classes)) == 0, -1, best_probs), axis=1)], NONE)
    per_row = {}
    for row in classes[1:]:
        tp = int(np.sum((predicted == row) & (y == row)))
        fp = int(np.sum((predicted == row) & (y != row)))
        fn = int(np.sum((predicted != row) & (y == row)))
        flagged = int(np.sum((predicted != NONE) & (y == row)))
        per_row[row] = {
            "messages": int(np.sum(y == row)),
            "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "recall": round(tp / (tp + fn), 3) if tp + fn else None,
            "flagged_at_any_row": round(flagged / max(1, int(np.sum(y == row))), 3),
        }
    negatives = ~positive
    summary = {
        "red_flag_recall": round(float(np.mean(flag[positive] >= threshold)), 4),
        "crisis_false_alarms_on_none": round(float(np.mean(best_probs[~positive, classes.index(crisis_rows[0])] >= crisis_threshold)), 4) if crisis_rows else None,
        "false_alarm_rate_on_none": round(float(np.mean(flag[negatives] >= threshold)), 4),
        "row_accuracy_among_flagged_positives": round(float(np.mean(predicted[positive & (flag >= threshold)] == y[positive & (flag >= threshold)])), 4),
    }
    model = LogisticRegression(C=best_c, max_iter=3000, class_weight="balanced").fit(X, y)
    order = [list(model.classes_).index(c) for c in classes]
    data_hash = hashlib.sha256(json.dumps([texts, labels]).encode()).hexdigest()[:16]
    meta = {"C": best_c, "threshold": threshold, "crisis_threshold": crisis_threshold, "crisis_row": crisis_rows[0] if crisis_rows else None, "data_sha256_16": data_hash, "messages": len(texts)}
    RedFlagClassifier(classes, model.coef_[order], model.intercept_[order], threshold, meta).save(model_path)
    report = {
        "trained_with": "knee triage train",
        "data": {**origin, "messages_after_dedup": len(texts), "with_red_flag": int(positive.sum()), "none": int(negatives.sum()), "sha256_16": data_hash},
        "settings": {"C": best_c, "C_grid": list(C_GRID), "folds": FOLDS, "seed": 0, "false_alarm_target": FALSE_ALARM_TARGET, "threshold": threshold,
                     "crisis_recall_target": CRISIS_RECALL_TARGET, "crisis_threshold": crisis_threshold},
        "cross_validated": {"log_loss": round(best_loss, 4), **summary, "per_row": per_row},
        "seconds": round(time.perf_counter() - started, 1),
    }
    Path(report_path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def report_table(report: dict) -> str:
    cv = report["cross_validated"]
    lines = [
        f"C = {report['settings']['C']}, threshold on P(red flag) = {report['settings']['threshold']:.4f}, "
        f"on P(crisis) = {report['settings']['crisis_threshold']:.4f} (cross-validated, {report['settings']['folds']} folds)",
        f"crisis: recall target {report['settings']['crisis_recall_target']}, false crisis alarms on 'none' messages {cv['crisis_false_alarms_on_none']}",
        f"red-flag recall {cv['red_flag_recall']:.3f}, false alarms on 'none' messages {cv['false_alarm_rate_on_none']:.3f}, "
        f"right row among flagged {cv['row_accuracy_among_flagged_positives']:.3f}",
        "",
        f"{'row':<26}{'messages':>9}{'precision':>11}{'recall':>8}{'flagged':>9}",
    ]
    for row, r in cv["per_row"].items():
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        lines.append(f"{row:<26}{r['messages']:>9}{fmt(r['precision']):>11}{fmt(r['recall']):>8}{fmt(r['flagged_at_any_row']):>9}")
    return "\n".join(lines)


# -- the crisis screen ------------------------------------------------------------------------
# `knee triage screen` builds assistant/data/crisis_screen.npz (see assistant/crisis_screen.py).
# Its bars are chosen on the evaluation's dev split (the split meant for tuning) and, since session
# 10, the real questions file meant to learn from (real-questions-dev.jsonl; the test split is never
# read here), by a grid: the setting that catches the most crisis messages among the training
# crisis messages and the dev split's crisis items, while raising the crisis reply on at most
# SCREEN_FALSE_ALARM_BUDGET of the ordinary questions (those the gold expects an answer or a
# refusal for); ties go to the stricter setting.
# min_score from 0.45 (below it every knee story had a clause near some crisis phrasing) to 0.95
# (with a margin weight of 2, the first bar at which the screen raised nothing on the dev split's
# ordinary questions lay near 0.8), in steps of 0.025; margin_weight 0 (similarity alone) to 2 (a
# wide margin counts twice its size).
SCREEN_SCORE_GRID = tuple(round(0.45 + 0.025 * i, 3) for i in range(21))
SCREEN_WEIGHT_GRID = (0.0, 0.5, 1.0, 1.5, 2.0)
# The check-in's bar for a unit without a cue word (crisis_screen.py says why it is read at all):
# from the cued grid's middle to above its top, in its steps, and None (such units not read, the
# screen before session 10), chosen with the cued bar by the same rule and budget.
UNCUED_SCORE_GRID = (*(round(0.7 + 0.025 * i, 3) for i in range(21)), None)
# ... and the fewest words such a unit needs, from the screen's own minimum up (ties: more words).
UNCUED_WORDS_GRID = (4, 5, 6, 7, 8)
# A missed crisis is the worst failure this product can have and a false alarm the second worst
# (DEVELOPERS.md); the dev split's ordinary questions are long stories on purpose, with many
# clauses each.
# Measured in session 6 (an offline grid over the same units): the screen raised 2 to 4 times the
# dev split's rate on the test split's ordinary questions at most settings, and a first version
# set at 1.2% on dev raised the full reply on 2 of the 19 real questions: a bar set on dev does
# not hold on messages it was not set on. So the full crisis reply,
# which takes the place of the answer, is raised by the screen only at a bar that raised nothing
# on dev; below it, down to 1 dev question in 200, the person gets the check-in: the answer, with
# the crisis lines above it. A false alarm then costs an ordinary question one caring line. (On the
# dev grid, halving this budget to 1 in 400 lost 5 in 100 crisis messages; doubling it to 1 in 100
# gained 3 in 100.)
SCREEN_FALSE_ALARM_BUDGET = 0.0
CHECK_IN_FALSE_ALARM_BUDGET = 0.005
DEV_GOLD = Path(__file__).resolve().parent.parent / "evals" / "gold" / "dev"


def _dev_gold(crisis_row: str, real_questions: Path | None = None) -> tuple[list[str], list[str]]:
    """(the dev split's crisis messages, its ordinary questions); with `real_questions`, the real
    questions people posted that are ours to learn from (real-questions-dev.jsonl) count too:
    session 10's first cue-less bar, set on dev alone, gave one of its 19 a check-in."""
    crisis, ordinary = [], []
    paths = sorted(DEV_GOLD.glob("*.jsonl")) + ([real_questions] if real_questions is not None and real_questions.is_file() else [])
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            if item.get("row") == crisis_row and item.get("behavior") == "escalate":
                crisis.append(item["question"])  # (a look-alike names the row too, with "answer")
            elif item.get("behavior") in ("answer", "refuse"):
                ordinary.append(item["question"])
    return crisis, ordinary


def build_screen(path=None, report_path=None, settings=None, progress=print) -> dict:
    from assistant.crisis_screen import (BANK_PATH, PHRASINGS_PATH, REPORT_PATH as SCREEN_REPORT, CrisisScreen, MIN_WORDS, check_in_bars, load_phrasings, words,
                                         passes, phrasings_hash)
    from assistant.triage import Triage, screened_units
    from knee.config import load_settings
    from knee.encoder import get_encoder

    started = time.perf_counter()
    settings = settings or load_settings()
    crisis_row = next(r.id for r in load_table().rows if r.crisis)
    phrasings, themes, lookalikes = load_phrasings()
    texts, labels, _origin = training_data()
    harmless = list(dict.fromkeys(lookalikes + [t for t, l in zip(texts, labels) if l != crisis_row]))
    train_crisis = [t for t, l in zip(texts, labels) if l == crisis_row]
    dev_crisis, dev_ordinary = _dev_gold(crisis_row, settings.real_gold_path)
    encode = get_encoder(settings.model_path).encode
    progress(f"crisis screen: {len(phrasings)} crisis phrasings, {len(harmless)} harmless sentences; embedding them ...")
    screen = CrisisScreen(phrasings, encode(phrasings), harmless, encode(harmless), 1.0, 0.0)
    reader = Triage(use_classifier=False)
    harmless_index = {t: i for i, t in enumerate(harmless)}

    screen.uncued_score, screen.uncued_min_words = 0.0, 0  # read every unit here; the grid sets the bars

    def best_per_message(messages: list[str]) -> list[np.ndarray]:
        """Per message, one row per unit: similarity, margin, whether it is a whole sentence,
        whether a cue word is in it."""
        units = [screened_units(reader.read(m), screen) for m in messages]
        flat = [u for us in units for u, _whole in us]
        vectors = encode(flat) if flat else np.zeros((0, screen.crisis_vectors.shape[1]), dtype=np.float32)
        out, k = [], 0
        for m, us in zip(messages, units):
            v = vectors[k:k + len(us)]
            k += len(us)
            if not us:
                out.append(np.zeros((0, 5)))
                continue
            to_crisis = (v @ screen.crisis_vectors.T).max(1)
            to_harmless = v @ screen.harmless_vectors.T
            if m in harmless_index:  # a message is not its own harmless neighbour
                to_harmless[:, harmless_index[m]] = -1.0
            out.append(np.stack([to_crisis, to_crisis - to_harmless.max(1), [float(w) for _u, w in us],
                                 [float(screen.cued(u)) for u, _w in us], [float(words(u)) for u, _w in us]], axis=1))
        return out

    progress(f"  scoring {len(train_crisis) + len(dev_crisis)} crisis messages and {len(dev_ordinary)} ordinary dev questions ...")
    positives = best_per_message(train_crisis + dev_crisis)
    negatives = best_per_message(dev_ordinary)

    def rate(scored, t, w, whole_only, uncued=None, uncued_words=0):
        """The share of messages with a unit at or above the bar (a whole sentence or clause with
        a cue word only, for the full reply: a part of one, or a unit without a cue word, raises
        the check-in at most); `uncued`: the check-in's bar for units without a cue word (None:
        not read)."""
        hits = []
        for x in scored:
            if not len(x):
                hits.append(False)
                continue
            cued = x[:, 3] > 0
            bar = check_in_bars(cued, x[:, 4], t, uncued, uncued_words)
            hits.append(bool(passes(x[:, 0], x[:, 1], (x[:, 2] > 0) & cued, bar, w, whole_only).any()))
        return float(np.mean(hits))

    grid = []
    for w in SCREEN_WEIGHT_GRID:
        for t in SCREEN_SCORE_GRID:
            grid.append({"units": "whole", "margin_weight": w, "min_score": t,
                         "crisis_recall": round(rate(positives, t, w, True), 4),
                         "false_alarm_rate": round(rate(negatives, t, w, True), 4)})
            for b in UNCUED_SCORE_GRID:
                if b is not None and b < t:
                    continue  # a unit without a cue word never needs less than one with
                for n in (UNCUED_WORDS_GRID if b is not None else (MIN_WORDS,)):
                    grid.append({"units": "all", "margin_weight": w, "min_score": t, "uncued_score": b, "uncued_min_words": n,
                                 "crisis_recall": round(rate(positives, t, w, False, b, n), 4),
                                 "false_alarm_rate": round(rate(negatives, t, w, False, b, n), 4)})
    # The check-in's setting first (the most crisis messages within its budget; ties: fewer false
    # alarms, then the higher bars), then the full reply's bar at the same weight: the lowest that
    # stays within its own budget.
    every_unit = [g for g in grid if g["units"] == "all"]
    allowed = [g for g in every_unit if g["false_alarm_rate"] <= CHECK_IN_FALSE_ALARM_BUDGET] or [max(every_unit, key=lambda g: g["min_score"])]
    check_in = max(allowed, key=lambda g: (g["crisis_recall"], -g["false_alarm_rate"], g["min_score"],
                                           np.inf if g["uncued_score"] is None else g["uncued_score"], g["uncued_min_words"],
                                           -g["margin_weight"]))
    same_weight = [g for g in grid if g["units"] == "whole" and g["margin_weight"] == check_in["margin_weight"]
                   and g["min_score"] >= check_in["min_score"]]
    chosen = min((g for g in same_weight if g["false_alarm_rate"] <= SCREEN_FALSE_ALARM_BUDGET), key=lambda g: g["min_score"],
                 default=max(same_weight, key=lambda g: g["min_score"]))
    screen.min_score, screen.margin_weight = chosen["min_score"], chosen["margin_weight"]
    screen.check_in_score = check_in["min_score"]
    screen.uncued_score, screen.uncued_min_words = check_in["uncued_score"], check_in["uncued_min_words"]
    screen.meta = {"phrasings_sha256_16": phrasings_hash(), "harmless": len(harmless), "crisis": len(phrasings),
                   "cue_pattern": screen.cues.pattern, "check_in": screen.check_in}
    screen.save(path or BANK_PATH)
    report = {
        "built_with": "knee triage screen",
        "phrasings": str(PHRASINGS_PATH.name), "phrasings_sha256_16": phrasings_hash(),
        "crisis_phrasings": len(phrasings), "themes": sorted(set(themes)), "harmless_sentences": len(harmless),
        "calibration": {"crisis_messages": len(positives), "from_training_data": len(train_crisis), "from_dev_split": len(dev_crisis),
                        "ordinary_dev_questions": len(negatives), "false_alarm_budget": SCREEN_FALSE_ALARM_BUDGET,
                        "check_in_false_alarm_budget": CHECK_IN_FALSE_ALARM_BUDGET},
        "chosen": chosen,
        "check_in": check_in,
        # a crisis phrasing with no cue word: the screen reads a clause like it at the higher bar only
        "crisis_phrasings_without_a_cue_word": [p for p in phrasings if not screen.cued(p)],
        # the grid as it was before the cue-less bar (every "whole" row and the "all" rows that
        # read no unit without a cue word), and the cue-less rows at the chosen weight and cued bar
        # (all of them: 2 MB)
        "grid": [g for g in grid if g.get("uncued_score") is None
                 or (g["margin_weight"] == check_in["margin_weight"] and g["min_score"] == check_in["min_score"])],
        "seconds": round(time.perf_counter() - started, 1),
    }
    Path(report_path or SCREEN_REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
