"""`knee adapter train`: fit the query adapter (assistant/query_adapter.py) and report how it was chosen.

Data (none of it from the test or real splits):
- the question index: every question every section lists (corpus front matter, as ingested),
  labelled with its section's chunk;
- the dev split's answer items that name their evidence (evals/gold/dev), labelled with every
  chunk that holds an evidence phrase, and searched as the assistant searches them (the message
  read into its question and facts, `search_texts`). Items with earlier turns are left out: their
  query depends on the turns.
Features: the vectors the assistant computes anyway (knee.encoder), and the stored chunk vectors.

Model: W (d x d), started at the identity. Loss: for each question, minus the log of the
softmax probability (scale SCALE over cosines to every chunk) of its relevant chunks, plus
LAMBDA |W - I|^2 / d, which keeps W near the identity. Full-batch Adam, STEPS steps, rate RATE.

How LAMBDA is chosen, deterministically (fixed folds by item id, seed 0), on dev only: the value of
LAMBDA_GRID with the best mean of recall@5 and MRR of the dense search on the held-out fold (the
question index is always trained on), over FOLDS folds. The report also gives, out of fold, the
fused retrieval (dense + BM25 + question index) at each dense weight of DENSE_WEIGHT_GRID: how
`weight_dense` in knee/config.py was set, by hand, on these numbers. Both are written to
assistant/data/query_adapter_report.json.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from assistant.query_adapter import ADAPTER_PATH, REPORT_PATH, QueryAdapter

# SCALE 20 is sentence-transformers' default for its in-batch ranking loss (cosines x 20); RATE and
# STEPS: Adam's usual 1e-3, and enough full-batch steps for the training loss to level off here
# (it changes by under 1% from step 250 to 300 at every LAMBDA of the grid).
SCALE = 20.0
RATE = 1e-3
STEPS = 300
LAMBDA_GRID = (1.0, 3.0, 10.0, 30.0)
FOLDS = 5
DENSE_WEIGHT_GRID = (1.0, 1.5, 2.0, 3.0)
RETRIEVAL_K = 5


def dev_items(chunks: dict[str, str]) -> list[tuple[str, str, list[str]]]:
    """(id, question, relevant chunk ids) of the dev answer items with evidence and no earlier turns."""
    from evals.metrics import relevant_ids
    from evals.runner import GOLD_DIR, load_gold

    paths = sorted((GOLD_DIR / "dev").glob("*.jsonl"))
    items, _problems = load_gold(paths, {p: "dev" for p in paths})  # `knee eval` reports the problems
    out = []
    for item in items:
        if item.behavior != "answer" or not item.evidence or item.history:
            continue
        relevant = sorted(relevant_ids(item.evidence, chunks))
        if relevant:
            out.append((item.id, item.question, relevant))
    return sorted(out)


def fold_of(item_id: str) -> int:
    return int(hashlib.sha256(item_id.encode()).hexdigest(), 16) % FOLDS


def fit(queries: np.ndarray, targets: list[list[int]], chunk_vectors: np.ndarray, lam: float) -> np.ndarray:
    """W minimising the loss above (float32, d x d)."""
    import torch

    torch.manual_seed(0)
    d = chunk_vectors.shape[1]
    x = torch.tensor(queries, dtype=torch.float32)
    c = torch.tensor(chunk_vectors, dtype=torch.float32)
    mask = torch.zeros((len(targets), len(chunk_vectors)), dtype=torch.bool)
    for i, t in enumerate(targets):
        mask[i, t] = True
    eye = torch.eye(d)
    w = torch.nn.Parameter(eye.clone())
    opt = torch.optim.Adam([w], lr=RATE)
    for _ in range(STEPS):
        z = torch.nn.functional.normalize(x @ w.T, dim=1)
        logits = SCALE * z @ c.T
        relevant = torch.logsumexp(logits.masked_fill(~mask, float("-inf")), dim=1)
        loss = (torch.logsumexp(logits, dim=1) - relevant).mean() + lam * ((w - eye) ** 2).sum() / d
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach().numpy().astype(np.float32)


def dense_scores(w: np.ndarray, queries: np.ndarray, targets: list[list[int]], chunk_vectors: np.ndarray) -> dict[str, float]:
    z = queries @ w.T
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    order = np.argsort(-(z @ chunk_vectors.T), axis=1, kind="stable")
    recall = mrr = 0.0
    for row, t in zip(order, targets):
        rel = set(t)
        recall += len(rel.intersection(row[:RETRIEVAL_K].tolist())) / min(len(rel), RETRIEVAL_K)
        mrr += next((1.0 / (r + 1) for r, c in enumerate(row[:10].tolist()) if c in rel), 0.0)
    n = max(1, len(targets))
    return {"recall@5": round(recall / n, 4), "mrr": round(mrr / n, 4)}


@dataclass
class TrainingData:
    """What the adapter is fitted on: chunk vectors (the softmax's classes), the indexed questions
    and the dev items (vectors and relevant chunk positions), and each dev item's fold."""

    chunk_ids: list[str]
    chunk_vectors: np.ndarray
    question_vectors: np.ndarray
    question_targets: list[list[int]]
    items: list[tuple[str, str, list[str]]]  # dev (id, question, relevant chunk ids)
    queries: list[str]  # each dev item as the assistant searches it
    item_vectors: np.ndarray
    item_targets: list[list[int]]
    folds: np.ndarray

    def fit_without(self, fold: int | None, lam: float) -> np.ndarray:
        """W fitted on the indexed questions and the dev items outside `fold` (None: all of them)."""
        keep = self.folds != fold
        x = np.concatenate([self.question_vectors, self.item_vectors[keep]])
        t = self.question_targets + [t for t, k in zip(self.item_targets, keep) if k]
        return fit(x, t, self.chunk_vectors, lam)


def training_data(assistant, settings) -> TrainingData:
    """The data of `assistant`'s store; its own vectors (the assistant's adapter is not used)."""
    from assistant.message import read_message
    from assistant.pipeline import search_texts

    index = assistant.index
    got = index.chunks.get(include=["embeddings"])
    chunk_ids = sorted(i for i in got["ids"] if i in index.committed)
    by_id = dict(zip(got["ids"], got["embeddings"]))
    chunk_vectors = np.asarray([by_id[i] for i in chunk_ids], dtype=np.float32)
    chunk_vectors /= np.linalg.norm(chunk_vectors, axis=1, keepdims=True)
    position = {cid: n for n, cid in enumerate(chunk_ids)}
    rows, matrix = index.indexed_questions()  # committed chunks' questions only
    question_vectors = matrix if rows else np.zeros((0, chunk_vectors.shape[1]), dtype=np.float32)
    question_targets = [[position[r.chunk_id]] for r in rows]
    items = dev_items({p.id: p.text for p in index.all_passages()})
    queries = [search_texts(read_message(q).asked[0], [], settings.history_turns)[0] for _, q, _ in items]
    item_vectors = np.asarray(assistant.encoder.encode(queries), dtype=np.float32)
    item_targets = [[position[c] for c in rel] for _, _, rel in items]
    folds = np.array([fold_of(i) for i, _, _ in items])
    return TrainingData(chunk_ids, chunk_vectors, question_vectors, question_targets, items, queries, item_vectors, item_targets, folds)


def held_out_adapters(assistant, settings, lam: float) -> dict[str, QueryAdapter]:
    """For each dev item the adapter is fitted on, an adapter fitted without that item's fold: what
    `knee eval --tune` answers it with, so that tuning on dev does not see the adapter's fit to dev.
    (Dev items it is not fitted on are out of sample for the committed adapter already.)"""
    data = training_data(assistant, settings)
    by_fold = {f: QueryAdapter(data.fit_without(f, lam)) for f in range(FOLDS)}
    return {item_id: by_fold[int(f)] for (item_id, _, _), f in zip(data.items, data.folds)}


def committed_lambda() -> float | None:
    if not REPORT_PATH.is_file():
        return None
    return float(json.loads(REPORT_PATH.read_text(encoding="utf-8"))["chosen_lambda"])


def train(path: Path = ADAPTER_PATH, report_path: Path | None = REPORT_PATH, settings=None, progress=print,
          lam: float | None = None) -> dict:
    """Fit and save the adapter; with `lam`, fit it with that lambda only (no cross-validation, no
    report): what `--check` does, in seconds."""
    from assistant.message import read_message
    from assistant.pipeline import load_assistant, search_texts
    from knee.config import load_settings

    started = time.perf_counter()
    settings = settings or load_settings()
    assistant = load_assistant(replace(settings, query_adapter_path=None))  # its own vectors
    progress("query adapter: reading the question index and the dev split, embedding ...")
    data = training_data(assistant, settings)
    items = data.items
    progress(f"query adapter: {len(data.question_targets)} indexed questions, {len(items)} dev items, {len(data.chunk_ids)} chunks")

    if lam is not None:
        QueryAdapter(data.fit_without(None, lam)).save(path)
        return {"chosen_lambda": lam, "seconds": round(time.perf_counter() - started, 1)}

    identity = np.eye(data.chunk_vectors.shape[1], dtype=np.float32)
    cross_validated = {"identity": dense_scores(identity, data.item_vectors, data.item_targets, data.chunk_vectors)}
    fold_models: dict[float, list[np.ndarray]] = {}
    for lam in LAMBDA_GRID:
        fold_models[lam] = [data.fit_without(f, lam) for f in range(FOLDS)]
        held = {"recall@5": 0.0, "mrr": 0.0}
        for f in range(FOLDS):
            sel = np.flatnonzero(data.folds == f)
            s = dense_scores(fold_models[lam][f], data.item_vectors[sel], [data.item_targets[i] for i in sel], data.chunk_vectors)
            for k in held:
                held[k] += s[k] * len(sel) / len(items)
        cross_validated[str(lam)] = {k: round(v, 4) for k, v in held.items()}
        progress(f"  lambda {lam}: held-out dense recall@5 {held['recall@5']:.3f}, MRR {held['mrr']:.3f}")
    best = max(LAMBDA_GRID, key=lambda lam: (cross_validated[str(lam)]["recall@5"] + cross_validated[str(lam)]["mrr"], lam))

    # The fused retrieval, out of fold, at each dense weight (with the chosen lambda). The text each
    # item matches against the question index is embedded once, not once per weight.
    index_vectors = []
    for (_, question, _), query, qv in zip(items, data.queries, data.item_vectors):
        asked = read_message(question).asked[0]
        index_vectors.append(qv if asked.question == query else assistant.embed_one(search_texts(asked, [], settings.history_turns)[1]))
    fold_adapters = [QueryAdapter(m) for m in fold_models[best]]
    fused: dict[str, dict[str, float]] = {}
    retriever = assistant.retriever
    for weight in DENSE_WEIGHT_GRID:
        retriever.settings = replace(settings, weight_dense=weight)
        recall = mrr = 0.0
        for n, ((_, _, rel), query) in enumerate(zip(items, data.queries)):
            retriever.adapter = fold_adapters[data.folds[n]]
            ranked = [p.id for p in retriever.search(query, k=10, query_vector=data.item_vectors[n], question_vector=index_vectors[n])]
            recall += len(set(rel).intersection(ranked[:RETRIEVAL_K])) / min(len(rel), RETRIEVAL_K)
            mrr += next((1.0 / (r + 1) for r, c in enumerate(ranked) if c in rel), 0.0)
        fused[str(weight)] = {"recall@5": round(recall / len(items), 4), "mrr": round(mrr / len(items), 4)}
        progress(f"  fused, dense weight {weight}: held-out recall@5 {fused[str(weight)]['recall@5']:.3f}, MRR {fused[str(weight)]['mrr']:.3f}")
    retriever.adapter = None
    retriever.settings = settings

    adapter = QueryAdapter(data.fit_without(None, best))
    adapter.save(path)
    report = {
        "what": "query adapter W (assistant/query_adapter.py); held-out numbers are dev items out of fold, dense search alone unless said",
        "model": Path(settings.model_path).name,
        "indexed_questions": len(data.question_targets),
        "dev_items": len(items),
        "chunks": len(data.chunk_ids),
        "chunks_sha256": hashlib.sha256("\n".join(data.chunk_ids).encode()).hexdigest(),
        "settings": {"scale": SCALE, "rate": RATE, "steps": STEPS, "folds": FOLDS, "lambda_grid": list(LAMBDA_GRID)},
        "chosen_lambda": best,
        "held_out_dense": cross_validated,
        "held_out_fused_by_dense_weight": fused,
        "weight_dense_in_config": settings.weight_dense,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if report_path is not None:
        report_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    progress(f"query adapter: lambda {best}; written to {path} in {report['seconds']} s")
    return report


# Two fits of the same data agree to float16 rounding on one machine; across machines the BLAS's
# summation order can move the last bits. A committed adapter "matches" a fresh fit when no entry
# of W differs by more than this (entries of W - I are of order 1e-2; float16 keeps ~3 digits).
CHECK_TOLERANCE = 2e-3


def main(args, settings) -> int:
    import sys
    import tempfile

    from assistant.query_adapter import AdapterError, load_query_adapter
    from knee.encoder import get_encoder
    from knee.store import StoreError

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        if not args.check:
            train(settings=settings, progress=progress)
            return 0
        chosen = committed_lambda()
        if chosen is None or not ADAPTER_PATH.is_file():
            print(f"no committed adapter and report ({ADAPTER_PATH}, {REPORT_PATH.name}): run `knee adapter train`")
            return 1
        dimension = get_encoder(settings.model_path).dimension
        committed = load_query_adapter(ADAPTER_PATH, dimension)
        with tempfile.TemporaryDirectory() as tmp:
            fresh_path = Path(tmp) / "query_adapter.npz"
            train(fresh_path, None, settings=settings, progress=progress, lam=chosen)
            fresh = load_query_adapter(fresh_path, dimension)
            gap = float(np.abs(committed.matrix - fresh.matrix).max())
            same = gap <= CHECK_TOLERANCE
            print(f"largest difference between the committed and a fresh adapter: {gap:.2e} "
                  f"({'matches' if same else 'differs'}; tolerance {CHECK_TOLERANCE:g})")
            return 0 if same else 1
    except (StoreError, AdapterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
