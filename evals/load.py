"""`make load`: many people at once against a real `knee serve`, measured as a user would.

    python -m evals.load [--users 10 25 50 100] [--questions 10] [--think S] [--burst 80]
                         [--client http|gradio_client] [--servers N] [--out FILE]

Starts `knee serve` on 127.0.0.1 and a free port with the repository's index (KNEE_DB as usual;
`--url` uses a server already running, loopback only), then for each number of concurrent users:
each user has its own session (so its own chat) and asks `--questions` questions through the
app's `chat` endpoint, back to back or `--think` seconds apart, about 1 in 10 a red flag. The
questions are the gold's distinct single-turn questions (dev and test), each asked once per level
while the pool lasts (about 760 ordinary, 290 red flags), and each level gets a fresh `knee serve`
(when this started it): the server keeps the embeddings of texts it has seen, so repeats would
measure its memory rather than the cost of new messages. `--servers N` starts N app processes on
the one index and sends user i to process i mod N, as a load balancer with sticky sessions would
(README, "Several app processes"); memory and server CPU are then summed over the processes.

Two clients speak to the app:
- `http` (default): Gradio's documented HTTP API (POST /gradio_api/call/chat with the user's
  session, then the reply's event stream), all users in one asyncio loop (httpx). A request
  costs the load generator ~1-2 ms of CPU.
- `gradio_client`: one `gradio_client.Client` per user in a thread. It polls in two threads per
  request and costs ~100 ms of CPU per request here: on a 2-core machine that runs beside the
  server, it measures itself more than the server (kept to cross-check the numbers). Measured per level: errors
(exceptions, timeouts, "queue is full"), end-to-end latency p50/p95/p99 (submit to the complete
streamed reply), throughput (answers/s), the server's resident memory before and after, and
whether every red flag came back as an escalation (the reply carries the banner). Then a burst:
`--burst` users send one red flag each at the same instant (none may be rejected).

Bounded: at most 200 users and 50 questions each, `--level-seconds` per level (users stop asking
when it is over), `--timeout` per request. Writes JSON (default runs/load-<time>.json) and prints a
table. The goal at 50 users on the 2-core reference machine: 0 errors, p95 <= 1.5 s, every red flag
escalated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import knee  # noqa: F401  (telemetry off)
from evals.serving import REPO_ROOT, ServeProcess, rss_mb

GOLD = REPO_ROOT / "evals" / "gold"
# Warm-up questions: not in the pools, so no measured question was asked before.
WARM_UP = ["hello, what can you help with?", "what is the kneecap made of?"]
RED_FLAG_EVERY = 10  # one request in ten is a red flag
BANNER = 'class="knee-banner'
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _pools() -> dict[str, list[str]]:
    """Every distinct single-turn question of the gold (dev and test: asked, never tuned on here):
    red flags apart. The server keeps the embeddings of texts it has seen (SharedVectors), so a
    question asked twice costs less the second time; with distinct questions, and a fresh server
    for each level, the load measures what new messages cost."""
    import random

    from evals.runner import load_gold

    items, _ = load_gold(sorted(GOLD.glob("*/*.jsonl")))  # invalid lines are left out; `knee eval` reports them
    pools: dict[str, list[str]] = {"ordinary": [], "red": []}
    for item in items:
        if not item.history:
            pools["red" if item.behavior == "escalate" else "ordinary"].append(item.question)
    for name, questions in pools.items():
        pools[name] = sorted(set(questions) - set(WARM_UP))
        random.Random(7).shuffle(pools[name])  # a fixed order: the same run, run after run
    return pools


@dataclass
class Sample:
    user: int
    red_flag: bool
    seconds: float | None = None  # end to end, None on error
    first: float | None = None  # to the first streamed words (http client)
    error: str | None = None
    escalated: bool | None = None


@dataclass
class Level:
    name: str
    users: int
    requests: int = 0
    errors: int = 0
    rejected: int = 0  # "queue is full"
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    throughput: float = 0.0  # complete answers per second of the level's wall time
    wall_seconds: float = 0.0
    red_flags: int = 0
    red_flags_escalated: int = 0
    red_flag_p95: float | None = None
    first_words_p50: float | None = None  # submit to the first streamed chunk
    first_words_p95: float | None = None
    rss_before_mb: float | None = None
    rss_after_mb: float | None = None
    client_cpu_seconds: float | None = None  # what the load generator itself used
    server_cpu_seconds: float | None = None  # what the server process used during the level
    loadavg_after: float | None = None  # the machine's 1-minute load (others' work shows here too)
    error_examples: list[str] = field(default_factory=list)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(q * (len(values) - 1))))
    return values[k]


def _question(pools: dict[str, list[str]], user: int, j: int, questions: int, burst: bool) -> tuple[str, bool]:
    """The j-th question of a user: deterministic; one in RED_FLAG_EVERY a red flag, at a different
    turn for each user, so red flags arrive spread over the run (a burst is measured apart)."""
    n = user * questions + j
    red = burst or (user + j) % RED_FLAG_EVERY == 0
    pool = pools["red"] if red else pools["ordinary"]
    return pool[n % len(pool)], red  # distinct within a level while the pool lasts


# -- client: Gradio's HTTP API, asyncio -------------------------------------------------------


async def _http_users(urls: list[str], users: int, count: int, questions: int, think: float, pools, timeout: float,
                      deadline: float, burst: bool) -> tuple[list[Sample], float]:
    import uuid

    import httpx

    samples: list[Sample] = []
    limits = httpx.Limits(max_connections=2 * users + 10, max_keepalive_connections=2 * users + 10)
    async with contextlib.AsyncExitStack() as stack:
        # One client per app process; user i always talks to process i mod N, as a load balancer
        # with session affinity sends a chat to one process (its earlier turns are read there).
        https = [await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(timeout), limits=limits))
                 for url in urls]
        start = asyncio.Event()

        async def ask(http, session: str, question: str, sample: Sample, t0: float) -> str:
            r = await http.post("/gradio_api/call/chat", json={"data": [question], "session_hash": session})
            if r.status_code != 200:
                raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
            event_id = r.json()["event_id"]
            event, last = None, None
            async with http.stream("GET", f"/gradio_api/call/chat/{event_id}") as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data = line[5:].strip()
                        if sample.first is None and event in ("generating", "complete"):
                            sample.first = time.perf_counter() - t0
                        if event == "error":
                            raise RuntimeError(f"error event: {data[:200]}")
                        if event == "complete":
                            last = json.loads(data)
                            break
            if not last or not isinstance(last[0], str):
                raise ValueError(f"no complete reply: {last!r}"[:200])
            return last[0]

        async def user(i: int) -> None:
            session = uuid.uuid4().hex[:12]
            await start.wait()
            for j in range(count):
                if j and (burst or time.monotonic() > deadline):
                    break
                if j and think:
                    await asyncio.sleep(think)
                question, red = _question(pools, i, j, questions, burst)
                s = Sample(user=i, red_flag=red)
                t0 = time.perf_counter()
                try:
                    reply = await asyncio.wait_for(ask(https[i % len(https)], session, question, s, t0), timeout)
                    s.seconds = time.perf_counter() - t0
                    s.escalated = BANNER in reply
                except Exception as exc:  # counted, never fatal
                    s.error = f"{type(exc).__name__}: {exc}"[:300]
                samples.append(s)

        tasks = [asyncio.create_task(user(i)) for i in range(users)]
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        start.set()
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - started
    return samples, wall


# -- client: gradio_client, a thread per user ---------------------------------------------------


def _gradio_client_users(urls: list[str], users: int, count: int, questions: int, think: float, pools, timeout: float,
                         deadline: float, burst: bool) -> tuple[list[Sample], float]:
    from gradio_client import Client

    with ThreadPoolExecutor(min(16, users)) as pool:
        clients = list(pool.map(lambda i: Client(urls[i % len(urls)], verbose=False, analytics_enabled=False, download_files=False),
                                range(users)))
    samples: list[Sample] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(users + 1)

    def user(i: int) -> None:
        start_gate.wait()
        for j in range(count):
            if j and (burst or time.monotonic() > deadline):
                break
            if j and think:
                time.sleep(think)
            question, red = _question(pools, i, j, questions, burst)
            s = Sample(user=i, red_flag=red)
            t0 = time.perf_counter()
            try:
                reply = clients[i].submit(question, api_name="/chat").result(timeout=timeout)
                if not isinstance(reply, str) or not reply.strip():
                    raise ValueError(f"empty reply: {reply!r}")
                s.seconds = time.perf_counter() - t0
                s.escalated = BANNER in reply
            except Exception as exc:  # counted, never fatal
                s.error = f"{type(exc).__name__}: {exc}"[:300]
            with lock:
                samples.append(s)

    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(users)]
    for t in threads:
        t.start()
    start_gate.wait()
    started = time.perf_counter()
    for t in threads:
        t.join(timeout=max(1.0, deadline - time.monotonic() + timeout + 5))
    wall = time.perf_counter() - started
    for c in clients:
        try:
            c.close()
        except Exception:
            pass
    return samples, wall


def run_level(urls: list[str], users: int, questions: int, pools: dict[str, list[str]], timeout: float,
              level_seconds: float, pids: list[int] | None, name: str | None = None, burst: bool = False,
              think: float = 0.0, client: str = "http") -> Level:
    """`users` users asking at once, user i of app process i mod N (`urls`, `pids`: one each; a
    process's figures are summed); with `burst`, each sends one red flag at the same instant."""
    pids = pids or []
    level = Level(name=name or f"{users} users", users=users)
    level.rss_before_mb = _sum(rss_mb(pid) for pid in pids)
    count = 1 if burst else questions
    cpu0 = os.times()
    server_cpu0 = _sum(_proc_cpu(pid) for pid in pids)
    deadline = time.monotonic() + level_seconds
    if client == "gradio_client":
        samples, level.wall_seconds = _gradio_client_users(urls, users, count, questions, think, pools, timeout, deadline, burst)
    else:
        samples, level.wall_seconds = asyncio.run(_http_users(urls, users, count, questions, think, pools, timeout, deadline, burst))
    cpu1 = os.times()
    level.client_cpu_seconds = round(cpu1.user + cpu1.system - cpu0.user - cpu0.system, 2)
    server_cpu1 = _sum(_proc_cpu(pid) for pid in pids)
    if server_cpu0 is not None and server_cpu1 is not None:
        level.server_cpu_seconds = round(server_cpu1 - server_cpu0, 2)
    level.loadavg_after = round(os.getloadavg()[0], 2)
    level.rss_after_mb = _sum(rss_mb(pid) for pid in pids)

    ok = [s.seconds for s in samples if s.seconds is not None]
    level.requests = len(samples)
    level.errors = sum(s.error is not None for s in samples)
    level.rejected = sum(bool(s.error and "queue is full" in s.error.lower()) for s in samples)
    level.error_examples = sorted({s.error for s in samples if s.error})[:5]
    level.p50, level.p95, level.p99 = _pct(ok, 0.50), _pct(ok, 0.95), _pct(ok, 0.99)
    level.max = max(ok) if ok else None
    level.throughput = len(ok) / level.wall_seconds if level.wall_seconds else 0.0
    red = [s for s in samples if s.red_flag]
    level.red_flags = len(red)
    level.red_flags_escalated = sum(bool(s.escalated) for s in red)
    level.red_flag_p95 = _pct([s.seconds for s in red if s.seconds is not None], 0.95)
    first = [s.first for s in samples if s.first is not None and s.seconds is not None]
    level.first_words_p50, level.first_words_p95 = _pct(first, 0.50), _pct(first, 0.95)
    return level


def _sum(values) -> float | None:
    """The sum, or None when there is nothing or any value is unknown."""
    values = list(values)
    return None if not values or any(v is None for v in values) else sum(values)


def _proc_cpu(pid: int | None) -> float | None:
    """CPU seconds (user + system) a process has used (Linux /proc)."""
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _fmt(v, unit: str = "", digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}{unit}"


def table(levels: list[Level]) -> str:
    head = ("level", "requests", "errors", "rejected", "p50", "p95", "p99", "first words p95", "answers/s", "red flags escalated",
            "red-flag p95", "RSS before", "RSS after", "server CPU", "client CPU", "load avg")
    rows = [head]
    for lv in levels:
        rows.append((lv.name, str(lv.requests), str(lv.errors), str(lv.rejected), _fmt(lv.p50, " s"), _fmt(lv.p95, " s"),
                     _fmt(lv.p99, " s"), _fmt(lv.first_words_p95, " s"), _fmt(lv.throughput, "", 1), f"{lv.red_flags_escalated}/{lv.red_flags}",
                     _fmt(lv.red_flag_p95, " s"), _fmt(lv.rss_before_mb, " MB", 0), _fmt(lv.rss_after_mb, " MB", 0),
                     _fmt(lv.server_cpu_seconds, " s", 1), _fmt(lv.client_cpu_seconds, " s", 1),
                     _fmt(lv.loadavg_after, "", 1)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evals.load", description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, nargs="+", default=[10, 25, 50, 100], help="concurrent users per level")
    p.add_argument("--questions", type=int, default=10, help="questions per user and level (default 10)")
    p.add_argument("--burst", type=int, default=80, help="simultaneous red flags after the levels (0: none)")
    p.add_argument("--think", type=float, default=0.0, help="seconds a user waits between questions (default 0: back to back)")
    p.add_argument("--client", choices=["http", "gradio_client"], default="http", help="how users talk to the app (default http)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request before it counts as an error")
    p.add_argument("--level-seconds", type=float, default=120.0, help="time bound per level")
    p.add_argument("--url", nargs="+", help="apps already running (loopback only) instead of starting `knee serve`")
    p.add_argument("--servers", type=int, default=1,
                   help="app processes to start (1-4, default 1), each user talking to one of them (a load balancer's session affinity)")
    p.add_argument("--out", help="JSON report (default runs/load-<time>.json)")
    p.add_argument("--goal-users", type=int, default=50, help="the level the goal is checked at (default 50)")
    p.add_argument("--check", action="store_true", help="exit 1 when the goal is not met")
    return p


def goal_failures(levels: list[Level], goal_users: int) -> list[str]:
    """Why the goal is not met (none: met). A run without the goal's level has not shown it."""
    out = []
    if not any(lv.name == f"{goal_users} users" for lv in levels):
        out.append(f"the {goal_users}-user level was not run")
    for lv in levels:
        if lv.name == f"{goal_users} users":
            if lv.errors:
                out.append(f"{lv.name}: {lv.errors} errors")
            if lv.p95 is None or lv.p95 > 1.5:
                out.append(f"{lv.name}: p95 {_fmt(lv.p95, ' s')} > 1.5 s")
        if lv.red_flags_escalated != lv.red_flags:
            out.append(f"{lv.name}: {lv.red_flags - lv.red_flags_escalated} red flag(s) not escalated")
        if lv.rejected:
            out.append(f"{lv.name}: {lv.rejected} rejected")
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    users = [u for u in args.users if 1 <= u <= 200]
    questions = max(1, min(50, args.questions))
    burst = max(0, min(200, args.burst))
    pools = _pools()
    servers: list[ServeProcess] = []
    n_servers = max(1, min(4, args.servers))

    def start_servers() -> tuple[list[str], list[int]]:
        servers[:] = [ServeProcess(logs=REPO_ROOT / "runs" / "load-logs").start() for _ in range(n_servers)]
        return [s.url for s in servers], [s.pid for s in servers]

    if args.url:
        if any(urlsplit(u).hostname not in LOOPBACK for u in args.url):
            print("evals.load: --url must be a loopback address (127.0.0.1, localhost)", file=sys.stderr)
            return 2
        urls, pids = [u.rstrip("/") for u in args.url], []
    else:
        print(f"starting knee serve on 127.0.0.1 ({n_servers} process{'es' if n_servers > 1 else ''}) ...", flush=True)
        urls, pids = start_servers()
    report: dict = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "url": urls[0] if len(urls) == 1 else urls,
        "app_processes": len(urls),
        "cpus": os.cpu_count(),
        "questions_per_user": questions,
        "think_seconds": args.think,
        "client": args.client,
        "red_flag_share": 1 / RED_FLAG_EVERY,
        "levels": [],
    }
    levels: list[Level] = []
    try:
        warm_up = {"ordinary": WARM_UP, "red": WARM_UP}
        think = max(0.0, min(60.0, args.think))
        for k, n in enumerate(users):
            if servers and k:
                # Fresh servers for each level: nothing a level asked is kept for the next.
                for server in servers:
                    server.stop()
                urls, pids = start_servers()
            # Warm up (first requests pay one-off costs), not measured: two users on each process.
            run_level(urls, 2 * len(urls), 2, warm_up, args.timeout, 30, None, name="warm-up", client=args.client)
            print(f"{n} concurrent users x {questions} questions ({args.client}, think {think:g} s) ...", flush=True)
            levels.append(run_level(urls, n, questions, pools, args.timeout, args.level_seconds, pids,
                                    think=think, client=args.client))
        if burst:
            print(f"burst: {burst} red flags at the same instant ...", flush=True)
            levels.append(run_level(urls, burst, 1, pools, args.timeout, args.level_seconds, pids,
                                    name=f"burst {burst} red flags", burst=True, client=args.client))
    finally:
        stops = [{"exit_code": server.stop(), "seconds": server.stop_seconds} for server in servers]
        if stops:
            report["server_stop"] = stops[0] if len(stops) == 1 else stops
    report["levels"] = [asdict(lv) for lv in levels]
    failures = goal_failures(levels, args.goal_users)
    report["goal"] = {"users": args.goal_users, "p95_max_s": 1.5, "met": not failures, "failures": failures}
    out = Path(args.out) if args.out else REPO_ROOT / "runs" / f"load-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(table(levels))
    print()
    print(f"goal at {args.goal_users} users (0 errors, p95 <= 1.5 s, every red flag escalated, none rejected): "
          + ("met" if not failures else "NOT met: " + "; ".join(failures)))
    print(f"report: {out}")
    return 1 if (args.check and failures) else 0


if __name__ == "__main__":
    sys.exit(main())
