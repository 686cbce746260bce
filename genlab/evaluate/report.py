"""Suite results as files people read: JSONL, CSV, and one self-contained HTML page."""

from __future__ import annotations

import csv
import html
from pathlib import Path
from typing import Any

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
"""


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
        writer.writerow(["test", "prompt", "model", "output", "passed", "score", "latency_s", "prompt_tokens",
                         "completion_tokens", "cost_usd", "error", *types])
        for key in sorted(rows, key=_order):
            r = rows[key]
            scores = {a["type"]: a["score"] for a in r.get("assertions", [])}
            writer.writerow([r["test"], r["prompt_index"], r["model"], r.get("output"), r.get("passed"),
                             round(r.get("score", 0.0), 4), r.get("latency_s"), r.get("prompt_tokens"),
                             r.get("completion_tokens"), r.get("cost_usd"), r.get("error"),
                             *[scores.get(t, "") for t in types]])


def write_html(summary: dict[str, Any], rows: dict[str, dict], pairs: dict[str, dict], path: Path) -> None:
    models = list(summary["models"])
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>genlab eval · {_e(summary['suite'])}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>genlab eval</h1><p class='muted'>{_e(summary['description'])} · {_e(summary['suite'])} · "
             f"{summary['rows']} rows</p>", "<h2>Summary</h2><table><tr><th>model</th><th>rows</th><th>pass rate</th>"]
    metrics = sorted({k for m in summary["models"].values() for k in m["mean_scores"]})
    parts += [f"<th>{_e(k)}</th>" for k in metrics]
    parts.append("<th>latency (s)</th><th>tokens</th><th>cost (USD)</th></tr>")
    for name, m in summary["models"].items():
        parts.append(f"<tr><td>{_e(name)}</td><td class='num'>{m['rows']}</td><td class='num'>"
                     f"<span class='bar' style='width:{60 * m['pass_rate']:.0f}px'></span> {100 * m['pass_rate']:.0f} %</td>")
        for k in metrics:
            mean, std = m["mean_scores"].get(k), m["std_scores"].get(k)
            cell = "" if mean is None else f"{mean:.3f} ± {std:.3f}"
            parts.append(f"<td class='num'>{cell}</td>")
        parts.append(f"<td class='num'>{m['mean_latency_s']:.2f}</td><td class='num'>{m['tokens']}</td>"
                     f"<td class='num'>{m['cost_usd']:.4f}</td></tr>")
    parts.append("</table>")
    if summary["pairwise"]:
        parts.append("<h2>Pairwise</h2><table><tr><th>candidate</th><th>baseline</th><th>wins</th><th>losses</th>"
                     "<th>ties</th><th>win rate (95 % CI)</th><th>position consistency</th></tr>")
        for name, p in summary["pairwise"].items():
            low, high = p["win_rate_ci95"]
            parts.append(f"<tr><td>{_e(name)}</td><td>{_e(p['baseline'])}</td><td class='num'>{p['candidate']}</td>"
                         f"<td class='num'>{p['baseline_wins']}</td><td class='num'>{p['tie']}</td>"
                         f"<td class='num'>{100 * p['win_rate']:.0f} % ({100 * low:.0f}–{100 * high:.0f})</td>"
                         f"<td class='num'>{100 * p['position_consistency']:.0f} %</td></tr>")
        parts.append("</table>")
    parts.append("<h2>Rows</h2><table><tr><th>#</th><th>vars</th>" + "".join(f"<th>{_e(m)}</th>" for m in models)
                 + "</tr>")
    grouped: dict[tuple, dict[str, dict]] = {}
    for key, row in rows.items():
        grouped.setdefault((row["test"], row["prompt_index"]), {})[row["model"]] = row
    for (t, p) in sorted(grouped):
        cells = grouped[(t, p)]
        first = next(iter(cells.values()))
        variables = "<br>".join(f"<b>{_e(k)}</b>: {_e(str(v)[:300])}" for k, v in first["vars"].items())
        parts.append(f"<tr><td>{t}.{p}</td><td class='out'>{variables}</td>")
        for model in models:
            row = cells.get(model)
            if row is None:
                parts.append("<td></td>")
                continue
            verdict = "<span class='pass'>pass</span>" if row.get("passed") else "<span class='fail'>fail</span>"
            checks = "".join(f"<div class='reason'>{'✔' if a['passed'] else '✘'} {_e(a['type'])} "
                             f"{a['score']:.2f} — {_e(a['reason'][:300])}</div>" for a in row.get("assertions", []))
            pair = pairs.get(row["key"])
            versus = (f"<div class='reason'>vs {_e(pair['baseline'])}: {_e(pair['winner'])}"
                      f"{'' if pair['consistent'] else ' (orders disagreed)'} — {_e(pair['explanation'][:200])}</div>"
                      if pair else "")
            output = _e(row["output"]) if row.get("output") is not None else f"<i>error: {_e(row.get('error'))}</i>"
            parts.append(f"<td><div class='out'>{output}</div>{verdict} {row.get('score', 0):.2f}{checks}{versus}</td>")
        parts.append("</tr>")
    parts.append("</table></body></html>")
    path.write_text("".join(parts))
