"""The store: embeddings, the Chroma collections, the record managers, the manifest and the BM25 index.

Three Chroma collections live side by side:
- `<collection>`: one record per chunk (what dense search queries);
- `<collection>_sentences`: one record per sentence of a chunk, embedded at ingest, so the
  composer can rank sentences without embedding anything but the question;
- `<collection>_questions`: one record per question a section answers (the question index),
  matched question to question.

All three are written through LangChain's indexing API, each with its own SQL record manager.
Readers (`knee ask`, `search`, `serve`) talk to Chroma directly (chromadb), without LangChain's
wrapper: importing it costs seconds, and a reader only queries. A Chroma server gets client
timeouts (CHROMA_TIMEOUT_S): a server that hangs is reported, not waited for.

The manifest (a small SQLite file) records, per article, the ids of its committed chunks and
sentences. An article's new chunks become visible only when its manifest row is committed, and its
old chunks are deleted only after that: readers filter by the manifest, so an ingest killed at any
point leaves every article wholly at its old or wholly at its new version.
"""

from __future__ import annotations

import hashlib
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


# A Chroma server has this long to answer a request (connect, read or write). Chosen so a chat
# reply says "knowledge base unavailable" within 3 s of a server that hangs; a healthy local server
# answers a query in a few milliseconds.
CHROMA_TIMEOUT_S = 2.5


def _server_alive(settings: Settings) -> None:
    """Check a Chroma server answers its heartbeat within the timeout (chromadb's own client has no
    timeout and its constructor already talks to the server)."""
    import httpx

    url = f"http://{settings.chroma_host}:{settings.chroma_port}/api/v2/heartbeat"
    try:
        httpx.get(url, timeout=CHROMA_TIMEOUT_S).raise_for_status()
    except httpx.TimeoutException:
        raise StoreError(f"the Chroma server at {settings.chroma_host}:{settings.chroma_port} does not answer "
                         f"(no reply within {CHROMA_TIMEOUT_S:g} s)") from None
    except httpx.HTTPError as exc:
        raise StoreError(f"cannot reach the Chroma server at {settings.chroma_host}:{settings.chroma_port}: {exc}") from None


def chroma_client(settings: Settings):
    # A server that is down or hung is found before chromadb is imported (about 1.5 s here): a
    # fresh `knee ask` then says so that much sooner.
    if settings.uses_server:
        _server_alive(settings)
    import chromadb

    try:
        if settings.uses_server:
            client = chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings())
            _set_timeout(client)
            return client
        settings.chroma_dir.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings())
    except StoreError:
        raise
    except Exception as exc:  # connection refused, unreadable files, ...
        if not settings.uses_server:  # damaged or half-deleted files: say how to rebuild them
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StoreError(f"the store in {settings.chroma_dir} is damaged or unreadable ({reason}): "
                             "rebuild it with `knee ingest --full`") from exc
        raise StoreError(f"cannot open {_where(settings)}: {exc}") from exc


def _where(settings: Settings) -> str:
    return (f"the Chroma server at {settings.chroma_host}:{settings.chroma_port}" if settings.uses_server
            else f"the store in {settings.chroma_dir}")


def _set_timeout(client) -> None:
    """chromadb's HTTP client is an httpx.Client created with no timeout; give it one."""
    import httpx

    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(CHROMA_TIMEOUT_S)


class Store:
    """The three collections (chromadb, for reading; LangChain vector stores, opened for writing)
    and the embeddings ingest writes with."""

    def __init__(self, settings: Settings, client, embeddings: "LazyEmbeddings", create: bool):
        self.settings = settings
        self.client = client
        self.embeddings = embeddings
        self._create = create
        self._collections: dict[str, Any] = {}
        self._vectorstores: dict[str, Any] = {}
        self._lock = threading.Lock()

    def names(self) -> tuple[str, str, str]:
        s = self.settings
        return s.collection, s.sentence_collection, s.question_collection

    def collection(self, name: str):
        with self._lock:
            if name not in self._collections:
                try:
                    if self._create:
                        self._collections[name] = self.client.get_or_create_collection(name, metadata={"hnsw:space": "cosine"})
                    else:
                        self._collections[name] = self.client.get_collection(name)
                except Exception as exc:
                    if not self._create and "does not exist" in str(exc).lower():
                        raise StoreError(f"the index in {self.settings.db_dir} is empty or incomplete (no collection {name!r}): "
                                         "build it with `knee ingest --full`") from None
                    raise StoreError(f"cannot open the Chroma collection {name!r} of {_where(self.settings)}: {exc}") from exc
            return self._collections[name]

    def chunk_collection(self):
        return self.collection(self.settings.collection)

    def sentence_collection(self):
        return self.collection(self.settings.sentence_collection)

    def question_collection(self):
        return self.collection(self.settings.question_collection)

    def vectorstore(self, name: str):
        """LangChain's Chroma vector store over one collection (what the indexing API writes to)."""
        from langchain_chroma import Chroma

        with self._lock:
            if name not in self._vectorstores:
                self._vectorstores[name] = Chroma(
                    collection_name=name, embedding_function=as_langchain_embeddings(self.embeddings), client=self.client,
                    collection_metadata={"hnsw:space": "cosine"},
                )
            return self._vectorstores[name]


