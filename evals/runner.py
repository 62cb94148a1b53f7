"""`knee eval`: run the gold questions, score them, compare with baselines and an earlier run, report.

1. Read and validate the gold files (every problem reported as file:line: problem; nothing runs).
2. Answer every question through `knee ask --batch --json`, in a subprocess with our environment,
   so what is scored is exactly what a user of that command gets (timings included).
3. Score each item (`evals.metrics.score_item`) and the whole set (`aggregate`).
4. Retrieval quality against the evidence phrases, for our retriever and the baselines
   (`evals.baselines`), with ranx.
5. Write results.jsonl, metrics.json, report.md and report.html into the run folder
   (`evals.report`); with --compare, what changed since an earlier run; with --gate, exit 1 when
   a metric is below its threshold (evals/thresholds.toml).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.metrics import METRICS, RetrievalScores, aggregate, relevant_ids, retrieval_scores, score_item
from knee.errors import CliError
from knee.config import REPO_ROOT, Settings

EVALS_DIR = Path(__file__).resolve().parent
GOLD_DIR = EVALS_DIR / "gold"
THRESHOLDS_FILE = EVALS_DIR / "thresholds.toml"
RUNS_DIR = REPO_ROOT / "runs"
RETRIEVAL_K = 5

BEHAVIORS = ("answer", "escalate", "refuse")
LEVELS = ("emergency", "urgent")
GOLD_KEYS = {"id", "question", "history", "behavior", "levels", "facts", "evidence"}
# Free-text keys a gold writer may add for people; the runner ignores them. Any other key is
# reported, so a typo ("fact" for "facts") cannot silently drop checks.
INFO_KEYS = {"notes", "note", "comment", "tags", "category", "topic", "source", "ref"}


# --------------------------------------------------------------------------- gold


@dataclass
class GoldItem:
    id: str  # as a string (ranx and result files key by it)
    raw_id: Any  # as written, sent to `knee ask --batch` and echoed back
    question: str
    behavior: str
    history: list[dict] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)
    facts: list[list[str]] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    file: str = ""
    line: int = 0

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.raw_id, "question": self.question, "behavior": self.behavior}
        for key in ("history", "levels", "facts", "evidence"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        return d


def _strings(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(s, str) and s.strip() for s in value)


def parse_gold_item(obj: Any) -> tuple[GoldItem | None, list[str]]:
    """A gold item from one decoded JSON line, or the problems that make it unusable."""
    if not isinstance(obj, dict):
        return None, ["expected a JSON object"]
    problems = []
    unknown = sorted(set(obj) - GOLD_KEYS - INFO_KEYS)
    if unknown:
        problems.append(f"unknown key(s) {', '.join(map(repr, unknown))} (known: {', '.join(sorted(GOLD_KEYS))})")
    raw_id = obj.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or str(raw_id).strip() == "":
        problems.append('"id" must be a non-empty string or an integer')
    question = obj.get("question")
    if not isinstance(question, str) or not question.strip():
        problems.append('"question" must be a non-empty string')
    behavior = obj.get("behavior")
    if behavior not in BEHAVIORS:
        problems.append(f'"behavior" must be one of {", ".join(BEHAVIORS)} (got {behavior!r})')
    history = obj.get("history", [])
    if not isinstance(history, list) or not all(
        isinstance(t, dict) and t.get("role") in ("user", "assistant") and isinstance(t.get("content"), str) for t in history
    ):
        problems.append('"history" must be a list of {"role": "user"|"assistant", "content": string}')
    levels = obj.get("levels", [])
    if "levels" in obj:
        if not _strings(levels) or any(level not in LEVELS for level in levels):
            problems.append(f'"levels" must be a non-empty list of {", ".join(LEVELS)}')
        elif behavior != "escalate":
            problems.append('"levels" is only meaningful with "behavior": "escalate"')
    facts = obj.get("facts", [])
    if "facts" in obj and (not isinstance(facts, list) or not facts or not all(_strings(f) for f in facts)):
        problems.append('"facts" must be a non-empty list of non-empty lists of phrasings, e.g. [["3 sets", "three sets"]]')
    evidence = obj.get("evidence", [])
    if "evidence" in obj and not _strings(evidence):
        problems.append('"evidence" must be a non-empty list of non-empty phrases')
    if problems:
        return None, problems
    return GoldItem(str(raw_id), raw_id, question, behavior, history, list(levels), [list(f) for f in facts], list(evidence)), []


def display_path(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def load_gold(paths: list[Path]) -> tuple[list[GoldItem], list[str]]:
    """All items of the gold files, and every problem found as "file:line: problem"."""
    items: list[GoldItem] = []
    problems: list[str] = []
    first_seen: dict[str, str] = {}
    for path in paths:
        name = display_path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{name}: cannot be read ({getattr(exc, 'strerror', None) or exc})")
            continue
        count = 0
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            count += 1
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{name}:{number}: not valid JSON ({exc.msg} at column {exc.colno})")
                continue
            item, item_problems = parse_gold_item(obj)
            problems += [f"{name}:{number}: {p}" for p in item_problems]
            if item is None:
                continue
            item.file, item.line = name, number
            if item.id in first_seen:
                problems.append(f"{name}:{number}: duplicate id {item.raw_id!r} (first at {first_seen[item.id]})")
                continue
            first_seen[item.id] = item.where
            items.append(item)
        if count == 0:
            problems.append(f"{name}: has no gold items")
    return items, problems


def gold_paths(given: list[str] | None) -> list[Path]:
    if given:
        missing = [g for g in given if not Path(g).is_file()]
        if missing:
            raise CliError(f"gold file not found: {', '.join(missing)}")
        return [Path(g) for g in given]
    found = sorted(GOLD_DIR.glob("*.jsonl"))
    if not found:
        raise CliError(f"no gold files in {display_path(GOLD_DIR)}/ (write some, or give --gold FILE)")
    return found


# --------------------------------------------------------------------------- answering


def run_batch(items: list[GoldItem], settings: Settings) -> dict[str, dict]:
    """Every gold question through `knee ask --batch --json` in a subprocess; records by id."""
    with tempfile.TemporaryDirectory(prefix="knee-eval-") as tmp:
        batch = Path(tmp) / "questions.jsonl"
        with batch.open("w", encoding="utf-8") as f:
            for item in items:
                f.write(json.dumps({"id": item.raw_id, "question": item.question, "history": item.history}, ensure_ascii=False) + "\n")
        command = [sys.executable, "-m", "knee.cli", "ask", "--batch", str(batch), "--json", "--db", str(settings.db_dir)]
        errors = Path(tmp) / "stderr.txt"
        records: dict[str, dict] = {}
        with errors.open("w") as err:
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True, env=dict(os.environ), cwd=REPO_ROOT)
            assert proc.stdout is not None
            for line in proc.stdout:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # not a record (nothing else is printed with --json, but be safe)
                records[str(record.get("id"))] = record
                progress(f"answered {len(records)}/{len(items)}", final=len(records) == len(items))
            code = proc.wait()
        stderr = errors.read_text(errors="replace").strip()
    if code not in (0, 1) or not records:
        last = stderr.splitlines()[-1] if stderr else f"exit code {code}"
        raise CliError(f"`knee ask --batch` failed: {last}")
    return records


def progress(message: str, final: bool = False) -> None:
    """A one-line progress report on a terminal; nothing in logs and pipes."""
    if sys.stderr.isatty():
        sys.stderr.write(f"\r\033[K{message}" + ("\n" if final else ""))
        sys.stderr.flush()


# --------------------------------------------------------------------------- retrieval


def retrieval_query(item: GoldItem, settings: Settings) -> str:
    """The query the assistant retrieves with: the question, with the earlier turns a follow-up leans on."""
    from assistant.pipeline import resolve_follow_up, user_turns

    return resolve_follow_up(item.question, user_turns(item.history), settings.history_turns)


@dataclass
class RetrievalEval:
    scores: dict[str, RetrievalScores]  # "ours@5", "ours@4", "bm25@5", "textbook@4"
    per_item: dict[str, dict[str, dict]]  # item id -> run name -> {"recall", "mrr", "hit_rate", "relevant", "retrieved"}
    labels: dict[str, str]
    notes: dict[str, str]  # baselines skipped, and why; how the textbook store was built


def evaluate_retrieval(items: list[GoldItem], settings: Settings, with_baselines: bool) -> RetrievalEval:
    from assistant.pipeline import load_assistant
    from evals.baselines import TextbookRAG, bm25_system, hybrid_system

    judged = [i for i in items if i.evidence]
    assistant = load_assistant(settings)
    systems = [hybrid_system(assistant, RETRIEVAL_K)]
    notes: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="knee-textbook-") as tmp:
        if with_baselines:
            systems.append(bm25_system(assistant, RETRIEVAL_K))
            started = time.perf_counter()
            try:
                textbook = TextbookRAG.build(settings.corpus_dir, settings, Path(tmp))
                systems.append(textbook.system())
                notes["textbook build"] = f"{len(textbook.chunks)} chunks from {display_path(settings.corpus_dir)}, built in {time.perf_counter() - started:.1f} s"
            except Exception as exc:  # an empty or unreadable corpus: report it, score the rest
                notes["textbook build"] = f"skipped: {exc}"
        queries = {i.id: retrieval_query(i, settings) for i in judged}
        scores: dict[str, RetrievalScores] = {}
        per_item: dict[str, dict[str, dict]] = {i.id: {} for i in judged}
        labels: dict[str, str] = {}
        for system in systems:
            relevant = {i.id: relevant_ids(i.evidence, system.chunks) for i in judged}
            ranked = {q: system.search(text, system.k) for q, text in queries.items()}
            cuts = [system.k] + ([4] if system.key == "ours" else [])  # ours@4: like for like with the textbook's k=4
            missing = sorted(q for q, ids in relevant.items() if not ids)
            # A gold phrase no chunk contains: a typo in the gold, or a chunk boundary through the
            # phrase. Said once for our chunks (BM25 only has the same ones).
            if missing and system.key != "bm25":
                notes[system.key] = f"evidence of {len(missing)} item(s) is in none of its chunks (scored as misses): {', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else "")
            for k in cuts:
                name = f"{system.key}@{k}"
                labels[name] = f"{system.label}, top {k}"
                scores[name] = retrieval_scores(relevant, ranked, k)
                for q in relevant:
                    per_item[q][name] = {
                        **{m: round(v, 4) for m, v in scores[name].per_query.get(q, {}).items()},
                        "relevant": len(relevant[q]),
                        "retrieved": [_label(system, assistant, pid) for pid in ranked[q][:k]],
                    }
    return RetrievalEval(scores, per_item, labels, notes)


def _label(system, assistant, pid: str) -> str:
    """How a retrieved chunk is named in results: "title > section" for ours, the start of its text otherwise."""
    if system.key in ("ours", "bm25"):
        p = assistant.index.passages[assistant.index.position[pid]]
        return f"{p.title} > {p.section_label}"
    return " ".join(system.chunks.get(pid, "").split())[:80]


# --------------------------------------------------------------------------- the gate


def load_thresholds(path: Path = THRESHOLDS_FILE) -> dict[str, dict[str, float]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"cannot read {display_path(path)}: {exc}") from None
    return {"minimum": dict(data.get("minimum", {})), "maximum": dict(data.get("maximum", {}))}


def gate_failures(metrics: dict[str, float | None], thresholds: dict[str, dict[str, float]]) -> list[str]:
    """One line per metric beyond its threshold (or that could not be computed)."""
    failures = []
    for kind, bound in (("minimum", lambda v, t: v >= t), ("maximum", lambda v, t: v <= t)):
        for name, limit in thresholds.get(kind, {}).items():
            if name not in METRICS:
                failures.append(f"{name}: not a metric (thresholds.toml [{kind}]; metrics: {', '.join(METRICS)})")
            elif metrics.get(name) is None:
                failures.append(f"{name}: could not be computed (no gold items it applies to)")
            elif not bound(metrics[name], limit):
                sign = "<" if kind == "minimum" else ">"
                failures.append(f"{name} = {metrics[name]:.4f} {sign} {limit} ({kind})")
    return failures


# --------------------------------------------------------------------------- the run


def run_folder(out: str | None) -> Path:
    """Where the run is written (created only when the run is written, so a failed run leaves nothing)."""
    if out:
        folder = Path(out)
        if folder.exists() and not folder.is_dir():
            raise CliError(f"--out {out}: exists and is not a folder")
        return folder
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    folder = RUNS_DIR / stamp
    n = 1
    while folder.exists():  # two runs in the same second
        n += 1
        folder = RUNS_DIR / f"{stamp}-{n}"
    return folder


def item_result(item: GoldItem, record: dict | None, score, retrieval: dict[str, dict]) -> dict[str, Any]:
    """One line of results.jsonl: the gold item, what came back, its scores, pass/fail and why."""
    got = None if record is None else {k: v for k, v in record.items() if k not in ("id", "question")}
    return {
        "id": item.raw_id,
        "where": item.where,
        "gold": item.to_json(),
        "got": got,
        "scores": score.to_json(),
        "retrieval": retrieval,
        "passed": score.passed,
        "reasons": score.reasons,
    }



def main(args, settings: Settings) -> int:
    """`knee eval` (a CliError becomes one line on stderr in knee.cli)."""
    from evals import report

    started = time.perf_counter()
    paths = gold_paths(args.gold)
    items, problems = load_gold(paths)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        raise CliError(f"{len(problems)} problem(s) in the gold files; nothing was run")
    previous = report.load_run(Path(args.compare)) if args.compare else None
    thresholds = load_thresholds()
    folder = run_folder(args.out)

    print(f"knee eval: {len(items)} gold items from {', '.join(display_path(p) for p in paths)}", file=sys.stderr)
    records = run_batch(items, settings)
    print("knee eval: retrieval" + (" and baselines" if not args.no_baselines else ""), file=sys.stderr)
    retrieval = evaluate_retrieval(items, settings, with_baselines=not args.no_baselines)

    ordered = [records.get(i.id) for i in items]
    scores = [score_item(i, r) for i, r in zip(items, ordered)]
    results = [item_result(i, r, s, retrieval.per_item.get(i.id, {})) for i, r, s in zip(items, ordered, scores)]
    metrics, counts = aggregate(items, scores, ordered)
    failures = gate_failures(metrics, thresholds)
    summary = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "gold": [display_path(p) for p in paths],
        "items": len(items),
        "db": str(settings.db_dir),
        "metrics": metrics,
        "counts": counts,
        "retrieval": {name: {"label": retrieval.labels[name], **s.to_json()} for name, s in retrieval.scores.items()},
        "retrieval_notes": retrieval.notes,
        "thresholds": thresholds,
        "gate": {"passed": not failures, "failures": failures},
        "seconds": None,
    }
    comparison = report.compare_runs(previous, summary, results) if previous else None
    summary["seconds"] = round(time.perf_counter() - started, 1)  # answering and scoring; not writing the report
    folder.mkdir(parents=True, exist_ok=True)
    report.write_run(folder, summary, results, comparison)

    print(report.console_summary(summary, results, comparison))
    print(f"run folder: {display_path(folder)} (report.html, report.md, metrics.json, results.jsonl)")
    print(f"knee eval took {time.perf_counter() - started:.1f} s")
    if args.gate:
        if failures:
            for failure in failures:
                print(f"gate: FAILED {failure}", file=sys.stderr)
            return 1
        print("gate: passed")
    return 0
