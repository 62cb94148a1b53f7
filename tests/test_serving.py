"""Serving many people at once, as `knee serve` runs: the assistant called from several threads,
a stop with requests in flight, a 10 MB chat history beside a crisis message, and two app
processes on one `chroma run` server writing one feedback file. Real processes, real store, real
model; speed is measured by `make load`, not here (the bounds below are generous and only tell a
held-up server from a working one)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import free_port, run_knee, wait_for_http
from evals import serving
from evals.serving import ServeProcess

QUESTIONS = [
    "What is runner's knee?",
    "Which exercises help runner's knee?",
    "How much pain is OK when running?",
    "How do I get back to running?",
    "Should I use a knee brace?",
    "What does the patella do?",
    "Can I still run with runner's knee?",
    "Why does my knee hurt on stairs?",
    "How long does runner's knee take to heal?",
    "Is cadence important for knee pain?",
    "My calf is swollen and I'm short of breath",
    "I want to kill myself",
    "My knee keeps locking and I can't straighten it",
    "What dose of ibuprofen should I take?",
    "Who won the football yesterday?",
    "Do hip exercises help knee pain?",
    "Is foam rolling useful?",
    "What is the Ottawa knee rule?",
    "Do insoles help?",
    "hello",
]


def _record(answer) -> dict:
    r = answer.to_json()
    r.pop("timings_ms", None)
    return r


def test_the_assistant_gives_the_same_answers_from_many_threads(assistant):
    """`knee serve` calls the assistant from worker threads side by side: 20 questions at once give
    exactly what they give one at a time (answers, citations, escalations, order)."""
    alone = [_record(assistant.invoke({"question": q, "history": []})) for q in QUESTIONS]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            together = list(pool.map(lambda q: _record(assistant.invoke({"question": q, "history": []})), QUESTIONS))
            assert together == alone


def _corpus_env(settings, data_dir: Path) -> dict[str, str]:
    return {
        "KNEE_DB": str(settings.db_dir),
        "KNEE_COLLECTION": settings.collection,
        "KNEE_CORPUS": str(settings.corpus_dir),
        "KNEE_MODEL": settings.model_path,
        "KNEE_DATA": str(data_dir),
    }


@pytest.mark.slow
def test_ctrl_c_with_requests_in_flight_stops_cleanly(corpus_settings, tmp_path):
    """Ctrl-C (SIGINT) while 20 requests are being answered, streamed or queued: exit code 0 within
    5 s, no traceback (`make fuzz` repeats this 20 times with SIGINT and SIGTERM)."""
    from evals.stoploop import stop_with_requests_in_flight

    result = stop_with_requests_in_flight(20, signal.SIGINT, deadline=5.0, env=_corpus_env(corpus_settings, tmp_path),
                                          inherit_knee_env=False)
    assert result["exit_code"] == 0, result
    assert result["seconds"] is not None and result["seconds"] <= 5.0, result
    assert result["stopped_line"] and not result["traceback"], result


@pytest.fixture(scope="module")
def served(corpus_settings, tmp_path_factory):
    app = ServeProcess(env=_corpus_env(corpus_settings, tmp_path_factory.mktemp("served-data")),
                       logs=tmp_path_factory.mktemp("served-logs"), inherit_knee_env=False).start()
    try:
        yield app
    finally:
        app.stop()
    assert app.returncode == 0, app.stderr()
    assert "Traceback" not in app.stderr(), app.stderr()


def _sync_chat_index(cfg: dict) -> tuple[int, int]:
    """(the chat component, the listener that stores a chat the browser sends as the session's
    history): what a client uses to send a history of its own."""
    chat = serving.component_id(cfg, "knee-chat")
    for d in cfg["dependencies"]:
        if d["inputs"] == [chat] and len(d["outputs"]) == 2 and d.get("queue") is False:
            return chat, d["id"]
    raise AssertionError("no listener that stores the chat as the session's history")


@pytest.mark.slow
def test_a_10mb_history_gets_a_normal_reply_and_a_crisis_meanwhile_is_answered(served):
    cfg = serving.config(served.url)
    chat, sync = _sync_chat_index(cfg)
    huge = [{"role": "user" if i % 2 == 0 else "assistant", "content": [{"type": "text", "text": "knee " * 2_000}]}
            for i in range(1_000)]  # 10 MB as JSON
    assert len(json.dumps(huge)) > 10_000_000
    session = uuid.uuid4().hex[:12]
    question = "What is runner's knee?"
    crisis: dict = {}

    def send_crisis():
        time.sleep(0.2)  # while the 10 MB request is on its way
        t0 = time.monotonic()
        crisis["reply"] = serving.api_call(served.url, "chat", ["I want to kill myself"], uuid.uuid4().hex[:12])[0]
        crisis["seconds"] = time.monotonic() - t0

    other = threading.Thread(target=send_crisis)
    other.start()
    t0 = time.monotonic()
    serving.direct_call(served.url, sync, [huge], session, timeout=60)
    reply = serving.api_call(served.url, "chat", [question], session, timeout=60)[0]
    big_seconds = time.monotonic() - t0
    other.join(60)

    fresh = serving.api_call(served.url, "chat", [question], uuid.uuid4().hex[:12])[0]
    assert 'class="knee-answer"' in reply and 'class="knee-sources"' in reply and "[1]" in reply
    assert 'class="knee-answer"' in fresh  # the same kind of reply as in a fresh chat
    assert 'class="knee-banner' in crisis["reply"]  # the crisis is escalated
    # Generous bounds: the issue measured 38-45 s for both; a bounded history costs a normal request.
    assert crisis["seconds"] < 10 and big_seconds < 15, (crisis["seconds"], big_seconds)
    # Beyond MAX_BODY_BYTES a body is refused outright (413), never read whole.
    import httpx

    import ui

    r = httpx.post(served.url + "/gradio_api/run/predict", content=b"[" + b" " * (ui.MAX_BODY_BYTES + 10) + b"]",
                   headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 413


# --------------------------------------------------------------------------- two app processes, one Chroma


@pytest.fixture()
def chroma_server(tmp_path):
    chroma = Path(sys.executable).with_name("chroma")
    exe = str(chroma) if chroma.exists() else shutil.which("chroma")
    assert exe, "the chroma command ships with the chromadb package"
    port = free_port()
    data = tmp_path / "chroma-server"
    proc = subprocess.Popen([exe, "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=60)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.server
def test_two_app_processes_share_one_chroma_server_and_one_feedback_file(chroma_server, small_corpus, tmp_path):
    """Several `knee serve` behind a load balancer: one `chroma run` server holds the vectors, each
    process answers from it, and their likes go to one feedback file, every line whole."""
    env = {"KNEE_CHROMA_HOST": "127.0.0.1", "KNEE_CHROMA_PORT": str(chroma_server), "KNEE_COLLECTION": "serving_test"}
    records = tmp_path / "records"  # record managers and manifest: shared by the processes, read only
    ingest = run_knee("ingest", str(small_corpus), "--db", str(records), "--json", env=env)
    assert ingest.returncode == 0, ingest.stderr
    data = tmp_path / "shared-data"
    app_env = {**env, "KNEE_DB": str(records), "KNEE_CORPUS": str(small_corpus), "KNEE_DATA": str(data)}
    apps = [ServeProcess(env=app_env, logs=tmp_path / f"logs-{i}", inherit_knee_env=False) for i in range(2)]
    try:
        for app in apps:
            app.start()
        question = "Which calf exercises should runners do?"
        likes = []
        for app in apps:
            session = uuid.uuid4().hex[:12]
            reply = serving.api_call(app.url, "chat", [question], session)[0]
            assert 'class="knee-sources"' in reply and "[1]" in reply, reply[:300]
            cfg = serving.config(app.url)
            chat, on_like = serving.component_id(cfg, "knee-chat"), serving.dependency_index(cfg, "on_like")
            history = [{"role": "user", "content": [{"type": "text", "text": question}]},
                       {"role": "assistant", "content": [{"type": "text", "text": reply}]}]
            likes += [(app.url, on_like, chat, history, reply)] * 25

        def like(job):
            url, fn, chat, history, reply = job
            return serving.queue_call(url, fn, [history], uuid.uuid4().hex[:12],
                                      event_data={"index": 1, "value": reply, "liked": True}, trigger_id=chat)

        with ThreadPoolExecutor(16) as pool:  # both processes append at the same time
            done = list(pool.map(like, likes))
        assert all(m.get("success") for m in done), [m for m in done if not m.get("success")][:2]
        lines = (data / "feedback.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == 50
        records_ = [json.loads(line) for line in lines]
        assert all(r["question"] == question and r["rating"] == "like" and r["citations"] for r in records_)
    finally:
        for app in apps:
            app.stop()
    for app in apps:
        assert app.returncode == 0, app.stderr()
