"""The query adapter: a learned linear map applied to a question's vector before the dense search.

all-MiniLM-L6-v2 was trained on web text, not on how runners ask about their knees: "does KT tape
do anything?" and the taping section, or "my knee aches at my desk" and the sitting advice, are
further apart in its space than they should be. Retraining the model would change every stored
vector (and the red-flag detector and crisis screen, which read the same vectors); a d x d matrix
W applied to the question only leaves the store and everything else as they are:

    dense query vector = W q / |W q|

W is fitted by `knee adapter train` (assistant/train_adapter.py) so that each question lands
nearest to the chunks that answer it: the questions every section lists (the question index) and
the dev split's answer items, never test or real. It is kept near the identity (a penalty on
|W - I|), so a question unlike anything it saw is searched much as before. It is stored as
W - I in float16 (its entries are small), beside a report of how it was chosen:
assistant/data/query_adapter.npz and query_adapter_report.json.

Only the dense list uses it. The question index is matched question to question, and the
composer's sentence scores and relevance floors stay on the model's own cosines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
ADAPTER_PATH = DATA_DIR / "query_adapter.npz"
REPORT_PATH = DATA_DIR / "query_adapter_report.json"


class AdapterError(Exception):
    """The adapter file is unreadable or does not fit the embedding model."""


@dataclass(frozen=True)
class QueryAdapter:
    matrix: np.ndarray  # (d, d) float32: W

    @property
    def dimension(self) -> int:
        return int(self.matrix.shape[0])

    def apply(self, vector: np.ndarray) -> np.ndarray:
        """W v, normalised (a zero result, which W near the identity cannot give, returns v)."""
        mapped = self.matrix @ np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(mapped))
        return mapped / norm if norm > 0 else np.asarray(vector, dtype=np.float32)

    def save(self, path: Path) -> None:
        delta = (self.matrix - np.eye(self.dimension, dtype=np.float32)).astype(np.float16)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:  # np.savez_compressed(path) would append ".npz" to other names
            np.savez_compressed(f, delta=delta)


def load_query_adapter(path: Path | str | None, dimension: int) -> QueryAdapter | None:
    """The adapter at `path`, or None when there is none (no path, or no file: a store searched
    with the model's own vectors). Raises AdapterError for a file that is not an adapter for
    vectors of this `dimension`."""
    if not path:
        return None
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            delta = np.asarray(data["delta"], dtype=np.float32)
    except Exception as exc:  # a truncated or foreign file
        raise AdapterError(f"query adapter {path} is not an adapter file ({type(exc).__name__})") from exc
    if delta.shape != (dimension, dimension):
        raise AdapterError(f"query adapter {path} is {delta.shape}, the embedding model's vectors have {dimension} dimensions")
    return QueryAdapter(delta + np.eye(dimension, dtype=np.float32))
