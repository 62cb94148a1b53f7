"""Server mode: the same ingest and assistant against a real `chroma run` server on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import free_port, run_knee, wait_for_http

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    chroma = Path(sys.executable).with_name("chroma")
    exe = str(chroma) if chroma.exists() else shutil.which("chroma")
    assert exe, "the chroma command ships with the chromadb package"
    port = free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    proc = subprocess.Popen(
        [exe, "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=60)
        yield port, data
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_ingest_ask_and_search_through_a_chroma_server(chroma_server, small_corpus, tmp_path):
    port, data = chroma_server
    env = {"KNEE_CHROMA_HOST": "127.0.0.1", "KNEE_CHROMA_PORT": str(port), "KNEE_COLLECTION": "server_test"}
    db = tmp_path / "records"  # record managers and manifest stay local; the vectors live in the server

    first = run_knee("ingest", str(small_corpus), "--db", str(db), "--json", env=env)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["added"] > 0 and summary["articles"]["new"] == 3
    assert not (db / "chroma").exists()  # nothing was written to a local Chroma store
    assert any(data.iterdir())  # the server persisted it

    again = json.loads(run_knee("ingest", str(small_corpus), "--db", str(db), "--json", env=env).stdout)
    assert again["embedded"] == 0

    edited = small_corpus / "calf-strengthening.md"
    edited.write_text(edited.read_text() + "\nCalf raises can be done on a step.\n")
    changed = json.loads(run_knee("ingest", str(small_corpus), "--db", str(db), "--json", env=env).stdout)
    assert changed["articles"]["changed"] == 1 and changed["embedded"] == 1

    answer = run_knee("ask", "Which calf exercises should runners do?", "--db", str(db), "--json", env=env)
    assert answer.returncode == 0, answer.stderr
    record = json.loads(answer.stdout)
    assert record["behavior"] == "answer" and record["citations"]

    hits = run_knee("search", "gastrocnemius soleus", "--db", str(db), "--json", env=env)
    assert hits.returncode == 0, hits.stderr
    assert json.loads(hits.stdout.splitlines()[0])["source"].endswith("calf-strengthening.md")


def test_an_unreachable_server_is_a_one_line_error(tmp_path):
    env = {"KNEE_CHROMA_HOST": "127.0.0.1", "KNEE_CHROMA_PORT": str(free_port())}
    result = run_knee("ask", "What is runner's knee?", "--db", str(tmp_path), env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "Chroma server" in result.stderr
