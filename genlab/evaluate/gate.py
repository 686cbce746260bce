"""`genlab eval run` as a CI gate: does this run meet the suite's bar, and did any row regress?

The bar, per model under test:
- ``pass_rate`` (``--fail-under`` overrides it): the share of rows that passed; a row
  whose model call or judge verdict errored counts as not passed. Without a gate every
  row must pass.
- a metric's name (an assertion type such as ``rouge-l``, or a rubric metric such as
  ``summarization_quality``): the mean score must reach it, on the rubric's own scale
  (1-5) for rubrics and 0-1 for the others; a rubric whose best score is inside its scale
  (verbosity) is read 0-1, as how close the answers came to that best.
- with a previous run to compare to, no row that passed there may fail or error now.

`genlab eval run` exits with `GATE_FAILED` when the bar is missed, so a CI job fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genlab.errors import ConfigError
from genlab.evaluate.runner import row_status
from genlab.evaluate.suite import Suite, gate_metrics
from genlab.io import read_jsonl

#: Exit codes of `genlab eval run`: 0 the gate held; 1 a genlab error (bad suite, unreachable
#: model) before results could be judged; 100 results were written and the gate failed.
GATE_FAILED = 100


@dataclass
class Regression:
    key: str
    test: int
    model: str
    before: str          # pass
    now: str             # fail or error
    reasons: list[str]


@dataclass
class GateResult:
    held: bool
    failures: list[str] = field(default_factory=list)    # one line per missed bar
    regressions: list[Regression] = field(default_factory=list)
    fixed: int = 0                                        # rows that failed before and pass now
    compared: int = 0                                     # rows found in both runs


def previous_rows(directory: Path) -> dict[str, dict]:
    """The rows of an earlier run's ``results.jsonl``, by row key."""
    path = directory / "results.jsonl"
    if not path.is_file():
        raise ConfigError(f"{directory} holds no results.jsonl; give --compare-to the --out directory of an "
                          "earlier `genlab eval run`")
    return {row["key"]: row for _, row in read_jsonl(path, "previous results")}


def check(suite: Suite, summary: dict[str, Any], rows: dict[str, dict], *, fail_under: float | None = None,
          before: dict[str, dict] | None = None) -> GateResult:
    """Judge a finished run against the suite's gate, ``fail_under`` and an earlier run's rows."""
    bar = dict(suite.spec.gate or {})
    if fail_under is not None:
        if not 0 <= fail_under <= 1:
            raise ConfigError(f"--fail-under takes a share between 0 and 1 (e.g. 0.9), not {fail_under:g}")
        bar["pass_rate"] = fail_under
    bar.setdefault("pass_rate", 1.0)
    names = gate_metrics(suite)
    result = GateResult(held=True)
    for model in summary["models"].values():
        label = model["label"]
        rate = model["pass_rate"]
        if rate < bar["pass_rate"]:
            result.failures.append(f"{label}: pass rate {100 * rate:.1f} % < {100 * bar['pass_rate']:.1f} % "
                                   f"({model['failed']} failed, {model['errors']} errored of {model['rows']})")
        for key, threshold in bar.items():
            if key == "pass_rate":
                continue
            kind, scale = names[key]
            mean = (model["mean_raw_scores"] if scale == "rubric" else model["mean_scores"]).get(kind)
            if mean is None:
                result.failures.append(f"{label}: no {key} score to gate on (every one errored)")
            elif mean < threshold:
                what = f"{key} closeness to its best score" if scale == "closeness" else key
                result.failures.append(f"{label}: mean {what} {mean:.3f} < {threshold:g}")
    if before is not None:
        for key, row in sorted(rows.items()):
            old = before.get(key)
            if old is None:
                continue
            result.compared += 1
            was, now = row_status(old), row_status(row)
            if was == "pass" and now != "pass":
                reasons = [a.get("error") or a["reason"] for a in row.get("assertions", []) if not a["passed"]]
                result.regressions.append(Regression(key, row["test"], row["model"], was, now,
                                                     reasons or [row.get("error") or ""]))
            elif was != "pass" and now == "pass":
                result.fixed += 1
        if result.regressions:
            result.failures.append(f"{len(result.regressions)} row(s) passed in the earlier run and do not now")
    result.held = not result.failures
    return result
