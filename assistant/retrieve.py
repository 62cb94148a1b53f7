"""Retrieval: three ranked lists over the committed chunks, fused by weighted reciprocal rank.

- dense: the question's vector, mapped by the query adapter (assistant/query_adapter.py), against
  the chunk vectors (Chroma); the cosines reported are those of the mapped vector;
- sparse: BM25 over the chunks' terms (`knee.sparse`, built at ingest);
- questions: the question against the question index, question to question (Chroma): each
  section lists the questions it answers, so "will it go away on its own?" finds the prognosis
  section even though no sentence of it says "go away".
A question close enough to an indexed question puts that section first. Ties are broken by the
chunk id, so the same question gives the same passages in the same order, alone or under load.

`KnowledgeIndex` is what retrieval and composition read: the manifest (which chunks are
committed), the sparse index, and the chunks' texts and sentence vectors, fetched from Chroma when
first needed and kept (a small store is fetched whole at start). Nothing grows with the number of
chunks per query but the sparse index's lookups.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from assistant.vocabulary import vocabulary
from knee import sparse
from knee.config import Settings
from knee.models import Passage
from knee.sparse import tokenize
from knee.store import Manifest, Store, StoreError

# A store of at most this many chunks has every chunk's text and sentence vectors fetched at start
# (the corpus: 184 chunks, a few hundred milliseconds); a larger one fetches them as queries need
# them and keeps the most recent CACHE_CHUNKS.
PRELOAD_CHUNKS = 5000
CACHE_CHUNKS = 20000
# The question index is small (4-8 questions a section: 860 for the corpus, 4,252 at the bench's
# 20,000 chunks, 860 at its 100,000, whose added chunks list none). Up to this many are fetched once
# at start and matched with one matrix product: 0.05-0.2 ms a query here, against 2.9-4.8 ms for a
# Chroma query (100 dev questions, this machine, the corpus and the bench stores), most of it
# fetching the hits' texts and metadata. Fetching costs ~0.1 s at start for 860 questions and
# ~0.5 s for 4,252; a larger question index is queried in Chroma as before.
PRELOAD_QUESTIONS = 5000

# The condition named one way, as most indexed questions name it (assistant/vocabulary.yaml,
# `condition_names`): both the asked question and the indexed ones are matched so.
_VOCABULARY = vocabulary()
NAMED_AS_INDEXED = _VOCABULARY.with_condition_name

# Question words that the corpus says in other words: added to the lexical side of retrieval and
# of sentence ranking.
EXPANSIONS = tuple((synonym.when, synonym.add) for synonym in vocabulary().synonyms)  # assistant/vocabulary.yaml


def expand_query(text: str) -> str:
    return text + "".join(extra for pattern, extra in EXPANSIONS if pattern.search(text))


# --------------------------------------------------------------------------- the loaded index


@dataclass
class SentenceBank:
    texts: list[str]
    vectors: np.ndarray  # rows normalised


@dataclass(frozen=True)
class QuestionHit:
    chunk_id: str
    question: str
    similarity: float  # cosine between the asked question and the indexed one


class KnowledgeIndex:
    """The committed knowledge base: the manifest, the sparse index, and chunk texts and sentence
    vectors fetched from the store as needed."""

    def __init__(self, store: Store, settings: Settings, embed: Any = None):
        """`embed`: list[str] -> normalised vectors, the query side's encoder; with it, indexed
        questions that name the condition otherwise are matched as the articles name it
        (`_load_questions`)."""
        self.store = store
        self._embed = embed
        self.settings = settings
        self.manifest = Manifest(settings.manifest_path)
        self.entries = self.manifest.entries()
        chunk_ids = [i for e in self.entries.values() for i in e.chunk_ids]
        if not chunk_ids:
            raise StoreError(f"the index in {settings.db_dir} is empty: build it with `knee ingest`")
        self.committed: set[str] = set(chunk_ids)
        self.sparse = sparse.current(settings, self.entries)
        self._position = {cid: i for i, cid in enumerate(self.sparse.ids)}
        self._passages: OrderedDict[str, Passage] = OrderedDict()
        self._banks: OrderedDict[str, SentenceBank] = OrderedDict()
        self._lock = threading.RLock()
        self._sections = {
            (e.title, label): cid for e in self.entries.values() for label, cid in e.sections
        }
        try:
            self.chunks = store.chunk_collection()
            self.sentence_collection = store.sentence_collection()
            self.questions = store.question_collection()
        except StoreError:
            raise
        if len(chunk_ids) <= PRELOAD_CHUNKS:
            self.passages_by_id(chunk_ids)
            self.banks_for([p.key for p in self.passages_by_id(chunk_ids)])
        self._question_rows: list[QuestionHit] | None = None  # the preloaded question index (similarity unset)
        self._question_matrix: np.ndarray | None = None
        self._question_matrix_named: np.ndarray | None = None  # `_load_questions`
        self._places_asked: dict[str, frozenset[str]] = {}  # where each indexed question places the pain (`elsewhere`)
        if self.questions.count() <= PRELOAD_QUESTIONS:
            self._load_questions()

    def __len__(self) -> int:
        return len(self.committed)

    # -- chunks and sentences, fetched once ----------------------------------------------------

    def passages_by_id(self, ids: list[str]) -> list[Passage]:
        """The committed passages with these ids, in this order (ids not committed are skipped)."""
        with self._lock:
            missing = [i for i in dict.fromkeys(ids) if i in self.committed and i not in self._passages]
        if missing:
            # From the manifest (a local SQLite lookup); from the store only what a manifest
            # written before session 9 lacks.
            found = self.manifest.passages(missing)
            rest = [i for i in missing if i not in found]
            if rest:
                got = _get(self.chunks, rest, ["documents", "metadatas"])
                found.update((cid, (text, meta)) for cid, text, meta in zip(got["ids"], got["documents"], got["metadatas"]))
            with self._lock:
                for cid, (text, meta) in found.items():
                    self._passages[cid] = Passage.from_document(Document(id=cid, page_content=text, metadata=meta))
                self._trim(self._passages)
        with self._lock:
            out = []
            for i in ids:
                p = self._passages.get(i)
                if p is not None:
                    self._passages.move_to_end(i)
                    out.append(p)
            return out

    def banks_for(self, keys: list[str]) -> dict[str, SentenceBank]:
        """The sentences (texts and vectors, in reading order) of the chunks with these keys."""
        with self._lock:
            missing = [k for k in dict.fromkeys(keys) if k not in self._banks]
        if missing:
            grouped: dict[str, list] = {k: [] for k in missing}
            for start in range(0, len(missing), 500):
                part = missing[start : start + 500]
                got = self.sentence_collection.get(where={"chunk_key": {"$in": part}}, include=["documents", "metadatas", "embeddings"])
                for text, meta, vec in zip(got["documents"], got["metadatas"], got["embeddings"]):
                    if meta.get("idx", -1) >= 0:
                        grouped.setdefault(meta["chunk_key"], []).append((meta["idx"], text, vec))
            with self._lock:
                for key, rows in grouped.items():
                    rows.sort(key=lambda r: r[0])
                    vectors = np.asarray([r[2] for r in rows], dtype=np.float32).reshape(len(rows), -1)
                    self._banks[key] = SentenceBank([r[1] for r in rows], vectors)
                self._trim(self._banks)
        with self._lock:
            return {k: self._banks[k] for k in keys if k in self._banks}

    def _trim(self, cache: OrderedDict) -> None:
        while len(cache) > max(CACHE_CHUNKS, PRELOAD_CHUNKS):
            cache.popitem(last=False)

    def all_passages(self) -> list[Passage]:
        """Every committed passage (the evaluation judges relevance over all of them)."""
        ids = [i for e in self.entries.values() for i in e.chunk_ids]
        return self.passages_by_id(ids)

    # -- what the manifest knows -----------------------------------------------------------

    def find_section(self, section_suffix: str) -> Passage | None:
        """The first chunk of the section whose label ends with `section_suffix`."""
        for (_title, label), cid in sorted(self._sections.items()):
            if label.endswith(section_suffix):
                found = self.passages_by_id([cid])
                if found:
                    return found[0]
        return None

    def topics(self) -> list[str]:
        return sorted({t for e in self.entries.values() for t in e.topics})

    def allowed(self, chunk_id: str, audience: str | None, topic: str | None) -> bool:
        i = self._position.get(chunk_id)
        if i is None:
            return False
        if audience and audience != "both" and self.sparse.audiences[i] not in (audience, "both"):
            return False
        return not topic or topic in self.sparse.topics[i]

    # -- the question index ----------------------------------------------------------------

    def _load_questions(self) -> None:
        got = self.questions.get(include=["embeddings", "documents", "metadatas"])
        rows, vectors = [], []
        for qid, text, meta, vec in sorted(zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"]), key=lambda r: r[0]):
            cid = (meta or {}).get("chunk_id")
            if cid in self.committed:
                rows.append(QuestionHit(cid, text, 0.0))
                vectors.append(vec)
        self._question_rows = rows
        if not rows:  # articles of one's own need not list questions
            self._question_matrix = np.zeros((0, 0), dtype=np.float32)
            return
        matrix = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self._question_matrix = matrix / np.where(norms == 0, 1.0, norms)
        # The index as a question that names the condition otherwise is matched with
        # (`question_hits`, renamed): each indexed question naming it otherwise ("what is the
        # incidence of patellofemoral pain?") as the articles name it. Embedded here, not at
        # ingest, so a store built before needs no rebuild: 61 of 860 questions, about 0.2 s at start.
        self._question_matrix_named = self._question_matrix
        renamed = [(i, NAMED_AS_INDEXED(r.question)) for i, r in enumerate(rows)]
        renamed = [(i, t) for i, t in renamed if t != rows[i].question]
        if renamed and self._embed is not None:
            named = self._question_matrix.copy()
            named[[i for i, _ in renamed]] = self._embed([t for _, t in renamed])
            self._question_matrix_named = named

    def elsewhere(self, hit: QuestionHit, places: frozenset[str]) -> bool:
        """The indexed question places the pain (assistant/vocabulary.yaml `places:`), and in
        none of `places`, where the message places it (nowhere: nothing is elsewhere)."""
        if not places:
            return False
        if hit.question not in self._places_asked:
            self._places_asked[hit.question] = frozenset(_VOCABULARY.places_in(hit.question))
        named = self._places_asked[hit.question]
        return bool(named) and not named & places

    def indexed_questions(self) -> tuple[list[QuestionHit], np.ndarray]:
        """Every indexed question of a committed chunk (similarity unset) and its normalised
        vector, in id order, however large the index (fetched now when it was not preloaded)."""
        if self._question_rows is None:
            self._load_questions()
        return self._question_rows, self._question_matrix

    def question_hits(self, vector: np.ndarray, n: int, renamed: bool = False) -> list[QuestionHit]:
        """The indexed questions nearest to the asked one (committed chunks only), nearest first.
        `renamed`: the asked question names the condition as the articles do in place of another
        name (assistant/pipeline.py, `named_as_indexed`), and is matched against the indexed
        questions named so too."""
        if self._question_matrix is not None and self._question_rows is not None:
            if not self._question_rows:
                return []
            v = np.asarray(vector, dtype=np.float32)
            matrix = self._question_matrix_named if renamed else self._question_matrix
            sims = matrix @ (v / (np.linalg.norm(v) or 1.0))
            top = np.argsort(-sims, kind="stable")[:n]  # ties: the question id's order (stable, as loaded)
            return [replace(self._question_rows[i], similarity=float(sims[i])) for i in top]
        got = self.questions.query(query_embeddings=[vector.tolist()], n_results=n, include=["documents", "metadatas", "distances"])
        hits = []
        for text, meta, dist in zip(got["documents"][0], got["metadatas"][0], got["distances"][0]):
            cid = meta.get("chunk_id")
            if cid in self.committed:
                hits.append(QuestionHit(cid, text, 1.0 - float(dist)))
        return hits


def _get(collection, ids: list[str], include: list[str], page: int = 2000) -> dict[str, list]:
    out: dict[str, list] = {"ids": [], "documents": [], "metadatas": [], "embeddings": []}
    for start in range(0, len(ids), page):
        got = collection.get(ids=ids[start : start + page], include=include)
        for key in out:
            if key in got and got[key] is not None:
                out[key] += list(got[key])
    return out


def chroma_filter(audience: str | None, topic: str | None) -> dict | None:
    clauses = []
    if audience and audience != "both":
        clauses.append({"audience": {"$in": [audience, "both"]}})
    if topic:
        clauses.append({"topics": {"$contains": topic}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


# --------------------------------------------------------------------------- the retriever


class HybridRetriever(BaseRetriever):
    """Dense (Chroma) + sparse (BM25) + question index, fused by weighted reciprocal rank.

    Usable as any LangChain retriever (`invoke(query)` returns Documents); the assistant calls
    `search()` with a query vector it has already computed, so a question is embedded only once.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    index: Any
    embed_query: Any  # str -> normalised np.ndarray
    settings: Any
    adapter: Any = None  # assistant.query_adapter.QueryAdapter for the dense list, or None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [
            Document(id=p.id, page_content=p.text, metadata={**p.to_json(), "text": None})
            for p in self.search(query, k=self.settings.passages_k)
        ]

    def ranked_lists(self, query: str, vector: np.ndarray, audience: str | None = None, topic: str | None = None,
                     timings: dict | None = None, question_vector: np.ndarray | None = None, renamed: bool = False,
                     places: frozenset[str] = frozenset(),
                     ) -> tuple[list[str], list[str], list[QuestionHit], dict[str, float], QuestionHit | None]:
        """(dense ids, sparse ids, question hits, dense cosine by id, the leading question hit),
        each list best first. `question_vector`: one vector, or several readings of the question
        (rows, the message's own first); the leading hit is the nearest indexed question to the
        message's own reading (to the second reading's when the own one is not close enough to
        lead), the one that may bring its section first (`search`); `renamed`: the own reading
        names the condition as the articles do in place of another name (`question_hits`);
        `places`: where the message says it hurts: an indexed question about pain in another
        place ("the pain is on the outside of my knee, is that runner's knee?") is not a match for
        "my knee hurts at the front when I walk downhill. could it be runner's knee?", which it
        led before (session 16)."""
        s: Settings = self.settings
        index: KnowledgeIndex = self.index
        t0 = time.perf_counter()
        dense_vector = vector if self.adapter is None else self.adapter.apply(vector)
        dense = index.chunks.query(query_embeddings=[dense_vector.tolist()], n_results=s.dense_k, where=chroma_filter(audience, topic),
                                   include=["distances"])
        cosine = {i: 1.0 - float(d) for i, d in zip(dense["ids"][0], dense["distances"][0]) if i in index.committed}
        dense_ids = sorted(cosine, key=lambda i: (-cosine[i], i))
        t1 = time.perf_counter()
        mask = index.sparse.mask(audience, topic)
        sparse_ids = [cid for cid, _ in index.sparse.top(tokenize(expand_query(query)), s.bm25_k, mask)]
        t2 = time.perf_counter()
        rows = np.atleast_2d(vector if question_vector is None else np.asarray(question_vector))
        readings = [[h for h in index.question_hits(row, s.question_k, renamed and i == 0)
                     if index.allowed(h.chunk_id, audience, topic) and not index.elsewhere(h, places)]
                    for i, row in enumerate(rows)]
        hits = readings[0]
        if len(readings) > 1:
            # Several readings of one question (assistant/pipeline.py, `what_to_do_text`): each
            # indexed question counts with its best similarity to any of them.
            best: dict[tuple[str, str], QuestionHit] = {}
            for h in (h for reading in readings for h in reading):
                key = (h.chunk_id, h.question)
                if key not in best or h.similarity > best[key].similarity:
                    best[key] = h
            hits = sorted(best.values(), key=lambda h: -h.similarity)[: s.question_k]
        leading = readings[0][0] if readings[0] else None
        # When the message's own reading matches no indexed question closely enough to lead, the
        # second, general reading may: a runner's-knee story that ends "what should I actually be
        # doing?" is then answered from the section on what to do, not from whatever its story
        # happened to mention ("Getting a personal plan"). Measured on dev with held-out query
        # adapters (session 14): 418 facts of 536 held, 415 without; 3 answers change.
        if len(readings) > 1 and readings[1] and (leading is None or leading.similarity < s.question_match):
            leading = readings[1][0]
        t3 = time.perf_counter()
        if timings is not None:
            timings["dense"] = (t1 - t0) * 1000
            timings["bm25"] = (t2 - t1) * 1000
            timings["questions"] = (t3 - t2) * 1000
        return dense_ids, sparse_ids, hits, cosine, leading

    def search(
        self,
        query: str,
        k: int | None = None,
        audience: str | None = None,
        topic: str | None = None,
        query_vector: np.ndarray | None = None,
        timings: dict | None = None,
        question_vector: np.ndarray | None = None,
        renamed: bool = False,
        places: frozenset[str] = frozenset(),
    ) -> list[Passage]:
        """The k best passages. `query_vector`: the query's embedding (computed when None);
        `question_vector`: the bare question's, for the question index (default: the query's), or
        several (rows: the first is the message's own reading), each indexed question then
        matched by its best; `renamed`, `places`: see `ranked_lists`."""
        s: Settings = self.settings
        index: KnowledgeIndex = self.index
        k = k or s.passages_k
        t0 = time.perf_counter()
        if query_vector is None:
            query_vector = self.embed_query(query)
        t1 = time.perf_counter()
        dense_ids, sparse_ids, hits, cosine, leading = self.ranked_lists(query, query_vector, audience, topic, timings, question_vector,
                                                                        renamed, places)
        t2 = time.perf_counter()
        question_ids = list(dict.fromkeys(h.chunk_id for h in hits))
        best_question = {}
        for h in hits:
            best_question.setdefault(h.chunk_id, h)

        fused: dict[str, float] = {}
        for ranked, weight in ((dense_ids, s.weight_dense), (sparse_ids, s.weight_sparse), (question_ids, s.weight_questions)):
            for rank, pid in enumerate(ranked):
                fused[pid] = fused.get(pid, 0.0) + weight / (s.rrf_c + rank + 1)
        order = sorted(fused, key=lambda pid: (-fused[pid], pid))
        # A question close to one the knowledge base lists as answered brings that section first:
        # the message's own reading's, so a second, general reading ("what can I do about my
        # runner's knee?") never pushes aside a section its story matched closely (`ranked_lists`).
        if leading is not None and leading.similarity >= s.question_match:
            top = leading.chunk_id
            order = [top] + [o for o in order if o != top]
        # Fusion favours passages several lists found; a passage only one list ranks first (often
        # the one section named by a rare word of the question, e.g. "arthritis") would drop out of
        # the top k. Each list's first passage is kept in.
        firsts = [lst[0] for lst in (sparse_ids, dense_ids, question_ids) if lst]
        kept = [pid for pid in dict.fromkeys(firsts) if pid in order[k:]]
        if kept:
            head = order[: k - len(kept)] + kept
            order = head + [pid for pid in order if pid not in head]

        chosen = order[:k]
        sparse_rank = {pid: r for r, pid in enumerate(sparse_ids)}
        results = []
        for p in index.passages_by_id(chosen):
            q = best_question.get(p.id)
            results.append(replace(
                p, score=fused.get(p.id, 0.0), dense=cosine.get(p.id), lexical_rank=sparse_rank.get(p.id),
                matched_question=q.question if q else None, question_score=q.similarity if q else None,
            ))
        if timings is not None:
            timings["embed"] = timings.get("embed", 0.0) + (t1 - t0) * 1000
            timings["fuse"] = (time.perf_counter() - t2) * 1000
        return results
