"""Ingest: loaders, cleaning, chunking, incremental indexing, bad files, killed runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CORPUS, KNEE, SEED, corpus_files, make_settings, run_knee
from ingest.chunking import split_sentences
from ingest.loaders import IngestError, load_file
from ingest.pipeline import Ingestor, stale_files
from knee.store import Manifest, open_store

SEED_TITLE = "Strength Exercises For Runner\u2019s Knee Pain: New Physio Research"
BOILERPLATE = ("Skip to content", "Skip to footer", "Leave a comment", "Grey Zone", "Questions & Answers", "Key Takeaways")


# --------------------------------------------------------------------------- the seed article


@pytest.fixture(scope="module")
def seed_ingestor(tmp_path_factory):
    return Ingestor(make_settings(tmp_path_factory.mktemp("seed-db")))


def test_seed_article_has_its_real_title_and_clean_sections(seed_ingestor):
    article, chunks = seed_ingestor.load(SEED)
    assert article.title == SEED_TITLE
    sections = [" > ".join(s.path) for s in article.sections]
    for expected in (
        "Anatomy of Runner\u2019s Knee",
        "Research Into Strength Exercises For Runner\u2019s Knee Pain",
        "Importance of Muscle Balance and Co-ordination For Runners",
        "Calf Strengthening for Runners",
        "Frequently Asked Questions",
    ):
        assert expected in sections
    # A related-post link, a table-of-contents heading with nothing under it, page furniture:
    assert not any("Grey Zone" in s or "Key Takeaways" in s or "Questions & Answers" in s for s in sections)
    for chunk in chunks:
        for junk in BOILERPLATE:
            assert junk not in chunk.text, (junk, chunk.text[:200])
    # The anatomy text that sat under the related-post link stays in the anatomy section.
    anatomy = [c for c in chunks if c.section == "Anatomy of Runner\u2019s Knee"]
    assert any("femur (thigh bone)" in c.text for c in anatomy)
    assert any("Leave a comment" in line for line in SEED.read_text().splitlines())  # the input does have it


def test_knee_ingest_takes_the_seed_article_from_the_command_line(tmp_path):
    result = run_knee("ingest", str(SEED), "--db", str(tmp_path / "db"), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["added"] > 5 and summary["errors"] == []
    again = json.loads(run_knee("ingest", str(SEED), "--db", str(tmp_path / "db"), "--json").stdout)
    assert again["embedded"] == 0 and again["skipped"] == summary["added"]


def test_html_is_cleaned(tmp_path, seed_ingestor):
    page = tmp_path / "page.html"
    page.write_text(
        """<html><head><title>Clinic | Knee pain</title><script>var tracking = 1;</script></head><body>
        <nav><a href="/">Home</a> <a href="/blog">Blog</a></nav>
        <header><p>Book an appointment today</p></header>
        <article><h1>Knee pain in runners</h1>
        <p>Knee pain in runners often builds up slowly over weeks of training.</p>
        <h2>Strength work</h2><p>Strength work for the hips and thighs is a large part of most programmes.</p>
        <ul><li>Squats done slowly with good form.</li><li>Step-ups onto a low step.</li></ul>
        </article>
        <aside><h3>Related posts</h3><p>Ten marathon tips</p></aside>
        <section class="comments"><h3>Leave a comment</h3><form><textarea></textarea></form></section>
        <footer><p>Copyright 2024 Clinic. All rights reserved.</p></footer>
        <script>alert('x')</script></body></html>"""
    )
    article, chunks = seed_ingestor.load(page)
    assert article.title == "Knee pain in runners"
    assert [s.path for s in article.sections] == [(), ("Strength work",)]
    text = " ".join(c.text for c in chunks)
    for junk in ("tracking", "alert", "Home", "Book an appointment", "Related posts", "marathon tips", "Leave a comment", "Copyright"):
        assert junk not in text
    assert "Step-ups onto a low step." in text


# --------------------------------------------------------------------------- chunks


def test_sentence_splitter_keeps_abbreviations_together():
    text = "Some studies (e.g. Lenhart et al. 2014) found 14%. Pain stays at 2/10 or lower! Is it OK? Yes."
    assert split_sentences(text) == [
        "Some studies (e.g. Lenhart et al. 2014) found 14%.",
        "Pain stays at 2/10 or lower!",
        "Is it OK?",
        "Yes.",
    ]


@pytest.mark.parametrize("path", [*corpus_files(), SEED], ids=lambda p: p.name)
def test_chunks_respect_token_limits_and_never_cut_sentences(path, seed_ingestor):
    ingestor = seed_ingestor
    article, chunks = ingestor.load(path)
    chunker = ingestor.chunker
    assert chunks
    for chunk in chunks:
        assert chunker.tokens(chunk.text) <= ingestor.settings.chunk_max_tokens
        # Checked with the embedding model's own tokenizer, special tokens included:
        assert chunker.model_tokens(chunk.text) <= ingestor.settings.model_max_tokens
        for sentence in chunk.sentences:
            assert sentence in chunk.text
        body = chunk.text.split("\n\n", 1)[1]
        assert body.rstrip()[-1] in ".!?\"'\u201d\u2019);:" or body.endswith(tuple(p[-20:] for s in article.sections for p in s.paragraphs))
        for key in ("doc_id", "title", "section", "source", "audience", "position"):
            assert key in chunk.metadata()
    # Nothing is lost: every paragraph's sentences are in the chunks, in order.
    all_sentences = [s for c in chunks for s in c.sentences]
    expected = [s for sec in article.sections for p in sec.paragraphs for s in split_sentences(p)]
    assert all_sentences == expected
    assert not ingestor.chunker.too_long_sentences


def test_faq_entries_are_one_chunk_each_with_the_question(seed_ingestor):
    faq = CORPUS / "faq.md"
    article, chunks = seed_ingestor.load(faq)
    assert article.format == "faq"
    questions = [s.question for s in article.sections if s.question]
    assert len(questions) >= 15
    assert [c.question for c in chunks if c.question] == questions
    for chunk in chunks:
        if chunk.question:
            assert chunk.question.endswith("?")
            assert chunk.metadata()["question"] == chunk.question


# --------------------------------------------------------------------------- incremental


def _collection_counts(settings):
    store = open_store(settings)
    return store.chunk_collection().count(), store.sentence_collection().count()


def test_incremental_ingest_counts(small_corpus, tmp_path):
    settings = make_settings(tmp_path / "db")
    first = Ingestor(settings).run([small_corpus])
    assert first.errors == []
    assert first.added == first.chunks_total > 0 and first.skipped == 0 and first.deleted == 0
    assert first.articles["new"] == 3

    unchanged = Ingestor(settings).run([small_corpus])
    assert unchanged.embedded == 0 and unchanged.skipped == first.added and unchanged.deleted == 0
    assert unchanged.articles["unchanged"] == 3
    assert stale_files([small_corpus], settings) == []

    before = Manifest(settings.manifest_path).entries()
    edited = small_corpus / "prevention.md"
    text = edited.read_text()
    paragraph = next(line for line in text.splitlines() if len(line) > 80 and not line.startswith(("#", "-", "<", "title", "  ")))
    edited.write_text(text.replace(paragraph, paragraph + " Small, steady changes are easier to keep up."))
    assert stale_files([small_corpus], settings) == [edited.absolute()]
    one_edit = Ingestor(settings).run([small_corpus])
    after = Manifest(settings.manifest_path).entries()
    assert one_edit.articles == {"new": 0, "changed": 1, "unchanged": 2, "removed": 0}
    changed = [s for s in after if after[s].chunk_ids != before[s].chunk_ids]
    assert len(changed) == 1 and changed[0].endswith("prevention.md")
    # Only the edited chunk was embedded again; the other chunks of the article were skipped.
    assert one_edit.updated + one_edit.added == 1
    assert one_edit.skipped == first.chunks_total - 1
    assert _collection_counts(settings)[0] == sum(len(e.chunk_ids) for e in after.values())

    gone = small_corpus / "calf-strengthening.md"
    gone_chunks = len(after[next(s for s in after if s.endswith("calf-strengthening.md"))].chunk_ids)
    gone.unlink()
    kept = Ingestor(settings).run([small_corpus])  # without --full, nothing is removed
    assert kept.deleted == 0 and len(Manifest(settings.manifest_path).entries()) == 3
    full = Ingestor(settings).run([small_corpus], full=True)
    assert full.deleted == gone_chunks and full.articles["removed"] == 1 and full.embedded == 0
    final = Manifest(settings.manifest_path).entries()
    assert len(final) == 2
    assert _collection_counts(settings) == (
        sum(len(e.chunk_ids) for e in final.values()),
        sum(len(e.sentence_ids) for e in final.values()),
    )


# --------------------------------------------------------------------------- bad input


def test_bad_files_get_one_line_errors_and_the_rest_is_ingested(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.md").write_text("---\ntitle: Good one\naudience: patient\n---\n\nRunner's knee is pain around the kneecap.\n")
    (folder / "empty.md").write_text("   \n\n")
    (folder / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (folder / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1") + b"\xff\xfe")
    (folder / "notes.pdf").write_bytes(b"%PDF-1.4 something")
    (folder / "broken.md").write_text("---\ntitle: [unclosed\n---\ntext\n")
    (folder / "gone.md").symlink_to(tmp_path / "does-not-exist.md")
    db = tmp_path / "db"
    result = run_knee("ingest", str(folder), str(folder / "notes.pdf"), str(tmp_path / "nope"), "--db", str(db), "--json")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    summary = json.loads(result.stdout)
    assert summary["articles"]["new"] == 1 and summary["added"] >= 1
    errors = result.stderr.strip().splitlines()
    for name, words in {
        "empty.md": "empty",
        "binary.txt": "binary",
        "latin1.txt": "UTF-8",
        "notes.pdf": "unsupported",
        "broken.md": "front matter",
        "gone.md": "cannot be read",
        "nope": "no such file",
    }.items():
        line = next((e for e in errors if name in e), None)
        assert line is not None, (name, errors)
        assert words in line
    assert len(errors) == 7
    # The good article is there and answerable.
    assert Manifest(db / "manifest.sqlite").entries().keys() == {str((folder / "good.md").resolve())}


def test_a_file_that_breaks_keeps_its_indexed_version(small_corpus, tmp_path):
    settings = make_settings(tmp_path / "db")
    Ingestor(settings).run([small_corpus])
    before = Manifest(settings.manifest_path).entries()
    (small_corpus / "prevention.md").write_bytes(b"\x00\x01binary now")
    report = Ingestor(settings).run([small_corpus], full=True)
    assert len(report.errors) == 1 and "prevention.md" in report.errors[0]
    assert report.deleted == 0
    assert Manifest(settings.manifest_path).entries() == before  # no data lost


def test_missing_index_says_how_to_build_it(tmp_path):
    result = run_knee("ask", "what is runner's knee?", "--db", str(tmp_path / "empty"))
    assert result.returncode == 1
    assert "knee ingest" in result.stderr and "Traceback" not in result.stderr


# --------------------------------------------------------------------------- killed ingest


def _assert_consistent(settings):
    """Readers see every committed article whole: all of its chunks and sentences exist."""
    store = open_store(settings)
    entries = Manifest(settings.manifest_path).entries()
    for entry in entries.values():
        if entry.chunk_ids:
            got = store.chunk_collection().get(ids=list(entry.chunk_ids), include=[])
            assert len(got["ids"]) == len(entry.chunk_ids), entry.source
            got = store.sentence_collection().get(ids=list(entry.sentence_ids), include=[])
            assert len(got["ids"]) == len(entry.sentence_ids), entry.source
    return entries


@pytest.mark.slow
def test_a_killed_ingest_never_leaves_an_article_half_indexed(tmp_path):
    # Eight articles: enough for kills to land between articles and inside one (the whole corpus
    # took two minutes of CI for the same four kills).
    articles = corpus_files()[:8]
    folder = tmp_path / "articles"
    folder.mkdir()
    for f in articles:
        (folder / f.name).write_bytes(f.read_bytes())
    db = tmp_path / "db"
    settings = make_settings(db)
    args = [*KNEE, "ingest", str(folder), "--db", str(db), "--json"]
    started = time.time()
    full = subprocess.run(args, capture_output=True, text=True, timeout=600)
    duration = time.time() - started
    assert full.returncode == 0, full.stderr
    # Edit every article, then kill re-ingests at spread-out moments. Each edition is written
    # from the original text, so a file holds exactly one "Edition i" line.
    originals = {f: f.read_text() for f in folder.glob("*.md")}
    for i, delay in enumerate((0.45, 0.6, 0.75, 0.9)):
        for f, text in originals.items():
            f.write_text(text.replace("\n## ", f"\n\nEdition {i} of this article.\n\n## ", 1))
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(duration * delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        entries = _assert_consistent(settings)
        for entry in entries.values():  # each article is wholly one edition
            texts = open_store(settings).chunk_collection().get(ids=list(entry.chunk_ids))["documents"]
            editions = {e for t in texts for e in range(5) if f"Edition {e} of" in t}
            assert len(editions) <= 1, (entry.source, editions)
    finish = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert finish.returncode == 0, finish.stderr
    entries = _assert_consistent(settings)
    assert len(entries) == len(articles)
    chunks, sentences = _collection_counts(settings)
    assert chunks == sum(len(e.chunk_ids) for e in entries.values())  # no orphans left behind
    assert sentences == sum(len(e.sentence_ids) for e in entries.values())
    again = json.loads(subprocess.run(args, capture_output=True, text=True).stdout)
    assert again["embedded"] == 0


# --------------------------------------------------------------------------- corpus rules


def test_loader_errors_name_the_file(tmp_path):
    bad = tmp_path / "x.md"
    bad.write_text("---\naudience: everyone\n---\ntext")
    with pytest.raises(IngestError) as info:
        load_file(bad)
    assert str(info.value).startswith(str(bad)) and "audience" in str(info.value)


def test_the_readers_bm25_scores_equal_bm25s_on_the_corpus_index(corpus_settings):
    """Readers score with knee.sparse.SavedBM25 (NumPy only, no bm25s import at start-up): its
    scores must be bm25s's own for any query, repeated terms included."""
    import random

    import bm25s
    import numpy as np

    from knee.sparse import SavedBM25

    folder = corpus_settings.bm25_dir
    ours, theirs = SavedBM25(folder), bm25s.BM25.load(str(folder), mmap=False, show_progress=False)
    vocab = sorted(t for t in ours.vocab_dict if t)
    rng = random.Random(7)
    for _ in range(300):
        query = [rng.choice(vocab) for _ in range(rng.randint(1, 8))]
        query += query[:1]
        assert np.allclose(ours.get_scores(query), np.asarray(theirs.get_scores(query)), atol=1e-6)
    assert not ours.get_scores(["no-such-term-here"]).any()


