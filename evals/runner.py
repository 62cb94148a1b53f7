"""`knee eval`: run the gold questions, score them per split, compare with baselines and an earlier run, report.

The gold questions come in splits, scored separately and together:
- `dev`  (evals/gold/dev/*.jsonl): tune freely; read every failure;
- `test` (evals/gold/test/*.jsonl): frozen; written before the code it judges and never tuned on
  (when an item fails, the general cause is fixed and checked on new dev phrasings). It only grows,
  in commits that change no code;
- `real` (../shared/knowledge/real-questions-dev.jsonl, or $KNEE_REAL_GOLD): questions real people
  posted publicly, read from where they are kept (never copied into the repository).

1. Read and validate the gold files (every problem reported as file:line: problem; nothing runs).
2. Answer every question through `knee ask --batch --json`, in a subprocess with our environment,
   so what is scored is exactly what a user of that command gets (timings included).
3. Score each item (`evals.metrics.score_item`) and the whole set (`aggregate`).
4. Retrieval quality against the evidence phrases, for our retriever and the baselines
   (`evals.baselines`).
5. Write results.jsonl, metrics.json, report.md and report.html into the run folder
   (`evals.report`); with --compare, what changed since an earlier run; with --gate, exit 1 when
   a metric is below its threshold (evals/thresholds.toml).
"""

from __future__ import annotations

import concurrent.futures
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

from evals.metrics import METRICS, RetrievalScores, aggregate, normalise_chunks, relevant_in_normalised, retrieval_scores, score_item
from knee.errors import CliError
from knee.config import REPO_ROOT, Settings

EVALS_DIR = Path(__file__).resolve().parent
GOLD_DIR = EVALS_DIR / "gold"
THRESHOLDS_FILE = EVALS_DIR / "thresholds.toml"
RUNS_DIR = REPO_ROOT / "runs"
RETRIEVAL_K = 5

BEHAVIORS = ("answer", "escalate", "refuse")
LEVELS = ("emergency", "urgent")
GOLD_KEYS = {"id", "question", "history", "behavior", "levels", "facts", "evidence", "row", "tags"}
SPLITS = ("dev", "test", "real")
ALL = "all"
# Free-text keys a gold writer may add for people; the runner ignores them. Any other key is
# reported, so a typo ("fact" for "facts") cannot silently drop checks.
INFO_KEYS = {"notes", "note", "comment", "category", "topic", "source", "ref"}


# --------------------------------------------------------------------------- gold


@dataclass
class GoldItem:
    id: str  # as a string (result files key by it)
    raw_id: Any  # as written, sent to `knee ask --batch` and echoed back
    question: str
    behavior: str
    history: list[dict] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)
    facts: list[list[str]] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    row: str | None = None  # the red-flag row an escalate item raises (or a look-alike imitates)
    tags: list[str] = field(default_factory=list)  # style and kind: long, typo, third-person, crisis, lookalike ...
    split: str = ""
    file: str = ""
    line: int = 0

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.raw_id, "question": self.question, "behavior": self.behavior}
        for key in ("history", "levels", "facts", "evidence", "row", "tags"):
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
    row = obj.get("row")
    if "row" in obj and not (isinstance(row, str) and row.strip()):
        problems.append('"row" must be the id of a red-flag row (assistant/red_flags.yaml)')
    tags = obj.get("tags", [])
    if "tags" in obj and not (isinstance(tags, list) and all(isinstance(t, str) and t.strip() for t in tags)):
        problems.append('"tags" must be a list of words')
    if problems:
        return None, problems
    return GoldItem(str(raw_id), raw_id, question, behavior, history, list(levels), [list(f) for f in facts], list(evidence),
                    row, [t.strip() for t in tags]), []


