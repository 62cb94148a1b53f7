"""The learned red-flag detector: a small logistic regression over the sentence embeddings the
assistant already computes.

It reads each clause and sentence of a message (and the whole message when it is short) and gives,
for each, a probability that it describes a red flag and which row of the table it is most like.
It exists for recall on wordings the table's phrases do not list; the table's rules stay the first
layer, and the code gates what the model finds by the same context the rules need (an injury, a
child). Trained by `knee triage train` (assistant/train_triage.py) from the table's examples and
look-alikes plus assistant/data/triage_train.jsonl; the weights live in a small committed file,
so answering needs NumPy only (not scikit-learn).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
MODEL_PATH = DATA_DIR / "triage_model.npz"
NONE = "none"


@dataclass
class Detection:
    row: str
    probability: float  # that the unit describes a red flag (1 - P(none))
    row_probability: float  # of this row, the most likely one
    unit: str  # the clause or sentence, in the user's words


class RedFlagClassifier:
    """Multinomial logistic regression: classes "none" and every row id."""

    def __init__(self, classes: list[str], weights: np.ndarray, bias: np.ndarray, threshold: float, meta: dict):
        self.classes = list(classes)
        self.weights = weights.astype(np.float32)  # (classes, dimension)
        self.bias = bias.astype(np.float32)
        self.threshold = float(threshold)  # on 1 - P(none): at or above it, a unit raises its row
        self.meta = meta
        self.none = self.classes.index(NONE)
        # On P(crisis row) alone: a lower bar (see assistant/train_triage.py).
        self.crisis_class = self.classes.index(meta["crisis_row"]) if meta.get("crisis_row") in self.classes else None
        self.crisis_threshold = float(meta.get("crisis_threshold", 1.0))

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> "RedFlagClassifier | None":
        if not Path(path).is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return cls(list(z["classes"]), z["weights"], z["bias"], float(z["threshold"]), meta)

    def save(self, path: Path = MODEL_PATH) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path, classes=np.array(self.classes), weights=self.weights, bias=self.bias,
            threshold=np.array(self.threshold), meta=np.array(json.dumps(self.meta, sort_keys=True)),
        )

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        logits = vectors @ self.weights.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def detect(self, units: list[str], vectors: np.ndarray) -> list[Detection]:
        """The units that describe a red flag, most likely first."""
        if not units:
            return []
        probs = self.probabilities(vectors)
        flag = 1.0 - probs[:, self.none]
        out = []
        for i in np.argsort(-flag):
            if self.crisis_class is not None and probs[i, self.crisis_class] >= self.crisis_threshold:
                out.append(Detection(self.classes[self.crisis_class], float(flag[i]), float(probs[i, self.crisis_class]), units[i]))
                continue
            if flag[i] < self.threshold:
                continue
            row_p = probs[i].copy()
            row_p[self.none] = -1.0
            best = int(np.argmax(row_p))
            out.append(Detection(self.classes[best], float(flag[i]), float(row_p[best]), units[i]))
        return out
