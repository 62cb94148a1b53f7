"""`knee bench`: how fast, how heavy, and how it grows; ours beside the textbook LangChain RAG.

A benchmark, not a test: it measures and reports, it asserts nothing. Everything runs on a fresh
temporary store built from corpus/ (the user's own store is never touched):

1. ingest: a full `knee ingest --json` into the empty store, then an unchanged re-ingest; each in a
   subprocess, so the seconds include starting Python and (when it is needed) loading the model.
   The textbook RAG's build runs the same way (`python -m evals.baselines textbook-ingest`).
2. cold start: wall time of a subprocess `knee ask "..." --json` to its first answer, and that
   process's peak memory (max RSS, from `os.wait4`, so no other child is counted).
3. warm `ask`: in-process Assistant, one warm-up question, then N timed questions (the gold
   questions, cycled, or a built-in list).
4. retrieval latency (dense + BM25 + fusion, query embedding included; textbook:
   `similarity_search(q, k=4)`) at the corpus's size and on a scaled corpus of at least
   --scaled-chunks chunks: the corpus's chunks varied (sentence shuffles, synonym swaps, sentences
   mixed in from other articles, numbered editions) and embedded for real. The scaled store is
   cached in runs/bench-cache/ keyed by a hash of the corpus chunks, so only the first run embeds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from evals.metrics import percentile
from evals.runner import display_path
from knee.errors import CliError
from knee.config import REPO_ROOT, Settings

RUNS_DIR = REPO_ROOT / "runs"
CACHE_DIR = RUNS_DIR / "bench-cache"
SCALE_VERSION = "scale-1"  # bump when the generator changes: a new cache key, a fresh scaled store
EMBED_BATCH = 256
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


def run_timed(command: list[str]) -> Timed:
    """Run a command with our environment; wall time and the child's own peak memory.
    `os.wait4` gives the rusage of this child alone (RUSAGE_CHILDREN would fold in every earlier one)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=dict(os.environ), cwd=REPO_ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Timed(seconds, proc.returncode, out.read(), err.read(), usage.ru_maxrss / 1024)  # ru_maxrss is KiB on Linux


def _json_line(timed: Timed, what: str) -> dict:
    if timed.returncode != 0:
        last = (timed.stderr.strip().splitlines() or [f"exit code {timed.returncode}"])[-1]
        raise CliError(f"{what} failed: {last}")
    return json.loads(timed.stdout.strip().splitlines()[-1])


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- questions


def bench_questions(n: int) -> list[dict]:
    """n questions with their history: the gold questions (cycled), or the built-in list."""
    from evals.runner import GOLD_DIR, load_gold

    items, _ = load_gold(sorted(GOLD_DIR.glob("*.jsonl")))  # invalid lines are left out here; `knee eval` reports them
    pool = [{"question": i.question, "history": i.history} for i in items] or [{"question": q, "history": []} for q in BUILTIN_QUESTIONS]
    return [pool[i % len(pool)] for i in range(n)]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 2),
        "p95": round(percentile(values, 95), 2),
        "mean": round(float(np.mean(values)), 2),
        "max": round(max(values), 2),
    }


def time_queries(search, queries: list[str]) -> dict[str, float]:
    """Latency of `search(query)` in ms, after one untimed warm-up."""
    search(queries[0])
    times = []
    for q in queries:
        t0 = time.perf_counter()
        search(q)
        times.append((time.perf_counter() - t0) * 1000)
    return summary_ms(times)


def time_hybrid(retriever, queries: list[str]) -> dict[str, Any]:
    """`time_queries` for our retriever, plus the median of each stage (embed, dense, bm25, fuse),
    so the growth with corpus size can be traced to its stage."""
    stages: dict[str, list[float]] = {}

    def search(q: str):
        timings: dict[str, float] = {}
        retriever.search(q, timings=timings)
        for name, ms in timings.items():
            stages.setdefault(name, []).append(ms)

    result = time_queries(search, queries)
    result["stages_p50"] = {name: round(percentile(ms[1:], 50), 2) for name, ms in stages.items()}  # [1:]: not the warm-up
    return result


# --------------------------------------------------------------------------- the scaled corpus

