"""A clean stop, every time: `knee serve` with requests in flight and queued, stopped by Ctrl-C
(SIGINT) or SIGTERM, must exit with code 0 within 5 s, with no traceback. Repeated (`make fuzz`).

    python -m evals.stoploop [--runs 20] [--requests 20] [--deadline 5]

Each run starts `knee serve` on 127.0.0.1 and a free port (the repository's index, KNEE_DB as
usual), fires `--requests` concurrent chat requests through Gradio's HTTP API, sends the signal
(SIGINT and SIGTERM alternately) while they are in flight, and times the exit. Exit status 1 when
any run fails.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
import uuid

import knee  # noqa: F401  (telemetry off)
from evals.serving import ServeProcess

QUESTIONS = [
    "Which exercises help runner's knee?",
    "How much pain is OK when running?",
    "My calf is swollen and I'm short of breath",
    "How do I get back to running after runner's knee?",
]


def fire(url: str, n: int, started: threading.Event) -> list[threading.Thread]:
    """`n` chat requests at once, each in its own thread (the replies are not waited for)."""
    import httpx

    def one(i: int) -> None:
        try:
            with httpx.Client(base_url=url, timeout=20) as http:
                r = http.post("/gradio_api/call/chat", json={"data": [QUESTIONS[i % len(QUESTIONS)]], "session_hash": uuid.uuid4().hex[:12]})
                event_id = r.json()["event_id"]
                started.set()
                with http.stream("GET", f"/gradio_api/call/chat/{event_id}") as stream:
                    for _ in stream.iter_lines():
                        pass
        except Exception:  # the server going away mid-request is the point
            started.set()

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    return threads


def stop_with_requests_in_flight(requests: int = 20, sig: int = signal.SIGINT, deadline: float = 5.0,
                                 env: dict[str, str] | None = None, inherit_knee_env: bool = True) -> dict:
    """One run: start, fire, signal, time. The result says what happened."""
    app = ServeProcess(env=env, inherit_knee_env=inherit_knee_env).start()
    started = threading.Event()
    try:
        fire(app.url, requests, started)
        started.wait(10)
        time.sleep(0.1)  # some streaming, some computing, some still queued
        code = app.stop(sig, timeout=deadline + 10)
    finally:
        app.kill()
    err = app.stderr()
    ok = code == 0 and app.stop_seconds is not None and app.stop_seconds <= deadline and "Traceback" not in err
    return {
        "ok": ok,
        "signal": signal.Signals(sig).name,
        "exit_code": code,
        "seconds": None if app.stop_seconds is None else round(app.stop_seconds, 2),
        "stopped_line": "stopped" in app.stdout(),
        "traceback": "Traceback" in err,
        "stderr_tail": err[-400:] if not ok else "",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evals.stoploop", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--requests", type=int, default=20, help="concurrent requests in flight at the signal")
    p.add_argument("--deadline", type=float, default=5.0, help="seconds allowed from the signal to the exit")
    args = p.parse_args(argv)
    runs = max(1, min(200, args.runs))
    failures = 0
    times = []
    for i in range(runs):
        sig = signal.SIGINT if i % 2 == 0 else signal.SIGTERM
        r = stop_with_requests_in_flight(max(1, min(200, args.requests)), sig, args.deadline)
        times.append(r["seconds"] or float("inf"))
        failures += not r["ok"]
        print(f"run {i + 1:2d}/{runs}: {r['signal']:7s} exit {r['exit_code']} in {r['seconds']} s"
              + ("" if r["ok"] else f"  FAILED {r['stderr_tail']!r}"), flush=True)
    print(f"{runs - failures}/{runs} clean stops (exit 0 within {args.deadline:g} s, no traceback); "
          f"slowest {max(times):.2f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
