"""Reading runs back: summaries, the best program, held-out scores, baselines, and the report."""

from __future__ import annotations

import difflib
import json
import time
from pathlib import Path
from typing import Any

from genlab.errors import ConfigError
from genlab.io import read_text
from genlab.search.funsearch.code import parse_function
from genlab.search.funsearch.evaluator import Evaluator
from genlab.search.funsearch.runstore import DRAWN, SEED, TUNED, RunStore
from genlab.search.funsearch.spec import BUILTIN_SPECS, Spec, SpecError, parse_spec


def open_run(run_dir: str | Path) -> tuple[RunStore, Spec]:
    store = RunStore(Path(run_dir), create=False)
    meta = store.meta()
    return store, parse_spec(meta["spec_source"], meta["spec_path"], meta["spec_name"])


def summary(store: RunStore) -> dict[str, Any]:
    """Counts, best score, error kinds and the top programs of a run."""
    counts = store.counts()
    seed = store.query(f"SELECT score FROM samples WHERE {SEED}")
    kinds = {r["kind"]: r["n"] for r in store.query(
        "SELECT COALESCE(error_kind, 'valid') AS kind, COUNT(*) AS n FROM samples"
        f" WHERE {DRAWN} AND status != 'pending' GROUP BY kind ORDER BY n DESC")}
    top = [dict(r) for r in store.query(
        "SELECT id, prompt_id, tuned_from, island, score, length(code) AS chars FROM samples WHERE score IS NOT NULL"
        " ORDER BY score DESC, length(code), id LIMIT 5")]
    sampling = {("constrained" if r["constrained"] else "free"): {"samples": r["n"], "done": r["done"] or 0,
                                                                   "valid": r["valid"] or 0}
                for r in store.query(
        "SELECT p.constrained, COUNT(*) AS n, SUM(s.status != 'pending') AS done, SUM(s.score IS NOT NULL) AS valid"
        " FROM samples s JOIN prompts p ON s.prompt_id = p.id GROUP BY p.constrained")}
    meta = store.meta()
    return {"run_dir": str(store.run_dir), "spec": meta["spec_name"], "model": meta["config"]["model"],
            "target": meta["config"]["samples"], "seed_score": seed[0]["score"] if seed else None,
            **counts, "outcomes": kinds, "sampling": sampling, "top": top}


def drawn(samples: int, target: int | None) -> str:
    """Samples drawn, against the run's target where it has one (a time limit may end it)."""
    return f"{samples} / {target}" if target is not None else str(samples)


def best_sample(store: RunStore) -> dict[str, Any]:
    """Return the best-scoring sample (shortest among ties; the seed counts too)."""
    rows = store.query("SELECT * FROM samples WHERE score IS NOT NULL ORDER BY score DESC, length(code), id LIMIT 1")
    if not rows:
        raise ConfigError(f"{store.run_dir} has no scored program yet")
    return dict(rows[0])


def against_seed(store: RunStore, sample: dict[str, Any]) -> str:
    """How ``sample`` stands against the run's seed, as a verb phrase: a tie is no find."""
    seed = store.query(f"SELECT id, score FROM samples WHERE {SEED}")
    if not seed or seed[0]["score"] is None:
        return "has no scored seed to compare with"
    if sample["id"] == seed[0]["id"]:
        return "is the seed: no sample scored above it"
    if sample["score"] > seed[0]["score"]:
        return f"scores above the seed's {seed[0]['score']}"
    return f"ties the seed's {seed[0]['score']}: no sample scored above it"


def score_program(spec: Spec, code: str, datasets: dict[str, dict] | None = None,
                  evaluator: Evaluator | None = None, unsafe_sandbox: bool = False) -> dict[str, dict[str, Any]]:
    """Score a function on the spec's training inputs and each held-out dataset."""
    evaluator = evaluator or Evaluator(spec, unsafe_sandbox=unsafe_sandbox)
    datasets = datasets if datasets is not None else {"train": spec.inputs(), **spec.test_inputs()}
    results = {}
    for name, inputs in datasets.items():
        evaluation = evaluator.evaluate(code, inputs)
        row: dict[str, Any] = {"score": evaluation.score, "scored": len(evaluation.scores), "inputs": len(inputs),
                               "errors": evaluation.errors}
        if evaluation.valid:  # the metric reads every input's score
            metric = spec.metric(inputs, evaluation.scores)
            if metric:
                row["metric"] = {"name": metric[0], "value": metric[1]}
        results[name] = row
    return results


def read_program(spec: Spec, path: str | Path) -> str:
    """Read the evolved function from a file holding it (alone or inside other code)."""
    source = read_text(path)
    try:
        return str(parse_function(source, spec.function_name))
    except SyntaxError as exc:
        raise SpecError(f"{path} line {exc.lineno}: syntax error: {exc.msg}") from None
    except ValueError:
        raise SpecError(f"{path} has no function named {spec.function_name}(); "
                        f"the {spec.name} spec evolves {spec.function_name}()") from None


