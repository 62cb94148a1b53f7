"""The scaled knowledge base of `knee bench`: the corpus grown to N chunks and stored by our own ingest.

A clinic that adds its library of articles and papers reaches tens of thousands of chunks; the
benchmark measures that store, built the way a user's would be:
1. articles: the corpus itself (edition 0, question lists and all), then numbered editions of each
   article (title "... (edition N)"): within each paragraph the sentences are shuffled and, in
   half of the paragraphs, one sentence is replaced by a sentence from another article. Editions
   carry no question lists (a user's own articles rarely do). Above VOLUMES_ABOVE chunks an
   edition is one "volume" file holding all the articles (see there why). Deterministic: the same
   corpus gives the same files, so a rerun writes nothing.
2. vectors: kept in a cache keyed by the text's hash (runs/bench-cache/vectors/). Every text of
   the corpus itself (edition 0: chunks, sentences, questions) and every sentence is embedded for
   real by the same model; editions reuse their sentences' vectors exactly (the same text gives the
   same vector). An edition's *chunk* vector is NOT the model's vector of its text: it is the
   normalised mean of its sentences' real vectors. Embedding 100,000 chunks for real takes about
   100 minutes of this machine's two cores (17 chunks/s measured); the mean of the sentence vectors
   is a point of the same space close to where the model puts the chunk, which is all a measure of
   speed, memory and start-up needs. Retrieval *quality* is never measured on the scaled store,
   only on the real corpus. Resumable: progress is saved batch by batch.
3. the store: `ingest.pipeline.Ingestor` (the code `knee ingest` runs: LangChain's indexing API,
   the manifest, the BM25 index) writes the articles into a store of its own, with an embedding
   function that answers from that cache. Incremental, like any ingest.
4. the textbook RAG beside it: a Chroma collection with LangChain's defaults holding the same
   chunk texts and vectors, queried with `similarity_search(q, k=4)`.

`python -m evals.scale textbook-query DB QUESTION` answers one textbook query in a fresh process
(the benchmark reads its start time and memory).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from knee.config import REPO_ROOT, Settings

SCALE_VERSION = "scale-2"  # bump when the generator changes: new edition texts, a fresh store
CACHE_DIR = REPO_ROOT / "runs" / "bench-cache"
# Texts embedded per model call while filling the cache; a batch is also the unit of resumption.
EMBED_BATCH = 512
TEXTBOOK_SCALED = "textbook_scaled"
DIM = 384  # all-MiniLM-L6-v2

_QUESTIONS_BLOCK = re.compile(r"<!--\s*questions:.*?-->\n?", re.S)
_NOT_PROSE = re.compile(r"^\s*(?:#|<!--|[-*+] |\d+[.)] |\||>)")


def say_default(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- articles


def split_front(raw: str) -> tuple[str, str]:
    if raw.startswith("---\n"):
        end = raw.find("\n---\n", 4)
        if end > 0:
            return raw[: end + 5], raw[end + 5 :]
    return "", raw


def sentence_pool(corpus_files: list[Path]) -> list[str]:
    """Every prose sentence of the corpus, sorted: where editions borrow a sentence from."""
    from ingest.chunking import split_sentences

    pool = set()
    for path in corpus_files:
        _, body = split_front(path.read_text(encoding="utf-8"))
        for block in _QUESTIONS_BLOCK.sub("", body).split("\n\n"):
            if block.strip() and not _NOT_PROSE.match(block):
                pool.update(s for s in split_sentences(" ".join(block.split())) if len(s.split()) >= 5)
    return sorted(pool)


def edition_markdown(raw: str, name: str, edition: int, pool: list[str]) -> str:
    """Edition `edition` of one article (edition 0 is the article itself)."""
    from ingest.chunking import split_sentences

    if edition == 0:
        return raw
    front, body = split_front(raw)
    front = re.sub(r'(?m)^title:\s*"?(.*?)"?\s*$', lambda m: f'title: "{m.group(1)} (edition {edition})"', front, count=1)
    front = re.sub(r"(?m)^slug:\s*(\S+)\s*$", lambda m: f"slug: {m.group(1)}-e{edition}", front, count=1)
    blocks = _QUESTIONS_BLOCK.sub("", body).split("\n\n")
    out = []
    for i, block in enumerate(blocks):
        if not block.strip() or _NOT_PROSE.match(block):
            out.append(block)
            continue
        rng = random.Random(f"{SCALE_VERSION}:{name}:{edition}:{i}")
        sentences = split_sentences(" ".join(block.split()))
        if len(sentences) > 1:
            rng.shuffle(sentences)
        if pool and rng.random() < 0.5:
            sentences[rng.randrange(len(sentences))] = pool[rng.randrange(len(pool))]
        out.append(" ".join(sentences))
    return front + "\n\n".join(out)


# Above this many chunks, each edition is written as one volume holding every article (a clinic's
# library of long documents) rather than one file per article: our ingest commits an article at a
# time (three Chroma upserts, about 0.1 s each here whatever their size), so 10,000 small files
# took about 0.5 s each (83 min at 100k chunks) where 500 volumes take minutes. Same sentences,
# same sections; only the number of files differs.
VOLUMES_ABOVE = 20_000


def edition_volume(raws: list[tuple[str, str]], edition: int, pool: list[str]) -> str:
    """Edition `edition` of the whole corpus as one Markdown file: each article's title a level-2
    heading and its own headings one level down."""
    first_front, _ = split_front(raws[0][1])
    front = re.sub(r'(?m)^title:\s*.*$', f'title: "Runner\'s knee library, volume {edition}"', first_front, count=1)
    front = re.sub(r"(?m)^slug:\s*\S+\s*$", f"slug: library-v{edition}", front, count=1)
    parts = [f"# Runner's knee library, volume {edition}"]
    for name, raw in raws:
        _, body = split_front(edition_markdown(raw, name, edition, pool))
        parts.append(re.sub(r"(?m)^(#{1,5})(\s)", r"#\1\2", body.strip()))
    return front + "\n\n".join(parts) + "\n"


def write_articles(corpus_files: list[Path], folder: Path, n_chunks: int, count_chunks: Callable[[Path], int],
                   say=say_default) -> tuple[list[Path], int]:
    """Editions of the corpus into `folder` until they hold at least `n_chunks` chunks. A file whose
    text is already there is left alone (its modification time too); files beyond are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    pool = sentence_pool(corpus_files)
    raws = [(p.stem, p.read_text(encoding="utf-8")) for p in corpus_files]
    counts_path = folder.parent / "chunk-counts.json"
    counts: dict[str, int] = json.loads(counts_path.read_text()) if counts_path.exists() else {}
    written: list[Path] = []
    total, edition, started = 0, 0, time.perf_counter()
    volumes = n_chunks > VOLUMES_ABOVE
    while total < n_chunks:
        units = [("library", None)] if volumes and edition > 0 else raws
        for name, raw in units:
            if total >= n_chunks:
                break
            text = edition_volume(raws, edition, pool) if raw is None else edition_markdown(raw, name, edition, pool)
            path = folder / f"e{edition:04d}-{name}.md"
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
            key = hashlib.sha256(text.encode()).hexdigest()
            if key not in counts:
                counts[key] = count_chunks(path)
            total += counts[key]
            written.append(path)
        edition += 1
        if edition % (10 if volumes else 50) == 0:
            say(f"  articles: {len(written):,} files, {total:,} chunks ({time.perf_counter() - started:.0f} s)")
    keep = set(written)
    for extra in folder.glob("*.md"):
        if extra not in keep:
            extra.unlink()
    counts_path.write_text(json.dumps(counts))
    return written, total