def display_path(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def load_gold(paths: list[Path], split_of: dict[Path, str] | None = None) -> tuple[list[GoldItem], list[str]]:
    """All items of the gold files, and every problem found as "file:line: problem".
    `split_of` names each file's split (default: "custom"); ids are unique over all files."""
    items: list[GoldItem] = []
    problems: list[str] = []
    first_seen: dict[str, str] = {}
    known_rows = red_flag_rows()
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
            item.split = (split_of or {}).get(path, "custom")
            if item.row and known_rows and item.row not in known_rows:
                problems.append(f"{name}:{number}: row {item.row!r} is not a row of assistant/red_flags.yaml")
                continue
            if item.id in first_seen:
                problems.append(f"{name}:{number}: duplicate id {item.raw_id!r} (first at {first_seen[item.id]})")
                continue
            first_seen[item.id] = item.where
            items.append(item)
        if count == 0:
            problems.append(f"{name}: has no gold items")
    return items, problems


def red_flag_rows() -> dict[str, str]:
    """Row id -> level of the red-flag table (gold items name rows; crisis rows define crisis recall)."""
    from assistant.redflags import TABLE_PATH
    from knee.yamltext import YamlFileError, load_file

    try:
        table = load_file(TABLE_PATH, "the red-flag table")
    except YamlFileError:
        return {}
    return {r["id"]: r["level"] for r in table.get("rows", []) if isinstance(r, dict) and "id" in r}


def crisis_rows() -> frozenset[str]:
    return frozenset(r for r, level in red_flag_rows().items() if level == "crisis")


@dataclass
class Split:
    name: str
    paths: list[Path]
    note: str = ""  # where it comes from, or why it is missing


def gold_splits(given: list[str] | None, wanted: list[str] | None, settings: Settings) -> list[Split]:
    """The splits to run: `--gold FILE ...` (one split, "custom"), else dev, test and real (or the
    `--split` ones). A split whose files are missing is returned empty, with a note saying why."""
    if given:
        missing = [g for g in given if not Path(g).is_file()]
        if missing:
            raise CliError(f"gold file not found: {', '.join(missing)}")
        return [Split("custom", [Path(g) for g in given], "--gold")]
    names = wanted or list(SPLITS)
    unknown = [n for n in names if n not in SPLITS]
    if unknown:
        raise CliError(f"unknown split(s) {', '.join(unknown)} (splits: {', '.join(SPLITS)})")
    splits = []
    for name in names:
        if name == "real":
            path = settings.real_gold_path
            if path is not None and path.is_file():
                splits.append(Split("real", [path], f"read from {path}"))
            else:
                splits.append(Split("real", [], f"not found: {path} (set KNEE_REAL_GOLD to the real questions file)"))
            continue
        found = sorted((GOLD_DIR / name).glob("*.jsonl"))
        splits.append(Split(name, found, f"{display_path(GOLD_DIR / name)}/" if found else f"no gold files in {display_path(GOLD_DIR / name)}/"))
    if not any(sp.paths for sp in splits):
        raise CliError("no gold files found: " + "; ".join(f"{sp.name}: {sp.note}" for sp in splits))
    return splits


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
    """Each system's ranking of every judged item; scored per split by `scores_for`."""

    relevant: dict[str, dict[str, set[str]]]  # system key -> item id -> relevant chunk ids
    ranked: dict[str, dict[str, list[str]]]  # system key -> item id -> chunk ids, best first
    cuts: dict[str, tuple[str, int]]  # run name ("ours@5") -> (system key, k)
    labels: dict[str, str]
    names: dict[str, dict[str, str]]  # system key -> chunk id -> how a result names it
    notes: dict[str, str]  # baselines skipped, and why; how the textbook store was built

    def scores_for(self, ids: set[str]) -> dict[str, RetrievalScores]:
        out = {}
        for run, (system, k) in self.cuts.items():
            relevant = {q: r for q, r in self.relevant[system].items() if q in ids}
            out[run] = retrieval_scores(relevant, self.ranked[system], k)
        return out

    def per_item(self, item_id: str, scores: dict[str, RetrievalScores]) -> dict[str, dict]:
        result = {}
        for run, (system, k) in self.cuts.items():
            if item_id not in self.relevant[system]:
                continue
            result[run] = {
                **{m: round(v, 4) for m, v in scores[run].per_query.get(item_id, {}).items()},
                "relevant": len(self.relevant[system][item_id]),
                "retrieved": [self.names[system].get(pid, pid) for pid in self.ranked[system][item_id][:k]],
            }
        return result


def evaluate_retrieval(items: list[GoldItem], settings: Settings, with_baselines: bool) -> RetrievalEval:
    from assistant.pipeline import load_assistant
    from evals.baselines import TextbookRAG, bm25_system, hybrid_system

    judged = [i for i in items if i.evidence]
    assistant = load_assistant(settings)
    systems = [hybrid_system(assistant, RETRIEVAL_K)]
    notes: dict[str, str] = {}
    result = RetrievalEval({}, {}, {}, {}, {}, notes)
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
        for system in systems:
            normalised = normalise_chunks(system.chunks)
            relevant = {i.id: relevant_in_normalised(i.evidence, normalised) for i in judged}
            if system.search_turns is not None:
                ranked = {i.id: system.search_turns(i.question, list(i.history), system.k) for i in judged}
            else:
                ranked = {q: system.search(text, system.k) for q, text in queries.items()}
            result.relevant[system.key], result.ranked[system.key] = relevant, ranked
            result.names[system.key] = {pid: _label(system, assistant, pid) for ids in ranked.values() for pid in ids}
            missing = sorted(q for q, ids in relevant.items() if not ids)
            # A gold phrase no chunk contains: a typo in the gold, or a chunk boundary through the
            # phrase. Said once for our chunks (BM25 only has the same ones).
            if missing and system.key != "bm25":
                notes[system.key] = f"evidence of {len(missing)} item(s) is in none of its chunks (scored as misses): {', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else "")
            for k in [system.k] + ([4] if system.key == "ours" else []):  # ours@4: like for like with the textbook's k=4
                name = f"{system.key}@{k}"
                result.cuts[name] = (system.key, k)
                result.labels[name] = f"{system.label}, top {k}"
    return result


def _label(system, assistant, pid: str) -> str:
    """How a retrieved chunk is named in results: "title > section" for ours, the start of its text otherwise."""
    if system.key in ("ours", "bm25"):
        found = assistant.index.passages_by_id([pid])
        return f"{found[0].title} > {found[0].section_label}" if found else pid
    return " ".join(system.chunks.get(pid, "").split())[:80]


# --------------------------------------------------------------------------- the gate


@dataclass
class Thresholds:
    """evals/thresholds.toml: per split, [<split>.minimum] and [<split>.maximum] metric bounds; and
    [expected_to_fail]: "<split>.<metric>" = "the issue that will lift it", for thresholds today's
    code does not meet yet (reported as such, not failing the gate; never a lowered threshold)."""

    bounds: dict[str, dict[str, dict[str, float]]]  # split -> "minimum"/"maximum" -> metric -> limit
    expected_to_fail: dict[str, str]  # "split.metric" -> the issue that will lift it

    def to_json(self) -> dict[str, Any]:
        return {"bounds": self.bounds, "expected_to_fail": self.expected_to_fail}


def load_thresholds(path: Path = THRESHOLDS_FILE) -> Thresholds:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"cannot read {display_path(path)}: {exc}") from None
    bounds = {}
    for split, table in data.items():
        if split == "expected_to_fail" or not isinstance(table, dict):
            continue
        bounds[split] = {kind: dict(table.get(kind, {})) for kind in ("minimum", "maximum")}
    return Thresholds(bounds, {str(k): str(v) for k, v in data.get("expected_to_fail", {}).items()})


