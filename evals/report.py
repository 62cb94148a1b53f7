"""The run folder of `knee eval`: results.jsonl, metrics.json, report.md, report.html.

report.html is self-contained (inline CSS, plots as base64 PNG drawn with matplotlib's Agg
backend): it can be mailed or attached to a CI run and opened anywhere, offline.
`compare_runs` holds what changed since an earlier run; every renderer shows it when present.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

from evals.metrics import METRICS, percentile, shorten
from knee.errors import CliError

# Metrics drawn in the bar chart: fractions, all on one 0-1 axis.
CHART_METRICS = [m for m in METRICS if not m.endswith("_ms")]


# --------------------------------------------------------------------------- reading and comparing


def load_run(folder: Path) -> dict[str, Any]:
    """An earlier run folder: its metrics.json and results.jsonl (by item id)."""
    metrics_path, results_path = folder / "metrics.json", folder / "results.jsonl"
    if not metrics_path.is_file() or not results_path.is_file():
        raise CliError(f"--compare {folder}: not a run folder (needs metrics.json and results.jsonl)")
    try:
        summary = json.loads(metrics_path.read_text(encoding="utf-8"))
        results = [json.loads(line) for line in results_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise CliError(f"--compare {folder}: cannot read it ({exc})") from None
    return {"folder": str(folder), "summary": summary, "results": {str(r["id"]): r for r in results}}


def _got_behavior(result: dict) -> str | None:
    return (result.get("got") or {}).get("behavior")


def compare_runs(previous: dict[str, Any], summary: dict[str, Any], results: list[dict]) -> dict[str, Any]:
    """Metric deltas and item-by-item changes (by id) from `previous` to this run."""
    before = previous["summary"]
    deltas = {}
    for name in METRICS:
        old, new = before.get("metrics", {}).get(name), summary["metrics"].get(name)
        deltas[name] = {"before": old, "after": new, "delta": None if old is None or new is None else new - old}
    retrieval = {}
    for name, now in summary.get("retrieval", {}).items():
        then = before.get("retrieval", {}).get(name)
        if then:
            retrieval[name] = {m: _delta(then.get(m), now.get(m)) for m in ("recall", "hit_rate", "mrr")}
    old_items = previous["results"]
    new_items = {str(r["id"]): r for r in results}
    newly_failing, newly_passing, behavior_changes = [], [], []
    for key, now in new_items.items():
        then = old_items.get(key)
        if then is None:
            continue
        question = now["gold"]["question"]
        if then["passed"] and not now["passed"]:
            newly_failing.append({"id": now["id"], "question": question, "reasons": now["reasons"]})
        elif not then["passed"] and now["passed"]:
            newly_passing.append({"id": now["id"], "question": question, "reasons_before": then["reasons"]})
        if _got_behavior(then) != _got_behavior(now):
            behavior_changes.append({"id": now["id"], "question": question, "before": _got_behavior(then), "after": _got_behavior(now), "expected": now["gold"]["behavior"]})
    return {
        "run": previous["folder"],
        "created": before.get("created"),
        "metrics_before": before.get("metrics", {}),
        "deltas": deltas,
        "retrieval_deltas": retrieval,
        "newly_failing": newly_failing,
        "newly_passing": newly_passing,
        "behavior_changes": behavior_changes,
        "added": [r["id"] for k, r in new_items.items() if k not in old_items],
        "removed": [r["id"] for k, r in old_items.items() if k not in new_items],
    }


def _delta(old, new):
    return None if old is None or new is None or _nan(old) or _nan(new) else round(new - old, 4)


def _nan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


# --------------------------------------------------------------------------- writing


def write_run(folder: Path, summary: dict, results: list[dict], comparison: dict | None) -> None:
    with (folder / "results.jsonl").open("w", encoding="utf-8") as f:
        for r in results:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    doc = dict(summary)
    if comparison:
        doc["compare"] = comparison
    (folder / "metrics.json").write_text(json.dumps(doc, ensure_ascii=False, indent=2, default=_json_default) + "\n", encoding="utf-8")
    (folder / "report.md").write_text(markdown_report(summary, results, comparison), encoding="utf-8")
    (folder / "report.html").write_text(html_report(summary, results, comparison), encoding="utf-8")


def _json_default(o):
    return float(o) if hasattr(o, "__float__") else str(o)


def fmt(value, name: str = "") -> str:
    if value is None or _nan(value):
        return "n/a"
    if name.endswith("_ms"):
        return f"{value:.1f}"
    return f"{value:.3f}"


def fmt_delta(value, name: str = "") -> str:
    if value is None or _nan(value):
        return ""
    if abs(value) < 1e-12:
        return "="
    return f"{value:+.1f}" if name.endswith("_ms") else f"{value:+.3f}"


def threshold_text(name: str, thresholds: dict) -> str:
    if name in thresholds.get("minimum", {}):
        return f">= {thresholds['minimum'][name]}"
    if name in thresholds.get("maximum", {}):
        return f"<= {thresholds['maximum'][name]}"
    return ""


def metric_rows(summary: dict, comparison: dict | None) -> list[list[str]]:
    rows = []
    for name, (meaning, _) in METRICS.items():
        row = [name, fmt(summary["metrics"].get(name), name), str(summary["counts"].get(name, "")), threshold_text(name, summary["thresholds"]), meaning]
        if comparison:
            d = comparison["deltas"][name]
            row[2:2] = [fmt(d["before"], name), fmt_delta(d["delta"], name)]
        rows.append(row)
    return rows


def metric_header(comparison: dict | None) -> list[str]:
    head = ["metric", "value", "computed on", "threshold", "meaning"]
    if comparison:
        head[2:2] = ["before", "change"]
    return head


def retrieval_rows(summary: dict, comparison: dict | None) -> list[list[str]]:
    rows = []
    for name, r in summary.get("retrieval", {}).items():
        row = [r["label"], str(r["k"]), str(r["queries"]), fmt(r.get("recall")), fmt(r.get("hit_rate")), fmt(r.get("mrr")), str(len(r.get("evidence_not_in_any_chunk", [])))]
        if comparison and name in comparison.get("retrieval_deltas", {}):
            d = comparison["retrieval_deltas"][name]
            row.append(" / ".join(fmt_delta(d[m]) or "n/a" for m in ("recall", "hit_rate", "mrr")))
        elif comparison:
            row.append("")
        rows.append(row)
    return rows


def retrieval_header(comparison: dict | None) -> list[str]:
    head = ["system", "k", "items", "recall@k", "hit rate@k", "MRR@k", "evidence in no chunk"]
    return head + (["change (recall / hit / MRR)"] if comparison else [])


def expected_text(gold: dict) -> str:
    parts = [gold["behavior"] + (f" ({' or '.join(gold['levels'])})" if gold.get("levels") else "")]
    for alternatives in gold.get("facts", []):
        parts.append("fact: " + " | ".join(alternatives))
    return "; ".join(parts)


def got_text(result: dict, width: int = 220) -> str:
    got = result.get("got")
    if not got:
        return "(nothing came back)"
    behavior = got.get("behavior", "?")
    level = (got.get("escalation") or {}).get("level")
    head = behavior + (f" ({level})" if level else "")
    if "error" in got:
        return f"error: {got['error']}"
    return f"{head}: {shorten(got.get('answer', ''), width)}"


def failing_rows(results: list[dict]) -> list[list[str]]:
    return [
        [str(r["id"]), r["where"], r["gold"]["question"], expected_text(r["gold"]), got_text(r), "; ".join(r["reasons"])]
        for r in results
        if not r["passed"]
    ]


FAILING_HEADER = ["id", "where", "question", "expected", "came back", "why it failed"]


# --------------------------------------------------------------------------- Markdown


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_report(summary: dict, results: list[dict], comparison: dict | None) -> str:
    gate = summary["gate"]
    failing = failing_rows(results)
    out = [
        "# Evaluation report",
        "",
        f"- created: {summary['created']}",
        f"- gold: {', '.join(summary['gold'])} ({summary['items']} items)",
        f"- store: `{summary['db']}`",
        f"- time: {summary['seconds']} s",
        f"- gate: {'passed' if gate['passed'] else 'FAILED: ' + '; '.join(gate['failures'])}",
    ]
    if comparison:
        out.append(f"- compared with: `{comparison['run']}` ({comparison.get('created')})")
    out += ["", "## Metrics", "", md_table(metric_header(comparison), metric_rows(summary, comparison)), ""]
    out += ["## Retrieval: ours and the baselines", "", md_table(retrieval_header(comparison), retrieval_rows(summary, comparison)), ""]
    for name, note in summary.get("retrieval_notes", {}).items():
        out.append(f"- {name}: {note}")
    if comparison:
        out += ["", "## Changes since the compared run", ""]
        out += _md_changes(comparison)
    out += ["", f"## Failing items ({len(failing)} of {len(results)})", ""]
    out.append(md_table(FAILING_HEADER, failing) if failing else "None.")
    return "\n".join(out) + "\n"


def _md_changes(comparison: dict) -> list[str]:
    out = []
    for title, key, render in (
        ("Newly failing", "newly_failing", lambda c: f"`{c['id']}` {c['question']} ({'; '.join(c['reasons'])})"),
        ("Newly passing", "newly_passing", lambda c: f"`{c['id']}` {c['question']}"),
        ("Behaviour changes", "behavior_changes", lambda c: f"`{c['id']}` {c['question']}: {c['before']} -> {c['after']} (expected {c['expected']})"),
    ):
        items = comparison[key]
        out.append(f"**{title}** ({len(items)})" + (":" if items else ": none"))
        out += [f"- {render(c)}" for c in items]
        out.append("")
    if comparison["added"] or comparison["removed"]:
        out.append(f"Items added: {len(comparison['added'])}; removed: {len(comparison['removed'])}.")
    return out


# --------------------------------------------------------------------------- plots


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display: draw into memory
    import matplotlib.pyplot as plt

    return plt


def metrics_chart(summary: dict, comparison: dict | None) -> str:
    plt = _pyplot()
    names = CHART_METRICS
    now = [summary["metrics"].get(n) for n in names]
    fig, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.38 if comparison else 0.6
    xs = range(len(names))
    if comparison:
        before = [comparison["metrics_before"].get(n) for n in names]
        ax.bar([x - width / 2 for x in xs], [v or 0 for v in before], width, label="compared run", color="#b0b7c3")
        ax.bar([x + width / 2 for x in xs], [v or 0 for v in now], width, label="this run", color="#2f6db5")
        ax.legend(loc="lower left", fontsize=8)
    else:
        ax.bar(list(xs), [v or 0 for v in now], width, color="#2f6db5")
    for x, v in zip(xs, now):  # the value over this run's bar ("n/a": not computable on this gold set)
        ax.annotate("n/a" if v is None else f"{v:.2f}", (x + (width / 2 if comparison else 0), v or 0), ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    for name, x in zip(names, xs):
        limit = summary["thresholds"].get("minimum", {}).get(name, summary["thresholds"].get("maximum", {}).get(name))
        if limit is not None:
            ax.hlines(limit, x - 0.45, x + 0.45, colors="#c0392b", linestyles="dashed", linewidth=1.2)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([n.replace("_", "\n") for n in names], fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_title("Metrics (dashed red: gate threshold)", fontsize=10)
    return _png(fig)


def latency_histogram(results: list[dict]) -> str | None:
    totals = [r["got"]["timings_ms"]["total"] for r in results if r.get("got") and "total" in (r["got"].get("timings_ms") or {})]
    if not totals:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.hist(totals, bins=min(30, max(5, len(totals) // 3)), color="#2f6db5")
    for p, style in ((50, "solid"), (95, "dashed")):
        value = percentile(totals, p)
        ax.axvline(value, color="#c0392b", linestyle=style, linewidth=1, label=f"p{p} {value:.0f} ms")
    ax.set_xlabel("time per question in `knee ask --batch` (ms)")
    ax.set_ylabel("questions")
    ax.legend(fontsize=8)
    return _png(fig)


def retrieval_chart(summary: dict) -> str | None:
    runs = summary.get("retrieval", {})
    if not runs:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    measures = ("recall", "hit_rate", "mrr")
    width = 0.8 / len(runs)
    for i, (name, r) in enumerate(runs.items()):
        values = [0 if _nan(r.get(m)) or r.get(m) is None else r[m] for m in measures]
        ax.bar([j + i * width for j in range(len(measures))], values, width, label=name)
    ax.set_xticks([j + width * (len(runs) - 1) / 2 for j in range(len(measures))])
    ax.set_xticklabels(["recall@k", "hit rate@k", "MRR@k"])
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Retrieval against the evidence phrases", fontsize=10)
    return _png(fig)


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#1d2330}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.88rem;width:100%}
th,td{border:1px solid #d5d9e0;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f1f3f6} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.pass{color:#1e7b34;font-weight:600} .fail{color:#b3261e;font-weight:600} .up{color:#1e7b34} .down{color:#b3261e}
img{max-width:100%;border:1px solid #e3e6eb;margin:.5rem 0} code{background:#f1f3f6;padding:0 .2rem}
"""


