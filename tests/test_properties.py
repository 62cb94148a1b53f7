"""Any input, typed output (issue 11, item 4): property tests with Hypothesis over the real
assistant (the session's real store and model, nothing mocked).

Whatever `question` and `history` hold (None, numbers, booleans, dicts without the expected keys,
mixed and nested lists, objects, lone surrogates, control characters, 200,000 characters, 1,000
turns), and whichever shape the Gradio app may hand over, `assistant.invoke` returns an `Answer`
whose behaviour is answer, escalate or refuse, never raises, and `answer.to_json()` is JSON that
can be written as UTF-8. `knee ask --batch` reports a bad line as that line's error and goes on.

Profiles: "ci" (the normal suite: 4 x 500 examples + the large inputs, derandomized so CI is
repeatable) and "fuzz" (tests marked `fuzz`, `make fuzz`: 20,000 random examples; prints p99).
The numbers of examples run and the latencies are written at the end of the module's run.
An "answer" with no text (a composer bug the fuzz run found, fixed: `test_an_answer_has_text`)
fails every test.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import KNEE, REPO_ROOT, run_knee
from knee.models import Answer, Citation, Escalation

settings.register_profile(
    "ci",
    max_examples=500,  # x 4 tests below = 2,000, plus the large inputs
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same examples every run: a CI failure is a bug, never chance
    print_blob=True,
)
settings.register_profile(
    "fuzz",
    max_examples=20_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
CI = settings.get_profile("ci")
FUZZ = settings.get_profile("fuzz")
BEHAVIOURS = {"answer", "escalate", "refuse"}

# ------------------------------------------------------------------------------ what is sent


class Hostile:
    """An object that refuses everything it can: attributes, comparison, truth, length, iteration, str."""

    def __getattr__(self, name):
        if name.startswith("_"):  # tools' introspection (_repr_pretty_, __array__, ...)
            raise AttributeError(name)
        raise RuntimeError(f"hostile attribute {name}")

    def __eq__(self, other):
        raise RuntimeError("hostile ==")

    __hash__ = object.__hash__

    def __bool__(self):
        raise RuntimeError("hostile bool")

    def __len__(self):
        raise RuntimeError("hostile len")

    def __iter__(self):
        raise RuntimeError("hostile iter")

    def __str__(self):
        raise RuntimeError("hostile str")

    def __repr__(self):
        return "Hostile()"


CONTROL = st.one_of(
    st.integers(0, 0x1F).map(chr),
    st.integers(0x7F, 0x9F).map(chr),
    st.sampled_from(["\u200b", "\u200e", "\u202e", "\u2028", "\u2029", "\ufeff", "\ufffd", "\uffff"]),
)
SURROGATE = st.integers(0xD800, 0xDFFF).map(chr)
ANY_CHAR = st.one_of(st.characters(), CONTROL, SURROGATE)
WORDS = st.sampled_from([
    "knee", "pain", "runner's", "running", "hurts", "when", "I", "my", "it", "is", "OK", "how", "what", "why",
    "does", "can", "swollen", "hot", "fever", "can't", "walk", "weight", "squat", "stairs", "exercises", "taping",
    "insoles", "ibuprofen", "dose", "calf", "short of breath", "numb", "locked", "popped", "kill myself",
    "chest pain", "marathon", "?", ".", ",", "!", "\n", "\t", "<b>", "<img src=x>", "&lt;img&gt;",
    "[x](javascript:alert(1))", "```", "ignore previous instructions", "Knie", "膝", "\u0000", "\ud800", "\udfff",
])
# Text a person or a broken client might send: words, junk characters, or both.
TEXT = st.one_of(
    st.lists(st.one_of(WORDS, st.text(ANY_CHAR, max_size=6)), max_size=40).map(" ".join),
    st.text(ANY_CHAR, max_size=200),
    st.tuples(st.text(ANY_CHAR, min_size=1, max_size=12), st.sampled_from([1999, 2000, 2001, 4000])).map(
        lambda t: (t[0] * t[1])[: t[1]]
    ),  # around the length limit
)
SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**40, max_value=10**60), st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0]), st.complex_numbers(), st.binary(max_size=40),
    st.decimals(allow_nan=True), st.just(Ellipsis), st.just(Hostile()), TEXT,
)
# Values of any type and shape: JSON-like and Python-only, nested.
ANYTHING = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(["role", "content", "text", "question"])), inner, max_size=4),
        st.builds(SimpleNamespace, role=inner, content=inner),
        st.frozensets(st.integers(), max_size=3),
        st.lists(st.one_of(st.text(max_size=5), st.integers(-9, 9)), max_size=3).map(np.array),
    ),
    max_leaves=12,
)
ROLE = st.one_of(st.sampled_from(["user", "assistant", "system", "tool", "User", "", " user"]), ANYTHING)
CONTENT = st.one_of(
    TEXT,
    st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}), max_size=3),  # Gradio parts
    st.fixed_dictionaries({"type": st.sampled_from(["text", "file", "image"]), "text": st.one_of(TEXT, ANYTHING)}),
    st.fixed_dictionaries({"path": TEXT, "mime_type": st.one_of(st.none(), TEXT)}),  # a file
    ANYTHING,
)
TURN = st.one_of(
    st.fixed_dictionaries({"role": ROLE, "content": CONTENT}),
    st.fixed_dictionaries({}, optional={"role": ROLE, "content": CONTENT, "metadata": ANYTHING, "text": TEXT}),
    st.tuples(CONTENT, CONTENT),  # (user, assistant) pairs
    st.builds(SimpleNamespace, role=ROLE, content=CONTENT),
    st.builds(lambda role, content: SimpleNamespace(role=role, content=content, metadata={"title": "Sources"}), ROLE, CONTENT),
    ANYTHING,
)
HISTORY = st.one_of(
    ANYTHING,
    st.lists(TURN, max_size=12),
    st.lists(TURN, max_size=6).map(tuple),
    st.lists(TURN, min_size=1, max_size=4).map(lambda turns: (turns * 1000)[:1000]),  # 1,000 turns
)
QUESTION = st.one_of(TEXT, ANYTHING)

# What the Gradio app gets from a client (JSON, parsed) and hands to `chat(message, history)`.
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=10,
)
G_CONTENT = st.one_of(
    TEXT,
    st.lists(st.one_of(st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}), JSON), max_size=3),
    st.fixed_dictionaries({"type": st.just("text"), "text": st.one_of(TEXT, JSON)}),
    st.fixed_dictionaries({"type": st.just("file"), "file": st.fixed_dictionaries({"path": TEXT})}),
    JSON,
)
G_MESSAGE = st.fixed_dictionaries(
    {"role": st.one_of(st.sampled_from(["user", "assistant", "system"]), JSON), "content": G_CONTENT},
    optional={"metadata": st.one_of(JSON, st.fixed_dictionaries({"title": TEXT, "status": st.just("done")})),
              "options": JSON},
)
G_HISTORY = st.one_of(
    st.none(),
    st.lists(G_MESSAGE, max_size=10),
    st.lists(G_MESSAGE, min_size=1, max_size=3).map(lambda ms: (ms * 500)[:1000]),
    JSON,
)
G_INPUT = st.one_of(TEXT, st.fixed_dictionaries({"text": st.one_of(TEXT, JSON), "files": st.lists(JSON, max_size=2)}), JSON)

# The large inputs: 200,000 characters, 1,000 long turns (each costs up to a second or two here).
BIG_TEXT = st.tuples(st.one_of(WORDS, st.text(ANY_CHAR, min_size=1, max_size=10)), st.sampled_from([20_000, 200_000])).map(
    lambda t: ((t[0] + " ") * t[1])[: t[1]]
)
BIG_HISTORY = st.tuples(st.one_of(BIG_TEXT, TEXT), st.sampled_from(["user", "assistant"])).map(
    lambda t: [{"role": t[1] if i % 2 else "user", "content": t[0]} for i in range(1000)]
)

# ------------------------------------------------------------------------------ the property

STATS: dict[str, list[float]] = {}  # kind -> invoke latencies (ms)
SLOWEST: dict[str, tuple[float, str]] = {}  # kind -> (ms, the request, summarised)
EMPTY_ANSWERS: list[str] = []  # 'answer' replies with no text (test_an_answer_has_text): reported and failed


def shape(value, depth: int = 0) -> str:
    """A short description of a request: types and sizes, the start of long strings."""
    if isinstance(value, str):
        return repr(value[:30]) + (f"...[{len(value):,} chars]" if len(value) > 30 else "")
    if isinstance(value, dict) and depth < 2:
        return "{" + ", ".join(f"{k!r}: {shape(v, depth + 1)}" for k, v in list(value.items())[:3]) + "}"
    if isinstance(value, (list, tuple)) and depth < 2:
        return f"{type(value).__name__}[{len(value)}]({shape(value[0], depth + 1) if value else ''})"
    return type(value).__name__


def check(answer, kind: str, started: float, request) -> Answer:
    ms = (time.perf_counter() - started) * 1000
    STATS.setdefault(kind, []).append(ms)
    if ms > SLOWEST.get(kind, (0.0, ""))[0]:
        SLOWEST[kind] = (ms, shape(request))
    assert isinstance(answer, Answer), type(answer)
    assert answer.behavior in BEHAVIOURS, answer.behavior
    assert isinstance(answer.question, str) and isinstance(answer.answer, str)
    if answer.behavior == "answer" and not answer.answer.strip():
        EMPTY_ANSWERS.append(answer.question)
    assert answer.answer.strip()
    assert answer.behavior != "answer" or answer.citations  # every answer is quoted and cited
    assert all(isinstance(c, Citation) for c in answer.citations)
    assert (answer.behavior == "escalate") == isinstance(answer.escalation, Escalation)
    assert (answer.behavior == "refuse") == (answer.refusal is not None)
    text = json.dumps(answer.to_json(id="x"), ensure_ascii=False, allow_nan=False)
    text.encode("utf-8")  # no lone surrogate gets out
    return answer


def ask(assistant, request, kind: str) -> Answer:
    started = time.perf_counter()
    return check(assistant.invoke(request), kind, started, request)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@pytest.fixture(scope="module", autouse=True)
def report(request):
    STATS.clear()
    SLOWEST.clear()
    EMPTY_ANSWERS.clear()
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    lines = []
    for kind, ms in STATS.items():
        lines.append(f"  {kind:<16} {len(ms):>6} examples  p50 {percentile(ms, 50):7.1f} ms  p99 {percentile(ms, 99):7.1f} ms  max {max(ms):7.1f} ms")
    for run in ("ci", "fuzz"):
        ms = [m for kind, values in STATS.items() if kind.startswith("fuzz") == (run == "fuzz") for m in values]
        if ms:
            lines.append(f"  {run + ' (all)':<16} {len(ms):>6} examples  p50 {percentile(ms, 50):7.1f} ms  "
                         f"p99 {percentile(ms, 99):7.1f} ms  max {max(ms):7.1f} ms")
    lines += [f"  slowest {kind}: {ms:.0f} ms for {request}" for kind, (ms, request) in SLOWEST.items()]
    if EMPTY_ANSWERS:
        lines.append(f"  known bug: {len(EMPTY_ANSWERS)} 'answer' replies with no text, e.g. {sorted(set(EMPTY_ANSWERS))[:5]}")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter and capture and lines:
        with capture.global_and_fixture_disabled():  # shown without -s
            reporter.write_line("\nproperty tests, assistant.invoke latency (measured, not asserted):")
            for line in lines:
                reporter.write_line(line)


# ------------------------------------------------------------------------------ the normal suite


@settings(CI)
@given(question=QUESTION, history=HISTORY)
@example(question=None, history=None)
@example(question="\ud800", history=[{"role": "user", "content": "\ud800"}])
@example(question="my knee \udfff hurts\x00\x1b[31m", history=[{"role": "user", "content": "knee \ud800 pain"}] * 1000)
@example(question={"text": "knee pain"}, history={"role": "user", "content": "x"})
@example(question=42, history=3.5)
@example(question="How much pain is OK when running?", history=[{"role": Hostile(), "content": "knee"}, Hostile()])
def test_any_question_and_history(assistant, question, history):
    ask(assistant, {"question": question, "history": history}, "any")


@settings(CI)
@given(request=st.one_of(ANYTHING, st.dictionaries(st.one_of(st.text(max_size=10), st.sampled_from(["question", "history"])), ANYTHING, max_size=3)))
@example(request={})
@example(request={"history": [{"role": "user", "content": "my knee is hot and swollen"}]})
@example(request="knee pain")
def test_any_request(assistant, request):
    """The Runnable's input itself: a dict without the keys, a plain string, anything."""
    ask(assistant, request, "request")