@dataclass
class GateLine:
    split: str
    metric: str
    text: str  # "fact_recall = 0.8120 < 0.9 (minimum)"
    expected: str | None = None  # the issue that will lift it, when listed as expected to fail

    def to_json(self) -> dict[str, Any]:
        return {"split": self.split, "metric": self.metric, "text": self.text, "expected_to_fail": self.expected}


def gate_lines(metrics: dict[str, float | None], bounds: dict[str, dict[str, float]], split: str = "custom",
               expected: dict[str, str] | None = None) -> tuple[list[GateLine], list[GateLine]]:
    """(failures, expected failures) of one split: a metric beyond its threshold or not computable."""
    failing, xfail = [], []
    for kind, ok in (("minimum", lambda v, t: v >= t), ("maximum", lambda v, t: v <= t)):
        for name, limit in bounds.get(kind, {}).items():
            if name not in METRICS:
                text = f"{name}: not a metric (thresholds.toml [{split}.{kind}]; metrics: {', '.join(METRICS)})"
            elif metrics.get(name) is None:
                text = f"{name}: could not be computed (no gold items it applies to)"
            elif not ok(metrics[name], limit):
                text = f"{name} = {metrics[name]:.4f} {'<' if kind == 'minimum' else '>'} {limit} ({kind})"
            else:
                continue
            issue = (expected or {}).get(f"{split}.{name}")
            (xfail if issue else failing).append(GateLine(split, name, text, issue))
    return failing, xfail