def baselines(spec: Spec, extra: dict[str, str] | None = None,
              unsafe_sandbox: bool = False) -> list[dict[str, Any]]:
    """Score the spec's BASELINES (and ``extra`` programs) on its held-out sets."""
    programs = dict(spec.namespace.get("BASELINES", {}))
    programs.update(extra or {})
    if not programs:
        given = spec.name if spec.name in BUILTIN_SPECS else spec.path   # what `evolve score` takes
        raise SpecError(f"the {spec.name} spec defines no BASELINES to compare; add --run RUN_DIR for a run's best "
                        f"program, or score one with genlab evolve score {given} FILE.py")
    datasets = spec.test_inputs()
    evaluator = Evaluator(spec, unsafe_sandbox=unsafe_sandbox)
    rows = []
    for name, code in programs.items():
        rows.append({"name": name, "results": score_program(spec, code, datasets, evaluator)})
    for name, figures in spec.namespace.get("PUBLISHED", {}).items():
        rows.append({"name": name, "published": figures})
    return rows


def _best_so_far(store: RunStore) -> tuple[list[int], list[float]]:
    """The best training score against samples drawn; a tuned program counts where it was saved."""
    rows = store.query(f"SELECT id, score, tuned_from FROM samples WHERE {DRAWN} OR {TUNED} ORDER BY id")
    seed = store.query(f"SELECT score FROM samples WHERE {SEED}")
    best = seed[0]["score"] if seed else float("-inf")
    xs, ys, drawn_so_far = [0], [best], 0
    for row in rows:
        if row["score"] is not None and row["score"] > best:
            best = row["score"]
        if row["tuned_from"] is None:
            drawn_so_far += 1
            xs.append(drawn_so_far)
            ys.append(best)
        else:  # a tuned program is saved after later samples were drawn: it raises the current point
            ys[-1] = best
    return xs, ys


def write_report(run_dir: str | Path, out: str | Path | None = None, test: bool = True,
                 unsafe_sandbox: bool = False) -> Path:
    """Write a Markdown report with a best-score plot, the best program and its diff to its parent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    store, spec = open_run(run_dir)
    info = summary(store)
    out = Path(out) if out else Path(run_dir) / "report.md"
    if out.suffix.lower() != ".md":
        raise ConfigError(f"--out {out}: give a Markdown file name ending in .md (the plot goes beside it, .png)")
    out.parent.mkdir(parents=True, exist_ok=True)
    xs, ys = _best_so_far(store)
    plot = out.with_suffix(".png")
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=120)
    ax.step(xs, ys, where="post", color="#1f6feb")
    ax.set_xlabel("samples drawn")
    ax.set_ylabel("best score")
    ax.set_title(f"{info['spec']} · {info['model']}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(plot)
    plt.close(fig)

    best = best_sample(store)
    parent_code = ""
    parents = json.loads(best["parent_ids"])
    if parents:
        parent = store.query("SELECT id, code, score FROM samples WHERE id=?", (parents[-1],))[0]
        parent_code = parent["code"]
    diff = "".join(difflib.unified_diff(parent_code.splitlines(keepends=True), best["code"].splitlines(keepends=True),
                                        fromfile=f"parent (sample {parents[-1]})" if parents else "none",
                                        tofile=f"best (sample {best['id']})"))
    valid_pct = 100.0 * (info["valid"] or 0) / max(info["evaluated"] or 0, 1)
    lines = [
        f"# genlab evolve report: {info['spec']}",
        "",
        f"Run `{info['run_dir']}`, model `{info['model']}`, written {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
        "| samples | evaluated | valid | best score | seed score | prompt tokens | completion tokens | cost (USD) |",
        "|---|---|---|---|---|---|---|---|",
        f"| {drawn(info['samples'], info['target'])} | {info['evaluated'] or 0} | {info['valid'] or 0} ({valid_pct:.1f} %) "
        f"| {info['best'] if info['best'] is not None else '—'} | {info['seed_score']} | {info['prompt_tokens'] or 0} "
        f"| {info['completion_tokens'] or 0} | {info['cost_usd'] or 0:.4f} |",
        "",
        f"![best score vs samples]({plot.name})",
        "",
        "## Outcomes",
        "",
        "| outcome | samples |",
        "|---|---|",
        *[f"| {kind} | {n} |" for kind, n in info["outcomes"].items()],
        "",
        f"## Best program (sample {best['id']}, score {best['score']})",
        *(["", f"Its literals were tuned from sample {best['tuned_from']}'s (`--tune-variants`)."]
          if best.get("tuned_from") is not None else []),
        "",
        f"It {against_seed(store, best)}.",
        "",
        "```python",
        best["code"].rstrip(),
        "```",
        "",
        "## Diff against its parent",
        "",
        "```diff",
        diff.rstrip() or "(the seed: no parent)",
        "```",
    ]
    if test and spec.test_inputs():
        results = score_program(spec, best["code"], spec.test_inputs(), unsafe_sandbox=unsafe_sandbox)
        lines += ["", "## Held-out datasets", "", "| dataset | mean score | metric |", "|---|---|---|"]
        for name, row in results.items():
            metric = f"{row['metric']['name']} = {row['metric']['value']:.2f}" if "metric" in row else "—"
            score = "—" if row["score"] is None else f"{row['score']:.2f}"
            lines.append(f"| {name} | {score} | {metric} |")
    out.write_text("\n".join(lines) + "\n")
    return out