def test_records_no_article_lists_are_swept_by_the_next_run(small_corpus, tmp_path):
    """A run killed after an article's manifest commit, before its earlier version was deleted,
    leaves records that the next run (seeing the article up to date) never reaches by source."""
    settings = make_settings(tmp_path / "db")
    Ingestor(settings).run([small_corpus])
    store = open_store(settings)
    chunks = store.chunk_collection()
    one = chunks.get(limit=1, include=["embeddings", "documents", "metadatas"])
    before = chunks.count()
    chunks.add(ids=["left-by-a-killed-run"], embeddings=[list(one["embeddings"][0])],
               documents=["An earlier edition of this section."], metadatas=[one["metadatas"][0]])
    report = Ingestor(settings).run([small_corpus])
    assert report.articles["unchanged"] == 3 and report.deleted == 1, report.to_json()
    assert any("interrupted ingest" in w for w in report.warnings)
    assert open_store(settings).chunk_collection().count() == before
    assert Ingestor(settings).run([small_corpus]).deleted == 0  # and nothing more the time after


def test_the_manifests_passages_are_the_stores(corpus_settings, small_corpus, tmp_path):
    """Readers take a passage's text and metadata from the manifest (a local lookup) instead of the
    chunk collection: both must say the same for every committed chunk, and an article's passages
    go when the article does."""
    from assistant.retrieve import _get
    from knee.models import Passage

    manifest = Manifest(corpus_settings.manifest_path)
    ids = [cid for e in manifest.entries().values() for cid in e.chunk_ids]
    kept = manifest.passages(ids)
    assert set(kept) == set(ids)
    stored = _get(open_store(corpus_settings, create=False).chunk_collection(), ids, ["documents", "metadatas"])
    from langchain_core.documents import Document

    for cid, text, meta in zip(stored["ids"], stored["documents"], stored["metadatas"]):
        mine = Passage.from_document(Document(id=cid, page_content=kept[cid][0], metadata=kept[cid][1]))
        assert mine == Passage.from_document(Document(id=cid, page_content=text, metadata=meta))

    settings = make_settings(tmp_path / "db")
    Ingestor(settings).run([small_corpus])
    small = Manifest(settings.manifest_path)
    removed = sorted(small_corpus.glob("*.md"))[0]
    gone = small.entries()[next(s for s in small.entries() if s.endswith(removed.name))].chunk_ids
    removed.unlink()
    Ingestor(settings).run([small_corpus], full=True)
    assert gone and small.passages(list(gone)) == {}