def gate_failures(metrics: dict[str, float | None], thresholds: dict[str, dict[str, float]]) -> list[str]:
    """One line per metric beyond its threshold (or that could not be computed), for one set of bounds."""
    return [g.text for g in gate_lines(metrics, thresholds)[0]]


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
        "split": item.split,
        "where": item.where,
        "gold": item.to_json(),
        "got": got,
        "scores": score.to_json(),
        "retrieval": retrieval,
        "passed": score.passed,
        "reasons": score.reasons,
    }


# --------------------------------------------------------------------------- statistics of the gold

# What issue 8 asks of the frozen test split (`knee eval --stats` checks it).
TEST_SPLIT_NEEDS = (
    ("items", 400, lambda i: True),
    ("answer items (not look-alikes)", 150, lambda i: i.behavior == "answer" and not _benign_twin(i)),
    ("escalate items", 120, lambda i: i.behavior == "escalate"),
    ("  red flag only with an earlier turn (combined-turns)", 15, lambda i: i.behavior == "escalate" and "combined-turns" in i.tags),
    ("  red flag inside a long story (in-story)", 15, lambda i: i.behavior == "escalate" and "in-story" in i.tags),
    ("  suicidal thoughts or self-harm (crisis)", 10, lambda i: i.behavior == "escalate" and ("crisis" in i.tags or i.row in crisis_rows())),
    ("look-alikes and general red-flag questions (answer)", 80, lambda i: i.behavior == "answer" and _benign_twin(i)),
    ("refuse items", 50, lambda i: i.behavior == "refuse"),
)
ROW_MINIMUM = 5  # every row of the red-flag table at least this often among the test split's escalations


def _benign_twin(item: GoldItem) -> bool:
    return bool({"lookalike", "general-question", "denial"} & set(item.tags))


