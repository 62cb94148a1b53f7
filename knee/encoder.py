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

# Texts go through the model packed together up to this many tokens (about 4 MB of activations
# per layer; the packs of a long message's clauses are ~100-600 tokens, ingest's batches more).
PACK_TOKENS = 2048


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU with erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7, under float32's
    own rounding at these magnitudes): NumPy has no erf, and scipy.special costs 0.5 s to import.
    Computed in place, in the same float32 operations and order as the plain expression
    0.5 * x * (1 + sign(y) * (1 - poly(t) * exp(-y * y))), y = x / sqrt(2), t = 1 / (1 + p * |y|),
    so the vectors are the same bits; without the temporaries it is 5 times faster (10.4 -> 2.1 ms
    on a 300 x 1536 block), and it was a fifth of the encoder's time under load (session 8)."""
    y = x * (1.0 / math.sqrt(2.0))
    sign = np.sign(y)
    a = np.abs(y, out=y)
    t = 0.3275911 * a
    t += 1.0
    np.divide(1.0, t, out=t)
    poly = t * 1.061405429
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += c
        poly *= t
    np.multiply(a, a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    a *= poly
    np.subtract(1.0, a, out=a)
    a *= sign  # erf(y)
    a += 1.0
    a *= x
    a *= 0.5  # exact: a power of two
    return a


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
        """The vectors of several texts in one pass, packed end to end without padding: the
        position-wise layers (the projections, the feed-forward, the layer norms: nearly all the
        arithmetic) run once over every token of every text, attention and pooling text by text.
        Each text's rows go through exactly the operations they would go through alone, so its
        vector is the same bits whatever it is packed with (tests/test_encoder.py): padding to the
        longest text changed the bits (~1e-7, the order of the sums) and so did batching only
        texts of equal length, at the cost of one pass per length (session 8: the 6-9 clauses
        triage embeds for a long message took 70-110 ms that way; 1,097 clauses of 52 long dev
        messages took 20.5 s one length at a time and 12.5 s packed, bit-identical). That holds
        where the BLAS computes a row the same whatever the matrix's height (OpenBLAS's AVX-512
        kernels); OpenBLAS's Haswell kernel on an AVX2-only CPU (session 17) rounds rows of a
        partial block differently, so there a packed text's vector differs from its vector alone
        in the last bits (below 1e-6, tests/test_encoder.py); the gold's fact recall and
        behaviour there equal session 16's."""
        lengths = [len(x) for x in ids]
        bounds = np.cumsum([0, *lengths])
        tokens = np.concatenate([np.asarray(x, dtype=np.int64) for x in ids])
        positions = np.concatenate([np.arange(n) for n in lengths])
        x = self.word[tokens] + self.position[positions] + self.token_type[0][None, :]
        x = _layer_norm(x, *self.emb_norm, self.eps)
        d = self.dimension
        dh = d // self.heads
        scale = np.float32(1.0 / math.sqrt(dh))
        spans = list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))
        context = np.empty((len(tokens), d), dtype=np.float32)
        for qkv_w, qkv_b, ao_w, ao_b, ln1_w, ln1_b, in_w, in_b, out_w, out_b, ln2_w, ln2_b in self.blocks:
            qkv = x @ qkv_w + qkv_b  # (tokens, 3d)
            for a, b in spans:
                n = b - a
                q, k, v = (qkv[a:b, i * d : (i + 1) * d].reshape(n, self.heads, dh).transpose(1, 0, 2) for i in range(3))
                scores = (q @ k.transpose(0, 2, 1)) * scale
                scores -= scores.max(axis=-1, keepdims=True)
                probs = np.exp(scores)
                probs /= probs.sum(axis=-1, keepdims=True)
                context[a:b] = (probs @ v).transpose(1, 0, 2).reshape(n, d)
            x = _layer_norm(context @ ao_w + ao_b + x, ln1_w, ln1_b, self.eps)
            x = _layer_norm(_gelu(x @ in_w + in_b) @ out_w + out_b + x, ln2_w, ln2_b, self.eps)
        pooled = np.stack([x[a:b].sum(axis=0) / np.float32(b - a) for a, b in spans])
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Normalised embeddings, one row per text (float32, shape (len(texts), dimension))."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        ids = self.token_ids(texts)
        out = np.empty((len(ids), self.dimension), dtype=np.float32)
        start = 0
        while start < len(ids):
            # Packs of at most PACK_TOKENS tokens (and one text, however long, on its own): the
            # activations of a pack stay a few MB.
            end, tokens = start, 0
            while end < len(ids) and (end == start or tokens + len(ids[end]) <= PACK_TOKENS):
                tokens += len(ids[end])
                end += 1
            out[start:end] = self._forward(ids[start:end])
            start = end
        return out


_ENCODERS: dict[str, SentenceEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def get_encoder(model_path: str) -> SentenceEncoder:
    """One encoder per model folder and process."""
    with _ENCODERS_LOCK:
        if model_path not in _ENCODERS:
            _ENCODERS[model_path] = SentenceEncoder(model_path)
        return _ENCODERS[model_path]
