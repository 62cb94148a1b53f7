"""Loaders: a file on disk -> an `Article` (title, metadata, sections of clean paragraphs).

Markdown (with YAML front matter), plain text and HTML. Web text is cleaned here: navigation and
boilerplate lines are dropped, headings are recognised (Markdown `#`, HTML `<h1>`-`<h6>`, and in
plain text short heading-like lines), so every paragraph knows its section path.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from knee.config import AUDIENCES, REPO_ROOT
from knee.yamltext import safe_load

SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm")
MAX_FILE_BYTES = 5_000_000


class IngestError(Exception):
    """A file that cannot be ingested; str() is a one-line message naming it."""

    def __init__(self, path: Path | str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass
class Section:
    path: tuple[str, ...]  # headings from the top level down; () for the opening paragraphs
    paragraphs: list[str] = field(default_factory=list)
    ref_keys: tuple[str, ...] = ()  # from <!-- refs: A, B --> in Markdown
    question: str | None = None  # an FAQ entry's question
    questions: tuple[str, ...] = ()  # the questions the section answers (<!-- questions: ... --> in Markdown)


@dataclass
class Article:
    source: str
    doc_id: str
    title: str
    audience: str
    topics: tuple[str, ...]
    references: dict[str, str]  # key -> full citation (front matter `sources`)
    sections: list[Section]
    file_sha: str
    front_matter: dict = field(default_factory=dict)
    format: str = "article"  # or "faq"


# --------------------------------------------------------------------------- reading


def display_source(path: Path) -> str:
    """The path as stored in the index: relative to the repository when inside it."""
    try:
        path = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: the path as given (reading it is the error reported)
        path = Path(os.path.abspath(path))
    try:
        return path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return path.as_posix()


def read_text(path: Path) -> tuple[str, str]:
    """The file's text and its sha256; IngestError for unreadable, binary or empty files."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise IngestError(path, f"too large ({path.stat().st_size:,} bytes; the limit is {MAX_FILE_BYTES:,})")
        data = path.read_bytes()
    except IngestError:
        raise
    except OSError as exc:
        raise IngestError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not data.strip():
        raise IngestError(path, "is empty")
    sha = hashlib.sha256(data).hexdigest()
    if b"\x00" in data[:8192]:
        raise IngestError(path, "is binary, not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise IngestError(path, "is not UTF-8 text (binary, or another encoding)") from None
    controls = sum(1 for ch in text[:8192] if ord(ch) < 32 and ch not in "\n\r\t\f")
    if controls > 0.01 * min(len(text), 8192):
        raise IngestError(path, "is binary, not text")
    return text.replace("\r\n", "\n").replace("\r", "\n"), sha


def load_file(path: Path, heading_judge: Callable | None = None) -> Article:
    """Load one supported file. `heading_judge(items, title) -> list[bool]` tells, for scraped web
    text, whether each (heading, body) really heads what follows (see `drop_stray_headings`); it is
    asked once per file, for all headings together (one model batch, not one call per heading)."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise IngestError(path, f"unsupported file type {suffix or '(none)'!r} (supported: {', '.join(SUPPORTED_SUFFIXES)})")
    text, sha = read_text(path)
    if suffix in (".md", ".markdown"):
        article = parse_markdown(text, path, sha)
    elif suffix == ".txt":
        article = parse_plain_text(text, path, sha)
    else:
        article = parse_html(text, path, sha)
    if suffix not in (".md", ".markdown") and heading_judge is not None:
        article.sections = drop_stray_headings(article.sections, article.title, heading_judge)
    article.sections = [s for s in article.sections if s.paragraphs]
    if not article.sections:
        raise IngestError(path, "has no text left to index after cleaning")
    return article


# --------------------------------------------------------------------------- inline clean-up

_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPH = re.compile(r"(\*\*|__)(.+?)\1")
_EMPH1 = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])|(?<![\w_])_(?!\s)(.+?)(?<!\s)_(?![\w_])")
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def clean_inline(text: str) -> str:
    text = _LINK.sub(r"\1", text)
    text = _EMPH.sub(r"\2", text)
    text = _EMPH1.sub(lambda m: m.group(1) or m.group(2), text)
    text = text.replace("`", "")
    text = _TAG.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


# --------------------------------------------------------------------------- Markdown

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.*)$")
_COMMENT = re.compile(r"<!--(.*?)-->", re.S)
_REFS = re.compile(r"^\s*refs?\s*:\s*(.*?)\s*$", re.S | re.I)
_QUESTIONS = re.compile(r"^\s*questions\s*:\s*(.*?)\s*$", re.S | re.I)


def split_front_matter(text: str) -> tuple[dict | None, str, str | None]:
    """(front matter or None, body, problem or None)."""
    if not text.startswith("---"):
        return None, text, None
    lines = text.split("\n")
    if lines[0].strip() != "---":
        return None, text, None
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            raw = "\n".join(lines[1:i])
            body = "\n".join(lines[i + 1 :])
            try:
                meta = safe_load(raw) or {}
            except yaml.YAMLError as exc:
                return None, body, f"invalid YAML front matter ({str(exc).splitlines()[0]})"
            if not isinstance(meta, dict):
                return None, body, "front matter is not a mapping of fields"
            return meta, body, None
    return None, text, "front matter starts with --- but never ends"


def front_matter_problems(meta: dict) -> list[str]:
    """What a corpus article's front matter lacks or gets wrong (empty when it is valid)."""
    problems = []
    for key in ("title", "slug", "audience", "topics", "sources", "last_reviewed"):
        if key not in meta or meta[key] in (None, "", []):
            problems.append(f"missing {key}")
    if meta.get("audience") not in (None, *AUDIENCES):
        problems.append(f"audience {meta.get('audience')!r} is not one of {', '.join(AUDIENCES)}")
    if "topics" in meta and not isinstance(meta["topics"], list):
        problems.append("topics is not a list")
    sources = meta.get("sources")
    if sources is not None:
        if not isinstance(sources, list):
            problems.append("sources is not a list")
        else:
            for s in sources:
                if not (isinstance(s, dict) and s.get("key") and s.get("citation")):
                    problems.append(f"source {s!r} lacks a key or a citation")
    lr = meta.get("last_reviewed")
    if lr is not None and not isinstance(lr, dt.date):
        try:
            dt.date.fromisoformat(str(lr))
        except ValueError:
            problems.append(f"last_reviewed {lr!r} is not a date (YYYY-MM-DD)")
    return problems


def _references(meta: dict) -> dict[str, str]:
    refs = {}
    for s in meta.get("sources") or []:
        if isinstance(s, dict) and s.get("key"):
            citation = str(s.get("citation") or s["key"]).strip()
            if s.get("url"):
                citation = f"{citation} {s['url']}"
            refs[str(s["key"]).strip()] = citation
        elif isinstance(s, str):
            refs[s] = s
    return refs


def parse_markdown(text: str, path: Path, sha: str) -> Article:
    meta, body, problem = split_front_matter(text)
    if problem:
        raise IngestError(path, problem)
    meta = meta or {}
    if meta.get("audience") not in (None, *AUDIENCES):
        raise IngestError(path, f"front matter audience {meta['audience']!r} is not one of {', '.join(AUDIENCES)}")
    topics = meta.get("topics") or []
    if isinstance(topics, str):
        topics = [t.strip() for t in topics.split(",") if t.strip()]
    if not isinstance(topics, list):
        raise IngestError(path, "front matter topics is not a list")
    is_faq = str(meta.get("format", "")).lower() == "faq"

    title = str(meta["title"]).strip() if meta.get("title") else None
    sections: list[Section] = [Section(())]
    stack: list[str] = []
    paragraph: list[str] = []
    in_fence = False

    def flush():
        if paragraph:
            joined = clean_inline(" ".join(paragraph))
            if joined:
                sections[-1].paragraphs.append(joined)
            paragraph.clear()

    # Comments: a "refs:" or "questions:" comment belongs to the section it stands in; others are dropped.
    pieces = _COMMENT.split(body)
    marked = []
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            marked.append(piece)
        else:
            m = _REFS.match(piece)
            if m:
                marked.append(f"\n\x00refs:{m.group(1)}\n")
            q = _QUESTIONS.match(piece)
            if q:
                asked = [re.sub(r"^\s*[-*]\s*", "", line).strip() for line in q.group(1).split("\n")]
                marked.append("\n" + "".join(f"\x00question:{a}\n" for a in asked if a))
    for line in "".join(marked).split("\n"):
        stripped = line.strip()
        if stripped.startswith("```") or stripped.startswith("~~~"):
            in_fence = not in_fence
            flush()
            continue
        if stripped.startswith("\x00refs:"):
            flush()
            keys = tuple(k.strip() for k in re.split(r"[,;\s]+", stripped[6:]) if k.strip())
            sections[-1].ref_keys = tuple(dict.fromkeys(sections[-1].ref_keys + keys))
            continue
        if stripped.startswith("\x00question:"):
            flush()
            sections[-1].questions = tuple(dict.fromkeys(sections[-1].questions + (stripped[10:].strip(),)))
            continue
        h = None if in_fence else _HEADING.match(line)
        if h:
            flush()
            level, heading = len(h.group(1)), clean_inline(h.group(2))
            if level == 1 and (title is None or heading == title) and not stack and not any(
                s.paragraphs for s in sections[1:]
            ):
                title = title or heading
                continue
            depth = max(level - 2, 0)
            stack = stack[:depth] + [heading]
            question = heading if (is_faq and depth == 0) else None
            sections.append(Section(tuple(stack), question=question))
            continue
        if not stripped:
            flush()
            continue
        if re.fullmatch(r"\|?\s*:?-{3,}.*", stripped):  # a table's separator row
            continue
        if stripped.startswith("|"):
            flush()
            cells = [clean_inline(c) for c in stripped.strip("|").split("|")]
            row = " - ".join(c for c in cells if c)
            if row:
                sections[-1].paragraphs.append(row if row[-1] in ".!?" else row + ".")
            continue
        item = _LIST_ITEM.match(line)
        if item:
            flush()
            paragraph.append(item.group(1))
            continue
        if re.fullmatch(r"[-*_]{3,}", stripped):  # a thematic break
            flush()
            continue
        paragraph.append(stripped.lstrip("> ").strip() if stripped.startswith(">") else stripped)
    flush()

    return Article(
        source=display_source(path),
        doc_id=str(meta.get("slug") or path.stem),
        title=title or _title_from_name(path),
        audience=str(meta.get("audience") or "both"),
        topics=tuple(str(t) for t in topics),
        references=_references(meta),
        sections=sections,
        file_sha=sha,
        front_matter=meta,
        format="faq" if is_faq else "article",
    )


def _title_from_name(path: Path) -> str:
    return re.sub(r"[-_]+", " ", path.stem).strip().capitalize() or path.name


# --------------------------------------------------------------------------- web text

# Lines that are page furniture, not content. Matched against a whole (short) line.
_BOILERPLATE = re.compile(
    r"""^(
        (skip\s+to\s+(main\s+)?(content|footer|navigation|main|menu)\W*)+
      | leave\s+a\s+(comment|reply).* | post\s+comment | submit\s+comment | reply
      | your\s+email\s+address\s+will\s+not\s+be\s+published.* | required\s+fields\s+are\s+marked.*
      | (share|share\s+this(\s+post|\s+article)?|share\s+on\s+\w+|tweet|pin\s+it|print)\W*
      | (posted|published)\s+(in|on|by)\b.* | (categories|category|tags?|filed\s+under)\s*:.*
      | (read|learn|find\s+out)\s+more.* | continue\s+reading.*
      | (previous|next|older|newer)\s+(post|article|entry|posts|entries).*
      | related\s+(posts?|articles?).* | you\s+(may|might)\s+also\s+like.*
      | (subscribe|sign\s+up).* | .*newsletter.* | .*cookies?.* | accept(\s+all)?|reject(\s+all)?
      | privacy\s+policy.* | terms\s+(and|&)\s+conditions.* | .*all\s+rights\s+reserved.* | (©|copyright\b).*
      | (main\s+)?menu | toggle\s+(navigation|menu) | search(\s+for)?\s*:?.* | home | close | back\s+to\s+top
      | (log\s*in|sign\s*in|register|my\s+account) | book\s+(now|online|an?\s+appointment).* | call\s+us.*
      | follow\s+us.* | contact\s+us | about\s+us | (\d+\s+)?comments? | no\s+comments(\s+yet)?
    )$""",
    re.I | re.X,
)

# Headings that organise a page without describing the words under them.
STRUCTURAL_HEADINGS = re.compile(
    r"^(frequently\s+asked\s+questions|faqs?|questions\s*(&|and)\s*answers|key\s+takeaways?|summary|"
    r"conclusions?|introduction|overview|references|further\s+reading)$",
    re.I,
)


def is_boilerplate(line: str) -> bool:
    return len(line.split()) <= 12 and bool(_BOILERPLATE.match(line.strip()))


_SMALL_WORDS = {"a", "an", "and", "as", "at", "but", "by", "for", "in", "of", "on", "or", "the", "to", "vs", "with", "your", "&", "–", "-", "—"}


def looks_like_heading(line: str) -> bool:
    """A short line that is not a sentence: no closing full stop, mostly capitalised words."""
    words = line.split()
    if not words or len(words) > 14 or len(line) > 110:
        return False
    if line[-1] in ".,;:" or not (line[0].isupper() or line[0].isdigit()):
        return False
    content = [w for w in words if w.lower() not in _SMALL_WORDS and any(c.isalpha() for c in w)]
    if not content:
        return False
    capitalised = sum(1 for w in content if w[0].isupper() or w[0].isdigit())
    return capitalised / len(content) >= 0.6 or len(words) <= 4


def sections_from_lines(lines: list[tuple[str, str]], path: Path, sha: str) -> Article:
    """Build an article from ("h"|"p", text) lines: the first heading is the title."""
    title = None
    sections = [Section(())]
    for kind, text in lines:
        text = _SPACE.sub(" ", text).strip()
        if not text or is_boilerplate(text):
            continue
        if kind == "h":
            if title is None and not any(s.paragraphs for s in sections):
                title = text
                continue
            sections.append(Section((text,)))
        else:
            sections[-1].paragraphs.append(text)
    return Article(
        source=display_source(path),
        doc_id=_slug(path.stem),
        title=title or _title_from_name(path),
        audience="both",
        topics=(),
        references={path.name: f"User-supplied document {path.name}"},
        sections=[s for s in sections if s.paragraphs],
        file_sha=sha,
    )


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "document"


def parse_plain_text(text: str, path: Path, sha: str) -> Article:
    lines: list[tuple[str, str]] = []
    paragraph: list[str] = []

    def flush():
        if paragraph:
            lines.append(("p", " ".join(paragraph)))
            paragraph.clear()

    raw = text.split("\n")
    for i, line in enumerate(raw):
        stripped = _SPACE.sub(" ", line).strip()
        if not stripped:
            flush()
            continue
        if is_boilerplate(stripped):
            flush()
            continue
        # A heading stands alone: the lines before and after it are blank (or it is the first line).
        alone = (i == 0 or not raw[i - 1].strip()) and (i + 1 >= len(raw) or not raw[i + 1].strip())
        underline = i + 1 < len(raw) and re.fullmatch(r"\s*(=+|-+)\s*", raw[i + 1] or "x")
        if (alone or underline) and looks_like_heading(stripped):
            flush()
            lines.append(("h", stripped.lstrip("#").strip()))
            continue
        if re.fullmatch(r"(=+|-+)", stripped):
            continue
        item = _LIST_ITEM.match(stripped)
        if item:
            flush()
            lines.append(("p", item.group(1)))
            continue
        paragraph.append(stripped)
    flush()
    return sections_from_lines(lines, path, sha)


_DROP_TAGS = ("script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe", "svg", "button", "select", "template", "menu")
_BLOCK_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "blockquote", "pre", "td", "th", "dd", "dt", "figcaption")


