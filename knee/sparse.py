"""The sparse (BM25) index over the committed chunks: built at ingest, saved beside the store,
reloaded by readers. bm25s keeps it as a sparse matrix, so a query costs what its words cost, not a
pass over every chunk (rank_bm25 scored every document: 48 ms at 20,000 chunks).

The analyzer (`tokenize`) is the one place that turns text into BM25 terms: ingest stores each
chunk's terms in the manifest, so the index is rebuilt from them (no re-reading of texts) whenever
the committed chunks change; readers check the saved index's stamp against the manifest and
rebuild in memory when it is stale (an ingest in progress, or a store copied without it).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from knee.config import Settings
from knee.store import Manifest, ManifestEntry, StoreError, committed_stamp

# --------------------------------------------------------------------------- the analyzer

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between both but by
    can could did do does doing down during each few for from further had has have having he her here hers herself him himself
    his how i if in into is it its itself just me more most my myself no nor not now of off on once only or other our ours
    out over own same she should so some such than that the their theirs them themselves then there these they this those
    through to too under until up very was we were what when where which while who whom why will with would you your yours
    yourself yourselves i'm it's im ive i've dont don't can't cant get got also really much many one two s t""".split()
)
# Everyday words that stand for the corpus's words after stemming.
SYNONYMS = {"rep": "repetition", "physio": "physiotherapist", "knee-cap": "kneecap", "pfp": "patellofemoral"}
_TOKEN = re.compile(r"[a-z0-9]+")


def stem(word: str) -> str:
    """A light suffix stripper: enough for "runners"/"running"/"run", "exercises"/"exercise"."""
    for suffix, repl in (("ies", "y"), ("sses", "ss"), ("ness", ""), ("ing", ""), ("edly", ""), ("ed", ""), ("ly", ""), ("es", "e"), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not (suffix == "s" and word.endswith(("ss", "us", "is"))):
            word = word[: len(word) - len(suffix)] + repl
            break
    if len(word) > 4 and word[-1] == word[-2] and word[-1] not in "lsz":  # "runn" -> "run"
        word = word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    out = []
    for t in _TOKEN.findall(text.lower().replace("'", "")):
        if t not in STOPWORDS:
            s = stem(t)
            out.append(SYNONYMS.get(s, s))
    return out


# --------------------------------------------------------------------------- the index

INDEX_FILE = "knee-index.json"  # our sidecar: stamp, chunk ids in matrix order, audience and topics


@dataclass
class SparseIndex:
    ids: list[str]  # chunk ids, in the matrix's row order
    audiences: np.ndarray
    topics: list[tuple[str, ...]]
    bm25: object  # bm25s.BM25
    stamp: str

    def __post_init__(self):
        self.vocab = getattr(self.bm25, "vocab_dict", {}) or {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, terms: list[str]) -> np.ndarray:
        known = [t for t in terms if t in self.vocab]
        if not known or not self.ids:
            return np.zeros(len(self.ids), dtype=np.float32)
        with self._lock:  # bm25s scoring is not documented as thread-safe
            return np.asarray(self.bm25.get_scores(known), dtype=np.float32)

    def mask(self, audience: str | None, topic: str | None) -> np.ndarray | None:
        if not audience and not topic:
            return None
        keep = np.ones(len(self.ids), dtype=bool)
        if audience and audience != "both":
            keep &= (self.audiences == audience) | (self.audiences == "both")
        if topic:
            keep &= np.array([topic in t for t in self.topics], dtype=bool)
        return keep

    def top(self, terms: list[str], k: int, mask: np.ndarray | None = None) -> list[tuple[str, float]]:
        """The k best chunks for the terms (score > 0), best first; ties by chunk id, so the same
        query gives the same order every time."""
        scores = self.scores(terms)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        n = min(k, int(np.count_nonzero(scores)))
        if n == 0:
            return []
        idx = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        ranked = sorted(idx.tolist(), key=lambda i: (-float(scores[i]), self.ids[i]))
        return [(self.ids[i], float(scores[i])) for i in ranked[:k] if scores[i] > 0]

    def idf(self, term: str) -> float:
        """The term's inverse document frequency (Robertson/Lucene form); 0 for an unknown term."""
        df = self._df.get(term, 0)
        if df == 0:
            return 0.0
        n = len(self.ids)
        return float(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))

    @property
    def _df(self) -> dict[str, int]:
        if not hasattr(self, "_df_cache"):
            matrix = self.bm25.scores  # bm25s keeps a CSC matrix: one column per term
            indptr = np.asarray(matrix["indptr"])
            counts = np.diff(indptr)
            inverse = {v: k for k, v in self.vocab.items()}
            self._df_cache = {inverse[i]: int(c) for i, c in enumerate(counts) if i in inverse}
        return self._df_cache


