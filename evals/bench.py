"""`knee bench`: how fast, how heavy, and how it grows; ours beside the textbook LangChain RAG.

A benchmark, not a test: it measures and reports, it asserts nothing. Everything runs on a fresh
temporary store built from corpus/ (the user's own store is never touched):

1. ingest: a full `knee ingest --json` into the empty store, then an unchanged re-ingest; each in a
   subprocess, so the seconds include starting Python and (when it is needed) loading the model.
   The textbook RAG's build runs the same way (`python -m evals.baselines textbook-ingest`).
2. cold start: wall time of a subprocess `knee ask "..." --json` to its first answer, and that
   process's peak memory (max RSS, from `os.wait4`, so no other child is counted).
3. warm `ask`: in-process Assistant, one warm-up question, then N timed questions (the gold
   dev split's distinct questions, or a built-in list).
   Cold starts of `knee search`, `knee ask` (to first output) and `knee serve` (to answering HTTP).
4. retrieval latency (dense + BM25 + question index + fusion, query embedding included; textbook:
   `similarity_search(q, k=4)`) at the corpus's size and on scaled stores (default 20,000 and
   100,000 chunks) built by evals/scale.py with our own ingest and cached in runs/bench-cache/
   (see that module for how their vectors are made); at each size, the peak memory and wall time
   of a fresh `knee search` process and of a fresh textbook query process.
5. growth: one new article (the seed article, a user's own real web text) ingested into a copy of
   the largest scaled store with `knee ingest`: what it re-embeds and how long it takes, the sparse
   index's rebuild included.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evals.metrics import percentile
from knee.errors import CliError
from knee.config import REPO_ROOT, Settings

RUNS_DIR = REPO_ROOT / "runs"
SEED_ARTICLE = REPO_ROOT.parent / "shared" / "knowledge" / "seed-article.txt"
LATENCY_QUERIES = 200  # retrieval queries timed at each size (fewer when --questions is smaller)

BUILTIN_QUESTIONS = [
    "What is runner's knee?",
    "Which exercises help runner's knee?",
    "How many sets and reps should I do?",
    "Should I stop running completely?",
    "How much pain is OK when running?",
    "Does increasing my cadence help?",
    "Do insoles help with knee pain?",
    "Is taping or a knee brace worth it?",
    "Why should I strengthen my calves?",
    "Will runner's knee go away on its own?",
    "What else could my knee pain be?",
    "How can I prevent runner's knee?",
    "Why does my knee hurt going down stairs?",
    "Does foam rolling help?",
    "Are hip exercises better than knee exercises?",
    "How long until I can run again?",
    "Can weak glutes cause knee pain?",
    "What does the kneecap do?",
    "My knee is hot and swollen and I have a fever",
    "What dose of ibuprofen should I take?",
]


# --------------------------------------------------------------------------- subprocesses


@dataclass
class Timed:
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    max_rss_mb: float  # peak resident memory of that process


# GNU time reports the peak memory of the command alone. A child forked from this (large) process
# counts the parent's resident pages in its own ru_maxrss until it execs: the benchmark, holding a
# 100k-chunk store, measured its children at its own size (2.6 GB for every one of them).
GNU_TIME = "/usr/bin/time"
_MAXRSS = "knee-bench-maxrss-kb "


def run_timed(command: list[str]) -> Timed:
    """Run a command with our environment; wall time and the command's own peak memory."""
    wrapped = [GNU_TIME, "-f", _MAXRSS + "%M", *command] if Path(GNU_TIME).exists() else command
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdout=out, stderr=err, text=True, env=dict(os.environ), cwd=REPO_ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stderr = err.read()
        rss_mb = usage.ru_maxrss / 1024  # ru_maxrss is KiB on Linux (the fork's own, see GNU_TIME)
        lines = stderr.rstrip("\n").split("\n")
        if lines and lines[-1].startswith(_MAXRSS):
            rss_mb = int(lines[-1][len(_MAXRSS):]) / 1024
            lines = [x for x in lines[:-1] if not x.startswith("Command exited with non-zero status")]
            stderr = "\n".join(lines)
        return Timed(seconds, proc.returncode, out.read(), stderr, rss_mb)