# --------------------------------------------------------------------------- vectors


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class VectorCache:
    """Vectors by text hash, kept on disk as shards (keys + float32 vectors), one per batch."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.vectors: dict[str, np.ndarray] = {}
        self._pending: dict[str, np.ndarray] = {}
        for shard in sorted(folder.glob("shard-*.npz")):
            try:
                with np.load(shard) as data:
                    self.vectors.update(zip(data["keys"].tolist(), data["vectors"]))
            except Exception:  # a shard cut short by a killed run: its batch is embedded again
                shard.unlink()

    def __contains__(self, text: str) -> bool:
        return text_key(text) in self.vectors

    def get(self, texts: list[str]) -> np.ndarray:
        return np.asarray([self.vectors[text_key(t)] for t in texts], dtype=np.float32).reshape(len(texts), DIM)

    def add(self, texts: list[str], vectors: np.ndarray) -> None:
        for t, v in zip(texts, vectors):
            self.vectors[text_key(t)] = self._pending[text_key(t)] = np.asarray(v, dtype=np.float32)

    def flush(self) -> None:
        if not self._pending:
            return
        n = len(list(self.folder.glob("shard-*.npz")))
        tmp = self.folder / f"shard-{n:06d}.tmp.npz"
        np.savez(tmp, keys=np.asarray(list(self._pending)), vectors=np.stack(list(self._pending.values())))
        tmp.rename(self.folder / f"shard-{n:06d}.npz")
        self._pending = {}


class CachedEmbeddings:
    """The store's embedding function for the benchmark build: the cached vector of a text (made by
    the model from that very text), or the model itself for a text not in the cache."""

    def __init__(self, cache: VectorCache, model):
        self.cache = cache
        self.model = model  # knee.store.LazyEmbeddings

    @property
    def loaded(self) -> bool:
        return self.model.loaded

    def embed_many(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.cache.add(missing, self.model.embed_many(missing))
            self.cache.flush()
        return self.cache.get(list(texts))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_many(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.model.embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return self.embed_query(text)


def fill_cache(texts: list[str], cache: VectorCache, model, say=say_default) -> dict[str, Any]:
    """Embed the texts the cache lacks, batch by batch (each batch saved: an interrupted run resumes)."""
    missing = [t for t in dict.fromkeys(texts) if t not in cache]
    started = time.perf_counter()
    if missing:
        say(f"  embedding {len(missing):,} new texts of {len(set(texts)):,} (the rest are cached)")
    # Similar lengths batch together (less padding); the order does not change any vector.
    missing.sort(key=len)
    for start in range(0, len(missing), EMBED_BATCH):
        batch = missing[start : start + EMBED_BATCH]
        cache.add(batch, model.embed_many(batch))
        cache.flush()
        done = start + len(batch)
        rate = done / (time.perf_counter() - started)
        say(f"  embedded {done:,}/{len(missing):,} ({rate:.0f} texts/s, about {(len(missing) - done) / rate / 60:.0f} min left)")
    return {"embedded": len(missing), "embed_seconds": round(time.perf_counter() - started, 1)}


def mean_vectors(chunks: dict[str, list[str]], cache: VectorCache) -> int:
    """Cache each edition chunk's vector as the normalised mean of its sentences' vectors (see the
    module's docstring for why); returns how many were added."""
    missing = [t for t in chunks if t not in cache]
    for start in range(0, len(missing), EMBED_BATCH * 8):
        batch = missing[start : start + EMBED_BATCH * 8]
        vectors = np.stack([cache.get(chunks[t]).mean(axis=0) for t in batch])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        cache.add(batch, vectors)
        cache.flush()
    return len(missing)


# --------------------------------------------------------------------------- the store


def scaled_settings(settings: Settings, folder: Path) -> Settings:
    return settings.with_db(folder / "db")


def build(settings: Settings, n_chunks: int, cache_dir: Path | None = None, say=say_default) -> dict[str, Any]:
    """The scaled store of at least `n_chunks` chunks, up to date with the corpus (incremental)."""
    from ingest.pipeline import Ingestor, chunk_documents, doc_hash, question_documents, sentence_documents
    from evals.baselines import corpus_markdown_files
    from knee.store import Store, chroma_client, get_embeddings

    cache_dir = cache_dir or CACHE_DIR
    folder = cache_dir / f"{SCALE_VERSION}-{n_chunks}"
    s = scaled_settings(settings, folder)
    corpus_files = corpus_markdown_files(settings.corpus_dir)
    started = time.perf_counter()
    say(f"scaled store of {n_chunks:,} chunks in {folder}")

    reader = Ingestor(s)
    texts: list[str] = []  # embedded by the model
    edition_chunks: dict[str, list[str]] = {}  # an edition's chunk text -> its sentences

    def count_and_collect(path: Path) -> int:
        _, chunks = reader.load(path)
        docs = chunk_documents(chunks)
        for c in chunks:
            if path.name.startswith("e0000-") or not c.sentences:
                texts.append(c.text)
            else:
                edition_chunks[c.text] = list(c.sentences)
        texts.extend(d.page_content for d in sentence_documents(chunks))
        texts.extend(d.page_content for d in question_documents(chunks, [doc_hash(d) for d in docs]))
        return len(chunks)

    files, total = write_articles(corpus_files, folder / "articles", n_chunks, count_and_collect, say)
    info: dict[str, Any] = {"chunks": total, "articles": len(files), "folder": str(folder)}
    cache = VectorCache(cache_dir / "vectors")
    model = get_embeddings(settings)
    if texts:  # new or changed article texts: make sure their vectors are cached before ingest
        info.update(fill_cache(texts, cache, model, say))
    info["sentence_mean_chunks"] = mean_vectors(edition_chunks, cache)
    info["vectors"] = "corpus and every sentence: the model; edition chunks: mean of their sentences' model vectors"
    say("  ingest (the `knee ingest` code, vectors from the cache)")
    t0 = time.perf_counter()
    store = Store(s, chroma_client(s), CachedEmbeddings(cache, model), create=True)
    report = Ingestor(s, store=store).run([folder / "articles"], full=True)
    if report.errors:
        raise RuntimeError(f"the scaled ingest failed: {report.errors[:3]}")
    info["ingest_seconds"] = round(time.perf_counter() - t0, 1)
    info["ingest"] = report.to_json()
    say("  textbook collection (same chunks, same vectors, LangChain's defaults)")
    info["textbook_seconds"] = _textbook_collection(store)
    info["build_seconds"] = round(time.perf_counter() - started, 1)
    (folder / "build.json").write_text(json.dumps(info, indent=2))
    return {**info, "settings": s}


def _textbook_collection(store) -> float:
    """The textbook RAG's collection: our chunk texts and vectors, in a collection made with
    LangChain's defaults (no cosine metadata), rebuilt when its chunks are not ours."""
    t0 = time.perf_counter()
    ours = store.chunk_collection()
    got = ours.get(include=[])
    ids = sorted(got["ids"])
    client = store.client
    try:
        textbook = client.get_collection(TEXTBOOK_SCALED)
        if textbook.count() == len(ids):
            return 0.0
        client.delete_collection(TEXTBOOK_SCALED)
    except Exception:
        pass
    textbook = client.create_collection(TEXTBOOK_SCALED)
    step = 2000
    for start in range(0, len(ids), step):
        part = ours.get(ids=ids[start : start + step], include=["documents", "embeddings"])
        textbook.add(ids=part["ids"], documents=part["documents"], embeddings=part["embeddings"])
    return round(time.perf_counter() - t0, 1)


def open_textbook(settings: Settings):
    """LangChain's Chroma over the textbook collection of a scaled store, with the model as its
    query embedder (what the textbook RAG runs on a query)."""
    from langchain_chroma import Chroma

    from knee.store import as_langchain_embeddings, chroma_settings, get_embeddings

    return Chroma(collection_name=TEXTBOOK_SCALED, embedding_function=as_langchain_embeddings(get_embeddings(settings)),
                  persist_directory=str(settings.chroma_dir), client_settings=chroma_settings())


def copy_store(settings: Settings, to: Path) -> Settings:
    """A copy of a store folder (the benchmark adds an article to the copy, not to the cache)."""
    shutil.copytree(settings.db_dir, to / "db")
    return settings.with_db(to / "db")


def _textbook_query(argv: list[str]) -> int:
    """`python -m evals.scale textbook-query DB QUESTION`: one textbook query in a fresh process."""
    import knee  # noqa: F401  (telemetry off before chromadb is imported)
    from knee.config import load_settings

    settings = load_settings().with_db(argv[0])
    started = time.perf_counter()
    docs = open_textbook(settings).similarity_search(argv[1], k=4)
    print(json.dumps({"hits": len(docs), "seconds": round(time.perf_counter() - started, 3)}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "textbook-query":
        print("usage: python -m evals.scale textbook-query DB QUESTION", file=sys.stderr)
        sys.exit(2)
    sys.exit(_textbook_query(sys.argv[2:]))