def gold_stats(items: list[GoldItem], splits: list[Split]) -> str:
    """Counts by split, behaviour, red-flag row and tag; and the test split against what it must hold."""
    from collections import Counter

    names = [sp.name for sp in splits]
    lines = ["items by split and behaviour:"]
    lines.append(f"  {'split':<8}{'answer':>8}{'escalate':>10}{'refuse':>8}{'total':>8}")
    for name in names:
        c = Counter(i.behavior for i in items if i.split == name)
        lines.append(f"  {name:<8}{c['answer']:>8}{c['escalate']:>10}{c['refuse']:>8}{sum(c.values()):>8}")
    for sp in splits:
        if not sp.paths:
            lines.append(f"  ({sp.name}: {sp.note})")
    rows = red_flag_rows()
    lines += ["", "escalate items by red-flag row (and look-alikes imitating it):", f"  {'row':<26}{'level':<11}" + "".join(f"{n:>12}" for n in names)]
    for row, level in {**rows, **{i.row: "?" for i in items if i.row and i.row not in rows}}.items():
        cells = []
        for name in names:
            esc = sum(1 for i in items if i.split == name and i.row == row and i.behavior == "escalate")
            twin = sum(1 for i in items if i.split == name and i.row == row and i.behavior != "escalate")
            cells.append(f"{esc:>7} /{twin:>3}")
        lines.append(f"  {row:<26}{level:<11}" + "".join(cells))
    no_row = {name: sum(1 for i in items if i.split == name and i.behavior == "escalate" and not i.row) for name in names}
    if any(no_row.values()):
        lines.append(f"  {'(escalate, no row given)':<37}" + "".join(f"{no_row[n]:>7}    " for n in names))
    tags = Counter((i.split, t) for i in items for t in i.tags)
    all_tags = sorted({t for _, t in tags})
    lines += ["", "items by tag:", f"  {'tag':<22}" + "".join(f"{n:>8}" for n in names)]
    for tag in all_tags:
        lines.append(f"  {tag:<22}" + "".join(f"{tags[(n, tag)]:>8}" for n in names))
    test = [i for i in items if i.split == "test"]
    if test:
        lines += ["", "test split against what it must hold (issue 8):"]
        for label, need, pred in TEST_SPLIT_NEEDS:
            have = sum(1 for i in test if pred(i))
            lines.append(f"  {'ok ' if have >= need else 'LOW'} {label:<55}{have:>5} (>= {need})")
        low = [r for r in rows if sum(1 for i in test if i.row == r and i.behavior == "escalate") < ROW_MINIMUM]
        lines.append(f"  {'ok ' if not low else 'LOW'} every red-flag row escalated at least {ROW_MINIMUM} times" + (f": short: {', '.join(low)}" if low else ""))
    return "\n".join(lines)


# --------------------------------------------------------------------------- the run


def split_summary(split: str, items: list[GoldItem], scores, records, retrieval: RetrievalEval | None) -> dict[str, Any]:
    metrics, counts = aggregate(items, scores, records, crisis_rows())
    runs = retrieval.scores_for({i.id for i in items}) if retrieval else {}
    return {
        "items": len(items),
        "metrics": metrics,
        "counts": counts,
        "retrieval": {name: {"label": retrieval.labels[name], **sc.to_json()} for name, sc in runs.items()} if retrieval else {},
        "_runs": runs,  # dropped before writing
    }