def _json_line(timed: Timed, what: str) -> dict:
    if timed.returncode != 0:
        last = (timed.stderr.strip().splitlines() or [f"exit code {timed.returncode}"])[-1]
        raise CliError(f"{what} failed: {last}")
    return json.loads(timed.stdout.strip().splitlines()[-1])


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- questions


def bench_questions(n: int) -> list[dict]:
    """n questions with their history: the dev split's distinct questions (cycled only past its
    ~600), or the built-in list. Distinct, because the assistant keeps the embeddings of texts it
    has seen: a repeated question would time that memory, not an answer."""
    from evals.runner import GOLD_DIR, load_gold

    items, _ = load_gold(sorted((GOLD_DIR / "dev").glob("*.jsonl")))  # invalid lines are left out here; `knee eval` reports them
    seen: set[str] = set()
    pool = []
    for i in items:
        if i.question not in seen:
            seen.add(i.question)
            pool.append({"question": i.question, "history": i.history})
    pool = pool or [{"question": q, "history": []} for q in BUILTIN_QUESTIONS]
    return [pool[i % len(pool)] for i in range(n)]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 2),
        "p95": round(percentile(values, 95), 2),
        "mean": round(float(np.mean(values)), 2),
        "max": round(max(values), 2),
    }


def time_hybrid_and_textbook(retriever, textbook_search, queries: list[str]) -> tuple[dict[str, Any], dict[str, float]]:
    """Our retriever's and the textbook RAG's latency on the same queries, taken in turns (ours,
    then the textbook's, query by query), plus the median of each of our stages (embed, dense,
    bm25, questions, fuse), so the growth with corpus size can be traced to its stage.
    In turns, because on this virtual machine the same encoder's time moved by a third between
    runs of one process (11-16 ms a query, session 9): timed one after the other, the two systems
    met different machine states; in turns, they meet the same one."""
    stages: dict[str, list[float]] = {}

    def ours(q: str):
        timings: dict[str, float] = {}
        retriever.search(q, timings=timings)
        for name, ms in timings.items():
            stages.setdefault(name, []).append(ms)

    ours(queries[0])
    textbook_search(queries[0])  # one untimed warm-up each
    times: dict[str, list[float]] = {"ours": [], "textbook": []}
    for q in queries:
        for name, search in (("ours", ours), ("textbook", textbook_search)):
            t0 = time.perf_counter()
            search(q)
            times[name].append((time.perf_counter() - t0) * 1000)
    result = summary_ms(times["ours"])
    result["stages_p50"] = {name: round(percentile(ms[1:], 50), 2) for name, ms in stages.items()}  # [1:]: not the warm-up
    return result, summary_ms(times["textbook"])


# --------------------------------------------------------------------------- the benchmark


# Each cold start is timed this many times and the median reported: one start varied by up to
# 1.5 s from the next on this machine (7.6 s and 9.0 s for `knee serve`, back to back).
COLD_RUNS = 3


def cold_runs(command: list[str], what: str, runs: int = COLD_RUNS) -> dict[str, Any]:
    """`runs` fresh processes of `command`, each of which must print its JSON: the median wall
    time to that output, the highest peak memory, and each start's time."""
    times, peaks = [], []
    for _ in range(runs):
        timed = run_timed(command)
        _json_line(timed, what)  # raises on failure; the output must be its JSON
        times.append(timed.seconds)
        peaks.append(timed.max_rss_mb)
    return {"seconds": round(statistics.median(times), 2), "max_rss_mb": round(max(peaks), 1),
            "runs": [round(t, 2) for t in times]}