# Word swaps that keep a sentence readable and change its tokens (both BM25's and the model's).
SYNONYMS = {
    "pain": "discomfort", "runners": "joggers", "runner": "jogger", "running": "jogging", "exercises": "drills",
    "exercise": "training", "strengthening": "strength work", "strength": "power", "muscles": "muscle groups",
    "knee": "knee joint", "kneecap": "patella", "improve": "boost", "reduce": "lower", "help": "assist",
    "often": "frequently", "common": "frequent", "important": "key", "weak": "underpowered", "increase": "raise",
    "gradually": "step by step", "week": "seven days", "early": "initially", "effective": "useful",
    "risk": "chance", "stairs": "steps", "people": "individuals", "thigh": "upper leg", "hip": "hip joint",
    "movement": "motion", "programme": "plan", "program": "plan", "physiotherapist": "physio", "doctor": "GP",
    "research": "studies", "evidence": "data", "symptoms": "complaints", "load": "stress", "weeks": "weeks' time",
}
_WORD = re.compile(r"\b(" + "|".join(sorted(map(re.escape, SYNONYMS), key=len, reverse=True)) + r")\b", re.I)


@dataclass
class BaseChunk:
    doc_id: str
    title: str
    section: str
    sentences: list[str]


@dataclass
class ScaledChunk:
    id: str
    doc_id: str
    title: str
    section: str
    text: str


def _swap_words(sentence: str, rng: random.Random, p: float) -> str:
    def swap(m: re.Match) -> str:
        if rng.random() >= p:
            return m.group(0)
        new = SYNONYMS[m.group(0).lower()]
        return new[0].upper() + new[1:] if m.group(0)[0].isupper() else new

    return _WORD.sub(swap, sentence)


def scaled_corpus(base: list[BaseChunk], n: int, seed: int = 0) -> list[ScaledChunk]:
    """At least n chunks: the base chunks as they are (edition 0), then numbered editions of each,
    varied so no two are alike: sentences shuffled, words swapped for synonyms, and now and then a
    sentence from another article mixed in. Deterministic for a given base and seed."""
    if not base:
        raise ValueError("no chunks to scale")
    pool = [(c.doc_id, s) for c in base for s in c.sentences]
    out: list[ScaledChunk] = []
    edition = 0
    while len(out) < n:
        for i, c in enumerate(base):
            if len(out) >= n:
                break
            sentences = list(c.sentences) or [c.title]
            if edition:
                rng = random.Random(f"{seed}:{edition}:{i}")
                if rng.random() < 0.5 and len(pool) > 1:
                    others = [s for d, s in rng.sample(pool, min(8, len(pool))) if d != c.doc_id]
                    if others:
                        sentences[rng.randrange(len(sentences))] = others[0]
                rng.shuffle(sentences)
                sentences = [_swap_words(s, rng, 0.4) for s in sentences]
            header = " > ".join(x for x in (c.title + (f" (edition {edition})" if edition else ""), c.section) if x)
            out.append(ScaledChunk(f"s{len(out):06d}", c.doc_id, c.title, c.section, f"{header}\n\n{' '.join(sentences)}"))
        edition += 1
    return out


def base_chunks(assistant) -> list[BaseChunk]:
    index = assistant.index
    chunks = []
    for p in index.passages:
        bank = index.sentences.get(p.key)
        sentences = list(bank.texts) if bank is not None else [p.text.split("\n\n", 1)[-1]]
        chunks.append(BaseChunk(p.doc_id, p.title, p.section, sentences))
    return chunks


class ScaledIndex:
    """What `HybridRetriever.search` reads of a `KnowledgeIndex`, for the scaled chunks: a Chroma
    collection, a BM25 index built the same way (same tokenizer, same k), the chunk vectors.
    No FAQ entries and no filters (the benchmark times plain queries)."""

    def __init__(self, chroma, chunks: list[ScaledChunk], vectors: np.ndarray, settings: Settings):
        import warnings

        from langchain_core.documents import Document

        from assistant.retrieve import tokenize
        from knee.models import Passage

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from langchain_community.retrievers import BM25Retriever

        self.store = SimpleNamespace(chunks=chroma, chunk_collection=lambda: chroma._collection)
        self.passages = [Passage(id=c.id, key=c.id, text=c.text, doc_id=c.doc_id, title=c.title, section=c.section, source="bench", audience="both", position=i) for i, c in enumerate(chunks)]
        self.committed = {c.id for c in chunks}
        self.position = {c.id: i for i, c in enumerate(chunks)}
        self.by_key = dict(self.position)
        self.chunk_vectors = vectors
        self.faq_keys: list[str] = []
        self.faq_vectors = np.zeros((0, vectors.shape[1]), dtype=np.float32)
        self.bm25 = BM25Retriever.from_documents([Document(id=c.id, page_content=c.text) for c in chunks], preprocess_func=tokenize, k=settings.bm25_k)

    def mask(self, audience, topic):
        return None