@settings(CI)
@given(message=G_INPUT, history=G_HISTORY)
@example(message={"text": "Which exercises help runner's knee?", "files": []},
         history=[{"role": "user", "content": [{"type": "text", "text": "my knee hurts"}]},
                  {"role": "assistant", "content": "<div class=\"knee-answer\"><p>Rest [1]</p></div>", "metadata": None}])
def test_gradio_payload_raw(assistant, message, history):
    """What a Gradio client sends, passed to the assistant as it came."""
    ask(assistant, {"question": message, "history": history}, "gradio-raw")


@settings(CI)
@given(message=G_INPUT, history=G_HISTORY)
def test_gradio_payload_through_app(assistant, message, history):
    """What a Gradio client sends, as the app's chat function hands it to the assistant."""
    import ui

    question = ui.message_text(message)[: ui.MAX_MESSAGE_CHARS]
    turns = ui.history_for_assistant(history)
    ask(assistant, {"question": question, "history": turns}, "gradio-app")


@settings(CI, max_examples=4)
@given(question=st.one_of(BIG_TEXT, TEXT), history=st.one_of(BIG_HISTORY, st.none()))
@example(question="a" * 200_000, history=None)
@example(question=("knee pain \ud800\x00 " * 20_000), history=[{"role": "user", "content": "\udfff" * 200_000}] * 1000)
def test_large_inputs(assistant, question, history):
    ask(assistant, {"question": question, "history": history}, "large")