def open_store(settings: Settings, create: bool = True) -> Store:
    client = chroma_client(settings)
    store = Store(settings, client, get_embeddings(settings), create)
    if not create:
        try:
            names = {c if isinstance(c, str) else c.name for c in client.list_collections()}
        except Exception as exc:
            raise StoreError(f"cannot read {_where(settings)}: {exc}") from exc
        if settings.collection not in names:
            raise StoreError(f"the index in {settings.db_dir} is empty: build it with `knee ingest`")
    return store


def record_managers(settings: Settings):
    """The indexing API's record managers, one per collection, in one SQLite file."""
    from langchain_classic.indexes import SQLRecordManager

    settings.db_dir.mkdir(parents=True, exist_ok=True)
    managers = []
    for name in (settings.collection, settings.sentence_collection, settings.question_collection):
        rm = SQLRecordManager(f"chroma/{name}", db_url=settings.records_url)
        rm.create_schema()
        managers.append(rm)
    return tuple(managers)


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
    question_ids: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    audience: str = "both"
    # (section label, id of the section's first chunk): citations of a named section, the lookup's list
    sections: tuple[tuple[str, str], ...] = ()


class Manifest:
    """Which chunk, sentence and question ids are the committed version of each article; and each
    committed chunk's BM25 tokens (so the sparse index is rebuilt without re-reading the texts)."""

    SCHEMA = (
        """CREATE TABLE IF NOT EXISTS articles (
            source TEXT PRIMARY KEY,
            doc_id TEXT NOT NULL,
            title TEXT NOT NULL,
            file_sha TEXT NOT NULL,
            pipeline TEXT NOT NULL,
            chunk_ids TEXT NOT NULL,
            sentence_ids TEXT NOT NULL,
            updated_at REAL NOT NULL,
            question_ids TEXT NOT NULL DEFAULT '[]',
            topics TEXT NOT NULL DEFAULT '[]',
            audience TEXT NOT NULL DEFAULT 'both',
            sections TEXT NOT NULL DEFAULT '[]'
        )""",
        "CREATE TABLE IF NOT EXISTS chunk_tokens (chunk_id TEXT PRIMARY KEY, source TEXT NOT NULL, tokens TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS chunk_tokens_source ON chunk_tokens (source)",
        # Each committed chunk's text and metadata (JSON), as in the chunk collection: a reader gets
        # a passage by id from here, not from Chroma, whose `get` of 5 chunks with their metadata took
        # 4 ms at 20,000 chunks and 6 ms at 100,000 (median of 60 draws of 5 random ids, session 9).
        "CREATE TABLE IF NOT EXISTS chunk_passages (chunk_id TEXT PRIMARY KEY, source TEXT NOT NULL, text TEXT NOT NULL, metadata TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS chunk_passages_source ON chunk_passages (source)",
    )
    COLUMNS = "source, doc_id, title, file_sha, pipeline, chunk_ids, sentence_ids, updated_at, question_ids, topics, audience, sections"

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
        for statement in self.SCHEMA:
            con.execute(statement)
        have = {r[1] for r in con.execute("PRAGMA table_info(articles)")}
        for column, default in (("question_ids", "'[]'"), ("topics", "'[]'"), ("audience", "'both'"), ("sections", "'[]'")):
            if column not in have:  # a manifest written before these columns existed
                con.execute(f"ALTER TABLE articles ADD COLUMN {column} TEXT NOT NULL DEFAULT {default}")
        return con

    def entries(self) -> dict[str, ManifestEntry]:
        if not self.exists:
            return {}
        try:
            with closing(self._connect()) as con:
                rows = con.execute(f"SELECT {self.COLUMNS} FROM articles").fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"the manifest {self.path} is unreadable ({exc}): rebuild the index with `knee ingest --full`") from exc
        out = {}
        for r in rows:
            try:
                out[r[0]] = ManifestEntry(
                    r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])), tuple(json.loads(r[6])), r[7],
                    tuple(json.loads(r[8])), tuple(json.loads(r[9])), r[10], tuple(tuple(x) for x in json.loads(r[11])),
                )
            except (ValueError, TypeError) as exc:
                raise StoreError(f"the manifest {self.path} is damaged ({exc}): rebuild the index with `knee ingest --full`") from exc
        return out

    def commit(self, entry: ManifestEntry, tokens: dict[str, str] | None = None,
               passages: dict[str, tuple[str, dict]] | None = None) -> None:
        """Make an article's version the committed one (and store its chunks' BM25 tokens, texts and
        metadata), atomically."""
        with closing(self._connect()) as con, con:
            con.execute(
                f"INSERT OR REPLACE INTO articles ({self.COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.source, entry.doc_id, entry.title, entry.file_sha, entry.pipeline,
                    json.dumps(list(entry.chunk_ids)), json.dumps(list(entry.sentence_ids)), entry.updated_at or time.time(),
                    json.dumps(list(entry.question_ids)), json.dumps(list(entry.topics)), entry.audience,
                    json.dumps([list(x) for x in entry.sections]),
                ),
            )
            if tokens is not None:
                con.execute("DELETE FROM chunk_tokens WHERE source = ?", (entry.source,))
                con.executemany("INSERT OR REPLACE INTO chunk_tokens VALUES (?, ?, ?)",
                                [(cid, entry.source, t) for cid, t in tokens.items()])
            if passages is not None:
                con.execute("DELETE FROM chunk_passages WHERE source = ?", (entry.source,))
                con.executemany("INSERT OR REPLACE INTO chunk_passages VALUES (?, ?, ?, ?)",
                                [(cid, entry.source, text, json.dumps(meta)) for cid, (text, meta) in passages.items()])

    def remove(self, sources: Iterable[str]) -> None:
        with closing(self._connect()) as con, con:
            con.executemany("DELETE FROM articles WHERE source = ?", [(s,) for s in sources])
            con.executemany("DELETE FROM chunk_tokens WHERE source = ?", [(s,) for s in sources])
            con.executemany("DELETE FROM chunk_passages WHERE source = ?", [(s,) for s in sources])

    def _by_chunk(self, table: str, columns: str, chunk_ids: list[str]) -> list[tuple]:
        rows: list[tuple] = []
        with closing(self._connect()) as con:
            for start in range(0, len(chunk_ids), 900):  # SQLite's limit on bound parameters
                part = chunk_ids[start : start + 900]
                rows += con.execute(f"SELECT chunk_id, {columns} FROM {table} WHERE chunk_id IN ({','.join('?' * len(part))})", part).fetchall()
        return rows

    def tokens(self, chunk_ids: list[str]) -> dict[str, str]:
        """The stored BM25 tokens of these chunks (space-joined)."""
        return dict(self._by_chunk("chunk_tokens", "tokens", chunk_ids))

    def passages(self, chunk_ids: list[str]) -> dict[str, tuple[str, dict]]:
        """The stored text and metadata of these chunks (those a manifest written before session 9
        lacks are left out: the reader gets them from the store)."""
        try:
            return {cid: (text, json.loads(meta)) for cid, text, meta in self._by_chunk("chunk_passages", "text, metadata", chunk_ids)}
        except (sqlite3.DatabaseError, ValueError) as exc:
            raise StoreError(f"the manifest {self.path} is damaged ({exc}): rebuild the index with `knee ingest --full`") from exc


def committed_stamp(entries: dict[str, ManifestEntry]) -> str:
    """A fingerprint of the committed chunks: the BM25 index on disk is current when it matches."""
    h = hashlib.sha256()
    for source in sorted(entries):
        h.update(source.encode())
        for cid in entries[source].chunk_ids:
            h.update(cid.encode())
    return h.hexdigest()[:24]