def cache_key(chunks: list[BaseChunk], n: int, settings: Settings) -> str:
    h = hashlib.sha256(f"{SCALE_VERSION}|{n}|{Path(settings.model_path).name}".encode())
    for c in chunks:
        h.update(json.dumps([c.doc_id, c.title, c.section, c.sentences], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def embed_resumable(texts: list[str], embeddings, folder: Path) -> tuple[np.ndarray, float]:
    """Embed all texts in batches, saving progress, so an interrupted run resumes where it stopped.
    Prints progress and, after the first batch, the estimated total time. Returns (vectors, seconds)."""
    partial = folder / "vectors.partial.npy"
    done = np.load(partial) if partial.exists() else np.zeros((0, 384), dtype=np.float32)
    if len(done):
        say(f"  resuming: {len(done):,} of {len(texts):,} chunks were embedded by an earlier run")
    parts = [done]
    count = len(done)
    started = time.perf_counter()
    spent_before = json.loads((folder / "progress.json").read_text())["seconds"] if (folder / "progress.json").exists() else 0.0
    for start in range(count, len(texts), EMBED_BATCH):
        batch = texts[start : start + EMBED_BATCH]
        parts.append(embeddings.embed_many(batch))
        count += len(batch)
        elapsed = time.perf_counter() - started
        rate = (count - len(done)) / elapsed
        left = (len(texts) - count) / rate
        if start == len(done):
            say(f"  estimate: {rate:.1f} chunks/s, about {len(texts) / rate / 60:.0f} min for {len(texts):,} chunks")
        say(f"  embedded {count:,}/{len(texts):,} chunks ({rate:.1f}/s, about {left / 60:.1f} min left)")
        if (count // EMBED_BATCH) % 8 == 0 or count == len(texts):
            np.save(partial, np.concatenate(parts))
            (folder / "progress.json").write_text(json.dumps({"count": count, "seconds": spent_before + elapsed}))
    vectors = np.concatenate(parts).astype(np.float32)
    return vectors, spent_before + (time.perf_counter() - started)


SCALED_OURS = "scaled_ours"
SCALED_TEXTBOOK = "scaled_textbook"


def scaled_store(assistant, n: int, settings: Settings) -> dict[str, Any]:
    """The scaled chunks, their vectors and a Chroma store holding them twice: our collection
    (cosine, as `knee.store` makes it) and a textbook one (LangChain's defaults). Built once per
    corpus, then read from runs/bench-cache/."""
    import chromadb

    from knee.store import chroma_settings

    base = base_chunks(assistant)
    folder = CACHE_DIR / f"scaled-{cache_key(base, n, settings)}"
    folder.mkdir(parents=True, exist_ok=True)
    ready = folder / "ready.json"
    chunks = scaled_corpus(base, n)
    texts = [c.text for c in chunks]
    info: dict[str, Any] = {"cache": str(folder), "chunks": len(chunks), "base_chunks": len(base)}
    if ready.exists():
        info.update(json.loads(ready.read_text()), reused=True)
        vectors = np.load(folder / "vectors.npy")
        say(f"scaled corpus: {len(chunks):,} chunks, reusing {display_path(folder)}")
    else:
        say(f"scaled corpus: {len(chunks):,} chunks from {len(base)} ({display_path(folder)}); embedding them once")
        vectors, embed_seconds = embed_resumable(texts, assistant.embeddings, folder)
        np.save(folder / "vectors.npy", vectors)
        say("  loading them into Chroma")
        t0 = time.perf_counter()
        client = chromadb.PersistentClient(path=str(folder / "chroma"), settings=chroma_settings())
        for name, metadata in ((SCALED_OURS, {"hnsw:space": "cosine"}), (SCALED_TEXTBOOK, None)):
            if name in {c if isinstance(c, str) else c.name for c in client.list_collections()}:
                client.delete_collection(name)  # a half-loaded collection from an interrupted run
            collection = client.create_collection(name, metadata=metadata)
            step = min(client.get_max_batch_size(), 5000)
            for start in range(0, len(chunks), step):
                part = chunks[start : start + step]
                collection.add(
                    ids=[c.id for c in part],
                    embeddings=vectors[start : start + step],
                    documents=[c.text for c in part],
                    metadatas=[{"chunk_key": c.id, "doc_id": c.doc_id, "title": c.title, "section": c.section, "source": "bench", "audience": "both", "position": start + j} for j, c in enumerate(part)],
                )
        built = {"embed_seconds": round(embed_seconds, 1), "chroma_load_seconds": round(time.perf_counter() - t0, 1), "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        ready.write_text(json.dumps(built))
        (folder / "vectors.partial.npy").unlink(missing_ok=True)
        info.update(built, reused=False)
    return {"info": info, "chunks": chunks, "vectors": vectors, "folder": folder}


# --------------------------------------------------------------------------- the benchmark


def measure_scaled(assistant, settings: Settings, n: int, queries: list[str]) -> dict[str, Any]:
    from langchain_chroma import Chroma

    from assistant.retrieve import HybridRetriever
    from evals.baselines import TEXTBOOK_K
    from knee.store import as_langchain_embeddings, chroma_settings

    scaled = scaled_store(assistant, n, settings)
    t0 = time.perf_counter()
    embeddings = as_langchain_embeddings(assistant.embeddings)
    folder = str(scaled["folder"] / "chroma")
    ours_chroma = Chroma(collection_name=SCALED_OURS, embedding_function=embeddings, persist_directory=folder, client_settings=chroma_settings())
    index = ScaledIndex(ours_chroma, scaled["chunks"], scaled["vectors"], settings)
    retriever = HybridRetriever(index=index, embed_query=assistant.embed_one, settings=settings)
    textbook = Chroma(collection_name=SCALED_TEXTBOOK, embedding_function=embeddings, persist_directory=folder, client_settings=chroma_settings())
    load_seconds = time.perf_counter() - t0
    say(f"scaled corpus: timing {len(queries)} queries each")
    return {
        **scaled["info"],
        "index_load_seconds": round(load_seconds, 2),
        "ours_ms": time_hybrid(retriever, queries),
        "textbook_ms": time_queries(lambda q: textbook.similarity_search(q, k=TEXTBOOK_K), queries),
    }



def main(args, settings: Settings) -> int:
    """`knee bench` (a CliError becomes one line on stderr in knee.cli)."""
    from assistant.pipeline import load_assistant
    from evals.baselines import TextbookRAG, corpus_markdown_files

    started = time.perf_counter()
    if args.scaled_chunks < 1 or args.questions < 1:
        raise CliError("--scaled-chunks and --questions must be at least 1")
    corpus = settings.corpus_dir
    articles = corpus_markdown_files(corpus)
    if not articles:
        raise CliError(f"no articles in {corpus} to benchmark")
    out = Path(args.out) if args.out else RUNS_DIR / f"bench-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.json"
    questions = bench_questions(args.questions)
    queries = [q["question"] for q in questions[: min(args.questions, LATENCY_QUERIES)]]
    python = sys.executable
    result: dict[str, Any] = {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "corpus": str(corpus), "articles": len(articles), "cpus": os.cpu_count()}

    with tempfile.TemporaryDirectory(prefix="knee-bench-") as tmp:
        db, textbook_dir = Path(tmp) / "db", Path(tmp) / "textbook"
        bench_settings = settings.with_db(db)
        ingest = [python, "-m", "knee.cli", "ingest", str(corpus), "--db", str(db), "--json"]

        say(f"1/6 full ingest of {len(articles)} articles into an empty store")
        full = run_timed(ingest)
        full_report = _json_line(full, "knee ingest")
        say("2/6 unchanged re-ingest")
        again = run_timed(ingest)
        again_report = _json_line(again, "knee ingest (again)")
        say("3/6 textbook RAG build")
        tb = run_timed([python, "-m", "evals.baselines", "textbook-ingest", str(corpus), str(textbook_dir)])
        tb_report = _json_line(tb, "textbook-ingest")
        result["ingest"] = {
            "ours_full": {"seconds": round(full.seconds, 2), "inner_seconds": full_report["seconds"], "chunks_embedded": full_report["embedded"], "sentences_embedded": full_report["sentences_embedded"], "chunks": full_report["chunks_total"]},
            "ours_unchanged": {"seconds": round(again.seconds, 2), "inner_seconds": again_report["seconds"], "chunks_embedded": again_report["embedded"], "sentences_embedded": again_report["sentences_embedded"]},
            "textbook_full": {"seconds": round(tb.seconds, 2), "inner_seconds": tb_report["seconds"], "chunks_embedded": tb_report["chunks"]},
        }

        say("4/6 cold start: a fresh `knee ask` process to its first answer")
        cold = run_timed([python, "-m", "knee.cli", "ask", questions[0]["question"], "--json", "--db", str(db)])
        cold_record = _json_line(cold, "knee ask")
        result["cold_start"] = {"seconds": round(cold.seconds, 2), "max_rss_mb": round(cold.max_rss_mb, 1), "load_ms": cold_record["timings_ms"].get("load"), "answer_ms": cold_record["timings_ms"].get("total")}

        say(f"5/6 warm ask: {len(questions)} questions in-process, after one warm-up")
        assistant = load_assistant(bench_settings)
        assistant.invoke(questions[0])
        times = []
        for q in questions:
            t0 = time.perf_counter()
            assistant.invoke(q)
            times.append((time.perf_counter() - t0) * 1000)
        result["warm_ask_ms"] = summary_ms(times)

        say(f"6/6 retrieval latency at {len(assistant.index):,} chunks, then on the scaled corpus")
        textbook = TextbookRAG.open(bench_settings, textbook_dir)
        result["retrieval_normal"] = {
            "chunks": len(assistant.index),
            "textbook_chunks": len(textbook.chunks),
            "ours_ms": time_hybrid(assistant.retriever, queries),
            "textbook_ms": time_queries(lambda q: textbook.similarity_search(q), queries),
        }
        result["retrieval_scaled"] = measure_scaled(assistant, settings, args.scaled_chunks, queries)

    result["ratios_ours_over_textbook"] = ratios(result)
    result["seconds"] = round(time.perf_counter() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(table(result))
    print(f"\nknee bench took {result['seconds']:.0f} s; results in {out}")
    return 0


def ratios(r: dict) -> dict[str, float]:
    def div(a, b):
        return round(a / b, 2) if b else None

    return {
        "full_ingest_seconds": div(r["ingest"]["ours_full"]["seconds"], r["ingest"]["textbook_full"]["seconds"]),
        "query_p50_normal": div(r["retrieval_normal"]["ours_ms"]["p50"], r["retrieval_normal"]["textbook_ms"]["p50"]),
        "query_p95_normal": div(r["retrieval_normal"]["ours_ms"]["p95"], r["retrieval_normal"]["textbook_ms"]["p95"]),
        "query_p50_scaled": div(r["retrieval_scaled"]["ours_ms"]["p50"], r["retrieval_scaled"]["textbook_ms"]["p50"]),
        "query_p95_scaled": div(r["retrieval_scaled"]["ours_ms"]["p95"], r["retrieval_scaled"]["textbook_ms"]["p95"]),
    }


def _stages(ms: dict) -> str:
    return ", ".join(f"{name} {value:.1f}" for name, value in ms.get("stages_p50", {}).items())


def table(r: dict) -> str:
    ing, rn, rs, rat = r["ingest"], r["retrieval_normal"], r["retrieval_scaled"], r["ratios_ours_over_textbook"]

    def pp(ms: dict) -> str:
        return f"{ms['p50']:.1f} / {ms['p95']:.1f}"

    rows = [
        ("", "ours", "textbook RAG", "ours/textbook"),
        (f"full ingest, {r['articles']} articles (s, subprocess wall)", f"{ing['ours_full']['seconds']:.1f}", f"{ing['textbook_full']['seconds']:.1f}", f"{rat['full_ingest_seconds']}"),
        ("  chunks embedded", f"{ing['ours_full']['chunks_embedded']} (+{ing['ours_full']['sentences_embedded']} sentences)", f"{ing['textbook_full']['chunks_embedded']}", ""),
        ("unchanged re-ingest (s)", f"{ing['ours_unchanged']['seconds']:.1f}", "(no incremental ingest: a full rebuild)", ""),
        ("  chunks embedded", f"{ing['ours_unchanged']['chunks_embedded']}", "", ""),
        ("cold start to first answer (s)", f"{r['cold_start']['seconds']:.1f}", "", ""),
        ("  peak memory of that process (MB)", f"{r['cold_start']['max_rss_mb']:.0f}", "", ""),
        (f"warm ask p50 / p95 (ms, {r['warm_ask_ms']['n']} questions)", pp(r["warm_ask_ms"]), "", ""),
        (f"query p50 / p95 (ms), {rn['chunks']:,} chunks (textbook {rn['textbook_chunks']:,})", pp(rn["ours_ms"]), pp(rn["textbook_ms"]), f"{rat['query_p50_normal']} / {rat['query_p95_normal']}"),
        (f"query p50 / p95 (ms), scaled: {rs['chunks']:,} chunks", pp(rs["ours_ms"]), pp(rs["textbook_ms"]), f"{rat['query_p50_scaled']} / {rat['query_p95_scaled']}"),
        ("  ours by stage, p50 (ms): normal", _stages(rn["ours_ms"]), "", ""),
        ("  ours by stage, p50 (ms): scaled", _stages(rs["ours_ms"]), "", ""),
        ("  scaled store: embedding (s, once; cached)", f"{rs.get('embed_seconds', 0):.0f}" + (" (reused)" if rs.get("reused") else ""), "same vectors", ""),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)) for row in rows)
