"""`knee triage train | check | explain`: the red-flag table and its learned detector, from the command line.

- train: fit the detector on the table's examples and look-alikes and assistant/data/triage_train.jsonl,
  write assistant/data/triage_model.npz and its report, print per-row cross-validated precision and
  recall; `--check` trains into a temporary file and says whether it equals the committed one
  (training is deterministic: fixed folds, seed 0);
- screen: build the crisis screen from assistant/crisis_phrasings.yaml (assistant/data/crisis_screen.npz)
  and set its two bars on the evaluation's dev split; print the chosen setting and its grid;
- check: every example of every row raises that row's level; no look-alike raises anything;
- explain: what triage finds in one message (concepts in the user's words, rows, the model's view).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from knee.config import Settings
from knee.errors import CliError


def main(args, settings: Settings) -> int:
    from assistant.redflags import TableError

    try:
        return {"train": train, "screen": screen, "check": check, "explain": explain}[args.triage_command](args, settings)
    except TableError as exc:
        raise CliError(str(exc)) from None


def train(args, settings: Settings) -> int:
    from assistant.classifier import MODEL_PATH, RedFlagClassifier
    from assistant.train_triage import REPORT_PATH, report_table, train as fit

    say = lambda text: print(text, file=sys.stderr)  # noqa: E731
    if not args.check:
        report = fit(settings=settings, progress=say)
        print(report_table(report))
        print(f"\nwrote {MODEL_PATH} and {REPORT_PATH} in {report['seconds']} s")
        return 0
    with tempfile.TemporaryDirectory(prefix="knee-triage-") as tmp:
        model, report_path = Path(tmp) / "model.npz", Path(tmp) / "report.json"
        fit(model, report_path, settings=settings, progress=say)
        fresh, committed = RedFlagClassifier.load(model), RedFlagClassifier.load(MODEL_PATH)
    if committed is None:
        raise CliError(f"no committed model at {MODEL_PATH}: run `knee triage train`")
    same = (fresh.classes == committed.classes and np.allclose(fresh.weights, committed.weights, atol=1e-4)
            and np.allclose(fresh.bias, committed.bias, atol=1e-4) and abs(fresh.threshold - committed.threshold) < 1e-6
            and fresh.meta.get("data_sha256_16") == committed.meta.get("data_sha256_16"))
    print("the committed model is what `knee triage train` makes of today's data" if same
          else "the committed model differs from a fresh training: run `knee triage train` and commit the result")
    return 0 if same else 1


def screen(args, settings: Settings) -> int:
    from assistant.crisis_screen import BANK_PATH, REPORT_PATH, PhrasingsError
    from assistant.train_triage import build_screen

    say = lambda text: print(text, file=sys.stderr)  # noqa: E731
    try:
        report = build_screen(settings=settings, progress=say)
    except PhrasingsError as exc:
        raise CliError(str(exc)) from None
    c = report["chosen"]
    print(f"crisis screen: similarity + {c['margin_weight']} x margin >= {c['min_score']}: catches {c['crisis_recall']:.3f} of "
          f"{report['calibration']['crisis_messages']} crisis messages, false alarms on {c['false_alarm_rate']:.3f} of "
          f"{report['calibration']['ordinary_dev_questions']} ordinary dev questions (budget {report['calibration']['false_alarm_budget']})")
    k = report["check_in"]
    uncued = "not read" if k.get("uncued_score") is None else f">= {k['uncued_score']}, {k['uncued_min_words']} words or more"
    print(f"check-in (the answer, with crisis lines above it): score >= {k['min_score']} (a unit without a cue word: {uncued}): "
          f"{k['crisis_recall']:.3f} of the crisis messages, "
          f"{k['false_alarm_rate']:.3f} of the ordinary dev questions (budget {report['calibration']['check_in_false_alarm_budget']})")
    print(f"wrote {BANK_PATH} and {REPORT_PATH} in {report['seconds']} s")
    return 0


def _triage(settings: Settings, rules_only: bool = False):
    from assistant.triage import Triage
    from knee.encoder import get_encoder

    triage = Triage(model_path=settings.model_path, use_classifier=not rules_only)
    return triage, get_encoder(settings.model_path).encode


def check(args, settings: Settings) -> int:
    triage, embed = _triage(settings, args.rules_only)
    problems = []
    total = 0
    for row in triage.table.rows:
        for text in row.examples:
            total += 1
            esc = triage.check(text, embed=embed).escalation
            if esc is None:
                problems.append(f"{row.id}: example not escalated: {text!r}")
            elif esc.level != row.escalation_level or esc.crisis != row.crisis:
                problems.append(f"{row.id}: example escalated as {esc.rule} ({esc.level}), not {row.escalation_level}: {text!r}")
        for text in row.lookalikes:
            total += 1
            esc = triage.check(text, embed=embed).escalation
            if esc is not None:
                problems.append(f"{row.id}: look-alike escalated as {esc.rule} ({esc.level}): {text!r}")
    for p in problems:
        print(p)
    print(f"{total - len(problems)} of {total} table phrasings behave as the table says"
          + ("" if not args.rules_only else " (rules only)"))
    return 1 if problems else 0


def explain(args, settings: Settings) -> int:
    triage, embed = _triage(settings)
    reading = triage.read(args.message)
    print(f"read as: {reading.joined.strip()}")
    for name, mentions in triage.mentions(reading).items():
        print(f"  concept {name}: " + "; ".join(repr(m.words) + (" (general question)" if m.weak else "") for m in mentions))
    result = triage.check(args.message, args.history, embed=embed)
    for f in result.findings:
        print(f"  {f.layer}: {f.row.id} ({f.row.level}) score {f.score:.3f}" + (f" from {f.unit!r}" if f.unit else ""))
    if result.escalation:
        e = result.escalation
        print(f"escalation: {e.rule} ({'crisis' if e.crisis else e.level}): {'; '.join(e.triggers)}" + (f" [{e.note}]" if e.note else ""))
    else:
        print(f"no red flag; {'refusal: ' + result.refusal if result.refusal else 'answered'}")
    return 0
