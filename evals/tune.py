"""`knee eval --tune`: set the answering constants on the dev split, by a small grid search.

The constants of retrieval and composition (the fusion weights, the question-index thresholds, the
answer window, the relevance floors ...) are chosen here, once, on the `dev` split only (never on
`test` or `real`), by coordinate descent over a coarse grid: each constant in turn takes the grid
value that maximises the objective with the others held, for `PASSES` passes. Coarse grids and few
passes keep it from fitting the items, and a step is taken only when it helps clearly more dev items
than it hurts (`clear_gain`, a sign test): a change carried by a handful of items is noise. The
objective counts what a user gets right on dev, all weighted alike: every fact that holds (and is
grounded) on the answer items, and every answer or refusal item that gets its behaviour.

The query adapter (assistant/query_adapter.py) is fitted on dev too: every dev item it was fitted
on is answered here with an adapter fitted without that item's fold, so the constants are not
chosen for the adapter's fit to dev.

It runs the assistant in-process (one model load), prints each step, and writes the result to
`runs/tune-<time>.json`. The chosen values go into knee/config.py by hand, each with a comment
saying it was set here: a reviewer sees every change of a constant in the history.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from evals.metrics import check_facts
from knee.config import REPO_ROOT, Settings

GRID: dict[str, tuple] = {
    "weight_questions": (0.5, 1.0, 1.5, 2.0),
    "weight_sparse": (0.5, 1.0, 1.5),
    "question_match": (0.75, 0.8, 0.85, 0.9),
    "question_vouch": (0.55, 0.6, 0.65, 0.7, 0.75),
    "section_question_weight": (0.0, 0.3, 0.6, 1.0),
    "section_title_weight": (0.0, 0.2, 0.4),
    "section_switch_margin": (0.0, 0.05, 0.1, 1.0),
    "answer_score_window": (0.1, 0.15, 0.2, 0.25, 0.3),
    "min_relevance": (0.3, 0.35, 0.4, 0.45),
    "min_relevance_off_topic": (0.5, 0.55, 0.6, 0.65),
    "redundant": (0.85, 0.9, 0.95),
    "whole_section_match": (0.6, 0.7, 0.75, 0.8, 1.01),
    "max_sentences": (3, 4, 5),
    "max_other_sentences": (0, 1, 2),
    "other_section_margin": (0.0, 0.05, 0.1),
}
PASSES = 2
# A step must help at least this many standard deviations more items than it hurts: under a change
# that does nothing, helped minus hurt has mean 0 and standard deviation sqrt(helped + hurt), so 2 is
# a two-sided sign test at about 5%. Why a test at all: on 2026-11-27 (runs/tune-s11.json) the
# search moved four constants for 10 more dev facts (412 -> 422 of 536), and the frozen test split lost 7 with
# them: gains of that size are within what a different 400 items would give.
SIGN_Z = 2.0


def clear_gain(trial: list[float], best: list[float], z: float = SIGN_Z) -> tuple[bool, int, int]:
    """(whether `trial` is clearly better than `best`, items helped, items hurt), item by item."""
    helped = sum(t > b for t, b in zip(trial, best))
    hurt = sum(t < b for t, b in zip(trial, best))
    return helped > hurt and helped - hurt >= z * (helped + hurt) ** 0.5, helped, hurt


def objective(items, assistant, adapters: dict | None = None) -> tuple[float, dict, list[float]]:
    """Facts held plus items with the right behaviour, each item's behaviour weighted as much as
    the facts of an average answer item (a wrong behaviour loses a whole answer, or answers what
    should have been declined): with the two counted alike, lowering the relevance floors bought
    a few facts with answers to questions the knowledge base does not cover. Also each item's own
    score, in the order of `items`, for `clear_gain`."""
    facts = held = behaviour = n = 0
    answer_items = sum(1 for i in items if i.behavior == "answer" and i.facts)
    per_item = sum(len(i.facts) for i in items if i.behavior == "answer" and i.facts) / max(1, answer_items)
    committed = assistant.retriever.adapter
    scores: list[float] = []
    for item in items:
        if adapters:
            # The query adapter is fitted on dev: each item it was fitted on is answered with an
            # adapter fitted without it (assistant/train_adapter.py, `held_out_adapters`).
            assistant.retriever.adapter = assistant.composer.adapter = adapters.get(item.id, committed)
        record = assistant.invoke({"question": item.question, "history": item.history}).to_json()
        n += 1
        right = record["behavior"] == item.behavior
        behaviour += right
        item_held = 0
        if item.behavior == "answer" and item.facts:
            results = check_facts(item.facts, record)
            facts += len(results)
            item_held = sum(f.held and f.grounded for f in results)
            held += item_held
        scores.append(item_held + per_item * right)
    assistant.retriever.adapter = assistant.composer.adapter = committed
    return round(held + per_item * behaviour, 2), {"facts_held": held, "facts": facts, "behaviour": behaviour, "items": n}, scores


def memoize_embeddings(assistant) -> None:
    """The same texts are embedded on every trial: embed each once (the vectors do not depend on
    any constant tuned here), so a trial costs retrieval and composition only."""
    import numpy as np

    embed, memo = assistant._embed, {}

    def cached(texts: list[str]):
        missing = [t for t in dict.fromkeys(texts) if t not in memo]
        if missing:
            for t, v in zip(missing, embed(missing)):
                memo[t] = v
        return np.asarray([memo[t] for t in texts], dtype=np.float32)

    assistant._embed = cached

    # Triage reads no tuned constant either: its verdict per message is kept too.
    check, verdicts = assistant.triage.check, {}

    def cached_check(message, history=None, embed=None, **kw):
        key = (message, tuple(history or ()))
        if key not in verdicts:
            verdicts[key] = check(message, history, embed=embed, **kw)
        return verdicts[key]

    assistant.triage.check = cached_check


def apply(assistant, settings: Settings) -> None:
    assistant.settings = settings
    assistant.retriever.settings = settings
    assistant.composer.settings = settings


def tune(settings: Settings, say=print) -> dict:
    from assistant.pipeline import load_assistant
    from evals.runner import GOLD_DIR, load_gold

    started = time.perf_counter()
    dev = sorted((GOLD_DIR / "dev").glob("*.jsonl"))
    items, problems = load_gold(dev, {p: "dev" for p in dev})
    if problems:
        raise ValueError("; ".join(problems[:5]))
    # Escalations are decided by triage before any of these constants is read.
    items = [i for i in items if i.behavior != "escalate"]
    assistant = load_assistant(settings)
    adapters = None
    if assistant.retriever.adapter is not None:
        from assistant.train_adapter import committed_lambda, held_out_adapters

        lam = committed_lambda()
        if lam is not None:
            say(f"fitting the query adapter without each dev fold (lambda {lam}) ...")
            adapters = held_out_adapters(assistant, settings, lam)
    memoize_embeddings(assistant)
    current = {name: getattr(settings, name) for name in GRID}
    best_score, best_detail, best_items = objective(items, assistant, adapters)
    say(f"start: {best_score} {best_detail} {current}")
    steps = []
    for p in range(PASSES):
        for name, values in GRID.items():
            for value in values:
                if value == current[name]:
                    continue
                trial = {**current, name: value}
                apply(assistant, replace(settings, **trial))
                score, detail, item_scores = objective(items, assistant, adapters)
                clear, helped, hurt = clear_gain(item_scores, best_items)
                steps.append({"pass": p + 1, "name": name, "value": value, "score": score, **detail,
                              "helped": helped, "hurt": hurt, "clear": clear})
                if score > best_score and clear:
                    best_score, best_detail, best_items, current = score, detail, item_scores, trial
                    say(f"  pass {p + 1}: {name} = {value}: {score} {detail} ({helped} items helped, {hurt} hurt)")
    result = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "split": "dev", "items": len(items), "grid": {k: list(v) for k, v in GRID.items()}, "passes": PASSES, "sign_z": SIGN_Z,
        "chosen": current, "score": best_score, "detail": best_detail, "steps": steps,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return result


def main(args, settings: Settings) -> int:
    result = tune(settings, say=lambda t: print(t, file=sys.stderr))
    out = Path(args.out) if args.out else REPO_ROOT / "runs" / f"tune-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("chosen on dev (copy into knee/config.py, each with a comment):")
    for name, value in result["chosen"].items():
        print(f"  {name} = {value}")
    print(f"dev: {result['detail']}; written to {out}")
    return 0
