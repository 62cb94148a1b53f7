"""The ingest run: files -> articles -> chunks -> the store, incrementally.

Per article, in this order (see `knee.store` for why):
1. LangChain's `index()` writes the chunks, the sentences and the section questions, each with its
   record manager; unchanged ones are skipped, so an unchanged corpus embeds nothing;
2. the manifest row is committed with the chunks' BM25 terms: the new version becomes visible to
   readers at once;
3. records of the article's earlier version are deleted from all three collections.
`--full` then removes the articles that are no longer in the input. After any change the BM25
index is rebuilt from the manifest's terms and saved beside the store.

The manifest is checked against the store, not trusted: an article whose committed records are
missing from Chroma (damaged or half-deleted files) counts as changed and is written again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from ingest.chunking import Chunker, make_chunker, pipeline_version
from ingest.loaders import SUPPORTED_SUFFIXES, Article, IngestError, display_source, load_file
from knee.config import Settings
from knee.models import Chunk
from knee.sparse import tokenize
from knee.store import Manifest, ManifestEntry, Store, model_tokenizer, open_store, record_managers


@dataclass
class IngestReport:
    added: int = 0  # chunks embedded that replace nothing
    updated: int = 0  # chunks embedded in place of an earlier version's chunk
    skipped: int = 0  # chunks unchanged, not embedded
    deleted: int = 0  # chunks removed (earlier versions beyond the replaced ones, or gone articles)
    seconds: float = 0.0
    articles: dict = field(default_factory=lambda: {"new": 0, "changed": 0, "unchanged": 0, "removed": 0})
    chunks_total: int = 0  # chunks of the articles ingested in this run
    sentences_embedded: int = 0
    questions_embedded: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def embedded(self) -> int:
        return self.added + self.updated

    def to_json(self) -> dict:
        d = asdict(self)
        d["embedded"] = self.embedded
        d["seconds"] = round(self.seconds, 3)
        return d

    def summary(self) -> str:
        a = self.articles
        lines = [
            f"articles: {a['new']} new, {a['changed']} changed, {a['unchanged']} unchanged, {a['removed']} removed",
            f"chunks:   {self.added} added, {self.updated} updated, {self.skipped} skipped, {self.deleted} deleted"
            f" ({self.chunks_total} in the articles read, {self.embedded} embedded)",
            f"time:     {self.seconds:.2f} s",
        ]
        lines += [f"warning:  {w}" for w in self.warnings]
        lines += [f"error:    {e}" for e in self.errors]
        return "\n".join(lines)


def collect_files(paths: Iterable[Path]) -> tuple[list[Path], list[str]]:
    """Files to ingest from files and folders; errors for paths that do not exist."""
    files: list[Path] = []
    errors: list[str] = []
    for path in paths:
        path = Path(path).expanduser()
        if path.is_dir():
            for f in _walk(path, errors):
                rel = f.relative_to(path).parts
                # Hidden and underscore-prefixed files, and README files, are not articles.
                if any(p.startswith((".", "_")) for p in rel) or f.stem.upper() == "README":
                    continue
                # A broken link is listed too, so it gets its own error instead of vanishing.
                if (f.is_file() or f.is_symlink()) and f.suffix.lower() in SUPPORTED_SUFFIXES:
                    files.append(f)
        elif path.is_file() or path.is_symlink():
            files.append(path)
        else:
            errors.append(f"{path}: no such file or folder")
    unique = list(dict.fromkeys(f.absolute() for f in files))
    return unique, errors


def _walk(folder: Path, errors: list[str]) -> list[Path]:
    """Every path under `folder`, sorted (symlinked folders are listed, not entered, as with
    `rglob`); a folder that cannot be read is one error, not silently skipped as `rglob` does."""
    found: list[Path] = []

    def unreadable(exc: OSError) -> None:
        errors.append(f"{exc.filename}: folder cannot be read ({exc.strerror or exc}); its files were not ingested")

    for top, dirs, names in os.walk(folder, onerror=unreadable):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]  # never articles (see collect_files)
        found += [Path(top) / n for n in dirs + names]
    return sorted(found)


def doc_hash(doc) -> str:
    """The id of a record: a hash of its text and metadata (our key encoder for `index()`)."""
    h = hashlib.sha256(doc.page_content.encode())
    h.update(b"\x1f")
    h.update(json.dumps(doc.metadata, sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()


def chunk_documents(chunks: list[Chunk]):
    from langchain_core.documents import Document

    return [Document(page_content=c.text, metadata=c.metadata()) for c in chunks]


def sentence_documents(chunks: list[Chunk]):
    """One record per sentence, so sentences are embedded at ingest."""
    from langchain_core.documents import Document

    docs = []
    for c in chunks:
        for i, sentence in enumerate(c.sentences):
            docs.append(Document(page_content=sentence, metadata={"source": c.source, "chunk_key": c.key, "idx": i}))
    return docs


def question_documents(chunks: list[Chunk], chunk_ids: list[str]):
    """The question index: one record per question a section answers, pointing at its chunk."""
    from langchain_core.documents import Document

    docs = []
    for c, cid in zip(chunks, chunk_ids):
        for i, q in enumerate(c.questions):
            docs.append(Document(page_content=q, metadata={"source": c.source, "chunk_key": c.key, "chunk_id": cid, "idx": i,
                                                           "faq": bool(c.question and i == 0)}))
    return docs


# Records per indexing-API batch (see _index): memory is bounded by a batch, not by an article.
INDEX_BATCH = 512


class Ingestor:
    def __init__(self, settings: Settings, store: Store | None = None):
        self.settings = settings
        self._store = store
        self._record_managers = None
        self.manifest = Manifest(settings.manifest_path)
        self._chunker: Chunker | None = None
        self.changed = False  # anything committed or removed in this run (the BM25 index follows)

    # The store, the record managers and the model open on first use: an unchanged corpus
    # needs none of them.
    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.settings)
        return self._store

    @property
    def rm_chunks(self):
        if self._record_managers is None:
            self._record_managers = record_managers(self.settings)
        return self._record_managers[0]

    @property
    def rm_sentences(self):
        self.rm_chunks  # noqa: B018  (opens all three)
        return self._record_managers[1]

    @property
    def rm_questions(self):
        self.rm_chunks  # noqa: B018
        return self._record_managers[2]

    @property
    def managers(self) -> tuple:
        """The three record managers, in the order of `Store.names()` (chunks, sentences, questions)."""
        self.rm_chunks  # noqa: B018  (opens all three)
        return self._record_managers

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            self._chunker = make_chunker(self.settings, model_tokenizer(self.settings))
        return self._chunker

    def heading_judge(self, items: list[tuple[str, str]], title: str) -> list[bool]:
        """Does each heading-like line of scraped text describe what follows it, or the article?
        Stray links score near 0 against both; real headings 0.3 and more (seen on the seed).
        All of a file's headings in one model batch: one call each took 1.6 s a heading here, and
        a 4.9 MB page has 2,550 of them."""
        texts = [title] + [t for heading, body in items for t in (heading, body[:1500])]
        vectors = self.store.embeddings.embed_many(texts)
        title_vec = vectors[0]
        out = []
        for k in range(len(items)):
            h, b = vectors[1 + 2 * k], vectors[2 + 2 * k]
            out.append(float(max(h @ b, h @ title_vec)) >= 0.2)
        return out

    def load(self, path: Path) -> tuple[Article, list[Chunk]]:
        article = load_file(path, heading_judge=self.heading_judge)
        chunks = self.chunker.chunk(article)
        if not chunks:
            raise IngestError(path, "has no text left to index after cleaning")
        return article, chunks

    def damaged_articles(self, committed: dict[str, ManifestEntry]) -> set[str]:
        """Articles whose committed chunks or questions are not all in Chroma (the store's files
        damaged or partly deleted): the manifest is checked, not trusted."""
        damaged: set[str] = set()
        for name, attr in ((self.settings.collection, "chunk_ids"), (self.settings.question_collection, "question_ids")):
            wanted = {i: src for src, e in committed.items() for i in getattr(e, attr)}
            if not wanted:
                continue
            try:
                collection = self.store.collection(name)
                found: set[str] = set()
                ids = list(wanted)
                for start in range(0, len(ids), 2000):
                    found.update(collection.get(ids=ids[start : start + 2000], include=[])["ids"])
            except Exception:
                return set(committed)  # the collection cannot be read at all: every article is rewritten
            damaged |= {src for i, src in wanted.items() if i not in found}
        return damaged

    def _sparse_current(self) -> bool:
        from knee import sparse
        from knee.store import committed_stamp

        return sparse.load(self.settings.bm25_dir, committed_stamp(self.manifest.entries())) is not None

    def _index(self, docs, record_manager, vector_store):
        from langchain_core.indexing import index

        # cleanup=None: the earlier version is deleted only after the manifest commit (see module doc).
        return index(
            docs,
            record_manager,
            vector_store,
            cleanup=None,
            source_id_key="source",
            key_encoder=doc_hash,
            # Written in batches: one batch of a whole large article held every vector as Python
            # lists at once (1.4 GB for a 4.9 MB page); 512 records keep memory flat. The article
            # still counts as committed only after the manifest commit, so atomicity is unchanged.
            batch_size=INDEX_BATCH,
        )

    def _delete_stale(self, source: str, before: float | None, keep: tuple[set[str], set[str]] = (set(), set())) -> int:
        """Delete an article's records that are not its committed version: those the record
        manager last saw before `before` (all of them when None), and any record of the article in
        Chroma that is not in `keep` (left by a run killed between a write and its bookkeeping).
        Returns the number of chunks deleted."""
        deleted_chunks = 0
        names = self.store.names()
        managers = self.managers
        keeps = tuple(keep) + (set(),) * (3 - len(keep))
        for rm, name, keep_ids in zip(managers, names, keeps):
            collection = self.store.collection(name)
            doomed = set(rm.list_keys(group_ids=[source], before=before))
            doomed.update(collection.get(where={"source": source}, include=[])["ids"])
            doomed -= keep_ids
            if doomed:
                ids = sorted(doomed)
                collection.delete(ids=ids)
                rm.delete_keys(ids)
            if rm is self.rm_chunks:
                deleted_chunks = len(doomed)
        return deleted_chunks

    def ingest_article(self, article: Article, chunks: list[Chunk], report: IngestReport, previous: ManifestEntry | None) -> None:
        s = self.settings
        chunk_docs = chunk_documents(chunks)
        chunk_ids = [doc_hash(d) for d in chunk_docs]
        sentence_docs = sentence_documents(chunks)
        question_docs = question_documents(chunks, chunk_ids)
        if article.source in getattr(self, "_damaged", ()):
            # The record managers remember records the store lost: forget them, or `index()`
            # would skip them as unchanged and the store would stay broken.
            for rm in self.managers:
                rm.delete_keys(rm.list_keys(group_ids=[article.source]))
        started = self.rm_chunks.get_time()
        result = self._index(chunk_docs, self.rm_chunks, self.store.vectorstore(s.collection))
        sresult = self._index(sentence_docs, self.rm_sentences, self.store.vectorstore(s.sentence_collection))
        qresult = self._index(question_docs, self.rm_questions, self.store.vectorstore(s.question_collection))
        sections: dict[str, str] = {}
        for c, cid in zip(chunks, chunk_ids):
            sections.setdefault(c.section or "Overview", cid)
        self.manifest.commit(
            ManifestEntry(
                source=article.source,
                doc_id=article.doc_id,
                title=article.title,
                file_sha=article.file_sha,
                pipeline=pipeline_version(s),
                chunk_ids=tuple(chunk_ids),
                sentence_ids=tuple(doc_hash(d) for d in sentence_docs),
                updated_at=time.time(),
                question_ids=tuple(doc_hash(d) for d in question_docs),
                topics=tuple(article.topics),
                audience=article.audience,
                sections=tuple(sections.items()),
            ),
            tokens={cid: " ".join(tokenize(c.text)) for c, cid in zip(chunks, chunk_ids)},
            passages={cid: (d.page_content, d.metadata) for d, cid in zip(chunk_docs, chunk_ids)},
        )
        self.changed = True
        deleted = self._delete_stale(
            article.source, started,
            (set(chunk_ids), {doc_hash(d) for d in sentence_docs}, {doc_hash(d) for d in question_docs}),
        )
        added = result["num_added"]
        replaced = min(added, deleted) if previous else 0
        report.added += added - replaced
        report.updated += replaced
        report.deleted += deleted - replaced
        report.skipped += result["num_skipped"]
        report.chunks_total += len(chunks)
        report.sentences_embedded += sresult["num_added"]
        report.questions_embedded += qresult["num_added"]
        if previous is None:
            report.articles["new"] += 1
        elif added or deleted:
            report.articles["changed"] += 1
        else:
            report.articles["unchanged"] += 1

    def sweep_orphans(self, report: IngestReport) -> int:
        """Delete the records no committed article lists. A run killed after an article's manifest
        commit and before its earlier version was deleted leaves that version behind, and the next
        run sees the article up to date and never reaches it (session 8: one chunk in 83 after
        four kills, in CI). A count per collection (constant time) against the manifest finds
        them; only then are the ids read. Returns the number of chunks deleted."""
        entries = self.manifest.entries().values()
        wanted = ({i for e in entries for i in e.chunk_ids}, {i for e in entries for i in e.sentence_ids},
                  {i for e in entries for i in (e.question_ids or ())})
        removed = 0
        for rm, name, keep in zip(self.managers, self.store.names(), wanted):
            collection = self.store.collection(name)
            if collection.count() <= len(keep):
                continue
            ids: list[str] = []
            while True:  # paged: a store may hold 100,000 records and more
                page = collection.get(include=[], limit=ORPHAN_PAGE, offset=len(ids))["ids"]
                ids += page
                if len(page) < ORPHAN_PAGE:
                    break
            doomed = sorted(set(ids) - keep)
            for start in range(0, len(doomed), ORPHAN_PAGE):
                batch = doomed[start : start + ORPHAN_PAGE]
                collection.delete(ids=batch)
                rm.delete_keys(batch)
            if rm is self.rm_chunks:
                removed = len(doomed)
        if removed:
            report.deleted += removed
            report.warnings.append(f"{removed} chunk(s) left by an interrupted ingest were removed")
        return removed

    def remove_gone(self, present: set[str], report: IngestReport) -> None:
        """--full: articles in the store whose files are not in this run's input are removed.
        The manifest row is emptied first (the article disappears for readers at once), the
        records deleted, then the row dropped; a run killed in between finishes the job next time."""
        for source, entry in self.manifest.entries().items():
            if source in present:
                continue
            self.manifest.commit(ManifestEntry(source, entry.doc_id, entry.title, entry.file_sha, entry.pipeline, (), (), time.time()))
            report.deleted += self._delete_stale(source, None)
            self.manifest.remove([source])
            report.articles["removed"] += 1
            self.changed = True

    def _set_aside_damaged(self, report: IngestReport) -> None:
        """`--full` rebuilds what cannot be opened: the manifest, the record managers' file or the
        local Chroma store, when damaged (truncated, half-deleted, not a database), is moved aside
        as `<name>.damaged-<time>` (kept, not deleted) and built again; the manifest check then
        writes again every article the damaged part held."""
        s = self.settings
        stamp = time.strftime("%Y%m%d-%H%M%S")

        def set_aside(path: Path, reason: str) -> None:
            target = path.with_name(f"{path.name}.damaged-{stamp}")
            for side in ("-wal", "-shm", "-journal"):  # SQLite's side files go with their database
                if path.with_name(path.name + side).exists():
                    path.with_name(path.name + side).rename(target.with_name(target.name + side))
            path.rename(target)
            report.warnings.append(f"{path} was damaged ({reason}): moved to {target} and rebuilt")

        for db in (s.manifest_path, s.db_dir / "records.sqlite"):
            problem = _sqlite_problem(db)
            if problem:
                set_aside(db, problem)
        if s.uses_server or not s.chroma_dir.exists():
            return
        problem = _sqlite_problem(s.chroma_dir / "chroma.sqlite3")
        if problem is None:
            try:
                # The store the caller gave (its own embedding function: the benchmark's cache) when
                # there is one: checking must not swap it for a default one.
                store = self._store if self._store is not None else open_store(s)
                for name in store.names():
                    # Vectors read back from spread offsets and the end: a deleted or truncated
                    # HNSW segment fails here (its ids alone, in SQLite, still look fine).
                    collection = store.collection(name)
                    n = collection.count()
                    for offset in sorted({n * i // 16 for i in range(16)} | {max(n - 64, 0)}) if n else ():
                        collection.get(limit=64, offset=offset, include=["embeddings"])
                self._store = store
                return
            except Exception as exc:  # noqa: BLE001  (whatever chromadb raises on damaged files)
                problem = (str(exc.__cause__ or exc).strip().splitlines() or [type(exc).__name__])[0]
            # chromadb keeps one client system per path, the failed one too: forget it, so the
            # rebuilt store gets a fresh one.
            from chromadb.api.shared_system_client import SharedSystemClient

            SharedSystemClient._identifier_to_system.pop(str(s.chroma_dir), None)
            SharedSystemClient._identifier_to_refcount.pop(str(s.chroma_dir), None)
        self._store = None
        set_aside(s.chroma_dir, problem)

    def run(self, paths: Iterable[Path], full: bool = False, progress: bool = False) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport()
        files, report.errors = collect_files(paths)
        present: set[str] = set()
        if full:
            self._set_aside_damaged(report)
        committed = self.manifest.entries()
        damaged = self.damaged_articles(committed) if committed else set()
        self._damaged = damaged
        if damaged:
            report.warnings.append(f"{len(damaged)} article(s) listed in the manifest have records missing from the store: written again")
        bar = None
        if progress and files:
            from tqdm import tqdm

            bar = tqdm(total=len(files), unit="file", desc="ingest", file=sys.stderr, leave=False)
        for path in files:
            source = display_source(path)
            try:
                previous = committed.get(source)
                if previous and source not in damaged and _same_version(path, previous, self.settings):
                    # Same bytes, same chunker: nothing to read, chunk or embed.
                    report.articles["unchanged"] += 1
                    report.skipped += len(previous.chunk_ids)
                    report.chunks_total += len(previous.chunk_ids)
                    present.add(source)
                    continue
                article, chunks = self.load(path)
                self.ingest_article(article, chunks, report, committed.get(article.source))
                present.add(source)
            except IngestError as exc:
                report.errors.append(str(exc))
                present.add(source)  # a file that is there but unreadable keeps what it had: no data lost
            finally:
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(path.name[:30])
        if bar is not None:
            bar.close()
        if full:
            self.remove_gone(present, report)
        self.sweep_orphans(report)
        if self.changed or damaged or not self._sparse_current():
            from knee import sparse

            sparse.current(self.settings)  # rebuilt from the manifest's terms and saved
        if self._chunker and self._chunker.too_long_sentences:
            report.warnings += [f"a sentence longer than a chunk was cut: {s!r}..." for s in self._chunker.too_long_sentences]
        report.seconds = time.perf_counter() - started
        return report


# Ids read or deleted at once when orphans are swept (Chroma's own batches are about this size).
ORPHAN_PAGE = 5000


def _sqlite_problem(path: Path) -> str | None:
    """What is wrong with an SQLite file (None when it is sound or absent)."""
    import sqlite3
    from contextlib import closing

    if not path.exists():
        return None
    try:
        with closing(sqlite3.connect(path, timeout=30)) as con:
            rows = con.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as exc:
        return str(exc)
    return None if rows == [("ok",)] else "; ".join(str(r[0]) for r in rows[:3])


def ingest(paths: Iterable[Path], settings: Settings, full: bool = False, progress: bool = False) -> IngestReport:
    return Ingestor(settings).run(paths, full=full, progress=progress)


def stale_files(paths: Iterable[Path], settings: Settings) -> list[Path]:
    """Files whose committed version differs from the file on disk (or that were never ingested).
    Reads only the manifest and the files: cheap enough to run before every `knee serve`."""
    files, _ = collect_files(paths)
    entries = Manifest(settings.manifest_path).entries()
    return [f for f in files if not (entries.get(display_source(f)) and _same_version(f, entries[display_source(f)], settings))]


def _same_version(path: Path, entry: ManifestEntry, settings: Settings) -> bool:
    """The committed version of this file is the file on disk, chunked the way we chunk now."""
    if entry.pipeline != pipeline_version(settings) or not entry.chunk_ids:
        return False
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == entry.file_sha
    except OSError:
        return False
