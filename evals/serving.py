"""A real `knee serve` in a subprocess, on 127.0.0.1 and a free port: started, waited for, measured
(resident memory) and stopped with a signal. Used by `make load` (evals/load.py), the stop loop of
`make fuzz` (evals/stoploop.py) and the serving tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MB (Linux /proc), None when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class ServeProcess:
    """`knee serve --host 127.0.0.1 --port P` with `env` over the current environment.

    with ServeProcess(env={"KNEE_DB": ...}) as app:   # started and ready
        app.url ...
    # stopped with SIGINT (Ctrl-C); app.returncode, app.stop_seconds
    """

    def __init__(self, env: dict[str, str] | None = None, port: int | None = None, logs: Path | None = None,
                 ready_timeout: float = 180.0, inherit_knee_env: bool = True):
        """`inherit_knee_env=False`: none of the caller's KNEE_* variables, only those in `env`."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base = {k: v for k, v in os.environ.items() if inherit_knee_env or not k.startswith("KNEE_")}
        self.env = {**base, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.logs = Path(logs) if logs else Path(tempfile.mkdtemp(prefix="knee-serve-"))
        self.logs.mkdir(parents=True, exist_ok=True)
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self.stop_seconds: float | None = None

    @property
    def out_path(self) -> Path:
        return self.logs / f"serve-{self.port}.out"

    @property
    def err_path(self) -> Path:
        return self.logs / f"serve-{self.port}.err"

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace") if self.err_path.exists() else ""

    def start(self) -> "ServeProcess":
        with self.out_path.open("w") as out, self.err_path.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "knee.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=REPO_ROOT, env=self.env, stdout=out, stderr=err,
            )
        deadline = time.time() + self.ready_timeout
        while "is running at" not in self.stdout():
            if self.proc.poll() is not None:
                raise RuntimeError(f"knee serve exited with {self.proc.returncode}:\n{self.stdout()}\n{self.stderr()}")
            if time.time() > deadline:
                self.kill()
                raise RuntimeError(f"knee serve did not start within {self.ready_timeout:.0f} s:\n{self.stdout()}\n{self.stderr()}")
            time.sleep(0.2)
        while True:
            try:
                with urllib.request.urlopen(self.url + "/gradio_api/info", timeout=2):
                    break
            except Exception:
                if time.time() > deadline:
                    self.kill()
                    raise RuntimeError(f"{self.url} did not answer")
                time.sleep(0.2)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_mb(self) -> float | None:
        return rss_mb(self.pid) if self.proc is not None and self.proc.poll() is None else None

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int | None:
        """Send `sig` (SIGINT is what Ctrl-C sends) and wait up to `timeout` s; kill it after that
        (returncode then stays None: it did not stop by itself)."""
        if self.proc is None or self.proc.poll() is not None:
            self.returncode = None if self.proc is None else self.proc.returncode
            return self.returncode
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.returncode = self.proc.wait(timeout=timeout)
            self.stop_seconds = time.monotonic() - started
        except subprocess.TimeoutExpired:
            self.kill()
            self.returncode = None
        return self.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "ServeProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- Gradio's HTTP API
#
# The calls a browser or `gradio_client` makes, spoken directly (httpx): for tests and tools that
# need what those clients do not offer (a history of one's own, a like, a session of one's own).


def api_call(url: str, api_name: str, data: list, session_hash: str | None = None, timeout: float = 30.0) -> list:
    """POST /gradio_api/call/<api_name> (Gradio's documented HTTP API), then read the event's
    stream to the end: the final output data. Raises RuntimeError on an error event."""
    import json

    import httpx

    body = {"data": data}
    if session_hash:
        body["session_hash"] = session_hash
    with httpx.Client(base_url=url, timeout=timeout) as http:
        r = http.post(f"/gradio_api/call/{api_name}", json=body)
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {r.text[:300]}")
        event_id = r.json()["event_id"]
        event = None
        with http.stream("GET", f"/gradio_api/call/{api_name}/{event_id}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    if event == "error":
                        raise RuntimeError(f"error event: {line[5:].strip()[:300]}")
                    if event == "complete":
                        return json.loads(line[5:])
    raise RuntimeError("the event stream ended without a result")


def config(url: str) -> dict:
    import httpx

    return httpx.get(url + "/config", timeout=30).json()


def dependency_index(cfg: dict, fn_name: str) -> int:
    """The index of the event listener whose function is `fn_name` (its api_name, documented or not)."""
    for d in cfg["dependencies"]:
        if d.get("api_name") == fn_name:
            return d["id"]
    raise KeyError(fn_name)


def component_id(cfg: dict, elem_id: str) -> int:
    for c in cfg["components"]:
        if c.get("props", {}).get("elem_id") == elem_id:
            return c["id"]
    raise KeyError(elem_id)


def direct_call(url: str, fn_index: int, data: list, session_hash: str, timeout: float = 30.0) -> dict:
    """An unqueued event listener (queue=False), as the browser calls it: POST /gradio_api/run/predict."""
    import httpx

    r = httpx.post(url + "/gradio_api/run/predict", json={"data": data, "fn_index": fn_index, "session_hash": session_hash},
                   timeout=timeout)
    r.raise_for_status()
    return r.json()


def queue_call(url: str, fn_index: int, data: list, session_hash: str, event_data=None, trigger_id: int | None = None,
               timeout: float = 30.0) -> dict:
    """A queued event listener, as the browser calls it: join the queue, then read the session's
    stream until the event completes. The final message."""
    import json

    import httpx

    with httpx.Client(base_url=url, timeout=timeout) as http:
        r = http.post("/gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": session_hash,
                                                       "event_data": event_data, "trigger_id": trigger_id})
        r.raise_for_status()
        event_id = r.json()["event_id"]
        with http.stream("GET", f"/gradio_api/queue/data?session_hash={session_hash}") as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message.get("event_id") == event_id and message.get("msg") == "process_completed":
                        return message
    raise RuntimeError("the queue stream ended before the event completed")