def main(args, settings: Settings) -> int:
    """`knee eval` (a CliError becomes one line on stderr in knee.cli)."""
    from evals import report

    started = time.perf_counter()
    splits = gold_splits(args.gold, getattr(args, "split", None), settings)
    split_of = {path: sp.name for sp in splits for path in sp.paths}
    items, problems = load_gold([p for sp in splits for p in sp.paths], split_of)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        raise CliError(f"{len(problems)} problem(s) in the gold files; nothing was run")
    if getattr(args, "stats", False):
        print(gold_stats(items, splits))
        return 0
    previous = report.load_run(Path(args.compare)) if args.compare else None
    thresholds = load_thresholds()
    folder = run_folder(args.out)

    print(f"knee eval: {len(items)} gold items: " + ", ".join(f"{sp.name} {sum(1 for i in items if i.split == sp.name)}" for sp in splits), file=sys.stderr)
    print("knee eval: answering, and retrieval" + (" with baselines" if not args.no_baselines else ""), file=sys.stderr)
    with_baselines = not args.no_baselines
    if not with_baselines and (os.cpu_count() or 1) >= 2:
        # Side by side: the answers in their `knee ask --batch` process, the retrieval scoring in
        # this one; one core each (the encoder runs single-threaded), so neither slows the other
        # much: the gate took 116 s one after the other, 84 s side by side, with the same answer
        # latencies. Not with the baselines: the textbook RAG's build runs torch on both cores,
        # and beside it the answers' p50 on `real` went from 110 to 236 ms (runs/answer-v10).
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            scoring = pool.submit(evaluate_retrieval, items, settings, with_baselines)
            records = run_batch(items, settings)
            retrieval = scoring.result()
    else:
        records = run_batch(items, settings)
        retrieval = evaluate_retrieval(items, settings, with_baselines=with_baselines)

    ordered = [records.get(i.id) for i in items]
    scores = [score_item(i, r) for i, r in zip(items, ordered)]
    per_split: dict[str, dict[str, Any]] = {}
    groups = [(sp.name, [n for n, i in enumerate(items) if i.split == sp.name]) for sp in splits]
    if len(splits) > 1:
        groups.append((ALL, list(range(len(items)))))
    for name, idx in groups:
        per_split[name] = split_summary(name, [items[n] for n in idx], [scores[n] for n in idx], [ordered[n] for n in idx], retrieval)
    results = []
    for i, r, sc in zip(items, ordered, scores):
        results.append(item_result(i, r, sc, retrieval.per_item(i.id, per_split[i.split]["_runs"])))
    failures, expected = [], []
    # A split whose gold file is not on this machine (`real` lives beside the repository, not in
    # it: a clone elsewhere has no ../shared) cannot be gated; the report says so on the gate line
    # instead of failing on metrics nobody could compute. A split that is there but empty still fails.
    absent = {sp.name: sp.note for sp in splits if not sp.paths}
    for name, data in per_split.items():
        if name in thresholds.bounds and name not in absent:
            f, x = gate_lines(data["metrics"], thresholds.bounds[name], name, thresholds.expected_to_fail)
            failures += f
            expected += x
    listed = {f"{x.split}.{x.metric}" for x in expected}
    now_passing = sorted(k for k in thresholds.expected_to_fail
                         if k.split(".")[0] in per_split and k.split(".")[0] not in absent and k not in listed)
    for data in per_split.values():
        data.pop("_runs")
    summary = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "items": len(items),
        "db": str(settings.db_dir),
        "splits": {sp.name: {"note": sp.note, "gold": [display_path(p) for p in sp.paths], **per_split.get(sp.name, {"items": 0})} for sp in splits},
        "split_order": [sp.name for sp in splits] + ([ALL] if ALL in per_split else []),
        "retrieval_notes": retrieval.notes,
        "thresholds": thresholds.to_json(),
        "gate": {
            "passed": not failures,
            "failures": [g.to_json() for g in failures],
            "expected_failures": [g.to_json() for g in expected],
            "expected_but_passing": now_passing,
            "not_gated": {name: note for name, note in absent.items() if name in thresholds.bounds},
        },
        "seconds": None,
    }
    if ALL in per_split:
        summary["splits"][ALL] = {"note": "every split together", "gold": [], **per_split[ALL]}
    comparison = report.compare_runs(previous, summary, results) if previous else None
    summary["seconds"] = round(time.perf_counter() - started, 1)  # answering and scoring; not writing the report
    folder.mkdir(parents=True, exist_ok=True)
    report.write_run(folder, summary, results, comparison)

    print(report.console_summary(summary, results, comparison))
    print(f"run folder: {display_path(folder)} (report.html, report.md, metrics.json, results.jsonl)")
    print(f"knee eval took {time.perf_counter() - started:.1f} s")
    if args.gate:
        for x in expected:
            print(f"gate: expected to fail ({x.expected}): {x.split}: {x.text}", file=sys.stderr)
        for name, note in summary["gate"]["not_gated"].items():
            print(f"gate: not gated: split {name} ({note})")
        for k in now_passing:
            print(f"gate: {k} is listed as expected to fail but passes now: remove it from evals/thresholds.toml", file=sys.stderr)
        if failures:
            for g in failures:
                print(f"gate: FAILED {g.split}: {g.text}", file=sys.stderr)
            return 1
        print("gate: passed" + (f" ({len(expected)} threshold(s) expected to fail, listed above)" if expected else ""))
    return 0