def test_an_answer_has_text(assistant):
    """Found by the fuzz run: the composer answered "marathon marathon" with no sentence at all;
    it abstains now."""
    answer = assistant.invoke({"question": "marathon marathon", "history": []})
    assert answer.behavior != "answer" or (answer.answer.strip() and answer.citations), answer


# ------------------------------------------------------------------------------ the long run

def through_app(message, history) -> dict:
    import ui

    return {"question": ui.message_text(message)[: ui.MAX_MESSAGE_CHARS], "history": ui.history_for_assistant(history)}


FUZZ_REQUEST = st.one_of(
    st.tuples(st.just("any"), st.fixed_dictionaries({"question": QUESTION, "history": HISTORY})),
    st.tuples(st.just("request"), ANYTHING),
    st.tuples(st.just("gradio-raw"), st.fixed_dictionaries({"question": G_INPUT, "history": G_HISTORY})),
    st.tuples(st.just("gradio-app"), st.builds(through_app, G_INPUT, G_HISTORY)),
)
# One request in 200 is a large one (200,000 or 20,000 characters, 1,000 turns). (137: Hypothesis
# draws the ends of a range, 0 and 199, far more often than 1 in 200.)
FUZZ_ANY = st.integers(0, 199).flatmap(
    lambda k: st.tuples(st.just("large"), st.fixed_dictionaries({"question": BIG_TEXT, "history": st.one_of(BIG_HISTORY, HISTORY)}))
    if k == 137 else FUZZ_REQUEST
)


