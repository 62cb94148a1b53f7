"""Retrieval systems the evaluation and the benchmark compare: ours and two baselines.

- `hybrid_system`: our retriever (Chroma dense + BM25 + the question index, weighted reciprocal
  rank fusion), searched the way the assistant searches: the message read into its question and
  facts, the question's own vector for the question index;
- `bm25_system`: BM25 alone, over our chunks, with our analyzer (`knee.sparse`);
- `TextbookRAG`: the LangChain RAG of the tutorials: the corpus Markdown files (front matter
  stripped), `RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)`, the same
  embedding model, a Chroma collection with its default settings, `similarity_search(q, k=4)`.

Every system is seen through `RetrievalSystem`: its own chunks (id -> text; relevance is judged
over these) and a `search(query, k) -> [chunk id, ...]`, best first.

`python -m evals.baselines textbook-ingest CORPUS_DIR STORE_DIR` builds the textbook store in a
fresh process and prints {"files", "chunks", "seconds"} as JSON: the benchmark times it that way,
like `knee ingest`, so both include starting Python and loading the model.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from knee.config import Settings

TEXTBOOK_CHUNK_SIZE = 1000
TEXTBOOK_CHUNK_OVERLAP = 200
TEXTBOOK_K = 4
TEXTBOOK_COLLECTION = "textbook_rag"


@dataclass
class RetrievalSystem:
    key: str  # short name used in metrics.json ("ours", "bm25", "textbook")
    label: str  # what the report calls it
    k: int  # the number of passages the system is designed to return
    chunks: dict[str, str]  # every chunk of the system: id -> text
    search: Callable[[str, int], list[str]]  # (query, k) -> chunk ids, best first
    # (question, history, k) -> chunk ids: a system that reads the chat itself, as answering does;
    # without it the system is given `retrieval_query`, the question with what a follow-up leans on.
    search_turns: Callable[[str, list[dict], int], list[str]] | None = None


# --------------------------------------------------------------------------- ours and BM25 only


def hybrid_system(assistant, k: int = 5) -> RetrievalSystem:
    def search_turns(question: str, history: list[dict], n: int) -> list[str]:
        # The assistant's own search (`Assistant.retrieve`): the message read as answering reads
        # it, each question it answers (up to two) searched with the same readings, follow-up
        # blend and what-to-do reading, so the score is of what answering composes from. Two
        # lists are interleaved (first of each, then second of each ...), so a message's evidence
        # for its second question counts as the assistant sees it. Until session 13 this
        # re-created the search from the question text alone, without the follow-up blend or the
        # what-to-do reading.
        lists = [[p.id for p in passages] for passages in assistant.retrieve(question, history, k=n)]
        if not lists:
            return []
        merged = [pid for rank in zip(*lists) for pid in rank] if len(lists) > 1 else lists[0]
        return list(dict.fromkeys(merged))[:n]

    def search(query: str, n: int) -> list[str]:
        return search_turns(query, [], n)

    return RetrievalSystem(
        key="ours",
        label="ours: dense + BM25 + question index, RRF",
        k=k,
        chunks={p.id: p.text for p in assistant.index.all_passages()},
        search=search,
        search_turns=search_turns,
    )


def bm25_system(assistant, k: int = 5) -> RetrievalSystem:
    """BM25 alone: the lexical part of our retriever (same chunks, same analyzer), no fusion."""
    from knee.sparse import tokenize

    index = assistant.index

    def search(query: str, n: int) -> list[str]:
        return [cid for cid, _ in index.sparse.top(tokenize(query), n)]

    return RetrievalSystem(key="bm25", label="BM25 only (our chunks)", k=k,
                           chunks={p.id: p.text for p in index.all_passages()}, search=search)


# --------------------------------------------------------------------------- the textbook RAG


def corpus_markdown_files(corpus_dir: Path) -> list[Path]:
    """The corpus articles: the same files `knee ingest` reads (README and hidden files are not articles)."""
    from ingest.pipeline import collect_files

    files, _ = collect_files([Path(corpus_dir)])
    return [f for f in files if f.suffix.lower() in (".md", ".markdown")]


def load_textbook_documents(corpus_dir: Path):
    """One LangChain Document per article: the file's text with its YAML front matter stripped."""
    from langchain_core.documents import Document

    from ingest.loaders import display_source, split_front_matter

    docs = []
    for path in corpus_markdown_files(corpus_dir):
        _, body, _ = split_front_matter(path.read_text(encoding="utf-8"))
        docs.append(Document(page_content=body.strip(), metadata={"source": display_source(path)}))
    return docs


