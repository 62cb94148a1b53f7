"""Chunking: an `Article` -> `Chunk`s.

Heading-aware (a chunk never spans two sections), token-bounded with tiktoken, and sentences are
never cut: a chunk is whole paragraphs, or whole sentences when a paragraph is too long. Each chunk
is then checked with the embedding model's own tokenizer, so nothing is silently truncated when it
is embedded. An FAQ entry is one chunk, with its question in the metadata.

We pack sentences ourselves instead of using a LangChain text splitter because the sentence is the
unit the composer quotes: one splitter (`split_sentences`) decides both the chunk boundaries and the
sentences embedded at ingest, so every quoted sentence is exactly a substring of its passage.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from ingest.loaders import Article
from knee.models import Chunk

# Bump when chunking changes: a different pipeline version makes `make run` re-ingest.
# 4: each section's question index rides on its first chunk; 5: the manifest keeps each chunk's
# text and metadata (nothing is embedded again: the indexing API skips unchanged documents)
PIPELINE_VERSION = "chunker-5"

_ABBREVIATIONS = {
    "e.g", "eg", "i.e", "ie", "etc", "vs", "al", "dr", "mr", "mrs", "ms", "prof", "approx", "fig",
    "no", "st", "cf", "ca", "jr", "sr", "dept", "vol", "pp", "p", "ed", "eds", "min", "max", "mins",
}
# A sentence ends at . ! ? (and closing quotes or brackets) before whitespace and a capital,
# a digit, or an opening quote or bracket.
_BOUNDARY = re.compile(r"([.!?\u2026]+[\"'\u201d\u2019)\]]*)\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split a paragraph into sentences; each returned sentence is a substring of `text`."""
    sentences = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        end = m.end(1)
        words = text[start:end].split()
        last = words[-1].lower().rstrip(".!?\"'\u201d\u2019)]").lstrip("(['\"\u201c\u2018") if words else ""
        # "et al. 2016", "e.g. Dr. Smith", initials such as "K. M." are not sentence ends.
        if last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha() and text[end - 1] == "."):
            continue
        piece = text[start:end].strip()
        if piece:
            sentences.append(piece)
        start = m.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


@lru_cache(maxsize=4)
def tiktoken_encoding(name: str):
    import tiktoken

    return tiktoken.get_encoding(name)


class Chunker:
    def __init__(self, encoding_name: str, max_tokens: int, model_tokenizer, model_max_tokens: int):
        self.encoding = tiktoken_encoding(encoding_name)
        self.max_tokens = max_tokens
        self.model_tokenizer = model_tokenizer
        self.model_max_tokens = model_max_tokens
        self.too_long_sentences: list[str] = []  # sentences we had to cut (reported, never silent)

    def tokens(self, text: str) -> int:
        return len(self.encoding.encode(text, disallowed_special=()))

    def model_tokens(self, text: str) -> int:
        return len(self.model_tokenizer.encode(text).ids)  # includes [CLS] and [SEP]

    def fits(self, text: str) -> bool:
        return self.tokens(text) <= self.max_tokens and self.model_tokens(text) <= self.model_max_tokens

    def chunk(self, article: Article) -> list[Chunk]:
        chunks: list[Chunk] = []
        for section in article.sections:
            header = " > ".join((article.title, *section.path))
            refs = section.ref_keys or tuple(article.references)
            references = tuple(article.references.get(k, k) for k in refs)
            asked = tuple(dict.fromkeys(((section.question,) if section.question else ()) + section.questions))
            for n, body_parts in enumerate(self._pack(header, section.paragraphs)):
                body = "\n\n".join(body_parts)
                text = f"{header}\n\n{body}"
                sentences = tuple(s for part in body_parts for s in split_sentences(part))
                position = len(chunks)
                digest = hashlib.sha256(text.encode()).hexdigest()[:12]
                chunks.append(
                    Chunk(
                        key=f"{article.doc_id}:{position}:{digest}",
                        text=text,
                        sentences=sentences,
                        doc_id=article.doc_id,
                        title=article.title,
                        section=" > ".join(section.path),
                        source=article.source,
                        audience=article.audience,
                        topics=article.topics,
                        position=position,
                        references=references,
                        question=section.question,
                        questions=asked if n == 0 else (),
                    )
                )
        return chunks

    def _pack(self, header: str, paragraphs: list[str]) -> list[list[str]]:
        """Group paragraphs (or, when a paragraph is too long, its sentences) into chunk bodies."""
        units: list[tuple[str, bool]] = []  # (text, starts a new paragraph)
        for paragraph in paragraphs:
            if self.fits(f"{header}\n\n{paragraph}"):
                units.append((paragraph, True))
                continue
            for i, sentence in enumerate(split_sentences(paragraph)):
                for j, piece in enumerate(self._fit_sentence(header, sentence)):
                    units.append((piece, i == 0 and j == 0))
        bodies: list[list[str]] = []
        current: list[str] = []
        for text, new_paragraph in units:
            if current:
                candidate = current[:-1] + [current[-1] + " " + text] if not new_paragraph else current + [text]
                if self.fits(f"{header}\n\n" + "\n\n".join(candidate)):
                    current = candidate
                    continue
                bodies.append(current)
            current = [text]
        if current:
            bodies.append(current)
        return bodies

    def _fit_sentence(self, header: str, sentence: str) -> list[str]:
        """A sentence longer than a whole chunk (rare; scraped text without full stops) is cut at
        clause boundaries, and a clause still too long at words. This is the only place a
        sentence is ever cut, and each cut is recorded in `too_long_sentences`."""
        if self.fits(f"{header}\n\n{sentence}"):
            return [sentence]
        self.too_long_sentences.append(sentence[:80])
        pieces: list[str] = []
        for clause in re.split(r"(?<=[,;:])\s+", sentence):
            parts = [clause] if self.fits(f"{header}\n\n{clause}") else clause.split()
            for part in parts:
                candidate = f"{pieces[-1]} {part}" if pieces else part
                if pieces and self.fits(f"{header}\n\n{candidate}"):
                    pieces[-1] = candidate
                else:
                    pieces.append(part)
        return pieces


def pipeline_version(settings) -> str:
    """What produced an index's chunks; stored per article in the manifest."""
    return f"{PIPELINE_VERSION}/{settings.chunk_max_tokens}/{settings.encoding_name}"


def make_chunker(settings, model_tokenizer) -> Chunker:
    return Chunker(settings.encoding_name, settings.chunk_max_tokens, model_tokenizer, settings.model_max_tokens)