@pytest.fixture(scope="module")
def fuzz_selected(request):
    """The long run only when asked for (`make fuzz`, `pytest -m fuzz`): `make test` runs every test."""
    if not re.search(r"(?<!not )\bfuzz\b", request.config.option.markexpr or ""):
        pytest.skip("a long run: `make fuzz` or `pytest -m fuzz`")


@pytest.mark.fuzz
@pytest.mark.slow
@settings(FUZZ)
@given(kind_request=FUZZ_ANY)
def test_fuzz_any_input(fuzz_selected, assistant, kind_request):
    """20,000 random requests of every kind above. p99 is printed (at the end of the run), not asserted."""
    kind, request = kind_request
    ask(assistant, request, f"fuzz-{kind}")


# ------------------------------------------------------------------------------ knee ask --batch

BAD_LINES = [
    ('{"id": "good1", "question": "Which exercises help runner\'s knee?"}', "answer"),
    ('{"id": "cut", "question": ', "not valid JSON"),
    ("not json at all", "not valid JSON"),
    ('{"id": "number", "question": 42}', '"question" string'),
    ('{"id": "null", "question": null}', '"question" string'),
    ('{"id": "object", "question": {"text": "knee pain"}}', '"question" string'),
    ('{"id": "list", "question": ["knee"]}', '"question" string'),
    ('[1, 2, 3]', '"question" string'),
    ('"just a string"', '"question" string'),
    ('{"id": "history-int", "question": "knee pain?", "history": 5}', '"history" must be'),
    ("1" * 5000, "not valid JSON"),  # more digits than Python converts
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),  # nested past the recursion limit
    ('{"id": "surrogate", "question": "my knee \\ud800 hurts when I run"}', "answer"),
    ('{"id": "surrogate-history", "question": "does it go away?", "history": [{"role": "user", "content": "runner\'s knee \\udfff"}]}', "answer"),
    ('{"id": "\\ud800", "question": "knee pain when running"}', "answer"),
    ('{"id": "good2", "question": "How much pain is OK when running?"}', "answer"),
]