def split_textbook(docs):
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=TEXTBOOK_CHUNK_SIZE, chunk_overlap=TEXTBOOK_CHUNK_OVERLAP)
    return splitter.split_documents(docs)


class TextbookRAG:
    """The tutorial pipeline, in a Chroma store of its own (a temporary folder in `knee eval`)."""

    def __init__(self, vectorstore, chunks: dict[str, str]):
        self.vectorstore = vectorstore
        self.chunks = chunks

    @classmethod
    def build(cls, corpus_dir: Path, settings: Settings, directory: Path) -> "TextbookRAG":
        from langchain_chroma import Chroma

        from knee.store import as_langchain_embeddings, chroma_settings, get_embeddings

        pieces = split_textbook(load_textbook_documents(corpus_dir))
        if not pieces:
            raise ValueError(f"no Markdown articles in {corpus_dir}")
        ids = [f"textbook:{i}" for i in range(len(pieces))]
        store = Chroma.from_documents(
            pieces,
            as_langchain_embeddings(get_embeddings(settings)),
            ids=ids,
            collection_name=TEXTBOOK_COLLECTION,
            persist_directory=str(directory),
            client_settings=chroma_settings(),
        )
        return cls(store, {i: d.page_content for i, d in zip(ids, pieces)})

    @classmethod
    def open(cls, settings: Settings, directory: Path, collection: str = TEXTBOOK_COLLECTION) -> "TextbookRAG":
        """A store built earlier (by `textbook-ingest`, or the benchmark's scaled copy)."""
        from langchain_chroma import Chroma

        from knee.store import as_langchain_embeddings, chroma_settings, get_embeddings

        store = Chroma(
            collection_name=collection,
            embedding_function=as_langchain_embeddings(get_embeddings(settings)),
            persist_directory=str(directory),
            client_settings=chroma_settings(),
        )
        got = store._collection.get(include=["documents"])
        return cls(store, dict(zip(got["ids"], got["documents"])))

    def similarity_search(self, query: str, k: int = TEXTBOOK_K):
        return self.vectorstore.similarity_search(query, k=k)

    def search(self, query: str, k: int = TEXTBOOK_K) -> list[str]:
        return [doc.id for doc in self.similarity_search(query, k=k)]

    def system(self) -> RetrievalSystem:
        return RetrievalSystem(
            key="textbook",
            label="textbook LangChain RAG (1000/200 splitter, dense k=4)",
            k=TEXTBOOK_K,
            chunks=self.chunks,
            search=self.search,
        )


def _textbook_ingest(argv: list[str]) -> int:
    """`python -m evals.baselines textbook-ingest CORPUS_DIR STORE_DIR`: build and report as JSON."""
    import knee  # noqa: F401  (telemetry off before chromadb is imported)
    from knee.config import load_settings

    started = time.perf_counter()
    corpus_dir, directory = Path(argv[0]), Path(argv[1])
    rag = TextbookRAG.build(corpus_dir, load_settings(), directory)
    print(json.dumps({"files": len(corpus_markdown_files(corpus_dir)), "chunks": len(rag.chunks), "seconds": round(time.perf_counter() - started, 3)}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "textbook-ingest":
        print("usage: python -m evals.baselines textbook-ingest CORPUS_DIR STORE_DIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(_textbook_ingest(sys.argv[2:]))