def build(entries: dict[str, ManifestEntry], manifest: Manifest) -> SparseIndex:
    import bm25s

    ids: list[str] = []
    audiences: list[str] = []
    topics: list[tuple[str, ...]] = []
    for source in sorted(entries):
        e = entries[source]
        ids += list(e.chunk_ids)
        audiences += [e.audience] * len(e.chunk_ids)
        topics += [tuple(e.topics)] * len(e.chunk_ids)
    stored = manifest.tokens(ids)
    missing = [cid for cid in ids if cid not in stored]
    if missing:
        raise StoreError(f"the manifest has no BM25 terms for {len(missing)} committed chunk(s): "
                         "rebuild the index with `knee ingest --full`")
    corpus = [stored[cid].split() or [""] for cid in ids]
    bm25 = bm25s.BM25()
    if corpus:
        bm25.index(corpus, show_progress=False)
    return SparseIndex(ids, np.array(audiences), topics, bm25, committed_stamp(entries))


def save(index: SparseIndex, folder: Path) -> None:
    """Write the index to `folder` (replacing an older one; readers load whole files)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    index.bm25.save(str(tmp), show_progress=False)
    (tmp / INDEX_FILE).write_text(json.dumps({"stamp": index.stamp, "ids": index.ids, "audiences": index.audiences.tolist(),
                                              "topics": [list(t) for t in index.topics]}))
    import shutil

    old = folder.with_name(folder.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


class SavedBM25:
    """bm25s's saved index read with NumPy alone, for the readers (ask, search, serve): importing
    bm25s costs about 2 s of a cold start here (it imports scipy and numba), and a query needs only
    its precomputed score matrix. Scores equal bm25s's `get_scores` (tests/test_ingest.py checks it).
    The matrix is CSC: column t holds term t's BM25 score in every chunk that has it; a query's
    scores are the sum of its terms' columns (a term asked twice counts twice, as in bm25s)."""

    def __init__(self, folder: Path):
        self.scores = {name: np.load(folder / f"{name}.csc.index.npy") for name in ("data", "indices", "indptr")}
        self.vocab_dict: dict[str, int] = json.loads((folder / "vocab.index.json").read_text(encoding="utf-8"))
        params = json.loads((folder / "params.index.json").read_text(encoding="utf-8"))
        self.num_docs = int(params["num_docs"])

    def get_scores(self, terms: list[str]) -> np.ndarray:
        data, indices, indptr = self.scores["data"], self.scores["indices"], self.scores["indptr"]
        out = np.zeros(self.num_docs, dtype=np.float32)
        for t in terms:
            i = self.vocab_dict.get(t, len(indptr))
            if i >= len(indptr) - 1:  # unknown, or bm25s's "" entry (the last id, no column)
                continue
            start, end = indptr[i], indptr[i + 1]
            np.add.at(out, indices[start:end], data[start:end])
        return out


def load(folder: Path, stamp: str) -> SparseIndex | None:
    """The saved index, when it is the one for `stamp`; None otherwise."""
    meta_path = folder / INDEX_FILE
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("stamp") != stamp:
            return None
        bm25 = SavedBM25(folder)
    except (OSError, ValueError, KeyError):
        return None
    return SparseIndex(list(meta["ids"]), np.array(meta["audiences"]), [tuple(t) for t in meta["topics"]], bm25, stamp)


def current(settings: Settings, entries: dict[str, ManifestEntry] | None = None, write: bool = True) -> SparseIndex:
    """The BM25 index of the committed chunks: loaded from disk when current, else rebuilt (and
    saved, when `write`)."""
    manifest = Manifest(settings.manifest_path)
    entries = manifest.entries() if entries is None else entries
    stamp = committed_stamp(entries)
    index = load(settings.bm25_dir, stamp)
    if index is not None:
        return index
    index = build(entries, manifest)
    if write:
        try:
            save(index, settings.bm25_dir)
        except OSError:
            pass  # a read-only store: the index lives in memory for this process
    return index
