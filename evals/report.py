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


def _split_metrics(summary: dict) -> dict[str, dict]:
    """Per split metrics of a run; a run written before splits existed counts as one split "all"."""
    if "splits" in summary:
        return {name: data.get("metrics", {}) for name, data in summary["splits"].items()}
    return {"all": summary.get("metrics", {})}


def _split_retrieval(summary: dict) -> dict[str, dict]:
    if "splits" in summary:
        return {name: data.get("retrieval", {}) for name, data in summary["splits"].items()}
    return {"all": summary.get("retrieval", {})}


def compare_runs(previous: dict[str, Any], summary: dict[str, Any], results: list[dict]) -> dict[str, Any]:
    """Metric deltas per split and item-by-item changes (by id) from `previous` to this run."""
    before = previous["summary"]
    old_metrics, new_metrics = _split_metrics(before), _split_metrics(summary)
    deltas: dict[str, dict[str, dict]] = {}
    for split, now in new_metrics.items():
        then = old_metrics.get(split)
        if then is None:
            continue
        deltas[split] = {}
        for name in METRICS:
            old, new = then.get(name), now.get(name)
            deltas[split][name] = {"before": old, "after": new, "delta": _delta(old, new)}
    retrieval: dict[str, dict] = {}
    old_retrieval = _split_retrieval(before)
    for split, runs in _split_retrieval(summary).items():
        for name, now in runs.items():
            then = old_retrieval.get(split, {}).get(name)
            if then:
                retrieval.setdefault(split, {})[name] = {m: _delta(then.get(m), now.get(m)) for m in ("recall", "hit_rate", "mrr")}
    old_items = previous["results"]
    new_items = {str(r["id"]): r for r in results}
    newly_failing, newly_passing, behavior_changes = [], [], []
    for key, now in new_items.items():
        then = old_items.get(key)
        if then is None:
            continue
        question = now["gold"]["question"]
        split = now.get("split", "")
        if then["passed"] and not now["passed"]:
            newly_failing.append({"id": now["id"], "split": split, "question": question, "reasons": now["reasons"]})
        elif not then["passed"] and now["passed"]:
            newly_passing.append({"id": now["id"], "split": split, "question": question, "reasons_before": then["reasons"]})
        if _got_behavior(then) != _got_behavior(now):
            behavior_changes.append({"id": now["id"], "split": split, "question": question, "before": _got_behavior(then), "after": _got_behavior(now), "expected": now["gold"]["behavior"]})
    return {
        "run": previous["folder"],
        "created": before.get("created"),
        "metrics_before": old_metrics,
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
    if name.endswith("_per_answer"):
        return f"{value:.2f}"
    return f"{value:.3f}"


def fmt_delta(value, name: str = "") -> str:
    if value is None or _nan(value):
        return ""
    if abs(value) < 1e-12:
        return "="
    return f"{value:+.1f}" if name.endswith("_ms") else f"{value:+.3f}"


def splits_of(summary: dict) -> list[str]:
    return summary.get("split_order") or list(summary.get("splits", {}))


def threshold_text(name: str, summary: dict) -> str:
    """The gate's bounds on a metric, per split: "test >= 0.9; real >= 0.85"."""
    parts = []
    for split, bounds in summary["thresholds"]["bounds"].items():
        if name in bounds.get("minimum", {}):
            parts.append(f"{split} >= {bounds['minimum'][name]}")
        if name in bounds.get("maximum", {}):
            parts.append(f"{split} <= {bounds['maximum'][name]}")
    return "; ".join(parts)


def gap(summary: dict, name: str) -> float | None:
    """dev minus test: how much better the assistant does on what it was tuned on."""
    splits = summary.get("splits", {})
    if "dev" not in splits or "test" not in splits:
        return None
    a, b = splits["dev"].get("metrics", {}).get(name), splits["test"].get("metrics", {}).get(name)
    return None if a is None or b is None else a - b


def metric_header(summary: dict) -> list[str]:
    head = ["metric"] + [f"{s} (n)" for s in splits_of(summary)]
    if gap_shown(summary):
        head.append("dev - test")
    return head + ["gate", "meaning"]


def gap_shown(summary: dict) -> bool:
    return {"dev", "test"} <= set(summary.get("splits", {}))


def metric_rows(summary: dict) -> list[list[str]]:
    rows = []
    for name, (meaning, _) in METRICS.items():
        row = [name]
        for split in splits_of(summary):
            data = summary["splits"][split]
            value = data.get("metrics", {}).get(name)
            row.append(f"{fmt(value, name)} ({data.get('counts', {}).get(name, 0)})")
        if gap_shown(summary):
            row.append(fmt_delta(gap(summary, name), name) or "n/a")
        rows += [row + [threshold_text(name, summary), meaning]]
    return rows


def change_header(summary: dict, comparison: dict) -> list[str]:
    return ["metric"] + [f"{s}: before -> now (change)" for s in splits_of(summary) if s in comparison["deltas"]]


def change_rows(summary: dict, comparison: dict) -> list[list[str]]:
    rows = []
    for name in METRICS:
        row = [name]
        for split in splits_of(summary):
            d = comparison["deltas"].get(split, {}).get(name)
            if split not in comparison["deltas"]:
                continue
            row.append(f"{fmt(d['before'], name)} -> {fmt(d['after'], name)} ({fmt_delta(d['delta'], name) or 'n/a'})")
        rows.append(row)
    return rows


RETRIEVAL_HEADER = ["split", "system", "k", "items", "recall@k", "hit rate@k", "MRR@k", "evidence in no chunk"]


def retrieval_rows(summary: dict, comparison: dict | None) -> list[list[str]]:
    rows = []
    for split in splits_of(summary):
        for name, r in summary["splits"][split].get("retrieval", {}).items():
            row = [split, r["label"], str(r["k"]), str(r["queries"]), fmt(r.get("recall")), fmt(r.get("hit_rate")), fmt(r.get("mrr")), str(len(r.get("evidence_not_in_any_chunk", [])))]
            if comparison:
                d = comparison.get("retrieval_deltas", {}).get(split, {}).get(name)
                row.append(" / ".join(fmt_delta(d[m]) or "n/a" for m in ("recall", "hit_rate", "mrr")) if d else "")
            rows.append(row)
    return rows


def retrieval_header(comparison: dict | None) -> list[str]:
    return RETRIEVAL_HEADER + (["change (recall / hit / MRR)"] if comparison else [])


def gate_text(summary: dict) -> list[str]:
    """The gate's outcome, the thresholds expected to fail (with the issue that will lift each),
    and any listed as expected to fail that pass now."""
    gate = summary["gate"]
    lines = ["passed" if gate["passed"] else "FAILED: " + "; ".join(f"{g['split']}: {g['text']}" for g in gate["failures"])]
    for x in gate.get("expected_failures", []):
        lines.append(f"expected to fail until {x['expected_to_fail']}: {x['split']}: {x['text']}")
    for name, note in gate.get("not_gated", {}).items():
        lines.append(f"not gated: split {name} ({note})")
    for k in gate.get("expected_but_passing", []):
        lines.append(f"listed as expected to fail, but passes now (remove it from thresholds.toml): {k}")
    return lines


def expected_text(gold: dict) -> str:
    parts = [gold["behavior"] + (f" ({' or '.join(gold['levels'])})" if gold.get("levels") else "")]
    if gold.get("row"):
        parts[0] += f" [{gold['row']}]"
    for alternatives in gold.get("facts", []):
        parts.append("fact: " + " | ".join(alternatives))
    return "; ".join(parts)


def got_text(result: dict, width: int = 220) -> str:
    got = result.get("got")
    if not got:
        return "(nothing came back)"
    if "error" in got:
        return f"error: {got['error']}"
    behavior = got.get("behavior", "?")
    esc = got.get("escalation") or {}
    head = behavior + (f" ({esc.get('level')}, {esc.get('rule')})" if esc else "") + (f" [{got['refusal']}]" if got.get("refusal") else "")
    return f"{head}: {shorten(got.get('answer', ''), width)}"


def failing_rows(results: list[dict], split: str | None = None) -> list[list[str]]:
    return [
        [str(r["id"]), r["where"], r["gold"]["question"], expected_text(r["gold"]), got_text(r), "; ".join(r["reasons"])]
        for r in results
        if not r["passed"] and (split is None or r.get("split") == split)
    ]


FAILING_HEADER = ["id", "where", "question", "expected", "came back", "why it failed"]


def failure_kinds(results: list[dict], split: str) -> list[list[str]]:
    """Failures of one split by kind: behaviour expected -> got, and by tag and row, so a failing
    frozen item is read as a kind of message to fix in general, not as an item to fix."""
    from collections import Counter

    kinds: Counter = Counter()
    for r in results:
        if r.get("split") != split or r["passed"]:
            continue
        got = (r.get("got") or {}).get("behavior", "none")
        want = r["gold"]["behavior"]
        kinds[f"behaviour {want} -> {got}" if got != want else "facts / citations / level"] += 1
        for tag in r["gold"].get("tags", []):
            kinds[f"tag {tag}"] += 1
        if r["gold"].get("row"):
            kinds[f"row {r['gold']['row']}"] += 1
    return [[k, str(n)] for k, n in kinds.most_common()]


# --------------------------------------------------------------------------- Markdown


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_report(summary: dict, results: list[dict], comparison: dict | None) -> str:
    out = [
        "# Evaluation report",
        "",
        f"- created: {summary['created']}",
        f"- items: {summary['items']} (" + ", ".join(f"{s}: {summary['splits'][s]['items']}" for s in splits_of(summary)) + ")",
    ]
    out += [f"- split {name}: {data.get('note', '')}" for name, data in summary["splits"].items() if data.get("note")]
    out += [f"- store: `{summary['db']}`", f"- time: {summary['seconds']} s"]
    lines = gate_text(summary)
    out.append(f"- gate: {lines[0]}")
    out += [f"  - {line}" for line in lines[1:]]
    if comparison:
        out.append(f"- compared with: `{comparison['run']}` ({comparison.get('created')})")
    out += ["", "## Metrics by split", "", "`dev - test`: the gap between the split we tune on and the frozen one (positive: better on dev).", ""]
    out += [md_table(metric_header(summary), metric_rows(summary)), ""]
    if comparison:
        out += ["## Changes since the compared run", "", md_table(change_header(summary, comparison), change_rows(summary, comparison)), ""]
    out += ["## Retrieval: ours and the baselines", "", md_table(retrieval_header(comparison), retrieval_rows(summary, comparison)), ""]
    for name, note in summary.get("retrieval_notes", {}).items():
        out.append(f"- {name}: {note}")
    if comparison:
        out += ["", "## Items that changed", ""]
        out += _md_changes(comparison)
    for split in splits_of(summary):
        if split == "all":
            continue
        failing = failing_rows(results, split)
        n = summary["splits"][split]["items"]
        out += ["", f"## Failing items: {split} ({len(failing)} of {n})", ""]
        if failing:
            out += ["By kind:", "", md_table(["kind", "items"], failure_kinds(results, split)), ""]
            out.append(md_table(FAILING_HEADER, failing))
        else:
            out.append("None.")
    return "\n".join(out) + "\n"


def _md_changes(comparison: dict) -> list[str]:
    out = []
    for title, key, render in (
        ("Newly failing", "newly_failing", lambda c: f"`{c['id']}` ({c['split']}) {c['question']} ({'; '.join(c['reasons'])})"),
        ("Newly passing", "newly_passing", lambda c: f"`{c['id']}` ({c['split']}) {c['question']}"),
        ("Behaviour changes", "behavior_changes", lambda c: f"`{c['id']}` ({c['split']}) {c['question']}: {c['before']} -> {c['after']} (expected {c['expected']})"),
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
    """The fraction metrics, one bar per split, with each split's gate thresholds as dashes."""
    plt = _pyplot()
    names = CHART_METRICS
    splits = [sp for sp in splits_of(summary) if sp != "all"] or splits_of(summary)
    colors = {"dev": "#8fa9d6", "test": "#2f6db5", "real": "#e08a2e", "custom": "#2f6db5"}
    fig, ax = plt.subplots(figsize=(11, 4.2))
    width = 0.8 / max(len(splits), 1)
    xs = list(range(len(names)))
    for j, split in enumerate(splits):
        values = [summary["splits"][split].get("metrics", {}).get(n) for n in names]
        offset = (j - (len(splits) - 1) / 2) * width
        ax.bar([x + offset for x in xs], [v or 0 for v in values], width, label=split, color=colors.get(split, "#777"))
        bounds = summary["thresholds"]["bounds"].get(split, {})
        for x, n in zip(xs, names):
            limit = bounds.get("minimum", {}).get(n, bounds.get("maximum", {}).get(n))
            if limit is not None:
                ax.hlines(limit, x + offset - width / 2, x + offset + width / 2, colors="#c0392b", linestyles="dashed", linewidth=1.2)
    ax.set_xticks(xs)
    ax.set_xticklabels([n.replace("_", "\n") for n in names], fontsize=6.5)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("Metrics by split (dashed red: that split's gate threshold)", fontsize=10)
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
    """recall@k and MRR@k of every system, per split."""
    splits = [sp for sp in splits_of(summary) if sp != "all" and summary["splits"][sp].get("retrieval")]
    if not splits:
        return None
    plt = _pyplot()
    systems = list(summary["splits"][splits[0]]["retrieval"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    for ax, measure, title in ((axes[0], "recall", "recall@k"), (axes[1], "mrr", "MRR@k")):
        width = 0.8 / len(systems)
        for i, name in enumerate(systems):
            values = []
            for split in splits:
                v = summary["splits"][split]["retrieval"].get(name, {}).get(measure)
                values.append(0 if v is None or _nan(v) else v)
            ax.bar([j + i * width for j in range(len(splits))], values, width, label=name)
        ax.set_xticks([j + width * (len(systems) - 1) / 2 for j in range(len(splits))])
        ax.set_xticklabels(splits)
        ax.set_ylim(0, 1.05)
        ax.set_title(title, fontsize=10)
    axes[1].legend(fontsize=7, loc="lower right")
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
    gate = gate_text(summary)
    status = ('<span class="pass">passed</span>' if summary["gate"]["passed"] else '<span class="fail">FAILED</span>: ' + _h(gate[0][8:]))
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>knee eval report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Evaluation report</h1><ul>",
        f"<li>created: {_h(summary['created'])}</li>",
        f"<li>items: {summary['items']} (" + _h(", ".join(f"{s}: {summary['splits'][s]['items']}" for s in splits_of(summary))) + ")</li>",
    ]
    parts += [f"<li>split {_h(name)}: {_h(data.get('note', ''))}</li>" for name, data in summary["splits"].items() if data.get("note")]
    parts += [f"<li>store: <code>{_h(summary['db'])}</code></li><li>time: {_h(summary['seconds'])} s</li>", f"<li>gate: {status}"]
    if len(gate) > 1:
        parts.append("<ul>" + "".join(f"<li>{_h(line)}</li>" for line in gate[1:]) + "</ul>")
    parts.append("</li>")
    if comparison:
        parts.append(f"<li>compared with: <code>{_h(comparison['run'])}</code> ({_h(comparison.get('created'))})</li>")
    parts.append("</ul><h2>Metrics by split</h2><p><code>dev - test</code>: the gap between the split we tune on and the frozen one (positive: better on dev).</p>")
    n_splits = len(splits_of(summary))
    parts.append(html_table(metric_header(summary), metric_rows(summary), set(range(1, n_splits + (2 if gap_shown(summary) else 1)))))
    parts.append(_img(metrics_chart(summary, comparison), "metrics chart"))
    if comparison:
        parts.append("<h2>Changes since the compared run</h2>")
        parts.append(html_table(change_header(summary, comparison), change_rows(summary, comparison)))
    parts.append("<h2>Latency</h2>" + _img(latency_histogram(results), "latency histogram"))
    parts.append("<h2>Retrieval: ours and the baselines</h2>")
    parts.append(html_table(retrieval_header(comparison), retrieval_rows(summary, comparison), {2, 3, 4, 5, 6, 7}))
    parts.append("<ul>" + "".join(f"<li>{_h(k)}: {_h(v)}</li>" for k, v in summary.get("retrieval_notes", {}).items()) + "</ul>")
    parts.append(_img(retrieval_chart(summary), "retrieval chart"))
    if comparison:
        parts.append("<h2>Items that changed</h2>")
        for title, key, header, row in (
            ("Newly failing", "newly_failing", ["id", "split", "question", "why it fails now"], lambda c: [c["id"], c["split"], c["question"], "; ".join(c["reasons"])]),
            ("Newly passing", "newly_passing", ["id", "split", "question", "why it failed before"], lambda c: [c["id"], c["split"], c["question"], "; ".join(c["reasons_before"])]),
            ("Behaviour changes", "behavior_changes", ["id", "split", "question", "before", "after", "expected"], lambda c: [c["id"], c["split"], c["question"], c["before"], c["after"], c["expected"]]),
        ):
            items = comparison[key]
            parts.append(f"<h3>{title} ({len(items)})</h3>")
            parts.append(html_table(header, [row(c) for c in items]) if items else "<p>None.</p>")
        if comparison["added"] or comparison["removed"]:
            parts.append(f"<p>Items added: {len(comparison['added'])}; removed: {len(comparison['removed'])}.</p>")
    for split in splits_of(summary):
        if split == "all":
            continue
        failing = failing_rows(results, split)
        parts.append(f"<h2>Failing items: {_h(split)} ({len(failing)} of {summary['splits'][split]['items']})</h2>")
        if failing:
            parts.append(html_table(["kind", "items"], failure_kinds(results, split), {1}))
            parts.append(html_table(FAILING_HEADER, failing))
        else:
            parts.append("<p>None.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- console


def console_summary(summary: dict, results: list[dict], comparison: dict | None) -> str:
    splits = splits_of(summary)
    width = max(len(n) for n in METRICS)
    head = f"{'metric':<{width}}" + "".join(f"{s:>10}" for s in splits) + ("  dev-test" if gap_shown(summary) else "")
    lines = [head]
    for name in METRICS:
        row = f"{name:<{width}}" + "".join(f"{fmt(summary['splits'][s].get('metrics', {}).get(name), name):>10}" for s in splits)
        if gap_shown(summary):
            row += f"  {fmt_delta(gap(summary, name), name) or 'n/a':>8}"
        lines.append(row)
    retrieval_lines = []
    for split in splits:
        for name, r in summary["splits"][split].get("retrieval", {}).items():
            retrieval_lines.append(f"{split:<6} {name:<12}  {fmt(r.get('recall')):>8}  {fmt(r.get('hit_rate')):>6}  {fmt(r.get('mrr')):>6}  {r['queries']}")
    if retrieval_lines:
        lines += ["", f"{'split':<6} {'retrieval':<12}  {'recall':>8}  {'hit':>6}  {'MRR':>6}  items", *retrieval_lines]
        for name, note in summary.get("retrieval_notes", {}).items():
            lines.append(f"  {name}: {note}")
    lines.append("")
    for split in splits:
        if split == "all":
            continue
        failing = [r for r in results if r.get("split") == split and not r["passed"]]
        lines.append(f"{split}: {len(failing)} of {summary['splits'][split]['items']} items failed")
    gate = gate_text(summary)
    lines.append(f"gate: {gate[0]}")
    lines += [f"  {line}" for line in gate[1:]]
    if comparison:
        lines.append(
            f"since {comparison['run']}: {len(comparison['newly_failing'])} newly failing, "
            f"{len(comparison['newly_passing'])} newly passing, {len(comparison['behavior_changes'])} behaviour changes"
        )
    return "\n".join(lines)
