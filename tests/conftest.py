"""Shared fixtures. Everything is real: Chroma on disk (or a `chroma run` server), the packaged
embedding model, a Gradio server and Chromium. Nothing here is mocked."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import knee  # noqa: F401  (telemetry off)
from knee.config import REPO_ROOT, Settings, load_settings

CORPUS = REPO_ROOT / "corpus"
# The real scraped clinic article (../shared/knowledge/seed-article.txt), kept byte for byte with
# the tests so a clean clone can run them.
SEED = REPO_ROOT / "tests" / "data" / "seed-article.txt"
KNEE = [sys.executable, "-m", "knee.cli"]


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.glob("*.md") if p.name.lower() != "readme.md")


def make_settings(db_dir: Path, **overrides) -> Settings:
    base = load_settings({})
    values = {"db_dir": Path(db_dir), **overrides}
    return Settings(**{**base.__dict__, **values})


def run_knee(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*KNEE, *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=REPO_ROOT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def corpus_db(tmp_path_factory) -> Path:
    """The real corpus, ingested once for the whole session into its own store."""
    from ingest.pipeline import Ingestor

    db = tmp_path_factory.mktemp("corpus-db")
    report = Ingestor(make_settings(db)).run([CORPUS])
    assert not report.errors, report.errors
    return db


@pytest.fixture(scope="session")
def corpus_settings(corpus_db) -> Settings:
    return make_settings(corpus_db)


@pytest.fixture(scope="session")
def assistant(corpus_settings):
    from assistant.pipeline import load_assistant

    return load_assistant(corpus_settings)


@pytest.fixture()
def small_corpus(tmp_path) -> Path:
    """A copy of three corpus articles, to edit and delete freely."""
    folder = tmp_path / "articles"
    folder.mkdir()
    for name in ("calf-strengthening.md", "prevention.md", "knee-anatomy.md"):
        shutil.copy(CORPUS / name, folder / name)
    return folder


def wait_for_http(url: str, timeout: float = 60.0) -> None:
    import urllib.request

    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 500:
                    return
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout} s: {last}")


def pytest_collection_modifyitems(config, items):
    """Tests marked `fuzz` are the long runs of `make fuzz` (`pytest -m fuzz`): skipped unless the
    marker expression names them, so `make test` (and CI) stays short."""
    if "fuzz" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="a long run: `make fuzz` (pytest -m fuzz)")
    for item in items:
        if item.get_closest_marker("fuzz"):
            item.add_marker(skip)
