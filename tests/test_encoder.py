"""The NumPy encoder gives the vectors of the sentence-transformers model that embedded the store."""

from __future__ import annotations

import numpy as np
import pytest

from knee.encoder import SentenceEncoder, get_encoder

TEXTS = [
    "What is runner's knee?",
    "my calf is swolen and i cant breathe",
    "x",
    "",
    "Combining hip and knee strengthening works better than knee exercises alone.",
    "A " + "very long sentence about knees and running and stairs " * 60,  # past the 256-token limit
    "emoji 🏃 and accents: café, naïve",
]


def blas_rows_are_stable() -> bool:
    """Whether this machine's BLAS gives a row of a matrix product the same bits whatever the
    matrix's height. OpenBLAS's AVX-512 kernels do (the machines of sessions 1-16); its Haswell
    kernel on an AVX2-only AMD EPYC (session 17) does not: rows of a partial block of 12 (and of
    each thread's share) go through another kernel and differ in the last bits (~1e-7)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((384, 384)).astype(np.float32)
    x = rng.standard_normal((100, 384)).astype(np.float32)
    full = x @ w
    return all(np.array_equal(x[:m] @ w, full[:m]) for m in (1, 5, 13, 37))


# Packing texts shares only the position-wise arithmetic, so a text's vector may differ from its
# vector alone only by the BLAS's rounding: never more than this (measured 3e-8 on session 17's
# machine; a cosine threshold anywhere in the assistant is set to 1e-2 or coarser).
PACKING_TOLERANCE = 1e-6


def assert_same_vector(packed: np.ndarray, alone: np.ndarray, what) -> None:
    """The same bits where the BLAS allows it (`blas_rows_are_stable`), else within rounding."""
    if blas_rows_are_stable():
        assert np.array_equal(packed, alone), what
    else:
        assert np.abs(packed - alone).max() < PACKING_TOLERANCE, what


@pytest.fixture(scope="module")
def reference(corpus_settings):
    from knee.store import get_embeddings

    return get_embeddings(corpus_settings).embed_many(TEXTS)


def test_same_vectors_as_sentence_transformers(corpus_settings, reference):
    ours = get_encoder(corpus_settings.model_path).encode(TEXTS)
    assert ours.shape == reference.shape == (len(TEXTS), 384)
    assert np.abs(ours - reference).max() < 1e-5
    assert np.all((ours * reference).sum(axis=1) > 0.99999)


def test_batches_and_single_texts_agree(corpus_settings):
    enc = get_encoder(corpus_settings.model_path)
    together = enc.encode(TEXTS)
    alone = np.vstack([enc.encode([t]) for t in TEXTS])
    assert np.abs(together - alone).max() < 1e-5
    assert enc.encode([]).shape == (0, 384)


def test_a_model_it_cannot_compute_is_refused_clearly(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "t5", "hidden_act": "relu"}')
    with pytest.raises(ValueError, match="not a BERT model"):
        SentenceEncoder(tmp_path)


def test_a_texts_vector_is_the_same_bits_whatever_it_is_embedded_with(corpus_settings):
    """The assistant keeps vectors across messages (assistant.pipeline.SharedVectors): a kept
    vector must equal what a new encode would give, so answers never depend on what came before."""
    encoder = get_encoder(corpus_settings.model_path)
    text = "my knee hurts when i run downhill"
    alone = encoder.encode([text])[0]
    n = len(encoder.token_ids([text])[0])
    same_length = [t for t in (f"my knee hurts when i run {w}" for w in ("uphill", "fast", "daily", "again")) if len(encoder.token_ids([t])[0]) == n]
    assert same_length, "no text of the same length to batch it with"
    for batch in ([text, *TEXTS], [*TEXTS, text], [*same_length, text], [text, *same_length, *TEXTS]):
        assert_same_vector(encoder.encode(batch)[batch.index(text)], alone, batch)


def test_every_text_of_a_long_pack_is_the_bits_it_has_alone(corpus_settings):
    """Texts of many lengths packed together (and over more than one pack of PACK_TOKENS) each
    keep the vector they have alone: packing shares only the position-wise arithmetic."""
    from knee.encoder import PACK_TOKENS

    encoder = get_encoder(corpus_settings.model_path)
    words = "my knee aches going down the stairs after a long run and when I sit at my desk all day".split()
    texts = [" ".join(words[: 3 + i % len(words)]) + f" {i}" for i in range(200)]
    assert sum(len(x) for x in encoder.token_ids(texts)) > PACK_TOKENS
    packed = encoder.encode(texts)
    for i, t in enumerate(texts):
        assert_same_vector(packed[i], encoder.encode([t])[0], t)