def parse_html(text: str, path: Path, sha: str) -> Article:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    page_title = soup.title.get_text(" ", strip=True) if soup.title else None
    for tag in soup(_DROP_TAGS):
        tag.decompose()
    for tag in soup.select('[role="navigation"], [role="banner"], [role="contentinfo"], [class*="comment"], [id*="comment"], [class*="share"], [class*="cookie"], [class*="menu"], [class*="breadcrumb"], [class*="sidebar"]'):
        tag.decompose()
    root = soup.find("article") or soup.find("main") or soup.body or soup
    lines: list[tuple[str, str]] = []
    for el in root.find_all(_BLOCK_TAGS):
        if el.find(_BLOCK_TAGS):  # only the innermost blocks, so nothing is read twice
            continue
        content = el.get_text(" ", strip=True)
        lines.append(("h" if el.name[0] == "h" and el.name[1:].isdigit() else "p", content))
    if not any(kind == "h" for kind, _ in lines) and page_title:
        lines.insert(0, ("h", page_title))
    return sections_from_lines(lines, path, sha)


def drop_stray_headings(sections: list[Section], title: str, heading_judge: Callable) -> list[Section]:
    """Scraped pages carry heading-like lines that link to other pages ("related posts").
    Such a line describes neither the text under it nor the article; its text joins the section
    before it. Structural headings ("Frequently Asked Questions") are kept whatever they say."""
    def judged(i: int, section: Section) -> bool:
        heading = section.path[-1] if section.path else None
        return bool(heading and i > 0 and section.paragraphs and not STRUCTURAL_HEADINGS.match(heading))

    asked = [i for i, section in enumerate(sections) if judged(i, section)]
    verdicts = heading_judge([(sections[i].path[-1], " ".join(sections[i].paragraphs)) for i in asked], title) if asked else []
    stray = {i for i, real in zip(asked, verdicts) if not real}
    kept: list[Section] = []
    for i, section in enumerate(sections):
        if i in stray and kept:
            kept[-1].paragraphs.extend(section.paragraphs)
            continue
        kept.append(section)
    return kept
