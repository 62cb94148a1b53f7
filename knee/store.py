"""The store: embeddings, the Chroma collections, the record managers and the manifest.

Two Chroma collections live side by side:
- `<collection>`: one record per chunk (what dense search queries);
- `<collection>_sentences`: one record per sentence of a chunk, embedded at ingest, so the
  composer can rank sentences without embedding anything but the question.

Both are written through LangChain's indexing API, each with its own SQL record manager.

The manifest (a small SQLite file) records, per article, the ids of its committed chunks and
sentences. An article's new chunks become visible only when its manifest row is committed, and its
old chunks are deleted only after that: readers filter by the manifest, so an ingest killed at any
point leaves every article wholly at its old or wholly at its new version.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from knee.config import Settings


class StoreError(RuntimeError):
    """The store cannot be opened or read; the message says what to do."""


# --------------------------------------------------------------------------- embeddings


class LazyEmbeddings:
    """LangChain `Embeddings` that load the model on first use.

    An unchanged re-ingest embeds nothing, so it never pays the seconds of importing
    sentence-transformers and loading the model.
    """

    def __init__(self, model_path: str):
        self.model_path = model_path
        self._inner = None
        self._lock = threading.Lock()

    @property
    def inner(self):
        if self._inner is None:
            with self._lock:
                if self._inner is None:
                    from langchain_huggingface import HuggingFaceEmbeddings

                    self._inner = HuggingFaceEmbeddings(
                        model_name=self.model_path,
                        model_kwargs={"device": "cpu"},
                        # Normalised vectors: cosine similarity is a dot product.
                        encode_kwargs={"normalize_embeddings": True, "batch_size": 64},
                        query_encode_kwargs={"normalize_embeddings": True},
                    )
        return self._inner

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_documents(list(texts))

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)

    def embed_many(self, texts: list[str]):
        """A float32 matrix of normalised embeddings, straight from sentence-transformers."""
        import numpy as np

        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return self.inner._client.encode(
            list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        ).astype(np.float32)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return self.embed_query(text)


def as_langchain_embeddings(lazy: LazyEmbeddings):
    """The shared lazy model as a LangChain `Embeddings` (what LangChain's Chroma takes)."""
    from langchain_core.embeddings import Embeddings

    class _Adapter(Embeddings):
        def embed_documents(self, texts):
            return lazy.embed_documents(texts)

        def embed_query(self, text):
            return lazy.embed_query(text)

    return _Adapter()


_EMBEDDINGS: dict[str, LazyEmbeddings] = {}


def get_embeddings(settings: Settings) -> LazyEmbeddings:
    """One model per process, whatever number of stores use it."""
    if settings.model_path not in _EMBEDDINGS:
        _EMBEDDINGS[settings.model_path] = LazyEmbeddings(settings.model_path)
    return _EMBEDDINGS[settings.model_path]


def model_tokenizer(settings: Settings):
    """The embedding model's own tokenizer (fast to load; no torch)."""
    from tokenizers import Tokenizer

    path = Path(settings.model_path) / "tokenizer.json"
    tok = Tokenizer.from_file(str(path))
    tok.no_truncation()
    tok.no_padding()
    return tok


# --------------------------------------------------------------------------- chroma


def chroma_settings():
    """Chroma client settings for every client we open: no telemetry, no reset."""
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


def chroma_client(settings: Settings):
    import chromadb

    try:
        if settings.uses_server:
            return chromadb.HttpClient(
                host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings()
            )
        settings.chroma_dir.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings())
    except Exception as exc:  # connection refused, unreadable files, ...
        where = (
            f"the Chroma server at {settings.chroma_host}:{settings.chroma_port}"
            if settings.uses_server
            else f"the store in {settings.chroma_dir}"
        )
        raise StoreError(f"cannot open {where}: {exc}") from exc


@dataclass
class Store:
    """The two collections (as LangChain vector stores) and what manages them."""

    settings: Settings
    client: Any
    chunks: Any  # langchain_chroma.Chroma
    sentences: Any
    embeddings: LazyEmbeddings

    def chunk_collection(self):
        return self.chunks._collection

    def sentence_collection(self):
        return self.sentences._collection


def open_store(settings: Settings, create: bool = True) -> Store:
    from langchain_chroma import Chroma

    client = chroma_client(settings)
    embeddings = get_embeddings(settings)
    adapter = as_langchain_embeddings(embeddings)
    cosine = {"hnsw:space": "cosine"}
    try:
        if not create:
            names = {c if isinstance(c, str) else c.name for c in client.list_collections()}
            if settings.collection not in names:
                raise StoreError("the index is empty: build it with `knee ingest`")
        chunks = Chroma(
            collection_name=settings.collection,
            embedding_function=adapter,
            client=client,
            collection_metadata=cosine,
        )
        sentences = Chroma(
            collection_name=settings.sentence_collection,
            embedding_function=adapter,
            client=client,
            collection_metadata=cosine,
        )
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"cannot open the Chroma collections: {exc}") from exc
    return Store(settings, client, chunks, sentences, embeddings)


def record_managers(settings: Settings):
    """The indexing API's record managers, one per collection, in one SQLite file."""
    from langchain_classic.indexes import SQLRecordManager

    settings.db_dir.mkdir(parents=True, exist_ok=True)
    managers = []
    for name in (settings.collection, settings.sentence_collection):
        rm = SQLRecordManager(f"chroma/{name}", db_url=settings.records_url)
        rm.create_schema()
        managers.append(rm)
    return managers[0], managers[1]


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class ManifestEntry:
    source: str
    doc_id: str
    title: str
    file_sha: str
    pipeline: str  # version of the chunking pipeline that produced the chunks
    chunk_ids: tuple[str, ...]
    sentence_ids: tuple[str, ...]
    updated_at: float


class Manifest:
    """Which chunk and sentence ids are the committed version of each article."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS articles (
        source TEXT PRIMARY KEY,
        doc_id TEXT NOT NULL,
        title TEXT NOT NULL,
        file_sha TEXT NOT NULL,
        pipeline TEXT NOT NULL,
        chunk_ids TEXT NOT NULL,
        sentence_ids TEXT NOT NULL,
        updated_at REAL NOT NULL
    )"""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(self.SCHEMA)
        return con

    def entries(self) -> dict[str, ManifestEntry]:
        if not self.exists:
            return {}
        try:
            with closing(self._connect()) as con:
                rows = con.execute(
                    "SELECT source, doc_id, title, file_sha, pipeline, chunk_ids, sentence_ids, updated_at"
                    " FROM articles"
                ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"the manifest {self.path} is unreadable: {exc}") from exc
        return {
            r[0]: ManifestEntry(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])), tuple(json.loads(r[6])), r[7])
            for r in rows
        }

    def commit(self, entry: ManifestEntry) -> None:
        with closing(self._connect()) as con, con:
            con.execute(
                "INSERT OR REPLACE INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.source,
                    entry.doc_id,
                    entry.title,
                    entry.file_sha,
                    entry.pipeline,
                    json.dumps(list(entry.chunk_ids)),
                    json.dumps(list(entry.sentence_ids)),
                    entry.updated_at or time.time(),
                ),
            )

    def remove(self, sources: Iterable[str]) -> None:
        with closing(self._connect()) as con, con:
            con.executemany("DELETE FROM articles WHERE source = ?", [(s,) for s in sources])
