"""Run a suite: every (test, prompt, model) row once, assertions on each output, results
committed to ``OUT/eval.db`` as rows finish, so an interrupted run resumes where it
stopped. Model calls go through the response cache by default: re-running an
unchanged suite costs nothing.

A row ends in one of three states: ``pass`` (every assertion passed), ``fail`` (one did
not), or ``error`` (the model call failed, or a judge's verdict could not be read after
its retries; the judge's raw reply is kept on the assertion). An error never stops the
run; only a spent budget does.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from genlab.errors import BudgetExceeded, ConfigError, GenlabError, UserCodeError, VerdictUnreadable
from genlab.evaluate.autorater import compare, rate, wilson_interval
from genlab.evaluate.builtin import pairwise_metric, pointwise_metric
from genlab.evaluate.metrics import Context, run_assertion
from genlab.evaluate.suite import MODEL_GRADED, Suite, judge_inputs, render
from genlab.io import connect, hold_folder, sqlite_errors, transaction
from genlab.models import Budget, Model, add_cost, get_model


# Append only. IF NOT EXISTS: files written before migrations existed already hold the tables.
RESULT_MIGRATIONS = [("001_results", [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
    "CREATE TABLE IF NOT EXISTS rows (key TEXT PRIMARY KEY, data TEXT NOT NULL, finished REAL)",
    "CREATE TABLE IF NOT EXISTS pairs (key TEXT PRIMARY KEY, data TEXT NOT NULL, finished REAL)",
])]


@dataclass
class RunOptions:
    out: Path
    concurrency: int | None = None
    cache: bool = True
    budget_usd: float | None = None


class ResultStore:
    """``OUT/eval.db``: one JSON row per finished (test, prompt, model), plus pairwise verdicts."""

    def __init__(self, out: Path, digest: str):
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / "eval.db"
        self.db = connect(self.path, RESULT_MIGRATIONS)
        found = self.db.execute("SELECT value FROM meta WHERE key='suite'").fetchone()
        # A run that stopped before its first result (a bad python assertion, a model that
        # could not be reached) holds nothing to keep: the fixed suite takes the folder over.
        holds = self.db.execute("SELECT EXISTS (SELECT 1 FROM rows) OR EXISTS (SELECT 1 FROM pairs)").fetchone()[0]
        if found and found[0] != digest and holds:
            raise ConfigError(f"{out} holds results of a different version of this suite; "
                              "use another --out directory, or delete it to start over")
        self._hold = hold_folder(out, "runs genlab eval")   # one run writes a folder at a time
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('suite', ?)", (digest,))
        self.lock = threading.Lock()

    def release(self) -> None:
        """Let another process run a suite in this folder again."""
        self._hold.close()

    def done(self, table: str = "rows") -> dict[str, dict]:
        with self.lock, sqlite_errors(self.path):
            return {k: json.loads(d) for k, d in self.db.execute(f"SELECT key, data FROM {table}")}

    def save(self, key: str, data: dict, table: str = "rows") -> None:
        with self.lock, transaction(self.db, self.path):
            self.db.execute(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?)", (key, json.dumps(data), time.time()))


class SuiteRunner:
    def __init__(self, suite: Suite, options: RunOptions):
        self.suite, self.options = suite, options
        budget = Budget(usd=options.budget_usd) if options.budget_usd is not None else None
        self.models = {spec: get_model(spec, budget=budget, source="eval") for spec in suite.spec.models}
        self._judges: dict[str, Model] = {}
        self.budget = budget
        self.store = ResultStore(options.out, suite.digest)

    def judge(self, spec: str | None) -> Model:
        spec = spec or self.suite.spec.judge.model
        if spec not in self._judges:
            self._judges[spec] = get_model(spec, budget=self.budget, source="eval-judge")
        return self._judges[spec]

    def rows(self) -> list[tuple[str, int, int, str]]:
        return [(f"{t}:{p}:{m}", t, p, m) for t in range(len(self.suite.tests))
                for p in range(len(self.suite.spec.prompts)) for m in self.suite.spec.models]

    def run(self, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Run what is not done yet; return the summary. Another process may run the suite in
        this folder once it has returned."""
        try:
            return self._run(progress)
        finally:
            self.store.release()

    def _run(self, progress: Callable[[int, int], None] | None) -> dict[str, Any]:
        done = self.store.done()
        todo = [r for r in self.rows() if r[0] not in done]
        total, finished = len(self.rows()), len(self.rows()) - len(todo)
        if progress:
            progress(finished, total)
        concurrency = self.options.concurrency or self.suite.spec.concurrency
        stop = threading.Event()
        with ThreadPoolExecutor(concurrency) as pool:
            futures = [pool.submit(self._row, *r, stop) for r in todo]
            try:
                for future in futures:
                    future.result()
                    finished += 1
                    if progress:
                        progress(finished, total)
            except BaseException:
                stop.set()
                for f in futures:
                    f.cancel()
                raise
        if self.suite.spec.compare:
            self._pairwise(concurrency)
        return summarize(self.suite, self.store.done(), self.store.done("pairs"))

    def _row(self, key: str, t: int, p: int, model_spec: str, stop: threading.Event) -> None:
        if stop.is_set():
            return
        suite = self.suite
        test = suite.tests[t]
        variables = suite.variables(test)
        prompt = render(suite.spec.prompts[p], variables)
        model = self.models[model_spec]
        row: dict[str, Any] = {"key": key, "test": t, "prompt_index": p, "model": model_spec, "vars": variables,
                               "prompt": prompt, "description": test.description}
        try:
            response = model.chat(prompt, cache=self.options.cache, **suite.options)
        except GenlabError as exc:
            if isinstance(exc, BudgetExceeded):  # stops the run; other failures are recorded on the row
                raise
            row.update(output=None, error=str(exc), assertions=[], score=0.0, passed=False, status="error",
                       judge_tokens=0, judge_cost_usd=0.0)
            self.store.save(key, row)
            return
        output = response.text
        row.update(output=output, latency_s=response.latency_s, cache_hit=response.cache_hit,
                   cost_usd=response.cost_usd, prompt_tokens=response.usage.prompt_tokens,
                   completion_tokens=response.usage.completion_tokens, error=None)
        ctx = Context(variables, response.latency_s, response.cost_usd, suite.base_dir)
        results = []
        judge_tokens, judge_cost = 0, 0.0
        for assertion in suite.assertions_for(test):
            if assertion.type in MODEL_GRADED:
                result = self._rubric(assertion, output, prompt, variables)
                judge_tokens += result.pop("judge_tokens")
                judge_cost = add_cost(judge_cost, result.pop("judge_cost_usd"))
            else:
                value = render(assertion.value, variables) if isinstance(assertion.value, str) else assertion.value
                try:
                    score = run_assertion(assertion.type, output, value, ctx, assertion.threshold)
                    result = {"type": assertion.type, "score": score.score, "passed": score.passed,
                              "reason": score.reason}
                except UserCodeError as exc:     # the suite's own check failed on this output
                    result = {"type": assertion.type, "score": 0.0, "passed": False, "reason": str(exc),
                              "error": str(exc)}
            results.append({**result, "weight": assertion.weight})
        # An assertion that could not be judged has no score: it is left out of the row's score.
        scored = [a for a in results if "error" not in a]
        weights = sum(a["weight"] for a in scored)
        row.update(assertions=results, judge_tokens=judge_tokens, judge_cost_usd=judge_cost,
                   score=sum(a["score"] * a["weight"] for a in scored) / weights if weights else 1.0,
                   passed=all(a["passed"] for a in results))
        row["status"] = "error" if len(scored) < len(results) else "pass" if row["passed"] else "fail"
        self.store.save(key, row)

    def _rubric(self, assertion, output: str, prompt: str, variables: dict[str, Any]) -> dict[str, Any]:
        """One rubric assertion: the judge's verdict, or an error holding its unreadable reply."""
        metric = pointwise_metric(assertion.metric)
        inputs = judge_inputs(assertion, prompt, variables)
        name = f"rubric:{metric.name}"
        try:
            verdict = rate(self.judge(assertion.judge), metric, output, inputs,
                           settings=self.suite.spec.judge.settings(), cache=self.options.cache)
        except VerdictUnreadable as exc:
            return {"type": name, "score": 0.0, "passed": False, "reason": str(exc), "error": str(exc),
                    "raw": exc.raw, "judge_tokens": exc.tokens, "judge_cost_usd": exc.cost_usd}
        passed = verdict.score >= assertion.threshold if assertion.threshold is not None else verdict.passed
        return {"type": name, "score": verdict.normalized, "passed": passed, "raw_score": verdict.score,
                "reason": f"{metric.name} {verdict.score}: {verdict.explanation}", "judge_tokens": verdict.tokens,
                "judge_cost_usd": verdict.cost_usd}

    def _pairwise(self, concurrency: int) -> None:
        spec = self.suite.spec.compare
        metric = pairwise_metric(spec.metric)
        rows = self.store.done()
        done = self.store.done("pairs")
        jobs = []
        for t in range(len(self.suite.tests)):
            for p in range(len(self.suite.spec.prompts)):
                base = rows.get(f"{t}:{p}:{spec.baseline}")
                for model in self.suite.spec.models:
                    key = f"{t}:{p}:{model}"
                    if model == spec.baseline or key in done or not base or not rows.get(key):
                        continue
                    if rows[key]["output"] is None or base["output"] is None:
                        continue
                    jobs.append((key, rows[key], base))

        def judge_pair(key: str, candidate: dict, base: dict) -> None:
            variables = candidate["vars"]
            inputs = {"prompt": candidate["prompt"], **{k: render(v, variables) for k, v in spec.inputs.items()}}
            settings = self.suite.spec.judge.settings()
            if spec.samples is not None:
                settings = replace(settings, samples=spec.samples)
            try:
                verdict = vars(compare(self.judge(None), metric, candidate["output"], base["output"], inputs,
                                       settings=settings, cache=self.options.cache))
            except VerdictUnreadable as exc:
                verdict = {"winner": "error", "consistent": False, "order1": "", "order2": "", "explanation": str(exc),
                           "raw": exc.raw, "tokens": exc.tokens, "cost_usd": exc.cost_usd}
            self.store.save(key, {"model": candidate["model"], "baseline": spec.baseline, **verdict}, "pairs")

        with ThreadPoolExecutor(concurrency) as pool:
            for future in [pool.submit(judge_pair, *job) for job in jobs]:
                future.result()


