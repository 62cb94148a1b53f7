"""Retrieval: hybrid dense (Chroma) + BM25 search over the committed chunks, fused by reciprocal rank.

`KnowledgeIndex` loads, once per process, what retrieval and composition read: the committed chunks
(the manifest says which), their BM25 index, and the sentence vectors embedded at ingest.
Chroma's own hybrid search is not available for local or `chroma run` stores, so BM25 runs beside it
(LangChain's `BM25Retriever`, built on rank_bm25, with a real tokenizer) and we fuse the two lists.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from knee.config import Settings
from knee.models import Passage
from knee.store import Manifest, Store, StoreError

# --------------------------------------------------------------------------- tokens

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between both but by
    can could did do does doing down during each few for from further had has have having he her here hers herself him himself
    his how i if in into is it its itself just me more most my myself no nor not now of off on once only or other our ours
    out over own same she should so some such than that the their theirs them themselves then there these they this those
    through to too under until up very was we were what when where which while who whom why will with would you your yours
    yourself yourselves i'm it's im ive i've dont don't can't cant get got also really much many one two s t""".split()
)


def stem(word: str) -> str:
    """A light suffix stripper: enough for "runners"/"running"/"run", "exercises"/"exercise"."""
    for suffix, repl in (("ies", "y"), ("sses", "ss"), ("ness", ""), ("ing", ""), ("edly", ""), ("ed", ""), ("ly", ""), ("es", "e"), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not (suffix == "s" and word.endswith(("ss", "us", "is"))):
            word = word[: len(word) - len(suffix)] + repl
            break
    if len(word) > 4 and word[-1] == word[-2] and word[-1] not in "lsz":  # "runn" -> "run"
        word = word[:-1]
    return word


_TOKEN = re.compile(r"[a-z0-9]+")


# Everyday words that stand for the corpus's words after stemming.
SYNONYMS = {"rep": "repetition", "physio": "physiotherapist", "knee-cap": "kneecap", "pfp": "patellofemoral"}


def tokenize(text: str) -> list[str]:
    out = []
    for t in _TOKEN.findall(text.lower().replace("'", "")):
        if t not in STOPWORDS:
            s = stem(t)
            out.append(SYNONYMS.get(s, s))
    return out


# Question words that the corpus says in other words: added to the lexical side of retrieval and
# of sentence ranking.
EXPANSIONS = (
    (re.compile(r"\bhow often\b|\bfrequency\b", re.I), " times per week"),
    (re.compile(r"\bhow many (?:reps|repetitions|sets)\b|\breps\b", re.I), " sets repetitions"),
    (re.compile(r"\bhow long\b", re.I), " weeks months years"),
    (re.compile(r"\binsoles?\b|\borthotics?\b", re.I), " orthoses"),
    (re.compile(r"\bbraces?\b", re.I), " bracing"),
    (re.compile(r"(?<!osteo)arthritis\b|\bwear and tear\b", re.I), " osteoarthritis"),
    (re.compile(r"\bover-?pronat\w*|\bflat feet\b|\bfeet roll", re.I), " foot pronation"),
    (re.compile(r"\bcome-?back\b|\bcome back\b|\bget back to running\b", re.I), " return to running"),
    (re.compile(r"\bgym\b", re.I), " home"),
    (re.compile(r"\blong[- ]term\b|\boutlook\b", re.I), " years outlook"),
    (re.compile(r"\bquit(?:ting)? running\b|\bgive up running\b|\bstop running\b", re.I), " stop running completely"),
)



def expand_query(text: str) -> str:
    return text + "".join(extra for pattern, extra in EXPANSIONS if pattern.search(text))


# --------------------------------------------------------------------------- the loaded index


@dataclass
class SentenceBank:
    texts: list[str]
    vectors: np.ndarray  # rows normalised
    generic: np.ndarray | None = None  # how close each sentence is to the corpus as a whole


class KnowledgeIndex:
    """The committed knowledge base, in memory, next to the Chroma collections it came from."""

    def __init__(self, store: Store, settings: Settings):
        self.store = store
        self.settings = settings
        entries = Manifest(settings.manifest_path).entries()
        chunk_ids = [i for e in entries.values() for i in e.chunk_ids]
        sentence_ids = [i for e in entries.values() for i in e.sentence_ids]
        if not chunk_ids:
            raise StoreError(f"the index in {settings.db_dir} is empty: build it with `knee ingest`")
        self.committed: set[str] = set(chunk_ids)
        try:
            chunks = _get_all(store.chunk_collection(), chunk_ids, ["documents", "metadatas", "embeddings"])
            sentences = _get_all(store.sentence_collection(), sentence_ids, ["documents", "metadatas", "embeddings"])
        except Exception as exc:
            raise StoreError(f"cannot read the index: {exc}") from exc
        if len(chunks["ids"]) < len(chunk_ids):
            missing = len(chunk_ids) - len(chunks["ids"])
            raise StoreError(f"the index is incomplete ({missing} committed chunks missing): rebuild it with `knee ingest`")

        self.passages: list[Passage] = []
        for cid, text, meta in zip(chunks["ids"], chunks["documents"], chunks["metadatas"]):
            self.passages.append(Passage.from_document(Document(id=cid, page_content=text, metadata=meta)))
        self.chunk_vectors = np.asarray(chunks["embeddings"], dtype=np.float32)
        self.position = {p.id: i for i, p in enumerate(self.passages)}
        self.by_key = {p.key: i for i, p in enumerate(self.passages)}
        self.audiences = np.array([p.audience for p in self.passages])

        # Sentences and FAQ questions, grouped by chunk.
        grouped: dict[str, list[tuple[int, str, Any]]] = {}
        faq_keys, faq_vectors = [], []
        for text, meta, vec in zip(sentences["documents"], sentences["metadatas"], sentences["embeddings"]):
            if meta["idx"] < 0:
                faq_keys.append(meta["chunk_key"])
                faq_vectors.append(vec)
            else:
                grouped.setdefault(meta["chunk_key"], []).append((meta["idx"], text, vec))
        self.sentences: dict[str, SentenceBank] = {}
        for key, rows in grouped.items():
            rows.sort(key=lambda r: r[0])
            self.sentences[key] = SentenceBank([r[1] for r in rows], np.asarray([r[2] for r in rows], dtype=np.float32))
        # Some sentences are near every question ("Exercise therapy is the main treatment for
        # runner's knee."): closeness to the centroid of all sentences measures that, above the median.
        if self.sentences:
            everything = np.concatenate([b.vectors for b in self.sentences.values()])
            centroid = everything.mean(axis=0)
            centroid /= np.linalg.norm(centroid)
            median = float(np.median(everything @ centroid))
            for bank in self.sentences.values():
                bank.generic = np.maximum(bank.vectors @ centroid - median, 0.0)
        self.faq_keys = faq_keys
        self.faq_vectors = np.asarray(faq_vectors, dtype=np.float32).reshape(-1, self.chunk_vectors.shape[1])

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # langchain_community's import-time notices
            from langchain_community.retrievers import BM25Retriever
        docs = [Document(id=p.id, page_content=p.text) for p in self.passages]
        self.bm25 = BM25Retriever.from_documents(docs, preprocess_func=tokenize, k=settings.bm25_k)
        self.vocabulary = frozenset(w for p in self.passages for w in _TOKEN.findall(p.text.lower()))

    def __len__(self) -> int:
        return len(self.passages)

    def mask(self, audience: str | None, topic: str | None) -> np.ndarray | None:
        if not audience and not topic:
            return None
        keep = np.ones(len(self.passages), dtype=bool)
        if audience and audience != "both":
            keep &= (self.audiences == audience) | (self.audiences == "both")
        if topic:
            keep &= np.array([topic in p.topics for p in self.passages])
        return keep

    def find_section(self, section_suffix: str) -> Passage | None:
        for p in self.passages:
            if p.section.endswith(section_suffix):
                return p
        return None

    def topics(self) -> list[str]:
        return sorted({t for p in self.passages for t in p.topics})


def _get_all(collection, ids: list[str], include: list[str], page: int = 2000) -> dict[str, list]:
    out: dict[str, list] = {"ids": [], "documents": [], "metadatas": [], "embeddings": []}
    for start in range(0, len(ids), page):
        got = collection.get(ids=ids[start : start + page], include=include)
        out["ids"] += list(got["ids"])
        out["documents"] += list(got["documents"])
        out["metadatas"] += list(got["metadatas"])
        out["embeddings"] += list(got["embeddings"])
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
    """Dense search in Chroma plus BM25, fused by reciprocal rank fusion.

    Usable as any LangChain retriever (`invoke(query)` returns Documents); the assistant calls
    `search()` with a query vector it has already computed, so a question is embedded only once.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    index: Any
    embed_query: Any  # str -> normalised np.ndarray
    settings: Any

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [
            Document(id=p.id, page_content=p.text, metadata={**p.to_json(), "text": None})
            for p in self.search(query, k=self.settings.passages_k)
        ]

    def search(
        self,
        query: str,
        k: int | None = None,
        audience: str | None = None,
        topic: str | None = None,
        query_vector: np.ndarray | None = None,
        timings: dict | None = None,
    ) -> list[Passage]:
        import time

        s: Settings = self.settings
        index: KnowledgeIndex = self.index
        k = k or s.passages_k
        t0 = time.perf_counter()
        if query_vector is None:
            query_vector = self.embed_query(query)
        t1 = time.perf_counter()

        # Only the ids are needed (the passages are in memory), so Chroma is asked for ids and
        # distances alone: half the time of LangChain's similarity_search, which fetches documents.
        dense = index.store.chunk_collection().query(
            query_embeddings=[query_vector.tolist()], n_results=s.dense_k, where=chroma_filter(audience, topic), include=["distances"]
        )
        dense_ids = [i for i in dense["ids"][0] if i in index.committed]
        t2 = time.perf_counter()

        scores = index.bm25.vectorizer.get_scores(index.bm25.preprocess_func(expand_query(query)))
        mask = index.mask(audience, topic)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        top = np.argsort(-scores)[: s.bm25_k]
        lexical_ids = [index.passages[i].id for i in top if scores[i] > 0]
        t3 = time.perf_counter()

        fused: dict[str, float] = {}
        for ranked in (dense_ids, lexical_ids):
            for rank, pid in enumerate(ranked):
                fused[pid] = fused.get(pid, 0.0) + 1.0 / (s.rrf_c + rank + 1)
        order = sorted(fused, key=lambda pid: -fused[pid])

        # A question close to an FAQ entry's question brings that entry first.
        if len(index.faq_keys):
            sims = index.faq_vectors @ query_vector
            best = int(np.argmax(sims))
            if sims[best] >= s.faq_match:
                pos = index.by_key.get(index.faq_keys[best])
                if pos is not None and (mask is None or mask[pos]):
                    pid = index.passages[pos].id
                    fused[pid] = max(fused.values(), default=0.0) + 1e-6
                    order = [pid] + [o for o in order if o != pid]

        # Fusion favours passages both lists found; a passage only one list ranks first (often
        # the one section named by a rare word of the question, e.g. "arthritis") would drop out
        # of the top k. Each list's first passage is kept in.
        kept = [pid for pid in dict.fromkeys(lexical_ids[:1] + dense_ids[:1]) if pid in order[k:]]
        if kept:
            head = order[: k - len(kept)] + kept
            order = head + [pid for pid in order if pid not in head]

        lexical_rank = {pid: r for r, pid in enumerate(lexical_ids)}
        results = []
        for pid in order[:k]:
            pos = index.position[pid]
            p = index.passages[pos]
            results.append(
                replace(
                    p,
                    score=fused[pid],
                    dense=float(index.chunk_vectors[pos] @ query_vector),
                    lexical_rank=lexical_rank.get(pid),
                )
            )
        if timings is not None:
            timings["embed"] = timings.get("embed", 0.0) + (t1 - t0) * 1000
            timings["dense"] = (t2 - t1) * 1000
            timings["bm25"] = (t3 - t2) * 1000
            timings["fuse"] = (time.perf_counter() - t3) * 1000
        return results
