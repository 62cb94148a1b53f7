"""`knee ask` and `knee search`: the assistant from the command line."""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Iterator

from assistant.pipeline import load_assistant
from knee.errors import CliError
from knee.config import Settings
from knee.models import STANDING_ADVICE, Answer

_LEVEL_BANNER = {"emergency": "!!! EMERGENCY !!!", "urgent": "!! URGENT: SEE A DOCTOR TODAY !!"}


def format_answer(answer: Answer) -> str:
    lines = []
    if answer.escalation:
        lines += [_LEVEL_BANNER[answer.escalation.level], ""]
    if answer.check_in:
        lines += [answer.check_in, ""]
    lines.append(answer.answer.replace("**", ""))
    if answer.citations:
        lines += ["", "Sources:"]
        for c in answer.citations:
            lines.append(f"  [{c.n}] {c.title} - {c.section} ({c.source})")
    if answer.behavior == "answer":
        lines += ["", STANDING_ADVICE]
    return "\n".join(lines)


def _read_batch(stream: IO[str]) -> Iterator[tuple[int, dict | None, str | None]]:
    for n, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, a 5,000-digit number, [[[[...
            reason = getattr(exc, "msg", None) or ("nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(":")[0])
            yield n, None, f"line {n}: not valid JSON ({reason})"
            continue
        if not isinstance(item, dict) or not isinstance(item.get("question"), str):
            yield n, None, f'line {n}: expected an object with a "question" string'
            continue
        history = item.get("history")
        if history is not None and not isinstance(history, list):
            yield n, item, f'line {n}: "history" must be a list of {{"role", "content"}} objects'
            continue
        yield n, item, None


def _json_line(record: dict) -> str:
    line = json.dumps(record, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from the input ("\ud800" in an id): written as its escape
        line = json.dumps(record)
    return line + "\n"


def _printable(text: str) -> str:
    return text.encode("utf-8", errors="replace").decode("utf-8")  # lone surrogates as "?"


def ask(args, settings: Settings) -> int:
    if args.batch and args.question:
        raise CliError("give either a question or --batch FILE, not both")
    if not args.batch and args.question is None:
        raise CliError('give a question, e.g. knee ask "Which exercises help runner\'s knee?"')
    started = time.perf_counter()
    assistant = load_assistant(settings)
    load_ms = (time.perf_counter() - started) * 1000

    if not args.batch:
        answer = assistant.invoke({"question": args.question, "history": []})
        if args.json:
            record = answer.to_json()
            record["timings_ms"]["load"] = round(load_ms, 1)
            sys.stdout.write(_json_line(record))
        else:
            print(format_answer(answer))
        return 0

    if args.batch == "-":
        stream = sys.stdin
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")  # bytes that are not UTF-8: as for a file
    else:
        try:
            stream = open(args.batch, encoding="utf-8", errors="replace")
        except OSError as exc:
            raise CliError(f"cannot read {args.batch}: {exc.strerror}") from None
    failures = 0
    with stream:
        for n, item, problem in _read_batch(stream):
            if problem:
                failures += 1
                print(f"knee ask: {problem}", file=sys.stderr)
                record = {"id": (item or {}).get("id", n), "error": problem}
            else:
                answer = assistant.invoke({"question": item["question"], "history": item.get("history") or []})
                record = answer.to_json(id=item.get("id", n))
            if args.json:
                sys.stdout.write(_json_line(record))
            else:
                print(_printable(f"# {record.get('id')}: {item['question'] if item else ''}"))
                print(format_answer(answer) if not problem else problem)
                print()
            sys.stdout.flush()
    return 1 if failures else 0


def search(args, settings: Settings) -> int:
    if args.k < 1 or args.k > 100:
        raise CliError("--k must be between 1 and 100")
    assistant = load_assistant(settings)
    if args.topic and args.topic not in assistant.index.topics():
        raise CliError(f"unknown topic {args.topic!r}; topics in the index: {', '.join(assistant.index.topics())}")
    try:
        passages = assistant.lookup(args.query, k=args.k, audience=args.audience, topic=args.topic)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        for rank, p in enumerate(passages, start=1):
            sys.stdout.write(json.dumps({"rank": rank, **p.to_json()}, ensure_ascii=False) + "\n")
        return 0
    if not passages:
        print("no passages match")
    for rank, p in enumerate(passages, start=1):
        cosine = "" if p.dense is None else f", cosine {p.dense:.3f}"
        print(f"{rank}. {p.title} - {p.section_label}  [score {p.score:.4f}{cosine}]")
        print(f"   source: {p.source}  audience: {p.audience}  topics: {', '.join(p.topics) or '-'}")
        body = p.text.split("\n\n", 1)[-1].replace("\n", " ")
        print(f"   {body[:300]}{'...' if len(body) > 300 else ''}")
        if p.questions:
            print(f"   answers: {'; '.join(p.questions[:4])}{' ...' if len(p.questions) > 4 else ''}")
        print()
    return 0
