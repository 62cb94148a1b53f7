"""The embedding model's forward pass in NumPy: the same vectors as sentence-transformers, without
importing torch, transformers or sentence-transformers.

Why: importing sentence-transformers takes 5-10 s on this 2-core machine (torch, transformers and
their plugins), while the question to embed needs about 2 ms of arithmetic. `knee ask` and
`knee search` must answer in seconds, and `knee serve` start quickly, so the query side computes
all-MiniLM-L6-v2 itself: the model's own `tokenizer.json` (the `tokenizers` library) and its own
`model.safetensors` weights (the `safetensors` library, read as NumPy arrays), through the BERT
architecture its `config.json` describes, then the pooling its sentence-transformers modules
describe (mean over the tokens, then L2 normalisation). Ingest still embeds through LangChain's
`HuggingFaceEmbeddings` (sentence-transformers); `tests/test_encoder.py` checks that both give the
same vectors (cosine > 0.99999 on every test sentence), so stored and query vectors stay comparable.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np

# Texts of the same length in tokens go through the model together, at most this many at once.
BATCH_SIZE = 32


def _erf(x: np.ndarray) -> np.ndarray:
    """erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7, under float32's own
    rounding at these magnitudes): NumPy has no erf, and scipy.special costs 0.5 s to import."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x * (1.0 / math.sqrt(2.0))))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class SentenceEncoder:
    """A sentence-transformers BERT model (mean pooling, normalised) computed with NumPy."""

    def __init__(self, model_path: str | Path):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        path = Path(model_path)
        config = json.loads((path / "config.json").read_text())
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise ValueError(f"{path}: not a BERT model with GELU activations; the NumPy encoder cannot compute it")
        st_config = json.loads((path / "sentence_bert_config.json").read_text()) if (path / "sentence_bert_config.json").exists() else {}
        pooling_file = path / "1_Pooling" / "config.json"
        pooling = json.loads(pooling_file.read_text()) if pooling_file.exists() else {"pooling_mode_mean_tokens": True}
        if not pooling.get("pooling_mode_mean_tokens"):
            raise ValueError(f"{path}: only mean pooling is implemented")
        self.max_tokens = int(st_config.get("max_seq_length", config.get("max_position_embeddings", 512)))
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.dimension = int(config["hidden_size"])
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_tokens)
        self.tokenizer.no_padding()
        w = load_file(str(path / "model.safetensors"))
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""
        g = lambda name: w[prefix + name].astype(np.float32)  # noqa: E731
        self.word = g("embeddings.word_embeddings.weight")
        self.position = g("embeddings.position_embeddings.weight")
        self.token_type = g("embeddings.token_type_embeddings.weight")
        self.emb_norm = (g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"))
        self.blocks = []
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            # Query, key and value as one matrix: one matmul instead of three.
            qkv_w = np.concatenate([g(p + f"attention.self.{n}.weight") for n in ("query", "key", "value")]).T.copy()
            qkv_b = np.concatenate([g(p + f"attention.self.{n}.bias") for n in ("query", "key", "value")])
            self.blocks.append(
                (
                    qkv_w, qkv_b,
                    g(p + "attention.output.dense.weight").T.copy(), g(p + "attention.output.dense.bias"),
                    g(p + "attention.output.LayerNorm.weight"), g(p + "attention.output.LayerNorm.bias"),
                    g(p + "intermediate.dense.weight").T.copy(), g(p + "intermediate.dense.bias"),
                    g(p + "output.dense.weight").T.copy(), g(p + "output.dense.bias"),
                    g(p + "output.LayerNorm.weight"), g(p + "output.LayerNorm.bias"),
                )
            )
        self._lock = threading.Lock()  # the tokenizer object is shared; encoding is cheap to serialise

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        with self._lock:
            return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

    def _forward(self, ids: list[list[int]]) -> np.ndarray:
        n, length = len(ids), max(len(x) for x in ids)
        tokens = np.zeros((n, length), dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.float32)
        for i, row in enumerate(ids):
            tokens[i, : len(row)] = row
            mask[i, : len(row)] = 1.0
        x = self.word[tokens] + self.position[:length][None, :, :] + self.token_type[0][None, None, :]
        x = _layer_norm(x, *self.emb_norm, self.eps)
        d = self.dimension
        dh = d // self.heads
        # Padding positions get a large negative score before the softmax, as in the reference model.
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(dh))
        for qkv_w, qkv_b, ao_w, ao_b, ln1_w, ln1_b, in_w, in_b, out_w, out_b, ln2_w, ln2_b in self.blocks:
            qkv = x @ qkv_w + qkv_b  # (n, L, 3d)
            q, k, v = (qkv[..., i * d : (i + 1) * d].reshape(n, length, self.heads, dh).transpose(0, 2, 1, 3) for i in range(3))
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(n, length, d)
            x = _layer_norm(context @ ao_w + ao_b + x, ln1_w, ln1_b, self.eps)
            x = _layer_norm(_gelu(x @ in_w + in_b) @ out_w + out_b + x, ln2_w, ln2_b, self.eps)
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Normalised embeddings, one row per text (float32, shape (len(texts), dimension))."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        ids = self.token_ids(texts)
        # Batched only with texts of the same length in tokens, so never padded: a text's vector
        # is then the same bits whatever it is embedded with (padding to a longer text changed it
        # by ~1e-7, through the order of the sums), and a vector kept from one message equals the
        # one a later message would compute (assistant.pipeline.SharedVectors).
        by_length: dict[int, list[int]] = {}
        for i, one in enumerate(ids):
            by_length.setdefault(len(one), []).append(i)
        out = np.empty((len(ids), self.dimension), dtype=np.float32)
        for same in by_length.values():
            for start in range(0, len(same), BATCH_SIZE):
                batch = same[start : start + BATCH_SIZE]
                out[batch] = self._forward([ids[i] for i in batch])
        return out


_ENCODERS: dict[str, SentenceEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def get_encoder(model_path: str) -> SentenceEncoder:
    """One encoder per model folder and process."""
    with _ENCODERS_LOCK:
        if model_path not in _ENCODERS:
            _ENCODERS[model_path] = SentenceEncoder(model_path)
        return _ENCODERS[model_path]
