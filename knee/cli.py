"""`knee`: the one console command. Subcommands: ingest, ask, search, serve, eval, bench.

Each subcommand imports only what it needs, so `knee --help` is instant. Errors a user can cause
(bad paths, an empty index, an unreachable server) end with a one-line message and exit code 1;
usage errors with exit code 2; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import knee  # noqa: F401  (telemetry off before anything else is imported)


from knee.errors import CliError


def _settings(args):
    from knee.config import load_settings

    return load_settings().with_db(getattr(args, "db", None))


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------- ingest


def cmd_ingest(args) -> int:
    from ingest.pipeline import Ingestor, stale_files

    settings = _settings(args)
    paths = [Path(p) for p in args.paths] or [settings.corpus_dir]
    if args.if_stale:
        stale = stale_files(paths, settings)
        if not stale:
            if args.json:
                _print_json({"stale": 0})
            else:
                print(f"index is up to date ({settings.db_dir})")
            return 0
        print(f"{len(stale)} file(s) new or changed since the last ingest", file=sys.stderr)
    report = Ingestor(settings).run(paths, full=args.full, progress=sys.stderr.isatty() and not args.json)
    if args.json:
        _print_json(report.to_json())
    else:
        print(report.summary())
    for error in report.errors:
        print(f"knee ingest: {error}", file=sys.stderr)
    return 1 if report.errors else 0


# --------------------------------------------------------------------------- the rest


def cmd_ask(args) -> int:
    from assistant.cli import ask

    return ask(args, _settings(args))


def cmd_search(args) -> int:
    from assistant.cli import search

    return search(args, _settings(args))


def cmd_serve(args) -> int:
    import ui

    return ui.serve(_settings(args), host=args.host, port=args.port)


def cmd_eval(args) -> int:
    if getattr(args, "tune", False):
        from evals.tune import main as tune_main

        return tune_main(args, _settings(args))
    from evals.runner import main as eval_main

    return eval_main(args, _settings(args))


def cmd_triage(args) -> int:
    from assistant.triage_cli import main as triage_main

    return triage_main(args, _settings(args))


def cmd_adapter(args) -> int:
    from assistant.train_adapter import main as adapter_main

    return adapter_main(args, _settings(args))


def cmd_bench(args) -> int:
    from evals.bench import main as bench_main

    return bench_main(args, _settings(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="knee",
        description="Runner's Knee Assistant: answers about runner's knee from a curated, cited knowledge base.",
    )
    parser.add_argument("--version", action="version", version=f"knee {knee.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add_db(p):
        p.add_argument("--db", metavar="DIR", help="store directory (default: $KNEE_DB or .knee/ in the repository)")

    p = sub.add_parser("ingest", help="index articles (default: corpus/) into the store, incrementally")
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (.md, .txt, .html)")
    add_db(p)
    p.add_argument("--full", action="store_true", help="also remove articles that are no longer in the input")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--if-stale", action="store_true", help="do nothing when no file changed since the last ingest")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("ask", help="ask a question; prints a cited answer (or an escalation)")
    p.add_argument("question", nargs="?", help="the question (omit with --batch)")
    add_db(p)
    p.add_argument("--json", action="store_true", help="print the answer object as JSON")
    p.add_argument("--batch", metavar="FILE.jsonl", help='questions, one JSON object a line: {"id", "question", "history"?}; "-" for stdin')
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("search", help="clinician lookup: ranked passages with title, section, source and score")
    p.add_argument("query")
    add_db(p)
    p.add_argument("--k", type=int, default=8, help="number of passages (default 8)")
    p.add_argument("--audience", choices=["patient", "clinician", "both"], help="only passages for this audience")
    p.add_argument("--topic", help="only passages with this topic")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("serve", help="run the web app (patient chat and clinician lookup)")
    add_db(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("eval", help="run the gold questions, score them and write a report")
    add_db(p)
    p.add_argument("--gold", nargs="+", metavar="FILE", help="gold JSONL files, scored as one split \"custom\" (default: the dev, test and real splits)")
    p.add_argument("--split", nargs="+", choices=["dev", "test", "real"], help="only these splits (default: all three)")
    p.add_argument("--stats", action="store_true", help="print the gold's counts by split, behaviour, red-flag row and tag; run nothing")
    p.add_argument("--tune", action="store_true", help="set the answering constants on the dev split by a small grid search (evals/tune.py)")
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/<time>)")
    p.add_argument("--compare", metavar="RUN_DIR", help="an earlier run to compare with, item by item")
    p.add_argument("--no-baselines", action="store_true", help="skip the BM25-only and textbook-RAG baselines")
    p.add_argument("--gate", action="store_true", help="exit 1 when a metric is below its threshold (evals/thresholds.toml)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("triage", help="the red-flag table, its learned detector and the crisis screen: train, screen, check, explain")
    tsub = p.add_subparsers(dest="triage_command", metavar="ACTION")
    tsub.required = True
    t = tsub.add_parser("train", help="fit the learned detector (assistant/data/triage_model.npz) and print its cross-validated report")
    t.add_argument("--check", action="store_true", help="train into a temporary file and say whether it equals the committed model")
    t = tsub.add_parser("screen", help="build the crisis screen (assistant/data/crisis_screen.npz) from assistant/crisis_phrasings.yaml and set its bars on the dev split")
    t = tsub.add_parser("check", help="check the red-flag table: every example raises its row at its level, no look-alike raises anything")
    t.add_argument("--rules-only", action="store_true", help="without the learned detector")
    t = tsub.add_parser("explain", help="what triage makes of a message: concepts, rows, the model's view")
    t.add_argument("message")
    t.add_argument("--history", nargs="*", default=[], metavar="TURN", help="earlier user turns, oldest first")
    p.set_defaults(func=cmd_triage)

    p = sub.add_parser("adapter", help="the dense search's query adapter: fit it on the question index and the dev split")
    asub = p.add_subparsers(dest="adapter_command", metavar="ACTION")
    asub.required = True
    a = asub.add_parser("train", help="fit assistant/data/query_adapter.npz and print its held-out report")
    add_db(a)
    a.add_argument("--check", action="store_true", help="refit with the committed report's lambda into a temporary file and say whether it matches the committed adapter")
    p.set_defaults(func=cmd_adapter)

    p = sub.add_parser("bench", help="benchmark ingest, cold start, memory and retrieval at 166, 20k and 100k chunks")
    p.add_argument("--out", metavar="FILE", help="write the results as JSON here (default: runs/bench-<time>.json)")
    p.add_argument("--scales", default="20000,100000", metavar="N,N", help="sizes of the scaled stores in chunks (default 20000,100000; '' for none)")
    p.add_argument("--questions", type=int, default=200, help="warm questions to time (default 200)")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from knee.config import ConfigError
    from knee.store import StoreError

    try:
        return args.func(args) or 0
    except (CliError, ConfigError, StoreError) as exc:
        print(f"knee {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"knee {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`knee search ... | head`): nothing more to say, and no traceback.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