def row_status(row: dict) -> str:
    """pass, fail or error (rows stored before rows had a status are read by their fields)."""
    return row.get("status") or ("pass" if row.get("passed") else "error" if row.get("error") else "fail")


def summarize(suite: Suite, rows: dict[str, dict], pairs: dict[str, dict]) -> dict[str, Any]:
    """Per model: rows passed / failed / errored, mean score per assertion (rubrics also on their own
    scale), latency, the model's and the judge's tokens and cost (None: unknown); pairwise win rates."""
    models: dict[str, Any] = {}
    for row in rows.values():
        m = models.setdefault(row["model"], {"label": suite.label(row["model"]), "rows": 0, "passed": 0, "failed": 0,
                                             "errors": 0, "scores": {}, "raw": {}, "latency": [], "tokens": 0,
                                             "judge_tokens": 0, "cost_usd": 0.0, "judge_cost_usd": 0.0,
                                             "cache_hits": 0})
        m["rows"] += 1
        m[{"pass": "passed", "fail": "failed", "error": "errors"}[row_status(row)]] += 1
        for a in row.get("assertions", []):
            if "error" in a:
                continue
            m["scores"].setdefault(a["type"], []).append(a["score"])
            if "raw_score" in a:
                m["raw"].setdefault(a["type"], []).append(a["raw_score"])
        m["judge_tokens"] += row.get("judge_tokens", 0)
        m["judge_cost_usd"] = add_cost(m["judge_cost_usd"], row.get("judge_cost_usd", 0.0))
        if row.get("output") is not None:
            m["latency"].append(row.get("latency_s", 0.0))
            m["tokens"] += row.get("prompt_tokens", 0) + row.get("completion_tokens", 0)
            m["cost_usd"] = add_cost(m["cost_usd"], row.get("cost_usd"))
            m["cache_hits"] += int(bool(row.get("cache_hit")))
    for m in models.values():
        m["pass_rate"] = m["passed"] / m["rows"] if m["rows"] else 0.0
        m["pass_rate_ci95"] = wilson_interval(m["passed"], m["rows"])
        m["mean_scores"] = {k: statistics.fmean(v) for k, v in m["scores"].items()}
        m["std_scores"] = {k: statistics.pstdev(v) for k, v in m["scores"].items()}
        m["mean_raw_scores"] = {k: statistics.fmean(v) for k, v in m["raw"].items()}
        m["mean_latency_s"] = statistics.fmean(m["latency"]) if m["latency"] else 0.0
        del m["scores"], m["raw"], m["latency"]
    pairwise: dict[str, Any] = {}
    for verdict in pairs.values():
        p = pairwise.setdefault(verdict["model"], {"label": suite.label(verdict["model"]),
                                                   "baseline": verdict["baseline"], "candidate": 0,
                                                   "baseline_wins": 0, "tie": 0, "consistent": 0, "n": 0,
                                                   "errors": 0})
        if verdict["winner"] == "error":
            p["errors"] += 1
            continue
        p["n"] += 1
        p["consistent"] += int(verdict["consistent"])
        p[{"candidate": "candidate", "baseline": "baseline_wins", "tie": "tie"}[verdict["winner"]]] += 1
    for p in pairwise.values():
        p["win_rate"] = p["candidate"] / p["n"] if p["n"] else 0.0
        p["win_rate_ci95"] = wilson_interval(p["candidate"], p["n"])
        p["position_consistency"] = p["consistent"] / p["n"] if p["n"] else 0.0
    return {"suite": str(suite.path), "description": suite.spec.description, "rows": len(rows), "models": models,
            "pairwise": pairwise}