def cold_commands(python: str, db: Path, question: str) -> dict[str, dict]:
    """Fresh `knee search` and `knee ask` processes (`cold_runs`)."""
    return {name: cold_runs([python, "-m", "knee.cli", *command, "--db", str(db)], f"knee {name}")
            for name, command in (("search", ["search", question, "--json", "--k", "5"]), ("ask", ["ask", question, "--json"]))}


def cold_serve(db: Path, runs: int = COLD_RUNS) -> dict[str, float]:
    """`knee serve` from start to its first HTTP answer, and its memory then (the median of
    `runs` starts)."""
    from evals.serving import ServeProcess

    times, rss, codes = [], [], []
    for _ in range(runs):
        app = ServeProcess(env={"KNEE_DB": str(db)})
        t0 = time.perf_counter()
        app.start()
        times.append(time.perf_counter() - t0)
        rss.append(app.rss_mb() or 0.0)
        app.stop()
        codes.append(app.returncode)
    return {"seconds": round(statistics.median(times), 2), "rss_mb": round(max(rss), 1),
            "stopped_with": max(codes, key=abs), "runs": [round(t, 2) for t in times]}


def measure_scale(settings: Settings, n: int, queries: list[str], python: str) -> dict[str, Any]:
    from assistant.pipeline import load_assistant
    from evals import scale
    from evals.baselines import TEXTBOOK_K

    built = scale.build(settings, n, say=say)
    s = built.pop("settings")
    db = s.db_dir
    say(f"  timing {len(queries)} queries each at {built['chunks']:,} chunks")
    assistant = load_assistant(s)
    textbook_store = scale.open_textbook(s)
    ours, textbook = time_hybrid_and_textbook(assistant.retriever, lambda q: textbook_store.similarity_search(q, k=TEXTBOOK_K), queries)
    cold = cold_commands(python, db, queries[0])
    textbook_cold = cold_runs([python, "-m", "evals.scale", "textbook-query", str(db), queries[0]], "textbook query")
    del assistant, textbook_store
    return {
        "chunks": built["chunks"], "articles": built["articles"], "build_seconds": built["build_seconds"],
        "vectors": built.get("vectors"), "db": str(db), "settings": s,
        "ours_ms": ours, "textbook_ms": textbook,
        "cold": {**cold, "textbook_query": textbook_cold},
    }


def add_one_article(settings: Settings, python: str, tmp: Path) -> dict[str, Any]:
    """Ingest one new article into a copy of a scaled store, as a user would (`knee ingest FILE`)."""
    from evals import scale

    if not SEED_ARTICLE.exists():
        return {"skipped": f"{SEED_ARTICLE} not found"}
    copy = scale.copy_store(settings, tmp / "grow")
    article = tmp / "grow" / "our-clinic-article.txt"
    shutil.copy(SEED_ARTICLE, article)
    timed = run_timed([python, "-m", "knee.cli", "ingest", str(article), "--db", str(copy.db_dir), "--json"])
    report = _json_line(timed, "knee ingest (one article)")
    shutil.rmtree(tmp / "grow", ignore_errors=True)
    return {"seconds": round(timed.seconds, 2), "inner_seconds": report.get("seconds"), "chunks_embedded": report.get("embedded"),
            "sentences_embedded": report.get("sentences_embedded"), "chunks_total": report.get("chunks_total"),
            "max_rss_mb": round(timed.max_rss_mb, 1), "sparse_seconds": report.get("sparse_seconds")}