def _h(text) -> str:
    return html.escape(str(text), quote=True)


def html_table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{_h(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{_h(c)}</td>' if i in numeric else f"<td>{_h(c)}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(b64: str | None, alt: str) -> str:
    return f'<img alt="{_h(alt)}" src="data:image/png;base64,{b64}">' if b64 else f"<p>({_h(alt)}: no data)</p>"


def html_report(summary: dict, results: list[dict], comparison: dict | None) -> str:
    gate = summary["gate"]
    failing = failing_rows(results)
    status = '<span class="pass">passed</span>' if gate["passed"] else '<span class="fail">FAILED</span>: ' + _h("; ".join(gate["failures"]))
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>knee eval report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Evaluation report</h1><ul>",
        f"<li>created: {_h(summary['created'])}</li>",
        f"<li>gold: {_h(', '.join(summary['gold']))} ({summary['items']} items)</li>",
        f"<li>store: <code>{_h(summary['db'])}</code></li><li>time: {_h(summary['seconds'])} s</li>",
        f"<li>gate: {status}</li>",
    ]
    if comparison:
        parts.append(f"<li>compared with: <code>{_h(comparison['run'])}</code> ({_h(comparison.get('created'))})</li>")
    parts.append("</ul><h2>Metrics</h2>")
    numeric = {1, 2, 3} if comparison else {1, 2}
    parts.append(html_table(metric_header(comparison), metric_rows(summary, comparison), numeric))
    parts.append(_img(metrics_chart(summary, comparison), "metrics chart"))
    parts.append("<h2>Latency</h2>" + _img(latency_histogram(results), "latency histogram"))
    parts.append("<h2>Retrieval: ours and the baselines</h2>")
    parts.append(html_table(retrieval_header(comparison), retrieval_rows(summary, comparison), {1, 2, 3, 4, 5, 6}))
    parts.append("<ul>" + "".join(f"<li>{_h(k)}: {_h(v)}</li>" for k, v in summary.get("retrieval_notes", {}).items()) + "</ul>")
    parts.append(_img(retrieval_chart(summary), "retrieval chart"))
    if comparison:
        parts.append("<h2>Changes since the compared run</h2>")
        for title, key, header, row in (
            ("Newly failing", "newly_failing", ["id", "question", "why it fails now"], lambda c: [c["id"], c["question"], "; ".join(c["reasons"])]),
            ("Newly passing", "newly_passing", ["id", "question", "why it failed before"], lambda c: [c["id"], c["question"], "; ".join(c["reasons_before"])]),
            ("Behaviour changes", "behavior_changes", ["id", "question", "before", "after", "expected"], lambda c: [c["id"], c["question"], c["before"], c["after"], c["expected"]]),
        ):
            items = comparison[key]
            parts.append(f"<h3>{title} ({len(items)})</h3>")
            parts.append(html_table(header, [row(c) for c in items]) if items else "<p>None.</p>")
        if comparison["added"] or comparison["removed"]:
            parts.append(f"<p>Items added: {len(comparison['added'])}; removed: {len(comparison['removed'])}.</p>")
    parts.append(f"<h2>Failing items ({len(failing)} of {len(results)})</h2>")
    parts.append(html_table(FAILING_HEADER, failing) if failing else "<p>None.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- console


def console_summary(summary: dict, results: list[dict], comparison: dict | None) -> str:
    lines = []
    width = max(len(n) for n in METRICS)
    for name in METRICS:
        value = fmt(summary["metrics"].get(name), name)
        extra = ""
        if comparison:
            extra = f"  ({fmt_delta(comparison['deltas'][name]['delta'], name) or 'n/a'})"
        lines.append(f"{name:<{width}}  {value:>8}  n={summary['counts'].get(name)}{extra}")
    if summary.get("retrieval"):
        lines.append("")
        lines.append(f"{'retrieval':<{width}}  {'recall':>8}  {'hit':>6}  {'MRR':>6}  items")
        for name, r in summary["retrieval"].items():
            lines.append(f"{name:<{width}}  {fmt(r.get('recall')):>8}  {fmt(r.get('hit_rate')):>6}  {fmt(r.get('mrr')):>6}  {r['queries']}")
        for name, note in summary.get("retrieval_notes", {}).items():
            lines.append(f"  {name}: {note}")
    failing = [r for r in results if not r["passed"]]
    lines.append("")
    lines.append(f"{len(failing)} of {len(results)} items failed" + (": " + ", ".join(str(r["id"]) for r in failing[:15]) + (" ..." if len(failing) > 15 else "") if failing else ""))
    if comparison:
        lines.append(
            f"since {comparison['run']}: {len(comparison['newly_failing'])} newly failing, "
            f"{len(comparison['newly_passing'])} newly passing, {len(comparison['behavior_changes'])} behaviour changes"
        )
    return "\n".join(lines)
