"""Suite results as files people and CI systems read: JSONL, CSV, JUnit XML, and one
self-contained HTML page (no script: its filter for failed and errored rows is CSS)."""

from __future__ import annotations

import csv
import html
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from genlab.evaluate.runner import row_status
from genlab.io import write_jsonl

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#1f2328;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
.muted{color:#656d76} table{border-collapse:collapse;width:100%;margin:.6rem 0}
th,td{border:1px solid #d0d7de;padding:.35rem .5rem;vertical-align:top;text-align:left}
th{background:#f6f8fa} td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#1a7f37;font-weight:600} .fail{color:#cf222e;font-weight:600}
.out{white-space:pre-wrap;max-width:32rem} .reason{color:#656d76;font-size:12px}
.bar{display:inline-block;height:.6rem;background:#2f81f7;border-radius:2px;vertical-align:middle}
.error{color:#9a6700;font-weight:600} .filter label{margin-right:1rem}
#show-failed:checked~table.rows tr.row:not(.has-fail),#show-errored:checked~table.rows tr.row:not(.has-error){display:none}
"""

#: Assertion types whose measured value already has a column of its own (latency, cost).
MEASURED = {"latency", "cost", "not-latency", "not-cost"}


def metric_columns(summary: dict[str, Any]) -> list[str]:
    """Mean-score columns of the summary tables, without those that repeat a measured column."""
    return sorted({k for m in summary["models"].values() for k in m["mean_scores"]} - MEASURED)


def usd(cost: float | None) -> str:
    return "unknown" if cost is None else f"{cost:.4f}"


def row_id(row: dict, prompts: int) -> str:
    """Test number, with the prompt's when the suite has several: ``3``, or ``3 · prompt 1``."""
    return str(row["test"]) if prompts == 1 else f"{row['test']} · prompt {row['prompt_index']}"


def _e(value: Any) -> str:
    return html.escape(str(value))


def write_rows(rows: dict[str, dict], path: Path) -> None:
    """The rows as JSONL, in (test, prompt, model) order."""
    write_jsonl((rows[key] for key in sorted(rows, key=_order)), path)


def _order(key: str) -> tuple:
    t, p, model = key.split(":", 2)
    return int(t), int(p), model


def write_csv(rows: dict[str, dict], path: Path) -> None:
    types = sorted({a["type"] for r in rows.values() for a in r.get("assertions", [])})
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["test", "prompt", "model", "output", "status", "passed", "score", "latency_s",
                         "prompt_tokens", "completion_tokens", "cost_usd", "judge_tokens", "judge_cost_usd", "error",
                         *types])
        for key in sorted(rows, key=_order):
            r = rows[key]
            scores = {a["type"]: a["score"] for a in r.get("assertions", []) if "error" not in a}
            errors = [r.get("error")] + [a["error"] for a in r.get("assertions", []) if "error" in a]
            writer.writerow([r["test"], r["prompt_index"], r["model"], r.get("output"), row_status(r), r.get("passed"),
                             round(r.get("score", 0.0), 4), r.get("latency_s"), r.get("prompt_tokens"),
                             r.get("completion_tokens"), r.get("cost_usd"), r.get("judge_tokens", 0),
                             r.get("judge_cost_usd"), "; ".join(e for e in errors if e) or None,
                             *[scores.get(t, "") for t in types]])


def write_junit(summary: dict[str, Any], rows: dict[str, dict], path: Path, prompts: int) -> None:
    """JUnit XML for CI systems: one test suite per model, one test case per row; a failed
    assertion is a ``failure``, a failed model call or unreadable verdict an ``error``."""
    root = ET.Element("testsuites", name=f"genlab eval {summary['suite']}")
    by_model: dict[str, list[dict]] = {}
    for key in sorted(rows, key=_order):
        by_model.setdefault(rows[key]["model"], []).append(rows[key])
    for model, model_rows in by_model.items():
        label = summary["models"][model]["label"]
        counts = {s: sum(row_status(r) == s for r in model_rows) for s in ("fail", "error")}
        suite = ET.SubElement(root, "testsuite", name=label, tests=str(len(model_rows)),
                              failures=str(counts["fail"]), errors=str(counts["error"]),
                              time=f"{sum(r.get('latency_s') or 0 for r in model_rows):.3f}")
        for r in model_rows:
            name = f"test {row_id(r, prompts)}" + (f": {r['description']}" if r.get("description") else "")
            case = ET.SubElement(suite, "testcase", classname=label, name=name, time=f"{r.get('latency_s') or 0:.3f}")
            state = row_status(r)
            if state == "error":
                problems = [r["error"]] if r.get("error") else [a["error"] for a in r["assertions"] if "error" in a]
                ET.SubElement(case, "error", message=problems[0][:300]).text = "\n".join(problems)
            elif state == "fail":
                failed = [f"{a['type']}: {a['reason']}" for a in r["assertions"] if not a["passed"]]
                ET.SubElement(case, "failure", message=failed[0][:300]).text = "\n".join(failed)
            if r.get("output") is not None:
                ET.SubElement(case, "system-out").text = r["output"]
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def write_html(summary: dict[str, Any], rows: dict[str, dict], pairs: dict[str, dict], path: Path,
               prompts: int = 1) -> None:
    models = list(summary["models"])
    labels = {m: summary["models"][m]["label"] for m in models}
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>genlab eval · {_e(summary['suite'])}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>genlab eval</h1><p class='muted'>{_e(summary['description'])} · {_e(summary['suite'])} · "
             f"{summary['rows']} rows</p>", "<h2>Summary</h2><table><tr><th>model</th><th>rows</th><th>pass rate</th>"
             "<th>failed</th><th>errored</th>"]
    metrics = metric_columns(summary)
    parts += [f"<th>{_e(k)}</th>" for k in metrics]
    parts.append("<th>latency (s)</th><th>tokens</th><th>judge tokens</th><th>cost (USD)</th>"
                 "<th>judge cost (USD)</th></tr>")
    for name, m in summary["models"].items():
        parts.append(f"<tr><td title='{_e(name)}'>{_e(labels[name])}</td><td class='num'>{m['rows']}</td>"
                     f"<td class='num'><span class='bar' style='width:{60 * m['pass_rate']:.0f}px'></span> "
                     f"{100 * m['pass_rate']:.0f} %</td><td class='num'>{m['failed']}</td>"
                     f"<td class='num'>{m['errors']}</td>")
        for k in metrics:
            mean, std = m["mean_scores"].get(k), m["std_scores"].get(k)
            cell = "" if mean is None else f"{mean:.3f} ± {std:.3f}"
            parts.append(f"<td class='num'>{cell}</td>")
        parts.append(f"<td class='num'>{m['mean_latency_s']:.2f}</td><td class='num'>{m['tokens']}</td>"
                     f"<td class='num'>{m['judge_tokens']}</td><td class='num'>{usd(m['cost_usd'])}</td>"
                     f"<td class='num'>{usd(m['judge_cost_usd'])}</td></tr>")
    parts.append("</table>")
    if summary["pairwise"]:
        parts.append("<h2>Pairwise</h2><table><tr><th>candidate</th><th>baseline</th><th>wins</th><th>losses</th>"
                     "<th>ties</th><th>errored</th><th>win rate (95 % CI)</th><th>position consistency</th></tr>")
        for name, p in summary["pairwise"].items():
            low, high = p["win_rate_ci95"]
            parts.append(f"<tr><td>{_e(p['label'])}</td><td>{_e(labels.get(p['baseline'], p['baseline']))}</td>"
                         f"<td class='num'>{p['candidate']}</td><td class='num'>{p['baseline_wins']}</td>"
                         f"<td class='num'>{p['tie']}</td><td class='num'>{p['errors']}</td>"
                         f"<td class='num'>{100 * p['win_rate']:.0f} % ({100 * low:.0f}–{100 * high:.0f})</td>"
                         f"<td class='num'>{100 * p['position_consistency']:.0f} %</td></tr>")
        parts.append("</table>")
    counts = {s: sum(row_status(r) == s for r in rows.values()) for s in ("fail", "error")}
    parts.append("<h2>Rows</h2><div class='filter'>"
                 "<input type='radio' name='show' id='show-all' checked><label for='show-all'>all</label>"
                 f"<input type='radio' name='show' id='show-failed'><label for='show-failed'>failed "
                 f"({counts['fail']})</label>"
                 f"<input type='radio' name='show' id='show-errored'><label for='show-errored'>errored "
                 f"({counts['error']})</label>")
    parts.append("<table class='rows'><tr><th>#</th><th>vars</th>"
                 + "".join(f"<th title='{_e(m)}'>{_e(labels[m])}</th>" for m in models) + "</tr>")
    grouped: dict[tuple, dict[str, dict]] = {}
    for key, row in rows.items():
        grouped.setdefault((row["test"], row["prompt_index"]), {})[row["model"]] = row
    for (t, p) in sorted(grouped):
        cells = grouped[(t, p)]
        first = next(iter(cells.values()))
        states = {row_status(r) for r in cells.values()}
        classes = "row" + "".join(f" has-{s}" for s in sorted(states))
        variables = "<br>".join(f"<b>{_e(k)}</b>: {_e(str(v)[:300])}" for k, v in first["vars"].items())
        parts.append(f"<tr class='{classes}'><td>{_e(row_id(first, prompts))}</td><td class='out'>{variables}</td>")
        for model in models:
            row = cells.get(model)
            if row is None:
                parts.append("<td></td>")
                continue
            state = row_status(row)
            verdict = {"pass": "<span class='pass'>pass</span>", "fail": "<span class='fail'>fail</span>",
                       "error": "<span class='error'>error</span>"}[state]
            checks = "".join(_check_line(a) for a in row.get("assertions", []))
            pair = pairs.get(row["key"])
            versus = (f"<div class='reason'>vs {_e(labels.get(pair['baseline'], pair['baseline']))}: "
                      f"{_e(pair['winner'])}{'' if pair['consistent'] else ' (orders disagreed)'} — "
                      f"{_e(pair['explanation'][:200])}</div>" if pair else "")
            output = _e(row["output"]) if row.get("output") is not None else f"<i>error: {_e(row.get('error'))}</i>"
            parts.append(f"<td><div class='out'>{output}</div>{verdict} {row.get('score', 0):.2f}{checks}{versus}</td>")
        parts.append("</tr>")
    parts.append("</table></div></body></html>")
    path.write_text("".join(parts))


def _check_line(a: dict) -> str:
    if "error" in a:
        return (f"<div class='reason'><span class='error'>⚠ {_e(a['type'])} errored</span> — {_e(a['error'][:300])}"
                f"<br>judge said: <code>{_e(str(a.get('raw', ''))[:300])}</code></div>")
    return f"<div class='reason'>{'✔' if a['passed'] else '✘'} {_e(a['type'])} {a['score']:.2f} — {_e(a['reason'][:300])}</div>"


#: What `genlab eval view` serves: the files a run writes (`genlab eval run --out`), nothing else.
REPORT_FILES = ("report.html", "results.jsonl", "results.csv", "results.xml", "summary.json")


def report_pages(directory: Path) -> list[Path]:
    """The runs' HTML reports under ``directory``, relative to it."""
    return sorted(p.relative_to(directory) for p in directory.rglob("report.html"))


def index_row(root: Path, page: Path, href: str) -> str:
    """One run in the viewer's index: its suite, each model's pass rate and the gate, from its
    summary.json (a run cut short before it wrote one shows its name alone)."""
    folder = root / page.parent
    try:
        summary = json.loads((folder / "summary.json").read_text())
        rates = "<br>".join(f"{_e(name)}: {100 * m['pass_rate']:.1f} %" for name, m in summary["models"].items())
        gate = summary["gate"]["held"]
        suite = f"<span title='{_e(summary['suite'])}'>{_e(Path(summary['suite']).name)}</span>"   # the path, on hover
        facts = (suite, _e(summary["rows"]), rates,
                 f"<span class='{'pass' if gate else 'fail'}'>{'held' if gate else 'missed'}</span>")
    except (OSError, ValueError, KeyError, TypeError):
        facts = ("", "", "", "")
    written = time.strftime("%Y-%m-%d %H:%M", time.localtime((root / page).stat().st_mtime))
    name = str(page.parent) if page.parent.name else root.name
    return (f'<tr><td><a href="{href}">{_e(name)}</a></td>' + "".join(f"<td>{fact}</td>" for fact in facts)
            + f"<td>{written}</td></tr>")


def report_handler(directory: Path):
    """An `http.server` handler for the runs under ``directory``, read-only: an index of their
    reports at /, the files in `REPORT_FILES`, and nothing else in the folder (a results folder
    may sit in a project beside its secrets). It answers only requests addressed to this
    machine by name (127.0.0.1, localhost, ::1): a web page elsewhere cannot read the reports
    by pointing its own domain at 127.0.0.1 (DNS rebinding)."""
    import http.server
    import io
    from urllib.parse import quote

    from genlab.serve.guard import LOOPBACK_NAMES, host_of

    root = directory.resolve()

    class ReportHandler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def send_head(self):
            if host_of(self.headers.get("Host", "")) not in LOOPBACK_NAMES:
                self.send_error(403, "this viewer answers only to 127.0.0.1 and localhost")
                return None
            if self.path.split("?", 1)[0] == "/":
                return self._index()
            target = Path(self.translate_path(self.path)).resolve()
            if target.name not in REPORT_FILES or not target.is_relative_to(root) or not target.is_file():
                self.send_error(404, "no such report (only the files genlab eval run writes are served)")
                return None
            return super().send_head()

        def _index(self):
            rows = "".join(index_row(root, page, quote(str(page))) for page in report_pages(root))
            table = (f"<table><tr><th>run</th><th>suite</th><th>rows</th><th>pass rate</th><th>gate</th>"
                     f"<th>written</th></tr>{rows}</table>" if rows else
                     "<p>none yet: genlab eval run SUITE.yaml --out DIR</p>")
            body = (f"<!doctype html><html><head><meta charset='utf-8'><title>genlab eval reports</title>"
                    f"<style>{CSS}</style></head><body><h1>genlab eval reports</h1>{table}</body></html>").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return io.BytesIO(body)

        def do_POST(self):  # noqa: N802 - the http.server naming
            self.send_error(405, "read-only")

        do_PUT = do_DELETE = do_PATCH = do_POST

        def log_message(self, *args):
            pass

    return ReportHandler