def main(args, settings: Settings) -> int:
    """`knee bench` (a CliError becomes one line on stderr in knee.cli)."""
    from assistant.pipeline import load_assistant
    from evals.baselines import TextbookRAG, corpus_markdown_files

    started = time.perf_counter()
    try:
        scales = [int(x) for x in str(args.scales).split(",") if x.strip()]
    except ValueError:
        raise CliError(f"--scales takes chunk counts separated by commas, not {args.scales!r}")
    if any(n < 1 for n in scales) or args.questions < 1:
        raise CliError("--scales and --questions must be at least 1")
    corpus = settings.corpus_dir
    articles = corpus_markdown_files(corpus)
    if not articles:
        raise CliError(f"no articles in {corpus} to benchmark")
    out = Path(args.out) if args.out else RUNS_DIR / f"bench-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.json"
    questions = bench_questions(args.questions)
    queries = [q["question"] for q in questions[: min(args.questions, LATENCY_QUERIES)]]
    python = sys.executable
    result: dict[str, Any] = {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "corpus": str(corpus),
                              "articles": len(articles), "cpus": os.cpu_count()}
    steps = 6 + len(scales) + bool(scales)

    with tempfile.TemporaryDirectory(prefix="knee-bench-") as tmp:
        tmp = Path(tmp)
        db, textbook_dir = tmp / "db", tmp / "textbook"
        bench_settings = settings.with_db(db)
        ingest = [python, "-m", "knee.cli", "ingest", str(corpus), "--db", str(db), "--json"]

        say(f"1/{steps} full ingest of {len(articles)} articles into an empty store")
        full = run_timed(ingest)
        full_report = _json_line(full, "knee ingest")
        say(f"2/{steps} unchanged re-ingest")
        again = run_timed(ingest)
        again_report = _json_line(again, "knee ingest (again)")
        say(f"3/{steps} textbook RAG build")
        tb = run_timed([python, "-m", "evals.baselines", "textbook-ingest", str(corpus), str(textbook_dir)])
        tb_report = _json_line(tb, "textbook-ingest")
        result["ingest"] = {
            "ours_full": {"seconds": round(full.seconds, 2), "inner_seconds": full_report["seconds"], "chunks_embedded": full_report["embedded"],
                          "sentences_embedded": full_report["sentences_embedded"], "chunks": full_report["chunks_total"]},
            "ours_unchanged": {"seconds": round(again.seconds, 2), "inner_seconds": again_report["seconds"], "chunks_embedded": again_report["embedded"],
                               "sentences_embedded": again_report["sentences_embedded"]},
            "textbook_full": {"seconds": round(tb.seconds, 2), "inner_seconds": tb_report["seconds"], "chunks_embedded": tb_report["chunks"]},
        }

        say(f"4/{steps} cold start: fresh `knee search`, `knee ask` and `knee serve` processes")
        result["cold_start"] = {**cold_commands(python, db, questions[0]["question"]), "serve": cold_serve(db)}

        say(f"5/{steps} warm ask: {len(questions)} questions in-process, after one warm-up")
        assistant = load_assistant(bench_settings)
        assistant.invoke(questions[0])
        times, stages = [], {}
        for q in questions:
            t0 = time.perf_counter()
            answer = assistant.invoke(q)
            times.append((time.perf_counter() - t0) * 1000)
            for name, ms in (answer.timings_ms or {}).items():
                if name != "total" and isinstance(ms, (int, float)):
                    stages.setdefault(name, []).append(ms)
        result["warm_ask_ms"] = {**summary_ms(times), "stages_p50": {k: round(percentile(v, 50), 2) for k, v in stages.items()}}

        say(f"6/{steps} retrieval latency at {len(assistant.index):,} chunks")
        textbook = TextbookRAG.open(bench_settings, textbook_dir)
        ours, textbook_ms = time_hybrid_and_textbook(assistant.retriever, lambda q: textbook.similarity_search(q), queries)
        result["retrieval"] = [{
            "chunks": len(assistant.index),
            "textbook_chunks": len(textbook.chunks),
            "ours_ms": ours,
            "textbook_ms": textbook_ms,
            "cold": {k: v for k, v in result["cold_start"].items() if k == "search"},
        }]
        del assistant
        largest = None
        for i, n in enumerate(scales):
            say(f"{7 + i}/{steps} scaled store of {n:,} chunks (built once, cached in runs/bench-cache/)")
            measured = measure_scale(settings, n, queries, python)
            largest = measured.pop("settings")
            result["retrieval"].append(measured)
        if largest is not None:
            say(f"{steps}/{steps} one new article into a copy of the {result['retrieval'][-1]['chunks']:,}-chunk store")
            result["add_one_article"] = {"store_chunks": result["retrieval"][-1]["chunks"], **add_one_article(largest, python, tmp)}

    result["seconds"] = round(time.perf_counter() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(table(result))
    print(f"\nknee bench took {result['seconds']:.0f} s; results in {out}")
    return 0


def _stages(ms: dict) -> str:
    return ", ".join(f"{name} {value:.1f}" for name, value in ms.get("stages_p50", {}).items())


def table(r: dict) -> str:
    ing = r["ingest"]

    def pp(ms: dict) -> str:
        return f"{ms['p50']:.1f} / {ms['p95']:.1f}"

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b else ""

    cold = r["cold_start"]
    rows = [
        ("", "ours", "textbook RAG", "ours/textbook"),
        (f"full ingest, {r['articles']} articles (s, subprocess wall)", f"{ing['ours_full']['seconds']:.1f}", f"{ing['textbook_full']['seconds']:.1f}",
         ratio(ing["ours_full"]["seconds"], ing["textbook_full"]["seconds"])),
        ("  chunks embedded", f"{ing['ours_full']['chunks_embedded']} (+{ing['ours_full']['sentences_embedded']} sentences)", f"{ing['textbook_full']['chunks_embedded']}", ""),
        ("unchanged re-ingest (s)", f"{ing['ours_unchanged']['seconds']:.1f}", "(a full rebuild)", ""),
        (f"cold `knee search` to output (s, median of {COLD_RUNS}) / peak MB", f"{cold['search']['seconds']:.1f} / {cold['search']['max_rss_mb']:.0f}", "", ""),
        (f"cold `knee ask` to output (s, median of {COLD_RUNS}) / peak MB", f"{cold['ask']['seconds']:.1f} / {cold['ask']['max_rss_mb']:.0f}", "", ""),
        (f"cold `knee serve` to ready (s, median of {COLD_RUNS}) / MB", f"{cold['serve']['seconds']:.1f} / {cold['serve']['rss_mb']:.0f}", "", ""),
        (f"warm ask p50 / p95 (ms, {r['warm_ask_ms']['n']} questions)", pp(r["warm_ask_ms"]), "", ""),
        ("  warm ask by stage, p50 (ms)", _stages(r["warm_ask_ms"]), "", ""),
    ]
    for level in r["retrieval"]:
        o, t = level["ours_ms"], level["textbook_ms"]
        rows.append((f"retrieval p50 / p95 (ms), {level['chunks']:,} chunks", pp(o), pp(t), f"{ratio(o['p50'], t['p50'])} / {ratio(o['p95'], t['p95'])}"))
        rows.append(("  ours by stage, p50 (ms)", _stages(o), "", ""))
        c = level.get("cold", {})
        if "textbook_query" in c:
            rows.append((f"  fresh process: search (s, median of {COLD_RUNS}) / peak MB", f"{c['search']['seconds']:.1f} / {c['search']['max_rss_mb']:.0f}",
                         f"{c['textbook_query']['seconds']:.1f} / {c['textbook_query']['max_rss_mb']:.0f}", ""))
            rows.append((f"  fresh process: ask (s, median of {COLD_RUNS}) / peak MB", f"{c['ask']['seconds']:.1f} / {c['ask']['max_rss_mb']:.0f}", "", ""))
    if "add_one_article" in r:
        a = r["add_one_article"]
        if "skipped" in a:
            rows.append(("add one article", a["skipped"], "", ""))
        else:
            rows.append((f"add one article at {a['store_chunks']:,} chunks (s)", f"{a['seconds']:.1f}", "(a full rebuild)", ""))
            rows.append(("  re-embedded", f"{a['chunks_embedded']} chunks, {a['sentences_embedded']} sentences", "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)) for row in rows)
