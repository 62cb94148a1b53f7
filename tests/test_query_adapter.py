"""The query adapter (assistant/query_adapter.py): the committed one is what `knee adapter train`
fits today, a broken one is refused with a clear message, and the dense search uses it."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.query_adapter import ADAPTER_PATH, AdapterError, QueryAdapter, load_query_adapter
from conftest import run_knee


def test_the_committed_adapter_is_a_fit_of_todays_question_index_and_dev_split(corpus_db):
    # Fails when the corpus's questions, the chunks or the dev split changed since it was fitted:
    # run `knee adapter train` and commit the adapter and its report.
    run = run_knee("adapter", "train", "--check", env={"KNEE_DB": str(corpus_db)})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "matches" in run.stdout


def test_no_adapter_file_means_the_models_own_vectors(tmp_path):
    assert load_query_adapter(None, 384) is None
    assert load_query_adapter(tmp_path / "absent.npz", 384) is None


@pytest.mark.parametrize("content", [b"junk", b""], ids=["junk", "empty"])
def test_a_broken_adapter_file_is_refused_with_a_clear_message(tmp_path, corpus_db, content):
    bad = tmp_path / "adapter.npz"
    bad.write_bytes(content)
    with pytest.raises(AdapterError):
        load_query_adapter(bad, 384)
    run = run_knee("ask", "does taping help runner's knee?", env={"KNEE_QUERY_ADAPTER": str(bad), "KNEE_DB": str(corpus_db)})
    assert run.returncode != 0
    assert "query adapter" in run.stderr and "KNEE_QUERY_ADAPTER=none" in run.stderr
    assert "Traceback" not in run.stderr


def test_an_adapter_for_another_model_is_refused(tmp_path):
    other = tmp_path / "adapter.npz"
    QueryAdapter(np.eye(768, dtype=np.float32)).save(other)
    with pytest.raises(AdapterError, match="768"):
        load_query_adapter(other, 384)


def test_the_saved_adapter_loads_as_it_was(tmp_path):
    rng = np.random.default_rng(0)
    w = (np.eye(8) + 0.05 * rng.standard_normal((8, 8))).astype(np.float32)
    path = tmp_path / "a.npz"
    QueryAdapter(w).save(path)
    loaded = load_query_adapter(path, 8)
    assert np.abs(loaded.matrix - w).max() < 1e-3  # float16 of entries below 0.2
    v = rng.standard_normal(8).astype(np.float32)
    assert np.isclose(np.linalg.norm(loaded.apply(v)), 1.0)


def test_the_dense_search_uses_the_adapter(assistant):
    # The identity changes nothing; the committed adapter changes the dense list's cosines (the
    # stored chunk vectors are the same: only the question's vector moves).

    committed = load_query_adapter(ADAPTER_PATH, assistant.encoder.dimension)
    assert committed is not None and assistant.retriever.adapter is not None
    vector = assistant.embed_one("will it go away on its own?")
    retriever = assistant.retriever
    try:
        retriever.adapter = QueryAdapter(np.eye(assistant.encoder.dimension, dtype=np.float32))
        _, _, _, plain, _ = retriever.ranked_lists("will it go away on its own?", vector)
        retriever.adapter = None
        _, _, _, none, _ = retriever.ranked_lists("will it go away on its own?", vector)
        retriever.adapter = committed
        _, _, _, adapted, _ = retriever.ranked_lists("will it go away on its own?", vector)
    finally:
        retriever.adapter = committed
    assert plain.keys() == none.keys() and all(abs(plain[k] - none[k]) < 1e-5 for k in plain)
    shared = set(adapted) & set(none)
    assert shared and any(abs(adapted[k] - none[k]) > 1e-3 for k in shared)


def test_tuning_answers_each_dev_item_with_an_adapter_fitted_without_it(assistant, corpus_settings):
    # `knee eval --tune` chooses constants on dev; the adapter is fitted on dev, so each dev item it
    # was fitted on is answered with one of FOLDS adapters fitted without that item's fold.
    from assistant.train_adapter import FOLDS, committed_lambda, held_out_adapters
    from evals.runner import GOLD_DIR, load_gold
    from evals.tune import objective

    committed = assistant.retriever.adapter
    adapters = held_out_adapters(assistant, corpus_settings, committed_lambda())
    assert len(adapters) >= 300
    by_fold = {id(a): a for a in adapters.values()}
    assert len(by_fold) == FOLDS
    assert all(np.abs(a.matrix - committed.matrix).max() > 1e-3 for a in by_fold.values())
    dev = sorted((GOLD_DIR / "dev").glob("*.jsonl"))
    items, _ = load_gold(dev, {p: "dev" for p in dev})
    fitted_on = [i for i in items if i.id in adapters][:3]
    objective(fitted_on, assistant, adapters)
    assert assistant.retriever.adapter is committed and assistant.composer.adapter is committed


def test_the_composer_ranks_with_the_adapter_and_keeps_its_floors_on_the_models_cosine(assistant):
    # Sentences are ranked by their cosine to the mapped question (held out on dev: 412 facts of
    # 536 against 406); the relevance floors were set on the model's own cosine and stay on it.
    composer, committed = assistant.composer, assistant.composer.adapter
    question = "will it go away on its own?"
    vector = assistant.embed_one(question)
    passages = assistant.retriever.search(question, query_vector=vector)
    try:
        composer.adapter = None
        plain = {(c.passage_rank, c.sentence_idx): c for cs in composer.candidates(question, vector, passages).values() for c in cs}
        composer.adapter = committed
        mapped = {(c.passage_rank, c.sentence_idx): c for cs in composer.candidates(question, vector, passages).values() for c in cs}
    finally:
        composer.adapter = committed
    assert committed is not None and plain.keys() == mapped.keys()
    assert all(plain[k].relevance == mapped[k].relevance for k in plain)
    assert any(abs(plain[k].score - mapped[k].score) > 1e-3 for k in plain)