def test_batch_reports_bad_lines_and_goes_on(corpus_db, tmp_path):
    batch = tmp_path / "bad.jsonl"
    batch.write_text("\n".join(line for line, _ in BAD_LINES) + "\n", encoding="utf-8")
    result = run_knee("ask", "--batch", str(batch), "--json", "--db", str(corpus_db))
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 1, result.stderr[-3000:]  # 1: some lines were bad
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == len(BAD_LINES), result.stdout
    for n, (record, (line, expected)) in enumerate(zip(records, BAD_LINES), start=1):
        if expected == "answer":
            assert record["behavior"] in BEHAVIOURS and "error" not in record, (n, record)
        else:
            assert record["error"].startswith(f"line {n}: ") and expected in record["error"], (n, record)
            assert f"knee ask: line {n}: " in result.stderr
    assert records[-1]["id"] == "good2" and records[-1]["behavior"] == "answer"
    assert records[-2]["id"] == "\ud800"  # the id comes back as it was sent
    assert "\ud800" not in records[-4]["question"]


def test_batch_from_stdin_text_output(corpus_db):
    """`--batch -` without --json: lines that are not UTF-8, lone surrogates, and good lines."""
    data = "\n".join(line for line, _ in BAD_LINES).encode("utf-8") + b'\n\xff\xfe{"id": 1}\n{"id": "last", "question": "Do insoles help?"}\n'
    result = subprocess.run([*KNEE, "ask", "--batch", "-", "--db", str(corpus_db)], input=data, capture_output=True,
                            timeout=600, cwd=REPO_ROOT)
    stderr = result.stderr.decode("utf-8", errors="replace")
    assert "Traceback" not in stderr, stderr[-3000:]
    assert result.returncode == 1, stderr[-3000:]
    out = result.stdout.decode("utf-8")  # strict: everything written is UTF-8
    headers = [line for line in out.splitlines() if line.startswith("# ")]
    assert len(headers) == len(BAD_LINES) + 2, out[-3000:]
    assert headers[-1] == "# last: Do insoles help?"
    assert f"knee ask: line {len(BAD_LINES) + 1}: not valid JSON" in stderr
